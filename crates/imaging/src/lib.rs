//! The image steps of Pixelflow: `validate`, `resize`, `filter` and `optimize`, each an
//! in-memory API (bytes or pixels in, bytes or a report out) with a thin file wrapper beside
//! it, and [`steps`] exposing them to workflows as `pixelflow:<name>` Task resources.
//!
//! Decoding: JPEG through mozjpeg (libjpeg-turbo, with DCT-domain shrink-on-load), PNG, WebP,
//! GIF (first frame), BMP and TIFF (8 and 16 bits) through the `image` crate. Every decode is
//! preceded by a header read that refuses oversized images before anything is allocated for
//! their pixels. Resampling: fast_image_resize. Filters: [`filter`], in `f32` on rayon's pool,
//! the reference that a GPU path must match. Encoding: JPEG (mozjpeg), PNG, WebP (lossy through
//! libwebp, or lossless), AVIF (rav1e). Colour: [`color`] converts ICC-profiled pixels to sRGB
//! by default (moxcms), or keeps the profile.
//!
//! Deliberately absent for now: HEIF/AVIF/JXL input (recognised and refused by name: AVIF
//! decoding needs dav1d >= 1.3, Debian 12 has 1.0; libheif-rs needs a newer libheif than
//! Debian 12's 1.15), grey ICC profiles converted (they are carried), animation (GIF and WebP
//! give their first frame), palette quantisation of PNGs, and content-aware cropping
//! (`entropy`, `attention`).
//!
//! libjpeg reports fatal errors by unwinding (see `jpeg.rs`): builds must keep `panic = "unwind"`.

pub mod color;
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
mod webp;

pub use decode::{probe, ImageInfo};
pub use color::IccPolicy;
pub use encode::{Effort, EncodeExtras, OutputFormat};
pub use error::{Error, Result};
pub use filter::{filter_bytes, filter_file, FilterChain, FilterOp, FilterOptions};
pub use format::Format;
pub use optimize::{optimize_bytes, optimize_file, OptimizeOptions};
pub use resize::{ResizeOptions, Resizer, Variant};
pub use validate::{validate_bytes, validate_path, ValidateOptions, Validation};
