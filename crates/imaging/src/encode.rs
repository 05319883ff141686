//! Encoding the output: JPEG (mozjpeg), PNG, WebP (lossy through libwebp, or lossless) and
//! AVIF (rav1e), with the conversions each format needs (alpha flattened onto a background for
//! JPEG, 16 bits reduced to 8 where the format has no 16-bit mode) and colour management
//! ([`crate::color`]): by default pixels an ICC profile describes are converted to sRGB and no
//! profile is written; with [`IccPolicy::Keep`] the source's profile is carried when it still
//! describes the pixels. Nothing else of the source's metadata is written.

use std::borrow::Cow;

use image::codecs::avif::AvifEncoder;
use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use image::codecs::webp::WebPEncoder;
use image::{DynamicImage, ImageEncoder, Rgba};

use crate::color::{self, IccPolicy};
use crate::error::{Error, Result};
use crate::format::Format;
use crate::jpeg::{self, JpegEffort};
use crate::webp;

/// The formats this build writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputFormat {
    Jpeg,
    Png,
    /// Lossy (libwebp) unless [`EncodeExtras::lossless`].
    Webp,
    /// AV1 still image (rav1e), 8 bits, always sRGB (no profile is written).
    Avif,
}

impl OutputFormat {
    pub fn parse(name: &str) -> Result<OutputFormat> {
        match Format::parse(name) {
            Some(Format::Jpeg) => Ok(OutputFormat::Jpeg),
            Some(Format::Png) => Ok(OutputFormat::Png),
            Some(Format::Webp) => Ok(OutputFormat::Webp),
            Some(Format::Avif) => Ok(OutputFormat::Avif),
            _ => Err(Error::invalid(format!("unknown or unsupported output format '{name}' (use jpeg, png, webp or avif)"))),
        }
    }

    pub fn as_format(self) -> Format {
        match self {
            OutputFormat::Jpeg => Format::Jpeg,
            OutputFormat::Png => Format::Png,
            OutputFormat::Webp => Format::Webp,
            OutputFormat::Avif => Format::Avif,
        }
    }

    /// The output format an input keeps by default: its own when we write it, else PNG.
    pub fn default_for(input: Format) -> OutputFormat {
        match input {
            Format::Jpeg => OutputFormat::Jpeg,
            Format::Webp => OutputFormat::Webp,
            Format::Avif => OutputFormat::Avif,
            _ => OutputFormat::Png,
        }
    }

    pub fn name(self) -> &'static str {
        self.as_format().name()
    }

    pub fn extension(self) -> &'static str {
        self.as_format().extension()
    }

    pub fn supports_alpha(self) -> bool {
        !matches!(self, OutputFormat::Jpeg)
    }
}

/// Speed against size, for every encoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Effort {
    /// JPEG: baseline with optimised Huffman tables (sharp's default). PNG: fast deflate.
    /// WebP: libwebp method 4 (sharp's default). AVIF: rav1e speed 8.
    #[default]
    Fast,
    /// JPEG: progressive, optimised Huffman tables. PNG: zlib level 6. WebP: method 5. AVIF:
    /// speed 6.
    Balanced,
    /// JPEG: mozjpeg's trellis quantisation and scan optimisation. PNG: maximum deflate. WebP:
    /// method 6. AVIF: speed 4 (cavif's default).
    Smallest,
}

/// How to encode.
#[derive(Debug, Clone)]
pub struct EncodeOptions {
    pub format: OutputFormat,
    /// 1 to 100 (JPEG, lossy WebP, AVIF).
    pub quality: u8,
    pub effort: Effort,
    /// What transparent pixels become where the format has no alpha (JPEG), straight RGBA.
    pub background: Rgba<u8>,
    /// The source's ICC profile: converted to sRGB or carried, as [`EncodeExtras::icc`] says.
    pub icc_profile: Option<Vec<u8>>,
}

impl EncodeOptions {
    pub fn new(format: OutputFormat) -> EncodeOptions {
        EncodeOptions { format, quality: 80, effort: Effort::Fast, background: Rgba([0, 0, 0, 255]), icc_profile: None }
    }
}

/// The settings that only some formats or steps use, beside [`EncodeOptions`] (whose struct
/// literals predate them). The default is what [`encode`] does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EncodeExtras {
    /// Colour management of a profiled source (default: to sRGB).
    pub icc: IccPolicy,
    /// WebP: lossless (the `image` crate's encoder) instead of lossy libwebp.
    pub lossless: bool,
    /// AVIF: rav1e speed 1 (slowest, smallest) to 10; `None` follows the effort.
    pub speed: Option<u8>,
}

