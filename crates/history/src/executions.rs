//! The `executions` table: one row per execution attempt, from start (RUNNING, owned by the
//! process running it) to its terminal status. Rejected attempts (invalid definition or input)
//! get a row too, born FAILED, so `pixelflow list` shows every attempt.

use std::fmt;
use std::str::FromStr;

use pixelflow_engine::Failure;
use rusqlite::types::Value as SqlValue;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, Row};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{corrupt, Error, Result};
use crate::process::{self, ProcessIdentity};

/// Schema of the table. `input`/`output` hold JSON text; times are ms since the Unix epoch.
/// The owner columns say which process runs a RUNNING execution (see [`crate::process`]).
/// Successes by the image path in their input, for the watch service's "did this file already
/// succeed?" (one lookup per file: a scan of every execution's input would make a folder of N
/// files cost O(N^2)).
pub(crate) const MIGRATION_BY_INPUT_PATH: &str = "
CREATE INDEX IF NOT EXISTS executions_succeeded_by_input_path
    ON executions (json_extract(input, '$.path'), workflow_hash, started_at)
    WHERE status = 'SUCCEEDED';
";

/// Definitions stored once per distinct text, by BLAKE3 hash, instead of in each execution's
/// row: a batch runs one workflow thousands of times, and SQLite rewrites a whole row, large
/// definition included, when it updates the row's status (a 1,000-state definition made
/// creating and finishing an execution cost 0.3 ms each). Rows of earlier versions keep their
/// text in `definition`; new rows leave it empty.
pub(crate) const MIGRATION_DEFINITIONS: &str = "
CREATE TABLE IF NOT EXISTS definitions (
    hash TEXT PRIMARY KEY NOT NULL,
    text TEXT NOT NULL
);
ALTER TABLE executions ADD COLUMN definition_hash TEXT REFERENCES definitions (hash);
";

/// The statement of [`succeeded_on_path`]. `INDEXED BY` because without statistics SQLite
/// prefers `executions_by_status`, which serves the ORDER BY but reads the input of every
/// success since `since_ms`: one scan per file made a watched folder of N new files O(N^2).
pub(crate) const SUCCEEDED_ON_PATH: &str = "SELECT id FROM executions INDEXED BY executions_succeeded_by_input_path
     WHERE status = 'SUCCEEDED' AND json_extract(input, '$.path') = ?1 AND workflow_hash = ?2 AND started_at >= ?3
     ORDER BY started_at DESC LIMIT 20";

/// Ids of SUCCEEDED executions of `workflow_hash` whose input's `path` is `path`, started at or
/// after `since_ms`, newest first.
pub(crate) fn succeeded_on_path(conn: &Connection, path: &str, workflow_hash: &str, since_ms: i64) -> Result<Vec<String>> {
    let mut stmt = conn.prepare_cached(SUCCEEDED_ON_PATH)?;
    let ids = stmt.query_map(params![path, workflow_hash, since_ms], |r| r.get(0))?.collect::<rusqlite::Result<Vec<String>>>()?;
    Ok(ids)
}

pub(crate) const MIGRATION: &str = "
CREATE TABLE IF NOT EXISTS executions (
    id            TEXT PRIMARY KEY NOT NULL,
    name          TEXT NOT NULL,
    workflow_name TEXT NOT NULL,
    workflow_hash TEXT NOT NULL,
    definition    TEXT NOT NULL,
    input         TEXT NOT NULL,
    output        TEXT,
    error         TEXT,
    cause         TEXT,
    status        TEXT NOT NULL
                  CHECK (status IN ('RUNNING', 'SUCCEEDED', 'FAILED', 'TIMED_OUT', 'ABORTED')),
    started_at    INTEGER NOT NULL,
    stopped_at    INTEGER,
    owner_pid     INTEGER,
    owner_start   INTEGER,
    heartbeat_at  INTEGER
);
-- `list` filtered by status, newest first; orphan scans and heartbeats (status = 'RUNNING').
CREATE INDEX IF NOT EXISTS executions_by_status ON executions (status, started_at);
-- `list` without a status filter, newest first.
CREATE INDEX IF NOT EXISTS executions_by_started ON executions (started_at);
-- `list --workflow`.
CREATE INDEX IF NOT EXISTS executions_by_workflow ON executions (workflow_name, started_at);
";

