//! Segmentation (issue 7): subject masks and background removal with ONNX Runtime, as the
//! `pixelflow:segment` step.
//!
//! - [`manifest`]: a model is a manifest (file, input name and size, layout, normalisation,
//!   output interpretation) in a model folder; adding a model is adding a manifest.
//! - [`runtime`]: ONNX Runtime found and loaded at run time (ort's `load-dynamic`: env var, next
//!   to the executable, the `onnxruntime` Python wheel), one session per model and execution
//!   provider per process, intra-op threads = cores.
//! - [`provider`]: the execution provider: `device: auto` takes the first accelerator the
//!   library offers (CUDA, ROCm, MIGraphX, DirectML, CoreML) and falls back to the CPU when it
//!   cannot start; `gpu`, `cpu` or a named `provider` are that or an error.
//! - [`process`]: pre- and post-processing on rayon; [`resample`]: Pillow's resampling, exactly
//!   (the model input and the mask are resized as the reference pre-processing does).
//! - [`step`]: the step, its in-memory API ([`step::segment`]) and the file outputs.
//!
//! Deliberately absent for now: provider options (CUDA's device id, TensorRT's engine cache:
//! ONNX Runtime's defaults), guided-filter edge refinement (feathering is a gaussian blur),
//! 16-bit output.

pub mod error;
pub mod manifest;
pub mod process;
pub mod provider;
pub mod resample;
pub mod runtime;
pub mod step;

pub use error::{Error, Result};
pub use provider::{Provider, Selection};
pub use runtime::available_providers;
pub use step::{register, run_segment, segment, SegmentOptions, Segmentation};

/// How segmentation stands on this machine, for `pixelflow doctor`.
#[derive(Debug, Clone)]
pub struct Health {
    /// The library and its version, or why none could be loaded.
    pub runtime: std::result::Result<(std::path::PathBuf, String), String>,
    /// Each manifest found, and whether its model file is installed.
    pub models: Vec<(String, bool)>,
    /// The execution providers the library offers (ONNX Runtime's names, most preferred
    /// first); empty without a library.
    pub providers: Vec<String>,
    /// The provider `device: auto` tries first: an offered accelerator, else the CPU; `None`
    /// without a library. Whether it starts (driver, device) is known only when a model loads.
    pub auto_provider: Option<Provider>,
}

/// Looks for ONNX Runtime (loading it) and the models, without running any.
pub fn health() -> Health {
    let rt = runtime::runtime();
    let providers = rt.as_ref().ok().and_then(|_| runtime::available_providers().ok()).unwrap_or_default();
    let auto_provider = rt.as_ref().ok().and_then(|rt| Selection::Auto.candidates(&providers, &rt.library).ok()).and_then(|c| c.first().copied());
    let runtime = rt.map(|rt| (rt.library.clone(), rt.version.clone())).map_err(|e| e.to_string());
    let models = manifest::available().into_iter().map(|l| (l.manifest.name, l.model_path.is_some())).collect();
    Health { runtime, models, providers, auto_provider }
}

#[cfg(test)]
mod tests;
