//! The image steps of Pixelflow: `validate`, `resize`, `filter` and `optimize`, each an
//! in-memory API (bytes or pixels in, bytes or a report out) with a thin file wrapper beside
//! it, and [`steps`] exposing them to workflows as `pixelflow:<name>` Task resources.
//!
//! Decoding: JPEG through mozjpeg (libjpeg-turbo, with DCT-domain shrink-on-load), PNG, WebP,
//! GIF (first frame) and BMP through the `image` crate. Every decode is preceded by a header
//! read that refuses oversized images before anything is allocated for their pixels.
//! Resampling: fast_image_resize. Filters: [`filter`], in `f32` on rayon's pool, the reference
//! that a GPU path must match. Encoding: JPEG (mozjpeg), PNG, lossless WebP.
//!
//! Deliberately absent for now: colour management (an ICC profile is carried over when it
//! still describes the output's channels, never converted to sRGB; `moxcms`, already built as
//! a dependency of `image`, can do that later), lossy WebP and AVIF output, TIFF/HEIF/AVIF/JXL
//! input (recognised and refused by name), animation (GIF and WebP give their first frame),
//! palette quantisation of PNGs, `maxBytes` targets for optimize, and content-aware cropping
//! (`entropy`, `attention`).
//!
//! libjpeg reports fatal errors by unwinding (see `jpeg.rs`): builds must keep `panic = "unwind"`.

pub mod decode;
pub mod encode;
pub mod error;
pub mod filter;
pub mod format;
pub mod geometry;
mod jpeg;
pub mod naming;
pub mod optimize;
pub mod resize;
pub mod steps;
pub mod util;
pub mod validate;

pub use decode::{probe, ImageInfo};
pub use encode::{Effort, OutputFormat};
pub use error::{Error, Result};
pub use filter::{filter_bytes, filter_file, FilterChain, FilterOp, FilterOptions};
pub use format::Format;
pub use optimize::{optimize_bytes, optimize_file, OptimizeOptions};
pub use resize::{ResizeOptions, Resizer, Variant};
pub use validate::{validate_bytes, validate_path, ValidateOptions, Validation};