/// The error name of an attempt rejected before it ran (invalid definition or input); its
/// cause is the diagnostics. Not a `States.*` error any Retry/Catch could see: nothing ran.
pub const VALIDATION_ERROR: &str = "States.ValidationError";

/// Default of [`ExecutionFilter::limit`].
pub const DEFAULT_LIST_LIMIT: usize = 100;

/// Status of an execution, stored as its Step Functions spelling (`TIMED_OUT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ExecutionStatus {
    Running,
    Succeeded,
    Failed,
    TimedOut,
    Aborted,
}

impl ExecutionStatus {
    pub const ALL: [ExecutionStatus; 5] = [
        ExecutionStatus::Running,
        ExecutionStatus::Succeeded,
        ExecutionStatus::Failed,
        ExecutionStatus::TimedOut,
        ExecutionStatus::Aborted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ExecutionStatus::Running => "RUNNING",
            ExecutionStatus::Succeeded => "SUCCEEDED",
            ExecutionStatus::Failed => "FAILED",
            ExecutionStatus::TimedOut => "TIMED_OUT",
            ExecutionStatus::Aborted => "ABORTED",
        }
    }

    pub fn is_terminal(self) -> bool {
        self != ExecutionStatus::Running
    }
}

impl fmt::Display for ExecutionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ExecutionStatus {
    type Err = String;

    /// Accepts the stored spelling in any case, and `-` for `_` (`timed-out`), for CLI flags.
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let norm = s.trim().to_ascii_uppercase().replace('-', "_");
        ExecutionStatus::ALL
            .into_iter()
            .find(|st| st.as_str() == norm)
            .ok_or_else(|| format!("unknown execution status {s:?} (expected RUNNING, SUCCEEDED, FAILED, TIMED_OUT or ABORTED)"))
    }
}

/// An execution about to start (or rejected before it could).
#[derive(Clone)]
pub struct NewExecution {
    pub id: String,
    pub name: String,
    pub workflow_name: String,
    pub workflow_hash: String,
    /// The definition as the user wrote it (JSON or YAML text).
    pub definition: String,
    pub input: Value,
    pub started_at_ms: i64,
}

impl NewExecution {
    /// A copy without the input (`null`), which may be large.
    pub(crate) fn shallow_clone(&self) -> NewExecution {
        NewExecution {
            id: self.id.clone(),
            name: self.name.clone(),
            workflow_name: self.workflow_name.clone(),
            workflow_hash: self.workflow_hash.clone(),
            definition: self.definition.clone(),
            input: Value::Null,
            started_at_ms: self.started_at_ms,
        }
    }
}

// Hand-written so the input (which may carry paths or values the user considers private) never
// ends up in a log line through `{:?}`.
impl fmt::Debug for NewExecution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewExecution")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("workflow_name", &self.workflow_name)
            .field("workflow_hash", &self.workflow_hash)
            .field("started_at_ms", &self.started_at_ms)
            .finish_non_exhaustive()
    }
}

/// How an execution ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Succeeded(Value),
    Failed(Failure),
    TimedOut(Failure),
    Aborted(Failure),
}

impl Outcome {
    pub fn status(&self) -> ExecutionStatus {
        match self {
            Outcome::Succeeded(_) => ExecutionStatus::Succeeded,
            Outcome::Failed(_) => ExecutionStatus::Failed,
            Outcome::TimedOut(_) => ExecutionStatus::TimedOut,
            Outcome::Aborted(_) => ExecutionStatus::Aborted,
        }
    }

    fn failure(&self) -> Option<&Failure> {
        match self {
            Outcome::Succeeded(_) => None,
            Outcome::Failed(f) | Outcome::TimedOut(f) | Outcome::Aborted(f) => Some(f),
        }
    }
}

