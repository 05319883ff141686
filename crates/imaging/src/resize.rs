//! `resize`: one decode, many variants. The source is decoded once (a JPEG at 1/2, 1/4 or 1/8
//! scale in the DCT domain when every variant is at least that much smaller), turned upright
//! from its EXIF orientation, then each variant is resampled with fast_image_resize (alpha
//! premultiplied while filtering, so transparent pixels do not bleed dark fringes), letterboxed
//! if asked, and encoded.
//!
//! By default the filter works on the sRGB-encoded samples as decoded, like sharp and libvips.
//! That is fast and what users compare against, but averaging gamma-encoded values darkens fine
//! detail: a 1-px black/white checkerboard halved comes out ~128 instead of the ~188 that is half
//! the light. A variant with [`Variant::linear`] set is resampled in linear light instead: the
//! samples go through fast_image_resize's sRGB mapper into 16-bit linear values (16 bits so the
//! dark end does not band once it is stretched), are filtered there, and are mapped back to the
//! source's bit depth. Alpha is not gamma-encoded, so the mapper leaves it alone, and the
//! premultiplication that fast_image_resize does while filtering then happens in linear light,
//! as it must. 16-bit sources are taken as sRGB-encoded too (PNG's default without a gAMA or ICC
//! saying otherwise). 16-bit linear has coarser steps than 16-bit sRGB in the darker half (up to
//! 13 sRGB codes share one linear code at the very bottom), so a 16-bit source keeps at least ~12
//! bits of shadow precision rather than 16: invisible in 8-bit outputs, a small loss in 16-bit ones.
//!
//! [`ResizeOptions`] says what to make; a [`Resizer`] does it and keeps its scratch buffers
//! between calls. [`Resizer::resize`] works in memory; [`Resizer::resize_file`] reads a file and
//! writes each variant atomically under a name from the template.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use fast_image_resize as fir;
use image::{DynamicImage, Rgba};

use crate::color::{self, IccPolicy};
use crate::decode::{self, DecodeOptions, DEFAULT_MAX_PIXELS};
use crate::encode::{self, Effort, EncodeExtras, EncodeOptions, OutputFormat};
use crate::error::{Error, Result};
use crate::format::Format;
use crate::geometry::{self, Plan, Target};
use crate::naming::{self, NameTemplate, NameVars};
use crate::util;

/// The default file name template of resize outputs.
pub const DEFAULT_NAMING: &str = "{stem}-{variant}.{ext}";

/// The most variants one call makes (each is a full resample and encode).
pub const MAX_VARIANTS: usize = 32;

/// The largest side of an output, in pixels (JPEG's own limit is 65,500).
pub const MAX_OUTPUT_SIDE: u32 = 65_500;

/// The resampling filter (sharp's `kernel`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Filter {
    #[default]
    Lanczos3,
    #[serde(alias = "cubic")]
    CatmullRom,
    Mitchell,
    #[serde(alias = "linear")]
    Bilinear,
    Box,
    Nearest,
}

impl Filter {
    /// The fast_image_resize algorithm of this filter (also used by crates/segment).
    pub fn algorithm(self) -> fir::ResizeAlg {
        let conv = fir::ResizeAlg::Convolution;
        match self {
            Filter::Lanczos3 => conv(fir::FilterType::Lanczos3),
            Filter::CatmullRom => conv(fir::FilterType::CatmullRom),
            Filter::Mitchell => conv(fir::FilterType::Mitchell),
            Filter::Bilinear => conv(fir::FilterType::Bilinear),
            Filter::Box => conv(fir::FilterType::Box),
            Filter::Nearest => fir::ResizeAlg::Nearest,
        }
    }
}

/// One output of a resize.
#[derive(Debug, Clone)]
pub struct Variant {
    /// Names the variant in the output and in the file name (`{variant}`).
    pub name: String,
    pub target: Target,
    pub filter: Filter,
    /// `None`: the input's format when this build writes it (JPEG, PNG, WebP), else PNG.
    pub format: Option<OutputFormat>,
    /// JPEG, lossy WebP and AVIF quality, 1 to 100 (default 80, as sharp).
    pub quality: u8,
    /// WebP: lossless rather than lossy (default false, as sharp).
    pub lossless: bool,
    /// AVIF: rav1e speed, 1 to 10 (`None`: from the effort).
    pub speed: Option<u8>,
    /// Letterbox colour for `contain`, and what transparency becomes in a JPEG (straight RGBA;
    /// default opaque black, as sharp).
    pub background: Rgba<u8>,
    /// Resample in linear light rather than on the sRGB-encoded samples (default false, as
    /// sharp and libvips): keeps the brightness of downscaled fine detail, at the cost of two
    /// table look-ups per sample and 16-bit filtering. See the module documentation.
    pub linear: bool,
}

