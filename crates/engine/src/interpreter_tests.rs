//! Interpreter tests that need control over time, concurrency and crashes: a manual clock for
//! Retry backoff and timeouts, counting steps for MaxConcurrency, and a shared journal to replay
//! an interrupted run.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::asl;
use crate::cancel::CancelToken;
use crate::clock::{ManualClock, SystemClock};
use crate::error::Failure;
use crate::interpreter::{Engine, Execution, Stop};
use crate::journal::{Journal, MemoryJournal};
use crate::step::{StepRegistry, TaskContext};

fn exec(id: &str, input: Value) -> Execution {
    Execution { id: id.into(), name: id.into(), state_machine_name: "test".into(), input, start_ms: 1_000_000 }
}

/// A step that fails with `error` until it has been called `fail_times` times.
fn flaky(calls: Arc<AtomicUsize>, error: &'static str, fail_times: usize) -> impl Fn(Value, &TaskContext) -> Result<Value, Failure> {
    move |_v, _ctx| {
        let n = calls.fetch_add(1, Ordering::SeqCst);
        if n < fail_times {
            Err(Failure::new(error, format!("attempt {n}")))
        } else {
            Ok(json!({ "calls": n + 1 }))
        }
    }
}

fn run_with(steps: StepRegistry, clock: Arc<ManualClock>, def: Value, input: Value) -> Result<Value, Stop> {
    let machine = asl::parse(&def, &steps).expect("valid definition");
    let engine = Engine::new(steps, Arc::new(MemoryJournal::new()), clock);
    engine.run(&machine, &exec("e1", input), &CancelToken::new())
}

#[test]
fn retry_backoff_follows_interval_rate_and_cap() {
    let calls = Arc::new(AtomicUsize::new(0));
    let mut steps = StepRegistry::new();
    steps.register("flaky", flaky(calls.clone(), "Flaky", 4));
    let clock = Arc::new(ManualClock::new(0));
    let def = json!({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "pixelflow:flaky", "End": true,
        "Retry": [{"ErrorEquals": ["Flaky"], "IntervalSeconds": 2, "BackoffRate": 3.0, "MaxAttempts": 5, "MaxDelaySeconds": 10}]}}});
    assert_eq!(run_with(steps, clock.clone(), def, json!({})), Ok(json!({"calls": 5})));
    assert_eq!(
        clock.sleeps(),
        [2, 6, 10, 10].map(Duration::from_secs).to_vec(),
        "delays are IntervalSeconds * BackoffRate^n, capped by MaxDelaySeconds"
    );
}

#[test]
fn retry_gives_up_after_max_attempts_and_defaults_apply() {
    let calls = Arc::new(AtomicUsize::new(0));
    let mut steps = StepRegistry::new();
    steps.register("flaky", flaky(calls.clone(), "Flaky", 100));
    let clock = Arc::new(ManualClock::new(0));
    // Defaults: IntervalSeconds 1, BackoffRate 2.0, MaxAttempts 3.
    let def = json!({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "pixelflow:flaky", "End": true,
        "Retry": [{"ErrorEquals": ["States.ALL"]}]}}});
    let err = run_with(steps, clock.clone(), def, json!({})).unwrap_err();
    assert_eq!(err, Stop::Failed(Failure::new("Flaky", "attempt 3")));
    assert_eq!(calls.load(Ordering::SeqCst), 4, "one try and three retries");
    assert_eq!(clock.sleeps(), [1, 2, 4].map(Duration::from_secs).to_vec());
}

#[test]
fn each_retrier_counts_its_own_attempts_and_zero_means_never() {
    let calls = Arc::new(AtomicUsize::new(0));
    let mut steps = StepRegistry::new();
    steps.register("flaky", flaky(calls.clone(), "Zero", 100));
    let clock = Arc::new(ManualClock::new(0));
    let def = json!({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "pixelflow:flaky", "End": true,
        "Retry": [{"ErrorEquals": ["Zero"], "MaxAttempts": 0}, {"ErrorEquals": ["States.ALL"], "MaxAttempts": 5}]}}});
    assert!(run_with(steps, clock.clone(), def, json!({})).is_err());
    assert_eq!(calls.load(Ordering::SeqCst), 1, "the first matching retrier decides, and it allows none");
    assert!(clock.sleeps().is_empty());
}