/// Which executions [`crate::History::list_executions`] returns. Every field narrows; the
/// default lists the newest [`DEFAULT_LIST_LIMIT`] executions.
#[derive(Debug, Clone, Default)]
pub struct ExecutionFilter {
    pub status: Option<ExecutionStatus>,
    /// Exact workflow name.
    pub workflow: Option<String>,
    /// Started at or after this time: RFC 3339, a date (`2024-05-01`, midnight UTC) or ms
    /// since the epoch (see [`crate::parse_time`]).
    pub since: Option<String>,
    /// Started strictly before this time; same formats as `since`.
    pub until: Option<String>,
    /// Case-insensitive (ASCII) substring of the id, name, workflow name or input JSON.
    pub text: Option<String>,
    /// At most this many rows; `None` means [`DEFAULT_LIST_LIMIT`].
    pub limit: Option<usize>,
}

/// One line of `pixelflow list`. Times are ms since the Unix epoch.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionSummary {
    pub id: String,
    pub name: String,
    pub workflow_name: String,
    pub status: ExecutionStatus,
    pub started_at_ms: i64,
    pub stopped_at_ms: Option<i64>,
    pub error: Option<String>,
}

/// Everything stored about one execution. Times are ms since the Unix epoch.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionRecord {
    pub id: String,
    pub name: String,
    pub workflow_name: String,
    pub workflow_hash: String,
    pub definition: String,
    pub input: Value,
    pub output: Option<Value>,
    pub error: Option<String>,
    pub cause: Option<String>,
    pub status: ExecutionStatus,
    pub started_at_ms: i64,
    pub stopped_at_ms: Option<i64>,
    /// The process that runs (or ran) it; `None` for rejected attempts.
    pub owner_pid: Option<u32>,
    /// The owner's start identity (see [`crate::process`]).
    pub owner_start: Option<i64>,
    pub heartbeat_at_ms: Option<i64>,
}

impl ExecutionRecord {
    pub fn summary(&self) -> ExecutionSummary {
        ExecutionSummary {
            id: self.id.clone(),
            name: self.name.clone(),
            workflow_name: self.workflow_name.clone(),
            status: self.status,
            started_at_ms: self.started_at_ms,
            stopped_at_ms: self.stopped_at_ms,
            error: self.error.clone(),
        }
    }

    /// The failure of a stopped, unsuccessful execution.
    pub fn failure(&self) -> Option<Failure> {
        self.error.as_ref().map(|e| Failure::new(e.clone(), self.cause.clone().unwrap_or_default()))
    }
}

const RECORD_COLUMNS: &str = "id, name, workflow_name, workflow_hash, \
                              coalesce((SELECT text FROM definitions WHERE hash = definition_hash), definition), \
                              input, output, error, cause, \
                              status, started_at, stopped_at, owner_pid, owner_start, heartbeat_at";

fn parse_status(s: &str) -> Result<ExecutionStatus> {
    s.parse().map_err(Error::Corrupt)
}

fn record_from_row(row: &Row<'_>) -> Result<ExecutionRecord> {
    let input: String = row.get(5)?;
    let output: Option<String> = row.get(6)?;
    let status: String = row.get(9)?;
    let owner_pid: Option<i64> = row.get(12)?;
    Ok(ExecutionRecord {
        id: row.get(0)?,
        name: row.get(1)?,
        workflow_name: row.get(2)?,
        workflow_hash: row.get(3)?,
        definition: row.get(4)?,
        input: serde_json::from_str(&input).map_err(|e| corrupt("execution input", e))?,
        output: output
            .map(|o| serde_json::from_str(&o))
            .transpose()
            .map_err(|e| corrupt("execution output", e))?,
        error: row.get(7)?,
        cause: row.get(8)?,
        status: parse_status(&status)?,
        started_at_ms: row.get(10)?,
        stopped_at_ms: row.get(11)?,
        owner_pid: owner_pid.and_then(|p| u32::try_from(p).ok()),
        owner_start: row.get(13)?,
        heartbeat_at_ms: row.get(14)?,
    })
}

/// Maps "id already taken" to a clear error.
fn map_insert_error(id: &str, e: rusqlite::Error) -> Error {
    match &e {
        rusqlite::Error::SqliteFailure(f, _)
            if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
                || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE =>
        {
            Error::ExecutionExists(id.to_string())
        }
        _ => Error::Sqlite(e),
    }
}

