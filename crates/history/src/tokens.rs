//! The `task_tokens` table: callbacks of `.waitForTaskToken` tasks.
//!
//! A token is created once per task visit (`UNIQUE (execution_id, key)`), so a resumed
//! execution keeps waiting on the token it already handed out. It is answered by
//! `pixelflow task success|failure` or the review queue, possibly from another process; the
//! waiting process polls the row. When the answer comes from this very process, a process-wide
//! condition variable wakes the waiters at once instead of at their next poll.

use std::sync::{Condvar, Mutex};

use pixelflow_engine::{Failure, TokenOutcome};
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use serde_json::Value;

use crate::error::{corrupt, Error, Result};

pub(crate) const MIGRATION: &str = "
CREATE TABLE IF NOT EXISTS task_tokens (
    token        TEXT PRIMARY KEY NOT NULL,
    execution_id TEXT NOT NULL REFERENCES executions (id) ON DELETE CASCADE,
    key          TEXT NOT NULL,
    state        TEXT NOT NULL,
    payload      TEXT NOT NULL,
    status       TEXT NOT NULL DEFAULT 'WAITING' CHECK (status IN ('WAITING', 'SUCCEEDED', 'FAILED')),
    output       TEXT,
    error        TEXT,
    cause        TEXT,
    created_at   INTEGER NOT NULL,
    answered_at  INTEGER,
    UNIQUE (execution_id, key)
);
-- The review queue: waiting tokens, oldest first.
CREATE INDEX IF NOT EXISTS task_tokens_by_status ON task_tokens (status, created_at);
";

/// A token that waits for its answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PendingToken {
    pub token: String,
    pub execution_id: String,
    /// The visit key of the task that waits.
    pub key: String,
    /// The Task state's name.
    pub state: String,
    /// What the reviewer sees: the task's effective input.
    pub payload: Value,
    /// ms since the Unix epoch.
    pub created_at_ms: i64,
}

/// What [`crate::History::answer_token`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenAnswer {
    /// The answer is stored; the execution waiting on it picks it up.
    Answered { execution_id: String },
    /// No such token.
    Unknown,
    /// The token was answered before; the first answer stands.
    AlreadyAnswered,
}

/// The state of one token, as a waiter polls it.
pub(crate) enum TokenState {
    Waiting,
    Answered(TokenOutcome),
}

/// Bumped on every answer given by this process, whichever `History` handle gave it.
static ANSWERS: Mutex<u64> = Mutex::new(0);
static ANSWERED: Condvar = Condvar::new();

/// The current answer generation; a waiter reads it *before* polling the database so an answer
/// committed between its poll and its wait still wakes it.
pub(crate) fn answer_generation() -> u64 {
    *ANSWERS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Wakes every in-process waiter; called after an answer committed.
pub(crate) fn notify_answered() {
    let mut generation = ANSWERS.lock().unwrap_or_else(|e| e.into_inner());
    *generation = generation.wrapping_add(1);
    ANSWERED.notify_all();
}

/// Sleeps until an answer is given in this process after `seen`, or `slice` passes.
pub(crate) fn wait_answer(seen: u64, slice: std::time::Duration) {
    let generation = ANSWERS.lock().unwrap_or_else(|e| e.into_inner());
    if *generation == seen {
        let _ = ANSWERED.wait_timeout(generation, slice);
    }
}

/// The token of the visit (`execution`, `key`), created with a fresh UUID the first time.
pub(crate) fn get_or_create(conn: &Connection, execution: &str, key: &str, state: &str, payload: &str, now: i64) -> Result<String> {
    let fresh = uuid::Uuid::new_v4().to_string();
    conn.prepare_cached(
        "INSERT OR IGNORE INTO task_tokens (token, execution_id, key, state, payload, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![fresh, execution, key, state, payload, now])?;
    Ok(conn
        .prepare_cached("SELECT token FROM task_tokens WHERE execution_id = ?1 AND key = ?2")?
        .query_row([execution, key], |r| r.get(0))?)
}

/// Stores the first answer of a token.
pub(crate) fn answer(conn: &Connection, token: &str, outcome: &TokenOutcome, now: i64) -> Result<TokenAnswer> {
    let (status, output, error, cause) = match outcome {
        TokenOutcome::Succeeded(v) => ("SUCCEEDED", Some(v.to_string()), None, None),
        TokenOutcome::Failed(f) => ("FAILED", None, Some(f.error.as_str()), Some(f.cause.as_str())),
    };
    let execution: Option<String> = conn
        .prepare_cached(
            "UPDATE task_tokens SET status = ?2, output = ?3, error = ?4, cause = ?5, answered_at = ?6
             WHERE token = ?1 AND status = 'WAITING'
             RETURNING execution_id",
        )?
        .query_row(params![token, status, output, error, cause, now], |r| r.get(0))
        .optional()?;
    if let Some(execution_id) = execution {
        return Ok(TokenAnswer::Answered { execution_id });
    }
    let exists = conn
        .prepare_cached("SELECT 1 FROM task_tokens WHERE token = ?1")?
        .query_row([token], |_| Ok(()))
        .optional()?
        .is_some();
    Ok(if exists { TokenAnswer::AlreadyAnswered } else { TokenAnswer::Unknown })
}

/// The token's state, `Err(UnknownToken)` if it was never handed out.
pub(crate) fn poll(conn: &Connection, token: &str) -> Result<TokenState> {
    type Row = (String, Option<String>, Option<String>, Option<String>);
    let row: Option<Row> = conn
        .prepare_cached("SELECT status, output, error, cause FROM task_tokens WHERE token = ?1")?
        .query_row([token], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .optional()?;
    let Some((status, output, error, cause)) = row else {
        return Err(Error::UnknownToken(token.to_string()));
    };
    match status.as_str() {
        "WAITING" => Ok(TokenState::Waiting),
        "SUCCEEDED" => {
            let output = output.as_deref().unwrap_or("null");
            let value = serde_json::from_str(output).map_err(|e| corrupt("task token output", e))?;
            Ok(TokenState::Answered(TokenOutcome::Succeeded(value)))
        }
        "FAILED" => Ok(TokenState::Answered(TokenOutcome::Failed(Failure::new(
            error.unwrap_or_default(),
            cause.unwrap_or_default(),
        )))),
        other => Err(Error::Corrupt(format!("task token status {other:?}"))),
    }
}

/// Waiting tokens of RUNNING executions, oldest first. A token left WAITING by an execution
/// that stopped (aborted, timed out) is not pending any more: nobody would pick the answer up.
pub(crate) fn pending(conn: &Connection) -> Result<Vec<PendingToken>> {
    let mut stmt = conn.prepare_cached(
        "SELECT t.token, t.execution_id, t.key, t.state, t.payload, t.created_at
         FROM task_tokens t JOIN executions e ON e.id = t.execution_id
         WHERE t.status = 'WAITING' AND e.status = 'RUNNING'
         ORDER BY t.created_at, t.token",
    )?;
    let mut rows = stmt.query([])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let payload: String = row.get(4)?;
        out.push(PendingToken {
            token: row.get(0)?,
            execution_id: row.get(1)?,
            key: row.get(2)?,
            state: row.get(3)?,
            payload: serde_json::from_str(&payload).map_err(|e| corrupt("task token payload", e))?,
            created_at_ms: row.get(5)?,
        });
    }
    Ok(out)
}
