//! `filter`: a chain of filters applied to one image. This CPU version is the **reference**:
//! the GPU path (WGSL compute shaders) must reproduce it within 1/255 per channel, so every
//! step of the computation is specified here, and the code follows this text.
//!
//! # The working form
//!
//! The decoded image (EXIF orientation applied) is read into straight (un-premultiplied) RGBA
//! `f32` in `0..=1`: an 8-bit sample `v` becomes `v / 255`, a 16-bit one `v / 65535` (an
//! IEEE division, rounded to nearest). Grey becomes `R = G = B`; a missing alpha is `1`.
//! Colours stay in the encoded (sRGB) space, as CSS filters and sharp's `modulate` work: no
//! linearisation. The whole chain runs in `f32`; nothing is quantised between filters.
//!
//! At the end each channel `c` is written back as `floor(clamp(c, 0, 1) * 255 + 0.5)` (8-bit
//! sources) or `floor(clamp(c, 0, 1) * 65535 + 0.5)` (16-bit sources): round half up. The
//! output keeps the source's channels: grey stays grey unless the chain can make colour
//! (`sepia` with an amount above 0, a `colorMatrix` whose three colour rows differ in their
//! RGB sums, alpha weights or offsets), in which case it becomes RGB; and it gains an alpha
//! channel only when the chain can change alpha (a `colorMatrix` whose alpha row is not
//! `[0, 0, 0, 1, 0]`, or a `convolve` on premultiplied alpha whose weights do not sum to 1).
//! A grey output takes the R channel. Other sample types (32-bit float) are read as 16-bit.
//!
//! # Per-pixel filters
//!
//! They act on straight RGBA; `c` stands for each of R, G, B; alpha is untouched except by
//! `colorMatrix`. After **every** filter the channels it wrote are clamped to `0..=1` (as CSS
//! filter functions compose: `brightness(2) brightness(0.5)` does not restore white-clipped
//! detail). Matrices are computed in `f64` from the parameters and rounded to `f32` once; a
//! row is evaluated left to right, `((m0*r + m1*g) + m2*b) [+ m3*a + m4]`, without fused
//! multiply-adds.
//!
//! | filter | parameters | formula |
//! | --- | --- | --- |
//! | `brightness` | `amount` 0..=100 | `c * amount` |
//! | `contrast` | `amount` 0..=100 | `(c - 0.5) * amount + 0.5` |
//! | `saturation` | `amount` 0..=100 | CSS `saturate(s)`: `[.213+.787s, .715-.715s, .072-.072s; .213-.213s, .715+.285s, .072-.072s; .213-.213s, .715-.715s, .072+.928s]` |
//! | `hueRotate` | `degrees`, any finite value | CSS `hue-rotate(θ)` (θ reduced modulo 360 first), with `cos θ`, `sin θ`: `[.213+.787cos-.213sin, .715-.715cos-.715sin, .072-.072cos+.928sin; .213-.213cos+.143sin, .715+.285cos+.140sin, .072-.072cos-.283sin; .213-.213cos-.787sin, .715-.715cos+.715sin, .072+.928cos+.072sin]` |
//! | `gamma` | `value` 0.01..=100 | `c ^ (1 / value)` (`powf`; above 1 brightens) |
//! | `grayscale` | `amount` 0..=1, default 1 | CSS `grayscale(a)`, with `g = 1 - a`: `[.2126+.7874g, .7152-.7152g, .0722-.0722g; .2126-.2126g, .7152+.2848g, .0722-.0722g; .2126-.2126g, .7152-.7152g, .0722+.9278g]` |
//! | `sepia` | `amount` 0..=1, default 1 | CSS `sepia(a)`, with `g = 1 - a`: `[.393+.607g, .769-.769g, .189-.189g; .349-.349g, .686+.314g, .168-.168g; .272-.272g, .534-.534g, .131+.869g]` |
//! | `invert` | `amount` 0..=1, default 1 | CSS `invert(a)`: `c * (1 - 2a) + a` |
//! | `colorMatrix` | `matrix`: 20 numbers, each within ±1000 | `[R' G' B' A'] = M · [R G B A 1]`, M row-major 4x5, offsets (column 5) in 0..1 units; alpha is clamped too |
//! | `vignette` | `strength` 0..=1, `radius` 0..1 (default 0.5) | `c * (1 - strength * w)`, below |
//!
//! Vignette: for the pixel centre `(x + 0.5, y + 0.5)` of a `W x H` image, `dx = (x + 0.5 -
//! W/2) / (W/2)`, `dy = (y + 0.5 - H/2) / (H/2)`, `d = sqrt((dx² + dy²) / 2)` (an ellipse
//! that follows the image: 0 at the centre, about 1 in the corners), `t = clamp((d - radius)
//! / (1 - radius), 0, 1)`, `w = t * t * (3 - 2t)` (smoothstep), all in `f32`.
//!
//! # Neighbourhood filters
//!
//! They work on **premultiplied** RGBA (`[r*a, g*a, b*a, a]`), so transparent pixels do not
//! bleed their hidden colour, with **clamp-to-edge** borders (a neighbour outside the image is
//! the nearest edge pixel). Sums run over the taps in order (left to right, top to bottom),
//! each tap a multiply then an add, from `0.0`. The result `q` is turned back into straight
//! colour: `a' = clamp(q.a, 0, 1)`; where `a' > 0`, `c' = clamp(q.c / a', 0, 1)`; where
//! `a' = 0` the pixel's colour is left as it was (it is invisible) and its alpha becomes 0.
//!
//! - `blur {sigma}` (0 < sigma <= 100): gaussian, radius `r = ceil(3 * sigma)`, weights
//!   `exp(-i² / (2 sigma²))` for `i` in `-r..=r`, normalised to sum 1 in `f64` then rounded
//!   to `f32`. Separable: a horizontal pass (on all four premultiplied channels, into a
//!   scratch image), then a vertical pass over that.
//! - `unsharp {sigma, amount, threshold?}` (sigma as blur, amount 0..=100, threshold 0..=1,
//!   default 0): `b` = the blur above of the premultiplied image `p`; per channel (alpha
//!   included) `d = p - b`, `d = 0` where `|d| < threshold`, `q = p + amount * d`.
//! - `convolve {kernel, divisor?, bias?, preserveAlpha?}`: a 3x3 or 5x5 kernel (9 or 25
//!   numbers, row-major, each within ±1000) laid over the neighbourhood as written
//!   (correlation: `kernel[0]` weighs the top-left neighbour, not flipped). `divisor`
//!   defaults to the kernel's sum, or 1 when that is 0 (at least 0.001 in magnitude); the
//!   weights are `kernel[i] / divisor` in `f64`, rounded to `f32`. `q` is the weighted sum of
//!   the premultiplied pixels, all four channels; then `c' = clamp(q.c / a' + bias, 0, 1)`
//!   (`bias` within ±1, default 0, a colour offset in 0..1 units: alpha is never biased).
//!   With `preserveAlpha: true` (as SVG's `feConvolveMatrix`) the kernel runs on the straight
//!   colour instead (the hidden colour of transparent neighbours counts), `c' = clamp(sum +
//!   bias, 0, 1)`, and alpha is untouched: use it for kernels that sum to 0 (edge
//!   detection), which would otherwise make an opaque image transparent.
//!
//! # Passes and parallelism
//!
//! Consecutive per-pixel filters **fuse** into one pass: each row is read once, every filter
//! of the run is applied to it in order, and it is written once. This is the same arithmetic
//! as applying them one by one (bit for bit), because each filter only ever sees its
//! predecessor's clamped output. Linear filters are *not* precomposed into one matrix: the
//! clamp between two filters makes that inexact. Each neighbourhood filter is its own pass
//! (two for the separable blur). A chain of per-pixel filters only streams rows from the
//! decoded image to the output without a full-size `f32` copy; otherwise the working image
//! takes 16 bytes a pixel, plus 16 more for the scratch image of neighbourhood passes.
//!
//! Every pass runs on rayon's pool over bands of rows; a row's result does not depend on the
//! banding, so the output is the same on any number of threads.
//!
//! # For the GPU twin
//!
//! crates/gpu is that twin: it reads the compiled passes ([`FilterChain::compiled`]) and runs
//! under [`with_device`]. Upload the `f32` matrices and weights computed here rather than
//! recomputing them in WGSL.
//! Fused multiply-adds and another summation order stay far inside 1/255, unless the chain
//! amplifies tiny differences (a huge contrast, unsharp amount or kernel). Where the output
//! alpha is 0 the colour is the pixel's earlier colour (the rule above): invisible, so a
//! comparison may skip it, since a neighbourhood pass on the GPU may find a tiny alpha
//! where this one finds 0.
//!
//! Deliberately absent for now: filtering in linear light, median and bilateral filters,
//! kernels larger than 5x5, and borders other than clamp-to-edge.