impl Variant {
    pub fn new(name: impl Into<String>, target: Target) -> Variant {
        Variant {
            name: name.into(),
            target,
            filter: Filter::default(),
            format: None,
            quality: 80,
            lossless: false,
            speed: None,
            background: Rgba([0, 0, 0, 255]),
            linear: false,
        }
    }
}

/// What a resize makes.
#[derive(Debug, Clone)]
pub struct ResizeOptions {
    pub variants: Vec<Variant>,
    /// File names for [`Resizer::resize_file`].
    pub naming: NameTemplate,
    /// The most pixels the source may have (from its header, checked before decoding).
    pub max_pixels: u64,
    /// Decode JPEGs at a reduced scale when every variant allows it (on by default).
    pub shrink_on_load: bool,
    /// Encoder effort for the outputs.
    pub effort: Effort,
    /// A source's ICC profile: its pixels converted to sRGB (default) or the profile kept.
    pub icc: IccPolicy,
}

impl ResizeOptions {
    /// Checks the variants: at least one, at most [`MAX_VARIANTS`], unique names, sizes in range.
    pub fn new(variants: Vec<Variant>) -> Result<ResizeOptions> {
        if variants.is_empty() || variants.len() > MAX_VARIANTS {
            return Err(Error::invalid(format!("variants must list 1 to {MAX_VARIANTS} outputs")));
        }
        for (i, v) in variants.iter().enumerate() {
            if v.name.is_empty() || v.name.len() > 100 {
                return Err(Error::invalid(format!("variants[{i}]: name must be 1 to 100 characters")));
            }
            if variants[..i].iter().any(|o| o.name == v.name) {
                return Err(Error::invalid(format!("variants[{i}]: the name '{}' is used twice", v.name)));
            }
            for (side, value) in [("width", v.target.width), ("height", v.target.height)] {
                if value.is_some_and(|n| n == 0 || n > MAX_OUTPUT_SIDE) {
                    return Err(Error::invalid(format!("variants[{i}]: {side} must be 1 to {MAX_OUTPUT_SIDE}")));
                }
            }
            if !(1..=100).contains(&v.quality) {
                return Err(Error::invalid(format!("variants[{i}]: quality must be 1 to 100")));
            }
            if v.speed.is_some_and(|s| !(1..=10).contains(&s)) {
                return Err(Error::invalid(format!("variants[{i}]: speed must be 1 to 10")));
            }
        }
        Ok(ResizeOptions {
            variants,
            naming: NameTemplate::parse(DEFAULT_NAMING)?,
            max_pixels: DEFAULT_MAX_PIXELS,
            shrink_on_load: true,
            effort: Effort::Fast,
            icc: IccPolicy::default(),
        })
    }
}

/// One variant, encoded, in memory.
#[derive(Debug, Clone)]
pub struct ResizedImage {
    pub name: String,
    pub width: u32,
    pub height: u32,
    pub format: OutputFormat,
    pub data: Vec<u8>,
}

/// One variant written to disk: the step's output entry.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct WrittenVariant {
    pub name: String,
    pub path: PathBuf,
    pub width: u32,
    pub height: u32,
    pub format: OutputFormat,
    pub bytes: u64,
}

/// Does resizes, keeping the resampler's buffers between variants and calls.
#[derive(Default)]
pub struct Resizer {
    resampler: fir::Resizer,
    /// How the last source was decoded (1 = full size), for tests and logs.
    last_shrink: u32,
}

impl Resizer {
    pub fn new() -> Resizer {
        Resizer::default()
    }

    /// The JPEG shrink-on-load factor the last resize decoded with (1, 2, 4 or 8).
    pub fn last_shrink(&self) -> u32 {
        self.last_shrink
    }

    /// Makes every variant of an image in memory.
    pub fn resize(&mut self, data: &[u8], options: &ResizeOptions) -> Result<Vec<ResizedImage>> {
        self.resize_with(data, options, &|| false)
    }

