//! Errors of the sync crate, each with the ASL error name that a workflow's Retry and Catch
//! match (`Pixelflow.SyncAuthFailed`, ...). Messages never carry secrets: keys, SAS tokens and
//! connection strings are redacted before an error is built (see [`crate::store::Redactor`]).

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A step parameter or a destination URL is wrong.
    #[error("{0}")]
    InvalidParameters(String),
    /// No usable credentials, or the service refused them (bad key, expired token, bad signature).
    #[error("{destination}: authentication failed: {message}")]
    AuthFailed { destination: String, message: String },
    /// The credentials are valid but may not do this.
    #[error("{destination}: permission denied: {message}")]
    PermissionDenied { destination: String, message: String },
    /// The bucket or container does not exist.
    #[error("{destination}: not found (does the bucket or container exist?): {message}")]
    NotFound { destination: String, message: String },
    /// The bucket lives in another region than the one used.
    #[error("{destination}: wrong region: {message}")]
    WrongRegion { destination: String, message: String },
    /// The service answered the upload, but what it holds is not what was sent.
    #[error("{destination}: integrity check failed for {key}: {message}")]
    Integrity { destination: String, key: String, message: String },
    /// Two different files would be written under the same key.
    #[error("{destination}: {key} is the key of both {first} and {second}")]
    KeyConflict { destination: String, key: String, first: PathBuf, second: PathBuf },
    /// A local file could not be read.
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    /// The upload log (the history) could not record an upload.
    #[error("could not record the upload of {key}: {message}")]
    Record { key: String, message: String },
    /// The service could not be reached (connection refused, DNS, timeouts), after retries.
    #[error("{destination}: unreachable after retries: {message}")]
    Unreachable { destination: String, message: String },
    /// Anything else the service or the network answered, after retries.
    #[error("{destination}: {message}")]
    Failed { destination: String, message: String },
    /// The task was cancelled.
    #[error("cancelled")]
    Cancelled,
}

impl Error {
    pub fn invalid(message: impl Into<String>) -> Error {
        Error::InvalidParameters(message.into())
    }

    /// The ASL error name of this error.
    pub fn asl_name(&self) -> &'static str {
        match self {
            Error::InvalidParameters(_) => "Pixelflow.InvalidParameters",
            Error::AuthFailed { .. } => "Pixelflow.SyncAuthFailed",
            Error::PermissionDenied { .. } => "Pixelflow.SyncPermissionDenied",
            Error::NotFound { .. } => "Pixelflow.SyncNotFound",
            Error::WrongRegion { .. } => "Pixelflow.SyncWrongRegion",
            Error::Integrity { .. } => "Pixelflow.SyncIntegrityFailed",
            Error::KeyConflict { .. } => "Pixelflow.SyncKeyConflict",
            Error::Io { .. } => "Pixelflow.SyncReadFailed",
            Error::Record { .. } => "Pixelflow.SyncRecordFailed",
            Error::Unreachable { .. } => "Pixelflow.SyncUnreachable",
            Error::Failed { .. } => "Pixelflow.SyncFailed",
            Error::Cancelled => pixelflow_engine::error::names::ABORTED,
        }
    }

    /// Whether retrying the same upload later may succeed (a network or service fault), as
    /// opposed to a fault of the request or the credentials that the same retry repeats.
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Failed { .. } | Error::Unreachable { .. } | Error::Integrity { .. })
    }

    /// The same kind of error for a file not tried after this one (bad credentials, a missing
    /// bucket: every file would meet it), so each file's failure names the real cause.
    pub(crate) fn not_tried(&self) -> Error {
        let why = format!("not tried after an earlier error: {self}");
        match self {
            Error::AuthFailed { destination, .. } => Error::AuthFailed { destination: destination.clone(), message: why },
            Error::PermissionDenied { destination, .. } => Error::PermissionDenied { destination: destination.clone(), message: why },
            Error::NotFound { destination, .. } => Error::NotFound { destination: destination.clone(), message: why },
            Error::WrongRegion { destination, .. } => Error::WrongRegion { destination: destination.clone(), message: why },
            Error::Unreachable { destination, .. } => Error::Unreachable { destination: destination.clone(), message: why },
            _ => Error::Failed { destination: String::new(), message: why },
        }
    }

    /// A copy of a fatal error (see [`Error::is_fatal`]); `Failed` with its text for others.
    pub(crate) fn copy(&self) -> Error {
        let (d, m) = match self {
            Error::AuthFailed { destination, message }
            | Error::PermissionDenied { destination, message }
            | Error::NotFound { destination, message }
            | Error::WrongRegion { destination, message }
            | Error::Unreachable { destination, message } => (destination.clone(), message.clone()),
            other => return Error::Failed { destination: String::new(), message: other.to_string() },
        };
        match self {
            Error::AuthFailed { .. } => Error::AuthFailed { destination: d, message: m },
            Error::PermissionDenied { .. } => Error::PermissionDenied { destination: d, message: m },
            Error::NotFound { .. } => Error::NotFound { destination: d, message: m },
            Error::Unreachable { .. } => Error::Unreachable { destination: d, message: m },
            _ => Error::WrongRegion { destination: d, message: m },
        }
    }

    /// Whether every other file of the same destination would fail the same way (a server
    /// still unreachable after a request's whole retry window counts: waiting that long again
    /// for each file left would only delay the report).
    pub(crate) fn is_fatal(&self) -> bool {
        matches!(
            self,
            Error::AuthFailed { .. } | Error::PermissionDenied { .. } | Error::NotFound { .. } | Error::WrongRegion { .. } | Error::Unreachable { .. }
        )
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io { path: path.into(), source }
    }
}
