//! Content hashes of input files (blake3), memoised in the history by (path, size, mtime) so an
//! unchanged file is not read again to learn that it is unchanged. The results cache is keyed
//! by these hashes: batches and watch folders share them.

use std::io::Read;
use std::path::Path;
use std::time::UNIX_EPOCH;

use pixelflow_history::FileHash;

use crate::App;

/// What hashing a file found.
#[derive(Debug, Clone)]
pub struct HashedFile {
    pub bytes: u64,
    /// `None` when the file could not be read.
    pub hash: Option<String>,
    /// The hash to remember when it had to be computed (`None` when it came from the memo).
    pub learned: Option<FileHash>,
}

/// A file's modification time in ns since the Unix epoch (0 when unknown).
pub fn mtime_ns(meta: &std::fs::Metadata) -> i64 {
    meta.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map_or(0, |d| d.as_nanos() as i64)
}

/// Hashes `path`, reusing the hash remembered for its current size and mtime. Remembering a
/// newly computed hash is the caller's job ([`HashedFile::learned`]), so callers hashing many
/// files can store them in one transaction.
pub fn hash_file(app: &App, path: &Path) -> HashedFile {
    let Ok(meta) = std::fs::metadata(path) else { return HashedFile { bytes: 0, hash: None, learned: None } };
    let mtime_ns = mtime_ns(&meta);
    let key = path.to_string_lossy().into_owned();
    if let Ok(Some(hash)) = app.history().file_hash(&key, meta.len(), mtime_ns) {
        return HashedFile { bytes: meta.len(), hash: Some(hash), learned: None };
    }
    let mut hasher = blake3::Hasher::new();
    let hashed = std::fs::File::open(path).and_then(|f| {
        let mut reader = std::io::BufReader::with_capacity(1 << 20, f);
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = reader.read(&mut buf)?;
            if n == 0 {
                return Ok(());
            }
            hasher.update(&buf[..n]);
        }
    });
    if hashed.is_err() {
        return HashedFile { bytes: meta.len(), hash: None, learned: None };
    }
    let hash = hasher.finalize().to_hex().to_string();
    let learned = FileHash { path: key, size: meta.len(), mtime_ns, content_hash: hash.clone() };
    HashedFile { bytes: meta.len(), hash: Some(hash), learned: Some(learned) }
}