    /// As [`Resizer::resize`], checking `should_stop` before the decode and between variants
    /// ([`Error::Cancelled`]).
    pub fn resize_with(&mut self, data: &[u8], options: &ResizeOptions, should_stop: &dyn Fn() -> bool) -> Result<Vec<ResizedImage>> {
        let info = decode::probe(data, options.max_pixels)?;
        let upright = info.oriented_size();
        let plans: Vec<Plan> = options.variants.iter().map(|v| geometry::plan(upright, &v.target)).collect();
        for (v, p) in options.variants.iter().zip(&plans) {
            let (w, h) = (p.canvas.0.max(p.resized.0), p.canvas.1.max(p.resized.1));
            if w > MAX_OUTPUT_SIDE || h > MAX_OUTPUT_SIDE || u64::from(w) * u64::from(h) > options.max_pixels {
                return Err(Error::LimitExceeded(format!("variant '{}' would be {w}x{h} pixels, more than allowed", v.name)));
            }
        }
        let shrink = if info.format == Format::Jpeg && options.shrink_on_load {
            let factor = plans.iter().map(Plan::shrink_factor).fold(f64::INFINITY, f64::min);
            [8u32, 4, 2].into_iter().find(|&d| f64::from(d) <= factor).unwrap_or(1)
        } else {
            1
        };
        self.last_shrink = shrink;
        tracing::debug!(format = %info.format, width = info.width, height = info.height, shrink, variants = plans.len(), "resize: decoding");
        if should_stop() {
            return Err(Error::Cancelled);
        }
        let source = decode::decode(data, &info, &DecodeOptions { jpeg_shrink: shrink, strict: true, apply_orientation: true })?;
        let (fx, fy) = (f64::from(source.width()) / f64::from(upright.0), f64::from(source.height()) / f64::from(upright.1));
        let default_format = OutputFormat::default_for(info.format);
        // The source in 16-bit linear light, made once for all the variants that want it.
        let mut linear_source: Option<DynamicImage> = None;
        let mut outputs = Vec::with_capacity(plans.len());
        for (variant, plan) in options.variants.iter().zip(&plans) {
            if should_stop() {
                return Err(Error::Cancelled);
            }
            let format = variant.format.unwrap_or(default_format);
            let rescaled = plan.rescaled(fx, fy);
            let resized = if variant.linear {
                let linear = match &mut linear_source {
                    Some(linear) => linear,
                    none => none.insert(to_linear(&source)?),
                };
                self.resample_from_linear(&source, linear, &rescaled, variant.filter)?
            } else {
                self.resample(&source, &rescaled, variant.filter)?
            };
            // To sRGB before the letterbox, so the background (an sRGB colour) is not converted
            // as if it were in the source's space; the encoder then has nothing left to convert.
            let (resized, icc_profile) = match options.icc {
                IccPolicy::Srgb => {
                    let (converted, icc) = match color::to_srgb(&resized, info.icc_profile.as_deref()) {
                        (Cow::Owned(pixels), icc) => (Some(pixels), icc.map(<[u8]>::to_vec)),
                        (Cow::Borrowed(_), icc) => (None, icc.map(<[u8]>::to_vec)),
                    };
                    (converted.unwrap_or(resized), icc)
                }
                IccPolicy::Keep => (resized, info.icc_profile.clone()),
            };
            let image = if plan.canvas == plan.resized {
                resized
            } else {
                letterbox(&resized, plan, variant.background, format.supports_alpha())
            };
            let encode_options = EncodeOptions { format, quality: variant.quality, effort: options.effort, background: variant.background, icc_profile };
            let extras = EncodeExtras { icc: options.icc, lossless: variant.lossless, speed: variant.speed };
            let data = encode::encode_with(&image, &encode_options, &extras)?;
            outputs.push(ResizedImage { name: variant.name.clone(), width: image.width(), height: image.height(), format, data });
        }
        Ok(outputs)
    }

    /// Resamples the `plan.crop` region of `source` to `plan.resized`, on the samples as they
    /// are (sRGB-encoded for the images we decode).
    pub fn resample(&mut self, source: &DynamicImage, plan: &Plan, filter: Filter) -> Result<DynamicImage> {
        let Some((left, top, width, height)) = crop_box(source, plan) else {
            return Ok(source.clone());
        };
        let source = resamplable(source);
        let mut dst = DynamicImage::new(plan.resized.0, plan.resized.1, source.color());
        self.convolve(source.as_ref(), &mut dst, (left, top, width, height), filter)?;
        Ok(dst)
    }

    /// As [`Resizer::resample`], in linear light: `source` is taken as sRGB-encoded, filtered in
    /// 16-bit linear values and brought back to its own encoding and bit depth.
    pub fn resample_linear(&mut self, source: &DynamicImage, plan: &Plan, filter: Filter) -> Result<DynamicImage> {
        if crop_box(source, plan).is_none() {
            return Ok(source.clone());
        }
        let linear = to_linear(source)?;
        self.resample_from_linear(source, &linear, plan, filter)
    }

    /// The linear-light resample, given `linear` = [`to_linear`] of `source` (so several
    /// variants map the source once).
    fn resample_from_linear(&mut self, source: &DynamicImage, linear: &DynamicImage, plan: &Plan, filter: Filter) -> Result<DynamicImage> {
        // Same size, no crop: nothing is filtered, and the round trip through the tables is
        // exact for 8 bits anyway; hand back the source untouched as the sRGB path does.
        let Some(crop) = crop_box(source, plan) else {
            return Ok(source.clone());
        };
        let mut resized = DynamicImage::new(plan.resized.0, plan.resized.1, linear.color());
        // `use_alpha` premultiplies the linear values, which is where premultiplying is right.
        self.convolve(linear, &mut resized, crop, filter)?;
        from_linear(&resized, resamplable(source).color())
    }

