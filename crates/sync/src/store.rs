//! Opening a destination's object store: credentials the way each ecosystem finds them, the
//! retry policy, and one shared tokio runtime. Secrets are read here and nowhere else; what
//! leaves this module is a [`Store`] whose [`Store::credentials`] names where they came from
//! (a profile, the environment, a connection string) but never holds them, and whose errors
//! pass through a [`Redactor`].
//!
//! * **S3** (`s3://`): `AWS_*` environment variables (`AWS_ACCESS_KEY_ID`,
//!   `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION`/`AWS_DEFAULT_REGION`,
//!   `AWS_ENDPOINT_URL`), else the profile (`profile` parameter, `AWS_PROFILE`, else `default`)
//!   of `~/.aws/credentials` and `~/.aws/config` (`AWS_SHARED_CREDENTIALS_FILE`,
//!   `AWS_CONFIG_FILE`). A custom endpoint (MinIO, R2, Ceph, moto) uses path-style addressing.
//! * **Azure** (`az://`): `AZURE_STORAGE_CONNECTION_STRING` (account key, SAS, `BlobEndpoint`,
//!   or `UseDevelopmentStorage=true` for Azurite), else `AZURE_STORAGE_ACCOUNT`/`_KEY`,
//!   `AZURE_STORAGE_SAS_TOKEN` and the `AZURE_STORAGE_*` variables object_store reads
//!   (`AZURE_STORAGE_USE_EMULATOR=true` for Azurite at `AZURITE_BLOB_STORAGE_URL`).
//!
//! Retries: every request is retried by object_store on connection errors, 408, 429 and 5xx
//! with exponential backoff and full jitter (100 ms doubling to 15 s) for up to
//! [`RETRY_TIMEOUT`] (`PIXELFLOW_SYNC_RETRY_TIMEOUT` seconds overrides it).

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use object_store::aws::{AmazonS3Builder, Checksum};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::client::{HttpClient, HttpConnector, HttpError, HttpErrorKind, HttpRequest, HttpResponse, HttpService, ReqwestConnector};
use object_store::{BackoffConfig, ClientOptions, ObjectStore, RetryConfig};

use crate::destination::{Destination, Service};
use crate::error::{Error, Result};

/// How long one request is retried before its error is reported.
pub const RETRY_TIMEOUT: Duration = Duration::from_secs(120);
/// Environment variable overriding [`RETRY_TIMEOUT`], in seconds.
pub const RETRY_TIMEOUT_ENV: &str = "PIXELFLOW_SYNC_RETRY_TIMEOUT";
/// At most this many retries of one request.
pub const MAX_RETRIES: usize = 10;

/// The runtime every store runs on, built on first use; the synchronous step and export
/// `block_on` it.
pub(crate) fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("pixelflow-sync")
            .enable_all()
            .build()
            .expect("the sync runtime starts (only fails when the OS refuses threads)")
    })
}

/// Per-destination settings that are not secrets (they may sit in a workflow).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct StoreOptions {
    /// AWS profile name (S3).
    pub profile: Option<String>,
    /// AWS region (S3).
    pub region: Option<String>,
    /// A custom endpoint: an S3-compatible server or an Azure blob endpoint.
    pub endpoint: Option<String>,
    /// Credentials handed over by the caller (the desktop app's cloud profiles, whose secret
    /// lives in the OS keychain); they win over the environment and `~/.aws`.
    pub credentials: Option<Credentials>,
}

/// Credentials given directly. Held in memory only: `Debug` shows no secret, and nothing here
/// stores or logs them (their values are redacted from error messages).
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum Credentials {
    S3 { access_key_id: String, secret_access_key: String },
    AzureKey { account: String, key: String },
    AzureSas { account: String, sas: String },
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::S3 { access_key_id, .. } => write!(f, "S3 {{ access_key_id: {access_key_id}, secret_access_key: <redacted> }}"),
            Credentials::AzureKey { account, .. } => write!(f, "AzureKey {{ account: {account}, key: <redacted> }}"),
            Credentials::AzureSas { account, .. } => write!(f, "AzureSas {{ account: {account}, sas: <redacted> }}"),
        }
    }
}

