//! The errors of segmentation, and the ASL error name each one becomes in the step.

use std::path::PathBuf;

/// ASL error names raised by the segment step (what `Retry`/`Catch` match). Image errors
/// (missing file, decode failure, limits) keep the image steps' names.
pub mod names {
    pub const ONNX_RUNTIME_MISSING: &str = "Pixelflow.OnnxRuntimeMissing";
    pub const MODEL_NOT_FOUND: &str = "Pixelflow.ModelNotFound";
    pub const MODEL_MISMATCH: &str = "Pixelflow.ModelMismatch";
    pub const INVALID_MANIFEST: &str = "Pixelflow.InvalidModelManifest";
    pub const IMAGE_TOO_SMALL: &str = "Pixelflow.ImageTooSmall";
    pub const IMAGE_HAS_ALPHA: &str = "Pixelflow.ImageHasAlpha";
    pub const INFERENCE_FAILED: &str = "Pixelflow.InferenceFailed";
    pub const PROVIDER_UNAVAILABLE: &str = "Pixelflow.ProviderUnavailable";
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No loadable ONNX Runtime library was found; the message lists where we looked and how
    /// to install it.
    #[error("{0}")]
    OnnxRuntimeMissing(String),

    /// No manifest of that name, or its `.onnx` file is not installed.
    #[error("model {model}: {message}")]
    ModelNotFound { model: String, message: String },

    /// The manifest cannot be read or says something impossible.
    #[error("model manifest {}: {message}", path.display())]
    InvalidManifest { path: PathBuf, message: String },

    /// The model file does not have the inputs/outputs its manifest describes, or is not the
    /// file the manifest names (size, sha256).
    #[error("model {model} ({}): {message}", path.display())]
    ModelMismatch { model: String, path: PathBuf, message: String },

    #[error("the image is {width}x{height}, smaller than the {min}x{min} pixels model {model} needs")]
    ImageTooSmall { model: String, width: u32, height: u32, min: u32 },

    #[error("{}: the image already has transparency (an alpha channel that is not fully opaque); segmenting it would discard that alpha: flatten it first, or pass ignoreAlpha: true to segment its colours as they are", path.display())]
    ImageHasAlpha { path: PathBuf },

    /// The execution provider a workflow asked for (`provider`, or `device: gpu`) is not
    /// offered by the loaded ONNX Runtime, or failed to start; the message says which library,
    /// what it offers and how to get the provider.
    #[error("{provider}: {message}")]
    ProviderUnavailable { provider: String, message: String },

    #[error("model {model}: inference failed: {message}")]
    Inference { model: String, message: String },

    /// Bad step parameters (also bad names and colours).
    #[error("{0}")]
    InvalidParameters(String),

    /// Reading, decoding, encoding or writing an image.
    #[error(transparent)]
    Image(#[from] pixelflow_imaging::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The ASL error name the step reports for this error.
    pub fn asl_name(&self) -> &'static str {
        match self {
            Error::OnnxRuntimeMissing(_) => names::ONNX_RUNTIME_MISSING,
            Error::ModelNotFound { .. } => names::MODEL_NOT_FOUND,
            Error::InvalidManifest { .. } => names::INVALID_MANIFEST,
            Error::ModelMismatch { .. } => names::MODEL_MISMATCH,
            Error::ImageTooSmall { .. } => names::IMAGE_TOO_SMALL,
            Error::ImageHasAlpha { .. } => names::IMAGE_HAS_ALPHA,
            Error::Inference { .. } => names::INFERENCE_FAILED,
            Error::ProviderUnavailable { .. } => names::PROVIDER_UNAVAILABLE,
            Error::InvalidParameters(_) => pixelflow_imaging::error::names::INVALID_PARAMETERS,
            Error::Image(e) => e.asl_name(),
        }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Error {
        Error::InvalidParameters(message.into())
    }
}
