//! The `cloud_profiles` table: the desktop app's named export destinations (service, bucket or
//! container, prefix, endpoint, region, key id...) as JSON. Never a secret: the app keeps the
//! secret of a profile in the OS keychain, and only its settings come here.

use rusqlite::{params, Connection, Row};
use serde::Serialize;
use serde_json::Value;

use crate::error::{corrupt, Result};

pub(crate) const MIGRATION: &str = "
CREATE TABLE IF NOT EXISTS cloud_profiles (
    name       TEXT PRIMARY KEY,
    settings   TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);
";

/// A stored profile: its name and its settings (the app's `CloudProfile` as JSON).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredProfile {
    pub name: String,
    pub settings: Value,
    pub updated_at_ms: i64,
}

fn from_row(r: &Row<'_>) -> rusqlite::Result<(String, String, i64)> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
}

/// Adds the profile, or replaces the one of that name.
pub(crate) fn upsert(conn: &Connection, name: &str, settings: &Value, now: i64) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO cloud_profiles (name, settings, updated_at) VALUES (?1, ?2, ?3)
         ON CONFLICT(name) DO UPDATE SET settings = excluded.settings, updated_at = excluded.updated_at",
    )?
    .execute(params![name, settings.to_string(), now])?;
    Ok(())
}

/// Every profile, by name.
pub(crate) fn list(conn: &Connection) -> Result<Vec<StoredProfile>> {
    let mut stmt = conn.prepare_cached("SELECT name, settings, updated_at FROM cloud_profiles ORDER BY name")?;
    let rows = stmt.query_map([], from_row)?.collect::<rusqlite::Result<Vec<_>>>()?;
    rows.into_iter()
        .map(|(name, settings, updated_at_ms)| {
            let settings = serde_json::from_str(&settings).map_err(|e| corrupt("cloud profile settings", e))?;
            Ok(StoredProfile { name, settings, updated_at_ms })
        })
        .collect()
}

/// True when the profile existed.
pub(crate) fn remove(conn: &Connection, name: &str) -> Result<bool> {
    Ok(conn.prepare_cached("DELETE FROM cloud_profiles WHERE name = ?1")?.execute([name])? > 0)
}