/// An opened destination.
#[derive(Debug, Clone)]
pub struct Store {
    pub destination_root: String,
    pub service: Service,
    pub(crate) inner: Arc<dyn ObjectStore>,
    /// The checksums the service answered (computed over the bytes it stored; see
    /// [`ChecksumCapture`]), by request path; each is taken by the upload that checks it.
    pub(crate) checksums: Arc<Mutex<Checksums>>,
    /// Where the credentials came from, without them: `env`, `profile default`, ...
    pub credentials: String,
    pub(crate) redactor: Redactor,
}

/// Opens (or reuses: stores are cached per destination and options, so connections are kept
/// across the step's calls) the store of a destination.
pub fn open(destination: &Destination, options: &StoreOptions) -> Result<Arc<Store>> {
    type Stores = HashMap<(String, StoreOptions), Arc<Store>>;
    static CACHE: OnceLock<Mutex<Stores>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let key = (destination.root(), options.clone());
    if let Some(store) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return Ok(store.clone());
    }
    let store = Arc::new(match destination.service {
        Service::S3 => open_s3(destination, options)?,
        Service::Azure => open_azure(destination, options)?,
    });
    cache.lock().unwrap_or_else(|e| e.into_inner()).insert(key, store.clone());
    Ok(store)
}

pub(crate) fn retry_config() -> RetryConfig {
    let timeout = std::env::var(RETRY_TIMEOUT_ENV)
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
        .unwrap_or(RETRY_TIMEOUT);
    RetryConfig {
        backoff: BackoffConfig { init_backoff: Duration::from_millis(100), max_backoff: Duration::from_secs(15), base: 2.0 },
        max_retries: MAX_RETRIES,
        retry_timeout: timeout,
    }
}

