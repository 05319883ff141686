//! Tests on real temporary database files.

use std::time::{Duration, Instant};

use pixelflow_engine::{CancelToken, Checkpoint, Event, Failure, Journal, TokenOutcome};
use rusqlite::Connection;
use serde_json::json;

use super::*;

fn temp() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("nested").join("dir").join("history.db");
    (dir, path)
}

/// A connection outside any `History`, like another process (or tool) would have.
fn raw(path: &Path) -> Connection {
    let c = Connection::open(path).expect("open raw");
    c.busy_timeout(Duration::from_secs(5)).expect("busy timeout");
    c
}

fn new_exec(id: &str) -> NewExecution {
    NewExecution {
        id: id.into(),
        name: format!("name-{id}"),
        workflow_name: "thumbnails".into(),
        workflow_hash: "hash".into(),
        definition: r#"{"StartAt":"A","States":{"A":{"Type":"Succeed"}}}"#.into(),
        input: json!({"dir": "photos"}),
        started_at_ms: 1_700_000_000_000,
    }
}

fn ev(kind: &str, key: &str, detail: Value) -> Event {
    Event { kind: kind.into(), state: Some("A".into()), key: key.into(), detail }
}

#[test]
fn fresh_file_migrates_and_reopens() {
    let (_dir, path) = temp();
    {
        let h = History::open(&path).unwrap();
        assert_eq!(h.path(), path);
        assert_eq!(h.schema_version().unwrap(), SCHEMA_VERSION);
        h.create_execution(&new_exec("e1")).unwrap();
    }
    let h = History::open(&path).unwrap();
    assert_eq!(h.schema_version().unwrap(), SCHEMA_VERSION);
    let rec = h.execution("e1").unwrap().unwrap();
    assert_eq!(rec.status, ExecutionStatus::Running);
    assert_eq!(rec.input, json!({"dir": "photos"}));
    assert_eq!(rec.owner_pid, Some(std::process::id()));

    let c = raw(&path);
    let mode: String = c.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
    assert_eq!(mode, "wal");
    let tables: Vec<String> = c
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    assert_eq!(tables, ["checkpoints", "cloud_profiles", "definitions", "event_chunks", "events", "executions", "exports", "file_hashes", "map_counts", "output_names", "results", "task_tokens", "uploads", "watch_rules", "watch_status"]);
}

#[test]
fn refuses_a_newer_schema() {
    let (_dir, path) = temp();
    drop(History::open(&path).unwrap());
    raw(&path).pragma_update(None, "user_version", SCHEMA_VERSION as i64 + 1).unwrap();
    match History::open(&path) {
        Err(e @ Error::SchemaTooNew { found, supported, .. }) => {
            assert_eq!((found, supported), (SCHEMA_VERSION + 1, SCHEMA_VERSION));
            assert!(e.to_string().contains("newer"), "{e}");
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("opened a database with a newer schema"),
    }
}

#[test]
fn refuses_a_file_that_is_not_a_database() {
    let (_dir, path) = temp();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, b"this is not sqlite, just some bytes that are long enough to be a header....").unwrap();
    assert!(History::open(&path).is_err());
}

#[test]
fn events_are_idempotent_by_kind_and_key_and_ordered() {
    let (_dir, path) = temp();
    let h = History::open(&path).unwrap();
    h.create_execution(&new_exec("e1")).unwrap();
    h.create_execution(&new_exec("e2")).unwrap();
    h.record("e1", ev("TaskStateEntered", "/0:A", json!({"n": 1})));
    h.record("e1", ev("TaskScheduled", "/0:A", json!({"n": 2})));
    h.record("e2", ev("TaskStateEntered", "/0:A", json!({"other": true})));
    // A resumed run in the same process replays what the first one recorded.
    h.begin("e1");
    h.record("e1", ev("TaskStateEntered", "/0:A", json!({"n": "replayed"})));
    h.record("e1", ev("TaskStateEntered", "/1:B", json!({"n": 3})));
    h.flush().unwrap();
    // A replay after a "crash", through a fresh handle: nothing new.
    drop(h);
    let h = History::open(&path).unwrap();
    h.record("e1", ev("TaskScheduled", "/0:A", json!({"n": "again"})));
    h.flush().unwrap();

    let events = h.events("e1").unwrap();
    let got: Vec<_> = events.iter().map(|e| (e.kind.as_str(), e.key.as_str(), e.detail.clone())).collect();
    assert_eq!(
        got,
        [
            ("TaskStateEntered", "/0:A", json!({"n": 1})),
            ("TaskScheduled", "/0:A", json!({"n": 2})),
            ("TaskStateEntered", "/1:B", json!({"n": 3})),
        ]
    );
    assert!(events.windows(2).all(|w| w[0].seq < w[1].seq && w[0].timestamp_ms <= w[1].timestamp_ms));
    assert_eq!(events[0].to_event(), ev("TaskStateEntered", "/0:A", json!({"n": 1})));
    assert_eq!(h.events("e2").unwrap().len(), 1);
    assert!(h.events("nope").unwrap().is_empty());
}

#[test]
fn checkpoints_survive_reopen() {
    let (_dir, path) = temp();
    let failure = Failure::new("States.TaskFailed", "boom");
    {
        let h = History::open(&path).unwrap();
        h.create_execution(&new_exec("e1")).unwrap();
        assert_eq!(h.checkpoint("e1", "/0:A").unwrap(), None);
        h.save_checkpoint("e1", "/0:A", &Checkpoint::Succeeded(json!({"out": [1, 2]}))).unwrap();
        h.save_checkpoint("e1", "/1:B", &Checkpoint::Failed(failure.clone())).unwrap();
        h.save_checkpoint("e1", "/2:W", &Checkpoint::WaitUntil(42)).unwrap();
        // Replaced, like the in-memory journal does.
        h.save_checkpoint("e1", "/2:W", &Checkpoint::WaitUntil(43)).unwrap();
        // Visible at once to reads (save_checkpoint returns after the commit).
        assert_eq!(h.checkpoint("e1", "/0:A").unwrap(), Some(Checkpoint::Succeeded(json!({"out": [1, 2]}))));
        // Saving for an execution that does not exist fails instead of pretending.
        assert!(h.save_checkpoint("ghost", "/0:A", &Checkpoint::WaitUntil(1)).is_err());
    }
    let h = History::open(&path).unwrap();
    assert_eq!(h.checkpoint("e1", "/0:A").unwrap(), Some(Checkpoint::Succeeded(json!({"out": [1, 2]}))));
    assert_eq!(h.checkpoint("e1", "/1:B").unwrap(), Some(Checkpoint::Failed(failure)));
    assert_eq!(h.checkpoint("e1", "/2:W").unwrap(), Some(Checkpoint::WaitUntil(43)));
    assert_eq!(h.checkpoint("e2", "/0:A").unwrap(), None);
}

#[test]
fn checkpoint_covers_events_recorded_before_it() {
    let (_dir, path) = temp();
    let h = History::open(&path).unwrap();
    h.create_execution(&new_exec("e1")).unwrap();
    for i in 0..500 {
        h.record("e1", ev("TaskStateEntered", &format!("/{i}:A"), json!(i)));
    }
    h.save_checkpoint("e1", "/499:A", &Checkpoint::WaitUntil(1)).unwrap();
    assert_eq!(h.events("e1").unwrap().len(), 500);
}