impl OutputFormat {
    /// Whether `quality` changes the output (what `maxBytes` can trade).
    pub fn is_lossy(self, extras: &EncodeExtras) -> bool {
        match self {
            OutputFormat::Jpeg | OutputFormat::Avif => true,
            OutputFormat::Webp => !extras.lossless,
            OutputFormat::Png => false,
        }
    }
}

/// Encodes an image, with the default [`EncodeExtras`].
pub fn encode(image: &DynamicImage, options: &EncodeOptions) -> Result<Vec<u8>> {
    encode_with(image, options, &EncodeExtras::default())
}

/// Encodes an image.
pub fn encode_with(image: &DynamicImage, options: &EncodeOptions, extras: &EncodeExtras) -> Result<Vec<u8>> {
    let fail = |message: String| Error::Encode { format: options.format.name(), message };
    if !(1..=100).contains(&options.quality) {
        return Err(Error::invalid("quality must be 1 to 100"));
    }
    if extras.speed.is_some_and(|s| !(1..=10).contains(&s)) {
        return Err(Error::invalid("speed must be 1 to 10"));
    }
    // AVIF cannot carry a profile: its pixels are always made sRGB.
    let policy = if options.format == OutputFormat::Avif { IccPolicy::Srgb } else { extras.icc };
    let (image, icc) = match policy {
        IccPolicy::Srgb => color::to_srgb(image, options.icc_profile.as_deref()),
        IccPolicy::Keep => (Cow::Borrowed(image), options.icc_profile.as_deref()),
    };
    let image = image.as_ref();
    match options.format {
        OutputFormat::Jpeg => {
            let pixels = for_jpeg(image, options.background);
            let icc = compatible_icc(icc, &pixels);
            let effort = match options.effort {
                Effort::Fast => JpegEffort::Fast,
                Effort::Balanced => JpegEffort::Progressive,
                Effort::Smallest => JpegEffort::Smallest,
            };
            jpeg::encode(&pixels, options.quality, effort, icc).map_err(fail)
        }
        OutputFormat::Png => {
            let pixels = crate::util::integer_pixels(image);
            let (compression, filter) = match options.effort {
                Effort::Fast => (CompressionType::Fast, FilterType::Adaptive),
                Effort::Balanced => (CompressionType::Default, FilterType::Adaptive),
                Effort::Smallest => (CompressionType::Best, FilterType::Adaptive),
            };
            let mut out = Vec::new();
            let mut encoder = PngEncoder::new_with_quality(&mut out, compression, filter);
            if let Some(icc) = compatible_icc(icc, &pixels) {
                // PNG takes any profile; the result is only ignored by the encoder on error.
                let _ = encoder.set_icc_profile(icc.to_vec());
            }
            pixels.write_with_encoder(encoder).map_err(|e| fail(e.to_string()))?;
            Ok(out)
        }
        OutputFormat::Webp if extras.lossless => {
            // The lossless WebP encoder takes 8-bit grey, grey+alpha, RGB or RGBA.
            let pixels = match image {
                DynamicImage::ImageLuma8(_) | DynamicImage::ImageLumaA8(_) | DynamicImage::ImageRgb8(_) | DynamicImage::ImageRgba8(_) => Cow::Borrowed(image),
                other => Cow::Owned(eight_bit_rgb(other)),
            };
            check_webp_size(&pixels).map_err(fail)?;
            let mut out = Vec::new();
            let mut encoder = WebPEncoder::new_lossless(&mut out);
            if let Some(icc) = compatible_icc(icc, &pixels) {
                let _ = encoder.set_icc_profile(icc.to_vec());
            }
            pixels.write_with_encoder(encoder).map_err(|e| fail(e.to_string()))?;
            Ok(out)
        }
        OutputFormat::Webp => {
            // libwebp takes RGB or RGBA (grey is stored as YUV with neutral chroma anyway).
            let pixels = eight_bit_rgb(image);
            check_webp_size(&pixels).map_err(fail)?;
            let method = match options.effort {
                Effort::Fast => 4,
                Effort::Balanced => 5,
                Effort::Smallest => 6,
            };
            let encoded = webp::encode_lossy(&pixels, options.quality, method).map_err(fail)?;
            match compatible_icc(icc, &pixels) {
                Some(icc) => webp::with_icc(&encoded, icc).map_err(fail),
                None => Ok(encoded),
            }
        }
        OutputFormat::Avif => {
            let pixels = eight_bit_rgb(image);
            let speed = extras.speed.unwrap_or(match options.effort {
                Effort::Fast => 8,
                Effort::Balanced => 6,
                Effort::Smallest => 4,
            });
            let mut out = Vec::new();
            let encoder = AvifEncoder::new_with_speed_quality(&mut out, speed, options.quality);
            pixels.write_with_encoder(encoder).map_err(|e| fail(e.to_string()))?;
            Ok(out)
        }
    }
}

