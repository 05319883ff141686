//! GPU filters (issue 8): the `filter` step's chain as wgpu compute shaders (`shaders/*.wgsl`,
//! embedded at compile time), matching the CPU reference in `pixelflow_imaging::filter` within
//! 1/255 per channel, with that CPU path as the fallback.
//!
//! - [`context`]: the Vulkan adapter (hardware first), its device, the pipelines compiled once,
//!   the buffer pool; created lazily, once per process.
//! - `program`: a compiled chain as dispatches: per-pixel runs fused into
//!   one dispatch (an op list the shader interprets), blurs as two separable passes.
//! - [`filter`]: tiles (with the chain's halo) that fit the device's limits; pack, upload,
//!   dispatch, read back, unpack.
//! - [`step`]: the device-aware `filter` step (`device: auto | gpu | cpu`), which reports the
//!   device used in its result and falls back to the CPU for an image the GPU cannot take.
//!
//! Only Vulkan is built (lavapipe, Mesa's software driver, runs the tests in CI). `auto` never
//! uses a software adapter: on lavapipe the GPU path is slower than the CPU's (BENCHMARKS.md).
//!
//! Deliberately absent for now: resizing on the GPU, and overlapping the upload of the next
//! image with the readback of the previous one (one image at a time holds the device).

pub mod context;
pub mod error;
pub mod filter;
mod program;
pub mod step;
#[cfg(test)]
mod tests;

pub use context::{adapter, AdapterSummary, GpuContext};
pub use error::{Error, Result};
pub use filter::{GpuFilter, GpuFilterOptions, Timings};
pub use step::{register, DeviceChoice, DeviceFilter, DeviceReport};