#[test]
fn many_events_are_batched_and_flushed() {
    let (_dir, path) = temp();
    const N: usize = 20_000;
    {
        let h = History::open(&path).unwrap();
        h.create_execution(&new_exec("e1")).unwrap();
        for i in 0..N {
            h.record("e1", ev("TaskStateEntered", &format!("/{i}:A"), json!({"i": i})));
        }
        h.flush().unwrap();
        let events = h.events("e1").unwrap();
        assert_eq!(events.len(), N);
        assert!(events.iter().enumerate().all(|(i, e)| e.detail == json!({"i": i})));
        // Recorded and never flushed: dropping the last handle still writes them.
        for i in N..N + 100 {
            h.record("e1", ev("TaskStateEntered", &format!("/{i}:A"), json!({"i": i})));
        }
    }
    let h = History::open(&path).unwrap();
    assert_eq!(h.events("e1").unwrap().len(), N + 100);
}

#[test]
fn events_of_an_unknown_execution_fail_the_next_flush() {
    let (_dir, path) = temp();
    let h = History::open(&path).unwrap();
    h.create_execution(&new_exec("e1")).unwrap();
    h.record("ghost", ev("TaskStateEntered", "/0:A", json!(null)));
    h.record("e1", ev("TaskStateEntered", "/0:A", json!(null)));
    // The checkpoint of another execution is not blamed for it...
    h.save_checkpoint("e1", "/0:A", &Checkpoint::WaitUntil(1)).unwrap();
    // ...but a flush, which vouches for every event, is.
    let err = h.flush().unwrap_err();
    assert!(err.0.contains("ghost") || err.0.contains("FOREIGN KEY"), "{err}");
    // Reported once; the history goes on working.
    h.flush().unwrap();
    assert_eq!(h.events("e1").unwrap().len(), 1);
}

#[test]
fn finish_execution_stores_the_outcome() {
    let (_dir, path) = temp();
    let h = History::open(&path).unwrap();
    for id in ["ok", "bad", "late", "stopped"] {
        h.create_execution(&new_exec(id)).unwrap();
    }
    h.record("ok", ev("ExecutionSucceeded", "", json!({"done": true})));
    h.finish_execution("ok", &Outcome::Succeeded(json!({"done": true}))).unwrap();
    // finish_execution committed the event recorded before it.
    assert_eq!(h.events("ok").unwrap().len(), 1);
    let rec = h.execution("ok").unwrap().unwrap();
    assert_eq!(rec.status, ExecutionStatus::Succeeded);
    assert_eq!(rec.output, Some(json!({"done": true})));
    assert!(rec.stopped_at_ms.unwrap() >= rec.started_at_ms);
    assert_eq!((rec.error, rec.cause), (None, None));

    h.finish_execution("bad", &Outcome::Failed(Failure::new("States.TaskFailed", "no such file"))).unwrap();
    h.finish_execution("late", &Outcome::TimedOut(Failure::new("States.Timeout", "too slow"))).unwrap();
    h.finish_execution("stopped", &Outcome::Aborted(Failure::new("States.Aborted", "ctrl-c"))).unwrap();
    let bad = h.execution("bad").unwrap().unwrap();
    assert_eq!(bad.status, ExecutionStatus::Failed);
    assert_eq!(bad.failure(), Some(Failure::new("States.TaskFailed", "no such file")));
    assert_eq!(bad.output, None);
    assert_eq!(h.execution("late").unwrap().unwrap().status, ExecutionStatus::TimedOut);
    assert_eq!(h.execution("stopped").unwrap().unwrap().status, ExecutionStatus::Aborted);

    assert!(matches!(
        h.finish_execution("ok", &Outcome::Succeeded(json!(1))),
        Err(Error::NotRunning { status, .. }) if status == "SUCCEEDED"
    ));
    assert!(matches!(h.finish_execution("ghost", &Outcome::Succeeded(json!(1))), Err(Error::UnknownExecution(_))));
    // The failed finish did not change the row.
    assert_eq!(h.execution("ok").unwrap().unwrap().output, Some(json!({"done": true})));
    assert!(matches!(h.create_execution(&new_exec("ok")), Err(Error::ExecutionExists(id)) if id == "ok"));
}

#[test]
fn rejected_attempts_get_a_failed_row_and_one_event() {
    let (_dir, path) = temp();
    let h = History::open(&path).unwrap();
    let diagnostics = "/States/A/Type: unknown state type \"Nope\"";
    h.record_rejected(&new_exec("r1"), &Failure::new(VALIDATION_ERROR, diagnostics)).unwrap();
    let rec = h.execution("r1").unwrap().unwrap();
    assert_eq!(rec.status, ExecutionStatus::Failed);
    assert_eq!(rec.error.as_deref(), Some(VALIDATION_ERROR));
    assert_eq!(rec.cause.as_deref(), Some(diagnostics));
    assert_eq!(rec.owner_pid, None);
    assert!(rec.stopped_at_ms.is_some());
    let events = h.events("r1").unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, EXECUTION_FAILED);
    assert_eq!(events[0].detail, json!({"error": VALIDATION_ERROR, "cause": diagnostics}));
    // Never orphaned, never claimable.
    assert!(h.orphaned_executions().unwrap().is_empty());
    assert!(!h.claim("r1").unwrap());
    assert!(matches!(h.record_rejected(&new_exec("r1"), &Failure::new(VALIDATION_ERROR, "x")), Err(Error::ExecutionExists(_))));
}

#[test]
fn list_filters() {
    let (_dir, path) = temp();
    let h = History::open(&path).unwrap();
    let base = parse_time("2024-05-01T00:00:00Z").unwrap();
    let hour = 3_600_000;
    let mk = |id: &str, workflow: &str, hours: i64, input: Value| NewExecution {
        id: id.into(),
        name: format!("run {id}"),
        workflow_name: workflow.into(),
        workflow_hash: "h".into(),
        definition: "{}".into(),
        input,
        started_at_ms: base + hours * hour,
    };
    h.create_execution(&mk("a1", "thumbs", 0, json!({"dir": "holiday"}))).unwrap();
    h.create_execution(&mk("a2", "thumbs", 1, json!({"dir": "work"}))).unwrap();
    h.create_execution(&mk("b1", "watermark", 2, json!({"dir": "50%_off"}))).unwrap();
    h.record_rejected(&mk("b2", "watermark", 3, json!({})), &Failure::new(VALIDATION_ERROR, "bad")).unwrap();
    h.finish_execution("a1", &Outcome::Succeeded(json!(null))).unwrap();

    let ids = |f: ExecutionFilter| -> Vec<String> { h.list_executions(&f).unwrap().into_iter().map(|s| s.id).collect() };
    assert_eq!(ids(ExecutionFilter::default()), ["b2", "b1", "a2", "a1"]);
    assert_eq!(ids(ExecutionFilter { limit: Some(2), ..Default::default() }), ["b2", "b1"]);
    assert_eq!(ids(ExecutionFilter { status: Some(ExecutionStatus::Running), ..Default::default() }), ["b1", "a2"]);
    assert_eq!(ids(ExecutionFilter { status: Some(ExecutionStatus::Failed), ..Default::default() }), ["b2"]);
    assert_eq!(ids(ExecutionFilter { workflow: Some("thumbs".into()), ..Default::default() }), ["a2", "a1"]);
    assert_eq!(
        ids(ExecutionFilter { since: Some("2024-05-01T01:00:00Z".into()), ..Default::default() }),
        ["b2", "b1", "a2"]
    );
    assert_eq!(
        ids(ExecutionFilter { until: Some((base + 2 * hour).to_string()), ..Default::default() }),
        ["a2", "a1"]
    );
    assert_eq!(
        ids(ExecutionFilter {
            since: Some("2024-05-01T02:00:00+01:00".into()),
            until: Some("2024-05-01T02:30:00Z".into()),
            ..Default::default()
        }),
        ["b1", "a2"]
    );
    assert_eq!(ids(ExecutionFilter { since: Some("2024-05-02".into()), ..Default::default() }), Vec::<String>::new());
    // Text: input, id, name, workflow; LIKE wildcards in the text are literal.
    assert_eq!(ids(ExecutionFilter { text: Some("HOLIDAY".into()), ..Default::default() }), ["a1"]);
    assert_eq!(ids(ExecutionFilter { text: Some("50%_".into()), ..Default::default() }), ["b1"]);
    assert_eq!(ids(ExecutionFilter { text: Some("%".into()), ..Default::default() }), ["b1"]);
    assert_eq!(ids(ExecutionFilter { text: Some("run a".into()), ..Default::default() }), ["a2", "a1"]);
    assert_eq!(ids(ExecutionFilter { text: Some("waterm".into()), ..Default::default() }), ["b2", "b1"]);
    assert_eq!(
        ids(ExecutionFilter {
            status: Some(ExecutionStatus::Running),
            workflow: Some("thumbs".into()),
            text: Some("work".into()),
            ..Default::default()
        }),
        ["a2"]
    );
    assert!(matches!(
        h.list_executions(&ExecutionFilter { since: Some("yesterday".into()), ..Default::default() }),
        Err(Error::InvalidTime(_))
    ));
    let summary = &h.list_executions(&ExecutionFilter { status: Some(ExecutionStatus::Failed), ..Default::default() }).unwrap()[0];
    assert_eq!(summary.error.as_deref(), Some(VALIDATION_ERROR));
    assert_eq!(summary.workflow_name, "watermark");
}

