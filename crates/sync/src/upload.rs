//! Uploading files to a [`Store`]: skip-if-unchanged, single or multipart PUT, integrity
//! check, and the record of every confirmed upload.
//!
//! For each file: hash it (blake3 for identity, MD5 for the integrity check); unless
//! `overwrite` is `always` or a listing of its folder showed the key absent (see
//! [`absent_keys`]), HEAD the key and skip the upload when the object's
//! `pixelflowblake3` metadata and size match; PUT it (multipart above
//! [`UploadOptions::multipart_threshold`]) with the hash as metadata; verify what the
//! service answered (S3: the ETag is the MD5, or for multipart the MD5 of the parts' MD5s;
//! Azure: the `Content-MD5` it computed); and only then hand the upload to the [`UploadLog`].
//! An object that fails verification is deleted, so no later run can skip it as unchanged.
//! Files run concurrently, at most [`UploadOptions::concurrency`] at a time.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use base64::Engine;
use bytes::Bytes;
use futures::StreamExt;
use md5::{Digest, Md5};
use object_store::path::Path as ObjectPath;
use object_store::{Attribute, Attributes, GetOptions, ObjectStore, ObjectStoreExt, PutMultipartOptions, PutOptions, PutPayload, WriteMultipart};
use serde::Serialize;
use tokio::io::AsyncReadExt;

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

/// A file's hashes: blake3 (identity), MD5 of the whole, and MD5 of each part.
struct Hashes {
    size: u64,
    blake3: String,
    md5: [u8; 16],
    part_md5s: Vec<[u8; 16]>,
    /// The content, for files small enough for one PUT.
    content: Option<Bytes>,
}

async fn hash_file(path: &Path, options: &UploadOptions) -> Result<Hashes> {
    let meta = tokio::fs::metadata(path).await.map_err(|e| Error::io(path, e))?;
    if !meta.is_file() {
        return Err(Error::io(path, std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file")));
    }
    if meta.len() < options.multipart_threshold {
        let content = Bytes::from(tokio::fs::read(path).await.map_err(|e| Error::io(path, e))?);
        let md5: [u8; 16] = Md5::digest(&content).into();
        return Ok(Hashes { size: content.len() as u64, blake3: blake3::hash(&content).to_hex().to_string(), md5, part_md5s: vec![md5], content: Some(content) });
    }
    let mut file = tokio::fs::File::open(path).await.map_err(|e| Error::io(path, e))?;
    let (mut b3, mut whole) = (blake3::Hasher::new(), Md5::new());
    let mut part_md5s = Vec::new();
    let mut size = 0u64;
    loop {
        let part = read_part(&mut file, options.part_size).await.map_err(|e| Error::io(path, e))?;
        if part.is_empty() {
            break;
        }
        size += part.len() as u64;
        b3.update(&part);
        whole.update(&part);
        part_md5s.push(Md5::digest(&part).into());
    }
    Ok(Hashes { size, blake3: b3.finalize().to_hex().to_string(), md5: whole.finalize().into(), part_md5s, content: None })
}

/// Reads up to `size` bytes (fewer only at the end of the file).
async fn read_part(file: &mut tokio::fs::File, size: usize) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; size];
    let mut filled = 0;
    while filled < size {
        let n = file.read(&mut buf[filled..]).await?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    buf.truncate(filled);
    Ok(buf)
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

async fn upload_one(store: &Store, item: &Item, options: &UploadOptions, log: &dyn UploadLog, known_absent: bool) -> Result<Outcome> {
    let location = ObjectPath::parse(&item.key).map_err(|e| Error::invalid(format!("key '{}': {e}", item.key)))?;
    let hashes = hash_file(&item.source, options).await?;
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
        Some(content) => {
            let opts = PutOptions { attributes, ..PutOptions::default() };
            store.inner.put_opts(&location, PutPayload::from_bytes(content.clone()), opts).await.map_err(|e| store.classify(&e))?
        }
        None => put_multipart(store, &location, &item.source, attributes, options).await?,
    };
    if let Err(e) = verify(store, item, &hashes, put.e_tag.as_deref(), options).await {
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

async fn put_multipart(
    store: &Store,
    location: &ObjectPath,
    source: &Path,
    attributes: Attributes,
    options: &UploadOptions,
) -> Result<object_store::PutResult> {
    let upload = store
        .inner
        .put_multipart_opts(location, PutMultipartOptions { attributes, ..PutMultipartOptions::default() })
        .await
        .map_err(|e| store.classify(&e))?;
    let mut writer = WriteMultipart::new_with_chunk_size(upload, options.part_size);
    let mut file = match tokio::fs::File::open(source).await {
        Ok(f) => f,
        Err(e) => {
            let _ = writer.abort().await;
            return Err(Error::io(source, e));
        }
    };
    loop {
        if let Err(e) = writer.wait_for_capacity(options.part_concurrency).await {
            let _ = writer.abort().await;
            return Err(store.classify(&e));
        }
        let part = match read_part(&mut file, options.part_size).await {
            Ok(p) => p,
            Err(e) => {
                let _ = writer.abort().await;
                return Err(Error::io(source, e));
            }
        };
        if part.is_empty() {
            break;
        }
        writer.put(Bytes::from(part));
    }
    writer.finish().await.map_err(|e| store.classify(&e))
}

/// Checks what the service answered against the file's MD5.
async fn verify(store: &Store, item: &Item, hashes: &Hashes, etag: Option<&str>, options: &UploadOptions) -> Result<()> {
    let mismatch = |message: String| Error::Integrity { destination: store.destination_root.clone(), key: item.key.clone(), message };
    match store.service {
        Service::S3 => {
            // An S3 ETag is the content's MD5 (single PUT) or the MD5 of the parts' MD5s with
            // the part count (multipart), except under SSE-KMS/SSE-C, where it is opaque.
            let Some(etag) = etag.map(|e| e.trim_matches('"').to_ascii_lowercase()) else { return Ok(()) };
            let expected = if hashes.content.is_some() {
                hex(&hashes.md5)
            } else {
                let mut md5 = Md5::new();
                for p in &hashes.part_md5s {
                    md5.update(p);
                }
                format!("{}-{}", hex(&md5.finalize()), hashes.part_md5s.len())
            };
            let looks_md5 = etag.len() >= 32 && etag[..32].bytes().all(|b| b.is_ascii_hexdigit());
            if looks_md5 && etag != expected {
                return Err(mismatch(format!("the service's ETag {etag} is not the MD5 {expected} of the file")));
            }
        }
        Service::Azure => {
            if hashes.content.is_some() {
                let expected = base64::engine::general_purpose::STANDARD.encode(hashes.md5);
                if let Some(answered) = store.take_md5(&item.key) {
                    if answered != expected {
                        return Err(mismatch(format!("the service's Content-MD5 {answered} is not the file's {expected}")));
                    }
                }
            } else {
                // Block lists get no whole-object MD5: check the size the service holds.
                let location = ObjectPath::parse(&item.key).map_err(|e| Error::invalid(e.to_string()))?;
                let meta = store.inner.head(&location).await.map_err(|e| store.classify(&e))?;
                if meta.size != hashes.size {
                    return Err(mismatch(format!("the service holds {} bytes, the file has {}", meta.size, hashes.size)));
                }
            }
        }
    }
    let _ = options;
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