    /// The one call into fast_image_resize, shared by both paths so they filter alike.
    fn convolve(&mut self, source: &DynamicImage, dst: &mut DynamicImage, (left, top, width, height): (f64, f64, f64, f64), filter: Filter) -> Result<()> {
        let options = fir::ResizeOptions::new().resize_alg(filter.algorithm()).crop(left, top, width, height).use_alpha(true);
        self.resampler.resize(source, dst, &options).map_err(|e| Error::Decode(format!("resampling failed: {e}")))
    }

    /// Makes every variant of the image at `input` and writes them into `output_dir` under
    /// `options.naming`, each atomically. Running it again writes the same files.
    pub fn resize_file(&mut self, input: &Path, output_dir: &Path, options: &ResizeOptions) -> Result<Vec<WrittenVariant>> {
        self.resize_file_with(input, output_dir, options, &|| false)
    }

    pub fn resize_file_with(&mut self, input: &Path, output_dir: &Path, options: &ResizeOptions, should_stop: &dyn Fn() -> bool) -> Result<Vec<WrittenVariant>> {
        if options.variants.len() > 1 && !options.naming.uses_variant_or_size() {
            return Err(Error::invalid("naming must contain {variant} (or {width}/{height}) when there are several variants"));
        }
        let data = util::read_file(input, util::DEFAULT_MAX_FILE_BYTES)?;
        let images = self.resize_with(&data, options, should_stop)?;
        let stem = naming::stem_of(input);
        let mut names: Vec<String> = Vec::with_capacity(images.len());
        for image in &images {
            let vars = NameVars { stem: &stem, variant: &image.name, ext: image.format.extension(), width: image.width, height: image.height };
            let name = options.naming.render(&vars)?;
            if names.contains(&name) {
                return Err(Error::invalid(format!("two variants would both be written to '{name}'")));
            }
            refuse_overwriting_input(input, output_dir, &name)?;
            names.push(name);
        }
        let mut written = Vec::with_capacity(images.len());
        for (image, name) in images.into_iter().zip(names) {
            let path = util::write_atomic(output_dir, &name, &image.data)?;
            written.push(WrittenVariant { name: image.name, path, width: image.width, height: image.height, format: image.format, bytes: image.data.len() as u64 });
        }
        Ok(written)
    }
}

/// The region of `source` that `plan` resamples as fast_image_resize's crop (left, top, width,
/// height), or `None` when it is the whole image at its own size (nothing to do).
fn crop_box(source: &DynamicImage, plan: &Plan) -> Option<(f64, f64, f64, f64)> {
    let (sw, sh) = (f64::from(source.width()), f64::from(source.height()));
    let c = plan.crop;
    // Rescaling may leave the crop a hair outside the decoded image.
    let (left, top) = (c.left.clamp(0.0, sw), c.top.clamp(0.0, sh));
    let (width, height) = (c.width.min(sw - left), c.height.min(sh - top));
    let whole = left == 0.0 && top == 0.0 && width == sw && height == sh;
    if whole && plan.resized == (source.width(), source.height()) {
        return None;
    }
    Some((left, top, width, height))
}

/// `source` in a pixel type fast_image_resize (and its colour mapper) works on: 8/16-bit grey,
/// grey+alpha, RGB, RGBA (see `util::integer_pixels`).
fn resamplable(source: &DynamicImage) -> Cow<'_, DynamicImage> {
    crate::util::integer_pixels(source)
}

/// fast_image_resize's sRGB <-> linear tables (about 400 KiB, ~260k `powf` to fill), built on
/// first use and shared by every resizer.
fn srgb_mapper() -> &'static fir::PixelComponentMapper {
    static MAPPER: std::sync::OnceLock<fir::PixelComponentMapper> = std::sync::OnceLock::new();
    MAPPER.get_or_init(fir::create_srgb_mapper)
}

fn mapping_failed(e: fir::MappingError) -> Error {
    Error::Decode(format!("resampling failed: {e}"))
}

/// `source` (taken as sRGB-encoded) as 16-bit linear light, with the same channels. The mapper
/// converts colour through its tables and only widens alpha (`a * 257`), which is exact.
fn to_linear(source: &DynamicImage) -> Result<DynamicImage> {
    use image::ColorType as C;
    let source = resamplable(source);
    let wide = match source.color() {
        C::L8 | C::L16 => C::L16,
        C::La8 | C::La16 => C::La16,
        C::Rgb8 | C::Rgb16 => C::Rgb16,
        _ => C::Rgba16,
    };
    let mut linear = DynamicImage::new(source.width(), source.height(), wide);
    srgb_mapper().forward_map(source.as_ref(), &mut linear).map_err(mapping_failed)?;
    Ok(linear)
}