/// Inserts a RUNNING execution; `input` is its input as JSON text (`new.input` is not read).
/// The index that deleting a definition checks its foreign key with (without it, each deleted
/// definition scanned every execution).
pub(crate) const MIGRATION_BY_DEFINITION: &str = "
CREATE INDEX IF NOT EXISTS executions_by_definition ON executions (definition_hash);
";

/// Rows [`prune_some`] deletes in one transaction, about 0.1 s here: a 40,000-image batch's
/// execution has some 100,000 event chunks and 80,000 checkpoints (1 s to delete at once), and
/// a long transaction would keep another process's writer past its busy timeout.
pub(crate) const PRUNE_ROWS: i64 = 20_000;

/// Deletes closed executions that ended before `before_ms`, with what is stored under them,
/// until about `budget` rows ([`PRUNE_ROWS`]) are gone: a large execution's event chunks and
/// checkpoints go in slices first (it is deleted by a later call if the slice runs out), then
/// its row, whose foreign keys cascade to the rest (task tokens, Map counts). RUNNING executions, paused
/// ones waiting for a token included, are never deleted; the results cache and the upload log
/// name executions without depending on them, and stay. Returns how many executions were
/// deleted and whether any is left to delete.
pub(crate) fn prune_some(conn: &Connection, before_ms: i64, mut budget: i64) -> Result<(usize, bool)> {
    let mut deleted = 0;
    loop {
        let next: Option<String> = conn
            .prepare_cached(
                "SELECT id FROM executions WHERE status <> 'RUNNING' AND coalesce(stopped_at, started_at) < ?1 LIMIT 1",
            )?
            .query_row([before_ms], |r| r.get(0))
            .optional()?;
        let Some(id) = next else { return Ok((deleted, false)) };
        if budget <= 0 {
            return Ok((deleted, true));
        }
        // Each table by its key within the execution (`checkpoints` has no rowid).
        for (table, key) in [("event_chunks", "first"), ("checkpoints", "key")] {
            let sql = format!(
                "DELETE FROM {table} WHERE execution_id = ?1 AND {key} IN (SELECT {key} FROM {table} WHERE execution_id = ?1 LIMIT ?2)"
            );
            budget -= conn.prepare_cached(&sql)?.execute(params![id, budget])? as i64;
            if budget <= 0 {
                return Ok((deleted, true));
            }
        }
        conn.prepare_cached("DELETE FROM executions WHERE id = ?1")?.execute([&id])?;
        deleted += 1;
        budget -= 1;
    }
}

/// Deletes the stored definitions that no execution uses any more.
pub(crate) fn drop_unused_definitions(conn: &Connection) -> Result<usize> {
    Ok(conn.execute(
        "DELETE FROM definitions WHERE hash NOT IN (SELECT definition_hash FROM executions WHERE definition_hash IS NOT NULL)",
        [],
    )?)
}

pub(crate) fn insert_running(conn: &Connection, new: &NewExecution, input: &str, owner: ProcessIdentity, now: i64) -> Result<()> {
    let definition = store_definition(conn, &new.definition)?;
    conn.prepare_cached(
        "INSERT INTO executions (id, name, workflow_name, workflow_hash, definition, definition_hash, input, status,
                                 started_at, owner_pid, owner_start, heartbeat_at)
         VALUES (?1, ?2, ?3, ?4, '', ?5, ?6, 'RUNNING', ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        new.id,
        new.name,
        new.workflow_name,
        new.workflow_hash,
        definition,
        input,
        new.started_at_ms,
        i64::from(owner.pid),
        owner.start,
        now,
    ])
    .map_err(|e| map_insert_error(&new.id, e))?;
    Ok(())
}

/// Records an attempt refused before it ran: FAILED with `failure`, no owner.
pub(crate) fn insert_rejected(conn: &Connection, new: &NewExecution, failure: &Failure, now: i64) -> Result<()> {
    let definition = store_definition(conn, &new.definition)?;
    conn.prepare_cached(
        "INSERT INTO executions (id, name, workflow_name, workflow_hash, definition, definition_hash, input, status,
                                 error, cause, started_at, stopped_at)
         VALUES (?1, ?2, ?3, ?4, '', ?5, ?6, 'FAILED', ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        new.id,
        new.name,
        new.workflow_name,
        new.workflow_hash,
        definition,
        new.input.to_string(),
        failure.error,
        failure.cause,
        new.started_at_ms,
        now.max(new.started_at_ms),
    ])
    .map_err(|e| map_insert_error(&new.id, e))?;
    Ok(())
}