#[test]
fn prefix_lookup() {
    let (_dir, path) = temp();
    let h = History::open(&path).unwrap();
    for id in ["abc", "abc-1", "abc-2", "abd", "x%y"] {
        h.create_execution(&new_exec(id)).unwrap();
    }
    assert_eq!(h.execution("abc").unwrap().unwrap().id, "abc"); // exact beats prefix
    assert_eq!(h.execution("abc-2").unwrap().unwrap().id, "abc-2");
    assert_eq!(h.execution("abd").unwrap().unwrap().id, "abd");
    assert_eq!(h.execution("x%").unwrap().unwrap().id, "x%y");
    assert!(h.execution("zzz").unwrap().is_none());
    assert!(h.execution("").unwrap().is_none());
    assert!(h.execution("x_").unwrap().is_none());
    match h.execution("abc-") {
        Err(Error::AmbiguousPrefix { prefix, matches }) => {
            assert_eq!(prefix, "abc-");
            assert_eq!(matches, ["abc-1", "abc-2"]);
        }
        other => panic!("expected an ambiguity, got {other:?}"),
    }
    assert!(matches!(h.execution("ab"), Err(Error::AmbiguousPrefix { .. })));
    let full = h.execution("abd").unwrap().unwrap();
    assert_eq!(full.definition, new_exec("abd").definition);
    assert_eq!(full.workflow_hash, "hash");
}

/// Sets the owner columns of an execution, as another process would have written them.
fn set_owner(path: &Path, id: &str, pid: Option<i64>, start: Option<i64>, heartbeat: Option<i64>) {
    raw(path)
        .execute(
            "UPDATE executions SET owner_pid = ?2, owner_start = ?3, heartbeat_at = ?4 WHERE id = ?1",
            rusqlite::params![id, pid, start, heartbeat],
        )
        .unwrap();
}

#[test]
fn orphan_detection_and_claim() {
    let (_dir, path) = temp();
    let h = History::open(&path).unwrap();
    let me = h.owner();
    assert_eq!(me, process::current());
    for id in ["mine", "reused", "silent", "fresh", "nobody"] {
        h.create_execution(&new_exec(id)).unwrap();
    }
    // Our pid with another start identity: a dead earlier process whose pid we got.
    set_owner(&path, "reused", Some(i64::from(me.pid)), Some(me.start.unwrap_or(0) - 1), Some(now_ms()));
    // An owner whose start is unknown: decided by heartbeat.
    set_owner(&path, "silent", Some(i64::from(u32::MAX - 7)), None, Some(now_ms() - process::ORPHAN_AFTER_MS - 1000));
    set_owner(&path, "fresh", Some(i64::from(u32::MAX - 7)), None, Some(now_ms()));
    set_owner(&path, "nobody", None, None, None);

    let mut expected = vec!["nobody", "reused", "silent"];
    if cfg!(target_os = "linux") {
        // A child process that has exited (and was reaped): its execution is orphaned.
        let mut child = std::process::Command::new("sleep").arg("30").spawn().expect("spawn sleep");
        let start = process::proc_start_time(child.id()).expect("child start time");
        h.create_execution(&new_exec("dead-child")).unwrap();
        set_owner(&path, "dead-child", Some(i64::from(child.id())), Some(start), Some(now_ms()));
        // Alive: not orphaned, cannot be claimed.
        assert!(!h.orphaned_executions().unwrap().iter().any(|r| r.id == "dead-child"));
        assert!(!h.claim("dead-child").unwrap());
        child.kill().unwrap();
        child.wait().unwrap();
        expected.insert(0, "dead-child");
    }
    let mut orphans: Vec<String> = h.orphaned_executions().unwrap().into_iter().map(|r| r.id).collect();
    orphans.sort();
    expected.sort();
    assert_eq!(orphans, expected);

    // Claim works once, then the execution is ours (and alive).
    for id in &expected {
        assert!(h.claim(id).unwrap(), "claim {id}");
        assert!(!h.claim(id).unwrap(), "second claim of {id}");
        let rec = h.execution(id).unwrap().unwrap();
        assert_eq!((rec.owner_pid, rec.owner_start), (Some(me.pid), me.start));
    }
    assert!(h.orphaned_executions().unwrap().is_empty());
    assert!(!h.claim("mine").unwrap());
    assert!(!h.claim("fresh").unwrap());
    h.finish_execution("mine", &Outcome::Succeeded(json!(1))).unwrap();
    assert!(!h.claim("mine").unwrap());
    assert!(matches!(h.claim("ghost"), Err(Error::UnknownExecution(_))));

    // A second handle on the same file claims atomically too: only one of two racing wins.
    set_owner(&path, "fresh", None, None, None);
    let h2 = History::open(&path).unwrap();
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| h.claim("fresh").unwrap());
        let b = s.spawn(|| h2.claim("fresh").unwrap());
        (a.join().unwrap(), b.join().unwrap())
    });
    assert!(a ^ b, "exactly one claim wins ({a}, {b})");
}

#[test]
fn heartbeat_refreshes_own_executions_only() {
    let (_dir, path) = temp();
    let h = History::open(&path).unwrap();
    h.create_execution(&new_exec("mine")).unwrap();
    h.create_execution(&new_exec("other")).unwrap();
    let me = h.owner();
    set_owner(&path, "mine", Some(i64::from(me.pid)), me.start, Some(1));
    set_owner(&path, "other", Some(1), Some(1), Some(1));
    assert_eq!(h.heartbeat().unwrap(), 1);
    assert!(h.execution("mine").unwrap().unwrap().heartbeat_at_ms.unwrap() > 1);
    assert_eq!(h.execution("other").unwrap().unwrap().heartbeat_at_ms, Some(1));
}

