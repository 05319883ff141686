//! The CLI contract that scripts rely on: exit codes, stdout JSON, validation messages, the
//! history commands and task tokens, through the real `pixelflow` binary.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::util::{stderr, stdout_json, KillOnDrop, Sandbox};

fn review_workflow() -> Value {
    json!({"StartAt": "Review", "States": {
        "Review": {"Type": "Task", "Resource": "pixelflow:review.waitForTaskToken",
                   "Parameters": {"image.$": "$.image", "token.$": "$$.Task.Token"},
                   "ResultPath": "$.review",
                   "Catch": [{"ErrorEquals": ["Pixelflow.Rejected"], "ResultPath": "$.rejected", "Next": "Rejected"}],
                   "Next": "Approved"},
        "Approved": {"Type": "Pass", "End": true},
        "Rejected": {"Type": "Pass", "End": true}
    }})
}

/// Polls `pixelflow task list --json` until a token is pending.
fn wait_for_token(sandbox: &Sandbox) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = sandbox.run(&["task", "list", "--json"]);
        assert!(out.status.success(), "{}", stderr(&out));
        let pending = stdout_json(&out);
        if let Some(first) = pending.as_array().and_then(|a| a.first()) {
            return first.clone();
        }
        assert!(Instant::now() < deadline, "no task token appeared");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn successful_run_prints_output_and_is_in_history() {
    let sb = Sandbox::new();
    let def = sb.json("def.json", &json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "Parameters": {"doubled.$": "States.MathAdd($.n, $.n)"}, "End": true}}}));
    let input = sb.json("in.json", &json!({"n": 21}));
    let out = sb.run(&["workflow", "run", def.to_str().unwrap(), "--input", input.to_str().unwrap(), "--name", "answer"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout_json(&out), json!({"doubled": 42}));

    let list = sb.run(&["history", "list", "--json", "--status", "SUCCEEDED"]);
    let rows = stdout_json(&list);
    assert_eq!(rows.as_array().map(Vec::len), Some(1), "{rows}");
    assert_eq!(rows[0]["name"], "answer");
    assert_eq!(rows[0]["workflowName"], "def");

    let id = rows[0]["id"].as_str().unwrap().to_string();
    let show = stdout_json(&sb.run(&["history", "show", &id[..8], "--json"]));
    assert_eq!(show["execution"]["output"], json!({"doubled": 42}));
    let kinds: Vec<&str> = show["events"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["ExecutionStarted", "PassStateEntered", "PassStateExited", "ExecutionSucceeded"]);

    let text = sb.run(&["history", "show", &id]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("SUCCEEDED"));
}

