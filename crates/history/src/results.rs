//! The `results` and `file_hashes` tables: what a workflow produced for an image's content,
//! so a batch or a watch folder never processes the same content with the same workflow twice
//! (`--force` bypasses it), and a memo of content hashes by (path, size, mtime) so unchanged
//! files are not read again just to learn that they are unchanged.

use rusqlite::{params, Connection, OptionalExtension};
use serde_json::Value;

use crate::error::{corrupt, Result};

pub(crate) const MIGRATION: &str = "
CREATE TABLE IF NOT EXISTS results (
    content_hash  TEXT NOT NULL,
    workflow_hash TEXT NOT NULL,
    path          TEXT NOT NULL,
    output        TEXT NOT NULL,
    execution_id  TEXT NOT NULL,
    finished_at   INTEGER NOT NULL,
    PRIMARY KEY (content_hash, workflow_hash)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS file_hashes (
    path         TEXT PRIMARY KEY,
    size         INTEGER NOT NULL,
    mtime_ns     INTEGER NOT NULL,
    content_hash TEXT NOT NULL
) WITHOUT ROWID;
";

/// Where a result's outputs went and the name they were made from, so a later image of the
/// same name cannot silently replace them.
pub(crate) const MIGRATION_OUTPUT_NAMES: &str = "
ALTER TABLE results ADD COLUMN output_dir TEXT;
ALTER TABLE results ADD COLUMN name_key TEXT;
CREATE INDEX IF NOT EXISTS results_by_output_name ON results (output_dir, name_key) WHERE output_dir IS NOT NULL;
";

/// A result recorded for an image's content and a workflow.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CachedResult {
    pub path: String,
    pub output: Value,
    pub execution_id: String,
    pub finished_at_ms: i64,
    /// The folder the outputs were written to and the key of the name they were made from
    /// (the input's stem, folded to lower case where the file system ignores case): what
    /// [`crate::History::results_named`] finds. `None` for rows recorded before they were kept.
    #[serde(skip)]
    pub output_name: Option<OutputName>,
}

/// An output folder and a name key in it; see [`CachedResult::output_name`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OutputName {
    pub dir: String,
    pub key: String,
}

/// A result and the content it was made from.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedResult {
    pub content_hash: String,
    pub workflow_hash: String,
    pub result: CachedResult,
}

/// A file's content hash, valid while its size and modification time stay the same.
#[derive(Debug, Clone, PartialEq)]
pub struct FileHash {
    pub path: String,
    pub size: u64,
    pub mtime_ns: i64,
    pub content_hash: String,
}

const COLUMNS: &str = "path, output, execution_id, finished_at, output_dir, name_key";

type Row = (String, String, String, i64, Option<String>, Option<String>);

fn read_row(r: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<Row> {
    Ok((r.get(first)?, r.get(first + 1)?, r.get(first + 2)?, r.get(first + 3)?, r.get(first + 4)?, r.get(first + 5)?))
}

fn to_result((path, output, execution_id, finished_at_ms, dir, key): Row) -> Result<CachedResult> {
    let output = serde_json::from_str(&output).map_err(|e| corrupt("result", e))?;
    let output_name = dir.zip(key).map(|(dir, key)| OutputName { dir, key });
    Ok(CachedResult { path, output, execution_id, finished_at_ms, output_name })
}

pub(crate) fn get(conn: &Connection, content_hash: &str, workflow_hash: &str) -> Result<Option<CachedResult>> {
    conn.prepare_cached(&format!("SELECT {COLUMNS} FROM results WHERE content_hash = ?1 AND workflow_hash = ?2"))?
        .query_row([content_hash, workflow_hash], |r| read_row(r, 0))
        .optional()?
        .map(to_result)
        .transpose()
}

/// The results, of any workflow, recorded with this output folder and name key.
pub(crate) fn named(conn: &Connection, name: &OutputName) -> Result<Vec<NamedResult>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT content_hash, workflow_hash, {COLUMNS} FROM results WHERE output_dir = ?1 AND name_key = ?2 ORDER BY finished_at"
    ))?;
    let rows = stmt.query_map([&name.dir, &name.key], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, read_row(r, 2)?)))?;
    rows.map(|row| {
        let (content_hash, workflow_hash, row) = row?;
        Ok(NamedResult { content_hash, workflow_hash, result: to_result(row)? })
    })
    .collect()
}

/// Whether any result is recorded with this output folder.
pub(crate) fn any_in(conn: &Connection, output_dir: &str) -> Result<bool> {
    Ok(conn.prepare_cached("SELECT 1 FROM results WHERE output_dir = ?1 LIMIT 1")?.query_row([output_dir], |_| Ok(())).optional()?.is_some())
}

/// Whether some results row names this execution.
pub(crate) fn recorded_for(conn: &Connection, execution_id: &str) -> Result<bool> {
    Ok(conn.prepare_cached("SELECT 1 FROM results WHERE execution_id = ?1 LIMIT 1")?.query_row([execution_id], |_| Ok(())).optional()?.is_some())
}

pub(crate) fn put(conn: &Connection, content_hash: &str, workflow_hash: &str, result: &CachedResult) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO results (content_hash, workflow_hash, path, output, execution_id, finished_at, output_dir, name_key)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (content_hash, workflow_hash) DO UPDATE SET path = excluded.path, output = excluded.output,
             execution_id = excluded.execution_id, finished_at = excluded.finished_at,
             output_dir = excluded.output_dir, name_key = excluded.name_key",
    )?
    .execute(params![
        content_hash,
        workflow_hash,
        result.path,
        result.output.to_string(),
        result.execution_id,
        result.finished_at_ms,
        result.output_name.as_ref().map(|n| &n.dir),
        result.output_name.as_ref().map(|n| &n.key),
    ])?;
    Ok(())
}

pub(crate) fn file_hash(conn: &Connection, path: &str, size: u64, mtime_ns: i64) -> Result<Option<String>> {
    Ok(conn
        .prepare_cached("SELECT content_hash FROM file_hashes WHERE path = ?1 AND size = ?2 AND mtime_ns = ?3")?
        .query_row(params![path, size as i64, mtime_ns], |r| r.get(0))
        .optional()?)
}

pub(crate) fn remember_file_hash(conn: &Connection, path: &str, size: u64, mtime_ns: i64, hash: &str) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO file_hashes (path, size, mtime_ns, content_hash) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (path) DO UPDATE SET size = excluded.size, mtime_ns = excluded.mtime_ns, content_hash = excluded.content_hash",
    )?
    .execute(params![path, size as i64, mtime_ns, hash])?;
    Ok(())
}