#[test]
fn token_answered_from_another_handle_wakes_the_waiter() {
    let (_dir, path) = temp();
    let h = History::open(&path).unwrap();
    h.create_execution(&new_exec("e1")).unwrap();
    let token = h.task_token("e1", "/0:Review", "Review", &json!({"image": "a.png"})).unwrap();
    // Same visit, same token (a resumed execution keeps waiting on it).
    assert_eq!(h.task_token("e1", "/0:Review", "Review", &json!({"image": "other"})).unwrap(), token);

    let pending = h.pending_tokens().unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(
        (pending[0].token.as_str(), pending[0].execution_id.as_str(), pending[0].state.as_str(), &pending[0].payload),
        (token.as_str(), "e1", "Review", &json!({"image": "a.png"}))
    );
    assert_eq!(pending[0].key, "/0:Review");

    let waiter = {
        let h = h.clone();
        let token = token.clone();
        std::thread::spawn(move || {
            let started = Instant::now();
            let got = h.wait_for_token(&token, Some(Duration::from_secs(20)), &CancelToken::new()).unwrap();
            (got, started.elapsed())
        })
    };
    std::thread::sleep(Duration::from_millis(150));
    let other = History::open(&path).unwrap();
    let answer = other.answer_token(&token, &TokenOutcome::Succeeded(json!({"approved": true}))).unwrap();
    assert_eq!(answer, TokenAnswer::Answered { execution_id: "e1".into() });
    let (got, waited) = waiter.join().unwrap();
    assert_eq!(got, Some(TokenOutcome::Succeeded(json!({"approved": true}))));
    assert!(waited < Duration::from_secs(5), "waited {waited:?}");
    assert!(h.pending_tokens().unwrap().is_empty());
}

#[test]
fn token_answered_by_another_process_is_found_by_polling() {
    let (_dir, path) = temp();
    let h = History::open(&path).unwrap();
    h.create_execution(&new_exec("e1")).unwrap();
    let token = h.task_token("e1", "/0:Review", "Review", &json!(null)).unwrap();
    let waiter = {
        let h = h.clone();
        let token = token.clone();
        std::thread::spawn(move || h.wait_for_token(&token, Some(Duration::from_secs(20)), &CancelToken::new()).unwrap())
    };
    std::thread::sleep(Duration::from_millis(150));
    // Written straight into the file, without any History: no in-process notification.
    raw(&path)
        .execute(
            "UPDATE task_tokens SET status = 'FAILED', error = 'Rejected', cause = 'blurry', answered_at = 1 WHERE token = ?1",
            [&token],
        )
        .unwrap();
    assert_eq!(waiter.join().unwrap(), Some(TokenOutcome::Failed(Failure::new("Rejected", "blurry"))));
}

#[test]
fn token_answers_unknown_already_answered_timeout_cancel() {
    let (_dir, path) = temp();
    let h = History::open(&path).unwrap();
    h.create_execution(&new_exec("e1")).unwrap();
    let t1 = h.task_token("e1", "/0:A", "A", &json!(1)).unwrap();
    let t2 = h.task_token("e1", "/1:B", "B", &json!(2)).unwrap();
    assert_ne!(t1, t2);

    // Timeout and cancel give None, like the in-memory journal.
    let started = Instant::now();
    assert_eq!(h.wait_for_token(&t1, Some(Duration::from_millis(200)), &CancelToken::new()).unwrap(), None);
    assert!(started.elapsed() >= Duration::from_millis(200));
    let cancel = CancelToken::new();
    let canceller = {
        let cancel = cancel.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            cancel.cancel();
        })
    };
    assert_eq!(h.wait_for_token(&t1, None, &cancel).unwrap(), None);
    canceller.join().unwrap();

    let failure = Failure::new("Rejected", "no");
    assert_eq!(
        h.answer_token(&t1, &TokenOutcome::Failed(failure.clone())).unwrap(),
        TokenAnswer::Answered { execution_id: "e1".into() }
    );
    assert_eq!(h.answer_token(&t1, &TokenOutcome::Succeeded(json!(1))).unwrap(), TokenAnswer::AlreadyAnswered);
    assert_eq!(h.answer_token("no-such-token", &TokenOutcome::Succeeded(json!(1))).unwrap(), TokenAnswer::Unknown);
    // The first answer stands, and an answered token returns at once even when cancelled.
    assert_eq!(h.wait_for_token(&t1, None, &cancel).unwrap(), Some(TokenOutcome::Failed(failure)));
    assert!(h.wait_for_token("no-such-token", Some(Duration::from_millis(10)), &CancelToken::new()).is_err());

    let pending: Vec<String> = h.pending_tokens().unwrap().into_iter().map(|p| p.token).collect();
    assert_eq!(pending, std::slice::from_ref(&t2));
    // A stopped execution's tokens are not pending any more.
    h.finish_execution("e1", &Outcome::Aborted(Failure::new("States.Aborted", "stop"))).unwrap();
    assert!(h.pending_tokens().unwrap().is_empty());
    // The token survives a reopen.
    drop(h);
    let h = History::open(&path).unwrap();
    assert_eq!(h.task_token("e1", "/1:B", "B", &json!(2)).unwrap(), t2);
}

#[test]
fn concurrent_writers_from_many_threads() {
    let (_dir, path) = temp();
    let h = History::open(&path).unwrap();
    const THREADS: usize = 8;
    const EVENTS: usize = 1000;
    h.create_execution(&new_exec("shared")).unwrap();
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let h = h.clone();
            s.spawn(move || {
                let id = format!("t{t}");
                h.create_execution(&new_exec(&id)).unwrap();
                for i in 0..EVENTS {
                    h.record(&id, ev("TaskStateEntered", &format!("/{i}:A"), json!(i)));
                    h.record("shared", ev("Tick", &format!("{t}/{i}"), json!(i)));
                    if i % 20 == 0 {
                        h.save_checkpoint(&id, &format!("/{i}:A"), &Checkpoint::Succeeded(json!(i))).unwrap();
                    }
                }
                h.finish_execution(&id, &Outcome::Succeeded(json!(t))).unwrap();
            });
        }
    });
    h.flush().unwrap();
    for t in 0..THREADS {
        let id = format!("t{t}");
        let events = h.events(&id).unwrap();
        assert_eq!(events.len(), EVENTS);
        // Each thread's events are in the order it recorded them.
        assert!(events.iter().enumerate().all(|(i, e)| e.detail == json!(i)));
        assert_eq!(h.checkpoint(&id, "/980:A").unwrap(), Some(Checkpoint::Succeeded(json!(980))));
        assert_eq!(h.execution(&id).unwrap().unwrap().status, ExecutionStatus::Succeeded);
    }
    assert_eq!(h.events("shared").unwrap().len(), THREADS * EVENTS);
}

#[test]
fn two_handles_write_the_same_file() {
    let (_dir, path) = temp();
    let h1 = History::open(&path).unwrap();
    let h2 = History::open(&path).unwrap();
    h1.create_execution(&new_exec("e1")).unwrap();
    std::thread::scope(|s| {
        s.spawn(|| {
            for i in 0..2000 {
                h1.record("e1", ev("A", &i.to_string(), json!(i)));
            }
            h1.flush().unwrap();
        });
        s.spawn(|| {
            for i in 0..2000 {
                h2.record("e1", ev("B", &i.to_string(), json!(i)));
            }
            h2.flush().unwrap();
        });
    });
    assert_eq!(h1.events("e1").unwrap().len(), 4000);
}

#[test]
fn times_parse_and_render() {
    assert_eq!(parse_time("0").unwrap(), 0);
    assert_eq!(parse_time(" 1714521600000 ").unwrap(), 1_714_521_600_000);
    assert_eq!(parse_time("2024-05-01T00:00:00Z").unwrap(), 1_714_521_600_000);
    assert_eq!(parse_time("2024-05-01T02:00:00+02:00").unwrap(), 1_714_521_600_000);
    assert_eq!(parse_time("2024-05-01").unwrap(), 1_714_521_600_000);
    assert!(matches!(parse_time("May 1st"), Err(Error::InvalidTime(_))));
    assert_eq!(to_rfc3339(1_714_521_600_123), "2024-05-01T00:00:00.123Z");
    assert_eq!(parse_time(&to_rfc3339(1_714_521_600_123)).unwrap(), 1_714_521_600_123);
}