#[test]
fn full_jitter_is_bounded_and_replays_identically() {
    let delays = |exec_id: &str| {
        let calls = Arc::new(AtomicUsize::new(0));
        let mut steps = StepRegistry::new();
        steps.register("flaky", flaky(calls, "Flaky", 3));
        let clock = Arc::new(ManualClock::new(0));
        let def = json!({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "pixelflow:flaky", "End": true,
            "Retry": [{"ErrorEquals": ["Flaky"], "IntervalSeconds": 4, "BackoffRate": 2.0, "JitterStrategy": "FULL"}]}}});
        let machine = asl::parse(&def, &steps).unwrap();
        let engine = Engine::new(steps, Arc::new(MemoryJournal::new()), clock.clone());
        engine.run(&machine, &exec(exec_id, json!({})), &CancelToken::new()).unwrap();
        clock.sleeps()
    };
    let a = delays("exec-a");
    for (d, cap) in a.iter().zip([4u64, 8, 16]) {
        assert!(*d <= Duration::from_secs(cap), "{d:?} over {cap}s");
    }
    assert_eq!(a, delays("exec-a"), "the same execution draws the same jitter");
    assert_ne!(a, delays("exec-b"), "another execution draws other jitter");
}

#[test]
fn task_timeout_and_heartbeat_on_the_engine_clock() {
    let mut steps = StepRegistry::new();
    steps.register("slow", |v: Value, ctx: &TaskContext| {
        ctx.sleep(Duration::from_secs(30));
        Ok(v)
    });
    let def = json!({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "pixelflow:slow", "TimeoutSeconds": 5, "End": true}}});
    let err = run_with(steps.clone(), Arc::new(ManualClock::new(0)), def, json!({})).unwrap_err();
    assert!(matches!(err, Stop::Failed(ref f) if f.error == "States.Timeout"), "{err:?}");

    let def = json!({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "pixelflow:slow", "HeartbeatSeconds": 5, "End": true}}});
    let err = run_with(steps, Arc::new(ManualClock::new(0)), def, json!({})).unwrap_err();
    assert!(matches!(err, Stop::Failed(ref f) if f.error == "States.HeartbeatTimeout"), "{err:?}");
}

#[test]
fn a_panicking_step_fails_its_task_not_the_process() {
    let mut steps = StepRegistry::new();
    steps.register("boom", |_: Value, _: &TaskContext| -> Result<Value, Failure> { panic!("decoder exploded") });
    let def = json!({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "pixelflow:boom", "End": true,
        "Catch": [{"ErrorEquals": ["States.TaskFailed"], "Next": "Caught"}]}, "Caught": {"Type": "Pass", "End": true}}});
    let out = run_with(steps, Arc::new(ManualClock::new(0)), def, json!({})).unwrap();
    assert_eq!(out["Error"], "States.TaskFailed");
    assert!(out["Cause"].as_str().unwrap().contains("decoder exploded"));
}