/// The HTTP client's settings (`with_client_options` replaces them whole, so plain HTTP for a
/// local endpoint is allowed here too).
fn client_options(allow_http: bool) -> ClientOptions {
    ClientOptions::new()
        .with_allow_http(allow_http)
        .with_connect_timeout(Duration::from_secs(10))
        .with_timeout(Duration::from_secs(300))
        .with_pool_max_idle_per_host(64)
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// A profile's settings from the AWS shared files.
#[derive(Debug, Default, Clone)]
pub(crate) struct AwsProfile {
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub session_token: Option<String>,
    pub region: Option<String>,
    pub endpoint_url: Option<String>,
}

fn home() -> Option<PathBuf> {
    std::env::var_os("HOME").map(PathBuf::from)
}

/// `~/.aws/credentials` and `~/.aws/config` (or the files the AWS variables name).
pub(crate) fn aws_files() -> (Option<PathBuf>, Option<PathBuf>) {
    let credentials = std::env::var_os("AWS_SHARED_CREDENTIALS_FILE").map(PathBuf::from).or_else(|| home().map(|h| h.join(".aws/credentials")));
    let config = std::env::var_os("AWS_CONFIG_FILE").map(PathBuf::from).or_else(|| home().map(|h| h.join(".aws/config")));
    (credentials, config)
}

/// Reads profile `name` from the shared files; `None` when neither file has it.
pub(crate) fn aws_profile(name: &str) -> Option<AwsProfile> {
    let (credentials, config) = aws_files();
    let mut profile = AwsProfile::default();
    let mut found = false;
    let mut apply = |pairs: Vec<(String, String)>| {
        found = true;
        for (k, v) in pairs {
            match k.as_str() {
                "aws_access_key_id" => profile.access_key_id = Some(v),
                "aws_secret_access_key" => profile.secret_access_key = Some(v),
                "aws_session_token" => profile.session_token = Some(v),
                "region" => profile.region = Some(v),
                "endpoint_url" => profile.endpoint_url = Some(v),
                _ => {}
            }
        }
    };
    // config first, so the credentials file wins where both set a key.
    if let Some(text) = config.and_then(|p| std::fs::read_to_string(p).ok()) {
        let section = if name == "default" { "default".to_string() } else { format!("profile {name}") };
        if let Some(pairs) = ini_section(&text, &section) {
            apply(pairs);
        }
    }
    if let Some(text) = credentials.and_then(|p| std::fs::read_to_string(p).ok()) {
        if let Some(pairs) = ini_section(&text, name) {
            apply(pairs);
        }
    }
    found.then_some(profile)
}

/// The `key = value` pairs of `[section]` in an INI text.
fn ini_section(text: &str, section: &str) -> Option<Vec<(String, String)>> {
    let mut inside = false;
    let mut seen = false;
    let mut pairs = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with(['#', ';']) {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            inside = name.trim() == section;
            seen |= inside;
            continue;
        }
        if inside {
            if let Some((k, v)) = line.split_once('=') {
                pairs.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
    }
    seen.then_some(pairs)
}

fn open_s3(destination: &Destination, options: &StoreOptions) -> Result<Store> {
    let root = destination.root();
    let mut redactor = Redactor::default();
    // Given credentials stand alone: nothing of the environment's (a session token) mixes in.
    let given = matches!(options.credentials, Some(Credentials::S3 { .. }));
    let mut builder = if given { AmazonS3Builder::new() } else { AmazonS3Builder::from_env() }.with_bucket_name(&destination.bucket);
    let profile_name = options.profile.clone().or_else(|| env("AWS_PROFILE"));
    let from_env = options.profile.is_none() && env("AWS_ACCESS_KEY_ID").is_some();
    let mut region = options.region.clone().or_else(|| env("AWS_REGION")).or_else(|| env("AWS_DEFAULT_REGION"));
    let mut endpoint = options.endpoint.clone().or_else(|| env("AWS_ENDPOINT_URL_S3")).or_else(|| env("AWS_ENDPOINT_URL"));
    let credentials = if let Some(Credentials::S3 { access_key_id, secret_access_key }) = &options.credentials {
        redactor.add(secret_access_key);
        builder = builder.with_access_key_id(access_key_id).with_secret_access_key(secret_access_key);
        format!("given (access key id {access_key_id})")
    } else if from_env {
        for var in ["AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"] {
            if let Some(secret) = env(var) {
                redactor.add(&secret);
            }
        }
        "environment (AWS_ACCESS_KEY_ID)".to_string()
    } else {
        let name = profile_name.unwrap_or_else(|| "default".to_string());
        match aws_profile(&name) {
            Some(p) => {
                if let (Some(id), Some(secret)) = (&p.access_key_id, &p.secret_access_key) {
                    redactor.add(secret);
                    builder = builder.with_access_key_id(id).with_secret_access_key(secret);
                    if let Some(token) = &p.session_token {
                        redactor.add(token);
                        builder = builder.with_token(token);
                    }
                }
                region = region.or(p.region);
                endpoint = endpoint.or(p.endpoint_url);
                format!("profile {name}")
            }
            None if options.profile.is_some() => {
                return Err(Error::AuthFailed {
                    destination: root,
                    message: format!("profile '{name}' is in neither ~/.aws/credentials nor ~/.aws/config"),
                })
            }
            // Instance or container credentials, as object_store finds them.
            None => "instance metadata or container credentials".to_string(),
        }
    };
    builder = builder.with_region(region.unwrap_or_else(|| "us-east-1".to_string()));
    if let Some(endpoint) = &endpoint {
        // S3-compatible servers: path-style (`endpoint/bucket/key`), plain HTTP when asked.
        builder = builder.with_endpoint(endpoint).with_virtual_hosted_style_request(false);
    }
    let allow_http = endpoint.as_deref().is_some_and(|e| e.starts_with("http://"));
    let checksums = Arc::new(Mutex::new(Checksums::default()));
    // `x-amz-checksum-sha256` on every PUT: S3 checks it on receipt. (Without it moto computes
    // a default CRC-64 in Python instead, which costs it more: BENCHMARKS.md, Cloud sync.)
    let inner = builder
        .with_checksum_algorithm(Checksum::SHA256)
        .with_retry(retry_config())
        .with_client_options(client_options(allow_http))
        .with_http_connector(ChecksumConnector { checksums: checksums.clone() })
        .build()
        .map_err(|e| config_error(&root, &redactor, e))?;
    Ok(Store { destination_root: root, service: Service::S3, inner: Arc::new(inner), checksums, credentials, redactor })
}

/// The parts of an Azure connection string that matter here.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct ConnectionString {
    pub development: bool,
    pub account: Option<String>,
    pub key: Option<String>,
    pub sas: Option<String>,
    pub blob_endpoint: Option<String>,
}

pub(crate) fn parse_connection_string(s: &str) -> ConnectionString {
    let mut protocol = "https".to_string();
    let mut suffix = "core.windows.net".to_string();
    let mut cs = ConnectionString::default();
    for part in s.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((k, v)) = part.split_once('=') else { continue };
        match k.trim().to_ascii_lowercase().as_str() {
            "usedevelopmentstorage" => cs.development = v.trim().eq_ignore_ascii_case("true"),
            "accountname" => cs.account = Some(v.trim().to_string()),
            "accountkey" => cs.key = Some(v.trim().to_string()),
            "sharedaccesssignature" => cs.sas = Some(v.trim().trim_start_matches('?').to_string()),
            "blobendpoint" => cs.blob_endpoint = Some(v.trim().trim_end_matches('/').to_string()),
            "defaultendpointsprotocol" => protocol = v.trim().to_string(),
            "endpointsuffix" => suffix = v.trim().to_string(),
            _ => {}
        }
    }
    if cs.blob_endpoint.is_none() && !cs.development {
        if let Some(account) = &cs.account {
            cs.blob_endpoint = Some(format!("{protocol}://{account}.blob.{suffix}"));
        }
    }
    cs
}

