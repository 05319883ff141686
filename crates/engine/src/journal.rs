//! What the interpreter needs from durable storage: an append-only event history, task
//! checkpoints that make a resumed execution replay finished work instead of redoing it, and
//! task tokens for `.waitForTaskToken` callbacks. `pixelflow-history` implements it on SQLite;
//! [`MemoryJournal`] is the in-memory twin for tests and throwaway runs.

use std::collections::HashMap;
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::cancel::CancelToken;
use crate::error::Failure;
use crate::interpreter::Stop;

/// One history event, modelled on Step Functions' history events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// `ExecutionStarted`, `TaskStateEntered`, `TaskScheduled`, `MapIterationFailed`, ...
    pub kind: String,
    /// The state's name, when the event belongs to one.
    pub state: Option<String>,
    /// Where in the run the event happened: the deterministic key of the state visit
    /// (`/0:Validate`, `/3:Batch/item/7/0:Resize#1`). Together with `kind` it makes the event
    /// unique within its execution, so a replay after a crash never records it twice.
    pub key: String,
    /// Input, output, error, cause... as the event kind calls for.
    pub detail: Value,
}

/// The recorded result of a piece of work that must not be done twice: a task attempt's
/// output or failure, or a Wait state's deadline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Checkpoint {
    Succeeded(Value),
    Failed(Failure),
    /// A Wait state's deadline, in milliseconds since the Unix epoch.
    WaitUntil(i64),
}

/// Answer to a task token, sent by `pixelflow task success|failure` or the review queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum TokenOutcome {
    Succeeded(Value),
    Failed(Failure),
}

/// Error of the storage behind a journal. The interpreter turns it into a failed execution:
/// work whose result cannot be made durable must not be reported as done.
#[derive(Debug, Clone, thiserror::Error)]
#[error("history storage failed: {0}")]
pub struct JournalError(pub String);

/// The storage an execution records into. Methods take the execution id so one journal can
/// serve many concurrent executions.
pub trait Journal: Send + Sync {
    /// A run of `execution` begins: its first, or a resume that will replay the finished
    /// prefix. Called before the run records anything. (No default: a journal that wraps
    /// another must pass it on, or the one below would not recognise a replay.)
    fn begin(&self, execution: &str);

    /// Appends an event. May be buffered. An event with the same (`kind`, `key`) as one recorded
    /// by an earlier run of the execution is ignored: that is a resumed run replaying its
    /// finished prefix. Within one run the interpreter never repeats a (`kind`, `key`), which
    /// lets a journal skip the check for an execution that had no events when its run began.
    fn record(&self, execution: &str, event: Event);

    /// Records an event whose detail is the object `{name: value, ...}`. The same as
    /// [`Journal::record`]; a journal that serializes events overrides it to write the values
    /// without copying them (the interpreter records every state's input and output this way).
    fn record_fields(&self, execution: &str, kind: &str, state: Option<&str>, key: &str, fields: &[(&str, &Value)]) {
        let detail = Value::Object(fields.iter().map(|(name, value)| (name.to_string(), (*value).clone())).collect());
        self.record(execution, Event { kind: kind.to_string(), state: state.map(str::to_string), key: key.to_string(), detail });
    }

    /// The checkpoint stored under `key`, if any.
    fn checkpoint(&self, execution: &str, key: &str) -> Result<Option<Checkpoint>, JournalError>;

    /// Stores a checkpoint and returns only once it (and every event recorded before it) is durable.
    fn save_checkpoint(&self, execution: &str, key: &str, checkpoint: &Checkpoint) -> Result<(), JournalError>;

    /// Returns the task token for the task visit `key`, creating it the first time, together
    /// with the payload a reviewer sees (the task's effective input). The same key always gives
    /// the same token, so a resumed execution keeps waiting on the token already handed out.
    fn task_token(&self, execution: &str, key: &str, state: &str, payload: &Value) -> Result<String, JournalError>;

    /// Waits until the token is answered, `timeout` passes (returns `Ok(None)`), or `cancel` fires.
    fn wait_for_token(
        &self,
        token: &str,
        timeout: Option<Duration>,
        cancel: &CancelToken,
    ) -> Result<Option<TokenOutcome>, JournalError>;

    /// Makes everything recorded so far durable.
    fn flush(&self) -> Result<(), JournalError>;