#[test]
fn failed_run_prints_error_and_cause_and_exits_1() {
    let sb = Sandbox::new();
    let def = sb.json("def.json", &json!({"StartAt": "F", "States": {"F": {"Type": "Fail", "Error": "Img.Bad", "Cause": "too dark"}}}));
    let out = sb.run(&["workflow", "run", def.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout_json(&out), json!({"error": "Img.Bad", "cause": "too dark"}));
    let rows = stdout_json(&sb.run(&["history", "list", "--json", "--status", "FAILED"]));
    assert_eq!(rows[0]["error"], "Img.Bad");
}

#[test]
fn invalid_definitions_exit_2_and_record_only_the_attempt() {
    let sb = Sandbox::new();
    let broken = sb.path().join("broken.json");
    std::fs::write(&broken, "{\"StartAt\": \"A\",\n \"States\": {").unwrap();
    let out = sb.run(&["workflow", "run", broken.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("not valid JSON") && stderr(&out).contains("line 2"), "{}", stderr(&out));
    assert!(out.stdout.is_empty());

    let not_asl = sb.json("list.json", &json!([1, 2, 3]));
    let out = sb.run(&["workflow", "validate", not_asl.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("must be a JSON object"), "{}", stderr(&out));

    let rows = stdout_json(&sb.run(&["history", "list", "--json"]));
    assert_eq!(rows.as_array().map(Vec::len), Some(1), "only the failed attempt is recorded: {rows}");
    assert_eq!(rows[0]["status"], "FAILED");
    let id = rows[0]["id"].as_str().unwrap().to_string();
    let show = stdout_json(&sb.run(&["history", "show", &id, "--json"]));
    let events = show["events"].as_array().unwrap();
    assert!(events.iter().all(|e| !e["kind"].as_str().unwrap().contains("State")), "no state ran: {events:?}");
}

#[test]
fn bad_input_and_missing_files_are_clear_errors() {
    let sb = Sandbox::new();
    let def = sb.json("def.json", &json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "End": true}}}));
    let bad_input = sb.path().join("in.json");
    std::fs::write(&bad_input, "not json").unwrap();
    let out = sb.run(&["workflow", "run", def.to_str().unwrap(), "--input", bad_input.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("not valid JSON"), "{}", stderr(&out));

    let out = sb.run(&["workflow", "run", "/nonexistent/def.json"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(stderr(&out).contains("/nonexistent/def.json"), "{}", stderr(&out));

    let out = sb.run(&["history", "show", "no-such-execution"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("no execution"), "{}", stderr(&out));
}

#[test]
fn history_prune_deletes_what_ended_before_the_time_given() {
    let sb = Sandbox::new();
    let def = sb.json("def.json", &json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "End": true}}}));
    let input = sb.json("in.json", &json!({}));
    for _ in 0..2 {
        let out = sb.run(&["workflow", "run", def.to_str().unwrap(), "--input", input.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    }
    let out = sb.run(&["history", "prune", "--before", "2000-01-01"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("deleted 0 execution(s)"));
    assert_eq!(stdout_json(&sb.run(&["history", "list", "--json"])).as_array().unwrap().len(), 2);

    let out = sb.run(&["history", "prune", "--before", "2999-01-01"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("deleted 2 execution(s)"));
    assert!(stdout_json(&sb.run(&["history", "list", "--json"])).as_array().unwrap().is_empty());

    let out = sb.run(&["history", "prune", "--before", "last tuesday"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("last tuesday"), "{}", stderr(&out));
}

#[test]
fn stdin_input_and_validate_ok() {
    let sb = Sandbox::new();
    let def = sb.json("def.json", &json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "OutputPath": "$.x", "End": true}}}));
    let out = sb.run(&["workflow", "validate", def.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    let mut child = sb
        .cmd()
        .args(["workflow", "run", def.to_str().unwrap(), "--input", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"{\"x\": [1, 2]}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(stdout_json(&out), json!([1, 2]));
}

#[test]
fn task_token_success_and_failure() {
    for (answer, expected) in [
        (vec!["success", "--output", "{\"approved\": true}"], json!({"image": "a.jpg", "review": {"approved": true}})),
        (
            vec!["failure", "--error", "Pixelflow.Rejected", "--cause", "blurry"],
            json!({"image": "a.jpg", "rejected": {"Error": "Pixelflow.Rejected", "Cause": "blurry"}}),
        ),
    ] {
        let sb = Sandbox::new();
        let def = sb.json("def.json", &review_workflow());
        let input = sb.json("in.json", &json!({"image": "a.jpg"}));
        let mut cmd = sb.cmd();
        cmd.args(["workflow", "run", def.to_str().unwrap(), "--input", input.to_str().unwrap()])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let child = KillOnDrop::spawn(cmd);
        let pending = wait_for_token(&sb);
        assert_eq!(pending["payload"], json!({"image": "a.jpg"}));
        let token = pending["token"].as_str().unwrap();
        let mut args = vec!["task"];
        args.push(answer[0]);
        args.push(token);
        args.extend(&answer[1..]);
        let out = sb.run(&args);
        assert!(out.status.success(), "{}", stderr(&out));
        let out = child.wait_with_output();
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert_eq!(stdout_json(&out), expected);

        let again = sb.run(&["task", "success", token]);
        assert_eq!(again.status.code(), Some(2), "a token is answered once");
        assert!(stdout_json(&sb.run(&["task", "list", "--json"])).as_array().unwrap().is_empty());
    }
}

#[test]
fn paused_task_token_survives_a_crash() {
    let sb = Sandbox::new();
    let def = sb.json("def.json", &review_workflow());
    let input = sb.json("in.json", &json!({"image": "b.jpg"}));
    let mut cmd = sb.cmd();
    cmd.args(["workflow", "run", def.to_str().unwrap(), "--input", input.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = KillOnDrop::spawn(cmd);
    let pending = wait_for_token(&sb);
    child.child().kill().unwrap(); // SIGKILL: no chance to clean up
    child.child().wait().unwrap();
    let token = pending["token"].as_str().unwrap();
    let out = sb.run(&["task", "success", token, "--output", "{\"ok\": 1}"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = sb.run(&["resume"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("SUCCEEDED"), "{}", String::from_utf8_lossy(&out.stdout));
    let rows = stdout_json(&sb.run(&["history", "list", "--json"]));
    let id = rows[0]["id"].as_str().unwrap();
    let show = stdout_json(&sb.run(&["history", "show", id, "--json"]));
    assert_eq!(show["execution"]["status"], "SUCCEEDED");
    assert_eq!(show["execution"]["output"], json!({"image": "b.jpg", "review": {"ok": 1}}));
    let submitted = show["events"].as_array().unwrap().iter().filter(|e| e["kind"] == "TaskSubmitted").count();
    assert_eq!(submitted, 1, "the task was handed out once");
}

#[test]
fn bundled_reference_workflow_validates_and_routes_failures_to_notify_error() {
    let sb = Sandbox::new();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for wf in ["workflows/image-pipeline.asl.json", "workflows/image-batch.asl.json"] {
        let out = sb.run(&["workflow", "validate", root.join(wf).to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(0), "{wf}: {}", stderr(&out));
    }
    let input = sb.json("in.json", &json!({"path": "photo.jpg", "outputDir": sb.path().join("out")}));
    let out = sb.run(&["workflow", "run", root.join("workflows/image-pipeline.asl.json").to_str().unwrap(), "--input", input.to_str().unwrap()]);
    // The photo does not exist: ValidateImage fails, its Catch routes the error through
    // NotifyError to the Fail state, which reports the original error.
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(stdout_json(&out)["error"], "Pixelflow.InputNotFound");
    let rows = stdout_json(&sb.run(&["history", "list", "--json"]));
    let show = stdout_json(&sb.run(&["history", "show", rows[0]["id"].as_str().unwrap(), "--json"]));
    let entered: Vec<&str> = show["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"].as_str().unwrap().ends_with("StateEntered"))
        .map(|e| e["state"].as_str().unwrap())
        .collect();
    assert_eq!(entered, ["ValidateImage", "NotifyError", "ImageFailed"]);
}

#[test]
fn hostile_definitions_are_refused_without_a_panic() {
    let sb = Sandbox::new();
    // Nested deeper than any real workflow: refused with the place named.
    let mut deep = json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "End": true}}});
    for _ in 0..20 {
        deep = json!({"StartAt": "P", "States": {"P": {"Type": "Parallel", "End": true, "Branches": [deep]}}});
    }
    let def = sb.json("deep.json", &deep);
    let out = sb.run(&["workflow", "validate", def.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("nested more than"), "{}", stderr(&out));

    // JSON nested beyond the parser's limit.
    let brackets = sb.path().join("brackets.json");
    std::fs::write(&brackets, "[".repeat(100_000)).unwrap();
    let out = sb.run(&["workflow", "validate", brackets.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));

    // Larger than the 1 MiB a definition may be.
    let huge = sb.path().join("huge.json");
    std::fs::write(&huge, format!("{{\"Comment\": \"{}\"}}", "x".repeat(2 << 20))).unwrap();
    let out = sb.run(&["workflow", "run", huge.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("more than"), "{}", stderr(&out));

    // A Choice that loops forever without waiting is stopped, not hung.
    let looping = sb.json("loop.json", &json!({"StartAt": "C", "States": {
        "C": {"Type": "Choice", "Choices": [{"Variable": "$.x", "IsPresent": false, "Next": "C"}], "Default": "D"},
        "D": {"Type": "Succeed"}}}));
    let out = sb.run(&["workflow", "run", looping.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout_json(&out)["error"], "States.Runtime");
}

#[test]
fn reference_pipeline_processes_a_photo_end_to_end() {
    let sb = Sandbox::new();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let out_dir = sb.path().join("out");
    let input = sb.json("in.json", &json!({"path": root.join("tests/data/large.jpg"), "outputDir": out_dir}));
    let out = sb.run(&["workflow", "run", root.join("workflows/image-pipeline.asl.json").to_str().unwrap(), "--input", input.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let result = stdout_json(&out);
    assert_eq!(result["validation"]["isValid"], true);
    assert_eq!(result["processed"]["resized"]["variants"][0]["width"], 320);
    for name in ["large-thumb.jpg", "large-web.jpg", "large-filtered.jpg", "large-thumb.min.jpg", "large-web.min.jpg", "large-filtered.min.jpg"] {
        assert!(out_dir.join(name).is_file(), "{name} written");
    }
    // The parallel branches and every task are in the history.
    let rows = stdout_json(&sb.run(&["history", "list", "--json"]));
    let show = stdout_json(&sb.run(&["history", "show", rows[0]["id"].as_str().unwrap(), "--json"]));
    let kinds: Vec<&str> = show["events"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds.iter().filter(|k| **k == "TaskSucceeded").count(), 5, "validate, resize, filter, optimize, notify: {kinds:?}");
    assert!(kinds.contains(&"ParallelStateSucceeded"));
}

/// A one-shot HTTP server on loopback: answers `status` to the first request and hands back
/// what it received.
fn one_shot_server(status: u16) -> (String, std::thread::JoinHandle<String>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook?token=s3cret", listener.local_addr().unwrap());
    let handle = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut length = 0;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap();
            }
            if line == "\r\n" || line.is_empty() {
                break;
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        write!(stream, "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").unwrap();
        String::from_utf8(body).unwrap()
    });
    (url, handle)
}

#[test]
fn notify_posts_to_a_webhook_named_by_an_environment_variable() {
    let sb = Sandbox::new();
    let def = sb.json("def.json", &json!({"StartAt": "N", "States": {"N": {"Type": "Task", "Resource": "pixelflow:notify",
        "Parameters": {"status": "SUCCEEDED", "path.$": "$.path", "webhookEnv": "MY_HOOK"}, "End": true}}}));
    let input = sb.json("in.json", &json!({"path": "a.jpg"}));
    let (url, server) = one_shot_server(200);
    let out = sb.cmd().env("MY_HOOK", &url).args(["workflow", "run", def.to_str().unwrap(), "--input", input.to_str().unwrap()]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout_json(&out)["webhookDelivered"], true);
    let posted: Value = serde_json::from_str(&server.join().unwrap()).unwrap();
    assert_eq!(posted["status"], "SUCCEEDED");
    assert_eq!(posted["path"], "a.jpg");
    assert!(posted.get("webhookEnv").is_none());

    // The token in the URL is in neither the history nor the logs.
    let db = std::fs::read(sb.data_dir().join("history.sqlite")).unwrap();
    let wal = std::fs::read(sb.data_dir().join("history.sqlite-wal")).unwrap_or_default();
    for bytes in [&db, &wal] {
        assert!(!String::from_utf8_lossy(bytes).contains("s3cret"));
    }
    assert!(!stderr(&out).contains("s3cret"));
}

#[test]
fn a_failing_webhook_fails_the_task_with_a_retryable_error() {
    let sb = Sandbox::new();
    let (url, server) = one_shot_server(503);
    let def = sb.json("def.json", &json!({"StartAt": "N", "States": {"N": {"Type": "Task", "Resource": "pixelflow:notify",
        "Parameters": {"status": "FAILED", "webhook": url}, "End": true}}}));
    let out = sb.run(&["workflow", "run", def.to_str().unwrap()]);
    server.join().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stdout_json(&out);
    assert_eq!(err["error"], "Pixelflow.WebhookFailed");
    assert!(err["cause"].as_str().unwrap().contains("503"));
}
