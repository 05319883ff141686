//! The `watch_rules` table: the watch folders the headless service (`pixelflow watch run`)
//! serves, each with its workflow, output folder, filters, concurrency, what happens to the
//! original afterwards, a paused flag and the last error the service met on it.

use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::Serialize;

use crate::error::{corrupt, Result};

pub(crate) const MIGRATION: &str = "
CREATE TABLE IF NOT EXISTS watch_rules (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    folder      TEXT NOT NULL,
    recursive   INTEGER NOT NULL DEFAULT 0,
    include     TEXT NOT NULL DEFAULT '[]',
    exclude     TEXT NOT NULL DEFAULT '[]',
    workflow    TEXT NOT NULL,
    output      TEXT NOT NULL,
    concurrency INTEGER NOT NULL DEFAULT 1 CHECK (concurrency >= 1),
    on_success  TEXT NOT NULL DEFAULT 'leave' CHECK (on_success IN ('leave', 'move')),
    on_failure  TEXT NOT NULL DEFAULT 'leave' CHECK (on_failure IN ('leave', 'move')),
    paused      INTEGER NOT NULL DEFAULT 0,
    last_error  TEXT,
    created_at  INTEGER NOT NULL
);
";

/// What happens to an original file once its execution ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OriginalAction {
    /// It stays where it is.
    Leave,
    /// It moves to the `done/` (success) or `failed/` (failure) subfolder of the watched folder.
    Move,
}

impl OriginalAction {
    pub fn as_str(self) -> &'static str {
        match self {
            OriginalAction::Leave => "leave",
            OriginalAction::Move => "move",
        }
    }
}

impl std::str::FromStr for OriginalAction {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "leave" => Ok(OriginalAction::Leave),
            "move" => Ok(OriginalAction::Move),
            other => Err(format!("'{other}' is not an action for the original: expected leave or move")),
        }
    }
}

/// A rule to add (validated by the caller: absolute folder, compiled globs, resolvable workflow).
#[derive(Debug, Clone, PartialEq)]
pub struct NewWatchRule {
    pub folder: String,
    pub recursive: bool,
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    /// A workflow file (absolute path) or the name of a bundled workflow.
    pub workflow: String,
    pub output: String,
    pub concurrency: u32,
    pub on_success: OriginalAction,
    pub on_failure: OriginalAction,
}

/// A stored rule.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WatchRule {
    pub id: i64,
    pub folder: String,
    pub recursive: bool,
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    pub workflow: String,
    pub output: String,
    pub concurrency: u32,
    pub on_success: OriginalAction,
    pub on_failure: OriginalAction,
    pub paused: bool,
    pub last_error: Option<String>,
    pub created_at_ms: i64,
}

const COLUMNS: &str =
    "id, folder, recursive, include, exclude, workflow, output, concurrency, on_success, on_failure, paused, last_error, created_at";

fn from_row(r: &Row<'_>) -> rusqlite::Result<(WatchRule, String, String)> {
    let action = |s: String| if s == "move" { OriginalAction::Move } else { OriginalAction::Leave };
    Ok((
        WatchRule {
            id: r.get(0)?,
            folder: r.get(1)?,
            recursive: r.get(2)?,
            include: Vec::new(),
            exclude: Vec::new(),
            workflow: r.get(5)?,
            output: r.get(6)?,
            concurrency: r.get(7)?,
            on_success: action(r.get(8)?),
            on_failure: action(r.get(9)?),
            paused: r.get(10)?,
            last_error: r.get(11)?,
            created_at_ms: r.get(12)?,
        },
        r.get(3)?,
        r.get(4)?,
    ))
}

fn decode((mut rule, include, exclude): (WatchRule, String, String)) -> Result<WatchRule> {
    rule.include = serde_json::from_str(&include).map_err(|e| corrupt("watch rule include", e))?;
    rule.exclude = serde_json::from_str(&exclude).map_err(|e| corrupt("watch rule exclude", e))?;
    Ok(rule)
}

pub(crate) fn insert(conn: &Connection, rule: &NewWatchRule, now: i64) -> Result<i64> {
    let globs = |g: &Vec<String>| serde_json::to_string(g).unwrap_or_else(|_| "[]".to_string());
    conn.prepare_cached(
        "INSERT INTO watch_rules (folder, recursive, include, exclude, workflow, output, concurrency, on_success, on_failure, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        rule.folder,
        rule.recursive,
        globs(&rule.include),
        globs(&rule.exclude),
        rule.workflow,
        rule.output,
        rule.concurrency.max(1),
        rule.on_success.as_str(),
        rule.on_failure.as_str(),
        now
    ])?;
    Ok(conn.last_insert_rowid())
}

pub(crate) fn list(conn: &Connection) -> Result<Vec<WatchRule>> {
    let mut stmt = conn.prepare_cached(&format!("SELECT {COLUMNS} FROM watch_rules ORDER BY id"))?;
    let rows = stmt.query_map([], from_row)?.collect::<rusqlite::Result<Vec<_>>>()?;
    rows.into_iter().map(decode).collect()
}

pub(crate) fn get(conn: &Connection, id: i64) -> Result<Option<WatchRule>> {
    let row = conn
        .prepare_cached(&format!("SELECT {COLUMNS} FROM watch_rules WHERE id = ?1"))?
        .query_row([id], from_row)
        .optional()?;
    row.map(decode).transpose()
}

/// True when the rule existed.
pub(crate) fn remove(conn: &Connection, id: i64) -> Result<bool> {
    Ok(conn.prepare_cached("DELETE FROM watch_rules WHERE id = ?1")?.execute([id])? > 0)
}

/// True when the rule existed.
pub(crate) fn set_paused(conn: &Connection, id: i64, paused: bool) -> Result<bool> {
    Ok(conn.prepare_cached("UPDATE watch_rules SET paused = ?2 WHERE id = ?1")?.execute(params![id, paused])? > 0)
}

/// True when the rule existed.
pub(crate) fn set_last_error(conn: &Connection, id: i64, error: Option<&str>) -> Result<bool> {
    Ok(conn.prepare_cached("UPDATE watch_rules SET last_error = ?2 WHERE id = ?1")?.execute(params![id, error])? > 0)
}