fn open_azure(destination: &Destination, options: &StoreOptions) -> Result<Store> {
    let root = destination.root();
    let mut redactor = Redactor::default();
    let given = match &options.credentials {
        Some(Credentials::AzureKey { account, key }) => Some((account, Some(key.as_str()), None)),
        Some(Credentials::AzureSas { account, sas }) => Some((account, None, Some(sas.as_str()))),
        _ => None,
    };
    // Given credentials stand alone: nothing of the environment's mixes in.
    let mut builder = if given.is_some() { MicrosoftAzureBuilder::new() } else { MicrosoftAzureBuilder::from_env() }.with_container_name(&destination.bucket);
    let mut endpoint = options.endpoint.clone();
    let credentials = if let Some((account, key, sas)) = given {
        builder = with_azure_account(builder, &mut redactor, account, key, sas);
        format!("given (account {account})")
    } else if let Some(text) = env("AZURE_STORAGE_CONNECTION_STRING") {
        redactor.add(&text);
        let cs = parse_connection_string(&text);
        if cs.development {
            builder = builder.with_use_emulator(true);
            "connection string (development storage)".to_string()
        } else {
            let account = cs.account.ok_or_else(|| Error::AuthFailed {
                destination: root.clone(),
                message: "AZURE_STORAGE_CONNECTION_STRING has no AccountName".into(),
            })?;
            builder = with_azure_account(builder, &mut redactor, &account, cs.key.as_deref(), cs.sas.as_deref());
            endpoint = endpoint.or(cs.blob_endpoint);
            format!("connection string (account {account})")
        }
    } else {
        if let Some(account) = env("AZURE_STORAGE_ACCOUNT") {
            builder = builder.with_account(account);
        }
        if let Some(key) = env("AZURE_STORAGE_KEY") {
            builder = builder.with_access_key(key);
        }
        if let Some(sas) = env("AZURE_STORAGE_SAS_TOKEN") {
            builder = builder.with_config(AzureConfigKey::SasKey, sas.trim_start_matches('?'));
        }
        for var in ["AZURE_STORAGE_KEY", "AZURE_STORAGE_ACCOUNT_KEY", "AZURE_STORAGE_ACCESS_KEY", "AZURE_STORAGE_MASTER_KEY", "AZURE_STORAGE_TOKEN"] {
            if let Some(secret) = env(var) {
                redactor.add(&secret);
            }
        }
        for var in ["AZURE_STORAGE_SAS_TOKEN", "AZURE_STORAGE_SAS_KEY"] {
            if let Some(secret) = env(var) {
                redactor.add_sas(&secret);
            }
        }
        match builder.get_config_value(&AzureConfigKey::AccountName) {
            Some(account) => format!("environment (account {account})"),
            None => "environment".to_string(),
        }
    };
    // Azurite through `UseDevelopmentStorage=true` or AZURE_STORAGE_USE_EMULATOR is plain HTTP.
    let emulator = builder.get_config_value(&AzureConfigKey::UseEmulator).is_some_and(|v| v == "true");
    let allow_http = emulator || endpoint.as_deref().is_some_and(|e| e.starts_with("http://"));
    if let Some(endpoint) = &endpoint {
        builder = builder.with_endpoint(endpoint.clone());
    }
    let checksums = Arc::new(Mutex::new(Checksums::default()));
    let inner = builder
        .with_retry(retry_config())
        .with_client_options(client_options(allow_http))
        .with_http_connector(ChecksumConnector { checksums: checksums.clone() })
        .build()
        .map_err(|e| config_error(&root, &redactor, e))?;
    Ok(Store { destination_root: root, service: Service::Azure, inner: Arc::new(inner), checksums, credentials, redactor })
}