mod color;
mod kernel;
mod parse;
mod pixels;
mod run;
#[cfg(test)]
mod tests;

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use image::{DynamicImage, Rgba};
use serde_json::Value;

use crate::decode::{self, DecodeOptions, DEFAULT_MAX_PIXELS};
use crate::encode::{self, Effort, EncodeExtras, EncodeOptions, OutputFormat};
use crate::error::{Error, Result};
use crate::naming::{self, NameTemplate, NameVars};
use crate::resize::refuse_overwriting_input;
use crate::util;

pub use color::PixelOp;
pub use kernel::{Gaussian, Neighbourhood};
pub use pixels::Sample;

/// The default file name template of filter outputs.
pub const DEFAULT_NAMING: &str = "{stem}-filtered.{ext}";

/// The most filters one chain holds.
pub const MAX_FILTERS: usize = 32;

/// The largest gaussian sigma (`blur`, `unsharp`): a radius of 300 pixels, 601 taps a pass.
pub const MAX_SIGMA: f64 = 100.0;

/// One filter of a chain, with its parameters as given (see the module documentation for
/// what each does and the ranges [`FilterChain::new`] accepts).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum FilterOp {
    Brightness { amount: f64 },
    Contrast { amount: f64 },
    Saturation { amount: f64 },
    HueRotate { degrees: f64 },
    Gamma { value: f64 },
    Grayscale { amount: f64 },
    Sepia { amount: f64 },
    Invert { amount: f64 },
    /// Row-major 4x5, offsets in 0..1 units.
    ColorMatrix { matrix: [f64; 20] },
    Vignette { strength: f64, radius: f64 },
    Blur { sigma: f64 },
    Unsharp { sigma: f64, amount: f64, threshold: f64 },
    /// `kernel`: 9 (3x3) or 25 (5x5) weights, row-major.
    Convolve { kernel: Vec<f64>, divisor: Option<f64>, bias: f64, preserve_alpha: bool },
}