#[test]
fn status_spellings() {
    for st in ExecutionStatus::ALL {
        assert_eq!(st.as_str().parse::<ExecutionStatus>().unwrap(), st);
        assert_eq!(serde_json::to_value(st).unwrap(), json!(st.as_str()));
    }
    assert_eq!("timed-out".parse::<ExecutionStatus>().unwrap(), ExecutionStatus::TimedOut);
    assert!("DONE".parse::<ExecutionStatus>().is_err());
}

#[test]
fn history_is_clone_send_sync() {
    fn check<T: Clone + Send + Sync + 'static>() {}
    check::<History>();
    fn journal(_: &dyn Journal) {}
    let (_dir, path) = temp();
    journal(&History::open(&path).unwrap());
}

/// Throughput of the journal as the interpreter uses it: per state transition three events
/// and (for a task) a durable checkpoint, from 1 to 16 threads. Run with
/// `cargo test -p pixelflow-history --release -- --ignored --nocapture throughput`.
#[test]
#[ignore]
fn throughput() {
    for (threads, checkpoints) in [(1, false), (1, true), (4, false), (4, true), (16, true)] {
        let (_dir, path) = temp();
        let h = History::open(&path).unwrap();
        let transitions = 100_000 / threads;
        let started = Instant::now();
        std::thread::scope(|s| {
            for t in 0..threads {
                let h = h.clone();
                s.spawn(move || {
                    let id = format!("t{t}");
                    h.create_execution(&new_exec(&id)).unwrap();
                    for i in 0..transitions {
                        let key = format!("/{i}:Resize");
                        h.record(&id, ev("TaskStateEntered", &key, json!({"input": {"file": "a.png", "i": i}})));
                        h.record(&id, ev("TaskScheduled", &key, json!({"resource": "pixelflow:resize"})));
                        if checkpoints {
                            h.save_checkpoint(&id, &key, &Checkpoint::Succeeded(json!({"file": "b.png"}))).unwrap();
                        }
                        h.record(&id, ev("TaskStateExited", &key, json!({"output": {"file": "b.png"}})));
                    }
                    h.flush().unwrap();
                });
            }
        });
        let n = threads * transitions;
        println!("threads={threads} checkpoints={checkpoints}: {:.0} transitions/s", n as f64 / started.elapsed().as_secs_f64());
    }
}

#[test]
fn results_cache_and_file_hashes_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let h = History::open(&dir.path().join("h.sqlite")).unwrap();
    assert_eq!(h.cached_result("c1", "w1").unwrap(), None);
    let r = crate::CachedResult { path: "/a.jpg".into(), output: serde_json::json!({"ok": 1}), execution_id: "e".into(), finished_at_ms: 5 };
    let name = crate::OutputName { dir: "/out".into(), key: "a".into() };
    h.store_result("c1", "w1", &r, Some((&name, &["/out/a.jpg".to_string()]))).unwrap();
    assert_eq!(h.cached_result("c1", "w1").unwrap(), Some(r.clone()));
    assert_eq!(h.cached_result("c1", "w2").unwrap(), None, "another workflow is another result");

    // What each image left under an output name, oldest first, kept when the same content's
    // result is recorded again elsewhere (its one results row then names the other folder).
    let elsewhere = crate::OutputName { dir: "/web".into(), key: "a".into() };
    h.store_result("c1", "w1", &r, Some((&elsewhere, &["/web/a.jpg".to_string()]))).unwrap();
    let later = crate::CachedResult { path: "/b/a.png".into(), execution_id: "e2".into(), ..r.clone() };
    h.store_result("c2", "w2", &later, Some((&name, &["/out/a.jpg".to_string(), "/out/a.webp".to_string()]))).unwrap();
    h.store_result("c3", "w1", &r, None).unwrap();
    let named: Vec<_> = h.outputs_named(&name).unwrap().into_iter().map(|n| (n.content_hash, n.path, n.files, n.execution_id)).collect();
    assert_eq!(
        named,
        [
            ("c1".into(), "/a.jpg".into(), vec!["/out/a.jpg".to_string()], "e".into()),
            ("c2".into(), "/b/a.png".into(), vec!["/out/a.jpg".to_string(), "/out/a.webp".to_string()], "e2".into()),
        ]
    );
    // Recorded again under the same name: one row, now the newest.
    h.store_result("c1", "w1", &r, Some((&name, &["/out/a.jpg".to_string()]))).unwrap();
    let order: Vec<_> = h.outputs_named(&name).unwrap().into_iter().map(|n| n.content_hash).collect();
    assert_eq!(order, ["c2", "c1"]);
    assert!(h.has_outputs_in("/out").unwrap() && h.has_outputs_in("/web").unwrap());
    assert!(!h.has_outputs_in("/elsewhere").unwrap());

    h.remember_file_hashes(vec![crate::FileHash { path: "/a.jpg".into(), size: 10, mtime_ns: 7, content_hash: "c1".into() }]).unwrap();
    assert_eq!(h.file_hash("/a.jpg", 10, 7).unwrap().as_deref(), Some("c1"));
    assert_eq!(h.file_hash("/a.jpg", 10, 8).unwrap(), None, "a touched file is hashed again");
}

#[test]
fn watch_rules_round_trip() {
    let (_dir, path) = temp();
    let h = History::open(&path).unwrap();
    assert!(h.watch_rules().unwrap().is_empty());
    let new = NewWatchRule {
        folder: "/photos/in".into(),
        recursive: true,
        include: vec!["*.jpg".into(), "*.png".into()],
        exclude: vec!["raw/**".into()],
        workflow: "thumbnail".into(),
        output: "/photos/out".into(),
        concurrency: 3,
        on_success: OriginalAction::Move,
        on_failure: OriginalAction::Leave,
    };
    let rule = h.add_watch_rule(&new).unwrap();
    assert_eq!((rule.folder.as_str(), rule.recursive, rule.concurrency), ("/photos/in", true, 3));
    assert_eq!(rule.include, new.include);
    assert_eq!(rule.exclude, new.exclude);
    assert_eq!((rule.on_success, rule.on_failure, rule.paused, rule.last_error.as_deref()), (OriginalAction::Move, OriginalAction::Leave, false, None));
    let second = h.add_watch_rule(&new).unwrap();
    assert!(second.id > rule.id);

    assert!(h.set_watch_rule_paused(rule.id, true).unwrap());
    assert!(h.set_watch_rule_error(rule.id, Some("gone")).unwrap());
    let got = h.watch_rule(rule.id).unwrap().unwrap();
    assert!(got.paused);
    assert_eq!(got.last_error.as_deref(), Some("gone"));
    assert!(h.set_watch_rule_error(rule.id, None).unwrap());
    assert_eq!(h.watch_rule(rule.id).unwrap().unwrap().last_error, None);

    assert!(h.remove_watch_rule(rule.id).unwrap());
    assert!(!h.remove_watch_rule(rule.id).unwrap());
    assert!(!h.set_watch_rule_paused(rule.id, false).unwrap());
    assert_eq!(h.watch_rules().unwrap().iter().map(|r| r.id).collect::<Vec<_>>(), [second.id]);
}

#[test]
fn watch_status_is_replaced_whole_on_each_publish() {
    let (_dir, path) = temp();
    let h = History::open(&path).unwrap();
    let row = |rule_id, processed| crate::WatchStatus { rule_id, pid: 7, queued: 2, in_flight: 1, processed, failed: 0, started_at_ms: 1, updated_at_ms: 2, watching: "events".into(), skipped: 3 };
    h.publish_watch_status(vec![row(1, 3), row(2, 0)]).unwrap();
    assert_eq!(h.watch_statuses().unwrap(), [row(1, 3), row(2, 0)]);
    h.publish_watch_status(vec![row(2, 5)]).unwrap();
    assert_eq!(h.watch_statuses().unwrap(), [row(2, 5)]);
    h.publish_watch_status(Vec::new()).unwrap();
    assert!(h.watch_statuses().unwrap().is_empty());
}

