//! Starting, resuming and answering executions: the one place where a workflow meets the
//! history. Every entry point (CLI, desktop app, watch folders, tests) goes through here.

use std::sync::Arc;

use pixelflow_engine::{CancelToken, Engine, Execution, Failure, Journal, Stop, TokenOutcome};
use pixelflow_history::{ExecutionRecord, NewExecution, Outcome, TokenAnswer};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::workflow::Workflow;
use crate::App;

/// How a run ended, as callers report it.
#[derive(Debug, Clone, PartialEq)]
pub enum Finished {
    Succeeded(Value),
    Failed(Failure),
    TimedOut(Failure),
    /// Stopped by the caller's cancel token; the execution stays RUNNING and resumes later.
    Interrupted,
}

#[derive(Debug, Clone)]
pub struct ExecutionResult {
    pub id: String,
    pub finished: Finished,
}

/// Largest execution input accepted.
pub const MAX_INPUT_BYTES: usize = 16 * 1024 * 1024;

/// Starts an execution of `workflow` and runs it to its end (or until `cancel` fires).
pub fn start(app: &App, workflow: &Workflow, input: Value, name: Option<&str>, cancel: &CancelToken) -> Result<ExecutionResult> {
    start_with_journal(app, workflow, input, name, cancel, app.journal())
}

/// Like [`start`], recording through `journal` (a journal that wraps the app's history to
/// watch the events as they happen, as the batch runner does for its progress bar).
pub fn start_with_journal(
    app: &App,
    workflow: &Workflow,
    input: Value,
    name: Option<&str>,
    cancel: &CancelToken,
    journal: Arc<dyn Journal>,
) -> Result<ExecutionResult> {
    let id = uuid::Uuid::new_v4().to_string();
    let new = NewExecution {
        id: id.clone(),
        name: name.map(str::to_string).unwrap_or_else(|| id.clone()),
        workflow_name: workflow.name.clone(),
        workflow_hash: workflow.hash.clone(),
        definition: workflow.text.clone(),
        input,
        started_at_ms: app.clock().now_ms(),
    };
    app.history().create_execution(&new)?;
    run(app, workflow, &new.id, &new.name, new.input, new.started_at_ms, cancel, journal)
}

/// Records an attempt that was refused before running (an invalid definition or input:
/// `States.ValidationError` with the diagnostics; or another refusal with its own error), so
/// the history shows it; nothing else is written.
pub fn reject(app: &App, workflow_name: &str, definition: &str, input: Value, failure: &Failure) -> Result<String> {
    let id = uuid::Uuid::new_v4().to_string();
    let new = NewExecution {
        id: id.clone(),
        name: id.clone(),
        workflow_name: workflow_name.to_string(),
        workflow_hash: blake3::hash(definition.as_bytes()).to_hex().to_string(),
        definition: definition.to_string(),
        input,
        started_at_ms: app.clock().now_ms(),
    };
    app.history().record_rejected(&new, failure)?;
    Ok(id)
}

/// Resumes one RUNNING execution whose process died. Finished tasks replay from their
/// checkpoints; nothing that finished runs again.
pub fn resume(app: &App, id: &str, cancel: &CancelToken) -> Result<ExecutionResult> {
    let record = app.history().execution(id)?.ok_or_else(|| Error::NotFound(format!("no execution '{id}'")))?;
    if !app.history().claim(&record.id)? {
        return Err(Error::NotFound(format!(
            "execution {} is not waiting to be resumed (status {}, or another process runs it)",
            record.id,
            record.status.as_str()
        )));
    }
    resume_claimed(app, record, cancel)
}

/// Resumes every execution left RUNNING by a process that is gone. Returns their results.
pub fn resume_orphans(app: &App, cancel: &CancelToken) -> Result<Vec<ExecutionResult>> {
    let mut results = Vec::new();
    for record in app.history().orphaned_executions()? {
        if cancel.is_cancelled() {
            break;
        }
        if app.history().claim(&record.id)? {
            tracing::info!(execution = %record.id, workflow = %record.workflow_name, "resuming an execution left unfinished");
            results.push(resume_claimed(app, record, cancel)?);
        }
    }
    Ok(results)
}

fn resume_claimed(app: &App, record: ExecutionRecord, cancel: &CancelToken) -> Result<ExecutionResult> {
    let workflow = match Workflow::from_text(&record.workflow_name, &record.definition, app.steps()) {
        Ok(w) => w,
        Err(diags) => {
            // The definition was valid when it started; this build no longer accepts it (a step
            // was removed). Fail it with the reason rather than leaving it RUNNING forever.
            let failure = Failure::new("States.Runtime", format!("the workflow can no longer run in this build: {diags}"));
            app.history().finish_execution(&record.id, &Outcome::Failed(failure.clone()))?;
            return Ok(ExecutionResult { id: record.id, finished: Finished::Failed(failure) });
        }
    };
    run(app, &workflow, &record.id, &record.name, record.input, record.started_at_ms, cancel, app.journal())
}

#[allow(clippy::too_many_arguments)]
fn run(
    app: &App,
    workflow: &Workflow,
    id: &str,
    name: &str,
    input: Value,
    start_ms: i64,
    cancel: &CancelToken,
    journal: Arc<dyn Journal>,
) -> Result<ExecutionResult> {
    let engine = Engine::new(app.steps().clone(), journal, app.clock().clone());
    let exec = Execution {
        id: id.to_string(),
        name: name.to_string(),
        state_machine_name: workflow.name.clone(),
        input,
        start_ms,
    };
    // The journal stored how the run ended (`Journal::end`): finished, or handed back
    // unfinished if interrupted.
    let finished = match engine.run(&workflow.machine, &exec, cancel) {
        Ok(output) => Finished::Succeeded(output),
        Err(Stop::Failed(f)) => Finished::Failed(f),
        Err(Stop::TimedOut(f)) => Finished::TimedOut(f),
        Err(Stop::Interrupted) => Finished::Interrupted,
    };
    Ok(ExecutionResult { id: id.to_string(), finished })
}

/// Answers a task token (`pixelflow task success|failure`, the review queue).
pub fn answer_token(app: &App, token: &str, outcome: TokenOutcome) -> Result<String> {
    match app.history().answer_token(token, &outcome)? {
        TokenAnswer::Answered { execution_id } => Ok(execution_id),
        TokenAnswer::Unknown => Err(Error::NotFound(format!("no task token '{token}'"))),
        TokenAnswer::AlreadyAnswered => Err(Error::invalid("", format!("task token '{token}' was already answered"))),
    }
}