/// A parameter out of its range: the field, and what it must be.
type Refusal = (&'static str, String);

fn within(field: &'static str, value: f64, low: f64, high: f64) -> std::result::Result<(), Refusal> {
    if value.is_finite() && (low..=high).contains(&value) {
        Ok(())
    } else {
        Err((field, format!("must be a number from {low} to {high}, got {value}")))
    }
}

fn positive_up_to(field: &'static str, value: f64, high: f64) -> std::result::Result<(), Refusal> {
    if value.is_finite() && value > 0.0 && value <= high {
        Ok(())
    } else {
        Err((field, format!("must be a number above 0 and at most {high}, got {value}")))
    }
}

impl FilterOp {
    /// The filter's `type` as a workflow writes it.
    pub fn name(&self) -> &'static str {
        match self {
            FilterOp::Brightness { .. } => "brightness",
            FilterOp::Contrast { .. } => "contrast",
            FilterOp::Saturation { .. } => "saturation",
            FilterOp::HueRotate { .. } => "hueRotate",
            FilterOp::Gamma { .. } => "gamma",
            FilterOp::Grayscale { .. } => "grayscale",
            FilterOp::Sepia { .. } => "sepia",
            FilterOp::Invert { .. } => "invert",
            FilterOp::ColorMatrix { .. } => "colorMatrix",
            FilterOp::Vignette { .. } => "vignette",
            FilterOp::Blur { .. } => "blur",
            FilterOp::Unsharp { .. } => "unsharp",
            FilterOp::Convolve { .. } => "convolve",
        }
    }

    /// Checks the parameters: finite and within the documented ranges.
    fn check(&self) -> std::result::Result<(), Refusal> {
        match self {
            FilterOp::Brightness { amount } | FilterOp::Contrast { amount } | FilterOp::Saturation { amount } => {
                within("amount", *amount, 0.0, 100.0)
            }
            FilterOp::HueRotate { degrees } if !degrees.is_finite() => Err(("degrees", format!("must be a finite number, got {degrees}"))),
            FilterOp::HueRotate { .. } => Ok(()),
            FilterOp::Gamma { value } => within("value", *value, 0.01, 100.0),
            FilterOp::Grayscale { amount } | FilterOp::Sepia { amount } | FilterOp::Invert { amount } => within("amount", *amount, 0.0, 1.0),
            FilterOp::ColorMatrix { matrix } => match matrix.iter().position(|m| !(m.is_finite() && m.abs() <= 1000.0)) {
                Some(i) => Err(("matrix", format!("entry {i} must be a number from -1000 to 1000, got {}", matrix[i]))),
                None => Ok(()),
            },
            FilterOp::Vignette { strength, radius } => {
                within("strength", *strength, 0.0, 1.0)?;
                if radius.is_finite() && (0.0..1.0).contains(radius) {
                    Ok(())
                } else {
                    Err(("radius", format!("must be a number from 0 up to (not including) 1, got {radius}")))
                }
            }
            FilterOp::Blur { sigma } => positive_up_to("sigma", *sigma, MAX_SIGMA),
            FilterOp::Unsharp { sigma, amount, threshold } => {
                positive_up_to("sigma", *sigma, MAX_SIGMA)?;
                within("amount", *amount, 0.0, 100.0)?;
                within("threshold", *threshold, 0.0, 1.0)
            }
            FilterOp::Convolve { kernel, divisor, bias, .. } => {
                if kernel.len() != 9 && kernel.len() != 25 {
                    return Err(("kernel", format!("must hold 9 (3x3) or 25 (5x5) numbers, got {}", kernel.len())));
                }
                if let Some(i) = kernel.iter().position(|k| !(k.is_finite() && k.abs() <= 1000.0)) {
                    return Err(("kernel", format!("entry {i} must be a number from -1000 to 1000, got {}", kernel[i])));
                }
                if let Some(d) = divisor {
                    if !(d.is_finite() && (0.001..=1e6).contains(&d.abs())) {
                        return Err(("divisor", format!("must be a number whose magnitude is from 0.001 to 1000000, got {d}")));
                    }
                }
                within("bias", *bias, -1.0, 1.0)
            }
        }
    }

    fn is_per_pixel(&self) -> bool {
        !matches!(self, FilterOp::Blur { .. } | FilterOp::Unsharp { .. } | FilterOp::Convolve { .. })
    }

    /// Whether the filter can turn a grey pixel into a coloured one.
    fn adds_colour(&self) -> bool {
        match self {
            FilterOp::Sepia { amount } => *amount > 0.0,
            // Grey in, grey out when the three colour rows give the same result for any grey:
            // equal sums of their RGB weights, equal alpha weights, equal offsets.
            FilterOp::ColorMatrix { matrix } => {
                let row = |i: usize| (matrix[i * 5] + matrix[i * 5 + 1] + matrix[i * 5 + 2], matrix[i * 5 + 3], matrix[i * 5 + 4]);
                row(0) != row(1) || row(1) != row(2)
            }
            _ => false,
        }
    }

    /// Whether the filter can make an opaque pixel transparent.
    fn may_change_alpha(&self) -> bool {
        match self {
            FilterOp::ColorMatrix { matrix } => matrix[15..20] != [0.0, 0.0, 0.0, 1.0, 0.0],
            FilterOp::Convolve { kernel, divisor, preserve_alpha: false, .. } => {
                let d = resolved_divisor(kernel, *divisor);
                (kernel.iter().map(|k| k / d).sum::<f64>() - 1.0).abs() > 1e-6
            }
            _ => false,
        }
    }
}

