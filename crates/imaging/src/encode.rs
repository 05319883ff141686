//! Encoding the output: JPEG (mozjpeg), PNG and lossless WebP, with the conversions each format
//! needs (alpha flattened onto a background for JPEG, 16 bits reduced to 8 where the format has
//! no 16-bit mode) and the source's ICC profile kept when it still describes the pixels.
//! Nothing else of the source's metadata is written.

use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use image::codecs::webp::WebPEncoder;
use image::{DynamicImage, ImageEncoder, Rgba};

use crate::error::{Error, Result};
use crate::format::Format;
use crate::jpeg::{self, JpegEffort};

/// The formats this build writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputFormat {
    Jpeg,
    Png,
    /// Lossless only for now (the pure-Rust encoder has no lossy mode).
    Webp,
}

impl OutputFormat {
    pub fn parse(name: &str) -> Result<OutputFormat> {
        match Format::parse(name) {
            Some(Format::Jpeg) => Ok(OutputFormat::Jpeg),
            Some(Format::Png) => Ok(OutputFormat::Png),
            Some(Format::Webp) => Ok(OutputFormat::Webp),
            _ => Err(Error::invalid(format!("unknown or unsupported output format '{name}' (use jpeg, png or webp)"))),
        }
    }

    pub fn as_format(self) -> Format {
        match self {
            OutputFormat::Jpeg => Format::Jpeg,
            OutputFormat::Png => Format::Png,
            OutputFormat::Webp => Format::Webp,
        }
    }

    /// The output format an input keeps by default: its own when we write it, else PNG.
    pub fn default_for(input: Format) -> OutputFormat {
        match input {
            Format::Jpeg => OutputFormat::Jpeg,
            Format::Webp => OutputFormat::Webp,
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
    #[default]
    Fast,
    /// JPEG: progressive, optimised Huffman tables. PNG: zlib level 6.
    Balanced,
    /// JPEG: mozjpeg's trellis quantisation and scan optimisation. PNG: maximum deflate.
    Smallest,
}

/// How to encode.
#[derive(Debug, Clone)]
pub struct EncodeOptions {
    pub format: OutputFormat,
    /// 1 to 100 (JPEG only).
    pub quality: u8,
    pub effort: Effort,
    /// What transparent pixels become where the format has no alpha (JPEG), straight RGBA.
    pub background: Rgba<u8>,
    /// The source's ICC profile: written when its colour space matches the output's.
    pub icc_profile: Option<Vec<u8>>,
}

impl EncodeOptions {
    pub fn new(format: OutputFormat) -> EncodeOptions {
        EncodeOptions { format, quality: 80, effort: Effort::Fast, background: Rgba([0, 0, 0, 255]), icc_profile: None }
    }
}

/// Encodes an image.
pub fn encode(image: &DynamicImage, options: &EncodeOptions) -> Result<Vec<u8>> {
    let fail = |message: String| Error::Encode { format: options.format.name(), message };
    match options.format {
        OutputFormat::Jpeg => {
            let pixels = for_jpeg(image, options.background);
            let icc = compatible_icc(options.icc_profile.as_deref(), &pixels);
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
            if let Some(icc) = compatible_icc(options.icc_profile.as_deref(), &pixels) {
                // PNG takes any profile; the result is only ignored by the encoder on error.
                let _ = encoder.set_icc_profile(icc.to_vec());
            }
            pixels.write_with_encoder(encoder).map_err(|e| fail(e.to_string()))?;
            Ok(out)
        }
        OutputFormat::Webp => {
            // The WebP encoder takes 8-bit grey, grey+alpha, RGB or RGBA.
            let pixels = match image {
                DynamicImage::ImageLuma8(_) | DynamicImage::ImageLumaA8(_) | DynamicImage::ImageRgb8(_) | DynamicImage::ImageRgba8(_) => {
                    std::borrow::Cow::Borrowed(image)
                }
                other if other.color().has_alpha() => std::borrow::Cow::Owned(DynamicImage::ImageRgba8(other.to_rgba8())),
                other => std::borrow::Cow::Owned(DynamicImage::ImageRgb8(other.to_rgb8())),
            };
            if pixels.width() > 16_383 || pixels.height() > 16_383 {
                return Err(fail(format!("{}x{} is larger than WebP's 16383 pixels a side", pixels.width(), pixels.height())));
            }
            let mut out = Vec::new();
            let mut encoder = WebPEncoder::new_lossless(&mut out);
            if let Some(icc) = compatible_icc(options.icc_profile.as_deref(), &pixels) {
                let _ = encoder.set_icc_profile(icc.to_vec());
            }
            pixels.write_with_encoder(encoder).map_err(|e| fail(e.to_string()))?;
            Ok(out)
        }
    }
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
        let back = crate::jpeg::decode(&bytes, 1, true).unwrap().to_rgb8();
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
    fn webp_is_lossless() {
        let img = rgba(9, 7, 128);
        let bytes = encode(&img, &EncodeOptions::new(OutputFormat::Webp)).unwrap();
        assert_eq!(Format::sniff(&bytes), Some(Format::Webp));
        assert_eq!(image::load_from_memory(&bytes).unwrap().to_rgba8(), img.to_rgba8());
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
        assert!(OutputFormat::parse("avif").is_err());
        assert_eq!(OutputFormat::default_for(Format::Gif), OutputFormat::Png);
        assert_eq!(blend(255, 0, 128), 128);
    }
}
