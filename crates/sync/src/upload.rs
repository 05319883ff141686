//! Uploading files to a [`Store`]: skip-if-unchanged, single or multipart PUT, integrity
//! check, and the record of every confirmed upload.
//!
//! For each file: hash it on the blocking pool (blake3 for identity; for the integrity check
//! the MD5 of a small file, or per part the MD5 (S3) or CRC-64/NVME (Azure)); unless
//! `overwrite` is `always` or a listing of its folder showed the key absent (see
//! [`absent_keys`]), HEAD the key and skip the upload when the object's `pixelflowblake3`
//! metadata and size match; PUT it (multipart above [`UploadOptions::multipart_threshold`])
//! with the hash as metadata; verify what the service computed over the bytes it stored (per
//! part before a multipart commit, see [`check_parts`]; then the whole, see [`verify`]); and
//! only then hand the upload to the [`UploadLog`]. An object that fails verification after its
//! commit is deleted, so no later run can skip it as unchanged; a file that fails it is sent
//! once more ([`INTEGRITY_ATTEMPTS`]). Files run concurrently, at most
//! [`UploadOptions::concurrency`] at a time.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use base64::Engine;
use bytes::Bytes;
use futures::StreamExt;
use md5::{Digest, Md5};
use object_store::path::Path as ObjectPath;
use object_store::{Attribute, Attributes, GetOptions, ObjectStore, ObjectStoreExt, PutMultipartOptions, PutOptions, PutPayload};
use serde::Serialize;

use crate::destination::Service;
use crate::error::{Error, Result};
use crate::store::Store;

/// The object metadata key holding the blake3 hash of the content (no `-`: Azure metadata
/// names are C# identifiers).
pub const HASH_METADATA: &str = "pixelflowblake3";

/// What to do when the key already holds an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Overwrite {
    /// Upload every time.
    Always,
    /// Never replace an existing object (whatever it holds).
    Never,
    /// Replace it unless it already holds the same content (by its blake3 metadata).
    #[default]
    IfChanged,
}

/// How files are uploaded.
#[derive(Debug, Clone)]
pub struct UploadOptions {
    /// `Content-Type`; `None`: from the file's extension.
    pub content_type: Option<String>,
    pub cache_control: Option<String>,
    /// User metadata (`x-amz-meta-*`, `x-ms-meta-*`): lowercase letters, digits and `_`.
    pub metadata: BTreeMap<String, String>,
    /// S3 storage class or Azure access tier.
    pub storage_class: Option<String>,
    pub overwrite: Overwrite,
    /// Files in flight at once.
    pub concurrency: usize,
    /// Files of at least this many bytes go up in parts.
    pub multipart_threshold: u64,
    /// The size of each part (the last may be smaller).
    pub part_size: usize,
    /// Parts in flight at once, per file.
    pub part_concurrency: usize,
}

impl Default for UploadOptions {
    fn default() -> Self {
        UploadOptions {
            content_type: None,
            cache_control: None,
            metadata: BTreeMap::new(),
            storage_class: None,
            overwrite: Overwrite::IfChanged,
            concurrency: 32,
            multipart_threshold: 16 * 1024 * 1024,
            part_size: 8 * 1024 * 1024,
            part_concurrency: 4,
        }
    }
}

impl UploadOptions {
    /// Checks the options (metadata names, sizes).
    pub fn validate(&self) -> Result<()> {
        for (k, v) in &self.metadata {
            // What both services accept: S3 lowercases names, Azure wants C# identifiers.
            let ok = k.bytes().next().is_some_and(|b| b.is_ascii_lowercase() || b == b'_')
                && k.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            if !ok {
                return Err(Error::invalid(format!("metadata name '{k}': use lowercase letters, digits and '_', not starting with a digit")));
            }
            if k == HASH_METADATA {
                return Err(Error::invalid(format!("metadata name '{k}' is reserved for the content hash")));
            }
            if v.chars().any(|c| c.is_control() || !c.is_ascii()) {
                return Err(Error::invalid(format!("metadata '{k}': values must be printable ASCII")));
            }
        }
        if self.concurrency == 0 || self.part_concurrency == 0 {
            return Err(Error::invalid("concurrency must be at least 1"));
        }
        // S3 parts are at least 5 MiB (but the last); Azure blocks at most 4000 MiB.
        if self.part_size < 5 * 1024 * 1024 {
            return Err(Error::invalid("the part size must be at least 5 MiB"));
        }
        Ok(())
    }
}

