//! GPU filters (issue 8): the `filter` step's chain as wgpu compute shaders (`shaders/*.wgsl`,
//! embedded at compile time), matching the CPU reference in `pixelflow_imaging::filter` within
//! 1/255 per channel, with that CPU path as the fallback.
//!
//! - [`context`]: the Vulkan adapter (hardware first), its device, each chain's pipelines
//!   compiled once (cached by the chain's generated source), the buffer pool; created lazily,
//!   once per process.
//! - `program`: a compiled chain as WGSL written for it: per-pixel runs inlined as
//!   straight-line code into the dispatch that loads the samples or ends the neighbourhood
//!   pass before them, blurs as two separable passes, constants inlined.
//! - [`filter`]: tiles (with the chain's halo) that fit the device's limits; stage, upload,
//!   dispatch, read back, unpack, pipelined over the tiles.
//! - [`step`]: the device-aware `filter` step (`device: auto | gpu | cpu`), which reports the
//!   device used in its result and falls back to the CPU for an image the GPU cannot take.
//!
//! Only Vulkan is built (lavapipe, Mesa's software driver, runs the tests in CI). `auto` never
//! uses a software adapter: lavapipe runs the shaders on the same cores as the CPU path, and
//! is at best on par with it (BENCHMARKS.md).
//!
//! Deliberately absent for now: resizing on the GPU, and overlapping the upload of the next
//! image with the readback of the previous one (one image at a time holds the device; within
//! an image, tile `n + 1` is uploaded while tile `n` runs and is read back).

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
