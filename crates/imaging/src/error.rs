//! The errors of the image operations, and the ASL error name each one becomes in a step.
//!
//! An image that is merely *bad* (truncated, too large, not an image) is not an error for
//! `validate`: it answers `isValid: false` with a reason. These errors are for what stops an
//! operation: a missing file, bad parameters, an image that cannot be decoded when pixels are
//! needed, a failed write.

use std::path::PathBuf;

/// ASL error names raised by the image steps (what `Retry`/`Catch` match).
pub mod names {
    pub const INPUT_NOT_FOUND: &str = "Pixelflow.InputNotFound";
    pub const IO: &str = "Pixelflow.Io";
    pub const INVALID_PARAMETERS: &str = "Pixelflow.InvalidParameters";
    pub const UNSUPPORTED_FORMAT: &str = "Pixelflow.UnsupportedFormat";
    pub const DECODE_FAILED: &str = "Pixelflow.DecodeFailed";
    pub const LIMIT_EXCEEDED: &str = "Pixelflow.LimitExceeded";
    pub const ENCODE_FAILED: &str = "Pixelflow.EncodeFailed";
    /// The engine's own name for a cancelled task.
    pub const ABORTED: &str = "States.Aborted";
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("{}: no such file", path.display())]
    InputNotFound { path: PathBuf },

    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{0}")]
    InvalidParameters(String),

    /// Recognised, but not a format this build decodes (or encodes).
    #[error("unsupported format: {0}")]
    UnsupportedFormat(String),

    /// The bytes are not a decodable image: corrupt, truncated, or not an image at all.
    #[error("cannot decode the image: {0}")]
    Decode(String),

    /// The file is larger than the limits allow; it was not read.
    #[error("{0}")]
    LimitExceeded(String),

    /// The header announces more pixels than allowed; nothing was allocated for them.
    #[error("the image is {width}x{height} ({} pixels), more than the limit of {limit} pixels", u64::from(*width) * u64::from(*height))]
    TooManyPixels { width: u32, height: u32, limit: u64 },

    #[error("cannot encode {format}: {message}")]
    Encode { format: &'static str, message: String },

    #[error("cancelled")]
    Cancelled,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The ASL error name a step reports for this error.
    pub fn asl_name(&self) -> &'static str {
        match self {
            Error::InputNotFound { .. } => names::INPUT_NOT_FOUND,
            Error::Io { .. } => names::IO,
            Error::InvalidParameters(_) => names::INVALID_PARAMETERS,
            Error::UnsupportedFormat(_) => names::UNSUPPORTED_FORMAT,
            Error::Decode(_) => names::DECODE_FAILED,
            Error::LimitExceeded(_) | Error::TooManyPixels { .. } => names::LIMIT_EXCEEDED,
            Error::Encode { .. } => names::ENCODE_FAILED,
            Error::Cancelled => names::ABORTED,
        }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Error {
        Error::InvalidParameters(message.into())
    }

    /// An I/O error on `path`, with "not found" told apart (a workflow routes it differently).
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        let path = path.into();
        if source.kind() == std::io::ErrorKind::NotFound {
            Error::InputNotFound { path }
        } else {
            Error::Io { path, source }
        }
    }
}
