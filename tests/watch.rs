//! Watch folders: the rules CLI and the service (`pixelflow watch run`) as a child process.
//! Timing is never asserted: each test polls the history and the output folder with a
//! deadline, then stops the service.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::{stderr, stdout_json, KillOnDrop, Sandbox};

/// Generous: the tests normally finish in a few seconds; this only bounds a failure.
const DEADLINE: Duration = Duration::from_secs(30);

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Adds a thumbnail rule on `sb/in` writing to `sb/out`; returns its id.
fn add_rule(sb: &Sandbox, extra: &[&str]) -> i64 {
    let (folder, out) = (sb.path().join("in"), sb.path().join("out"));
    let mut args = vec!["watch", "add", s(&folder), "--workflow", "thumbnail", "--out", s(&out)];
    args.extend(extra);
    let added = sb.run(&args);
    assert_eq!(added.status.code(), Some(0), "{}", stderr(&added));
    String::from_utf8_lossy(&added.stdout).trim().parse().expect("the rule id on stdout")
}

/// Starts `pixelflow watch run`; its log goes to `sb/service-N.log`.
fn start_service(sb: &Sandbox) -> KillOnDrop {
    let n = std::fs::read_dir(sb.path()).unwrap().filter(|e| e.as_ref().is_ok_and(|e| e.file_name().to_string_lossy().starts_with("service-"))).count();
    let log = std::fs::File::create(sb.path().join(format!("service-{n}.log"))).unwrap();
    let mut cmd = sb.cmd();
    cmd.args(["watch", "run"]).env("PIXELFLOW_LOG", "info").stdout(Stdio::null()).stderr(log);
    KillOnDrop::spawn(cmd)
}

