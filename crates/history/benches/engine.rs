//! Engine overhead with durable history, timed inside the process: the Pixelflow half of
//! `bench/engine.sh`, which runs aws-local-stepfunctions on the same definitions.
//!
//! For each run: a new execution is created, run to its end and finished, every event committed
//! to SQLite (WAL) before the clock stops: the same work as `pixelflow workflow run` minus the
//! process start, opening the database and validating the definition, which node's side does
//! not time either. The first run is the cold one (as node's single run is); later runs show
//! the warm rate.
//!
//! Usage: cargo bench -p pixelflow-history --bench engine -- DEFINITION.json INPUT.json [RUNS]
//! Prints one JSON line: {"seconds": [first run, second run, ...], "events": <events of the last run>}.

use std::sync::Arc;
use std::time::Instant;

use pixelflow_engine::{asl, CancelToken, Engine, Execution, StepRegistry, SystemClock};
use pixelflow_history::{History, NewExecution, Outcome};
use serde_json::Value;

// The allocator `pixelflow` itself uses (crates/cli/src/main.rs).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
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
    let engine = Engine::new(steps, history.clone(), clock);

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
        history.create_execution(&new).expect("create the execution");
        let exec = Execution { id: id.clone(), name: id.clone(), state_machine_name: "bench".into(), input: new.input, start_ms: new.started_at_ms };
        let outcome = match engine.run(&machine, &exec, &CancelToken::new()) {
            Ok(output) => Outcome::Succeeded(output),
            Err(stop) => panic!("the benchmark workflow did not succeed: {stop:?}"),
        };
        // Commits the execution's row and every event recorded before it.
        history.finish_execution(&id, &outcome).expect("finish the execution");
        seconds.push(started.elapsed().as_secs_f64());
        last_id = id;
    }
    let events = history.event_count(&last_id).expect("count the events");
    println!("{}", serde_json::json!({ "seconds": seconds, "events": events }));
}
