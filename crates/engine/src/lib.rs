//! The Amazon States Language engine: definitions are parsed and validated into a
//! `StateMachine`, then run by the interpreter. It has no file system, network or database of
//! its own: the steps that Task states call, the journal that records history and checkpoints,
//! and the clock come in through traits, so the same interpreter serves the CLI, the desktop app
//! and the tests.

pub mod cancel;
pub mod choice;
pub mod clock;
pub mod error;
pub mod intrinsics;
pub mod journal;
pub mod path;
pub mod step;

pub use cancel::CancelToken;
pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{Diagnostic, Diagnostics, Failure};
pub use journal::{Checkpoint, Event, Journal, JournalError, MemoryJournal, TokenOutcome};
pub use step::{Step, StepRegistry, TaskContext};
pub mod asl;
pub mod interpreter;

pub use asl::StateMachine;
pub use interpreter::{Engine, Execution, Stop};

/// Validates and runs a definition entirely in memory, with no registered steps and a manual
/// clock (Wait states take no real time). The differential tests against other ASL
/// implementations use it.
pub fn run_in_memory(definition: &serde_json::Value, input: serde_json::Value) -> Result<Result<serde_json::Value, Failure>, Diagnostics> {
    let steps = StepRegistry::new();
    let machine = asl::parse(definition, &steps)?;
    let engine = Engine::new(steps, std::sync::Arc::new(MemoryJournal::new()), std::sync::Arc::new(ManualClock::new(1_700_000_000_000)));
    let exec = Execution {
        id: "arn:pixelflow:execution:local:in-memory".to_string(),
        name: "in-memory".to_string(),
        state_machine_name: "local".to_string(),
        input,
        start_ms: 1_700_000_000_000,
    };
    Ok(match engine.run(&machine, &exec, &CancelToken::new()) {
        Ok(v) => Ok(v),
        Err(Stop::Failed(f)) | Err(Stop::TimedOut(f)) => Err(f),
        Err(Stop::Interrupted) => Err(Failure::new(error::names::ABORTED, "interrupted")),
    })
}