/// Sets an Azure account and its key (else its SAS, with or without the leading `?`) on
/// `builder`, and has `redactor` hide the secret.
fn with_azure_account(builder: MicrosoftAzureBuilder, redactor: &mut Redactor, account: &str, key: Option<&str>, sas: Option<&str>) -> MicrosoftAzureBuilder {
    let builder = builder.with_account(account);
    if let Some(key) = key {
        redactor.add(key);
        builder.with_access_key(key)
    } else if let Some(sas) = sas {
        redactor.add_sas(sas);
        builder.with_config(AzureConfigKey::SasKey, sas.trim_start_matches('?'))
    } else {
        builder
    }
}

fn config_error(root: &str, redactor: &Redactor, e: object_store::Error) -> Error {
    let message = redactor.clean(&error_chain(&e));
    if message.contains("Missing") || message.contains("credential") || message.contains("account") {
        Error::AuthFailed { destination: root.to_string(), message: format!("no usable credentials: {message}") }
    } else {
        Error::invalid(format!("{root}: {message}"))
    }
}

/// An error and its sources, on one line.
pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

impl Store {
    /// Maps an object_store error to a sync error, naming the failure kind users act on.
    pub(crate) fn classify(&self, e: &object_store::Error) -> Error {
        let message = self.redactor.clean(&error_chain(e));
        let destination = self.destination_root.clone();
        let has = |needles: &[&str]| needles.iter().any(|n| message.contains(n));
        if has(&["PermanentRedirect", "AuthorizationHeaderMalformed", "IllegalLocationConstraint", "incorrectly configured region", "301 Moved"]) {
            return Error::WrongRegion { destination, message };
        }
        if has(&["InvalidAccessKeyId", "SignatureDoesNotMatch", "AuthenticationFailed", "AuthorizationFailure", "ExpiredToken", "InvalidToken", "Server failed to authenticate"]) {
            return Error::AuthFailed { destination, message };
        }
        if has(&["NoSuchBucket", "ContainerNotFound", "The specified container does not exist"]) {
            return Error::NotFound { destination, message };
        }
        if unreachable(e) {
            return Error::Unreachable { destination, message };
        }
        match e {
            object_store::Error::Unauthenticated { .. } => Error::AuthFailed { destination, message },
            object_store::Error::PermissionDenied { .. } => Error::PermissionDenied { destination, message },
            object_store::Error::NotFound { .. } => Error::NotFound { destination, message },
            _ => Error::Failed { destination, message },
        }
    }

    /// The end of the request path of `key` (`/container/key`, percent-encoded).
    fn request_suffix(&self, key: &str) -> String {
        let container = self.destination_root.split_once("://").map_or("", |(_, b)| b);
        format!("/{container}/{}", encode_path(key))
    }

    /// The `Content-MD5` the service answered to the last whole-blob PUT of `key`, taken (once).
    pub(crate) fn take_md5(&self, key: &str) -> Option<String> {
        let suffix = self.request_suffix(key);
        let mut checksums = self.checksums.lock().unwrap_or_else(|e| e.into_inner());
        let found = checksums.md5s.keys().find(|p| p.ends_with(&suffix)).cloned();
        found.and_then(|p| checksums.md5s.remove(&p))
    }

    /// Forgets the parts and blocks sent for `key` (before a multipart upload starts).
    pub(crate) fn clear_parts(&self, key: &str) {
        let suffix = self.request_suffix(key);
        let mut checksums = self.checksums.lock().unwrap_or_else(|e| e.into_inner());
        checksums.blocks.retain(|p, _| !p.ends_with(&suffix));
        checksums.parts.retain(|p, _| !p.ends_with(&suffix));
    }

