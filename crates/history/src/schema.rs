//! The ordered schema migrations. The version lives in SQLite's `user_version` (that is how
//! `rusqlite_migration` tracks it): version N means the first N migrations ran.
//!
//! Rules for changing the schema: never edit or reorder a released migration, only append.
//! Each table's SQL lives next to the code that uses it; this module only orders them.
//! The statements are `IF NOT EXISTS` so that two processes racing to create a fresh file
//! cannot fail on each other's tables (see [`migrate`]).

use std::path::Path;

use rusqlite::{Connection, TransactionBehavior};
use rusqlite_migration::{Migrations, SchemaVersion, M};

use crate::error::{Error, Result};
use crate::{checkpoints, cloud_profiles, events, executions, results, tokens, uploads, watch_rules, watch_status};

const MIGRATIONS: &[M<'static>] = &[
    M::up(executions::MIGRATION).comment("executions"),
    M::up(events::MIGRATION).comment("events"),
    M::up(checkpoints::MIGRATION).comment("checkpoints"),
    M::up(tokens::MIGRATION).comment("task tokens"),
    M::up(results::MIGRATION).comment("results cache and file hashes"),
    M::up(watch_rules::MIGRATION).comment("watch rules"),
    M::up(watch_status::MIGRATION).comment("watch service status"),
    M::up(watch_status::MIGRATION_WATCHING).comment("watch service status: events or polling"),
    M::up(uploads::MIGRATION).comment("cloud uploads and exports"),
    M::up(executions::MIGRATION_BY_INPUT_PATH).comment("successes by input path"),
    M::up(cloud_profiles::MIGRATION).comment("the desktop app's cloud profiles (no secrets)"),
    M::up(events::MIGRATION_CHUNKS).comment("events stored in chunks, Map counts"),
    M::up(executions::MIGRATION_DEFINITIONS).comment("definitions stored once per distinct text"),
    M::up(executions::MIGRATION_BY_DEFINITION).comment("executions by definition, for deleting unused definitions"),
    M::up(results::MIGRATION_OUTPUT_NAMES).comment("results by output folder and name, for output name conflicts"),
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: usize = MIGRATIONS.len();

pub(crate) fn migrations() -> Migrations<'static> {
    Migrations::from_slice(MIGRATIONS)
}

/// The schema version stored in the file (0 for a fresh one).
pub(crate) fn stored_version(conn: &Connection) -> Result<usize> {
    Ok(usize::from(migrations().current_version(conn)?))
}

/// Brings the database to [`SCHEMA_VERSION`], refusing one written by a newer build.
pub(crate) fn migrate(conn: &mut Connection, path: &Path) -> Result<()> {
    let migrations = migrations();
    let too_new = |found| Error::SchemaTooNew { path: path.to_path_buf(), found, supported: SCHEMA_VERSION };
    if let SchemaVersion::Outside(found) = migrations.current_version(conn)? {
        return Err(too_new(found.get()));
    }
    // IMMEDIATE: take the write lock when the migration transaction begins, so concurrent
    // openers queue on busy_timeout instead of failing to upgrade a read lock.
    conn.set_transaction_behavior(TransactionBehavior::Immediate);
    let result = migrations.to_latest(conn);
    conn.set_transaction_behavior(TransactionBehavior::Deferred);
    if let Err(e) = result {
        // Another process may have migrated between our version check and our transaction
        // (rusqlite_migration reads the version outside it). If the file is now current, fine.
        return match stored_version(conn)? {
            v if v == SCHEMA_VERSION => Ok(()),
            v if v > SCHEMA_VERSION => Err(too_new(v)),
            _ => Err(e.into()),
        };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn migrations_are_valid() {
        super::migrations().validate().expect("valid migrations");
    }
}