/// One file to upload and the key it goes to.
#[derive(Debug, Clone)]
pub struct Item {
    pub source: PathBuf,
    pub key: String,
    /// The execution whose output this is, for the record.
    pub execution_id: Option<String>,
}

/// What happened to one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Action {
    /// Sent and confirmed.
    Uploaded,
    /// Already there with the same content.
    Unchanged,
    /// Already there, different, and `overwrite` is `never`.
    Kept,
}

/// The outcome of one file.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Outcome {
    pub source: PathBuf,
    pub key: String,
    pub action: Action,
    pub etag: Option<String>,
    pub size: u64,
    pub content_hash: String,
}

/// A confirmed upload (or an object found present and unchanged), as the history records it.
/// Holds no secret: `credentials` names where they came from.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UploadRecord {
    /// `s3://bucket` or `az://container`.
    pub destination: String,
    pub key: String,
    pub etag: Option<String>,
    pub size: u64,
    pub content_hash: String,
    pub source: String,
    pub execution_id: Option<String>,
    pub credentials: String,
    /// True when nothing was sent because the object was already there, unchanged.
    pub unchanged: bool,
}

/// Where confirmed uploads are recorded (the history, in the app).
pub trait UploadLog: Send + Sync {
    fn record(&self, upload: &UploadRecord) -> std::result::Result<(), String>;
}

/// A log that records nothing.
pub struct NoLog;

impl UploadLog for NoLog {
    fn record(&self, _: &UploadRecord) -> std::result::Result<(), String> {
        Ok(())
    }
}

/// The `Content-Type` for a file name's extension.
pub fn content_type_for(path: &Path) -> &'static str {
    let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).unwrap_or_default();
    match ext.as_str() {
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "webp" => "image/webp",
        "gif" => "image/gif",
        "avif" => "image/avif",
        "bmp" => "image/bmp",
        "tif" | "tiff" => "image/tiff",
        "svg" => "image/svg+xml",
        "json" => "application/json",
        "txt" => "text/plain; charset=utf-8",
        "html" | "htm" => "text/html; charset=utf-8",
        "css" => "text/css",
        "js" => "text/javascript",
        "pdf" => "application/pdf",
        _ => "application/octet-stream",
    }
}

/// Uploads `items` to `store`, at most `options.concurrency` at a time, and returns each one's
/// outcome in the order given. After an error that every other file would meet too (bad
/// credentials, a missing bucket, a wrong region) the files not yet started are not tried.
/// `should_stop` is polled between files (cancellation).
pub fn upload_all(
    store: &Store,
    items: Vec<Item>,
    options: &UploadOptions,
    log: &dyn UploadLog,
    should_stop: &(dyn Fn() -> bool + Sync),
) -> Vec<Result<Outcome>> {
    let mut conflicts = key_conflicts(store, &items);
    // The first error that every other file would meet too; files not started then fail with it.
    let fatal: std::sync::Mutex<Option<Error>> = std::sync::Mutex::new(None);
    // Keys a listing showed absent: their HEAD is skipped (filled before the first upload).
    let absent: std::sync::Mutex<HashSet<String>> = std::sync::Mutex::new(HashSet::new());
    let run = |i: usize, item: Item, conflict: Option<Error>| {
        let (fatal, absent) = (&fatal, &absent);
        async move {
            if let Some(e) = conflict {
                return (i, Err(e));
            }
            if should_stop() {
                return (i, Err(Error::Cancelled));
            }
            if let Some(e) = fatal.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
                return (i, Err(e.not_tried()));
            }
            let known_absent = absent.lock().unwrap_or_else(|e| e.into_inner()).contains(&item.key);
            let result = upload_one(store, &item, options, log, known_absent).await;
            if let Err(e) = &result {
                if e.is_fatal() {
                    let mut first = fatal.lock().unwrap_or_else(|e| e.into_inner());
                    if first.is_none() {
                        *first = Some(e.copy());
                    }
                }
            }
            (i, result)
        }
    };
    let n = items.len();
    let mut results: Vec<Option<Result<Outcome>>> = (0..n).map(|_| None).collect();
    crate::store::runtime().block_on(async {
        if options.overwrite == Overwrite::IfChanged {
            *absent.lock().unwrap_or_else(|e| e.into_inner()) = absent_keys(store, &items).await;
        }
        let mut stream = futures::stream::iter(items.into_iter().enumerate().map(|(i, item)| run(i, item, conflicts.remove(&i)))).buffer_unordered(options.concurrency);
        while let Some((i, result)) = stream.next().await {
            results[i] = Some(result);
        }
    });
    results.into_iter().map(|r| r.unwrap_or(Err(Error::Cancelled))).collect()
}