    /// The ETag (the MD5 of what it stored) S3 answered to each part of `key` sent so far, by
    /// part number, taken (once).
    pub(crate) fn take_part_etags(&self, key: &str) -> HashMap<u32, String> {
        let suffix = self.request_suffix(key);
        let mut checksums = self.checksums.lock().unwrap_or_else(|e| e.into_inner());
        let path = checksums.parts.keys().find(|p| p.ends_with(&suffix)).cloned();
        path.and_then(|p| checksums.parts.remove(&p)).unwrap_or_default()
    }

    /// The CRC-64s the service answered to the blocks of `key` staged so far, by block id.
    pub(crate) fn staged_crc64s(&self, key: &str) -> HashMap<String, u64> {
        let suffix = self.request_suffix(key);
        let checksums = self.checksums.lock().unwrap_or_else(|e| e.into_inner());
        checksums.blocks.iter().find(|(p, _)| p.ends_with(&suffix)).map(|(_, b)| b.crc64s.clone()).unwrap_or_default()
    }

    /// The CRC-64 of each block of `key`'s committed block list, in the list's order (`None`
    /// for a block the service answered none for), taken (once); `None` when no list was sent.
    pub(crate) fn take_committed_crc64s(&self, key: &str) -> Option<Vec<Option<u64>>> {
        let suffix = self.request_suffix(key);
        let mut checksums = self.checksums.lock().unwrap_or_else(|e| e.into_inner());
        let path = checksums.blocks.keys().find(|p| p.ends_with(&suffix)).cloned()?;
        let blocks = checksums.blocks.remove(&path)?;
        let committed = blocks.committed?;
        Some(committed.iter().map(|id| blocks.crc64s.get(id).copied()).collect())
    }
}

/// What the service answered about the bytes it stored, by request path. Azure: the
/// `Content-MD5` of whole-blob PUTs, the `x-ms-content-crc64` of each Put Block and the order of
/// the block list committed. S3: the ETag of each Upload Part (the part's MD5).
#[derive(Debug, Default)]
pub(crate) struct Checksums {
    md5s: HashMap<String, String>,
    blocks: HashMap<String, Blocks>,
    parts: HashMap<String, HashMap<u32, String>>,
}

#[derive(Debug, Default)]
struct Blocks {
    /// Block id (as in the block list) -> the CRC-64 the service computed over the block.
    crc64s: HashMap<String, u64>,
    /// The block ids of the last block list committed, in order.
    committed: Option<Vec<String>>,
}

/// CRC-64/NVME, the checksum Azure Blob computes over each staged block.
pub(crate) fn crc64(bytes: &[u8]) -> u64 {
    let mut digest = crc64fast_nvme::Digest::new();
    digest.write(bytes);
    digest.sum64()
}

/// Decodes `%XX` escapes (a block id in a query string).
fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned()
}

/// The block ids of a Put Block List body, in order.
fn block_list_ids(xml: &str) -> Vec<String> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(xml);
    let (mut ids, mut in_id) = (Vec::new(), false);
    loop {
        match reader.read_event() {
            Ok(Event::Start(tag)) => in_id = matches!(tag.name().as_ref(), b"Uncommitted" | b"Committed" | b"Latest"),
            Ok(Event::Text(text)) if in_id => ids.push(String::from_utf8_lossy(&text).trim().to_string()),
            Ok(Event::End(_)) => in_id = false,
            Ok(Event::Eof) | Err(_) => return ids,
            Ok(_) => {}
        }
    }
}

/// Whether an error is a failure to connect (or a timeout) rather than an answer.
fn unreachable(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(http) = s.downcast_ref::<HttpError>() {
            return matches!(http.kind(), HttpErrorKind::Connect | HttpErrorKind::Timeout);
        }
        source = s.source();
    }
    false
}

/// A key as it appears, percent-encoded, in a request path.
fn encode_path(key: &str) -> String {
    key.split('/').map(|s| object_store::path::PathPart::from(s).as_ref().to_string()).collect::<Vec<_>>().join("/")
}

/// Replaces secrets (and each value of a SAS query) in messages with `<redacted>`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Redactor {
    secrets: Vec<String>,
}

impl Redactor {
    fn add(&mut self, secret: &str) {
        if secret.len() >= 4 {
            self.secrets.push(secret.to_string());
        }
    }

