//! The `checkpoints` table: the durable result of each piece of work that must not be done
//! twice (a task attempt's output or failure, a Wait state's deadline), keyed by the
//! deterministic visit key the interpreter computes. A resumed execution looks its keys up here
//! and replays instead of re-running.

use pixelflow_engine::Checkpoint;
use rusqlite::{params, Connection, OptionalExtension};

use crate::error::{corrupt, Result};

/// `WITHOUT ROWID`: rows are small and always looked up by the full primary key, so the
/// clustered key saves the second b-tree lookup a rowid table would need.
pub(crate) const MIGRATION: &str = "
CREATE TABLE IF NOT EXISTS checkpoints (
    execution_id TEXT NOT NULL REFERENCES executions (id) ON DELETE CASCADE,
    key          TEXT NOT NULL,
    checkpoint   TEXT NOT NULL,
    saved_at     INTEGER NOT NULL,
    PRIMARY KEY (execution_id, key)
) WITHOUT ROWID;
";

pub(crate) fn get(conn: &Connection, execution: &str, key: &str) -> Result<Option<Checkpoint>> {
    let json: Option<String> = conn
        .prepare_cached("SELECT checkpoint FROM checkpoints WHERE execution_id = ?1 AND key = ?2")?
        .query_row([execution, key], |r| r.get(0))
        .optional()?;
    json.map(|j| serde_json::from_str(&j).map_err(|e| corrupt("checkpoint", e))).transpose()
}

/// Stores (or replaces, like the in-memory journal) the checkpoint under `key`.
pub(crate) fn put(conn: &Connection, execution: &str, key: &str, json: &str, now: i64) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO checkpoints (execution_id, key, checkpoint, saved_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (execution_id, key) DO UPDATE SET checkpoint = excluded.checkpoint, saved_at = excluded.saved_at",
    )?
    .execute(params![execution, key, json, now])?;
    Ok(())
}