/// Items whose key another item with a different source already takes.
fn key_conflicts(store: &Store, items: &[Item]) -> HashMap<usize, Error> {
    let mut first: HashMap<&str, &Path> = HashMap::new();
    let mut out = HashMap::new();
    for (i, item) in items.iter().enumerate() {
        match first.get(item.key.as_str()) {
            Some(source) if *source != item.source.as_path() => {
                out.insert(i, Error::KeyConflict {
                    destination: store.destination_root.clone(),
                    key: item.key.clone(),
                    first: source.to_path_buf(),
                    second: item.source.clone(),
                });
            }
            Some(_) => {}
            None => {
                first.insert(&item.key, &item.source);
            }
        }
    }
    out
}

/// A file's hashes: blake3 (identity), and what the service's answer is checked against.
struct Hashes {
    size: u64,
    blake3: String,
    /// The content and its MD5, for files small enough for one PUT.
    content: Option<(Bytes, [u8; 16])>,
    /// Multipart: the MD5 (S3: the ETag is made of them) or the CRC-64/NVME (Azure: each Put
    /// Block answers one) of each part.
    part_md5s: Vec<[u8; 16]>,
    part_crc64s: Vec<u64>,
}

/// Hashes a file on the blocking pool (hashing is CPU work the runtime's two workers must not
/// do while they also drive the network).
async fn hash_file(path: &Path, service: Service, options: &UploadOptions) -> Result<Hashes> {
    let (path, threshold, part_size) = (path.to_path_buf(), options.multipart_threshold, options.part_size);
    let task = tokio::task::spawn_blocking(move || hash_file_blocking(&path, service, threshold, part_size).map_err(|e| Error::io(&path, e)));
    task.await.unwrap_or_else(|e| Err(Error::Failed { destination: String::new(), message: format!("hashing failed: {e}") }))
}

fn hash_file_blocking(path: &Path, service: Service, threshold: u64, part_size: usize) -> std::io::Result<Hashes> {
    let mut file = std::fs::File::open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file"));
    }
    if meta.len() < threshold {
        let mut content = Vec::with_capacity(meta.len() as usize);
        std::io::Read::read_to_end(&mut file, &mut content)?;
        let md5: [u8; 16] = Md5::digest(&content).into();
        let blake3 = blake3::hash(&content).to_hex().to_string();
        return Ok(Hashes { size: content.len() as u64, blake3, content: Some((Bytes::from(content), md5)), part_md5s: vec![], part_crc64s: vec![] });
    }
    let mut b3 = blake3::Hasher::new();
    let (mut part_md5s, mut part_crc64s) = (Vec::new(), Vec::new());
    let mut size = 0u64;
    let mut buf = vec![0u8; part_size];
    loop {
        let n = read_full(&mut file, &mut buf)?;
        if n == 0 {
            break;
        }
        let part = &buf[..n];
        size += n as u64;
        b3.update(part);
        match service {
            Service::S3 => part_md5s.push(Md5::digest(part).into()),
            Service::Azure => part_crc64s.push(crate::store::crc64(part)),
        }
    }
    Ok(Hashes { size, blake3: b3.finalize().to_hex().to_string(), content: None, part_md5s, part_crc64s })
}

