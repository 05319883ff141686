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

fn wait_until(sb: &Sandbox, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
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

    // Another file of the same name: processed (new content), moved beside the first.
    std::fs::copy(data("rotated-6.jpg"), folder.join("photo.jpg")).unwrap();
    wait_until(&sb, "the second photo.jpg moved", || folder.join("done/photo-1.jpg").is_file());
    assert_eq!(std::fs::read(folder.join("done/photo.jpg")).unwrap(), std::fs::read(data("large.jpg")).unwrap());
    assert_eq!(succeeded(&sb, ""), 2);
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
