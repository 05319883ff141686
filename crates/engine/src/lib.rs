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
