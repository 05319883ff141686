//! The `events` table: the append-only history of each execution, in the order recorded.
//!
//! `seq` is global and monotonic (AUTOINCREMENT never reuses a number, even after the newest
//! rows are deleted), so ordering by it gives the recording order. `UNIQUE (execution_id,
//! kind, key)` plus `INSERT OR IGNORE` makes recording idempotent: a resumed execution replays
//! its finished prefix and re-records the same events, and they are dropped here.

use pixelflow_engine::Event;
use rusqlite::{params, Connection};
use serde::Serialize;
use serde_json::Value;

use crate::error::{corrupt, Result};

pub(crate) const MIGRATION: &str = "
CREATE TABLE IF NOT EXISTS events (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    execution_id TEXT NOT NULL REFERENCES executions (id) ON DELETE CASCADE,
    kind         TEXT NOT NULL,
    state        TEXT,
    key          TEXT NOT NULL,
    detail       TEXT NOT NULL,
    timestamp    INTEGER NOT NULL,
    -- Also the index `events(execution_id)` lookups use.
    UNIQUE (execution_id, kind, key)
);
";

/// An event as stored: the recorded [`Event`] plus its sequence number and the time (ms since
/// the Unix epoch) at which `record` was called.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredEvent {
    pub seq: i64,
    pub timestamp_ms: i64,
    pub kind: String,
    pub state: Option<String>,
    pub key: String,
    pub detail: Value,
}

impl StoredEvent {
    /// The event as the engine recorded it.
    pub fn to_event(&self) -> Event {
        Event { kind: self.kind.clone(), state: self.state.clone(), key: self.key.clone(), detail: self.detail.clone() }
    }
}

/// An event on its way to the writer thread. The detail is serialized by the recording thread,
/// so that work is spread over the engine's threads instead of piling up on the writer.
pub(crate) struct PendingEvent {
    pub execution: String,
    pub kind: String,
    pub state: Option<String>,
    pub key: String,
    pub detail: String,
    pub at_ms: i64,
}

impl PendingEvent {
    pub(crate) fn new(execution: &str, event: Event, at_ms: i64) -> Self {
        PendingEvent {
            execution: execution.to_string(),
            detail: event.detail.to_string(),
            kind: event.kind,
            state: event.state,
            key: event.key,
            at_ms,
        }
    }
}

/// Inserts one event unless its (execution, kind, key) is already there.
pub(crate) fn insert(conn: &Connection, ev: &PendingEvent) -> rusqlite::Result<usize> {
    conn.prepare_cached(
        "INSERT OR IGNORE INTO events (execution_id, kind, state, key, detail, timestamp)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![ev.execution, ev.kind, ev.state, ev.key, ev.detail, ev.at_ms])
}

/// A Map state's iterations over a whole execution (all its runs), as counted from the events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MapProgress {
    pub state: String,
    /// Items of every run of the state (`MapStateStarted`'s `length`).
    pub total: u64,
    pub started: u64,
    pub succeeded: u64,
    pub failed: u64,
}

/// Counts each Map state's iterations in SQL, so an execution of any size (a batch of 40,000
/// images records hundreds of thousands of events) is summed without loading its events.
pub(crate) fn map_progress(conn: &Connection, execution: &str) -> Result<Vec<MapProgress>> {
    let mut stmt = conn.prepare_cached(
        "SELECT state, kind, count(*), coalesce(sum(json_extract(detail, '$.length')), 0) FROM events
         WHERE execution_id = ?1 AND kind IN ('MapStateStarted', 'MapIterationStarted', 'MapIterationSucceeded', 'MapIterationFailed')
         GROUP BY state, kind ORDER BY state",
    )?;
    let mut rows = stmt.query([execution])?;
    let mut out: Vec<MapProgress> = Vec::new();
    while let Some(row) = rows.next()? {
        let state: String = row.get::<_, Option<String>>(0)?.unwrap_or_default();
        let kind: String = row.get(1)?;
        let (count, length): (i64, i64) = (row.get(2)?, row.get(3)?);
        if out.last().is_none_or(|m| m.state != state) {
            out.push(MapProgress { state, total: 0, started: 0, succeeded: 0, failed: 0 });
        }
        let m = out.last_mut().expect("pushed above");
        let n = u64::try_from(count).unwrap_or(0);
        match kind.as_str() {
            "MapStateStarted" => m.total = u64::try_from(length).unwrap_or(0),
            "MapIterationStarted" => m.started = n,
            "MapIterationSucceeded" => m.succeeded = n,
            _ => m.failed = n,
        }
    }
    Ok(out)
}

/// Every stored event of an execution, in recording order.
pub(crate) fn list(conn: &Connection, execution: &str) -> Result<Vec<StoredEvent>> {
    page(conn, execution, 0, i64::MAX)
}

/// How many events an execution recorded.
pub(crate) fn count(conn: &Connection, execution: &str) -> Result<u64> {
    let n: i64 = conn.prepare_cached("SELECT count(*) FROM events WHERE execution_id = ?1")?.query_row([execution], |r| r.get(0))?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// `limit` events of an execution from the `offset`-th, in recording order.
pub(crate) fn page(conn: &Connection, execution: &str, offset: i64, limit: i64) -> Result<Vec<StoredEvent>> {
    let mut stmt = conn.prepare_cached(
        "SELECT seq, timestamp, kind, state, key, detail FROM events WHERE execution_id = ?1 ORDER BY seq LIMIT ?3 OFFSET ?2",
    )?;
    let mut rows = stmt.query(params![execution, offset, limit])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let detail: String = row.get(5)?;
        out.push(StoredEvent {
            seq: row.get(0)?,
            timestamp_ms: row.get(1)?,
            kind: row.get(2)?,
            state: row.get(3)?,
            key: row.get(4)?,
            detail: serde_json::from_str(&detail).map_err(|e| corrupt("event detail", e))?,
        });
    }
    Ok(out)
}