    fn add_sas(&mut self, sas: &str) {
        self.add(sas);
        for pair in sas.trim_start_matches('?').split('&') {
            if let Some((_, v)) = pair.split_once('=') {
                self.add(v);
            }
        }
    }

    pub(crate) fn clean(&self, message: &str) -> String {
        let mut out = message.to_string();
        // Longest first, so a whole SAS goes before its parts.
        let mut secrets: Vec<&String> = self.secrets.iter().collect();
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        for s in secrets {
            out = out.replace(s.as_str(), "<redacted>");
        }
        if let Some(i) = out.find("sig=") {
            let end = out[i..].find(['&', ' ', '"', '\'']).map_or(out.len(), |e| i + e);
            out.replace_range(i..end, "sig=<redacted>");
        }
        out
    }
}

/// Builds object_store's own reqwest client, wrapped in [`ChecksumCapture`].
#[derive(Debug)]
struct ChecksumConnector {
    checksums: Arc<Mutex<Checksums>>,
}

impl HttpConnector for ChecksumConnector {
    fn connect(&self, options: &ClientOptions) -> object_store::Result<HttpClient> {
        let inner = ReqwestConnector::default().connect(options)?;
        Ok(HttpClient::new(ChecksumCapture { inner, checksums: self.checksums.clone() }))
    }
}

/// Remembers, by request path, the checksums a service answers over the bytes it stored (see
/// [`Checksums`]); the upload compares them with the file's own. (Headers cannot be added
/// here: the request is already signed.)
#[derive(Debug)]
struct ChecksumCapture {
    inner: HttpClient,
    checksums: Arc<Mutex<Checksums>>,
}

/// What a request is, for [`ChecksumCapture`].
enum Put {
    Blob,
    Block(String),
    BlockList(Vec<String>),
    Part(u32),
}

#[async_trait]
impl HttpService for ChecksumCapture {
    async fn call(&self, req: HttpRequest) -> std::result::Result<HttpResponse, HttpError> {
        let put = if req.method().as_str() != "PUT" {
            None
        } else {
            match req.uri().query() {
                None => Some(Put::Blob),
                Some(q) if q.split('&').any(|p| p == "comp=block") => {
                    q.split('&').find_map(|p| p.strip_prefix("blockid=")).map(|id| Put::Block(percent_decode(id)))
                }
                Some(q) if q.split('&').any(|p| p == "comp=blocklist") => {
                    req.body().as_bytes().map(|b| Put::BlockList(block_list_ids(&String::from_utf8_lossy(b))))
                }
                Some(q) if q.split('&').any(|p| p.starts_with("uploadId=")) => {
                    q.split('&').find_map(|p| p.strip_prefix("partNumber=")).and_then(|n| n.parse().ok()).map(Put::Part)
                }
                Some(_) => None,
            }
        };
        let path = req.uri().path().to_string();
        let response = self.inner.execute(req).await?;
        if let (Some(put), true) = (put, response.status().is_success()) {
            let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
            let mut checksums = self.checksums.lock().unwrap_or_else(|e| e.into_inner());
            match put {
                Put::Blob => {
                    if let Some(md5) = header("content-md5") {
                        checksums.md5s.insert(path, md5);
                    }
                }
                Put::Block(id) => {
                    let crc = header("x-ms-content-crc64")
                        .and_then(|v| base64::engine::general_purpose::STANDARD.decode(v).ok())
                        .and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
                        .map(u64::from_le_bytes);
                    if let Some(crc) = crc {
                        checksums.blocks.entry(path).or_default().crc64s.insert(id, crc);
                    }
                }
                Put::BlockList(ids) => checksums.blocks.entry(path).or_default().committed = Some(ids),
                Put::Part(number) => {
                    if let Some(etag) = header("etag") {
                        checksums.parts.entry(path).or_default().insert(number, etag.trim_matches('"').to_ascii_lowercase());
                    }
                }
            }
        }
        Ok(response)
    }
}

