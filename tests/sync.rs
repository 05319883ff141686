//! Cloud sync (issue 6) against real servers on loopback: moto (S3) and Azurite (Azure Blob),
//! started by each test on a free port and killed when it ends. What landed is checked with
//! the services' own SDKs (tests/servers/storage.py: boto3, azure-storage-blob), not with
//! pixelflow's code. Faults: a tiny proxy that answers every Nth request with 503 or 500
//! (tests/servers/faultproxy.py), a server killed in the middle of an export and restarted,
//! bad credentials, a missing bucket.
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

    /// The fault proxy in front of `upstream`: every `every`-th request answered `status`.
    fn proxy(python: &Path, upstream: u16, every: u32, status: u16, log: &Path) -> Server {
        let port = free_port();
        let mut cmd = Command::new(python);
        cmd.arg(servers_dir().join("faultproxy.py"))
            .args([port.to_string(), format!("127.0.0.1:{upstream}"), every.to_string(), status.to_string()])
            .arg(log);
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

/// storage.py: `create` a bucket/container, or `list` it (key -> {size, sha256, etag, metadata...}).
fn storage(python: &Path, target: &Target, command: &str, bucket: &str) -> BTreeMap<String, Value> {
    let (service, where_) = match target {
        Target::S3(endpoint) => ("s3", endpoint.to_string()),
        Target::Azure(cs) => ("az", cs.clone()),
    };
    let out = Command::new(python).arg(servers_dir().join("storage.py")).args([service, &where_, command, bucket]).output().expect("run storage.py");
    assert!(out.status.success(), "storage.py {command} {bucket} failed: {}", stderr(&out));
    if command != "list" {
        return BTreeMap::new();
    }
    let objects: Vec<Value> = serde_json::from_slice(&out.stdout).expect("storage.py JSON");
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
    let proxy = Server::proxy(&python, server.port, 0, 503, &log);
    let (direct, endpoint) = (server.url(), proxy.url());
    storage(&python, &Target::S3(&direct), "create", "photos");

    let photos = sb.path().join("photos");
    std::fs::create_dir_all(&photos).unwrap();
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    std::fs::copy(data.join("transparent.png"), photos.join("a.png")).unwrap();
    std::fs::copy(data.join("rotated-6.jpg"), photos.join("b.jpg")).unwrap();
    let workflow = Path::new(env!("CARGO_MANIFEST_DIR")).join("workflows/thumbnail.asl.json");
    let out_dir = sb.path().join("out");
    let out = sb.run(&["run", "--json", "--workflow", workflow.to_str().unwrap(), "--out", out_dir.to_str().unwrap(), photos.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));

    let target = Target::S3(&endpoint);
    let dry = pixelflow(&sb, &target, &["export", "s3://photos/site/{variant}/", "--since", "2000-01-01", "--dry-run"]);
    assert!(dry.status.success(), "{}", stderr(&dry));
    assert_eq!(put_count(&log), 0, "a dry run sends nothing");
    let keys: Vec<String> = stdout_json(&dry)["objects"].as_array().unwrap().iter().map(|o| o["key"].as_str().unwrap().to_string()).collect();
    assert_eq!(keys, ["site/thumbnail/a.jpg", "site/thumbnail/b.jpg"], "the thumbnails, never the originals");

    let out = pixelflow(&sb, &target, &["export", "s3://photos/site/{variant}/", "--since", "2000-01-01"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report = stdout_json(&out);
    assert_eq!((report["uploaded"].as_u64(), report["failed"].as_u64()), (Some(2), Some(0)), "{report}");
    assert_eq!(put_count(&log), 2);

    let listed = storage(&python, &Target::S3(&direct), "list", "photos");
    assert_eq!(listed.keys().collect::<Vec<_>>(), ["site/thumbnail/a.jpg", "site/thumbnail/b.jpg"]);
    let h = history(&sb);
    for name in ["a.jpg", "b.jpg"] {
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
    let big = sb.path().join("made/big.bin");
    std::fs::write(&big, (0..17 * 1024 * 1024u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect::<Vec<u8>>()).unwrap();
    files.push(big);
    record_outputs(&sb, &files, "v");

    let s3 = Server::moto(&moto);
    let s3_log = sb.path().join("s3-proxy.log");
    let s3_proxy = Server::proxy(&python, s3.port, 3, 503, &s3_log);
    let direct = s3.url();
    storage(&python, &Target::S3(&direct), "create", "flaky");
    let az = Server::azurite(&azurite, free_port(), None);
    let az_log = sb.path().join("az-proxy.log");
    let az_proxy = Server::proxy(&python, az.port, 3, 500, &az_log);
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
