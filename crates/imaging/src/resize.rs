//! `resize`: one decode, many variants. The source is decoded once (a JPEG at 1/2, 1/4 or 1/8
//! scale in the DCT domain when every variant is at least that much smaller), turned upright
//! from its EXIF orientation, then each variant is resampled with fast_image_resize (alpha
//! premultiplied while filtering, so transparent pixels do not bleed dark fringes), letterboxed
//! if asked, and encoded.
//!
//! [`ResizeOptions`] says what to make; a [`Resizer`] does it and keeps its scratch buffers
//! between calls. [`Resizer::resize`] works in memory; [`Resizer::resize_file`] reads a file and
//! writes each variant atomically under a name from the template.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use fast_image_resize as fir;
use image::{DynamicImage, Rgba};

use crate::decode::{self, DecodeOptions, DEFAULT_MAX_PIXELS};
use crate::encode::{self, Effort, EncodeOptions, OutputFormat};
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
    fn algorithm(self) -> fir::ResizeAlg {
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
    /// JPEG quality, 1 to 100 (default 80, as sharp).
    pub quality: u8,
    /// Letterbox colour for `contain`, and what transparency becomes in a JPEG (straight RGBA;
    /// default opaque black, as sharp).
    pub background: Rgba<u8>,
}

impl Variant {
    pub fn new(name: impl Into<String>, target: Target) -> Variant {
        Variant {
            name: name.into(),
            target,
            filter: Filter::default(),
            format: None,
            quality: 80,
            background: Rgba([0, 0, 0, 255]),
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
        }
        Ok(ResizeOptions {
            variants,
            naming: NameTemplate::parse(DEFAULT_NAMING)?,
            max_pixels: DEFAULT_MAX_PIXELS,
            shrink_on_load: true,
            effort: Effort::Fast,
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
        let mut outputs = Vec::with_capacity(plans.len());
        for (variant, plan) in options.variants.iter().zip(&plans) {
            if should_stop() {
                return Err(Error::Cancelled);
            }
            let format = variant.format.unwrap_or(default_format);
            let resized = self.resample(&source, &plan.rescaled(fx, fy), variant.filter)?;
            let image = if plan.canvas == plan.resized {
                resized
            } else {
                letterbox(&resized, plan, variant.background, format.supports_alpha())
            };
            let encode_options = EncodeOptions {
                format,
                quality: variant.quality,
                effort: options.effort,
                background: variant.background,
                icc_profile: info.icc_profile.clone(),
            };
            let data = encode::encode(&image, &encode_options)?;
            outputs.push(ResizedImage { name: variant.name.clone(), width: image.width(), height: image.height(), format, data });
        }
        Ok(outputs)
    }

    /// Resamples the `plan.crop` region of `source` to `plan.resized`.
    pub fn resample(&mut self, source: &DynamicImage, plan: &Plan, filter: Filter) -> Result<DynamicImage> {
        let (sw, sh) = (f64::from(source.width()), f64::from(source.height()));
        let c = plan.crop;
        // Rescaling may leave the crop a hair outside the decoded image.
        let (left, top) = (c.left.clamp(0.0, sw), c.top.clamp(0.0, sh));
        let (width, height) = (c.width.min(sw - left), c.height.min(sh - top));
        let whole = left == 0.0 && top == 0.0 && width == sw && height == sh;
        if whole && plan.resized == (source.width(), source.height()) {
            return Ok(source.clone());
        }
        // fast_image_resize works on 8/16-bit grey, grey+alpha, RGB, RGBA and f32 RGB(A).
        let source = match source {
            DynamicImage::ImageLuma8(_)
            | DynamicImage::ImageLumaA8(_)
            | DynamicImage::ImageRgb8(_)
            | DynamicImage::ImageRgba8(_)
            | DynamicImage::ImageLuma16(_)
            | DynamicImage::ImageLumaA16(_)
            | DynamicImage::ImageRgb16(_)
            | DynamicImage::ImageRgba16(_) => Cow::Borrowed(source),
            other => Cow::Owned(DynamicImage::ImageRgba16(other.to_rgba16())),
        };
        let mut dst = DynamicImage::new(plan.resized.0, plan.resized.1, source.color());
        let options = fir::ResizeOptions::new().resize_alg(filter.algorithm()).crop(left, top, width, height).use_alpha(true);
        self.resampler.resize(source.as_ref(), &mut dst, &options).map_err(|e| Error::Decode(format!("resampling failed: {e}")))?;
        Ok(dst)
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