/// 8-bit RGB, or RGBA when the image has alpha (as it is when it already is one of those).
fn eight_bit_rgb(image: &DynamicImage) -> DynamicImage {
    match image {
        DynamicImage::ImageRgb8(_) | DynamicImage::ImageRgba8(_) => image.clone(),
        other if other.color().has_alpha() => DynamicImage::ImageRgba8(other.to_rgba8()),
        other => DynamicImage::ImageRgb8(other.to_rgb8()),
    }
}

fn check_webp_size(pixels: &DynamicImage) -> std::result::Result<(), String> {
    if pixels.width() > 16_383 || pixels.height() > 16_383 {
        return Err(format!("{}x{} is larger than WebP's 16383 pixels a side", pixels.width(), pixels.height()));
    }
    Ok(())
}

/// 8-bit grey or RGB, alpha composited over `background`.
fn for_jpeg(image: &DynamicImage, background: Rgba<u8>) -> DynamicImage {
    let [br, bg, bb, _] = background.0;
    match image {
        DynamicImage::ImageLuma8(_) | DynamicImage::ImageRgb8(_) => image.clone(),
        DynamicImage::ImageLuma16(_) => DynamicImage::ImageLuma8(image.to_luma8()),
        DynamicImage::ImageLumaA8(_) | DynamicImage::ImageLumaA16(_) if br == bg && bg == bb => {
            let la = image.to_luma_alpha8();
            let flat = image::GrayImage::from_fn(la.width(), la.height(), |x, y| {
                let [l, a] = la.get_pixel(x, y).0;
                image::Luma([blend(l, br, a)])
            });
            DynamicImage::ImageLuma8(flat)
        }
        other if other.color().has_alpha() => {
            let rgba = other.to_rgba8();
            let flat = image::RgbImage::from_fn(rgba.width(), rgba.height(), |x, y| {
                let [r, g, b, a] = rgba.get_pixel(x, y).0;
                image::Rgb([blend(r, br, a), blend(g, bg, a), blend(b, bb, a)])
            });
            DynamicImage::ImageRgb8(flat)
        }
        other => DynamicImage::ImageRgb8(other.to_rgb8()),
    }
}

/// `over` for one straight-alpha channel on an opaque background.
fn blend(fg: u8, bg: u8, alpha: u8) -> u8 {
    let a = u32::from(alpha);
    ((u32::from(fg) * a + u32::from(bg) * (255 - a) + 127) / 255) as u8
}