/// `linear` (16-bit linear light) back to sRGB in `color` (8 or 16 bits, same channels).
fn from_linear(linear: &DynamicImage, color: image::ColorType) -> Result<DynamicImage> {
    let mut dst = DynamicImage::new(linear.width(), linear.height(), color);
    srgb_mapper().backward_map(linear, &mut dst).map_err(mapping_failed)?;
    // The mapper narrows alpha to 8 bits by taking the high byte, which truncates (and is off
    // by one against rounding for about half the values). Alpha is linear, so round it here
    // from the 16-bit value instead, as the 8-bit sRGB path's filter does.
    if color.has_alpha() && color.bytes_per_pixel() == color.channel_count() {
        let n = usize::from(color.channel_count());
        let wide: &[u16] = match linear {
            DynamicImage::ImageLumaA16(b) => b.as_raw(),
            DynamicImage::ImageRgba16(b) => b.as_raw(),
            _ => unreachable!("to_linear keeps alpha in a 16-bit grey+alpha or RGBA image"),
        };
        let narrow: &mut [u8] = match &mut dst {
            DynamicImage::ImageLumaA8(b) => b,
            DynamicImage::ImageRgba8(b) => b,
            _ => unreachable!("an 8-bit colour type with alpha is grey+alpha or RGBA"),
        };
        for (d, s) in narrow.chunks_exact_mut(n).zip(wide.chunks_exact(n)) {
            d[n - 1] = ((u32::from(s[n - 1]) * 255 + 32_767) / 65_535) as u8;
        }
    }
    Ok(dst)
}

