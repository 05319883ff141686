//! Segmentation (issue 7): subject masks and background removal with ONNX Runtime, as the
//! `pixelflow:segment` step.
//!
//! - [`manifest`]: a model is a manifest (file, input name and size, layout, normalisation,
//!   output interpretation) in a model folder; adding a model is adding a manifest.
//! - [`runtime`]: ONNX Runtime found and loaded at run time (ort's `load-dynamic`: env var, next
//!   to the executable, the `onnxruntime` Python wheel), one session per model per process,
//!   intra-op threads = cores, CPU execution provider.
//! - [`process`]: pre- and post-processing on rayon; [`resample`]: Pillow's resampling, exactly
//!   (the model input and the mask are resized as the reference pre-processing does).
//! - [`step`]: the step, its in-memory API ([`step::segment`]) and the file outputs.
//!
//! Deliberately absent for now: GPU execution providers (the wheel's library is CPU-only),
//! guided-filter edge refinement (feathering is a gaussian blur), 16-bit output.

pub mod error;
pub mod manifest;
pub mod process;
pub mod resample;
pub mod runtime;
pub mod step;

pub use error::{Error, Result};
pub use step::{register, run_segment, segment, SegmentOptions, Segmentation};

/// How segmentation stands on this machine, for `pixelflow doctor`.
#[derive(Debug, Clone)]
pub struct Health {
    /// The library and its version, or why none could be loaded.
    pub runtime: std::result::Result<(std::path::PathBuf, String), String>,
    /// Each manifest found, and whether its model file is installed.
    pub models: Vec<(String, bool)>,
}

/// Looks for ONNX Runtime (loading it) and the models, without running any.
pub fn health() -> Health {
    let runtime = runtime::runtime().map(|rt| (rt.library.clone(), rt.version.clone())).map_err(|e| e.to_string());
    let models = manifest::available().into_iter().map(|l| (l.manifest.name, l.model_path.is_some())).collect();
    Health { runtime, models }
}

#[cfg(test)]
mod tests;
