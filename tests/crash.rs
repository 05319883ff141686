//! Crash safety: a workflow killed with SIGKILL at several points and resumed each time ends
//! with exactly the history and outputs of an uninterrupted run, and no finished task ran twice.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::util::{stderr, stdout_json, KillOnDrop, Sandbox};

const TASK_SECONDS: f64 = 0.3;

/// Six sequential tasks, a Map of six items two at a time, a Wait, and a last task. Each task
/// appends a line to `log` (not idempotent on purpose: a task that ran twice shows twice).
fn long_workflow(log: &Path) -> Value {
    let task = |line: &str, next: Option<&str>| {
        let mut t = json!({"Type": "Task", "Resource": "pixelflow:test.append",
            "Parameters": {"file": log, "line": line, "sleepBefore": TASK_SECONDS}, "ResultPath": format!("$.{line}")});
        match next {
            Some(n) => t["Next"] = json!(n),
            None => t["End"] = json!(true),
        }
        t
    };
    let mut states = serde_json::Map::new();
    for i in 0..6 {
        let next = if i < 5 { format!("S{}", i + 1) } else { "Batch".to_string() };
        states.insert(format!("S{i}"), task(&format!("s{i}"), Some(&next)));
    }
    states.insert(
        "Batch".into(),
        json!({"Type": "Map", "ItemsPath": "$.items", "MaxConcurrency": 2, "ResultPath": "$.batch",
            "ItemSelector": {"line.$": "States.Format('m{}', $$.Map.Item.Value)"},
            "ItemProcessor": {"StartAt": "Item", "States": {"Item": {"Type": "Task", "Resource": "pixelflow:test.append",
                "Parameters": {"file": log, "line.$": "$.line", "sleepBefore": TASK_SECONDS}, "End": true}}},
            "Next": "Pause"}),
    );
    states.insert("Pause".into(), json!({"Type": "Wait", "Seconds": 1, "Next": "Last"}));
    states.insert("Last".into(), task("end", None));
    json!({"StartAt": "S0", "States": states})
}

/// TaskSucceeded events committed so far by the running execution.
fn recorded_successes(sb: &Sandbox) -> usize {
    let running = stdout_json(&sb.run(&["history", "list", "--json", "--status", "RUNNING"]));
    let Some(id) = running.get(0).and_then(|r| r["id"].as_str()) else { return 0 };
    let show = stdout_json(&sb.run(&["history", "show", id, "--json"]));
    show["events"].as_array().map_or(0, |events| events.iter().filter(|e| e["kind"] == "TaskSucceeded").count())
}

fn lines(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log).unwrap_or_default().lines().map(str::to_string).collect()
}

/// (kind, key) of every event of the only execution in the sandbox, sorted: what happened,
/// independent of timing and of the interleaving of concurrent Map items.
fn history_of(sb: &Sandbox) -> (Value, Vec<(String, String)>) {
    let rows = stdout_json(&sb.run(&["history", "list", "--json"]));
    assert_eq!(rows.as_array().map(Vec::len), Some(1), "{rows}");
    let id = rows[0]["id"].as_str().unwrap();
    let show = stdout_json(&sb.run(&["history", "show", id, "--json"]));
    let mut events: Vec<(String, String)> = show["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["kind"].as_str().unwrap().to_string(), e["key"].as_str().unwrap().to_string()))
        .collect();
    events.sort();
    (show["execution"].clone(), events)
}

#[test]
fn killed_and_resumed_run_equals_uninterrupted_run() {
    let input = json!({"items": [0, 1, 2, 3, 4, 5]});

    // The reference: one uninterrupted run.
    let reference = Sandbox::new();
    let ref_log = reference.path().join("log.txt");
    let def = reference.json("def.json", &long_workflow(&ref_log));
    let inp = reference.json("in.json", &input);
    let out = reference.run(&["workflow", "run", def.to_str().unwrap(), "--input", inp.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let (ref_exec, ref_events) = history_of(&reference);

    // The same workflow killed with SIGKILL after 1, 3, 7 and 11 finished tasks (mid-way
    // through the next task each time: in the sequence, inside the Map, in the Wait).
    let sb = Sandbox::new();
    let log = sb.path().join("log.txt");
    let def = sb.json("def.json", &long_workflow(&log));
    let inp = sb.json("in.json", &input);
    for (round, kill_after) in [1usize, 3, 7, 12].into_iter().enumerate() {
        let mut cmd = sb.cmd();
        if round == 0 {
            cmd.args(["workflow", "run", def.to_str().unwrap(), "--input", inp.to_str().unwrap()]);
        } else {
            cmd.arg("resume");
        }
        cmd.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
        let mut guard = KillOnDrop::spawn(cmd);
        let child = guard.child();
        let deadline = Instant::now() + Duration::from_secs(60);
        while lines(&log).len() < kill_after {
            assert!(Instant::now() < deadline, "round {round}: the workflow made no progress");
            assert!(child.try_wait().unwrap().is_none(), "round {round}: the process ended before the kill point");
            std::thread::sleep(Duration::from_millis(5));
        }
        // Kill once every task that wrote its line has its success recorded (the checkpoint is
        // durable before the TaskSucceeded event): the kill then lands while the next tasks
        // sleep before writing (TASK_SECONDS), whatever the machine's load. A task killed
        // between its work and its checkpoint would rightly run again (steps are idempotent by
        // design; this one is not, on purpose), so the test must not kill there.
        while recorded_successes(&sb) < lines(&log).len() {
            assert!(Instant::now() < deadline, "round {round}: the successes were never recorded");
            std::thread::sleep(Duration::from_millis(5));
        }
        child.kill().unwrap();
        child.wait().unwrap();
        let running = stdout_json(&sb.run(&["history", "list", "--json", "--status", "RUNNING"]));
        assert_eq!(running.as_array().map(Vec::len), Some(1), "round {round}: the killed execution is RUNNING");
    }
    let out = sb.run(&["resume"]);
    assert!(out.status.success(), "{}", stderr(&out));

    let mut got = lines(&log);
    got.sort();
    let mut want = lines(&ref_log);
    want.sort();
    assert_eq!(got, want, "every task ran exactly once");
    assert_eq!(want.len(), 13);

    let (exec, events) = history_of(&sb);
    assert_eq!(exec["status"], "SUCCEEDED");
    assert_eq!(exec["output"], ref_exec["output"]);
    assert_eq!(events, ref_events, "the history is that of the uninterrupted run");
}
