//! Cloud sync (issue 6) against real servers on loopback: moto (S3) and Azurite (Azure Blob),
//! started by each test on a free port and killed when it ends. What landed is checked with
//! the services' own SDKs (tests/servers/storage.py: boto3, azure-storage-blob), not with
//! pixelflow's code. Faults: a tiny proxy (tests/servers/faultproxy.py) that answers every Nth
//! request with 503 or 500, flips a byte of a part on its way, or answers as S3 does for a
//! bucket of another region; a server killed in the middle of an export and restarted; real
//! refusals (moto with its IAM authentication on, Azurite's shared key and a read-only SAS);
//! a missing bucket.
//!
//! scripts/test.sh installs the servers and sets PIXELFLOW_MOTO, PIXELFLOW_AZURITE,
//! PIXELFLOW_PYTHON and PIXELFLOW_REQUIRE_SYNC_SERVERS=1 (then a missing server fails the
//! test instead of skipping it).

use std::collections::BTreeMap;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pixelflow_app::DataDir;
use pixelflow_history::History;
use serde_json::{json, Value};
use sha2::Digest;

use crate::util::{stderr, stdout_json, KillOnDrop, Sandbox};

/// Azurite's well-known development account.
const AZURITE_ACCOUNT: &str = "devstoreaccount1";
const AZURITE_KEY: &str = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

fn servers_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/servers")
}

/// The path in env var `var`, or `None` (the test is skipped) unless servers are required.
fn tool(var: &str) -> Option<PathBuf> {
    match std::env::var_os(var).map(PathBuf::from).filter(|p| p.exists()) {
        Some(p) => Some(p),
        None if std::env::var_os("PIXELFLOW_REQUIRE_SYNC_SERVERS").is_some_and(|v| v == "1") => {
            panic!("{var} is not set to an existing file (scripts/test.sh sets it)")
        }
        None => {
            eprintln!("skipped: {var} not set (run through scripts/test.sh)");
            None
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn wait_for_port(port: u16, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the server on port {port} exited at start: {status}");
        }
        assert!(Instant::now() < deadline, "no server on port {port} after 60 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A server process on a loopback port, killed when dropped.
struct Server {
    port: u16,
    child: Option<Child>,
}

impl Server {
    fn spawn(mut cmd: Command, port: u16) -> Server {
        let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::null()).stdin(Stdio::null()).spawn().expect("start server");
        wait_for_port(port, &mut child);
        Server { port, child: Some(child) }
    }

    fn moto(bin: &Path) -> Server {
        let port = free_port();
        let mut cmd = Command::new(bin);
        cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
        Server::spawn(cmd, port)
    }

    /// Azurite in memory, or persisting to `location` (survives a restart).
    fn azurite(bin: &Path, port: u16, location: Option<&Path>) -> Server {
        let mut cmd = Command::new(bin);
        cmd.args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string(), "--skipApiVersionCheck", "--silent"]);
        match location {
            Some(dir) => cmd.arg("--location").arg(dir),
            None => cmd.arg("--inMemoryPersistence"),
        };
        Server::spawn(cmd, port)
    }

    /// The fault proxy in front of `upstream`: every `every`-th request answered with the HTTP
    /// status `mode`, or (`corrupt`) every `every`-th part upload forwarded with a byte flipped,
    /// or (`region`) every request answered as S3 answers for a bucket of another region; at
    /// most `limit` faults.
    fn proxy(python: &Path, upstream: u16, every: u32, mode: &str, limit: Option<u32>, log: &Path) -> Server {
        let port = free_port();
        let mut cmd = Command::new(python);
        cmd.arg(servers_dir().join("faultproxy.py"))
            .args([port.to_string(), format!("127.0.0.1:{upstream}"), every.to_string(), mode.to_string()])
            .arg(log)
            .args(limit.map(|l| l.to_string()));
        Server::spawn(cmd, port)
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Stops the server as a service manager would (SIGTERM) and waits for it to exit.
    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").args(["-TERM", &c.id().to_string()]).status();
            let deadline = Instant::now() + Duration::from_secs(20);
            while c.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

fn azure_connection_string(port: u16, key: &str) -> String {
    format!("DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={key};BlobEndpoint=http://127.0.0.1:{port}/{AZURITE_ACCOUNT};")
}

/// The environment of a pixelflow command talking to `target`: S3 (moto) or Azure (Azurite).
enum Target<'a> {
    S3(&'a str),
    Azure(String),
}

fn with_env(mut cmd: Command, sb: &Sandbox, target: &Target) -> Command {
    for var in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL", "AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_ACCOUNT", "AZURE_STORAGE_KEY"] {
        cmd.env_remove(var);
    }
    cmd.env("AWS_SHARED_CREDENTIALS_FILE", sb.path().join("no-aws-credentials")).env("AWS_CONFIG_FILE", sb.path().join("no-aws-config"));
    match target {
        Target::S3(endpoint) => {
            cmd.env("AWS_ACCESS_KEY_ID", "testing").env("AWS_SECRET_ACCESS_KEY", "testing").env("AWS_REGION", "us-east-1").env("AWS_ENDPOINT_URL", endpoint);
        }
        Target::Azure(cs) => {
            cmd.env("AZURE_STORAGE_CONNECTION_STRING", cs);
        }
    }
    cmd
}

fn pixelflow(sb: &Sandbox, target: &Target, args: &[&str]) -> std::process::Output {
    let mut cmd = with_env(sb.cmd(), sb, target);
    cmd.args(args).output().expect("run pixelflow")
}

/// storage.py `args` on `target`, with the S3 keys `keys` (else moto's any); its JSON answer.
fn storage_json(python: &Path, target: &Target, args: &[&str], keys: Option<(&str, &str)>) -> Value {
    let (service, where_) = match target {
        Target::S3(endpoint) => ("s3", endpoint.to_string()),
        Target::Azure(cs) => ("az", cs.clone()),
    };
    let mut cmd = Command::new(python);
    cmd.arg(servers_dir().join("storage.py")).args([service, &where_]).args(args);
    if let Some((id, secret)) = keys {
        cmd.env("STORAGE_KEY_ID", id).env("STORAGE_SECRET", secret);
    }
    let out = cmd.output().expect("run storage.py");
    assert!(out.status.success(), "storage.py {args:?} failed: {}", stderr(&out));
    if out.stdout.is_empty() {
        return Value::Null;
    }
    serde_json::from_slice(&out.stdout).expect("storage.py JSON")
}

/// storage.py: `create` a bucket/container, or `list` it (key -> {size, sha256, etag, metadata...}).
fn storage(python: &Path, target: &Target, command: &str, bucket: &str) -> BTreeMap<String, Value> {
    listing(storage_json(python, target, &[command, bucket], None))
}

fn listing(objects: Value) -> BTreeMap<String, Value> {
    let objects = objects.as_array().cloned().unwrap_or_default();
    objects.into_iter().map(|o| (o["key"].as_str().unwrap().to_string(), o)).collect()
}

fn sha256(path: &Path) -> String {
    sha2::Sha256::digest(std::fs::read(path).unwrap()).iter().map(|b| format!("{b:02x}")).collect()
}

/// `n` files of a few KB with distinct content, in `dir`.
fn make_files(dir: &Path, n: usize, ext: &str) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir).unwrap();
    (0..n)
        .map(|i| {
            let p = dir.join(format!("file-{i:04}.{ext}"));
            let body: Vec<u8> = (0..(1024 + i * 37)).map(|j| ((i * 31 + j * 7) % 251) as u8).collect();
            std::fs::write(&p, body).unwrap();
            p
        })
        .collect()
}