/// `divisor`, or the kernel's sum, or 1 when that is 0.
fn resolved_divisor(kernel: &[f64], divisor: Option<f64>) -> f64 {
    divisor.unwrap_or_else(|| {
        let sum: f64 = kernel.iter().sum();
        if sum == 0.0 {
            1.0
        } else {
            sum
        }
    })
}

/// One pass over the image, as [`FilterChain::compiled`] gives it to another device.
#[derive(Debug, Clone)]
pub enum Pass {
    /// A run of per-pixel filters, applied to each row in order.
    Pixel(Vec<PixelOp>),
    Neighbourhood(Neighbourhood),
}

/// Turns filters into passes: consecutive per-pixel filters share one pass when `fuse`.
fn compile(filters: &[FilterOp], fuse: bool) -> Vec<Pass> {
    let mut passes: Vec<Pass> = Vec::new();
    for filter in filters {
        if filter.is_per_pixel() {
            let op = PixelOp::new(filter);
            match passes.last_mut() {
                Some(Pass::Pixel(ops)) if fuse => ops.push(op),
                _ => passes.push(Pass::Pixel(vec![op])),
            }
        } else {
            let pass = match filter {
                FilterOp::Blur { sigma } => Neighbourhood::Blur(Gaussian::new(*sigma)),
                FilterOp::Unsharp { sigma, amount, threshold } => {
                    Neighbourhood::Unsharp { gaussian: Gaussian::new(*sigma), amount: *amount as f32, threshold: *threshold as f32 }
                }
                FilterOp::Convolve { kernel, divisor, bias, preserve_alpha } => {
                    let d = resolved_divisor(kernel, *divisor);
                    let size = if kernel.len() == 25 { 5 } else { 3 };
                    let weights = kernel.iter().map(|k| (k / d) as f32).collect();
                    Neighbourhood::Convolve { size, weights, bias: *bias as f32, preserve_alpha: *preserve_alpha }
                }
                _ => unreachable!("per-pixel filters are handled above"),
            };
            passes.push(Pass::Neighbourhood(pass));
        }
    }
    passes
}

