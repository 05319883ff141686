//! Errors of the history store. The engine sees them as [`pixelflow_engine::JournalError`]
//! (through the `Journal` impl); the CLI and the app see this richer type.

use std::path::PathBuf;

/// Everything that can go wrong while opening, writing or reading the history.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The directory or file of the database could not be created.
    #[error("cannot create the history directory {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The database was written by a newer pixelflow. Migrating "down" would lose data and
    /// writing to it with an older schema could corrupt it, so it is refused outright.
    #[error(
        "the history database {path} has schema version {found}, newer than version {supported} \
         that this build of pixelflow knows; upgrade pixelflow or use another history file"
    )]
    SchemaTooNew { path: PathBuf, found: usize, supported: usize },

    /// Applying the schema migrations failed.
    #[error("cannot migrate the history database: {0}")]
    Migration(#[from] rusqlite_migration::Error),

    /// SQLite said no.
    #[error("history database error: {0}")]
    Sqlite(#[from] rusqlite::Error),

    /// A JSON column could not be (de)serialized: the row was written by something else or the
    /// file is damaged.
    #[error("history database holds invalid data: {0}")]
    Corrupt(String),

    /// `create_execution` or `record_rejected` with an id that is already taken.
    #[error("an execution with id {0} already exists")]
    ExecutionExists(String),

    /// No execution has this id.
    #[error("no execution with id {0}")]
    UnknownExecution(String),

    /// `finish_execution` on an execution that already stopped.
    #[error("execution {id} is not running (status {status})")]
    NotRunning { id: String, status: String },

    /// An id prefix that matches more than one execution.
    #[error("execution id prefix {prefix:?} is ambiguous: it matches {}", .matches.join(", "))]
    AmbiguousPrefix { prefix: String, matches: Vec<String> },

    /// A time bound in a filter that is neither RFC 3339, a date, nor milliseconds.
    #[error("invalid time {0:?}: expected RFC 3339 (2024-05-01T12:00:00Z), a date (2024-05-01) or milliseconds since the epoch")]
    InvalidTime(String),

    /// `wait_for_token` on a token that was never handed out.
    #[error("unknown task token {0}")]
    UnknownToken(String),

    /// A write failed in the writer thread: the transaction it was part of did not commit, or
    /// an event recorded earlier for the same execution could not be stored.
    #[error("history write failed: {0}")]
    Write(String),

    /// The writer thread is gone (it only stops when the last handle is dropped, so this means
    /// a bug or a panic inside SQLite).
    #[error("the history writer thread has stopped")]
    WriterStopped,
}

/// Result of the history store.
pub type Result<T> = std::result::Result<T, Error>;

impl From<Error> for pixelflow_engine::JournalError {
    fn from(e: Error) -> Self {
        pixelflow_engine::JournalError(e.to_string())
    }
}

/// Maps a JSON error on data read back from disk.
pub(crate) fn corrupt(what: &str, e: serde_json::Error) -> Error {
    Error::Corrupt(format!("{what}: {e}"))
}

impl Error {
    /// Whether SQLite refused because another connection held a lock.
    pub fn is_busy(&self) -> bool {
        let sqlite = match self {
            Error::Sqlite(e) => Some(e),
            Error::Migration(rusqlite_migration::Error::RusqliteError { err, .. }) => Some(err),
            _ => None,
        };
        matches!(
            sqlite.and_then(|e| e.sqlite_error_code()),
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
        )
    }
}