#[test]
fn successes_are_found_by_their_input_path_through_the_index() {
    let (_dir, path) = temp();
    let h = History::open(&path).unwrap();
    let mk = |id: &str, image: &str, workflow_hash: &str, started: i64| NewExecution {
        workflow_hash: workflow_hash.into(),
        input: json!({"path": image, "outputDir": "/out"}),
        started_at_ms: started,
        ..new_exec(id)
    };
    for (id, image, wf, started, ok) in [
        ("a", "/in/a.jpg", "wf", 100, true),
        ("a-again", "/in/a.jpg", "wf", 300, true),
        ("a-other-workflow", "/in/a.jpg", "other", 400, true),
        ("a-failed", "/in/a.jpg", "wf", 500, false),
        ("b", "/in/b.jpg", "wf", 600, true),
        ("prefix", "/in/a.jpg.bak", "wf", 700, true),
    ] {
        h.create_execution(&mk(id, image, wf, started)).unwrap();
        let outcome = if ok { Outcome::Succeeded(json!({})) } else { Outcome::Failed(Failure::new("E", "c")) };
        h.finish_execution(id, &outcome).unwrap();
    }
    assert_eq!(h.succeeded_on_path("/in/a.jpg", "wf", 0).unwrap(), ["a-again", "a"]);
    assert_eq!(h.succeeded_on_path("/in/a.jpg", "wf", 200).unwrap(), ["a-again"]);
    assert!(h.succeeded_on_path("/in/c.jpg", "wf", 0).unwrap().is_empty());
    let plan: Vec<String> = raw(&path)
        .prepare(&format!("EXPLAIN QUERY PLAN {}", executions::SUCCEEDED_ON_PATH))
        .unwrap()
        .query_map(rusqlite::params!["x", "wf", 0], |r| r.get::<_, String>(3))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    assert!(plan.iter().any(|step| step.contains("executions_succeeded_by_input_path")), "{plan:?}");
}

#[test]
fn map_progress_counts_every_iteration_of_each_map_state() {
    let (_dir, path) = temp();
    let h = History::open(&path).unwrap();
    h.create_execution(&new_exec("e1")).unwrap();
    h.create_execution(&new_exec("other")).unwrap();
    let map = |kind: &str, state: &str, key: String, detail: Value| Event { kind: kind.into(), state: Some(state.into()), key, detail };
    // Two runs of Batch (a retry), 3 items each; one item of the first run failed.
    for attempt in 0..2 {
        h.record("e1", map("MapStateStarted", "Batch", format!("/0:Batch#{attempt}"), json!({"length": 3})));
        for i in 0..3 {
            let key = format!("/0:Batch#{attempt}/i{i}");
            h.record("e1", map("MapIterationStarted", "Batch", key.clone(), json!({"index": i})));
            let ok = !(attempt == 0 && i == 1);
            h.record("e1", map(if ok { "MapIterationSucceeded" } else { "MapIterationFailed" }, "Batch", key, json!({})));
        }
    }
    // A second Map with an item still running, and another execution's events.
    h.record("e1", map("MapStateStarted", "Crops", "/1:Crops#0".into(), json!({"length": 2})));
    h.record("e1", map("MapIterationStarted", "Crops", "/1:Crops#0/i0".into(), json!({})));
    h.record("other", map("MapIterationStarted", "Batch", "/0:Batch#0/i0".into(), json!({})));
    h.flush().unwrap();

    let m = |state: &str, total, started, succeeded, failed| MapProgress { state: state.into(), total, started, succeeded, failed };
    assert_eq!(h.map_progress("e1").unwrap(), [m("Batch", 6, 6, 5, 1), m("Crops", 2, 1, 0, 0)]);
    assert!(h.map_progress("nothing").unwrap().is_empty());

    // Pages of the same events, in recording order, and their count.
    let all = h.events("e1").unwrap();
    assert_eq!(h.event_count("e1").unwrap(), all.len() as u64);
    assert_eq!(h.events_page("e1", 0, 5).unwrap(), all[..5]);
    assert_eq!(h.events_page("e1", 5, 1000).unwrap(), all[5..]);
    assert!(h.events_page("e1", all.len(), 10).unwrap().is_empty());
}

#[test]
fn events_of_the_per_event_schema_are_carried_into_chunks() {
    let (_dir, path) = temp();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut c = raw(&path);
    // The schema as it was before event chunks: the first 11 migrations, up to cloud profiles.
    let before_chunks = 11;
    crate::schema::migrations().to_version(&mut c, before_chunks).unwrap();
    c.execute_batch(
        "INSERT INTO executions (id, name, workflow_name, workflow_hash, definition, input, status, started_at)
             VALUES ('old', 'n', 'w', 'h', '{}', '{}', 'SUCCEEDED', 1), ('other', 'n', 'w', 'h', '{}', '{}', 'FAILED', 1);
         INSERT INTO events (execution_id, kind, state, key, detail, timestamp) VALUES
             ('old', 'ExecutionStarted', NULL, '', '{\"input\":{\"a\":\"\\u00e9 \\\"q\\\"\"}}', 10),
             ('other', 'ExecutionFailed', NULL, '', '{\"error\":\"E\"}', 11),
             ('old', 'MapStateStarted', 'Batch', '/0:Batch#0', '{\"length\":2}', 12),
             ('old', 'MapIterationStarted', 'Batch', '/0:Batch#0/i0', '{\"index\":0}', 13),
             ('old', 'MapIterationFailed', 'Batch', '/0:Batch#0/i0', '{\"index\":0}', 14),
             ('old', 'ExecutionSucceeded', NULL, '', '{\"output\":[1,2.5,null]}', 15);
         PRAGMA foreign_keys = OFF;
         INSERT INTO events (execution_id, kind, state, key, detail, timestamp) VALUES ('gone', 'ExecutionStarted', NULL, '', '{}', 1);",
    )
    .unwrap();
    // An execution with more events than one chunk holds.
    c.execute_batch("BEGIN").unwrap();
    c.execute("INSERT INTO executions (id, name, workflow_name, workflow_hash, definition, input, status, started_at) VALUES ('long', 'n', 'w', 'h', '{}', '{}', 'SUCCEEDED', 1)", []).unwrap();
    for i in 0..2500 {
        c.execute(
            "INSERT INTO events (execution_id, kind, state, key, detail, timestamp) VALUES ('long', 'PassStateEntered', 'A', ?1, ?2, ?3)",
            rusqlite::params![format!("/{i}:A"), format!("{{\"i\":{i}}}"), i],
        )
        .unwrap();
    }
    c.execute_batch("COMMIT").unwrap();
    drop(c);

    let h = History::open(&path).unwrap();
    let got: Vec<_> = h.events("old").unwrap().into_iter().map(|e| (e.seq, e.timestamp_ms, e.kind, e.state, e.key, e.detail)).collect();
    let batch = || Some("Batch".to_string());
    assert_eq!(
        got,
        [
            (1, 10, "ExecutionStarted".to_string(), None, String::new(), json!({"input": {"a": "é \"q\""}})),
            (2, 12, "MapStateStarted".into(), batch(), "/0:Batch#0".into(), json!({"length": 2})),
            (3, 13, "MapIterationStarted".into(), batch(), "/0:Batch#0/i0".into(), json!({"index": 0})),
            (4, 14, "MapIterationFailed".into(), batch(), "/0:Batch#0/i0".into(), json!({"index": 0})),
            (5, 15, "ExecutionSucceeded".into(), None, String::new(), json!({"output": [1, 2.5, null]})),
        ]
    );
    assert_eq!(h.event_count("other").unwrap(), 1);
    let long = h.events("long").unwrap();
    assert_eq!(long.len(), 2500);
    assert!(long.iter().enumerate().all(|(i, e)| e.seq == i as i64 + 1 && e.detail == json!({"i": i})));
    assert_eq!(h.events_page("long", 999, 3).unwrap(), long[999..1002]);
    let chunks: i64 = raw(&path).query_row("SELECT count(*) FROM event_chunks WHERE execution_id = 'long'", [], |r| r.get(0)).unwrap();
    assert_eq!(chunks, 3);
    let batch_counts = MapProgress { state: "Batch".into(), total: 2, started: 1, succeeded: 0, failed: 1 };
    assert_eq!(h.map_progress("old").unwrap(), [batch_counts]);
    // The rows of an execution deleted with foreign keys off are left out, not fatal.
    assert!(h.execution("gone").unwrap().is_none());
    // A process of the previous version, still running, records into the old table: its
    // events go after the carried ones, and count.
    raw(&path)
        .execute_batch(
            "INSERT OR IGNORE INTO events (execution_id, kind, state, key, detail, timestamp)
                 VALUES ('old', 'MapIterationSucceeded', 'Batch', '/0:Batch#0/i1', '{\"index\":1}', 16)",
        )
        .unwrap();
    assert_eq!(h.map_progress("old").unwrap()[0].succeeded, 1);
    let late = h.events("old").unwrap().pop().unwrap();
    assert_eq!((late.seq, late.kind.as_str(), late.detail), (6, "MapIterationSucceeded", json!({"index": 1})));
    // New events go after those.
    h.begin("old");
    h.record("old", ev("ExecutionSucceeded", "", json!({"replayed": true})));
    h.record("old", ev("Extra", "/9:X", json!(1)));
    h.flush().unwrap();
    let all = h.events("old").unwrap();
    assert_eq!(all.len(), 7);
    assert_eq!((all[6].seq, all[6].kind.as_str()), (7, "Extra"));
}