/// A checked chain of filters, compiled into passes, ready to apply to any number of images.
#[derive(Debug, Clone)]
pub struct FilterChain {
    filters: Vec<FilterOp>,
    passes: Vec<Pass>,
    adds_colour: bool,
    may_change_alpha: bool,
}

impl FilterChain {
    /// Checks the filters (1 to [`MAX_FILTERS`], parameters finite and in range) and compiles
    /// them. A refusal is [`Error::InvalidParameters`] naming the filter and the field, as
    /// `filters[2].sigma: ...`.
    pub fn new(filters: Vec<FilterOp>) -> Result<FilterChain> {
        if filters.is_empty() || filters.len() > MAX_FILTERS {
            return Err(Error::invalid(format!("filters must list 1 to {MAX_FILTERS} filters, got {}", filters.len())));
        }
        for (i, f) in filters.iter().enumerate() {
            f.check().map_err(|(field, message)| Error::invalid(format!("filters[{i}].{field} ({}): {message}", f.name())))?;
        }
        Ok(FilterChain {
            passes: compile(&filters, true),
            adds_colour: filters.iter().any(FilterOp::adds_colour),
            may_change_alpha: filters.iter().any(FilterOp::may_change_alpha),
            filters,
        })
    }

    /// Reads a chain as a workflow writes it: a JSON array of `{type, ...}` objects. Unknown
    /// types and fields, missing or non-numeric parameters and values out of range are refused
    /// ([`Error::InvalidParameters`]) with the filter's index and the field named.
    pub fn parse(value: &Value) -> Result<FilterChain> {
        FilterChain::new(parse::filters(value)?)
    }