/// Stores a definition's text once (see [`MIGRATION_DEFINITIONS`]); returns its hash.
fn store_definition(conn: &Connection, text: &str) -> Result<String> {
    let hash = blake3::hash(text.as_bytes()).to_hex().to_string();
    conn.prepare_cached("INSERT INTO definitions (hash, text) VALUES (?1, ?2) ON CONFLICT (hash) DO NOTHING")?
        .execute(params![hash, text])?;
    Ok(hash)
}

pub(crate) fn finish(conn: &Connection, id: &str, outcome: &Outcome, now: i64) -> Result<()> {
    let output = match outcome {
        Outcome::Succeeded(v) => Some(v.to_string()),
        _ => None,
    };
    let failure = outcome.failure();
    let changed = conn
        .prepare_cached(
            "UPDATE executions
             SET status = ?2, output = ?3, error = ?4, cause = ?5, stopped_at = max(?6, started_at)
             WHERE id = ?1 AND status = 'RUNNING'",
        )?
        .execute(params![
            id,
            outcome.status().as_str(),
            output,
            failure.map(|f| f.error.as_str()),
            failure.map(|f| f.cause.as_str()),
            now,
        ])?;
    if changed == 1 {
        return Ok(());
    }
    let status: Option<String> = conn
        .prepare_cached("SELECT status FROM executions WHERE id = ?1")?
        .query_row([id], |r| r.get(0))
        .optional()?;
    match status {
        None => Err(Error::UnknownExecution(id.to_string())),
        Some(status) => Err(Error::NotRunning { id: id.to_string(), status }),
    }
}

/// Escapes `%`, `_` and the escape character itself for `LIKE ... ESCAPE '\'`.
fn like_pattern(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

pub(crate) fn list(conn: &Connection, filter: &ExecutionFilter) -> Result<Vec<ExecutionSummary>> {
    let mut sql = String::from(
        "SELECT id, name, workflow_name, status, started_at, stopped_at, error FROM executions WHERE 1 = 1",
    );
    let mut args: Vec<SqlValue> = Vec::new();
    // Pushes a bound value and returns its placeholder (`?N`).
    let mut bind = |v: SqlValue| {
        args.push(v);
        format!("?{}", args.len())
    };
    if let Some(status) = filter.status {
        sql += &format!(" AND status = {}", bind(SqlValue::Text(status.as_str().into())));
    }
    if let Some(workflow) = &filter.workflow {
        sql += &format!(" AND workflow_name = {}", bind(SqlValue::Text(workflow.clone())));
    }
    if let Some(since) = &filter.since {
        sql += &format!(" AND started_at >= {}", bind(SqlValue::Integer(crate::parse_time(since)?)));
    }
    if let Some(until) = &filter.until {
        sql += &format!(" AND started_at < {}", bind(SqlValue::Integer(crate::parse_time(until)?)));
    }
    if let Some(text) = filter.text.as_deref().filter(|t| !t.is_empty()) {
        let p = bind(SqlValue::Text(like_pattern(text)));
        sql += &format!(
            " AND (id LIKE {p} ESCAPE '\\' OR name LIKE {p} ESCAPE '\\' \
               OR workflow_name LIKE {p} ESCAPE '\\' OR input LIKE {p} ESCAPE '\\')"
        );
    }
    let limit = i64::try_from(filter.limit.unwrap_or(DEFAULT_LIST_LIMIT)).unwrap_or(i64::MAX);
    sql += &format!(" ORDER BY started_at DESC, id DESC LIMIT {}", bind(SqlValue::Integer(limit)));

    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query(params_from_iter(args))?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let status: String = row.get(3)?;
        out.push(ExecutionSummary {
            id: row.get(0)?,
            name: row.get(1)?,
            workflow_name: row.get(2)?,
            status: parse_status(&status)?,
            started_at_ms: row.get(4)?,
            stopped_at_ms: row.get(5)?,
            error: row.get(6)?,
        });
    }
    Ok(out)
}

