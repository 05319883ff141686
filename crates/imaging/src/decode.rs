//! Reading images: the header alone ([`probe`]: size, colour model, orientation, ICC, without
//! allocating anything the size of the image) and the pixels ([`decode`]: with the decoder
//! limited to what the header announced, EXIF orientation applied, and JPEG shrink-on-load).

use std::io::Cursor;

use image::metadata::Orientation;
use image::{ColorType, DynamicImage, ImageDecoder};

use crate::error::{Error, Result};
use crate::format::Format;
use crate::jpeg;

/// The pixel count that validate and resize accept by default, as sharp's `limitInputPixels`
/// order of magnitude: a 100-megapixel image is 400 MB as RGBA.
pub const DEFAULT_MAX_PIXELS: u64 = 100_000_000;

/// What decoders may allocate while only reading headers and metadata (an ICC profile, Exif):
/// enough for any real file, and a bound on a zlib bomb in a PNG `iCCP` chunk.
const HEADER_ALLOC_LIMIT: u64 = 64 << 20;

/// The colour model as stored in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ColorKind {
    Gray,
    GrayAlpha,
    Rgb,
    Rgba,
    /// Indexed colour (PNG palette, GIF); decoded to RGB or RGBA.
    Palette,
    Cmyk,
}

/// What an image's header says, read without decoding pixels.
#[derive(Debug, Clone)]
pub struct ImageInfo {
    pub format: Format,
    /// Size as stored, before the EXIF orientation is applied.
    pub width: u32,
    pub height: u32,
    pub color: ColorKind,
    /// Bits per channel as stored (1, 2, 4, 8 or 16).
    pub bit_depth: u8,
    pub has_alpha: bool,
    /// EXIF orientation, 1 (upright) to 8.
    pub orientation: u8,
    pub icc_profile: Option<Vec<u8>>,
}

impl ImageInfo {
    pub fn pixels(&self) -> u64 {
        u64::from(self.width) * u64::from(self.height)
    }

    /// Whether the orientation swaps width and height (EXIF 5 to 8: a quarter turn).
    pub fn orientation_swaps_axes(&self) -> bool {
        matches!(self.orientation, 5..=8)
    }

    /// Size once the orientation is applied: what a viewer shows.
    pub fn oriented_size(&self) -> (u32, u32) {
        if self.orientation_swaps_axes() {
            (self.height, self.width)
        } else {
            (self.width, self.height)
        }
    }

}

/// Refuses a size with no pixels, or with more than `max_pixels`.
fn check_size(width: u32, height: u32, max_pixels: u64) -> Result<()> {
    if width == 0 || height == 0 {
        return Err(Error::Decode(format!("the image is {width}x{height}: it has no pixels")));
    }
    if u64::from(width) * u64::from(height) > max_pixels {
        return Err(Error::TooManyPixels { width, height, limit: max_pixels });
    }
    Ok(())
}

/// Reads the header of an image in memory and checks its size against `max_pixels`
/// ([`Error::TooManyPixels`]) as soon as the size is known, before the rest of the header.
/// Nothing proportional to the claimed size is allocated, so a header claiming
/// 100,000 x 100,000 pixels is answered, never decoded.
pub fn probe(data: &[u8], max_pixels: u64) -> Result<ImageInfo> {
    let info = probe_unchecked(data, max_pixels)?;
    check_size(info.width, info.height, max_pixels)?;
    Ok(info)
}