/// The profile, if its data colour space (bytes 16..20 of the ICC header) fits the pixels:
/// an RGB profile on grey pixels (or a CMYK one on RGB pixels converted from CMYK) would
/// misdescribe them, and no profile is better than a wrong one.
fn compatible_icc<'a>(icc: Option<&'a [u8]>, pixels: &DynamicImage) -> Option<&'a [u8]> {
    let icc = icc?;
    let space = icc.get(16..20)?;
    let gray = matches!(pixels.color().channel_count(), 1 | 2);
    let fits = if gray { space == b"GRAY" } else { space == b"RGB " };
    (fits && icc.len() >= 128).then_some(icc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{ImageBuffer, RgbaImage};

    fn rgba(w: u32, h: u32, a: u8) -> DynamicImage {
        DynamicImage::ImageRgba8(RgbaImage::from_pixel(w, h, Rgba([200, 100, 50, a])))
    }

    #[test]
    fn jpeg_flattens_alpha_onto_the_background() {
        let mut opts = EncodeOptions::new(OutputFormat::Jpeg);
        opts.background = Rgba([255, 255, 255, 255]);
        opts.quality = 100;
        let bytes = encode(&rgba(16, 16, 0), &opts).unwrap();
        let back = crate::jpeg::decode(&bytes, 1, true, None).unwrap().to_rgb8();
        let [r, g, b] = back.get_pixel(8, 8).0;
        assert!(r > 250 && g > 250 && b > 250, "fully transparent becomes the background: {r} {g} {b}");
    }

    #[test]
    fn png_keeps_16_bits_and_alpha() {
        let img = DynamicImage::ImageRgba16(ImageBuffer::from_pixel(4, 4, Rgba([65535u16, 1, 2, 30000])));
        let bytes = encode(&img, &EncodeOptions::new(OutputFormat::Png)).unwrap();
        let back = image::load_from_memory(&bytes).unwrap();
        assert_eq!(back.color(), image::ColorType::Rgba16);
        assert_eq!(back.as_rgba16().unwrap().get_pixel(0, 0).0, [65535, 1, 2, 30000]);
    }

    #[test]
    fn lossless_webp_is_exact() {
        let img = rgba(9, 7, 128);
        let extras = EncodeExtras { lossless: true, ..EncodeExtras::default() };
        let bytes = encode_with(&img, &EncodeOptions::new(OutputFormat::Webp), &extras).unwrap();
        assert_eq!(Format::sniff(&bytes), Some(Format::Webp));
        assert_eq!(image::load_from_memory(&bytes).unwrap().to_rgba8(), img.to_rgba8());
    }

    /// A photo-like image: smooth gradients plus fine noise, so quality has something to drop.
    fn photo(w: u32, h: u32) -> DynamicImage {
        DynamicImage::ImageRgb8(image::RgbImage::from_fn(w, h, |x, y| {
            let n = ((x.wrapping_mul(7919) ^ y.wrapping_mul(104_729)).wrapping_mul(2_654_435_761) >> 27) as u8;
            image::Rgb([(x * 2) as u8 ^ (n & 15), (y * 3) as u8 ^ (n & 7), ((x + y) as u8).wrapping_add(n)])
        }))
    }

    fn at(format: OutputFormat, img: &DynamicImage, quality: u8) -> Vec<u8> {
        let mut o = EncodeOptions::new(format);
        o.quality = quality;
        encode(img, &o).unwrap()
    }

    #[test]
    fn lossy_webp_follows_quality_and_keeps_alpha() {
        let img = photo(96, 64);
        let (low, high) = (at(OutputFormat::Webp, &img, 20), at(OutputFormat::Webp, &img, 95));
        assert_eq!(Format::sniff(&low), Some(Format::Webp));
        assert!(low.len() < high.len(), "q20 {} < q95 {}", low.len(), high.len());
        assert_eq!(&high[12..16], b"VP8 ", "lossy bitstream");
        let back = image::load_from_memory(&high).unwrap().to_rgb8();
        let err: u64 = back.pixels().zip(img.to_rgb8().pixels()).map(|(a, b)| (0..3).map(|c| u64::from(a.0[c].abs_diff(b.0[c]))).sum::<u64>()).sum();
        assert!(err / (96 * 64 * 3) < 12, "q95 stays close: mean error {}", err / (96 * 64 * 3));
        // Alpha survives (libwebp's alpha plane is lossless at alpha quality 100).
        let translucent = DynamicImage::ImageRgba8(image::RgbaImage::from_fn(16, 16, |x, _| Rgba([200, 100, 50, (x * 16) as u8])));
        let bytes = at(OutputFormat::Webp, &translucent, 80);
        let back = image::load_from_memory(&bytes).unwrap();
        assert!(back.color().has_alpha());
        assert_eq!(back.to_rgba8().get_pixel(3, 5).0[3], 48);
    }

    #[test]
    fn avif_is_written_and_follows_quality() {
        let img = photo(48, 32);
        let mut o = EncodeOptions::new(OutputFormat::Avif);
        let extras = EncodeExtras { speed: Some(10), ..EncodeExtras::default() };
        o.quality = 30;
        let low = encode_with(&img, &o, &extras).unwrap();
        o.quality = 90;
        let high = encode_with(&img, &o, &extras).unwrap();
        assert_eq!(Format::sniff(&low), Some(Format::Avif));
        assert!(low.len() < high.len(), "q30 {} < q90 {}", low.len(), high.len());
        let bad = EncodeExtras { speed: Some(11), ..extras };
        assert!(matches!(encode_with(&img, &o, &bad), Err(Error::InvalidParameters(_))));
    }

    #[test]
    fn icc_is_kept_only_when_it_fits() {
        let mut icc = vec![0u8; 200];
        icc[16..20].copy_from_slice(b"RGB ");
        let rgb = DynamicImage::ImageRgb8(image::RgbImage::new(2, 2));
        let gray = DynamicImage::ImageLuma8(image::GrayImage::new(2, 2));
        assert!(compatible_icc(Some(&icc), &rgb).is_some());
        assert!(compatible_icc(Some(&icc), &gray).is_none());
        icc[16..20].copy_from_slice(b"CMYK");
        assert!(compatible_icc(Some(&icc), &rgb).is_none());
    }

    #[test]
    fn output_formats() {
        assert_eq!(OutputFormat::parse("JPG").unwrap(), OutputFormat::Jpeg);
        assert_eq!(OutputFormat::parse("avif").unwrap(), OutputFormat::Avif);
        assert!(OutputFormat::parse("tiff").is_err());
        assert_eq!(OutputFormat::default_for(Format::Gif), OutputFormat::Png);
        assert_eq!(blend(255, 0, 128), 128);
    }
}
