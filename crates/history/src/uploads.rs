//! The `uploads` and `exports` tables: the record of every object that the sync step or
//! `pixelflow export` put in cloud storage and the service confirmed (destination, key, ETag,
//! size, content hash, when), and one row per export run with its selection and counts.
//!
//! `uploads` holds one row per (destination, key): the object as it last was confirmed there.
//! A re-upload replaces the row; an object found already present and unchanged fills a
//! missing row (a crash between an upload and its row) without touching an existing one.
//! Nothing here is a secret: `credentials` says where they came from (`profile default`,
//! `environment`), never what they are.

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use serde_json::Value;

use crate::error::{corrupt, Result};
use crate::writer::Scope;
use crate::{now_ms, History};

pub(crate) const MIGRATION: &str = "
CREATE TABLE IF NOT EXISTS uploads (
    destination  TEXT NOT NULL,
    key          TEXT NOT NULL,
    etag         TEXT,
    size         INTEGER NOT NULL,
    content_hash TEXT NOT NULL,
    source       TEXT NOT NULL,
    execution_id TEXT,
    credentials  TEXT NOT NULL,
    uploaded_at  INTEGER NOT NULL,
    PRIMARY KEY (destination, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS uploads_by_execution ON uploads (execution_id);
CREATE TABLE IF NOT EXISTS exports (
    id          TEXT PRIMARY KEY NOT NULL,
    destination TEXT NOT NULL,
    selection   TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('RUNNING', 'SUCCEEDED', 'FAILED')),
    total       INTEGER NOT NULL,
    uploaded    INTEGER NOT NULL DEFAULT 0,
    unchanged   INTEGER NOT NULL DEFAULT 0,
    failed      INTEGER NOT NULL DEFAULT 0,
    error       TEXT,
    started_at  INTEGER NOT NULL,
    stopped_at  INTEGER
);
";

/// One object as it was last confirmed at its destination.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Upload {
    /// `s3://bucket` or `az://container`.
    pub destination: String,
    pub key: String,
    pub etag: Option<String>,
    pub size: u64,
    /// blake3 of the content, hex.
    pub content_hash: String,
    /// The local file it came from.
    pub source: String,
    pub execution_id: Option<String>,
    /// Where the credentials came from (never the credentials).
    pub credentials: String,
    pub uploaded_at_ms: i64,
}

/// One export run.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportRecord {
    pub id: String,
    pub destination: String,
    /// What was asked for (`{"executions": [...], "since": ..., "workflow": ...}`).
    pub selection: Value,
    pub status: String,
    pub total: u64,
    pub uploaded: u64,
    pub unchanged: u64,
    pub failed: u64,
    pub error: Option<String>,
    pub started_at_ms: i64,
    pub stopped_at_ms: Option<i64>,
}

fn put(conn: &Connection, u: &Upload, replace: bool) -> Result<()> {
    let conflict = if replace {
        "DO UPDATE SET etag = excluded.etag, size = excluded.size, content_hash = excluded.content_hash, source = excluded.source,
             execution_id = excluded.execution_id, credentials = excluded.credentials, uploaded_at = excluded.uploaded_at"
    } else {
        "DO NOTHING"
    };
    conn.prepare_cached(&format!(
        "INSERT INTO uploads (destination, key, etag, size, content_hash, source, execution_id, credentials, uploaded_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT (destination, key) {conflict}"
    ))?
    .execute(params![u.destination, u.key, u.etag, u.size as i64, u.content_hash, u.source, u.execution_id, u.credentials, u.uploaded_at_ms])?;
    Ok(())
}

const UPLOAD_COLUMNS: &str = "destination, key, etag, size, content_hash, source, execution_id, credentials, uploaded_at";

fn upload_from_row(r: &rusqlite::Row) -> rusqlite::Result<Upload> {
    Ok(Upload {
        destination: r.get(0)?,
        key: r.get(1)?,
        etag: r.get(2)?,
        size: r.get::<_, i64>(3)? as u64,
        content_hash: r.get(4)?,
        source: r.get(5)?,
        execution_id: r.get(6)?,
        credentials: r.get(7)?,
        uploaded_at_ms: r.get(8)?,
    })
}

fn export_from_row(r: &rusqlite::Row) -> rusqlite::Result<(ExportRecord, String)> {
    Ok((
        ExportRecord {
            id: r.get(0)?,
            destination: r.get(1)?,
            selection: Value::Null,
            status: r.get(3)?,
            total: r.get::<_, i64>(4)? as u64,
            uploaded: r.get::<_, i64>(5)? as u64,
            unchanged: r.get::<_, i64>(6)? as u64,
            failed: r.get::<_, i64>(7)? as u64,
            error: r.get(8)?,
            started_at_ms: r.get(9)?,
            stopped_at_ms: r.get(10)?,
        },
        r.get(2)?,
    ))
}

