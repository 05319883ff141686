//! File I/O for the path APIs (bounded reads, atomic writes) and small helpers.

use std::borrow::Cow;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use image::DynamicImage;

use crate::error::{Error, Result};

/// The largest file the path APIs read into memory unless told otherwise. Images are decoded
/// whole, so this is a memory bound, not a format limit.
pub const DEFAULT_MAX_FILE_BYTES: u64 = 512 << 20;

/// Reads a whole file, refusing (before reading) one larger than `max_bytes`.
pub fn read_file(path: &Path, max_bytes: u64) -> Result<Vec<u8>> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    if len > max_bytes {
        return Err(Error::LimitExceeded(format!("{}: the file is {len} bytes, more than the limit of {max_bytes}", path.display())));
    }
    let mut data = Vec::new();
    data.try_reserve_exact(len as usize).map_err(|_| Error::LimitExceeded(format!("{}: cannot hold {len} bytes", path.display())))?;
    // `take` guards against a file that grows while we read it.
    file.take(max_bytes + 1).read_to_end(&mut data).map_err(|e| Error::io(path, e))?;
    if data.len() as u64 > max_bytes {
        return Err(Error::LimitExceeded(format!("{}: the file grew past the limit of {max_bytes} bytes", path.display())));
    }
    Ok(data)
}

/// Writes `data` to `dir/name` atomically: a temporary file in the same directory, flushed to
/// disk, then renamed over the target. A reader (or a crash) sees the old file or the new one,
/// never half of one, and a re-run after a crash simply writes it again.
pub fn write_atomic(dir: &Path, name: &str, data: &[u8]) -> Result<PathBuf> {
    let io = |path: &Path, source| Error::Io { path: path.to_path_buf(), source };
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let target = dir.join(name);
    let mut tmp = tempfile::Builder::new().prefix(TEMP_PREFIX).suffix(TEMP_SUFFIX).tempfile_in(dir).map_err(|e| io(dir, e))?;
    tmp.write_all(data).map_err(|e| io(tmp.path(), e))?;
    // tempfile creates 0600; an output image is as readable as any file the user makes.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file().set_permissions(std::fs::Permissions::from_mode(0o644)).map_err(|e| io(tmp.path(), e))?;
    }
    tmp.as_file().sync_all().map_err(|e| io(tmp.path(), e))?;
    tmp.persist(&target).map_err(|e| io(&target, e.error))?;
    Ok(target)
}

/// The prefix and suffix of `write_atomic`'s temporary files.
const TEMP_PREFIX: &str = ".pixelflow-";
const TEMP_SUFFIX: &str = ".tmp";

/// How old a temporary file must be before it counts as left behind: far longer than any single
/// write, so a write under way in another process is never taken away.
pub const STALE_TEMP_AGE: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// Removes `write_atomic` temporary files older than `older_than` from `dir` (not recursive):
/// what a process killed in the middle of a write leaves behind. Returns how many went.
/// Errors are ignored: a file that cannot be removed now is tried again next time.
pub fn sweep_stale_temp_files(dir: &Path, older_than: std::time::Duration) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    let now = std::time::SystemTime::now();
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !(name.starts_with(TEMP_PREFIX) && name.ends_with(TEMP_SUFFIX)) {
            continue;
        }
        let old = entry
            .metadata()
            .ok()
            .filter(|m| m.is_file())
            .and_then(|m| m.modified().ok())
            .and_then(|t| now.duration_since(t).ok())
            .is_some_and(|age| age >= older_than);
        if old && std::fs::remove_file(entry.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// The blake3 hash of some bytes, as lowercase hex.
pub fn hash_hex(data: &[u8]) -> String {
    blake3::hash(data).to_hex().to_string()
}

/// CRC-32 (IEEE), for the PNG chunks this crate writes itself.
pub(crate) fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

/// `image` as 8- or 16-bit grey, grey+alpha, RGB or RGBA: the pixel types the encoders, the
/// resampler and the filters work on. Those pass through untouched; anything else (the float
/// types no decoder here makes) becomes 16-bit RGB, or RGBA when it has alpha.
pub(crate) fn integer_pixels(image: &DynamicImage) -> Cow<'_, DynamicImage> {
    match image {
        DynamicImage::ImageLuma8(_)
        | DynamicImage::ImageLumaA8(_)
        | DynamicImage::ImageRgb8(_)
        | DynamicImage::ImageRgba8(_)
        | DynamicImage::ImageLuma16(_)
        | DynamicImage::ImageLumaA16(_)
        | DynamicImage::ImageRgb16(_)
        | DynamicImage::ImageRgba16(_) => Cow::Borrowed(image),
        other if other.color().has_alpha() => Cow::Owned(DynamicImage::ImageRgba16(other.to_rgba16())),
        other => Cow::Owned(DynamicImage::ImageRgb16(other.to_rgb16())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_old_temporary_files_are_swept() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join(".pixelflow-abc.tmp");
        let fresh = dir.path().join(".pixelflow-def.tmp");
        let output = dir.path().join("photo.jpg");
        for p in [&old, &fresh, &output] {
            std::fs::write(p, b"x").unwrap();
        }
        let an_hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        std::fs::File::options().write(true).open(&old).unwrap().set_modified(an_hour_ago).unwrap();
        std::fs::File::options().write(true).open(&output).unwrap().set_modified(an_hour_ago).unwrap();
        assert_eq!(sweep_stale_temp_files(dir.path(), STALE_TEMP_AGE), 1);
        assert!(!old.exists() && fresh.exists() && output.exists());
        assert_eq!(sweep_stale_temp_files(&dir.path().join("missing"), STALE_TEMP_AGE), 0);
    }

    #[test]
    fn crc32_matches_the_png_reference() {
        assert_eq!(crc32(b"IEND"), 0xAE42_6082);
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("nested");
        let p = write_atomic(&out, "a.bin", b"one").unwrap();
        write_atomic(&out, "a.bin", b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["a.bin"]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o644);
        }
    }

    #[test]
    fn read_file_limits() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, vec![0u8; 100]).unwrap();
        assert_eq!(read_file(&p, 100).unwrap().len(), 100);
        assert!(matches!(read_file(&p, 99), Err(Error::LimitExceeded(_))));
        assert!(matches!(read_file(&dir.path().join("missing"), 100), Err(Error::InputNotFound { .. })));
    }
}
