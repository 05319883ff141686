//! `pixelflow doctor`: what this machine offers Pixelflow and what is missing, one line per part
//! (the history database, the GPU adapter, ONNX Runtime, the cloud profiles). Each part's crate
//! says how it stands; this module only gathers the answers in one list.

use serde::Serialize;

use crate::App;

/// How one part of the installation stands.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// The part: "database", "gpu", "onnxruntime", "cloud".
    pub part: String,
    pub status: Status,
    /// What was found (a version, an adapter, a path) or what is wrong and how to fix it.
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Works.
    Ok,
    /// Works in a lesser way (a software GPU adapter, an optional part not installed).
    Warn,
    /// Broken: something that should work does not.
    Fail,
}

impl Check {
    pub fn new(part: impl Into<String>, status: Status, detail: impl Into<String>) -> Check {
        Check { part: part.into(), status, detail: detail.into() }
    }
}

/// Runs every check. Never fails itself: a part that cannot be checked is a `Fail` line.
pub fn run(app: &App) -> Vec<Check> {
    vec![database(app)]
}

fn database(app: &App) -> Check {
    let path = app.data().database();
    match app.history().schema_version() {
        Ok(version) => Check::new("database", Status::Ok, format!("{} (schema version {version})", path.display())),
        Err(e) => Check::new("database", Status::Fail, format!("{}: {e}", path.display())),
    }
}