/// Stops the service as Ctrl-C would (SIGTERM) and waits for it.
fn stop_service(mut service: KillOnDrop) {
    let pid = service.child().id().to_string();
    let _ = std::process::Command::new("kill").args(["-TERM", &pid]).status();
    let deadline = Instant::now() + DEADLINE;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = service.child().try_wait() {
            assert!(status.success(), "the service stopped with {status}");
            service.0 = None;
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("the service did not stop on SIGTERM");
}

fn wait_until(sb: &Sandbox, what: &str, done: impl FnMut() -> bool) {
    wait_until_within(sb, DEADLINE, what, done)
}

fn wait_until_within(sb: &Sandbox, within: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if done() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let logs: Vec<String> = std::fs::read_dir(sb.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("service-"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .collect();
    panic!("timed out waiting for {what}; service log:\n{}", logs.join("\n---\n"));
}

/// Executions whose input mentions `text` (all of them for "").
fn executions(sb: &Sandbox, text: &str) -> Vec<Value> {
    let mut args = vec!["history", "list", "--json"];
    if !text.is_empty() {
        args.extend(["--text", text]);
    }
    stdout_json(&sb.run(&args)).as_array().cloned().unwrap_or_default()
}

fn succeeded(sb: &Sandbox, text: &str) -> usize {
    executions(sb, text).iter().filter(|e| e["status"] == "SUCCEEDED").count()
}

fn assert_jpeg(path: &Path) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(bytes.len() > 100 && bytes.starts_with(&[0xFF, 0xD8]) && bytes.ends_with(&[0xFF, 0xD9]), "{} is not a whole JPEG", path.display());
}

fn rules(sb: &Sandbox) -> Vec<Value> {
    let out = sb.run(&["watch", "list", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    stdout_json(&out).as_array().cloned().unwrap_or_default()
}

#[test]
fn rules_round_trip_through_the_cli() {
    let sb = Sandbox::new();
    let id = add_rule(&sb, &["--recursive", "--include", "*.jpg", "--include", "*.png", "--exclude", "raw/**", "--jobs", "3", "--on-success", "move"]);
    let listed = rules(&sb);
    assert_eq!(listed.len(), 1);
    let r = &listed[0];
    assert_eq!(r["id"], id);
    assert_eq!(r["folder"], s(&sb.path().join("in")));
    assert_eq!(r["output"], s(&sb.path().join("out")));
    assert_eq!(r["workflow"], "thumbnail");
    assert_eq!((r["recursive"].clone(), r["concurrency"].clone()), (Value::Bool(true), Value::from(3)));
    assert_eq!(r["include"], serde_json::json!(["*.jpg", "*.png"]));
    assert_eq!(r["exclude"], serde_json::json!(["raw/**"]));
    assert_eq!((r["onSuccess"].as_str(), r["onFailure"].as_str()), (Some("move"), Some("leave")));
    assert_eq!((r["paused"].clone(), r["lastError"].clone()), (Value::Bool(false), Value::Null));

    assert_eq!(sb.run(&["watch", "pause", &id.to_string()]).status.code(), Some(0));
    assert_eq!(rules(&sb)[0]["paused"], true);
    let text = String::from_utf8_lossy(&sb.run(&["watch", "list"]).stdout).into_owned();
    assert!(text.contains("paused"), "{text}");
    assert_eq!(sb.run(&["watch", "resume", &id.to_string()]).status.code(), Some(0));
    assert_eq!(rules(&sb)[0]["paused"], false);

    // A workflow file is stored by its absolute path; a bad one is refused.
    let wf = Path::new(env!("CARGO_MANIFEST_DIR")).join("workflows/thumbnail.asl.json");
    let second = sb.run(&["watch", "add", s(&sb.path().join("other")), "--workflow", s(&wf)]);
    assert_eq!(second.status.code(), Some(0), "{}", stderr(&second));
    assert_eq!(rules(&sb)[1]["workflow"], s(&wf));
    for bad in [
        vec!["watch", "add", "x", "--workflow", "no-such-workflow"],
        vec!["watch", "add", "x", "--include", "a[b"],
        vec!["watch", "add", "x", "--on-success", "shred"],
        vec!["watch", "add", "x", "--jobs", "0"],
        vec!["watch", "remove", "999"],
        vec!["watch", "pause", "999"],
    ] {
        let out = sb.run(&bad);
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {}", stderr(&out));
    }

    assert_eq!(sb.run(&["watch", "remove", &id.to_string()]).status.code(), Some(0));
    assert_eq!(rules(&sb).len(), 1);
}

#[test]
fn a_dropped_file_is_processed_and_moved_without_overwriting() {
    let sb = Sandbox::new();
    let folder = sb.path().join("in");
    std::fs::create_dir_all(&folder).unwrap();
    add_rule(&sb, &["--on-success", "move"]);
    let service = start_service(&sb);

    std::fs::copy(data("large.jpg"), folder.join("photo.jpg")).unwrap();
    wait_until(&sb, "photo.jpg processed and moved", || folder.join("done/photo.jpg").is_file());
    assert_jpeg(&sb.path().join("out/photo.jpg"));
    assert!(!folder.join("photo.jpg").exists());
    assert_eq!(succeeded(&sb, ""), 1);

    // Another photo of the same name, as a camera gives after 9,999 shots: renamed to
    // photo-1.jpg, so that its thumbnail does not replace the first one's, then processed and
    // moved beside the first.
    let first_thumbnail = std::fs::read(sb.path().join("out/photo.jpg")).unwrap();
    std::fs::copy(data("rotated-6.jpg"), folder.join("photo.jpg")).unwrap();
    wait_until(&sb, "the second photo.jpg moved", || folder.join("done/photo-1.jpg").is_file());
    assert_eq!(std::fs::read(folder.join("done/photo.jpg")).unwrap(), std::fs::read(data("large.jpg")).unwrap());
    assert_eq!(std::fs::read(folder.join("done/photo-1.jpg")).unwrap(), std::fs::read(data("rotated-6.jpg")).unwrap());
    assert_eq!(std::fs::read(sb.path().join("out/photo.jpg")).unwrap(), first_thumbnail);
    assert_jpeg(&sb.path().join("out/photo-1.jpg"));
    assert_eq!(succeeded(&sb, "photo-1.jpg"), 1);
    assert_eq!(succeeded(&sb, ""), 2);

    // A copy of a photo already processed is not processed again, and leaves the folder too.
    std::fs::copy(data("large.jpg"), folder.join("again.jpg")).unwrap();
    wait_until(&sb, "the copy moved", || folder.join("done/again.jpg").is_file());
    assert_eq!(executions(&sb, "").len(), 2);
    stop_service(service);
}

#[test]
fn a_photo_whose_thumbnail_would_replace_another_ones_is_refused_with_the_reason() {
    let sb = Sandbox::new();
    let folder = sb.path().join("in");
    std::fs::create_dir_all(&folder).unwrap();
    add_rule(&sb, &[]);
    let service = start_service(&sb);
    std::fs::copy(data("large.jpg"), folder.join("a.jpg")).unwrap();
    wait_until(&sb, "a.jpg processed", || succeeded(&sb, "a.jpg") == 1);
    let thumbnail = std::fs::read(sb.path().join("out/a.jpg")).unwrap();

    // The same name with another extension: its output would be out/a.jpg too.
    std::fs::copy(data("transparent.png"), folder.join("a.png")).unwrap();
    wait_until(&sb, "a.png refused", || executions(&sb, "a.png").len() == 1);
    let refused = &executions(&sb, "a.png")[0];
    assert_eq!(refused["status"], "FAILED", "{refused}");
    let shown = stdout_json(&sb.run(&["history", "show", refused["id"].as_str().unwrap(), "--json"]));
    assert_eq!(shown["execution"]["error"], "Pixelflow.OutputConflict", "{shown}");
    let cause = shown["execution"]["cause"].as_str().unwrap();
    assert!(cause.contains(folder.join("a.jpg").to_str().unwrap()), "{cause}");
    assert_eq!(std::fs::read(sb.path().join("out/a.jpg")).unwrap(), thumbnail, "the first thumbnail is left as it was");
    assert!(folder.join("a.png").is_file(), "the original stays where it was");

    // a.jpg itself edited in place: the same photo, so its thumbnail is made again.
    std::fs::copy(data("rotated-6.jpg"), folder.join("a.jpg")).unwrap();
    wait_until(&sb, "the edited a.jpg processed", || succeeded(&sb, "a.jpg") == 2);
    assert_ne!(std::fs::read(sb.path().join("out/a.jpg")).unwrap(), thumbnail);
    stop_service(service);
}

#[test]
fn catch_up_then_restart_skips_processed_content_and_redoes_modified() {
    let sb = Sandbox::new();
    let folder = sb.path().join("in");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::copy(data("large.jpg"), folder.join("a.jpg")).unwrap();
    std::fs::copy(data("transparent.png"), folder.join("b.png")).unwrap();
    add_rule(&sb, &["--jobs", "1"]);

    let service = start_service(&sb);
    wait_until(&sb, "both files caught up", || succeeded(&sb, "") == 2);
    assert_jpeg(&sb.path().join("out/a.jpg"));
    assert_jpeg(&sb.path().join("out/b.jpg"));
    stop_service(service);

    // While stopped: b.png is renamed (same content), a.jpg gets new content.
    std::fs::rename(folder.join("b.png"), folder.join("b-renamed.png")).unwrap();
    std::fs::copy(data("rotated-6.jpg"), folder.join("a.jpg")).unwrap();
    let service = start_service(&sb);
    wait_until(&sb, "the modified a.jpg processed again", || succeeded(&sb, "a.jpg") == 2);
    // One worker takes files in order, so once a file dropped now is done, the catch-up's
    // decision about b-renamed.png was made before it.
    // (Content no earlier run saw: not an image, so its execution fails, which is enough.)
    std::fs::write(folder.join("sentinel.jpg"), b"not an image").unwrap();
    wait_until(&sb, "the sentinel processed", || executions(&sb, "sentinel.jpg").len() == 1);
    stop_service(service);
    assert_eq!(executions(&sb, "b-renamed").len(), 0, "the renamed file's content was processed already");
    assert_eq!(executions(&sb, "").len(), 4);
}

#[test]
fn a_slow_writer_is_processed_once_after_it_finished() {
    let sb = Sandbox::new();
    let folder = sb.path().join("in");
    std::fs::create_dir_all(&folder).unwrap();
    add_rule(&sb, &[]);
    let service = start_service(&sb);

    let bytes = std::fs::read(data("large.jpg")).unwrap();
    let mut file = std::fs::File::create(folder.join("slow.jpg")).unwrap();
    let chunks = 10;
    for chunk in bytes.chunks(bytes.len().div_ceil(chunks)) {
        file.write_all(chunk).unwrap();
        file.flush().unwrap();
        std::thread::sleep(Duration::from_millis(150));
    }
    drop(file);
    let finished_ms = chrono::Utc::now().timestamp_millis();

    wait_until(&sb, "slow.jpg processed", || succeeded(&sb, "slow.jpg") == 1);
    assert_jpeg(&sb.path().join("out/slow.jpg"));
    stop_service(service);
    let runs = executions(&sb, "");
    assert_eq!(runs.len(), 1, "one execution, no failed attempt on a half-written file: {runs:?}");
    assert!(runs[0]["startedAtMs"].as_i64().unwrap() >= finished_ms - 50, "started before the writer finished: {runs:?}");
}

#[test]
fn hidden_partial_and_temporary_files_are_ignored() {
    let sb = Sandbox::new();
    let folder = sb.path().join("in");
    std::fs::create_dir_all(folder.join(".cache")).unwrap();
    std::fs::copy(data("large.jpg"), folder.join(".before.jpg")).unwrap();
    add_rule(&sb, &["--recursive"]);
    let service = start_service(&sb);

    for name in [".hidden.jpg", "download.jpg.part", "download.crdownload", "edit.tmp", "backup.jpg~", ".cache/inner.jpg"] {
        std::fs::copy(data("large.jpg"), folder.join(name)).unwrap();
    }
    std::fs::copy(data("rotated-6.jpg"), folder.join("real.jpg")).unwrap();
    wait_until(&sb, "real.jpg processed", || succeeded(&sb, "real.jpg") == 1);
    stop_service(service);
    assert_eq!(executions(&sb, "").len(), 1, "only real.jpg ran");
    let outputs: Vec<_> = std::fs::read_dir(sb.path().join("out")).unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(outputs, ["real.jpg"]);
}

#[test]
fn a_missing_folder_is_reported_and_served_once_it_appears() {
    let sb = Sandbox::new();
    let folder = sb.path().join("in");
    let id = add_rule(&sb, &[]);
    let service = start_service(&sb);
    wait_until(&sb, "the rule's error", || rules(&sb)[0]["lastError"].as_str().is_some_and(|e| e.contains("missing")));

    std::fs::create_dir_all(&folder).unwrap();
    std::fs::copy(data("rotated-6.jpg"), folder.join("late.jpg")).unwrap();
    wait_until(&sb, "late.jpg processed", || succeeded(&sb, "late.jpg") == 1);
    assert_eq!(rules(&sb)[0]["lastError"], Value::Null, "rule {id} recovered");
    stop_service(service);
}

#[test]
fn with_no_rule_watch_alone_serves_the_default_folder() {
    let sb = Sandbox::new();
    let log = std::fs::File::create(sb.path().join("service-0.log")).unwrap();
    let mut cmd = sb.cmd();
    // `pixelflow watch` with no subcommand, as scripts/run.sh starts it.
    cmd.args(["watch", "--workflow", "thumbnail"]).env("PIXELFLOW_LOG", "info").stdout(Stdio::null()).stderr(log);
    let service = KillOnDrop::spawn(cmd);
    let watch_dir = sb.data_dir().join("watch");
    wait_until(&sb, "the data dir's watch folder", || watch_dir.is_dir());
    std::fs::copy(data("rotated-6.jpg"), watch_dir.join("dropped.jpg")).unwrap();
    wait_until(&sb, "dropped.jpg processed", || succeeded(&sb, "dropped.jpg") == 1);
    assert_jpeg(&sb.data_dir().join("output/dropped.jpg"));
    stop_service(service);
}

#[test]
fn rules_added_paused_and_resumed_while_the_service_runs_take_effect() {
    let sb = Sandbox::new();
    let (a, b) = (sb.path().join("in"), sb.path().join("in-b"));
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    let service = start_service(&sb);

    // Added while running: served without a restart.
    let id = add_rule(&sb, &[]);
    let added = sb.run(&["watch", "add", s(&b), "--workflow", "thumbnail", "--out", s(&sb.path().join("out-b"))]);
    assert_eq!(added.status.code(), Some(0), "{}", stderr(&added));
    std::fs::copy(data("rotated-6.jpg"), a.join("first.jpg")).unwrap();
    wait_until(&sb, "first.jpg processed by the added rule", || succeeded(&sb, "first.jpg") == 1);

    // Paused: its folder is left alone while the other rule goes on.
    assert_eq!(sb.run(&["watch", "pause", &id.to_string()]).status.code(), Some(0));
    wait_until(&sb, "the service to stop serving the paused rule", || {
        std::fs::read_to_string(sb.path().join("service-0.log")).unwrap_or_default().lines().any(|l| l.contains("stopped serving") && l.contains(&format!("rule=rule {id}")))
    });
    // (Content of its own: the results cache is shared by rules of the same workflow.)
    std::fs::copy(data("transparent.png"), a.join("while-paused.png")).unwrap();
    std::fs::copy(data("large.jpg"), b.join("other.jpg")).unwrap();
    wait_until(&sb, "other.jpg processed by the active rule", || succeeded(&sb, "other.jpg") == 1);
    assert_eq!(executions(&sb, "while-paused").len(), 0, "a paused rule processed a file");

    // Resumed: the catch-up scan takes what arrived meanwhile.
    assert_eq!(sb.run(&["watch", "resume", &id.to_string()]).status.code(), Some(0));
    wait_until(&sb, "while-paused.png processed after resume", || succeeded(&sb, "while-paused.png") == 1);
    stop_service(service);
}

/// `n` distinct small JPEGs: rotated-6.jpg with a unique trailer after its EOI marker (decoders
/// ignore it; the content hash differs). Written as `.part` and renamed, so each appears whole.
fn drop_distinct_jpegs(folder: &Path, prefix: &str, n: usize) -> Vec<PathBuf> {
    let base = std::fs::read(data("rotated-6.jpg")).unwrap();
    (0..n)
        .map(|i| {
            let mut bytes = base.clone();
            bytes.extend_from_slice(format!("{prefix}-{i:05}").as_bytes());
            let path = folder.join(format!("{prefix}-{i:05}.jpg"));
            let part = folder.join(format!("{prefix}-{i:05}.jpg.part"));
            std::fs::write(&part, &bytes).unwrap();
            std::fs::rename(&part, &path).unwrap();
            path
        })
        .collect()
}

/// Visible files in `dir` (a kill can leave an atomic write's hidden `.pixelflow-*.tmp` behind).
/// Files in `dir` and the folders under it (outputs mirror the watched folder's subfolders),
/// hidden ones (temporary files) left out.
fn count_files(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => count_files(&e.path()),
            Ok(t) if t.is_file() => 1,
            _ => 0,
        })
        .sum()
}

/// Every execution of the sandbox, read from the history itself: (input path, status).
fn executions_by_path(sb: &Sandbox) -> std::collections::HashMap<String, Vec<String>> {
    let history = pixelflow_history::History::open(&sb.data_dir().join("history.sqlite")).unwrap();
    let filter = pixelflow_history::ExecutionFilter { limit: Some(1_000_000), ..Default::default() };
    let mut by_path: std::collections::HashMap<String, Vec<String>> = std::collections::HashMap::new();
    for summary in history.list_executions(&filter).unwrap() {
        let record = history.execution(&summary.id).unwrap().expect("listed execution");
        let path = record.input["path"].as_str().unwrap_or_default().to_string();
        by_path.entry(path).or_default().push(summary.status.as_str().to_string());
    }
    by_path
}

fn sigkill(mut service: KillOnDrop) {
    let pid = service.child().id().to_string();
    let _ = std::process::Command::new("kill").args(["-KILL", &pid]).status();
    let status = service.child().wait().unwrap();
    assert!(!status.success());
    service.0 = None;
}

/// Asserts each of `inputs` has exactly one SUCCEEDED execution and nothing else (no FAILED,
/// nothing left RUNNING, no second run), and that no other execution exists.
fn assert_each_processed_once(sb: &Sandbox, inputs: &[PathBuf]) {
    let by_path = executions_by_path(sb);
    for input in inputs {
        let statuses = by_path.get(s(input)).cloned().unwrap_or_default();
        assert_eq!(statuses, ["SUCCEEDED"], "{}: executions {statuses:?}", input.display());
    }
    assert_eq!(by_path.len(), inputs.len(), "executions of other inputs: {:?}", by_path.keys().filter(|p| !inputs.iter().any(|i| s(i) == p.as_str())).collect::<Vec<_>>());
}

#[test]
fn a_watcher_killed_with_files_in_flight_loses_nothing_and_repeats_nothing() {
    let sb = Sandbox::new();
    let (folder, out) = (sb.path().join("in"), sb.path().join("out"));
    std::fs::create_dir_all(&folder).unwrap();
    add_rule(&sb, &["--jobs", "4"]);
    let service = start_service(&sb);
    let inputs = drop_distinct_jpegs(&folder, "img", 200);

    // Some, but not all, done: then SIGKILL, with executions under way.
    wait_until(&sb, "some outputs", || count_files(&out) >= 20);
    sigkill(service);
    let at_kill = count_files(&out);
    assert!(at_kill < 200, "all 200 were done before the kill; the test proves nothing");

    let service = start_service(&sb);
    wait_until(&sb, "all 200 outputs", || count_files(&out) == 200);
    // Every execution finished (the last outputs may precede their history rows by a moment).
    wait_until(&sb, "200 successes", || executions_by_path(&sb).values().flatten().filter(|s| *s == "SUCCEEDED").count() >= 200);
    stop_service(service);

    let resumed = std::fs::read_to_string(sb.path().join("service-1.log")).unwrap().lines().filter(|l| l.contains("resumed")).count();
    eprintln!("killed with {at_kill}/200 outputs written; {resumed} interrupted executions resumed at restart");
    for input in &inputs {
        let name = input.file_name().unwrap();
        assert_jpeg(&out.join(name));
    }
    assert_each_processed_once(&sb, &inputs);

    // And each one's result is in the results cache, pointing at that one execution, so a
    // later start skips it.
    let history = pixelflow_history::History::open(&sb.data_dir().join("history.sqlite")).unwrap();
    let filter = pixelflow_history::ExecutionFilter { limit: Some(1_000_000), ..Default::default() };
    let mut ids = std::collections::HashMap::new();
    for summary in history.list_executions(&filter).unwrap() {
        let record = history.execution(&summary.id).unwrap().unwrap();
        ids.insert(record.input["path"].as_str().unwrap().to_string(), (record.id, record.workflow_hash));
    }
    for input in &inputs {
        let meta = std::fs::metadata(input).unwrap();
        let hash = history.file_hash(s(input), meta.len(), pixelflow_app::hashing::mtime_ns(&meta)).unwrap().expect("the content hash remembered");
        let (id, workflow_hash) = &ids[s(input)];
        let cached = history.cached_result(&hash, workflow_hash).unwrap().unwrap_or_else(|| panic!("{} not in the results cache", input.display()));
        assert_eq!(&cached.execution_id, id, "{}", input.display());
    }
}

/// What a crash between an execution's success and its results row leaves (here made by hand:
/// `workflow run` records the execution, not the results cache): the service finishes the
/// bookkeeping (cache row, move) instead of processing the file again.
#[test]
fn a_success_without_its_results_row_is_not_run_again() {
    let sb = Sandbox::new();
    let (folder, out) = (sb.path().join("in"), sb.path().join("out"));
    std::fs::create_dir_all(&folder).unwrap();
    let photo = folder.join("photo.jpg");
    std::fs::copy(data("rotated-6.jpg"), &photo).unwrap();
    let input = sb.json("input.json", &serde_json::json!({ "path": photo, "outputDir": out }));
    let wf = Path::new(env!("CARGO_MANIFEST_DIR")).join("workflows/thumbnail.asl.json");
    let ran = sb.run(&["workflow", "run", s(&wf), "--input", s(&input)]);
    assert_eq!(ran.status.code(), Some(0), "{}", stderr(&ran));
    assert_eq!(succeeded(&sb, ""), 1);

    add_rule(&sb, &["--on-success", "move"]);
    let service = start_service(&sb);
    wait_until(&sb, "photo.jpg moved to done/", || folder.join("done/photo.jpg").is_file());
    stop_service(service);
    assert_eq!(executions(&sb, "").len(), 1, "the file was processed a second time");
    assert!(std::fs::read_to_string(sb.path().join("service-0.log")).unwrap().contains("recorded after a crash"));
}

/// SUCCEEDED executions in the history, counted without the CLI's list limit.
fn count_succeeded(sb: &Sandbox) -> usize {
    let history = pixelflow_history::History::open(&sb.data_dir().join("history.sqlite")).unwrap();
    let filter = pixelflow_history::ExecutionFilter { status: Some(pixelflow_history::ExecutionStatus::Succeeded), limit: Some(1_000_000), ..Default::default() };
    history.list_executions(&filter).unwrap().len()
}

/// The peak resident memory of a process, in kB (`VmHWM`).
fn peak_rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).expect("VmHWM in /proc/PID/status");
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn a_thousand_files_at_once_are_each_processed_once_in_bounded_memory() {
    let sb = Sandbox::new();
    let folder = sb.path().join("in");
    std::fs::create_dir_all(&folder).unwrap();
    // A trivial workflow, so the test measures the service, not the image work.
    let wf = sb.json(
        "validate.asl.json",
        &serde_json::json!({
            "StartAt": "Validate",
            "States": { "Validate": { "Type": "Task", "Resource": "pixelflow:validate", "Parameters": { "path.$": "$.path", "decode": false }, "End": true } }
        }),
    );
    let added = sb.run(&["watch", "add", s(&folder), "--workflow", s(&wf), "--out", s(&sb.path().join("out")), "--jobs", "4"]);
    assert_eq!(added.status.code(), Some(0), "{}", stderr(&added));
    let mut service = start_service(&sb);
    let pid = service.child().id();

    let inputs = drop_distinct_jpegs(&folder, "many", 1000);
    wait_until_within(&sb, Duration::from_secs(300), "1,000 successes", || count_succeeded(&sb) >= 1000);
    let peak_kb = peak_rss_kb(pid);
    stop_service(service);

    assert_each_processed_once(&sb, &inputs);
    assert!(peak_kb < 300 * 1024, "the service's peak RSS was {peak_kb} kB");
    eprintln!("peak RSS of the service over 1,000 files: {} MB", peak_kb / 1024);
}

fn status_of(sb: &Sandbox) -> Vec<Value> {
    let out = sb.run(&["watch", "status", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    stdout_json(&out).as_array().cloned().unwrap_or_default()
}

fn rule_status(sb: &Sandbox, id: i64) -> Value {
    status_of(sb).into_iter().find(|r| r["id"] == id).unwrap_or_else(|| panic!("rule {id} in watch status"))
}

#[test]
fn watch_status_shows_each_rules_state_queue_and_counts_from_another_process() {
    let sb = Sandbox::new();
    let folder = sb.path().join("in");
    std::fs::create_dir_all(sb.path().join("in-b")).unwrap();
    // Slow on purpose (a second per file, one at a time) so a queue forms; a non-image fails.
    let wf = sb.json(
        "slow.asl.json",
        &serde_json::json!({
            "StartAt": "Wait",
            "States": {
                "Wait": { "Type": "Task", "Resource": "pixelflow:sleep", "Parameters": { "seconds": 1 }, "ResultPath": null, "Next": "Validate" },
                "Validate": { "Type": "Task", "Resource": "pixelflow:validate", "Parameters": { "path.$": "$.path", "decode": false }, "ResultPath": "$.v", "Next": "Valid" },
                "Valid": { "Type": "Choice", "Choices": [{ "Variable": "$.v.isValid", "BooleanEquals": true, "Next": "Ok" }], "Default": "Bad" },
                "Ok": { "Type": "Succeed" },
                "Bad": { "Type": "Fail", "Error": "Pixelflow.InvalidImage" }
            }
        }),
    );
    std::fs::create_dir_all(&folder).unwrap();
    let add = |dir: &str, out: &str, wf: &str| -> i64 {
        let added = sb.run(&["watch", "add", s(&sb.path().join(dir)), "--workflow", wf, "--out", s(&sb.path().join(out)), "--jobs", "1"]);
        assert_eq!(added.status.code(), Some(0), "{}", stderr(&added));
        String::from_utf8_lossy(&added.stdout).trim().parse().unwrap()
    };
    let a = add("in", "out", s(&wf));
    let paused = add("in-b", "out-b", "thumbnail");
    let missing = add("nowhere", "out-c", "thumbnail");
    assert_eq!(sb.run(&["watch", "pause", &paused.to_string()]).status.code(), Some(0));

    // No service yet.
    let before = rule_status(&sb, a);
    assert_eq!((before["state"].as_str(), before["servicePid"].clone()), (Some("stopped"), Value::Null));
    assert_eq!(rule_status(&sb, paused)["state"], "paused");
    let text = String::from_utf8_lossy(&sb.run(&["watch", "status"]).stdout).into_owned();
    assert!(text.contains("no watch service is running"), "{text}");

    let mut service = start_service(&sb);
    let pid = service.child().id();
    drop_distinct_jpegs(&folder, "q", 3);
    wait_until(&sb, "one in flight and a queue behind it", || {
        let r = rule_status(&sb, a);
        r["inFlight"] == 1 && r["queued"].as_u64().unwrap_or(0) >= 1
    });
    let live = rule_status(&sb, a);
    assert_eq!((live["state"].as_str(), live["servicePid"].as_u64()), (Some("active"), Some(u64::from(pid))));
    wait_until(&sb, "the missing folder's error", || {
        let r = rule_status(&sb, missing);
        r["state"] == "error" && r["lastError"].as_str().is_some_and(|e| e.contains("missing"))
    });
    assert_eq!(rule_status(&sb, paused)["state"], "paused");

    wait_until(&sb, "3 processed", || {
        let r = rule_status(&sb, a);
        r["processed"] == 3 && r["inFlight"] == 0 && r["queued"] == 0
    });
    std::fs::write(folder.join("bad.jpg"), b"not an image").unwrap();
    wait_until(&sb, "1 failed", || rule_status(&sb, a)["failed"] == 1);
    assert_eq!(rule_status(&sb, a)["processed"], 3);
    let text = String::from_utf8_lossy(&sb.run(&["watch", "status"]).stdout).into_owned();
    assert!(text.contains("processed 3") && text.contains("failed 1") && text.contains("active"), "{text}");
    stop_service(service);

    // A stopped service clears what it published.
    let after = rule_status(&sb, a);
    assert_eq!((after["state"].as_str(), after["servicePid"].clone(), after["processed"].clone()), (Some("stopped"), Value::Null, Value::from(0)));
}

/// The crash check above must not swallow new content: a file replaced by other content that
/// keeps an older mtime (`cp -p`) still runs, because the earlier success has its results row.
#[test]
fn replaced_content_with_an_older_mtime_is_processed_again() {
    let sb = Sandbox::new();
    let folder = sb.path().join("in");
    std::fs::create_dir_all(&folder).unwrap();
    let photo = folder.join("a.jpg");
    std::fs::copy(data("rotated-6.jpg"), &photo).unwrap();
    add_rule(&sb, &[]);
    let service = start_service(&sb);
    wait_until(&sb, "a.jpg processed", || succeeded(&sb, "a.jpg") == 1);
    stop_service(service);

    std::fs::write(&photo, std::fs::read(data("large.jpg")).unwrap()).unwrap();
    let an_hour_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
    std::fs::File::options().write(true).open(&photo).unwrap().set_modified(an_hour_ago).unwrap();
    let service = start_service(&sb);
    wait_until(&sb, "the replaced a.jpg processed again", || succeeded(&sb, "a.jpg") == 2);
    stop_service(service);
}

#[test]
fn polling_serves_a_folder_and_says_so_in_the_status() {
    // `--poll` is what network volumes need, and the same path the service falls back to when
    // the OS refuses more watches (that fallback's error detection is unit-tested in the app).
    let sb = Sandbox::new();
    let folder = sb.path().join("in");
    std::fs::create_dir_all(folder.join("sub")).unwrap();
    let id = add_rule(&sb, &["--recursive"]);
    let log = std::fs::File::create(sb.path().join("service-0.log")).unwrap();
    let mut cmd = sb.cmd();
    cmd.args(["watch", "run", "--poll", "0.2"]).env("PIXELFLOW_LOG", "info").stdout(Stdio::null()).stderr(log);
    let service = KillOnDrop::spawn(cmd);
    wait_until(&sb, "the rule served", || rule_status(&sb, id)["state"] == "active");
    let watching = rule_status(&sb, id)["watching"].as_str().unwrap_or_default().to_string();
    assert!(watching.starts_with("polling every 0.2s"), "{watching}");

    std::fs::copy(data("rotated-6.jpg"), folder.join("sub/polled.jpg")).unwrap();
    wait_until(&sb, "polled.jpg processed", || succeeded(&sb, "polled.jpg") == 1);
    assert_jpeg(&sb.path().join("out/sub/polled.jpg"));
    // A modified file is seen by the poller too.
    std::fs::copy(data("large.jpg"), folder.join("sub/polled.jpg")).unwrap();
    wait_until(&sb, "the modified polled.jpg processed again", || succeeded(&sb, "polled.jpg") == 2);
    let text = sb.run(&["watch", "status"]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("polling every 0.2s"), "{}", String::from_utf8_lossy(&text.stdout));
    stop_service(service);
}

#[test]
fn a_second_service_on_the_same_data_dir_is_refused_with_a_clear_message() {
    let sb = Sandbox::new();
    std::fs::create_dir_all(sb.path().join("in")).unwrap();
    let id = add_rule(&sb, &[]);
    let first = start_service(&sb);
    wait_until(&sb, "the first service serving", || rule_status(&sb, id)["state"] == "active");

    let second = sb.run(&["watch", "run"]);
    assert_eq!(second.status.code(), Some(3), "{}", stderr(&second));
    let pid = first.0.as_ref().map(|c| c.id()).unwrap();
    let message = stderr(&second);
    assert!(message.contains("another watch service") && message.contains(&format!("pid {pid}")), "{message}");
    // The first one is undisturbed and still processes files.
    std::fs::copy(data("rotated-6.jpg"), sb.path().join("in/after.jpg")).unwrap();
    wait_until(&sb, "after.jpg processed by the first service", || succeeded(&sb, "after.jpg") == 1);
    stop_service(first);
    // Once it stopped, a new service may start (the lock went with the process).
    let third = start_service(&sb);
    wait_until(&sb, "the third service serving", || rule_status(&sb, id)["servicePid"].as_u64() == third.0.as_ref().map(|c| u64::from(c.id())));
    stop_service(third);
}

#[test]
fn a_folder_of_photos_moved_into_a_recursive_rule_is_processed() {
    // Moving a folder in sends one event for the folder and none for the files inside it, and
    // files written into a new subfolder may land before its watch is in place.
    let sb = Sandbox::new();
    let folder = sb.path().join("in");
    std::fs::create_dir_all(&folder).unwrap();
    let id = add_rule(&sb, &["--recursive"]);
    let service = start_service(&sb);
    wait_until(&sb, "the rule served", || rule_status(&sb, id)["state"] == "active");

    let staged = sb.path().join("staged/trip");
    std::fs::create_dir_all(staged.join("day 1")).unwrap();
    std::fs::create_dir_all(staged.join("day 2")).unwrap();
    std::fs::copy(data("rotated-6.jpg"), staged.join("day 1/a.jpg")).unwrap();
    // The camera's numbering started again: the same name, another photo.
    std::fs::copy(data("transparent.png"), staged.join("day 2/a.png")).unwrap();
    std::fs::copy(data("large.jpg"), staged.join("b.jpg")).unwrap();
    std::fs::rename(&staged, folder.join("trip")).unwrap();
    wait_until(&sb, "the photos of the moved folder processed", || succeeded(&sb, "trip") == 3);
    // Each output in its photo's folder, mirrored under the output folder.
    assert_jpeg(&sb.path().join("out/trip/day 1/a.jpg"));
    assert_jpeg(&sb.path().join("out/trip/day 2/a.jpg"));
    assert_jpeg(&sb.path().join("out/trip/b.jpg"));
    stop_service(service);
}

#[test]
fn a_watched_folder_deleted_and_recreated_while_running_is_served_again() {
    // A removable or network volume going away and coming back looks the same to the service.
    let sb = Sandbox::new();
    let folder = sb.path().join("in");
    std::fs::create_dir_all(&folder).unwrap();
    let id = add_rule(&sb, &[]);
    let service = start_service(&sb);
    wait_until(&sb, "the rule served", || rule_status(&sb, id)["state"] == "active");
    let before = drop_distinct_jpegs(&folder, "before", 1);
    wait_until(&sb, "the first photo processed", || succeeded(&sb, "before-") == 1);

    std::fs::remove_dir_all(&folder).unwrap();
    wait_until(&sb, "the rule's error state", || {
        let status = rule_status(&sb, id);
        status["state"] == "error" && status["lastError"].as_str().is_some_and(|e| e.contains("missing"))
    });

    std::fs::create_dir_all(&folder).unwrap();
    let after = drop_distinct_jpegs(&folder, "after", 2);
    wait_until(&sb, "the photos dropped after the folder came back processed", || succeeded(&sb, "after-") == 2);
    let status = rule_status(&sb, id);
    assert_eq!(status["state"], "active", "{status}");
    assert_eq!(status["lastError"], Value::Null, "{status}");
    stop_service(service);
    assert_each_processed_once(&sb, &[before, after].concat());
}

#[test]
fn awkward_names_and_a_symlink_loop_neither_stop_nor_confuse_the_service() {
    let sb = Sandbox::new();
    let folder = sb.path().join("in");
    std::fs::create_dir_all(folder.join("loop")).unwrap();
    // A link back to its own parent: a walk that followed it would never end.
    std::os::unix::fs::symlink(&folder, folder.join("loop/again")).unwrap();
    let present = folder.join("loop/present before start.jpg");
    std::fs::copy(data("rotated-6.jpg"), &present).unwrap();
    let id = add_rule(&sb, &["--recursive"]);
    let service = start_service(&sb);
    wait_until(&sb, "the rule served", || rule_status(&sb, id)["state"] == "active");

    let base = std::fs::read(data("rotated-6.jpg")).unwrap();
    let names = ["with space.jpg", "ünïcödé 写真.jpg", "new\nline.jpg", "-leading-dash.jpg", "quote's \"and\" semi;colon.jpg"];
    let mut inputs = vec![present];
    for (i, name) in names.iter().enumerate() {
        let mut bytes = base.clone();
        bytes.extend_from_slice(format!("awkward-{i}").as_bytes());
        let path = folder.join(name);
        std::fs::write(&path, &bytes).unwrap();
        inputs.push(path);
    }
    wait_until(&sb, "every awkwardly named photo processed", || executions_by_path(&sb).values().filter(|s| s.iter().any(|s| s == "SUCCEEDED")).count() == inputs.len());
    let status = rule_status(&sb, id);
    assert_eq!(status["state"], "active", "the service goes on: {status}");
    stop_service(service);
    assert_each_processed_once(&sb, &inputs);
    // One thumbnail per photo; none outside the output folder.
    assert_eq!(count_files(&sb.path().join("out")), inputs.len());
}

#[test]
fn a_photo_renamed_inside_the_watched_folder_is_not_processed_again() {
    let sb = Sandbox::new();
    let folder = sb.path().join("in");
    std::fs::create_dir_all(folder.join("sorted")).unwrap();
    let id = add_rule(&sb, &["--recursive"]);
    let service = start_service(&sb);
    wait_until(&sb, "the rule served", || rule_status(&sb, id)["state"] == "active");
    let first = drop_distinct_jpegs(&folder, "shot", 1).remove(0);
    wait_until(&sb, "the photo processed", || succeeded(&sb, "shot-") == 1);

    // Renamed, then moved into a subfolder: the same content under new names.
    let renamed = folder.join("holiday.jpg");
    std::fs::rename(&first, &renamed).unwrap();
    std::fs::rename(&renamed, folder.join("sorted/holiday.jpg")).unwrap();
    wait_until(&sb, "the moved photo recognised as processed", || rule_status(&sb, id)["skipped"].as_u64() >= Some(1));
    stop_service(service);
    assert_each_processed_once(&sb, &[first]);
}

#[test]
fn an_unreadable_photo_becomes_a_failed_execution_with_its_reason_and_the_service_goes_on() {
    let sb = Sandbox::new();
    let folder = sb.path().join("in");
    std::fs::create_dir_all(&folder).unwrap();
    let id = add_rule(&sb, &[]);
    // Root reads any file whatever its mode; without the two DAC capabilities it obeys them
    // like any user (CI runs as root).
    let service = if running_as_root() {
        let log = std::fs::File::create(sb.path().join("service-0.log")).unwrap();
        let mut cmd = std::process::Command::new("setpriv");
        cmd.args(["--bounding-set=-dac_override,-dac_read_search", env!("CARGO_BIN_EXE_pixelflow"), "--data-dir", s(&sb.data_dir()), "watch", "run"])
            .env("PIXELFLOW_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        KillOnDrop::spawn(cmd)
    } else {
        start_service(&sb)
    };
    wait_until(&sb, "the rule served", || rule_status(&sb, id)["state"] == "active");

    let locked = folder.join("locked.jpg");
    std::fs::copy(data("rotated-6.jpg"), folder.join("locked.part")).unwrap();
    std::fs::set_permissions(folder.join("locked.part"), std::os::unix::fs::PermissionsExt::from_mode(0o000)).unwrap();
    std::fs::rename(folder.join("locked.part"), &locked).unwrap();
    wait_until(&sb, "the unreadable photo's failed execution", || executions(&sb, "locked.jpg").iter().any(|e| e["status"] == "FAILED"));
    let readable = drop_distinct_jpegs(&folder, "readable", 1);
    wait_until(&sb, "the next photo processed", || succeeded(&sb, "readable-") == 1);
    stop_service(service);

    let failed = executions(&sb, "locked.jpg");
    assert_eq!(failed.len(), 1, "{failed:?}");
    let shown = sb.run(&["history", "show", failed[0]["id"].as_str().unwrap(), "--json"]);
    let cause = stdout_json(&shown)["execution"]["cause"].as_str().unwrap_or_default().to_lowercase();
    assert!(cause.contains("permission denied"), "the reason names the problem: {cause}");
    assert_eq!(std::fs::metadata(&locked).unwrap().len(), std::fs::metadata(data("rotated-6.jpg")).unwrap().len(), "the original is untouched");
    let by_path = executions_by_path(&sb);
    assert_eq!(by_path.get(s(&readable[0])).cloned().unwrap_or_default(), ["SUCCEEDED"], "{by_path:?}");
    assert_eq!(by_path.get(s(&locked)).cloned().unwrap_or_default(), ["FAILED"], "{by_path:?}");
    assert_eq!(by_path.len(), 2, "{by_path:?}");
}

fn running_as_root() -> bool {
    std::process::Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}
