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
pub(crate) fn read_file(path: &Path, max_bytes: u64) -> Result<Vec<u8>> {
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
pub(crate) fn write_atomic(dir: &Path, name: &str, data: &[u8]) -> Result<PathBuf> {
    let io = |path: &Path, source| Error::Io { path: path.to_path_buf(), source };
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let target = dir.join(name);
    let mut tmp = tempfile::Builder::new().prefix(".pixelflow-").suffix(".tmp").tempfile_in(dir).map_err(|e| io(dir, e))?;
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
