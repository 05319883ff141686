//! Task steps: the local work that a Task state's `"Resource": "pixelflow:<name>"` calls.
//! The engine defines the trait; the app and the image crates implement it.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use serde_json::Value;

use crate::cancel::CancelToken;
use crate::error::Failure;

/// The prefix of every Task resource this engine runs.
pub const RESOURCE_PREFIX: &str = "pixelflow:";
/// The suffix that turns a task into a wait-for-callback task.
pub const WAIT_FOR_TASK_TOKEN: &str = ".waitForTaskToken";

/// What a step sees of the execution besides its input.
pub struct TaskContext {
    pub execution_id: String,
    pub state_name: String,
    /// How many times this task was retried before this attempt (`$$.State.RetryCount`).
    pub retry_count: u32,
    /// The token, for a `.waitForTaskToken` task.
    pub task_token: Option<String>,
    pub cancel: CancelToken,
    pub(crate) last_heartbeat_ms: Arc<AtomicI64>,
    pub(crate) clock: Arc<dyn crate::clock::Clock>,
}

impl TaskContext {
    /// Tells the engine the step is alive (resets the `HeartbeatSeconds` timer).
    pub fn heartbeat(&self) {
        self.last_heartbeat_ms.store(self.clock.now_ms(), Ordering::SeqCst);
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// Sleeps up to `d`, returning early (false) when the task is cancelled.
    pub fn sleep(&self, d: std::time::Duration) -> bool {
        self.clock.sleep(d, &self.cancel)
    }
}

/// One local step. It must be idempotent: the same input gives the same output, and files it
/// writes are written atomically under a deterministic name, because a crash between the work
/// and its checkpoint makes a resumed execution call it again.
pub trait Step: Send + Sync {
    fn run(&self, input: Value, ctx: &TaskContext) -> Result<Value, Failure>;
}

impl<F> Step for F
where
    F: Fn(Value, &TaskContext) -> Result<Value, Failure> + Send + Sync,
{
    fn run(&self, input: Value, ctx: &TaskContext) -> Result<Value, Failure> {
        self(input, ctx)
    }
}

/// The steps an engine can call, by name (the part after `pixelflow:`).
#[derive(Clone, Default)]
pub struct StepRegistry {
    steps: std::collections::BTreeMap<String, Arc<dyn Step>>,
}

impl StepRegistry {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn register(&mut self, name: &str, step: impl Step + 'static) -> &mut Self {
        self.steps.insert(name.to_string(), Arc::new(step));
        self
    }

    pub fn get(&self, name: &str) -> Option<Arc<dyn Step>> {
        self.steps.get(name).cloned()
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.steps.keys().map(String::as_str)
    }

    /// Splits a Task resource into the step name and whether it waits for a task token.
    /// `None` when the resource is not a `pixelflow:` resource.
    pub fn parse_resource(resource: &str) -> Option<(&str, bool)> {
        let name = resource.strip_prefix(RESOURCE_PREFIX)?;
        Some(match name.strip_suffix(WAIT_FOR_TASK_TOKEN) {
            Some(base) => (base, true),
            None => (name, false),
        })
    }
}