/// Fills `buf` from `file` (less only at the end of the file); returns the bytes read.
fn read_full(file: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match std::io::Read::read(file, &mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Reads the next part of `file` on the blocking pool.
async fn read_part(file: std::fs::File, size: usize) -> std::io::Result<(std::fs::File, Vec<u8>)> {
    let task = tokio::task::spawn_blocking(move || {
        let mut file = file;
        let mut buf = vec![0u8; size];
        let n = read_full(&mut file, &mut buf)?;
        buf.truncate(n);
        Ok((file, buf))
    });
    task.await.unwrap_or_else(|e| Err(std::io::Error::other(e)))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The keys of `items` that a listing of their folders shows absent (empty when listing is not
/// worth it or fails: then every file is looked up with its own HEAD). One LIST page answers
/// for up to 1,000 keys, where a HEAD answers for one: on a fresh destination this halves the
/// requests of a batch of small files.
async fn absent_keys(store: &Store, items: &[Item]) -> HashSet<String> {
    let mut folders: HashMap<Option<ObjectPath>, Vec<&str>> = HashMap::new();
    for item in items {
        let Ok(location) = ObjectPath::parse(&item.key) else { continue };
        let parts: Vec<_> = location.parts().collect();
        let parent = (parts.len() > 1).then(|| ObjectPath::from_iter(parts[..parts.len() - 1].iter().cloned()));
        folders.entry(parent).or_default().push(&item.key);
    }
    let mut absent = HashSet::new();
    for (folder, keys) in folders {
        // A folder of a few files costs more to list than to HEAD.
        if keys.len() < 8 {
            continue;
        }
        let Ok(listing) = store.inner.list_with_delimiter(folder.as_ref()).await else { continue };
        let present: HashSet<String> = listing.objects.into_iter().map(|o| o.location.to_string()).collect();
        absent.extend(keys.into_iter().filter(|k| !present.contains(*k)).map(str::to_string));
    }
    absent
}

/// Attempts at one file whose upload failed its integrity check (the file is read and sent
/// again: a corruption on the way is rarely repeated).
const INTEGRITY_ATTEMPTS: usize = 2;

async fn upload_one(store: &Store, item: &Item, options: &UploadOptions, log: &dyn UploadLog, known_absent: bool) -> Result<Outcome> {
    let mut attempt = 1;
    loop {
        match upload_once(store, item, options, log, known_absent).await {
            Err(e @ Error::Integrity { .. }) if attempt < INTEGRITY_ATTEMPTS => {
                tracing::warn!("{e}; sending it again");
                attempt += 1;
            }
            other => return other,
        }
    }
}

async fn upload_once(store: &Store, item: &Item, options: &UploadOptions, log: &dyn UploadLog, known_absent: bool) -> Result<Outcome> {
    let location = ObjectPath::parse(&item.key).map_err(|e| Error::invalid(format!("key '{}': {e}", item.key)))?;
    let hashes = hash_file(&item.source, store.service, options).await?;
    let outcome = |action, etag| Outcome {
        source: item.source.clone(),
        key: item.key.clone(),
        action,
        etag,
        size: hashes.size,
        content_hash: hashes.blake3.clone(),
    };
    if options.overwrite != Overwrite::Always && !known_absent {
        match store.inner.get_opts(&location, GetOptions { head: true, ..GetOptions::default() }).await {
            Ok(existing) => {
                let same = existing.meta.size == hashes.size
                    && existing.attributes.get(&Attribute::Metadata(HASH_METADATA.into())).map(|v| v.as_ref()) == Some(hashes.blake3.as_str());
                if same {
                    let result = outcome(Action::Unchanged, existing.meta.e_tag.clone());
                    record(store, item, &result, log, true)?;
                    return Ok(result);
                }
                if options.overwrite == Overwrite::Never {
                    return Ok(outcome(Action::Kept, existing.meta.e_tag.clone()));
                }
            }
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e @ (object_store::Error::PermissionDenied { .. } | object_store::Error::Unauthenticated { .. })) => {
                return Err(diagnose_denied(store, &location, &e).await);
            }
            Err(e) => return Err(store.classify(&e)),
        }
    }
    let attributes = attributes(item, &hashes, options);
    let put = match &hashes.content {
        Some((content, _)) => {
            let opts = PutOptions { attributes, ..PutOptions::default() };
            store.inner.put_opts(&location, PutPayload::from_bytes(content.clone()), opts).await.map_err(|e| store.classify(&e))?
        }
        None => put_multipart(store, item, &location, &hashes, attributes, options).await?,
    };
    if let Err(e) = verify(store, item, &hashes, put.e_tag.as_deref()).await {
        // Never leave an object whose hash metadata claims content it does not hold.
        let _ = store.inner.delete(&location).await;
        return Err(e);
    }
    let result = outcome(Action::Uploaded, put.e_tag);
    record(store, item, &result, log, false)?;
    Ok(result)
}

/// A HEAD answer has no body, so a 403 does not say whether the credentials are wrong or only
/// lack a permission: ask again with a LIST of the key's folder, whose error body says.
async fn diagnose_denied(store: &Store, location: &ObjectPath, head_error: &object_store::Error) -> Error {
    let parts: Vec<_> = location.parts().collect();
    let parent = (parts.len() > 1).then(|| ObjectPath::from_iter(parts[..parts.len() - 1].iter().cloned()));
    match store.inner.list_with_delimiter(parent.as_ref()).await {
        Err(e) => match store.classify(&e) {
            Error::Failed { .. } => store.classify(head_error),
            specific => specific,
        },
        Ok(_) => store.classify(head_error),
    }
}

fn attributes(item: &Item, hashes: &Hashes, options: &UploadOptions) -> Attributes {
    let mut attributes = Attributes::new();
    let content_type = options.content_type.clone().unwrap_or_else(|| content_type_for(&item.source).to_string());
    attributes.insert(Attribute::ContentType, content_type.into());
    if let Some(cc) = &options.cache_control {
        attributes.insert(Attribute::CacheControl, cc.clone().into());
    }
    if let Some(class) = &options.storage_class {
        attributes.insert(Attribute::StorageClass, class.clone().into());
    }
    for (k, v) in &options.metadata {
        attributes.insert(Attribute::Metadata(k.clone().into()), v.clone().into());
    }
    attributes.insert(Attribute::Metadata(HASH_METADATA.into()), hashes.blake3.clone().into());
    attributes
}

/// Sends a file in parts, at most `options.part_concurrency` in flight, and checks what the
/// service answered to each part ([`check_parts`]) before the commit, so a corrupted part never
/// replaces an object.
async fn put_multipart(store: &Store, item: &Item, location: &ObjectPath, hashes: &Hashes, attributes: Attributes, options: &UploadOptions) -> Result<object_store::PutResult> {
    store.clear_parts(&item.key);
    let mut upload = store
        .inner
        .put_multipart_opts(location, PutMultipartOptions { attributes, ..PutMultipartOptions::default() })
        .await
        .map_err(|e| store.classify(&e))?;
    let mut parts = tokio::task::JoinSet::new();
    let sent: Result<()> = async {
        let joined = |r: std::result::Result<object_store::Result<()>, tokio::task::JoinError>| match r {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(store.classify(&e)),
            Err(e) => Err(Error::Failed { destination: store.destination_root.clone(), message: format!("a part upload failed: {e}") }),
        };
        let mut file = std::fs::File::open(&item.source).map_err(|e| Error::io(&item.source, e))?;
        loop {
            while parts.len() >= options.part_concurrency {
                if let Some(r) = parts.join_next().await {
                    joined(r)?;
                }
            }
            let (rest, part) = read_part(file, options.part_size).await.map_err(|e| Error::io(&item.source, e))?;
            file = rest;
            if part.is_empty() {
                break;
            }
            parts.spawn(upload.put_part(PutPayload::from(part)));
        }
        while let Some(r) = parts.join_next().await {
            joined(r)?;
        }
        check_parts(store, item, hashes)
    }
    .await;
    if let Err(e) = sent {
        parts.abort_all();
        let _ = upload.abort().await;
        store.clear_parts(&item.key);
        return Err(e);
    }
    upload.complete().await.map_err(|e| store.classify(&e))
}

/// Before the commit: the checksum the service answered to each part of `item` against the
/// file's. S3: each Upload Part's ETag is the MD5 of the part it stored. Azure: each Put Block
/// answers the CRC-64 of the block (compared as a multiset: block ids are random; [`verify`]
/// checks the committed order).
fn check_parts(store: &Store, item: &Item, hashes: &Hashes) -> Result<()> {
    let n = hashes.part_md5s.len().max(hashes.part_crc64s.len());
    let differ = match store.service {
        Service::S3 => {
            let etags = store.take_part_etags(&item.key);
            // Under SSE-KMS or SSE-C the ETags are not MD5s: the final ETag check says that.
            let md5_etags = etags.values().all(|e| e.len() == 32 && e.bytes().all(|b| b.is_ascii_hexdigit()));
            if etags.is_empty() || !md5_etags {
                return Ok(());
            }
            hashes.part_md5s.iter().enumerate().filter(|(i, md5)| etags.get(&(*i as u32 + 1)) != Some(&hex(md5.as_slice()))).count()
        }
        Service::Azure => {
            let staged = store.staged_crc64s(&item.key);
            if staged.is_empty() {
                // A service that answers no block checksum: the size is checked after the commit.
                return Ok(());
            }
            let mut answered: Vec<u64> = staged.into_values().collect();
            answered.sort_unstable();
            let mut expected = hashes.part_crc64s.clone();
            expected.sort_unstable();
            // The parts without a block of the same CRC-64 (a multiset difference).
            let (mut i, mut matched) = (0, 0);
            for crc in &expected {
                while i < answered.len() && answered[i] < *crc {
                    i += 1;
                }
                if i < answered.len() && answered[i] == *crc {
                    matched += 1;
                    i += 1;
                }
            }
            n.max(answered.len()) - matched
        }
    };
    if differ > 0 {
        return Err(Error::Integrity {
            destination: store.destination_root.clone(),
            key: item.key.clone(),
            message: format!("{differ} of {n} parts arrived different from the file (by the checksum the service computed); nothing was committed"),
        });
    }
    Ok(())
}

/// Checks what the service answered against the file's checksums.
async fn verify(store: &Store, item: &Item, hashes: &Hashes, etag: Option<&str>) -> Result<()> {
    let mismatch = |message: String| Error::Integrity { destination: store.destination_root.clone(), key: item.key.clone(), message };
    match (store.service, &hashes.content) {
        (Service::S3, content) => {
            // An S3 ETag is the content's MD5 (single PUT) or the MD5 of the parts' MD5s with
            // the part count (multipart), except under SSE-KMS/SSE-C, where it is opaque.
            let Some(etag) = etag.map(|e| e.trim_matches('"').to_ascii_lowercase()) else { return Ok(()) };
            let expected = match content {
                Some((_, md5)) => hex(md5),
                None => {
                    let mut md5 = Md5::new();
                    for p in &hashes.part_md5s {
                        md5.update(p);
                    }
                    format!("{}-{}", hex(&md5.finalize()), hashes.part_md5s.len())
                }
            };
            let looks_md5 = etag.len() >= 32 && etag[..32].bytes().all(|b| b.is_ascii_hexdigit());
            if looks_md5 && etag != expected {
                return Err(mismatch(format!("the service's ETag {etag} is not the MD5 {expected} of the file")));
            }
        }
        (Service::Azure, Some((_, md5))) => {
            let expected = base64::engine::general_purpose::STANDARD.encode(md5);
            if let Some(answered) = store.take_md5(&item.key) {
                if answered != expected {
                    return Err(mismatch(format!("the service's Content-MD5 {answered} is not the file's {expected}")));
                }
            }
        }
        (Service::Azure, None) => {
            // The committed block list, block by block, against the file's parts in order.
            match store.take_committed_crc64s(&item.key).filter(|c| c.iter().any(Option::is_some)) {
                Some(committed) => {
                    let expected: Vec<Option<u64>> = hashes.part_crc64s.iter().copied().map(Some).collect();
                    if committed != expected {
                        return Err(mismatch(format!(
                            "the committed block list ({} blocks) does not hold the file's {} parts in order (by their CRC-64)",
                            committed.len(),
                            expected.len()
                        )));
                    }
                }
                None => {
                    // No block checksum answered (not Azure's or Azurite's way): the size.
                    let location = ObjectPath::parse(&item.key).map_err(|e| Error::invalid(e.to_string()))?;
                    let meta = store.inner.head(&location).await.map_err(|e| store.classify(&e))?;
                    if meta.size != hashes.size {
                        return Err(mismatch(format!("the service holds {} bytes, the file has {}", meta.size, hashes.size)));
                    }
                }
            }
        }
    }
    Ok(())
}

fn record(store: &Store, item: &Item, outcome: &Outcome, log: &dyn UploadLog, unchanged: bool) -> Result<()> {
    let upload = UploadRecord {
        destination: store.destination_root.clone(),
        key: outcome.key.clone(),
        etag: outcome.etag.clone(),
        size: outcome.size,
        content_hash: outcome.content_hash.clone(),
        source: item.source.to_string_lossy().into_owned(),
        execution_id: item.execution_id.clone(),
        credentials: store.credentials.clone(),
        unchanged,
    };
    // Runs on the thread that called `upload_all` (its `block_on`), not on a runtime worker.
    log.record(&upload).map_err(|message| Error::Record { key: item.key.clone(), message })
}