fn probe_unchecked(data: &[u8], max_pixels: u64) -> Result<ImageInfo> {
    let format = Format::sniff(data).ok_or_else(|| Error::Decode("not an image (unrecognised content)".to_string()))?;
    if !format.is_decodable() {
        return Err(Error::UnsupportedFormat(format.name().to_string()));
    }
    match format {
        Format::Jpeg => {
            let header = jpeg::read_header(data).map_err(|e| Error::Decode(format!("corrupt JPEG header: {e}")))?;
            let orientation = header.exif.as_deref().and_then(Orientation::from_exif_chunk).map_or(1, Orientation::to_exif);
            Ok(ImageInfo {
                format,
                width: header.width,
                height: header.height,
                color: match header.color {
                    jpeg::JpegColor::Gray => ColorKind::Gray,
                    jpeg::JpegColor::Rgb => ColorKind::Rgb,
                    jpeg::JpegColor::Cmyk => ColorKind::Cmyk,
                },
                bit_depth: 8,
                has_alpha: false,
                orientation,
                icc_profile: header.icc,
            })
        }
        Format::Png => {
            let ihdr = png_ihdr(data).ok_or_else(|| Error::Decode("corrupt PNG header (IHDR)".to_string()))?;
            // The decoder reads on to the first IDAT; the size is refused before that.
            check_size(ihdr.width, ihdr.height, max_pixels)?;
            let mut decoder = image::codecs::png::PngDecoder::with_limits(Cursor::new(data), header_limits())
                .map_err(|e| Error::Decode(format!("corrupt PNG header: {e}")))?;
            let mut info = info_from_decoder(format, &mut decoder)?;
            info.bit_depth = ihdr.bit_depth;
            info.color = match ihdr.color_type {
                0 => ColorKind::Gray,
                2 => ColorKind::Rgb,
                3 => ColorKind::Palette,
                4 => ColorKind::GrayAlpha,
                _ => ColorKind::Rgba,
            };
            Ok(info)
        }
        Format::Webp => {
            let mut decoder = image::codecs::webp::WebPDecoder::new(Cursor::new(data))
                .map_err(|e| Error::Decode(format!("corrupt WebP header: {e}")))?;
            info_from_decoder(format, &mut decoder)
        }
        Format::Gif => {
            let mut decoder = image::codecs::gif::GifDecoder::new(Cursor::new(data))
                .map_err(|e| Error::Decode(format!("corrupt GIF header: {e}")))?;
            let mut info = info_from_decoder(format, &mut decoder)?;
            info.color = ColorKind::Palette;
            Ok(info)
        }
        Format::Bmp => {
            let mut decoder = image::codecs::bmp::BmpDecoder::new(Cursor::new(data))
                .map_err(|e| Error::Decode(format!("corrupt BMP header: {e}")))?;
            info_from_decoder(format, &mut decoder)
        }
        Format::Tiff => {
            // Reads the first IFD (tags, not strips); its size is refused before any decode.
            let mut decoder = image::codecs::tiff::TiffDecoder::new(Cursor::new(data))
                .map_err(|e| Error::Decode(format!("corrupt or unsupported TIFF: {e}")))?;
            decoder.set_limits(header_limits()).map_err(|e| Error::Decode(format!("TIFF header: {e}")))?;
            info_from_decoder(format, &mut decoder)
        }
        other => Err(Error::UnsupportedFormat(other.name().to_string())),
    }
}

fn header_limits() -> image::Limits {
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(HEADER_ALLOC_LIMIT);
    limits
}

fn info_from_decoder(format: Format, decoder: &mut impl ImageDecoder) -> Result<ImageInfo> {
    let (width, height) = decoder.dimensions();
    let color_type = decoder.color_type();
    let channels = u16::from(color_type.channel_count().max(1));
    let bit_depth = u8::try_from(color_type.bits_per_pixel() / channels).unwrap_or(8);
    let color = match color_type {
        ColorType::L8 | ColorType::L16 => ColorKind::Gray,
        ColorType::La8 | ColorType::La16 => ColorKind::GrayAlpha,
        ColorType::Rgba8 | ColorType::Rgba16 | ColorType::Rgba32F => ColorKind::Rgba,
        _ => ColorKind::Rgb,
    };
    // Unreadable metadata is not worth refusing an image for: treat it as absent.
    let icc_profile = decoder.icc_profile().ok().flatten();
    let orientation = decoder.orientation().map_or(1, Orientation::to_exif);
    Ok(ImageInfo { format, width, height, color, bit_depth, has_alpha: color_type.has_alpha(), orientation, icc_profile })
}

struct Ihdr {
    width: u32,
    height: u32,
    bit_depth: u8,
    color_type: u8,
}

/// The stored bit depth and colour type of a PNG (the decoder reports them expanded).
fn png_ihdr(data: &[u8]) -> Option<Ihdr> {
    // signature (8), length (4), "IHDR" (4), width (4), height (4), depth (1), colour type (1)
    if data.len() < 26 || &data[12..16] != b"IHDR" {
        return None;
    }
    let be = |i: usize| u32::from_be_bytes([data[i], data[i + 1], data[i + 2], data[i + 3]]);
    Some(Ihdr { width: be(16), height: be(20), bit_depth: data[24], color_type: data[25] })
}

/// A cheap completeness check on the container, without decoding: the end marker each format
/// must finish with. Catches most truncated files even when `decode` is off.
pub fn truncation(format: Format, data: &[u8]) -> Option<String> {
    let missing = |what: &str| Some(format!("truncated: the file ends before its {what}"));
    match format {
        // EOI may be followed by trailing bytes (some cameras append data), so search for it.
        Format::Jpeg if !data.windows(2).rev().any(|w| w == [0xFF, 0xD9]) => missing("end-of-image marker"),
        Format::Png if !has_png_iend(data) => missing("IEND chunk"),
        // The trailer byte, possibly followed by NUL padding.
        Format::Gif if data.iter().rev().find(|&&b| b != 0) != Some(&0x3B) => missing("trailer"),
        Format::Webp => {
            let size = data.get(4..8)?;
            let declared = u32::from_le_bytes([size[0], size[1], size[2], size[3]]) as usize;
            (data.len() < declared.saturating_add(8))
                .then(|| format!("truncated: the RIFF header declares {} bytes, the file has {}", declared + 8, data.len()))
        }
        _ => None,
    }
}

fn has_png_iend(data: &[u8]) -> bool {
    // Walk the chunk list; anything after IEND is ignored like decoders do.
    let mut pos = 8usize;
    while let Some(header) = data.get(pos..pos + 8) {
        let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
        if &header[4..8] == b"IEND" {
            return true;
        }
        pos = match pos.checked_add(12).and_then(|p| p.checked_add(len)) {
            Some(next) => next,
            None => return false,
        };
    }
    false
}