    pub fn filters(&self) -> &[FilterOp] {
        &self.filters
    }

    /// How many passes over the image the chain makes (fused per-pixel runs count once, a
    /// separable blur once).
    pub fn passes(&self) -> usize {
        self.passes.len()
    }

    /// The compiled passes (matrices and weights already rounded to `f32`), for a device that
    /// runs them itself: crates/gpu uploads them rather than recomputing them.
    pub fn compiled(&self) -> &[Pass] {
        &self.passes
    }

    /// The channels of the output for a source of `channels` (1 to 4) channels: grey stays grey
    /// unless the chain can make colour, alpha appears only when the chain can change it.
    pub fn output_channels(&self, channels: usize) -> usize {
        let gray = channels <= 2 && !self.adds_colour;
        let alpha = matches!(channels, 2 | 4) || self.may_change_alpha;
        match (gray, alpha) {
            (true, false) => 1,
            (true, true) => 2,
            (false, false) => 3,
            (false, true) => 4,
        }
    }

    /// Applies the chain to an image in place. The image keeps its size and bit depth (8 or
    /// 16 bits; float images become 16-bit); see the module documentation for its channels.
    pub fn apply(&self, image: &mut DynamicImage) -> Result<()> {
        self.apply_with(image, &|| false)
    }

    /// As [`FilterChain::apply`], checking `should_stop` before each pass
    /// ([`Error::Cancelled`]; the image is then left as it was).
    pub fn apply_with(&self, image: &mut DynamicImage, should_stop: &dyn Fn() -> bool) -> Result<()> {
        *image = run::apply(image, self, should_stop)?;
        Ok(())
    }
}

/// A device other than this module's CPU code that applies chains to decoded images: the GPU
/// (crates/gpu), which must give this module's results within 1/255 and may fall back to
/// [`FilterChain::apply_with`] itself.
pub trait ChainDevice: Send + Sync {
    fn apply(&self, chain: &FilterChain, image: &mut DynamicImage, should_stop: &dyn Fn() -> bool) -> Result<()>;
}

thread_local! {
    static DEVICE: RefCell<Option<Arc<dyn ChainDevice>>> = const { RefCell::new(None) };
}

/// Runs `f` with `device` applying every chain that [`filter_bytes_with`] (and so the `filter`
/// step) applies on this thread. This is how crates/gpu's device-aware `filter` step wraps
/// [`crate::steps::run_filter`], so the step's parameters, decoding, encoding and atomic
/// writes stay in one place. The previous device (normally none: the CPU) is restored after
/// `f`, even when it panics.
pub fn with_device<R>(device: Arc<dyn ChainDevice>, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<Arc<dyn ChainDevice>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0.take();
            DEVICE.with(|d| *d.borrow_mut() = previous);
        }
    }
    let _restore = Restore(DEVICE.with(|d| d.borrow_mut().replace(device)));
    f()
}

/// Applies `chain` on this thread's device ([`with_device`]), else on the CPU.
fn apply_on_device(chain: &FilterChain, image: &mut DynamicImage, should_stop: &dyn Fn() -> bool) -> Result<()> {
    match DEVICE.with(|d| d.borrow().clone()) {
        Some(device) => device.apply(chain, image, should_stop),
        None => chain.apply_with(image, should_stop),
    }
}