fn get_exact(conn: &Connection, id: &str) -> Result<Option<ExecutionRecord>> {
    let mut stmt = conn.prepare_cached(&format!("SELECT {RECORD_COLUMNS} FROM executions WHERE id = ?1"))?;
    let mut rows = stmt.query([id])?;
    match rows.next()? {
        Some(row) => Ok(Some(record_from_row(row)?)),
        None => Ok(None),
    }
}

/// The execution whose id is `id_or_prefix`, or else the only one whose id starts with it.
pub(crate) fn get(conn: &Connection, id_or_prefix: &str) -> Result<Option<ExecutionRecord>> {
    if id_or_prefix.is_empty() {
        return Ok(None);
    }
    if let Some(record) = get_exact(conn, id_or_prefix)? {
        return Ok(Some(record));
    }
    // A range scan on the primary key: every id starting with the prefix sorts between the
    // prefix and the prefix followed by the largest code point.
    let upper = format!("{id_or_prefix}\u{10FFFF}");
    let mut stmt = conn.prepare_cached("SELECT id FROM executions WHERE id >= ?1 AND id < ?2 ORDER BY id LIMIT 10")?;
    let ids: Vec<String> = stmt
        .query_map(params![id_or_prefix, upper], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<String>>>()?
        .into_iter()
        .filter(|id| id.starts_with(id_or_prefix))
        .collect();
    match ids.as_slice() {
        [] => Ok(None),
        [id] => get_exact(conn, id),
        _ => Err(Error::AmbiguousPrefix { prefix: id_or_prefix.to_string(), matches: ids }),
    }
}

/// Every RUNNING execution, oldest first.
pub(crate) fn running(conn: &Connection) -> Result<Vec<ExecutionRecord>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {RECORD_COLUMNS} FROM executions WHERE status = 'RUNNING' ORDER BY started_at, id"
    ))?;
    let mut rows = stmt.query([])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(record_from_row(row)?);
    }
    Ok(out)
}

/// Takes over an orphaned RUNNING execution. Runs inside the writer's `BEGIN IMMEDIATE`
/// transaction, so the check and the update are atomic against every other process too.
pub(crate) fn claim(conn: &Connection, id: &str, me: ProcessIdentity, now: i64) -> Result<bool> {
    type Owner = (String, Option<i64>, Option<i64>, Option<i64>);
    let row: Option<Owner> = conn
        .prepare_cached("SELECT status, owner_pid, owner_start, heartbeat_at FROM executions WHERE id = ?1")?
        .query_row([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .optional()?;
    let Some((status, pid, start, heartbeat)) = row else {
        return Err(Error::UnknownExecution(id.to_string()));
    };
    if status != ExecutionStatus::Running.as_str() || !process::is_orphaned(pid, start, heartbeat, now) {
        return Ok(false);
    }
    let changed = conn
        .prepare_cached(
            "UPDATE executions SET owner_pid = ?2, owner_start = ?3, heartbeat_at = ?4
             WHERE id = ?1 AND status = 'RUNNING' AND owner_pid IS ?5 AND owner_start IS ?6",
        )?
        .execute(params![id, i64::from(me.pid), me.start, now, pid, start])?;
    Ok(changed == 1)
}

/// Refreshes the heartbeat of every RUNNING execution owned by `me`.
pub(crate) fn heartbeat(conn: &Connection, me: ProcessIdentity, now: i64) -> Result<usize> {
    Ok(conn
        .prepare_cached(
            "UPDATE executions SET heartbeat_at = ?1
             WHERE status = 'RUNNING' AND owner_pid = ?2 AND owner_start IS ?3",
        )?
        .execute(params![now, i64::from(me.pid), me.start])?)
}

/// Gives up ownership of a RUNNING execution owned by `me` (it was interrupted on purpose), so
/// that a resume may claim it at once.
pub(crate) fn release(conn: &Connection, id: &str, me: ProcessIdentity) -> Result<bool> {
    Ok(conn
        .prepare_cached(
            "UPDATE executions SET owner_pid = NULL, owner_start = NULL
             WHERE id = ?1 AND status = 'RUNNING' AND owner_pid = ?2 AND owner_start IS ?3",
        )?
        .execute(params![id, i64::from(me.pid), me.start])?
        == 1)
}