/// Where credentials would come from, one line per service that has some, without secrets
/// and without touching the network (`pixelflow doctor`).
pub fn found_credentials() -> Vec<String> {
    let mut found = Vec::new();
    let mut aws = Vec::new();
    if env("AWS_ACCESS_KEY_ID").is_some() {
        aws.push("environment (AWS_ACCESS_KEY_ID)".to_string());
    }
    let (credentials, config) = aws_files();
    let mut profiles = Vec::new();
    for (file, strip) in [(credentials, ""), (config, "profile ")] {
        if let Some(text) = file.and_then(|p| std::fs::read_to_string(p).ok()) {
            for line in text.lines() {
                if let Some(name) = line.trim().strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                    let name = name.trim().strip_prefix(strip).unwrap_or(name.trim()).to_string();
                    if !profiles.contains(&name) {
                        profiles.push(name);
                    }
                }
            }
        }
    }
    if !profiles.is_empty() {
        aws.push(format!("profiles {}", profiles.join(", ")));
    }
    if let Some(endpoint) = env("AWS_ENDPOINT_URL_S3").or_else(|| env("AWS_ENDPOINT_URL")) {
        aws.push(format!("endpoint {endpoint}"));
    }
    if !aws.is_empty() {
        found.push(format!("S3: {}", aws.join("; ")));
    }
    let azure = if let Some(text) = env("AZURE_STORAGE_CONNECTION_STRING") {
        let cs = parse_connection_string(&text);
        Some(match (cs.development, cs.account) {
            (true, _) => "connection string (development storage)".to_string(),
            (false, Some(a)) => format!("connection string (account {a})"),
            (false, None) => "connection string without AccountName (unusable)".to_string(),
        })
    } else if let Some(account) = env("AZURE_STORAGE_ACCOUNT").or_else(|| env("AZURE_STORAGE_ACCOUNT_NAME")) {
        Some(format!("environment (account {account})"))
    } else if env("AZURE_STORAGE_USE_EMULATOR").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        Some("emulator (Azurite)".to_string())
    } else {
        None
    };
    if let Some(azure) = azure {
        found.push(format!("Azure: {azure}"));
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_strings() {
        let cs = parse_connection_string("DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=abc==;BlobEndpoint=http://127.0.0.1:1/devstoreaccount1/;");
        assert_eq!(cs.account.as_deref(), Some("devstoreaccount1"));
        assert_eq!(cs.key.as_deref(), Some("abc=="));
        assert_eq!(cs.blob_endpoint.as_deref(), Some("http://127.0.0.1:1/devstoreaccount1"));
        assert!(parse_connection_string("UseDevelopmentStorage=true").development);
        let cs = parse_connection_string("AccountName=acct;SharedAccessSignature=?sv=1&sig=xyz");
        assert_eq!(cs.sas.as_deref(), Some("sv=1&sig=xyz"));
        assert_eq!(cs.blob_endpoint.as_deref(), Some("https://acct.blob.core.windows.net"));
    }

    #[test]
    fn ini_sections() {
        let text = "[default]\naws_access_key_id = A\n# c\n[profile x]\nregion=eu-west-1\n";
        assert_eq!(ini_section(text, "default").unwrap(), vec![("aws_access_key_id".to_string(), "A".to_string())]);
        assert_eq!(ini_section(text, "profile x").unwrap(), vec![("region".to_string(), "eu-west-1".to_string())]);
        assert!(ini_section(text, "y").is_none());
    }

    #[test]
    fn crc64_is_azures_crc64_nvme() {
        // The CRC catalogue's check value of CRC-64/NVME.
        assert_eq!(crc64(b"123456789"), 0xae8b_1486_0a79_9888);
    }

    #[test]
    fn block_ids_from_queries_and_block_lists() {
        assert_eq!(percent_decode("YWJj%3D%3D"), "YWJj==");
        assert_eq!(percent_decode("a%2Bb%2F%zz"), "a+b/%zz");
        let xml = "<?xml version=\"1.0\"?>\n<BlockList>\n\t<Uncommitted>QQ==</Uncommitted>\n\t<Latest>Qg==</Latest>\n</BlockList>";
        assert_eq!(block_list_ids(xml), ["QQ==", "Qg=="]);
    }

    #[test]
    fn redacts_secrets_and_signatures() {
        let mut r = Redactor::default();
        r.add("s3cr3tkey");
        r.add_sas("sv=2020&sig=abcdEFG");
        let cleaned = r.clean("failed with key s3cr3tkey at https://x/c/b?sv=2020&sig=abcdEFG and sig=other&x");
        assert!(!cleaned.contains("s3cr3tkey") && !cleaned.contains("abcdEFG") && !cleaned.contains("other"), "{cleaned}");
    }
}
