//! Engine overhead with durable history, timed inside the process: the Pixelflow half of
//! `bench/engine.sh`, which runs aws-local-stepfunctions on the same definitions.
//!
//! For each run: a new execution is created, run to its end and finished, every event committed
//! to SQLite (WAL) before the clock stops: the same work as `pixelflow workflow run` minus the
//! process start, opening the database and validating the definition, which node's side does
//! not time either. The first run is the cold one (as node's single run is); later runs show
//! the warm rate.
//!
//! With `--no-history` the engine records into a journal that drops every event and no
//! execution row is written: the engine's own cost, for reference.
//!
//! Usage: cargo bench -p pixelflow-history --bench engine -- DEFINITION.json INPUT.json [RUNS] [--no-history]
//! Prints one JSON line: {"seconds": [first run, second run, ...], "events": <events of the last run>}.

use std::sync::Arc;
use std::time::Instant;

use pixelflow_engine::{asl, CancelToken, Checkpoint, Engine, Event, Execution, Journal, JournalError, StepRegistry, Stop, SystemClock, TokenOutcome};
use pixelflow_history::{History, NewExecution};
use serde_json::Value;

// The allocator `pixelflow` itself uses (crates/cli/src/main.rs).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let no_history = args.iter().any(|a| a == "--no-history");
    args.retain(|a| a != "--no-history");
    let [definition, input, rest @ ..] = args.as_slice() else {
        eprintln!("usage: engine DEFINITION.json INPUT.json [RUNS]");
        std::process::exit(2);
    };
    let runs: usize = rest.first().map_or(1, |r| r.parse().expect("RUNS is a number"));
    let text = std::fs::read_to_string(definition).expect("read the definition");
    let input: Value = serde_json::from_str(&std::fs::read_to_string(input).expect("read the input")).expect("input is JSON");

    let steps = StepRegistry::new();
    let machine = asl::parse_str(&text, &steps).expect("a valid definition");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let history = Arc::new(History::open(&dir.path().join("history.db")).expect("open the history"));
    let clock = Arc::new(SystemClock);
    let journal: Arc<dyn Journal> = if no_history { Arc::new(DropEvents) } else { history.clone() };
    let engine = Engine::new(steps, journal, clock);

    let mut seconds = Vec::with_capacity(runs);
    let mut last_id = String::new();
    for run in 0..runs {
        let id = format!("bench-{run}");
        // The copy of the input each run consumes is made before the clock starts.
        let mut new = NewExecution {
            id: id.clone(),
            name: id.clone(),
            workflow_name: "bench".into(),
            workflow_hash: "bench".into(),
            definition: text.clone(),
            input: input.clone(),
            started_at_ms: 0,
        };
        // From here on, what `pixelflow workflow run` does once the definition is validated
        // (pixelflow_app::execution::start).
        let started = Instant::now();
        new.started_at_ms = pixelflow_history::now_ms();
        if !no_history {
            history.create_execution(&new).expect("create the execution");
        }
        let exec = Execution { id: id.clone(), name: id.clone(), state_machine_name: "bench".into(), input: new.input, start_ms: new.started_at_ms };
        // Returns once the execution's row, finished, and every event of the run are committed
        // (`Journal::end`).
        if let Err(stop) = engine.run(&machine, &exec, &CancelToken::new()) {
            panic!("the benchmark workflow did not succeed: {stop:?}");
        }
        seconds.push(started.elapsed().as_secs_f64());
        last_id = id;
    }
    let events = if no_history { 0 } else { history.event_count(&last_id).expect("count the events") };
    println!("{}", serde_json::json!({ "seconds": seconds, "events": events }));
}

/// A journal that keeps nothing (`--no-history`). The benchmark workflows have no Task or Wait
/// state, so nothing asks it for checkpoints or tokens.
struct DropEvents;

impl Journal for DropEvents {
    fn begin(&self, _: &str) {}
    fn record(&self, _: &str, _: Event) {}
    fn record_fields(&self, _: &str, _: &str, _: Option<&str>, _: &str, _: &[(&str, &Value)]) {}
    fn checkpoint(&self, _: &str, _: &str) -> Result<Option<Checkpoint>, JournalError> {
        Ok(None)
    }
    fn save_checkpoint(&self, _: &str, _: &str, _: &Checkpoint) -> Result<(), JournalError> {
        Ok(())
    }
    fn task_token(&self, _: &str, _: &str, _: &str, _: &Value) -> Result<String, JournalError> {
        Err(JournalError("the benchmark keeps no tokens".into()))
    }
    fn wait_for_token(&self, _: &str, _: Option<std::time::Duration>, _: &CancelToken) -> Result<Option<TokenOutcome>, JournalError> {
        Ok(None)
    }
    fn flush(&self) -> Result<(), JournalError> {
        Ok(())
    }
    fn end(&self, _: &str, _: &Result<Value, Stop>) -> Result<(), JournalError> {
        Ok(())
    }
}