/// What a filter step makes.
#[derive(Debug, Clone)]
pub struct FilterOptions {
    pub chain: FilterChain,
    /// `None`: the input's format when this build writes it (JPEG, PNG, WebP), else PNG.
    pub format: Option<OutputFormat>,
    /// JPEG quality, 1 to 100 (default 80).
    pub quality: u8,
    pub effort: Effort,
    /// What transparency becomes in a JPEG (default opaque black, as sharp).
    pub background: Rgba<u8>,
    /// File names for [`filter_file`].
    pub naming: NameTemplate,
    /// The most pixels the source may have (from its header, checked before decoding).
    pub max_pixels: u64,
    /// Lossless WebP, AVIF speed, and the ICC policy (default: converted to sRGB), as for resize.
    pub extras: EncodeExtras,
}

impl FilterOptions {
    pub fn new(chain: FilterChain) -> FilterOptions {
        FilterOptions {
            chain,
            format: None,
            quality: 80,
            effort: Effort::Fast,
            background: Rgba([0, 0, 0, 255]),
            naming: NameTemplate::parse(DEFAULT_NAMING).expect("the default template parses"),
            max_pixels: DEFAULT_MAX_PIXELS,
            extras: EncodeExtras::default(),
        }
    }
}

/// A filtered image, encoded, in memory.
#[derive(Debug, Clone)]
pub struct Filtered {
    pub width: u32,
    pub height: u32,
    pub format: OutputFormat,
    pub data: Vec<u8>,
}

/// A filtered image written to disk: the step's output.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FilteredFile {
    pub path: PathBuf,
    pub width: u32,
    pub height: u32,
    pub format: OutputFormat,
    pub bytes: u64,
}

/// Decodes an image (EXIF orientation applied, size limited), applies the chain, encodes.
pub fn filter_bytes(data: &[u8], options: &FilterOptions) -> Result<Filtered> {
    filter_bytes_with(data, options, &|| false)
}

/// As [`filter_bytes`], checking `should_stop` before the decode and each pass.
pub fn filter_bytes_with(data: &[u8], options: &FilterOptions, should_stop: &dyn Fn() -> bool) -> Result<Filtered> {
    if !(1..=100).contains(&options.quality) {
        return Err(Error::invalid("quality must be 1 to 100"));
    }
    let info = decode::probe(data, options.max_pixels)?;
    if should_stop() {
        return Err(Error::Cancelled);
    }
    let mut image = decode::decode(data, &info, &DecodeOptions::default())?;
    tracing::debug!(format = %info.format, width = image.width(), height = image.height(), passes = options.chain.passes(), "filter: applying");
    apply_on_device(&options.chain, &mut image, should_stop)?;
    let format = options.format.unwrap_or(OutputFormat::default_for(info.format));
    let encode_options = EncodeOptions {
        format,
        quality: options.quality,
        effort: options.effort,
        background: options.background,
        icc_profile: info.icc_profile.clone(),
    };
    let data = encode::encode_with(&image, &encode_options, &options.extras)?;
    Ok(Filtered { width: image.width(), height: image.height(), format, data })
}

/// Filters the image at `input` into `output_dir` under `options.naming` (`{variant}` is
/// `filtered`), written atomically: running it again writes the same file.
pub fn filter_file(input: &Path, output_dir: &Path, options: &FilterOptions) -> Result<FilteredFile> {
    filter_file_with(input, output_dir, options, &|| false)
}

pub fn filter_file_with(input: &Path, output_dir: &Path, options: &FilterOptions, should_stop: &dyn Fn() -> bool) -> Result<FilteredFile> {
    let data = util::read_file(input, util::DEFAULT_MAX_FILE_BYTES)?;
    let out = filter_bytes_with(&data, options, should_stop)?;
    let stem = naming::stem_of(input);
    let vars = NameVars { stem: &stem, variant: "filtered", ext: out.format.extension(), width: out.width, height: out.height };
    let name = options.naming.render(&vars)?;
    refuse_overwriting_input(input, output_dir, &name)?;
    let path = util::write_atomic(output_dir, &name, &out.data)?;
    Ok(FilteredFile { path, width: out.width, height: out.height, format: out.format, bytes: out.data.len() as u64 })
}
