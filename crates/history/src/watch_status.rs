//! The `watch_status` table: what the running watch service (`pixelflow watch run`) publishes
//! about each rule it serves, every second, so `pixelflow watch status` can show it from
//! another process. A row whose `updated_at` is old belongs to a service that is gone.

use rusqlite::{params, Connection, Row};
use serde::Serialize;

use crate::error::Result;

pub(crate) const MIGRATION: &str = "
CREATE TABLE IF NOT EXISTS watch_status (
    rule_id     INTEGER PRIMARY KEY,
    pid         INTEGER NOT NULL,
    queued      INTEGER NOT NULL DEFAULT 0,
    in_flight   INTEGER NOT NULL DEFAULT 0,
    processed   INTEGER NOT NULL DEFAULT 0,
    failed      INTEGER NOT NULL DEFAULT 0,
    started_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
";

/// `watching`: how the service learns of new files, `events` (inotify and the like) or
/// `polling: <why>` (the OS refused more watches, or `--poll`). `skipped`: files whose content
/// the rule's workflow had already processed (a catch-up over a processed folder).
pub(crate) const MIGRATION_WATCHING: &str = "
ALTER TABLE watch_status ADD COLUMN watching TEXT NOT NULL DEFAULT 'events';
ALTER TABLE watch_status ADD COLUMN skipped INTEGER NOT NULL DEFAULT 0;
";

/// One served rule's counters, as the service last published them. `rule_id` 0 is the
/// default rule served when none is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WatchStatus {
    pub rule_id: i64,
    /// The service's process id.
    pub pid: u32,
    /// Complete files waiting for a worker.
    pub queued: u64,
    /// Executions running now.
    pub in_flight: u64,
    /// Files processed successfully since the service started serving the rule.
    pub processed: u64,
    /// Files that failed since then.
    pub failed: u64,
    /// Files skipped since then: their content was already processed by the rule's workflow.
    pub skipped: u64,
    pub started_at_ms: i64,
    pub updated_at_ms: i64,
    /// `events`, or `polling: <why>` when the service fell back to scanning the folder.
    pub watching: String,
}

fn from_row(r: &Row<'_>) -> rusqlite::Result<WatchStatus> {
    Ok(WatchStatus {
        rule_id: r.get(0)?,
        pid: r.get(1)?,
        queued: r.get::<_, i64>(2)?.max(0) as u64,
        in_flight: r.get::<_, i64>(3)?.max(0) as u64,
        processed: r.get::<_, i64>(4)?.max(0) as u64,
        failed: r.get::<_, i64>(5)?.max(0) as u64,
        skipped: r.get::<_, i64>(9)?.max(0) as u64,
        started_at_ms: r.get(6)?,
        updated_at_ms: r.get(7)?,
        watching: r.get(8)?,
    })
}

/// Replaces every row with `rows` (the service's rules now); the writer's transaction makes
/// it atomic.
pub(crate) fn publish(conn: &Connection, rows: &[WatchStatus]) -> Result<()> {
    conn.execute("DELETE FROM watch_status", [])?;
    {
        let mut stmt = conn.prepare_cached(
            "INSERT INTO watch_status (rule_id, pid, queued, in_flight, processed, failed, started_at, updated_at, watching, skipped)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )?;
        for s in rows {
            let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
            stmt.execute(params![s.rule_id, s.pid, n(s.queued), n(s.in_flight), n(s.processed), n(s.failed), s.started_at_ms, s.updated_at_ms, s.watching, n(s.skipped)])?;
        }
    }
    Ok(())
}

pub(crate) fn list(conn: &Connection) -> Result<Vec<WatchStatus>> {
    let mut stmt = conn.prepare_cached("SELECT rule_id, pid, queued, in_flight, processed, failed, started_at, updated_at, watching, skipped FROM watch_status ORDER BY rule_id")?;
    let rows = stmt.query_map([], from_row)?.collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}
