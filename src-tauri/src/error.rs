//! The one error every command returns: `{code, message, diagnostics}`, serialised for the UI.

use pixelflow_app::Error;
use pixelflow_engine::Diagnostic;
use serde::Serialize;

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CommandError {
    /// `invalid` (nothing ran; see `diagnostics`), `notFound`, `busy`, `io` or `internal`.
    pub code: &'static str,
    pub message: String,
    /// Every fault of an invalid definition or input, with its JSON pointer.
    pub diagnostics: Vec<Diagnostic>,
}

impl CommandError {
    pub fn invalid(message: impl Into<String>) -> Self {
        CommandError { code: "invalid", message: message.into(), diagnostics: Vec::new() }
    }
}

impl From<Error> for CommandError {
    fn from(e: Error) -> Self {
        let message = e.to_string();
        match e {
            Error::Invalid(d) => CommandError { code: "invalid", message, diagnostics: d.0 },
            Error::NotFound(_) => CommandError { code: "notFound", message, diagnostics: Vec::new() },
            Error::Io { .. } => CommandError { code: "io", message, diagnostics: Vec::new() },
            Error::Busy(_) => CommandError { code: "busy", message, diagnostics: Vec::new() },
            _ => CommandError { code: "internal", message, diagnostics: Vec::new() },
        }
    }
}

impl From<pixelflow_history::Error> for CommandError {
    fn from(e: pixelflow_history::Error) -> Self {
        CommandError::from(Error::from(e))
    }
}

pub type Result<T> = std::result::Result<T, CommandError>;
