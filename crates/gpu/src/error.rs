//! The errors of the GPU path. None of them fails a step: the `filter` step answers each by
//! running the CPU path for that image, with a warning.

/// Why an image was not (or could not be) filtered on the GPU.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No Vulkan adapter: no GPU, no driver, or no Vulkan loader (`libvulkan1`).
    #[error("no GPU adapter: {0}")]
    NoAdapter(String),
    /// The adapter would not give a device, or the device was lost.
    #[error("the GPU device failed: {0}")]
    Device(String),
    /// An allocation failed (out of GPU memory), or a command was refused.
    #[error("the GPU could not run the chain: {0}")]
    Run(String),
    /// The image does not fit the device even in tiles (a halo too wide for its limits), or
    /// its sample type is not one the kernels read.
    #[error("the image cannot be filtered on this GPU: {0}")]
    Unsupported(String),
    /// `should_stop` answered true between tiles.
    #[error("cancelled")]
    Cancelled,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