/// How to decode.
#[derive(Debug, Clone, Copy)]
pub struct DecodeOptions {
    /// JPEG only: decode at `1/shrink` (1, 2, 4 or 8) in the DCT domain. Ignored for others.
    pub jpeg_shrink: u32,
    /// Refuse data that decoders only warn about (a truncated JPEG decodes as grey otherwise).
    pub strict: bool,
    /// Apply the EXIF orientation, so the pixels are upright.
    pub apply_orientation: bool,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        DecodeOptions { jpeg_shrink: 1, strict: true, apply_orientation: true }
    }
}

/// Decodes the pixels of an image whose header [`probe`] read (and whose size it checked). The
/// decoder is still held to the announced size, so a file whose later data contradicts its
/// header cannot make it allocate more.
pub fn decode(data: &[u8], info: &ImageInfo, options: &DecodeOptions) -> Result<DynamicImage> {
    let mut image = match info.format {
        Format::Jpeg => jpeg::decode(data, options.jpeg_shrink, options.strict, info.icc_profile.as_deref()).map_err(|e| Error::Decode(corrupt(&e)))?,
        format => {
            let image_format = match format {
                Format::Png => image::ImageFormat::Png,
                Format::Webp => image::ImageFormat::WebP,
                Format::Gif => image::ImageFormat::Gif,
                Format::Bmp => image::ImageFormat::Bmp,
                Format::Tiff => image::ImageFormat::Tiff,
                other => return Err(Error::UnsupportedFormat(other.name().to_string())),
            };
            let mut limits = image::Limits::default();
            limits.max_image_width = Some(info.width);
            limits.max_image_height = Some(info.height);
            // Room for the largest output (16-bit RGBA) plus the decoder's own buffers.
            limits.max_alloc = Some(info.pixels().saturating_mul(8).saturating_add(HEADER_ALLOC_LIMIT));
            let mut reader = image::ImageReader::with_format(Cursor::new(data), image_format);
            reader.limits(limits);
            reader.decode().map_err(|e| Error::Decode(corrupt(&e.to_string())))?
        }
    };
    if options.apply_orientation {
        if let Some(o) = Orientation::from_exif(info.orientation) {
            image.apply_orientation(o);
        }
    }
    Ok(image)
}

fn corrupt(message: &str) -> String {
    format!("corrupt or truncated image data: {message}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A PNG made of a valid signature and IHDR only, claiming `w` x `h`.
    pub(crate) fn png_header_only(w: u32, h: u32) -> Vec<u8> {
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        let mut ihdr = b"IHDR".to_vec();
        ihdr.extend_from_slice(&w.to_be_bytes());
        ihdr.extend_from_slice(&h.to_be_bytes());
        ihdr.extend_from_slice(&[8, 6, 0, 0, 0]);
        png.extend_from_slice(&13u32.to_be_bytes());
        png.extend_from_slice(&ihdr);
        png.extend_from_slice(&crate::util::crc32(&ihdr).to_be_bytes());
        png
    }

    #[test]
    fn huge_png_header_is_refused_without_allocating() {
        let err = probe(&png_header_only(100_000, 100_000), DEFAULT_MAX_PIXELS).unwrap_err();
        assert!(matches!(err, Error::TooManyPixels { width: 100_000, height: 100_000, .. }), "{err}");
        assert!(err.to_string().contains("100000x100000"), "{err}");
        let err = probe(&png_header_only(0, 10), DEFAULT_MAX_PIXELS).unwrap_err();
        assert!(err.to_string().contains("no pixels"), "{err}");
    }

    #[test]
    fn truncation_checks() {
        assert!(truncation(Format::Png, &png_header_only(1, 1)).is_some());
        assert!(truncation(Format::Jpeg, &[0xFF, 0xD8, 0xFF, 0xE0]).is_some());
        assert!(truncation(Format::Jpeg, &[0xFF, 0xD8, 0xFF, 0xD9, 0, 0]).is_none(), "trailing bytes after EOI are fine");
        assert!(truncation(Format::Webp, b"RIFF\xff\0\0\0WEBPVP8L").is_some());
    }

    #[test]
    fn orientation_sizes() {
        let mut info = ImageInfo {
            format: Format::Png,
            width: 30,
            height: 20,
            color: ColorKind::Rgb,
            bit_depth: 8,
            has_alpha: false,
            orientation: 1,
            icc_profile: None,
        };
        assert_eq!(info.oriented_size(), (30, 20));
        info.orientation = 6;
        assert_eq!(info.oriented_size(), (20, 30));
    }

    #[test]
    fn unknown_and_unsupported() {
        assert!(matches!(probe(b"hello world", 10), Err(Error::Decode(_))));
        assert!(matches!(probe(b"\0\0\0\x1cftypheic\0\0\0\0mif1heic", 10), Err(Error::UnsupportedFormat(f)) if f == "heic"));
        assert!(matches!(probe(b"II*\0\x08\0\0\0\0\0", 10), Err(Error::Decode(_))), "a TIFF with an empty IFD");
    }
}