impl History {
    /// Records an upload the service confirmed (replacing the key's earlier row); with
    /// `unchanged`, an object found present with the same content, which only fills a
    /// missing row. Durable on return.
    pub fn record_upload(&self, upload: &Upload, unchanged: bool) -> Result<()> {
        let upload = upload.clone();
        self.inner.writer.call(Scope::Nothing, move |c| put(c, &upload, !unchanged))
    }

    /// The recorded objects of a destination (`s3://bucket`), by key; every destination's with `None`.
    pub fn uploads(&self, destination: Option<&str>) -> Result<Vec<Upload>> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {UPLOAD_COLUMNS} FROM uploads WHERE ?1 IS NULL OR destination = ?1 ORDER BY destination, key"
            ))?;
            let rows = stmt.query_map([destination], upload_from_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    /// The recorded object at a key.
    pub fn upload(&self, destination: &str, key: &str) -> Result<Option<Upload>> {
        self.read(|c| {
            Ok(c.prepare_cached(&format!("SELECT {UPLOAD_COLUMNS} FROM uploads WHERE destination = ?1 AND key = ?2"))?
                .query_row([destination, key], upload_from_row)
                .optional()?)
        })
    }

    /// Starts recording an export run (status RUNNING). Durable on return.
    pub fn start_export(&self, id: &str, destination: &str, selection: &Value, total: u64) -> Result<()> {
        let (id, destination, selection) = (id.to_string(), destination.to_string(), selection.to_string());
        self.inner.writer.call(Scope::Nothing, move |c| {
            c.prepare_cached("INSERT INTO exports (id, destination, selection, status, total, started_at) VALUES (?1, ?2, ?3, 'RUNNING', ?4, ?5)")?
                .execute(params![id, destination, selection, total as i64, now_ms()])?;
            Ok(())
        })
    }

    /// Stores how an export run ended.
    pub fn finish_export(&self, id: &str, uploaded: u64, unchanged: u64, failed: u64, error: Option<&str>) -> Result<()> {
        let (id, error) = (id.to_string(), error.map(str::to_string));
        self.inner.writer.call(Scope::Nothing, move |c| {
            let status = if failed == 0 && error.is_none() { "SUCCEEDED" } else { "FAILED" };
            c.prepare_cached("UPDATE exports SET status = ?2, uploaded = ?3, unchanged = ?4, failed = ?5, error = ?6, stopped_at = ?7 WHERE id = ?1")?
                .execute(params![id, status, uploaded as i64, unchanged as i64, failed as i64, error, now_ms()])?;
            Ok(())
        })
    }

    /// Export runs, newest first.
    pub fn exports(&self) -> Result<Vec<ExportRecord>> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT id, destination, selection, status, total, uploaded, unchanged, failed, error, started_at, stopped_at
                 FROM exports ORDER BY started_at DESC, id",
            )?;
            let rows = stmt.query_map([], export_from_row)?.collect::<rusqlite::Result<Vec<_>>>()?;
            rows.into_iter()
                .map(|(mut record, selection)| {
                    record.selection = serde_json::from_str(&selection).map_err(|e| corrupt("export selection", e))?;
                    Ok(record)
                })
                .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upload(key: &str, hash: &str) -> Upload {
        Upload {
            destination: "s3://b".into(),
            key: key.into(),
            etag: Some("\"e\"".into()),
            size: 3,
            content_hash: hash.into(),
            source: "/tmp/a".into(),
            execution_id: None,
            credentials: "profile default".into(),
            uploaded_at_ms: 1,
        }
    }

    #[test]
    fn one_row_per_key_and_unchanged_only_fills_gaps() {
        let dir = tempfile::tempdir().unwrap();
        let h = History::open(&dir.path().join("h.db")).unwrap();
        h.record_upload(&upload("a", "h1"), false).unwrap();
        h.record_upload(&upload("a", "h2"), false).unwrap();
        h.record_upload(&upload("a", "h3"), true).unwrap();
        h.record_upload(&upload("b", "h4"), true).unwrap();
        let all = h.uploads(Some("s3://b")).unwrap();
        assert_eq!(all.iter().map(|u| (u.key.as_str(), u.content_hash.as_str())).collect::<Vec<_>>(), [("a", "h2"), ("b", "h4")]);
        assert_eq!(h.upload("s3://b", "b").unwrap().unwrap().content_hash, "h4");
        h.start_export("x1", "s3://b", &serde_json::json!({"since": "2026-01-01"}), 2).unwrap();
        h.finish_export("x1", 1, 1, 0, None).unwrap();
        let exports = h.exports().unwrap();
        assert_eq!((exports[0].status.as_str(), exports[0].uploaded, exports[0].selection["since"].as_str()), ("SUCCEEDED", 1, Some("2026-01-01")));
    }
}