/// Refuses an output that would replace its own input: a re-run (after a crash) would then
/// process its own output, and the step would no longer be idempotent.
pub(crate) fn refuse_overwriting_input(input: &Path, output_dir: &Path, name: &str) -> Result<()> {
    let target = output_dir.join(name);
    let same = match (std::fs::canonicalize(input), std::fs::canonicalize(&target)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if same {
        return Err(Error::invalid(format!("the output {} would overwrite the input; choose another outputDir or naming", target.display())));
    }
    Ok(())
}

/// Places `resized` on a canvas of `background` (contain). The canvas keeps alpha when the
/// output can (and something is transparent), 16 bits when the image had them, and grey when
/// both the image and the background are grey.
fn letterbox(resized: &DynamicImage, plan: &Plan, background: Rgba<u8>, output_alpha: bool) -> DynamicImage {
    let (w, h) = plan.canvas;
    let (x, y) = (i64::from(plan.offset.0), i64::from(plan.offset.1));
    let alpha = output_alpha && (background.0[3] < 255 || resized.color().has_alpha());
    let gray_bg = background.0[0] == background.0[1] && background.0[1] == background.0[2];
    let gray = gray_bg && resized.color().channel_count() <= 2;
    let wide = matches!(resized.color().bytes_per_pixel() / resized.color().channel_count(), 2..);
    let canvas = if wide {
        let bg = Rgba(background.0.map(|c| u16::from(c) * 257));
        let mut canvas = image::ImageBuffer::from_pixel(w, h, bg);
        image::imageops::overlay(&mut canvas, &resized.to_rgba16(), x, y);
        DynamicImage::ImageRgba16(canvas)
    } else {
        let mut canvas = image::RgbaImage::from_pixel(w, h, background);
        image::imageops::overlay(&mut canvas, &resized.to_rgba8(), x, y);
        DynamicImage::ImageRgba8(canvas)
    };
    match (gray, alpha, wide) {
        (true, true, false) => DynamicImage::ImageLumaA8(canvas.to_luma_alpha8()),
        (true, false, false) => DynamicImage::ImageLuma8(canvas.to_luma8()),
        (true, true, true) => DynamicImage::ImageLumaA16(canvas.to_luma_alpha16()),
        (true, false, true) => DynamicImage::ImageLuma16(canvas.to_luma16()),
        (false, true, _) => canvas,
        (false, false, false) => DynamicImage::ImageRgb8(canvas.to_rgb8()),
        (false, false, true) => DynamicImage::ImageRgb16(canvas.to_rgb16()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::Fit;
    use image::{GenericImageView, RgbImage, RgbaImage};

    fn target(w: u32, h: u32, fit: Fit) -> Target {
        Target { width: Some(w), height: Some(h), fit, ..Target::default() }
    }

    fn png_bytes(img: &DynamicImage) -> Vec<u8> {
        encode::encode(img, &EncodeOptions::new(OutputFormat::Png)).unwrap()
    }

    fn jpeg_bytes(w: u32, h: u32) -> Vec<u8> {
        let img = DynamicImage::ImageRgb8(RgbImage::from_fn(w, h, |x, y| image::Rgb([(x % 256) as u8, (y % 256) as u8, 90])));
        encode::encode(&img, &EncodeOptions::new(OutputFormat::Jpeg)).unwrap()
    }

    fn decode_any(bytes: &[u8]) -> DynamicImage {
        let info = decode::probe(bytes, DEFAULT_MAX_PIXELS).unwrap();
        decode::decode(bytes, &info, &DecodeOptions::default()).unwrap()
    }

    #[test]
    fn variants_come_out_at_their_sizes_and_formats() {
        let src = jpeg_bytes(400, 300);
        let mut webp = Variant::new("w", target(50, 50, Fit::Cover));
        webp.format = Some(OutputFormat::Webp);
        let options = ResizeOptions::new(vec![
            Variant::new("inside", target(200, 200, Fit::Inside)),
            Variant::new("contain", target(100, 100, Fit::Contain)),
            webp,
        ])
        .unwrap();
        let out = Resizer::new().resize(&src, &options).unwrap();
        let got: Vec<_> = out.iter().map(|o| (o.name.as_str(), o.width, o.height, o.format)).collect();
        assert_eq!(got, [("inside", 200, 150, OutputFormat::Jpeg), ("contain", 100, 100, OutputFormat::Jpeg), ("w", 50, 50, OutputFormat::Webp)]);
        for o in &out {
            assert_eq!(Format::sniff(&o.data), Some(o.format.as_format()));
            assert_eq!(decode_any(&o.data).dimensions(), (o.width, o.height));
        }
    }

    #[test]
    fn jpeg_shrinks_on_load_only_as_far_as_every_variant_allows() {
        let src = jpeg_bytes(800, 600);
        let mut resizer = Resizer::new();
        let cases = [(100, 8), (200, 4), (300, 2), (500, 1)];
        for (width, shrink) in cases {
            let options = ResizeOptions::new(vec![Variant::new("v", target(width, width, Fit::Inside))]).unwrap();
            let out = resizer.resize(&src, &options).unwrap();
            assert_eq!(resizer.last_shrink(), shrink, "to {width}");
            assert_eq!(out[0].width, width, "the final resize is exact");
        }
        // Two variants: the larger one bounds the shrink.
        let options = ResizeOptions::new(vec![Variant::new("a", target(100, 100, Fit::Inside)), Variant::new("b", target(300, 300, Fit::Inside))]).unwrap();
        resizer.resize(&src, &options).unwrap();
        assert_eq!(resizer.last_shrink(), 2);
        let mut no_shrink = options.clone();
        no_shrink.shrink_on_load = false;
        resizer.resize(&src, &no_shrink).unwrap();
        assert_eq!(resizer.last_shrink(), 1);
    }

    #[test]
    fn alpha_is_premultiplied_while_filtering() {
        // Opaque white next to fully transparent *black*: a filter that ignored alpha would
        // pull the edge pixels towards grey.
        let img = DynamicImage::ImageRgba8(RgbaImage::from_fn(64, 64, |x, _| if x < 32 { Rgba([255, 255, 255, 255]) } else { Rgba([0, 0, 0, 0]) }));
        let options = ResizeOptions::new(vec![Variant::new("v", target(16, 16, Fit::Fill))]).unwrap();
        let out = Resizer::new().resize(&png_bytes(&img), &options).unwrap();
        let back = decode_any(&out[0].data).to_rgba8();
        for px in back.pixels().filter(|p| p.0[3] > 0) {
            assert!(px.0[0] >= 250, "colour bled from transparent pixels: {:?}", px.0);
        }
    }

    #[test]
    fn contain_letterboxes_with_a_transparent_background_in_png() {
        let img = DynamicImage::ImageRgb8(RgbImage::from_pixel(40, 20, image::Rgb([10, 200, 30])));
        let mut v = Variant::new("v", target(40, 40, Fit::Contain));
        v.background = Rgba([0, 0, 0, 0]);
        let out = Resizer::new().resize(&png_bytes(&img), &ResizeOptions::new(vec![v]).unwrap()).unwrap();
        let back = decode_any(&out[0].data).to_rgba8();
        assert_eq!(back.dimensions(), (40, 40));
        assert_eq!(back.get_pixel(20, 2).0[3], 0, "the band is transparent");
        assert_eq!(back.get_pixel(20, 20).0, [10, 200, 30, 255]);
    }

    #[test]
    fn sixteen_bit_png_stays_sixteen_bit() {
        let img = DynamicImage::ImageRgb16(image::ImageBuffer::from_fn(32, 32, |x, y| image::Rgb([x as u16 * 2000, y as u16 * 2000, 12345])));
        let options = ResizeOptions::new(vec![Variant::new("v", target(16, 16, Fit::Fill))]).unwrap();
        let out = Resizer::new().resize(&png_bytes(&img), &options).unwrap();
        assert_eq!(decode_any(&out[0].data).color(), image::ColorType::Rgb16);
    }

    /// A 1-px black/white checkerboard in `color` (alpha opaque where there is one).
    fn checkerboard(w: u32, h: u32, color: image::ColorType) -> DynamicImage {
        let img = DynamicImage::ImageRgb8(RgbImage::from_fn(w, h, |x, y| image::Rgb([if (x + y) % 2 == 0 { 0 } else { 255 }; 3])));
        match color {
            image::ColorType::L8 => DynamicImage::ImageLuma8(img.to_luma8()),
            image::ColorType::Rgba8 => DynamicImage::ImageRgba8(img.to_rgba8()),
            image::ColorType::Rgb16 => DynamicImage::ImageRgb16(img.to_rgb16()),
            image::ColorType::La16 => DynamicImage::ImageLumaA16(img.to_luma_alpha16()),
            _ => img,
        }
    }

    /// Every pixel at least `border` pixels inside (the filter's support is clipped at the edges,
    /// which unbalances the black and white taps there).
    fn interior(img: &image::RgbaImage, border: u32) -> impl Iterator<Item = [u8; 4]> + '_ {
        let (w, h) = img.dimensions();
        img.enumerate_pixels().filter(move |(x, y, _)| (border..w - border).contains(x) && (border..h - border).contains(y)).map(|(_, _, p)| p.0)
    }

    #[test]
    fn linear_light_keeps_the_brightness_of_a_downscaled_checkerboard() {
        // Half the light is linear 0.5, which sRGB encodes as 0.735 (187.5 of 255); averaging
        // the encoded values instead gives 127.5.
        for color in [image::ColorType::Rgb8, image::ColorType::L8, image::ColorType::Rgba8, image::ColorType::Rgb16, image::ColorType::La16] {
            for filter in [Filter::Box, Filter::Lanczos3, Filter::Mitchell] {
                let src = png_bytes(&checkerboard(64, 48, color));
                let variant = |name: &str, linear: bool| {
                    let mut v = Variant::new(name, target(32, 24, Fit::Fill));
                    v.filter = filter;
                    v.format = Some(OutputFormat::Png);
                    v.linear = linear;
                    v
                };
                // Both modes in one call: the flag is per variant.
                let options = ResizeOptions::new(vec![variant("srgb", false), variant("linear", true), variant("srgb2", false)]).unwrap();
                let out = Resizer::new().resize(&src, &options).unwrap();
                for (o, expected) in out.iter().zip([128, 188, 128]) {
                    let back = decode_any(&o.data);
                    assert_eq!(back.color(), color, "{color:?} {filter:?} {}: the bit depth and channels stay", o.name);
                    let back = back.to_rgba8();
                    for px in interior(&back, 3) {
                        assert!(px[..3].iter().all(|&c| c.abs_diff(expected) <= 1), "{color:?} {filter:?} {}: {px:?}, expected ~{expected}", o.name);
                        assert_eq!(px[3], 255);
                    }
                }
                assert_eq!(out[0].data, out[2].data, "a linear variant leaves the others alone");
            }
        }
    }

    #[test]
    fn without_linear_the_resample_is_the_plain_resampler() {
        // linear = false must stay bit-identical to what resize did before the option existed:
        // one fast_image_resize call on the decoded samples with alpha premultiplied. Compare with
        // that call made here directly, over colour types, filters, crops and enlargement.
        let images = [
            DynamicImage::ImageRgb8(RgbImage::from_fn(97, 61, |x, y| image::Rgb([(x * 7 % 256) as u8, (y * 13 % 256) as u8, ((x ^ y) % 256) as u8]))),
            DynamicImage::ImageRgba8(RgbaImage::from_fn(80, 50, |x, y| Rgba([(x * 3) as u8, (y * 5) as u8, 77, ((x + y) * 4 % 256) as u8]))),
            DynamicImage::ImageLumaA8(image::ImageBuffer::from_fn(40, 40, |x, y| image::LumaA([(x * 6) as u8, (y * 6) as u8]))),
            DynamicImage::ImageRgb16(image::ImageBuffer::from_fn(40, 40, |x, y| image::Rgb([x as u16 * 1500, y as u16 * 1600, 12345]))),
        ];
        let mut resizer = Resizer::new();
        let mut plain = fir::Resizer::new();
        for img in &images {
            for filter in [Filter::Lanczos3, Filter::Mitchell, Filter::Box, Filter::Nearest] {
                for (w, h, fit) in [(33, 20, Fit::Fill), (25, 25, Fit::Cover), (120, 70, Fit::Fill)] {
                    let plan = geometry::plan((img.width(), img.height()), &target(w, h, fit));
                    let got = resizer.resample(img, &plan, filter).unwrap();
                    let mut expected = DynamicImage::new(plan.resized.0, plan.resized.1, img.color());
                    let c = plan.crop;
                    let options = fir::ResizeOptions::new().resize_alg(filter.algorithm()).crop(c.left, c.top, c.width, c.height).use_alpha(true);
                    plain.resize(img, &mut expected, &options).unwrap();
                    assert_eq!(got, expected, "{:?} {filter:?} {w}x{h} {fit:?}", img.color());
                }
            }
        }
        // And through `resize`: a variant that does not ask is the default, which is off.
        let v = Variant::new("v", target(20, 20, Fit::Cover));
        assert!(!v.linear);
    }

    #[test]
    fn linear_light_premultiplies_alpha_in_linear_and_leaves_alpha_linear() {
        let mut resizer = Resizer::new();
        let plan = |w, h| geometry::plan((64, 64), &target(w, h, Fit::Fill));
        // Opaque white next to transparent black: premultiplying keeps the black out of the
        // edge, in linear light as in sRGB.
        let edge = DynamicImage::ImageRgba8(RgbaImage::from_fn(64, 64, |x, _| if x < 32 { Rgba([255, 255, 255, 255]) } else { Rgba([0, 0, 0, 0]) }));
        let linear = resizer.resample_linear(&edge, &plan(16, 16), Filter::Lanczos3).unwrap().to_rgba8();
        let srgb = resizer.resample(&edge, &plan(16, 16), Filter::Lanczos3).unwrap().to_rgba8();
        for (l, s) in linear.pixels().zip(srgb.pixels()) {
            if l.0[3] > 0 {
                assert!(l.0[0] >= 250, "colour bled from transparent pixels: {:?}", l.0);
            }
            // Alpha is not gamma-encoded: both paths filter the same alpha values (the linear
            // one in 16 bits, rounded back), so they agree to the rounding.
            assert!(l.0[3].abs_diff(s.0[3]) <= 1, "alpha {:?} vs {:?}", l.0, s.0);
        }
        assert!(linear.pixels().any(|p| (1..255).contains(&p.0[3])), "the edge has partial alpha");

        // Uniform semi-transparent colour comes back exactly: premultiplying and dividing in 16
        // bits loses nothing at 8, and alpha is rounded, not truncated, on the way back.
        for a in [1, 77, 128, 254] {
            let flat = DynamicImage::ImageRgba8(RgbaImage::from_pixel(64, 64, Rgba([200, 90, 30, a])));
            let out = resizer.resample_linear(&flat, &plan(23, 17), Filter::Lanczos3).unwrap();
            if a >= 77 {
                assert!(out.to_rgba8().pixels().all(|p| p.0 == [200, 90, 30, a]), "alpha {a}: {:?}", out.to_rgba8().get_pixel(5, 5));
            } else {
                assert!(out.to_rgba8().pixels().all(|p| p.0[3] == a), "alpha {a}: {:?}", out.to_rgba8().get_pixel(5, 5));
            }
        }

        // A transparent black/white checkerboard half-covered: the colour of what is visible
        // is still half the light (188), and the alpha the plain average.
        let board = DynamicImage::ImageRgba8(RgbaImage::from_fn(64, 64, |x, y| {
            let v = if (x + y) % 2 == 0 { 0 } else { 255 };
            Rgba([v, v, v, 128])
        }));
        let out = resizer.resample_linear(&board, &plan(32, 32), Filter::Box).unwrap().to_rgba8();
        for px in interior(&out, 0) {
            assert!(px[0].abs_diff(188) <= 1 && px[3] == 128, "{px:?}");
        }
    }

    #[test]
    fn parameters_and_limits_are_checked() {
        assert!(ResizeOptions::new(vec![]).is_err());
        assert!(ResizeOptions::new(vec![Variant::new("a", target(0, 5, Fit::Cover))]).is_err());
        assert!(ResizeOptions::new(vec![Variant::new("a", target(5, 5, Fit::Cover)), Variant::new("a", target(6, 6, Fit::Cover))]).is_err());
        // "outside" on an extreme aspect ratio would make a gigantic output.
        let thin = png_bytes(&DynamicImage::ImageRgb8(RgbImage::new(1000, 1)));
        let options = ResizeOptions::new(vec![Variant::new("a", target(1000, 1000, Fit::Outside))]).unwrap();
        assert!(matches!(Resizer::new().resize(&thin, &options), Err(Error::LimitExceeded(_))));
    }

    #[test]
    fn files_are_written_under_their_names_and_rewritten_identically() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.jpg");
        std::fs::write(&input, jpeg_bytes(120, 80)).unwrap();
        let out_dir = dir.path().join("out");
        let options = ResizeOptions::new(vec![Variant::new("small", target(60, 60, Fit::Inside))]).unwrap();
        let first = Resizer::new().resize_file(&input, &out_dir, &options).unwrap();
        assert_eq!(first[0].path, out_dir.join("in-small.jpg"));
        let bytes = std::fs::read(&first[0].path).unwrap();
        let second = Resizer::new().resize_file(&input, &out_dir, &options).unwrap();
        assert_eq!(first, second);
        assert_eq!(std::fs::read(&second[0].path).unwrap(), bytes, "idempotent");

        let mut overwrite = options.clone();
        overwrite.naming = NameTemplate::parse("in.jpg").unwrap();
        assert!(matches!(Resizer::new().resize_file(&input, dir.path(), &overwrite), Err(Error::InvalidParameters(_))));
        let missing = Resizer::new().resize_file(&dir.path().join("nope.jpg"), &out_dir, &options);
        assert!(matches!(missing, Err(Error::InputNotFound { .. })));
    }
}