    /// A run of `execution` ended with `result` (its terminal event is recorded): makes
    /// everything recorded for it durable together with how it ended, and fails if an event of
    /// it could not be stored, so that an execution whose history is incomplete is not
    /// reported as succeeded. The interpreter calls it once, last, for every run; an
    /// interrupted run stays unfinished, to be resumed. One call, not a commit and then a
    /// separate "finished", because each is a round trip to a durable store that the end of
    /// every run waits for. (No default: a journal that wraps another must pass it on.)
    fn end(&self, execution: &str, result: &Result<Value, Stop>) -> Result<(), JournalError>;
}

/// A journal that keeps everything in memory. Used by tests and by `run_in_memory`.
#[derive(Default)]
pub struct MemoryJournal {
    state: Mutex<MemoryState>,
    answered: Condvar,
}

#[derive(Default)]
struct MemoryState {
    events: Vec<(String, Event)>,
    seen: std::collections::HashSet<(String, String, String)>,
    /// (execution, kind, key) recorded by the current run of each execution: checks, in debug
    /// builds, the promise that a run never repeats one.
    this_run: std::collections::HashSet<(String, String, String)>,
    checkpoints: HashMap<(String, String), Checkpoint>,
    tokens: HashMap<(String, String), String>,
    token_payloads: HashMap<String, Value>,
    answers: HashMap<String, TokenOutcome>,
}

impl MemoryJournal {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every event recorded for `execution`, in order.
    pub fn events(&self, execution: &str) -> Vec<Event> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.events.iter().filter(|(e, _)| e == execution).map(|(_, ev)| ev.clone()).collect()
    }

    /// Tokens handed out and not yet answered, with their payloads.
    pub fn pending_tokens(&self) -> Vec<(String, Value)> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut pending: Vec<_> = state
            .token_payloads
            .iter()
            .filter(|(t, _)| !state.answers.contains_key(*t))
            .map(|(t, p)| (t.clone(), p.clone()))
            .collect();
        pending.sort_by(|a, b| a.0.cmp(&b.0));
        pending
    }

    /// Answers a token; returns false when the token is unknown or already answered.
    pub fn answer(&self, token: &str, outcome: TokenOutcome) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if !state.token_payloads.contains_key(token) || state.answers.contains_key(token) {
            return false;
        }
        state.answers.insert(token.to_string(), outcome);
        self.answered.notify_all();
        true
    }
}

impl Journal for MemoryJournal {
    fn begin(&self, execution: &str) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.this_run.retain(|(e, _, _)| e != execution);
    }

    fn record(&self, execution: &str, event: Event) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let id = (execution.to_string(), event.kind.clone(), event.key.clone());
        let repeated = !state.this_run.insert(id.clone());
        debug_assert!(!repeated, "one run recorded {} with key {:?} twice", event.kind, event.key);
        if state.seen.insert(id) {
            state.events.push((execution.to_string(), event));
        }
    }

    fn checkpoint(&self, execution: &str, key: &str) -> Result<Option<Checkpoint>, JournalError> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        Ok(state.checkpoints.get(&(execution.to_string(), key.to_string())).cloned())
    }

    fn save_checkpoint(&self, execution: &str, key: &str, checkpoint: &Checkpoint) -> Result<(), JournalError> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.checkpoints.insert((execution.to_string(), key.to_string()), checkpoint.clone());
        Ok(())
    }

    fn task_token(&self, execution: &str, key: &str, _state: &str, payload: &Value) -> Result<String, JournalError> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let id = (execution.to_string(), key.to_string());
        if let Some(token) = state.tokens.get(&id) {
            return Ok(token.clone());
        }
        let token = uuid::Uuid::new_v4().to_string();
        state.tokens.insert(id, token.clone());
        state.token_payloads.insert(token.clone(), payload.clone());
        Ok(token)
    }

    fn wait_for_token(
        &self,
        token: &str,
        timeout: Option<Duration>,
        cancel: &CancelToken,
    ) -> Result<Option<TokenOutcome>, JournalError> {
        let deadline = timeout.map(|t| std::time::Instant::now() + t);
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(answer) = state.answers.get(token) {
                return Ok(Some(answer.clone()));
            }
            if cancel.is_cancelled() {
                return Ok(None);
            }
            let mut slice = Duration::from_millis(50);
            if let Some(deadline) = deadline {
                let now = std::time::Instant::now();
                if now >= deadline {
                    return Ok(None);
                }
                slice = slice.min(deadline - now);
            }
            state = self.answered.wait_timeout(state, slice).unwrap_or_else(|e| e.into_inner()).0;
        }
    }

    fn flush(&self) -> Result<(), JournalError> {
        Ok(())
    }

    fn end(&self, _execution: &str, _result: &Result<Value, Stop>) -> Result<(), JournalError> {
        Ok(())
    }
}