/// A 17 MiB file: above the 16 MiB multipart threshold, three 8 MiB parts.
fn big_file(path: &Path) -> PathBuf {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, (0..17 * 1024 * 1024u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect::<Vec<u8>>()).unwrap();
    path.to_path_buf()
}

/// Records an execution whose output names `files` (variant `name`), as an image workflow's
/// would: a Pass state with the list as its Result.
fn record_outputs(sb: &Sandbox, files: &[PathBuf], name: &str) {
    let list: Vec<Value> = files.iter().map(|f| json!({"name": name, "path": f})).collect();
    let def = sb.json("made.asl.json", &json!({"StartAt": "Made", "States": {"Made": {"Type": "Pass", "Result": {"variants": list}, "End": true}}}));
    let out = sb.run(&["workflow", "run", def.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
}

fn history(sb: &Sandbox) -> History {
    History::open(&DataDir::new(sb.data_dir()).database()).unwrap()
}

fn put_count(log: &Path) -> usize {
    std::fs::read_to_string(log).unwrap_or_default().lines().filter(|l| l.starts_with("PUT ")).count()
}

/// Issue 6: a batch made by `pixelflow run` goes to S3 with `pixelflow export`; the objects are
/// the files byte for byte with their content type and hash metadata; the history records
/// each; a re-run sends nothing (no PUT reaches the server).
#[test]
fn export_a_batch_to_s3_then_rerun_sends_nothing() {
    let (Some(moto), Some(python)) = (tool("PIXELFLOW_MOTO"), tool("PIXELFLOW_PYTHON")) else { return };
    let server = Server::moto(&moto);
    let sb = Sandbox::new();
    let log = sb.path().join("proxy.log");
    let proxy = Server::proxy(&python, server.port, 0, "503", None, &log);
    let (direct, endpoint) = (server.url(), proxy.url());
    storage(&python, &Target::S3(&direct), "create", "photos");

    let photos = sb.path().join("photos");
    std::fs::create_dir_all(&photos).unwrap();
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    std::fs::create_dir_all(photos.join("2024")).unwrap();
    std::fs::copy(data.join("transparent.png"), photos.join("a.png")).unwrap();
    // In a subfolder: its output, and its key, keep the folder.
    std::fs::copy(data.join("rotated-6.jpg"), photos.join("2024/b.jpg")).unwrap();
    let workflow = Path::new(env!("CARGO_MANIFEST_DIR")).join("workflows/thumbnail.asl.json");
    let out_dir = sb.path().join("out");
    let out = sb.run(&["run", "--json", "--workflow", workflow.to_str().unwrap(), "--out", out_dir.to_str().unwrap(), photos.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));

    let target = Target::S3(&endpoint);
    let dry = pixelflow(&sb, &target, &["export", "s3://photos/site/{variant}/", "--since", "2000-01-01", "--dry-run"]);
    assert!(dry.status.success(), "{}", stderr(&dry));
    assert_eq!(put_count(&log), 0, "a dry run sends nothing");
    let keys: Vec<String> = stdout_json(&dry)["objects"].as_array().unwrap().iter().map(|o| o["key"].as_str().unwrap().to_string()).collect();
    assert_eq!(keys, ["site/thumbnail/2024/b.jpg", "site/thumbnail/a.jpg"], "the thumbnails, never the originals");

    let out = pixelflow(&sb, &target, &["export", "s3://photos/site/{variant}/", "--since", "2000-01-01"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report = stdout_json(&out);
    assert_eq!((report["uploaded"].as_u64(), report["failed"].as_u64()), (Some(2), Some(0)), "{report}");
    assert_eq!(put_count(&log), 2);

    let listed = storage(&python, &Target::S3(&direct), "list", "photos");
    assert_eq!(listed.keys().collect::<Vec<_>>(), ["site/thumbnail/2024/b.jpg", "site/thumbnail/a.jpg"]);
    let h = history(&sb);
    for name in ["a.jpg", "2024/b.jpg"] {
        let local = out_dir.join(name);
        let object = &listed[&format!("site/thumbnail/{name}")];
        assert_eq!(object["sha256"].as_str().unwrap(), sha256(&local), "{name}: bytes differ");
        assert_eq!(object["contentType"], "image/jpeg");
        let blake3 = blake3::hash(&std::fs::read(&local).unwrap()).to_hex().to_string();
        assert_eq!(object["metadata"]["pixelflowblake3"].as_str(), Some(blake3.as_str()));
        let row = h.upload("s3://photos", &format!("site/thumbnail/{name}")).unwrap().expect("recorded");
        assert_eq!((row.content_hash.as_str(), row.size, row.etag.as_deref()), (blake3.as_str(), object["size"].as_u64().unwrap(), object["etag"].as_str()));
        assert!(!row.credentials.contains("testing"), "no secret in the history: {}", row.credentials);
    }

    let again = pixelflow(&sb, &target, &["export", "s3://photos/site/{variant}/", "--since", "2000-01-01"]);
    assert!(again.status.success(), "{}", stderr(&again));
    let report = stdout_json(&again);
    assert_eq!((report["uploaded"].as_u64(), report["unchanged"].as_u64()), (Some(0), Some(2)), "{report}");
    assert_eq!(put_count(&log), 2, "the re-run sent no PUT");
}

/// Issue 6: the `pixelflow:sync` step at the end of a workflow uploads to Azure Blob with the
/// cache-control, metadata and content type asked for; run again, it finds them unchanged.
#[test]
fn sync_step_in_a_workflow_uploads_to_azure() {
    let (Some(azurite), Some(python)) = (tool("PIXELFLOW_AZURITE"), tool("PIXELFLOW_PYTHON")) else { return };
    let server = Server::azurite(&azurite, free_port(), None);
    let target = Target::Azure(azure_connection_string(server.port, AZURITE_KEY));
    storage(&python, &target, "create", "site");
    let sb = Sandbox::new();
    let files = make_files(&sb.path().join("made"), 3, "png");
    let variants: Vec<Value> = files.iter().map(|f| json!({"name": "web", "path": f})).collect();
    let def = sb.json(
        "publish.asl.json",
        &json!({"StartAt": "Publish", "States": {"Publish": {
            "Type": "Task", "Resource": "pixelflow:sync",
            "Parameters": {"files.$": "$.variants", "destination": "az://site/img/{variant}/", "cacheControl": "public, max-age=60",
                           "metadata": {"origin": "pixelflow-test"}},
            "End": true}}}),
    );
    let input = sb.json("input.json", &json!({"variants": variants}));
    let run = |expect_uploaded: u64| {
        let out = pixelflow(&sb, &target, &["workflow", "run", def.to_str().unwrap(), "--input", input.to_str().unwrap()]);
        assert!(out.status.success(), "{}\n{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
        let output = stdout_json(&out);
        assert_eq!(output["uploaded"].as_u64(), Some(expect_uploaded), "{output}");
        assert_eq!(output["uploaded"].as_u64().unwrap() + output["unchanged"].as_u64().unwrap(), 3);
    };
    run(3);
    let listed = storage(&python, &target, "list", "site");
    assert_eq!(listed.len(), 3);
    for f in &files {
        let o = &listed[&format!("img/web/{}", f.file_name().unwrap().to_str().unwrap())];
        assert_eq!(o["sha256"].as_str().unwrap(), sha256(f));
        assert_eq!((o["contentType"].as_str(), o["cacheControl"].as_str()), (Some("image/png"), Some("public, max-age=60")));
        assert_eq!(o["metadata"]["origin"], "pixelflow-test");
    }
    assert_eq!(history(&sb).uploads(Some("az://site")).unwrap().len(), 3, "the step records its uploads");
    run(0);
}

/// Issue 6: throttling (503) and server errors (500) on every third request are retried with
/// backoff until every object is there, byte for byte; a 17 MiB file goes up in parts (S3:
/// its multipart ETag checked; Azure: a block list) through the same faults.
#[test]
fn retries_get_through_injected_503s_and_500s() {
    let (Some(moto), Some(azurite), Some(python)) = (tool("PIXELFLOW_MOTO"), tool("PIXELFLOW_AZURITE"), tool("PIXELFLOW_PYTHON")) else { return };
    let sb = Sandbox::new();
    let mut files = make_files(&sb.path().join("made"), 20, "bin");
    files.push(big_file(&sb.path().join("made/big.bin")));
    record_outputs(&sb, &files, "v");

    let s3 = Server::moto(&moto);
    let s3_log = sb.path().join("s3-proxy.log");
    let s3_proxy = Server::proxy(&python, s3.port, 3, "503", None, &s3_log);
    let direct = s3.url();
    storage(&python, &Target::S3(&direct), "create", "flaky");
    let az = Server::azurite(&azurite, free_port(), None);
    let az_log = sb.path().join("az-proxy.log");
    let az_proxy = Server::proxy(&python, az.port, 3, "500", None, &az_log);
    let az_direct = Target::Azure(azure_connection_string(az.port, AZURITE_KEY));
    storage(&python, &az_direct, "create", "flaky");

    let proxied = s3_proxy.url();
    for (target, dest, log, check) in [
        (Target::S3(&proxied), "s3://flaky/x/", &s3_log, Target::S3(&direct)),
        (Target::Azure(azure_connection_string(az_proxy.port, AZURITE_KEY)), "az://flaky/x/", &az_log, az_direct),
    ] {
        let out = pixelflow(&sb, &target, &["export", dest, "--since", "2000-01-01", "--concurrency", "4"]);
        assert!(out.status.success(), "{dest}: {}\n{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
        let injected = std::fs::read_to_string(log).unwrap().lines().filter(|l| l.ends_with("injected")).count();
        assert!(injected >= 5, "{dest}: only {injected} faults injected");
        let listed = storage(&python, &check, "list", "flaky");
        assert_eq!(listed.len(), 21, "{dest}");
        for f in &files {
            assert_eq!(listed[&format!("x/{}", f.file_name().unwrap().to_str().unwrap())]["sha256"].as_str().unwrap(), sha256(f), "{dest}");
        }
    }
}

/// Issue 6: bad credentials and a missing bucket fail with a clear error and a non-zero exit,
/// the secret appears nowhere, and nothing is recorded as uploaded.
#[test]
fn bad_credentials_and_missing_buckets_fail_clearly_and_record_nothing() {
    let (Some(moto), Some(azurite), Some(python)) = (tool("PIXELFLOW_MOTO"), tool("PIXELFLOW_AZURITE"), tool("PIXELFLOW_PYTHON")) else { return };
    let sb = Sandbox::new();
    let files = make_files(&sb.path().join("made"), 3, "bin");
    record_outputs(&sb, &files, "v");
    let az = Server::azurite(&azurite, free_port(), None);
    storage(&python, &Target::Azure(azure_connection_string(az.port, AZURITE_KEY)), "create", "locked");
    let wrong_key = "V3JvbmdLZXlXcm9uZ0tleVdyb25nS2V5V3JvbmdLZXk=";
    let out = pixelflow(&sb, &Target::Azure(azure_connection_string(az.port, wrong_key)), &["export", "az://locked/", "--since", "2000-01-01"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report = stdout_json(&out);
    assert_eq!(report["error"]["error"], "Pixelflow.SyncAuthFailed", "{report}");
    assert_eq!(report["failed"].as_u64(), Some(3));
    let everything = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    assert!(!everything.contains(wrong_key) && !everything.contains(AZURITE_KEY), "a key leaked: {everything}");

    let s3 = Server::moto(&moto);
    let endpoint = s3.url();
    let out = pixelflow(&sb, &Target::S3(&endpoint), &["export", "s3://no-such-bucket/", "--since", "2000-01-01"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(stdout_json(&out)["error"]["error"], "Pixelflow.SyncNotFound");

    let h = history(&sb);
    assert!(h.uploads(None).unwrap().is_empty(), "nothing may be recorded as uploaded");
    let exports = h.exports().unwrap();
    assert_eq!(exports.len(), 2);
    assert!(exports.iter().all(|e| e.status == "FAILED" && e.uploaded == 0), "{exports:?}");
    let db = std::fs::read(DataDir::new(sb.data_dir()).database()).unwrap();
    assert!(!String::from_utf8_lossy(&db).contains(wrong_key), "the key is in the database");
}

/// Issue 6: the server stops in the middle of a 200-object export (Azurite persisting to disk,
/// SIGTERM); the export fails; the server comes back; the export run again ends with every
/// object present once, byte for byte, and the history agreeing with the store.
#[test]
fn export_interrupted_by_a_server_crash_resumes_to_every_object_once() {
    let (Some(azurite), Some(python)) = (tool("PIXELFLOW_AZURITE"), tool("PIXELFLOW_PYTHON")) else { return };
    let sb = Sandbox::new();
    let files = make_files(&sb.path().join("made"), 200, "bin");
    record_outputs(&sb, &files, "v");
    let (port, location) = (free_port(), sb.path().join("azurite"));
    std::fs::create_dir_all(&location).unwrap();
    let mut server = Server::azurite(&azurite, port, Some(&location));
    let target = Target::Azure(azure_connection_string(port, AZURITE_KEY));
    storage(&python, &target, "create", "batch");

    let mut cmd = with_env(sb.cmd(), &sb, &target);
    cmd.args(["export", "az://batch/run/", "--since", "2000-01-01", "--concurrency", "2"])
        .env(pixelflow_sync::store::RETRY_TIMEOUT_ENV, "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let export = KillOnDrop::spawn(cmd);
    let h = history(&sb);
    let deadline = Instant::now() + Duration::from_secs(120);
    while h.uploads(Some("az://batch")).unwrap().len() < 30 {
        assert!(Instant::now() < deadline, "the export made no progress");
        std::thread::sleep(Duration::from_millis(20));
    }
    server.stop();
    let out = export.wait_with_output();
    let first = h.uploads(Some("az://batch")).unwrap().len();
    assert_eq!(out.status.code(), Some(1), "the export must fail when the server dies: {}", stderr(&out));
    assert!(first < 200, "the server died too late to test anything ({first} uploaded)");

    let _server = Server::azurite(&azurite, port, Some(&location));
    // Azurite persists its metadata every few seconds: a kill may lose the container too.
    storage(&python, &target, "create", "batch");
    let out = pixelflow(&sb, &target, &["export", "az://batch/run/", "--since", "2000-01-01"]);
    assert!(out.status.success(), "{}\n{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    let report = stdout_json(&out);
    assert_eq!(report["failed"].as_u64(), Some(0));
    assert!(report["unchanged"].as_u64().unwrap() > 0, "the resumed export skipped nothing: {report}");

    let listed = storage(&python, &target, "list", "batch");
    assert_eq!(listed.len(), 200, "every object once");
    let rows = h.uploads(Some("az://batch")).unwrap();
    assert_eq!(rows.len(), 200);
    for row in rows {
        let object = &listed[&row.key];
        let source = PathBuf::from(&row.source);
        assert_eq!(object["sha256"].as_str().unwrap(), sha256(&source), "{}", row.key);
        let unquote = |e: &str| e.trim_matches('"').to_string();
        assert_eq!(row.etag.as_deref().map(unquote), object["etag"].as_str().map(unquote), "{}: the history's ETag is not the object's", row.key);
        assert_eq!(row.content_hash, blake3::hash(&std::fs::read(&source).unwrap()).to_hex().to_string());
    }
}

/// Issue 6: a part that reaches the server corrupted (the proxy flips a byte, as a faulty
/// network would) is caught before the commit by the checksum the server computed over what it
/// stored (Azure: each Put Block's CRC-64; S3: each Upload Part's ETag, the part's MD5), and the
/// file is sent again; when every part arrives corrupted, the export fails with
/// SyncIntegrityFailed, commits nothing and records nothing.
#[test]
fn corrupted_parts_are_caught_before_the_commit_and_sent_again() {
    let (Some(moto), Some(azurite), Some(python)) = (tool("PIXELFLOW_MOTO"), tool("PIXELFLOW_AZURITE"), tool("PIXELFLOW_PYTHON")) else { return };
    let sb = Sandbox::new();
    let big = big_file(&sb.path().join("made/big.bin"));
    record_outputs(&sb, std::slice::from_ref(&big), "v");
    let s3 = Server::moto(&moto);
    let az = Server::azurite(&azurite, free_port(), None);
    let s3_direct = s3.url();
    let h = history(&sb);
    for (scheme, port, direct) in [("s3", s3.port, Target::S3(&s3_direct)), ("az", az.port, Target::Azure(azure_connection_string(az.port, AZURITE_KEY)))] {
        fn through<'a>(scheme: &str, url: &'a str, port: u16) -> Target<'a> {
            match scheme {
                "s3" => Target::S3(url),
                _ => Target::Azure(azure_connection_string(port, AZURITE_KEY)),
            }
        }
        // A commit: Azure's Put Block List, S3's Complete Multipart Upload.
        let commits = |log: &Path| {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            text.lines().filter(|l| l.contains("comp=blocklist") || (l.starts_with("POST ") && l.contains("uploadId="))).count()
        };
        let corrupted = |log: &Path| std::fs::read_to_string(log).unwrap_or_default().lines().filter(|l| l.ends_with(" corrupted")).count();

        storage(&python, &direct, "create", "once");
        let log = sb.path().join(format!("{scheme}-once.log"));
        let proxy = Server::proxy(&python, port, 2, "corrupt", Some(1), &log);
        let out = pixelflow(&sb, &through(scheme, &proxy.url(), proxy.port), &["export", &format!("{scheme}://once/"), "--since", "2000-01-01"]);
        assert!(out.status.success(), "{scheme}: {}\n{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
        assert_eq!(stdout_json(&out)["uploaded"].as_u64(), Some(1));
        assert_eq!((corrupted(&log), commits(&log)), (1, 1), "{scheme}: one part corrupted, only the good attempt committed");
        assert!(stderr(&out).contains("integrity check failed"), "{scheme}: the retry is logged: {}", stderr(&out));
        let listed = storage(&python, &direct, "list", "once");
        assert_eq!(listed["big.bin"]["sha256"].as_str().unwrap(), sha256(&big), "{scheme}: the stored object is the file");
        assert!(h.upload(&format!("{scheme}://once"), "big.bin").unwrap().is_some());

        storage(&python, &direct, "create", "always");
        let log = sb.path().join(format!("{scheme}-always.log"));
        let proxy = Server::proxy(&python, port, 1, "corrupt", None, &log);
        let out = pixelflow(&sb, &through(scheme, &proxy.url(), proxy.port), &["export", &format!("{scheme}://always/"), "--since", "2000-01-01"]);
        assert_eq!(out.status.code(), Some(1), "{scheme}: {}", stderr(&out));
        let error = &stdout_json(&out)["error"];
        assert_eq!(error["error"], "Pixelflow.SyncIntegrityFailed", "{scheme}: {error}");
        assert!(error["cause"].as_str().unwrap().contains("nothing was committed"), "{scheme}: {error}");
        assert_eq!(commits(&log), 0, "{scheme}: a corrupted upload was committed");
        assert!(storage(&python, &direct, "list", "always").is_empty(), "{scheme}: an object was left");
        assert!(h.uploads(Some(&format!("{scheme}://always"))).unwrap().is_empty(), "{scheme}: recorded as uploaded");
    }
}

/// Issue 6: real refusals from the servers: moto with its IAM authentication on (a user allowed
/// only to read, an access key that does not exist, a wrong secret) and Azurite with a read-only
/// SAS; and a bucket in another region, which moto does not emulate for object requests (the
/// proxy answers as S3 does: a bodiless 301 to HEAD, AuthorizationHeaderMalformed naming the
/// region to the rest). Each fails with its own error naming the cause and exit code 1, and
/// nothing is recorded as uploaded; the same server then takes the upload from a user allowed
/// to write (the refusals were the policy's).
#[test]
fn permission_denied_bad_keys_and_wrong_region_fail_clearly_and_record_nothing() {
    let (Some(moto), Some(azurite), Some(python)) = (tool("PIXELFLOW_MOTO"), tool("PIXELFLOW_AZURITE"), tool("PIXELFLOW_PYTHON")) else { return };
    let sb = Sandbox::new();
    let files = make_files(&sb.path().join("made"), 3, "bin");
    record_outputs(&sb, &files, "v");

    let s3 = Server::moto(&moto);
    let endpoint = s3.url();
    let keys = storage_json(&python, &Target::S3(&endpoint), &["users", "locked"], None);
    let key = |user: &str, field: &str| keys[user][field].as_str().unwrap().to_string();
    let (reader, reader_secret) = (key("reader", "id"), key("reader", "secret"));
    let log = sb.path().join("region.log");
    let region_proxy = Server::proxy(&python, s3.port, 0, "region", None, &log);
    let region_endpoint = region_proxy.url();

    let az = Server::azurite(&azurite, free_port(), None);
    let az_full = Target::Azure(azure_connection_string(az.port, AZURITE_KEY));
    storage(&python, &az_full, "create", "readonly");
    let sas = storage_json(&python, &az_full, &["sas", "readonly", "rl"], None);
    let sas = sas.as_str().unwrap();
    let az_read_only = Target::Azure(format!("AccountName={AZURITE_ACCOUNT};BlobEndpoint=http://127.0.0.1:{}/{AZURITE_ACCOUNT};SharedAccessSignature={sas}", az.port));

    /// One refusal: who asks, where, the error expected and what its message must name.
    struct Case<'a> {
        label: &'a str,
        target: Target<'a>,
        keys: Option<(&'a str, &'a str)>,
        dest: &'a str,
        error: &'a str,
        cause: &'a str,
    }
    let wrong_secret = "d3JvbmcgYW5kIGxvbmcgZW5vdWdoIHRvIGxvb2sgcmVhbA";
    let cases = [
        Case { label: "read-only IAM user", target: Target::S3(&endpoint), keys: Some((&reader, &reader_secret)), dest: "s3://locked/", error: "Pixelflow.SyncPermissionDenied", cause: "AccessDenied" },
        Case { label: "unknown access key", target: Target::S3(&endpoint), keys: Some(("AKIAEXAMPLEUNKNOWN00", &reader_secret)), dest: "s3://locked/", error: "Pixelflow.SyncAuthFailed", cause: "InvalidAccessKeyId" },
        Case { label: "wrong secret", target: Target::S3(&endpoint), keys: Some((&reader, wrong_secret)), dest: "s3://locked/", error: "Pixelflow.SyncAuthFailed", cause: "SignatureDoesNotMatch" },
        Case { label: "read-only SAS", target: az_read_only, keys: None, dest: "az://readonly/", error: "Pixelflow.SyncPermissionDenied", cause: "AuthorizationPermissionMismatch" },
        Case { label: "bucket in another region", target: Target::S3(&region_endpoint), keys: None, dest: "s3://locked/", error: "Pixelflow.SyncWrongRegion", cause: "region" },
    ];
    for Case { label, target, keys, dest, error, cause } in &cases {
        let mut cmd = with_env(sb.cmd(), &sb, target);
        if let Some((id, secret)) = keys {
            cmd.env("AWS_ACCESS_KEY_ID", id).env("AWS_SECRET_ACCESS_KEY", secret);
        }
        let out = cmd.args(["export", dest, "--since", "2000-01-01"]).output().expect("run pixelflow");
        assert_eq!(out.status.code(), Some(1), "{label}: {}", stderr(&out));
        let report = stdout_json(&out);
        assert_eq!(report["error"]["error"], *error, "{label}: {report}");
        let message = report["error"]["cause"].as_str().unwrap();
        assert!(message.contains(cause), "{label}: the error does not name the cause: {message}");
        assert_eq!((report["uploaded"].as_u64(), report["failed"].as_u64()), (Some(0), Some(3)), "{label}: {report}");
        let everything = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
        assert!(!everything.contains(&reader_secret) && !everything.contains("sig="), "{label}: a secret leaked: {everything}");
    }
    let h = history(&sb);
    assert!(h.uploads(None).unwrap().is_empty(), "nothing may be recorded as uploaded");
    assert!(h.exports().unwrap().iter().all(|e| e.status == "FAILED" && e.uploaded == 0));
    let admin = (key("admin", "id"), key("admin", "secret"));
    assert!(listing(storage_json(&python, &Target::S3(&endpoint), &["list", "locked"], Some((&admin.0, &admin.1)))).is_empty());
    assert!(storage(&python, &az_full, "list", "readonly").is_empty());

    let mut cmd = with_env(sb.cmd(), &sb, &Target::S3(&endpoint));
    let out = cmd.env("AWS_ACCESS_KEY_ID", &admin.0).env("AWS_SECRET_ACCESS_KEY", &admin.1).args(["export", "s3://locked/", "--since", "2000-01-01"]).output().unwrap();
    assert!(out.status.success(), "the admin user may write: {}", stderr(&out));
    assert_eq!(h.uploads(Some("s3://locked")).unwrap().len(), 3);

    // The desktop app's path: a cloud profile whose secret is in the keychain. Its credentials
    // are the ones sent (whatever the environment holds): the reader's are refused, the admin's
    // write.
    struct Keychain(String);
    impl pixelflow_app::profiles::Keychain for Keychain {
        fn set(&self, _: &str, _: &str) -> Result<(), pixelflow_app::profiles::KeychainError> {
            Ok(())
        }
        fn get(&self, _: &str) -> Result<Option<String>, pixelflow_app::profiles::KeychainError> {
            Ok(Some(self.0.clone()))
        }
        fn delete(&self, _: &str) -> Result<(), pixelflow_app::profiles::KeychainError> {
            Ok(())
        }
    }
    let app = pixelflow_app::App::open(DataDir::new(sb.data_dir())).unwrap();
    let ids: Vec<String> = h.list_executions(&Default::default()).unwrap().into_iter().map(|e| e.id).collect();
    for (name, id, secret, allowed) in [("as-reader", &reader, &reader_secret, false), ("as-admin", &admin.0, &admin.1, true)] {
        let keychain = Keychain(secret.clone());
        let profile = pixelflow_app::profiles::CloudProfile {
            name: name.into(),
            service: pixelflow_app::profiles::CloudService::S3,
            bucket: "locked".into(),
            prefix: name.into(),
            endpoint: Some(endpoint.clone()),
            region: None,
            access_key_id: Some(id.clone()),
            aws_profile: None,
            account: None,
            azure_secret: None,
        };
        pixelflow_app::profiles::save(&app, &profile, None, &keychain).unwrap();
        let request = pixelflow_app::desktop::ExportRequest { executions: ids.clone(), profile: Some(name.into()), ..Default::default() };
        let options = pixelflow_app::desktop::export_options(&app, &request, &keychain).unwrap();
        let report = pixelflow_app::export::run(&app, &options, &pixelflow_engine::CancelToken::new()).unwrap();
        if allowed {
            assert!(report.succeeded() && report.uploaded == 3, "{name}: {report:?}");
        } else {
            assert_eq!(report.error.as_ref().map(|e| e.error.as_str()), Some("Pixelflow.SyncPermissionDenied"), "{name}: {report:?}");
        }
        // The CLI's 3, then the admin profile's 3; nothing for the refused reader.
        assert_eq!(h.uploads(None).unwrap().len(), if allowed { 6 } else { 3 }, "{name}");
    }
    // The same on Azure: the account key from the keychain, no connection string anywhere.
    let keychain = Keychain(AZURITE_KEY.to_string());
    let profile = pixelflow_app::profiles::CloudProfile {
        name: "azure-key".into(),
        service: pixelflow_app::profiles::CloudService::Azure,
        bucket: "readonly".into(),
        prefix: "given".into(),
        endpoint: Some(format!("http://127.0.0.1:{}/{AZURITE_ACCOUNT}", az.port)),
        region: None,
        access_key_id: None,
        aws_profile: None,
        account: Some(AZURITE_ACCOUNT.into()),
        azure_secret: Some("key".into()),
    };
    pixelflow_app::profiles::save(&app, &profile, None, &keychain).unwrap();
    let request = pixelflow_app::desktop::ExportRequest { executions: ids, profile: Some("azure-key".into()), ..Default::default() };
    let options = pixelflow_app::desktop::export_options(&app, &request, &keychain).unwrap();
    let report = pixelflow_app::export::run(&app, &options, &pixelflow_engine::CancelToken::new()).unwrap();
    assert!(report.succeeded() && report.uploaded == 3, "azure-key: {report:?}");
    assert_eq!(storage(&python, &az_full, "list", "readonly").len(), 3);
}