#[test]
fn map_respects_max_concurrency() {
    for (max, items, expected_peak) in [(3usize, 12usize, 3usize), (1, 4, 1), (0, 50, 40)] {
        let in_flight = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let mut steps = StepRegistry::new();
        {
            let (in_flight, peak) = (in_flight.clone(), peak.clone());
            steps.register("work", move |v: Value, _: &TaskContext| {
                let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                // Hold the first items until the expected number run at once (or long enough
                // to be sure more never will), so a loaded machine cannot make this flaky.
                let deadline = std::time::Instant::now() + Duration::from_secs(10);
                while peak.load(Ordering::SeqCst) < expected_peak && std::time::Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(1));
                }
                std::thread::sleep(Duration::from_millis(5));
                in_flight.fetch_sub(1, Ordering::SeqCst);
                Ok(v)
            });
        }
        let def = json!({"StartAt": "M", "States": {"M": {"Type": "Map", "MaxConcurrency": max, "End": true,
            "ItemProcessor": {"StartAt": "W", "States": {"W": {"Type": "Task", "Resource": "pixelflow:work", "End": true}}}}}});
        let input: Vec<usize> = (0..items).collect();
        let machine = asl::parse(&def, &steps).unwrap();
        let engine = Engine::new(steps, Arc::new(MemoryJournal::new()), Arc::new(SystemClock));
        let out = engine.run(&machine, &exec("m", json!(input)), &CancelToken::new()).unwrap();
        assert_eq!(out, json!(input), "results keep the items' order");
        assert_eq!(peak.load(Ordering::SeqCst), expected_peak, "MaxConcurrency {max}");
    }
}

#[test]
fn an_interrupted_run_resumes_without_redoing_finished_tasks() {
    let journal = Arc::new(MemoryJournal::new());
    let calls: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
    let cancel = CancelToken::new();
    let mut steps = StepRegistry::new();
    {
        let (calls, cancel) = (calls.clone(), cancel.clone());
        steps.register("work", move |v: Value, _: &TaskContext| {
            let name = v["name"].as_str().unwrap_or_default().to_string();
            calls.lock().unwrap().push(name.clone());
            // The first run is "killed" while the third task works.
            if name == "c" && calls.lock().unwrap().iter().filter(|n| *n == "c").count() == 1 {
                cancel.cancel();
            }
            Ok(json!({ "did": name }))
        });
    }
    let task = |name: &str, next: &str| {
        let mut t = json!({"Type": "Task", "Resource": "pixelflow:work", "Parameters": {"name": name}, "ResultPath": format!("$.{name}")});
        if next.is_empty() { t["End"] = json!(true) } else { t["Next"] = json!(next) }
        t
    };
    let def = json!({"StartAt": "A", "States": {
        "A": task("a", "P"),
        "P": {"Type": "Parallel", "Next": "C", "ResultPath": "$.p", "Branches": [
            {"StartAt": "B1", "States": {"B1": task("b1", "")}},
            {"StartAt": "B2", "States": {"B2": task("b2", "")}}]},
        "C": task("c", "D"),
        "D": task("d", "")}});
    let machine = asl::parse(&def, &steps).unwrap();
    let engine = Engine::new(steps, journal.clone(), Arc::new(ManualClock::new(0)));
    let e = exec("resumable", json!({}));
    assert_eq!(engine.run(&machine, &e, &cancel), Err(Stop::Interrupted));
    let first_events = journal.events("resumable").len();

    let out = engine.run(&machine, &e, &CancelToken::new()).unwrap();
    assert_eq!(out["d"], json!({"did": "d"}));
    let mut ran = calls.lock().unwrap().clone();
    ran.sort();
    assert_eq!(ran, ["a", "b1", "b2", "c", "c", "d"], "only the interrupted task ran again");

    let events = journal.events("resumable");
    assert!(events.len() > first_events);
    let mut keys: Vec<_> = events.iter().map(|e| (e.kind.clone(), e.key.clone())).collect();
    let total = keys.len();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), total, "no event was recorded twice");
    assert_eq!(journal.flush().ok(), Some(()));
}

#[test]
fn execution_timeout_stops_a_long_wait() {
    let def = json!({"TimeoutSeconds": 60, "StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 3600, "End": true}}});
    let steps = StepRegistry::new();
    let machine = asl::parse(&def, &steps).unwrap();
    let engine = Engine::new(steps, Arc::new(MemoryJournal::new()), Arc::new(SystemClock));
    let mut e = exec("t", json!({}));
    e.start_ms = chrono::Utc::now().timestamp_millis() - 61_000; // started 61 s ago
    let err = engine.run(&machine, &e, &CancelToken::new()).unwrap_err();
    assert!(matches!(err, Stop::TimedOut(ref f) if f.error == "States.Timeout"), "{err:?}");
}
