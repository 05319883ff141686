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

/// The output files each image left in each folder, under the name they were made from, so a
/// later image of the same name cannot silently replace them. Apart from `results`, whose one
/// row per content and workflow follows the latest run: the same image run into `thumbs/`
/// then into `web/` still owns its name in `thumbs/`. Only added to; `seq` orders the rows.
pub(crate) const MIGRATION_OUTPUT_NAMES: &str = "
CREATE TABLE IF NOT EXISTS output_names (
    seq          INTEGER PRIMARY KEY,
    output_dir   TEXT NOT NULL,
    name_key     TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    path         TEXT NOT NULL,
    files        TEXT NOT NULL,
    execution_id TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS output_names_by_name ON output_names (output_dir, name_key, seq);
";

/// A result recorded for an image's content and a workflow.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CachedResult {
    pub path: String,
    pub output: Value,
    pub execution_id: String,
    pub finished_at_ms: i64,
}

/// An output folder and the key of a name in it (an image's stem, folded to lower case where
/// the file system ignores case): what output names are made from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OutputName {
    pub dir: String,
    pub key: String,
}

/// What an image left under an [`OutputName`]: recorded with each result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedOutputs {
    pub content_hash: String,
    /// The image they were made from.
    pub path: String,
    /// The output files in that folder.
    pub files: Vec<String>,
    pub execution_id: String,
}

/// A file's content hash, valid while its size and modification time stay the same.
#[derive(Debug, Clone, PartialEq)]
pub struct FileHash {
    pub path: String,
    pub size: u64,
    pub mtime_ns: i64,
    pub content_hash: String,
}

pub(crate) fn get(conn: &Connection, content_hash: &str, workflow_hash: &str) -> Result<Option<CachedResult>> {
    let row: Option<(String, String, String, i64)> = conn
        .prepare_cached("SELECT path, output, execution_id, finished_at FROM results WHERE content_hash = ?1 AND workflow_hash = ?2")?
        .query_row([content_hash, workflow_hash], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .optional()?;
    row.map(|(path, output, execution_id, finished_at_ms)| {
        Ok(CachedResult { path, output: serde_json::from_str(&output).map_err(|e| corrupt("result", e))?, execution_id, finished_at_ms })
    })
    .transpose()
}

/// Every image's outputs recorded under this folder and name key, oldest first.
pub(crate) fn named(conn: &Connection, name: &OutputName) -> Result<Vec<NamedOutputs>> {
    let mut stmt = conn.prepare_cached(
        "SELECT content_hash, path, files, execution_id FROM output_names WHERE output_dir = ?1 AND name_key = ?2 ORDER BY seq",
    )?;
    let rows = stmt.query_map([&name.dir, &name.key], |r| Ok((r.get(0)?, r.get(1)?, r.get::<_, String>(2)?, r.get(3)?)))?;
    rows.map(|row| {
        let (content_hash, path, files, execution_id) = row?;
        let files = serde_json::from_str(&files).map_err(|e| corrupt("output names", e))?;
        Ok(NamedOutputs { content_hash, path, files, execution_id })
    })
    .collect()
}

/// Whether any outputs are recorded in this folder.
pub(crate) fn any_in(conn: &Connection, output_dir: &str) -> Result<bool> {
    Ok(conn.prepare_cached("SELECT 1 FROM output_names WHERE output_dir = ?1 LIMIT 1")?.query_row([output_dir], |_| Ok(())).optional()?.is_some())
}

/// Records what `content_hash` left under `name`, as the newest row for it (an older row of
/// the same content under the same name is replaced).
pub(crate) fn put_named(conn: &Connection, name: &OutputName, content_hash: &str, path: &str, files: &[String], execution_id: &str) -> Result<()> {
    conn.prepare_cached("DELETE FROM output_names WHERE output_dir = ?1 AND name_key = ?2 AND content_hash = ?3")?
        .execute([&name.dir, &name.key, content_hash])?;
    let files = serde_json::to_string(files).map_err(|e| corrupt("output names", e))?;
    conn.prepare_cached("INSERT INTO output_names (output_dir, name_key, content_hash, path, files, execution_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")?
        .execute(params![name.dir, name.key, content_hash, path, files, execution_id])?;
    Ok(())
}

/// Whether some results row names this execution.
pub(crate) fn recorded_for(conn: &Connection, execution_id: &str) -> Result<bool> {
    Ok(conn.prepare_cached("SELECT 1 FROM results WHERE execution_id = ?1 LIMIT 1")?.query_row([execution_id], |_| Ok(())).optional()?.is_some())
}

pub(crate) fn put(conn: &Connection, content_hash: &str, workflow_hash: &str, result: &CachedResult) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO results (content_hash, workflow_hash, path, output, execution_id, finished_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (content_hash, workflow_hash) DO UPDATE SET path = excluded.path, output = excluded.output,
             execution_id = excluded.execution_id, finished_at = excluded.finished_at",
    )?
    .execute(params![content_hash, workflow_hash, result.path, result.output.to_string(), result.execution_id, result.finished_at_ms])?;
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
