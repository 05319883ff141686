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
    vec![database(app), gpu(), crate::export::cloud_check(), onnxruntime()]
}

/// The GPU adapter the `filter` step would use: `Warn` for a software one (filters stay on the
/// CPU under `device: auto`) or none.
fn gpu() -> Check {
    match pixelflow_gpu::adapter() {
        Ok(a) if a.software => Check::new("gpu", Status::Warn, format!("{} ({}, {}): a software adapter; filters run on the CPU unless a workflow asks for device: gpu", a.name, a.backend, a.device_type)),
        Ok(a) => Check::new("gpu", Status::Ok, format!("{} ({}, {})", a.name, a.backend, a.device_type)),
        Err(e) => Check::new("gpu", Status::Warn, format!("{e}; filters run on the CPU")),
    }
}

fn database(app: &App) -> Check {
    let path = app.data().database();
    match app.history().schema_version() {
        Ok(version) => Check::new("database", Status::Ok, format!("{} (schema version {version})", path.display())),
        Err(e) => Check::new("database", Status::Fail, format!("{}: {e}", path.display())),
    }
}

/// ONNX Runtime (loaded to read its version) and the segmentation models installed. Optional:
/// without them only the segment step fails, so a missing part is a warning.
fn onnxruntime() -> Check {
    let health = pixelflow_segment::health();
    let installed: Vec<&str> = health.models.iter().filter(|(_, ok)| *ok).map(|(n, _)| n.as_str()).collect();
    let models = if installed.is_empty() {
        "no segmentation model installed (bash models/install.sh)".to_string()
    } else {
        format!("models: {}", installed.join(", "))
    };
    match health.runtime {
        Ok((path, version)) => {
            let status = if installed.is_empty() { Status::Warn } else { Status::Ok };
            let providers = match health.auto_provider {
                Some(auto) => format!("providers: {} (auto uses {})", health.providers.join(", "), auto.ort_name()),
                None => format!("providers: {}", health.providers.join(", ")),
            };
            Check::new("onnxruntime", status, format!("{version} at {}; {providers}; {models}", path.display()))
        }
        Err(e) => Check::new("onnxruntime", Status::Warn, format!("{e}; {models}")),
    }
}
