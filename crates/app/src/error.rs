//! Errors of the app facade, one enum that the CLI, the desktop shell and the tests match on.

use std::path::PathBuf;

use pixelflow_engine::Diagnostics;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    /// The workflow definition or the input is not acceptable; nothing ran.
    #[error("{0}")]
    Invalid(Diagnostics),
    #[error("{0}")]
    NotFound(String),
    /// Something else holds what this needs (another watch service on the data directory).
    #[error("{0}")]
    Busy(String),
    #[error(transparent)]
    History(#[from] pixelflow_history::Error),
}

impl Error {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }

    pub fn invalid(pointer: &str, message: impl Into<String>) -> Self {
        let mut d = Diagnostics::default();
        d.push(pointer, message);
        Error::Invalid(d)
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