#[test]
fn definitions_are_stored_once_and_old_rows_keep_theirs() {
    let (_dir, path) = temp();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut c = raw(&path);
    // A row of the schema before definitions were stored apart.
    // The 12 migrations before `executions::MIGRATION_DEFINITIONS`.
    let before_definitions = 12;
    crate::schema::migrations().to_version(&mut c, before_definitions).unwrap();
    c.execute_batch(
        "INSERT INTO executions (id, name, workflow_name, workflow_hash, definition, input, status, started_at)
             VALUES ('old', 'n', 'w', 'h', '{\"StartAt\":\"Old\"}', '{}', 'SUCCEEDED', 1)",
    )
    .unwrap();
    drop(c);

    let h = History::open(&path).unwrap();
    assert_eq!(h.execution("old").unwrap().unwrap().definition, r#"{"StartAt":"Old"}"#);
    for id in ["a", "b"] {
        h.create_execution(&new_exec(id)).unwrap();
        h.finish_execution(id, &Outcome::Succeeded(json!(1))).unwrap();
    }
    let mut rejected = new_exec("r");
    rejected.definition = "not json".into();
    h.record_rejected(&rejected, &Failure::new(VALIDATION_ERROR, "bad")).unwrap();
    assert_eq!(h.execution("a").unwrap().unwrap().definition, new_exec("a").definition);
    assert_eq!(h.execution("b").unwrap().unwrap().definition, new_exec("b").definition);
    assert_eq!(h.execution("r").unwrap().unwrap().definition, "not json");
    let c = raw(&path);
    let stored: i64 = c.query_row("SELECT count(*) FROM definitions", [], |r| r.get(0)).unwrap();
    assert_eq!(stored, 2);
    let inline: i64 = c.query_row("SELECT count(*) FROM executions WHERE definition <> ''", [], |r| r.get(0)).unwrap();
    assert_eq!(inline, 1, "only the old row keeps its text inline");
}

#[test]
fn pages_span_chunks() {
    let (_dir, path) = temp();
    let h = History::open(&path).unwrap();
    h.create_execution(&new_exec("e1")).unwrap();
    // A flush between events closes a chunk: 7 chunks of 1 to 7 events.
    let mut n = 0;
    for size in 1..=7 {
        for _ in 0..size {
            h.record("e1", ev("TaskStateEntered", &format!("/{n}:A"), json!(n)));
            n += 1;
        }
        h.flush().unwrap();
    }
    let all = h.events("e1").unwrap();
    assert_eq!(all.iter().map(|e| e.detail.clone()).collect::<Vec<_>>(), (0..n).map(|i| json!(i)).collect::<Vec<_>>());
    assert!(all.iter().enumerate().all(|(i, e)| e.seq == i as i64 + 1));
    for offset in 0..=n {
        for limit in [0, 1, 2, 5, 100] {
            let end = (offset + limit).min(n);
            assert_eq!(h.events_page("e1", offset, limit).unwrap(), all[offset..end], "offset {offset} limit {limit}");
        }
    }
}

#[test]
fn prune_deletes_closed_executions_and_what_is_stored_under_them_only() {
    let (_dir, path) = temp();
    let h = History::open(&path).unwrap();
    for id in ["old-done", "old-running", "recent-done"] {
        h.create_execution(&new_exec(id)).unwrap();
        h.record(id, ev("TaskStateEntered", "/0:A", json!({"n": 1})));
        h.save_checkpoint(id, "/0:A", &Checkpoint::Succeeded(json!({}))).unwrap();
    }
    for id in ["old-done", "recent-done"] {
        h.finish_execution(id, &Outcome::Succeeded(json!({}))).unwrap();
    }
    let result = CachedResult { path: "/a.jpg".into(), output: json!({}), execution_id: "old-done".into(), finished_at_ms: 1 };
    h.store_result("hash", "workflow", &result, None).unwrap();
    // The old ones started and ended in 2020.
    let old = parse_time("2020-01-01").unwrap();
    raw(&path).execute("UPDATE executions SET started_at = ?1, stopped_at = CASE WHEN stopped_at IS NULL THEN NULL ELSE ?1 END WHERE id LIKE 'old-%'", [old]).unwrap();

    assert_eq!(h.prune(parse_time("2021-01-01").unwrap()).unwrap(), 1);
    assert!(h.execution("old-done").unwrap().is_none());
    let conn = raw(&path);
    for table in ["event_chunks", "checkpoints"] {
        let left: i64 = conn.query_row(&format!("SELECT count(*) FROM {table} WHERE execution_id = 'old-done'"), [], |r| r.get(0)).unwrap();
        assert_eq!(left, 0, "{table}");
    }
    // A running execution is never pruned, however old; nor is one that ended after the bound.
    assert_eq!(h.events("old-running").unwrap().len(), 1);
    assert_eq!(h.events("recent-done").unwrap().len(), 1);
    assert!(h.checkpoint("old-running", "/0:A").unwrap().is_some());
    // The results cache stays: it is what keeps images from being processed again.
    assert!(h.cached_result("hash", "workflow").unwrap().is_some());
    // Their definition is still used by the others; with every execution gone, it goes too.
    h.finish_execution("old-running", &Outcome::Succeeded(json!({}))).unwrap();
    assert_eq!(h.prune(i64::MAX).unwrap(), 2);
    let definitions: i64 = conn.query_row("SELECT count(*) FROM definitions", [], |r| r.get(0)).unwrap();
    assert_eq!(definitions, 0);
    assert_eq!(h.prune(i64::MAX).unwrap(), 0);
}

#[test]
fn prune_deletes_a_large_execution_in_slices() {
    let (_dir, path) = temp();
    let h = History::open(&path).unwrap();
    h.create_execution(&new_exec("big")).unwrap();
    // 7 chunks and 2 checkpoints.
    for i in 0..7 {
        h.record("big", ev("TaskStateEntered", &format!("/{i}:A"), json!(i)));
        h.flush().unwrap();
    }
    for key in ["/0:A", "/1:A"] {
        h.save_checkpoint("big", key, &Checkpoint::Succeeded(json!({}))).unwrap();
    }
    h.finish_execution("big", &Outcome::Succeeded(json!({}))).unwrap();
    drop(h);
    let conn = raw(&path);
    conn.pragma_update(None, "foreign_keys", true).unwrap();
    let chunks = |c: &Connection| c.query_row("SELECT count(*) FROM event_chunks", [], |r| r.get::<_, i64>(0)).unwrap();
    let total = chunks(&conn);
    assert!(total >= 7, "{total} chunks");
    // Each call deletes at most its budget of rows, and says whether more is left.
    assert_eq!(executions::prune_some(&conn, i64::MAX, 3).unwrap(), (0, true));
    assert_eq!(chunks(&conn), total - 3);
    let mut calls = 1;
    loop {
        let (deleted, more) = executions::prune_some(&conn, i64::MAX, 3).unwrap();
        calls += 1;
        if !more {
            assert_eq!(deleted, 1);
            break;
        }
    }
    assert!(calls >= 3, "{calls} calls");
    assert_eq!(chunks(&conn), 0);
    let left: i64 = conn.query_row("SELECT count(*) FROM executions", [], |r| r.get(0)).unwrap();
    assert_eq!(left, 0);
}

#[test]
fn events_iter_reads_every_event_a_page_at_a_time() {
    let (_dir, path) = temp();
    let h = History::open(&path).unwrap();
    h.create_execution(&new_exec("e1")).unwrap();
    // Over two pages, with chunk boundaries inside and across them.
    let n = 2 * crate::EVENTS_ITER_PAGE + 3;
    for i in 0..n {
        h.record("e1", ev("TaskStateEntered", &format!("/{i}:A"), json!(i)));
        if i % 1000 == 999 {
            h.flush().unwrap();
        }
    }
    h.flush().unwrap();
    let read: Vec<StoredEvent> = h.events_iter("e1").collect::<Result<_>>().unwrap();
    assert_eq!(read.len(), n);
    assert_eq!(read, h.events("e1").unwrap());
    assert!(h.events_iter("unknown").next().is_none());
}

#[test]
fn two_writers_on_one_execution_store_each_event_once() {
    // Two processes that both believe they own an execution (an owner judged dead by its
    // heartbeat while it slept): the second writer's stale view is caught when it inserts.
    let (_dir, path) = temp();
    let h1 = History::open(&path).unwrap();
    let h2 = History::open(&path).unwrap();
    h1.create_execution(&new_exec("e1")).unwrap();
    h2.record("e1", ev("TaskStateEntered", "/9:Z", json!(0)));
    h2.flush().unwrap();
    h1.record("e1", ev("TaskStateEntered", "/0:A", json!(1)));
    h1.flush().unwrap();
    // h2 still believes it wrote the last chunk, and that the execution had no events before.
    h2.record("e1", ev("TaskStateEntered", "/0:A", json!("again")));
    h2.record("e1", ev("TaskStateEntered", "/1:B", json!(2)));
    h2.flush().unwrap();
    let got: Vec<_> = h1.events("e1").unwrap().into_iter().map(|e| (e.seq, e.key, e.detail)).collect();
    assert_eq!(got, [(1, "/9:Z".into(), json!(0)), (2, "/0:A".into(), json!(1)), (3, "/1:B".into(), json!(2))]);
}

/// Runs a one-Pass-state workflow as execution `id`, recording into `h`.
fn run_one_pass_state(h: Arc<History>, id: &str) -> std::result::Result<Value, pixelflow_engine::Stop> {
    let steps = pixelflow_engine::StepRegistry::new();
    let machine = pixelflow_engine::asl::parse_str(r#"{"StartAt":"A","States":{"A":{"Type":"Pass","End":true}}}"#, &steps).unwrap();
    let engine = pixelflow_engine::Engine::new(steps, h, Arc::new(pixelflow_engine::SystemClock));
    let exec = pixelflow_engine::Execution { id: id.into(), name: id.into(), state_machine_name: "m".into(), input: json!({}), start_ms: 0 };
    engine.run(&machine, &exec, &CancelToken::new())
}

#[test]
fn a_run_whose_events_cannot_be_stored_does_not_succeed() {
    // No execution row: every event of the run is refused (foreign key), so the run must not
    // report success with an empty history.
    let (_dir, path) = temp();
    let h = Arc::new(History::open(&path).unwrap());
    match run_one_pass_state(h, "ghost") {
        Err(pixelflow_engine::Stop::Failed(f)) => assert!(f.cause.contains("ghost") || f.cause.contains("FOREIGN KEY"), "{f:?}"),
        other => panic!("expected a failed run, got {other:?}"),
    }
}

#[test]
fn a_run_that_lost_events_is_stored_failed_with_the_reason() {
    let (_dir, path) = temp();
    let h = Arc::new(History::open(&path).unwrap());
    h.create_execution(&new_exec("e1")).unwrap();
    // Every event chunk is refused from now on, as a full disk would.
    raw(&path)
        .execute_batch("CREATE TRIGGER refuse BEFORE INSERT ON event_chunks BEGIN SELECT RAISE(ABORT, 'disk is full (test)'); END;")
        .unwrap();
    let reported = match run_one_pass_state(h.clone(), "e1") {
        Err(pixelflow_engine::Stop::Failed(f)) => f,
        other => panic!("expected a failed run, got {other:?}"),
    };
    assert_eq!(reported.error, "States.Runtime");
    assert!(reported.cause.contains("disk is full (test)"), "{reported:?}");
    // The history says the same as the engine, in the same transaction as the end of the run.
    let stored = h.execution("e1").unwrap().unwrap();
    assert_eq!(stored.status, ExecutionStatus::Failed);
    assert_eq!(stored.failure(), Some(reported));
}

#[test]
fn a_chunk_whose_map_counts_cannot_be_stored_is_not_stored_either() {
    let (_dir, path) = temp();
    let h = History::open(&path).unwrap();
    h.create_execution(&new_exec("e1")).unwrap();
    raw(&path)
        .execute_batch("CREATE TRIGGER refuse BEFORE INSERT ON map_counts BEGIN SELECT RAISE(ABORT, 'no counts (test)'); END;")
        .unwrap();
    h.record("e1", ev("MapIterationStarted", "/0:A#0/i0", json!({"index": 0})));
    let err = h.flush().unwrap_err();
    assert!(err.to_string().contains("no counts (test)"), "{err}");
    // The chunk went with its counts: no event without the count it adds.
    assert!(h.events("e1").unwrap().is_empty());
    assert!(h.map_progress("e1").unwrap().is_empty());
}

#[test]
fn recording_after_the_writer_died_fails_instead_of_blocking() {
    let (_dir, path) = temp();
    let h = History::open(&path).unwrap();
    h.create_execution(&new_exec("e1")).unwrap();
    let died = h.inner.writer.call(writer::Scope::Nothing, |_| -> Result<()> { panic!("a bug in a job") });
    assert!(died.is_err());
    // More than the backlog holds: each is refused (and logged) at once.
    for i in 0..70_000 {
        h.record("e1", ev("TaskStateEntered", &format!("/{i}:A"), json!(i)));
    }
    assert!(h.flush().is_err());
}
