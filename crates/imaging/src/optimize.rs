//! `optimize`: re-encode an image for size. JPEG through mozjpeg (progressive, optimised
//! Huffman tables, trellis quantisation at the `smallest` effort), PNG losslessly (channels
//! and bit depth reduced when no pixel changes, maximum deflate, oxipng), WebP (lossy through
//! libwebp, or lossless) and AVIF (rav1e). Metadata is stripped, the EXIF orientation is
//! applied to the pixels, and profiled pixels are converted to sRGB unless the profile is kept.
//!
//! For a same-format re-encode the output is never larger than the input unless asked
//! (`allow_larger`): when the re-encode does not win, the input is kept as it is, minus its
//! metadata (a lossless rewrite of the container; an orientation other than upright survives
//! as a minimal Exif block carrying only that tag, since the pixels were not turned).

use std::path::{Path, PathBuf};

use image::{DynamicImage, Rgba};

use crate::color::IccPolicy;
use crate::decode::{self, DecodeOptions, DEFAULT_MAX_PIXELS};
use crate::encode::{self, Effort, EncodeExtras, EncodeOptions, OutputFormat};
use crate::error::{Error, Result};
use crate::format::Format;
use crate::naming::{self, NameTemplate, NameVars};
use crate::resize::refuse_overwriting_input;
use crate::util;

/// The default file name template of optimize outputs.
pub const DEFAULT_NAMING: &str = "{stem}.{ext}";

/// What an optimisation does.
#[derive(Debug, Clone)]
pub struct OptimizeOptions {
    /// `None` ("auto"): JPEG, PNG and WebP stay as they are; other inputs become PNG when they
    /// have alpha and JPEG when they do not.
    pub format: Option<OutputFormat>,
    /// JPEG, lossy WebP and AVIF quality, 1 to 100.
    pub quality: u8,
    pub effort: Effort,
    /// WebP: lossless rather than lossy.
    pub lossless: bool,
    /// AVIF: rav1e speed, 1 to 10 (`None`: from the effort).
    pub speed: Option<u8>,
    /// A source's ICC profile: its pixels converted to sRGB (default) or the profile kept.
    pub icc: IccPolicy,
    /// Write a same-format re-encode even when it is larger than the input.
    pub allow_larger: bool,
    /// A file-size budget: a lossy output (JPEG, WebP, AVIF) takes the highest quality (up to
    /// `quality`) whose file fits, found by bisection; when even quality 1 does not fit, the
    /// quality-1 file is written and flagged `over_budget`. Lossless outputs cannot trade
    /// quality, so they are only flagged.
    pub max_bytes: Option<u64>,
    pub max_pixels: u64,
    /// What transparency becomes in a JPEG (default opaque black, as sharp's `flatten`).
    pub background: Rgba<u8>,
    pub naming: NameTemplate,
}

impl Default for OptimizeOptions {
    fn default() -> Self {
        OptimizeOptions {
            format: None,
            quality: 80,
            effort: Effort::Smallest,
            lossless: false,
            speed: None,
            icc: IccPolicy::default(),
            allow_larger: false,
            max_bytes: None,
            max_pixels: DEFAULT_MAX_PIXELS,
            background: Rgba([0, 0, 0, 255]),
            naming: NameTemplate::parse(DEFAULT_NAMING).expect("the default template parses"),
        }
    }
}

/// An optimised image in memory.
#[derive(Debug, Clone)]
pub struct Optimized {
    pub format: OutputFormat,
    /// Upright size.
    pub width: u32,
    pub height: u32,
    pub data: Vec<u8>,
    /// False when the re-encode did not win and the input's own data (metadata stripped) was kept.
    pub reencoded: bool,
    /// The quality used by a lossy format (lower than asked when `max_bytes` required it).
    pub quality: Option<u8>,
    /// The output is larger than `max_bytes`.
    pub over_budget: bool,
}

/// An optimised file: the step's output entry.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OptimizedFile {
    pub source: PathBuf,
    pub path: PathBuf,
    pub format: OutputFormat,
    pub width: u32,
    pub height: u32,
    pub bytes: u64,
    pub input_bytes: u64,
    pub reencoded: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quality: Option<u8>,
    pub over_budget: bool,
}

/// Optimises an image in memory.
pub fn optimize_bytes(data: &[u8], options: &OptimizeOptions) -> Result<Optimized> {
    if !(1..=100).contains(&options.quality) {
        return Err(Error::invalid("quality must be 1 to 100"));
    }
    if options.speed.is_some_and(|s| !(1..=10).contains(&s)) {
        return Err(Error::invalid("speed must be 1 to 10"));
    }
    let info = decode::probe(data, options.max_pixels)?;
    let image = decode::decode(data, &info, &DecodeOptions::default())?;
    let format = options.format.unwrap_or(match info.format {
        Format::Jpeg => OutputFormat::Jpeg,
        Format::Png => OutputFormat::Png,
        Format::Webp => OutputFormat::Webp,
        _ if image.color().has_alpha() => OutputFormat::Png,
        _ => OutputFormat::Jpeg,
    });
    // An RGB profile no longer fits once grey-looking pixels are stored as grey, and the encoder
    // would drop it (changing how the image is shown): with one, colour stays colour.
    let rgb_profile = info.icc_profile.as_deref().and_then(|p| p.get(16..20)) == Some(&b"RGB "[..]);
    let image = if format == OutputFormat::Jpeg { image } else { reduce(image, !rgb_profile) };
    let encode_options = EncodeOptions {
        format,
        quality: options.quality,
        effort: options.effort,
        background: options.background,
        icc_profile: info.icc_profile.clone(),
    };
    let extras = EncodeExtras { icc: options.icc, lossless: options.lossless, speed: options.speed };
    let lossy = format.is_lossy(&extras);
    let encode_at = |quality: u8| encode::encode_with(&image, &EncodeOptions { quality, ..encode_options.clone() }, &extras);
    let (encoded, quality) = match (options.max_bytes, format) {
        (Some(budget), _) if lossy => fit_budget(budget, options.quality, encode_at)?,
        (_, OutputFormat::Png) => (oxipng_pass(encode_at(options.quality)?, options.effort), options.quality),
        _ => (encode_at(options.quality)?, options.quality),
    };
    let quality = lossy.then_some(quality);
    let over = |len: usize| options.max_bytes.is_some_and(|b| len as u64 > b);
    let (width, height) = (image.width(), image.height());
    if format.as_format() == info.format && !options.allow_larger && encoded.len() >= data.len() {
        if let Some(kept) = strip_metadata(info.format, data, info.orientation) {
            if kept.len() <= encoded.len() {
                let over_budget = over(kept.len());
                return Ok(Optimized { format, width, height, data: kept, reencoded: false, quality: None, over_budget });
            }
        }
    }
    let over_budget = over(encoded.len());
    Ok(Optimized { format, width, height, data: encoded, reencoded: true, quality, over_budget })
}

/// Runs oxipng over an encoded PNG (trying filters, zlib strategies, bit depth and palette
/// reductions; chunks such as iCCP kept). Its level follows the effort: none for `fast`, 2 for
/// `balanced`, 4 for `smallest`. Should oxipng fail, the encoder's own PNG is kept: it is valid.
fn oxipng_pass(png: Vec<u8>, effort: Effort) -> Vec<u8> {
    let level = match effort {
        Effort::Fast => return png,
        Effort::Balanced => 2,
        Effort::Smallest => 4,
    };
    match oxipng::optimize_from_memory(&png, &oxipng::Options::from_preset(level)) {
        Ok(smaller) if smaller.len() < png.len() => smaller,
        Ok(_) => png,
        Err(e) => {
            tracing::warn!(error = %e, "oxipng could not optimise a PNG; keeping the encoder's");
            png
        }
    }
}

/// The highest quality in 1..=`max_quality` whose encoding fits in `budget` bytes (file size
/// falls as quality falls, so bisection finds it in at most 7 encodes), or quality 1 when none
/// fits.
fn fit_budget(budget: u64, max_quality: u8, encode_at: impl Fn(u8) -> Result<Vec<u8>>) -> Result<(Vec<u8>, u8)> {
    let (mut lo, mut hi) = (1u8, max_quality);
    let mut best = None;
    while lo <= hi {
        let mid = lo + (hi - lo) / 2;
        let data = encode_at(mid)?;
        if data.len() as u64 <= budget {
            best = Some((data, mid));
            lo = mid + 1;
        } else if mid == 1 {
            break;
        } else {
            hi = mid - 1;
        }
    }
    match best {
        Some(found) => Ok(found),
        None => Ok((encode_at(1)?, 1)),
    }
}

/// Optimises the image at `input` into `output_dir` under `options.naming` (atomically).
pub fn optimize_file(input: &Path, output_dir: &Path, options: &OptimizeOptions) -> Result<OptimizedFile> {
    let data = util::read_file(input, util::DEFAULT_MAX_FILE_BYTES)?;
    let out = optimize_bytes(&data, options)?;
    let stem = naming::stem_of(input);
    let vars = NameVars { stem: &stem, variant: "optimized", ext: out.format.extension(), width: out.width, height: out.height };
    let name = options.naming.render(&vars)?;
    refuse_overwriting_input(input, output_dir, &name)?;
    let path = util::write_atomic(output_dir, &name, &out.data)?;
    Ok(OptimizedFile {
        source: input.to_path_buf(),
        path,
        format: out.format,
        width: out.width,
        height: out.height,
        bytes: out.data.len() as u64,
        input_bytes: data.len() as u64,
        reencoded: out.reencoded,
        quality: out.quality,
        over_budget: out.over_budget,
    })
}

/// Drops what no pixel needs, as oxipng does: an alpha channel that is opaque everywhere,
/// colour where every pixel is grey, and 16 bits where each sample is an 8-bit value repeated.
pub fn reduce_losslessly(image: DynamicImage) -> DynamicImage {
    reduce(image, true)
}

/// [`reduce_losslessly`], with colour to grey only when `to_grey`.
fn reduce(image: DynamicImage, to_grey: bool) -> DynamicImage {
    let image = match image {
        DynamicImage::ImageLuma16(_) | DynamicImage::ImageLumaA16(_) | DynamicImage::ImageRgb16(_) | DynamicImage::ImageRgba16(_)
            if image.as_bytes().chunks_exact(2).all(|s| s[0] == s[1]) =>
        {
            // Both bytes equal, whatever the byte order: the value is a multiple of 257.
            match image {
                DynamicImage::ImageLuma16(_) => DynamicImage::ImageLuma8(image.to_luma8()),
                DynamicImage::ImageLumaA16(_) => DynamicImage::ImageLumaA8(image.to_luma_alpha8()),
                DynamicImage::ImageRgb16(_) => DynamicImage::ImageRgb8(image.to_rgb8()),
                _ => DynamicImage::ImageRgba8(image.to_rgba8()),
            }
        }
        other => other,
    };
    let opaque = match &image {
        DynamicImage::ImageLumaA8(i) => i.pixels().all(|p| p.0[1] == u8::MAX),
        DynamicImage::ImageRgba8(i) => i.pixels().all(|p| p.0[3] == u8::MAX),
        DynamicImage::ImageLumaA16(i) => i.pixels().all(|p| p.0[1] == u16::MAX),
        DynamicImage::ImageRgba16(i) => i.pixels().all(|p| p.0[3] == u16::MAX),
        _ => false,
    };
    let image = if opaque {
        match image {
            DynamicImage::ImageLumaA8(_) => DynamicImage::ImageLuma8(image.to_luma8()),
            DynamicImage::ImageRgba8(_) => DynamicImage::ImageRgb8(image.to_rgb8()),
            DynamicImage::ImageLumaA16(_) => DynamicImage::ImageLuma16(image.to_luma16()),
            _ => DynamicImage::ImageRgb16(image.to_rgb16()),
        }
    } else {
        image
    };
    if !to_grey {
        return image;
    }
    // Grey: take the red channel as is (a luma formula could round).
    match &image {
        DynamicImage::ImageRgb8(i) if i.pixels().all(|p| p.0[0] == p.0[1] && p.0[1] == p.0[2]) => {
            DynamicImage::ImageLuma8(image::ImageBuffer::from_fn(i.width(), i.height(), |x, y| image::Luma([i.get_pixel(x, y).0[0]])))
        }
        DynamicImage::ImageRgba8(i) if i.pixels().all(|p| p.0[0] == p.0[1] && p.0[1] == p.0[2]) => {
            DynamicImage::ImageLumaA8(image::ImageBuffer::from_fn(i.width(), i.height(), |x, y| {
                let [l, _, _, a] = i.get_pixel(x, y).0;
                image::LumaA([l, a])
            }))
        }
        DynamicImage::ImageRgb16(i) if i.pixels().all(|p| p.0[0] == p.0[1] && p.0[1] == p.0[2]) => {
            DynamicImage::ImageLuma16(image::ImageBuffer::from_fn(i.width(), i.height(), |x, y| image::Luma([i.get_pixel(x, y).0[0]])))
        }
        DynamicImage::ImageRgba16(i) if i.pixels().all(|p| p.0[0] == p.0[1] && p.0[1] == p.0[2]) => {
            DynamicImage::ImageLumaA16(image::ImageBuffer::from_fn(i.width(), i.height(), |x, y| {
                let [l, _, _, a] = i.get_pixel(x, y).0;
                image::LumaA([l, a])
            }))
        }
        _ => image,
    }
}

/// A minimal Exif (TIFF) block carrying only the orientation tag.
fn orientation_exif(orientation: u8) -> Vec<u8> {
    let mut tiff = b"MM\0\x2a\0\0\0\x08".to_vec(); // big-endian, first IFD at offset 8
    tiff.extend_from_slice(&1u16.to_be_bytes()); // one entry
    tiff.extend_from_slice(&0x0112u16.to_be_bytes()); // Orientation
    tiff.extend_from_slice(&3u16.to_be_bytes()); // SHORT
    tiff.extend_from_slice(&1u32.to_be_bytes()); // count
    tiff.extend_from_slice(&[0, orientation, 0, 0]); // value, padded
    tiff.extend_from_slice(&0u32.to_be_bytes()); // no next IFD
    tiff
}

/// The input with its metadata removed and nothing else touched, or `None` when the container
/// cannot be walked (or is a format this does not rewrite).
pub(crate) fn strip_metadata(format: Format, data: &[u8], orientation: u8) -> Option<Vec<u8>> {
    match format {
        Format::Jpeg => strip_jpeg(data, orientation),
        Format::Png => strip_png(data, orientation),
        // WebP keeps an orientation only in Exif: such a file is re-encoded upright instead.
        Format::Webp if orientation == 1 => crate::webp::strip_metadata(data),
        _ => None,
    }
}

/// Keeps APP0 (JFIF), APP2 (ICC), APP14 (Adobe: says how to read the colours) and every
/// non-APP segment; drops Exif/XMP (APP1), the other APPn and comments.
fn strip_jpeg(data: &[u8], orientation: u8) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(data.len());
    out.extend_from_slice(data.get(..2)?);
    if orientation != 1 {
        let exif = orientation_exif(orientation);
        out.extend_from_slice(&[0xFF, 0xE1]);
        out.extend_from_slice(&u16::try_from(exif.len() + 8).ok()?.to_be_bytes());
        out.extend_from_slice(b"Exif\0\0");
        out.extend_from_slice(&exif);
    }
    let mut pos = 2;
    loop {
        if *data.get(pos)? != 0xFF {
            return None;
        }
        let marker = *data.get(pos + 1)?;
        if marker == 0xFF {
            pos += 1; // fill byte
            continue;
        }
        if marker == 0xDA {
            // Start of scan: entropy-coded data and the rest of the file, kept whole.
            out.extend_from_slice(&data[pos..]);
            return Some(out);
        }
        let len = usize::from(u16::from_be_bytes([*data.get(pos + 2)?, *data.get(pos + 3)?]));
        let segment = data.get(pos..pos + 2 + len)?;
        let drop = matches!(marker, 0xE1 | 0xE3..=0xED | 0xEF | 0xFE);
        if !drop {
            out.extend_from_slice(segment);
        }
        pos += 2 + len;
    }
}

/// Drops the text, time and Exif chunks; keeps everything that affects how pixels look.
fn strip_png(data: &[u8], orientation: u8) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(data.len());
    out.extend_from_slice(data.get(..8)?);
    let mut pos = 8;
    while pos < data.len() {
        let len = u32::from_be_bytes(data.get(pos..pos + 4)?.try_into().ok()?) as usize;
        let kind = data.get(pos + 4..pos + 8)?;
        let chunk = data.get(pos..pos.checked_add(12)?.checked_add(len)?)?;
        if !matches!(kind, b"tEXt" | b"zTXt" | b"iTXt" | b"tIME" | b"eXIf") {
            out.extend_from_slice(chunk);
        }
        if kind == b"IHDR" && orientation != 1 {
            let exif = orientation_exif(orientation);
            let mut body = b"eXIf".to_vec();
            body.extend_from_slice(&exif);
            out.extend_from_slice(&(exif.len() as u32).to_be_bytes());
            out.extend_from_slice(&body);
            out.extend_from_slice(&util::crc32(&body).to_be_bytes());
        }
        pos += 12 + len;
        if kind == b"IEND" {
            break;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::metadata::Orientation;
    use image::{ImageBuffer, RgbImage, RgbaImage};

    fn photo(w: u32, h: u32) -> DynamicImage {
        DynamicImage::ImageRgb8(RgbImage::from_fn(w, h, |x, y| {
            let n = (x.wrapping_mul(7919) ^ y.wrapping_mul(104_729)).wrapping_mul(2_654_435_761) >> 28;
            image::Rgb([(x * 2 + n) as u8, (y * 3 + n) as u8, ((x + y) + n) as u8])
        }))
    }

    fn jpeg(img: &DynamicImage, quality: u8) -> Vec<u8> {
        let mut o = EncodeOptions::new(OutputFormat::Jpeg);
        o.quality = quality;
        encode::encode(img, &o).unwrap()
    }

    #[test]
    fn a_high_quality_jpeg_gets_smaller() {
        let input = jpeg(&photo(160, 120), 98);
        let out = optimize_bytes(&input, &OptimizeOptions::default()).unwrap();
        assert!(out.reencoded && out.data.len() < input.len(), "{} vs {}", out.data.len(), input.len());
        assert_eq!((out.format, out.width, out.height), (OutputFormat::Jpeg, 160, 120));
    }

    #[test]
    fn a_same_format_re_encode_is_never_larger() {
        let input = jpeg(&photo(160, 120), 30);
        let opts = OptimizeOptions { quality: 95, ..OptimizeOptions::default() };
        let out = optimize_bytes(&input, &opts).unwrap();
        assert!(!out.reencoded && out.data.len() <= input.len());
        let larger = optimize_bytes(&input, &OptimizeOptions { allow_larger: true, ..opts }).unwrap();
        assert!(larger.reencoded && larger.data.len() > input.len());
    }

    #[test]
    fn a_webp_stays_webp_and_never_grows() {
        let high = encode::encode(&photo(160, 120), &EncodeOptions { quality: 95, ..EncodeOptions::new(OutputFormat::Webp) }).unwrap();
        let out = optimize_bytes(&high, &OptimizeOptions { quality: 60, ..OptimizeOptions::default() }).unwrap();
        assert!(out.reencoded && out.format == OutputFormat::Webp && out.data.len() < high.len());
        let low = encode::encode(&photo(160, 120), &EncodeOptions { quality: 20, ..EncodeOptions::new(OutputFormat::Webp) }).unwrap();
        let kept = optimize_bytes(&low, &OptimizeOptions { quality: 95, ..OptimizeOptions::default() }).unwrap();
        assert!(!kept.reencoded && kept.data == low, "the input's own bytes (it had no metadata)");
    }

    #[test]
    fn png_is_reduced_losslessly() {
        let gray16 = DynamicImage::ImageRgba16(ImageBuffer::from_fn(8, 8, |x, _| {
            let v = x as u16 * 257 * 10;
            Rgba([v, v, v, u16::MAX])
        }));
        let reduced = reduce_losslessly(gray16.clone());
        assert_eq!(reduced.color(), image::ColorType::L8);
        assert_eq!(reduced.to_rgba16(), gray16.to_rgba16(), "no pixel changed");
        let translucent = DynamicImage::ImageRgba8(RgbaImage::from_pixel(2, 2, Rgba([1, 2, 3, 4])));
        assert_eq!(reduce_losslessly(translucent).color(), image::ColorType::Rgba8);
        let encoded = encode::encode(&gray16, &EncodeOptions::new(OutputFormat::Png)).unwrap();
        let out = optimize_bytes(&encoded, &OptimizeOptions::default()).unwrap();
        assert!(out.data.len() < encoded.len());
    }

    #[test]
    fn oxipng_makes_png_smaller_and_keeps_every_pixel() {
        // Few colours: oxipng's palette reduction has something to find.
        let img = DynamicImage::ImageRgb8(RgbImage::from_fn(96, 64, |x, y| {
            let c = [[200u8, 30, 30], [30, 200, 30], [30, 30, 200]][((x / 8 + y / 8) % 3) as usize];
            image::Rgb(c)
        }));
        let input = encode::encode(&img, &EncodeOptions::new(OutputFormat::Png)).unwrap();
        let fast = optimize_bytes(&input, &OptimizeOptions { effort: Effort::Fast, allow_larger: true, ..OptimizeOptions::default() }).unwrap();
        let smallest = optimize_bytes(&input, &OptimizeOptions::default()).unwrap();
        assert!(smallest.data.len() < fast.data.len(), "{} vs {}", smallest.data.len(), fast.data.len());
        let decoded = image::load_from_memory(&smallest.data).unwrap();
        assert_eq!(decoded.to_rgb8(), img.to_rgb8(), "lossless");
    }

    #[test]
    fn stripping_keeps_pixels_and_orientation_only() {
        let exif = orientation_exif(6);
        assert_eq!(Orientation::from_exif_chunk(&exif), Some(Orientation::Rotate90));
        let base = jpeg(&photo(32, 16), 80);
        // Insert a comment and an XMP-like APP1 after SOI.
        let mut with_meta = base[..2].to_vec();
        with_meta.extend_from_slice(&[0xFF, 0xFE, 0, 7, b'h', b'e', b'l', b'l', b'o']);
        with_meta.extend_from_slice(&[0xFF, 0xE1, 0, 6, b'x', b'm', b'p', b'!']);
        with_meta.extend_from_slice(&base[2..]);
        let stripped = strip_metadata(Format::Jpeg, &with_meta, 1).unwrap();
        assert_eq!(stripped, base);
        let oriented = strip_metadata(Format::Jpeg, &with_meta, 6).unwrap();
        let info = decode::probe(&oriented, DEFAULT_MAX_PIXELS).unwrap();
        assert_eq!((info.orientation, info.width, info.height), (6, 32, 16));
        assert_eq!(strip_metadata(Format::Jpeg, b"\xFF\xD8\xFF\xE1\xFF\xFF", 1), None, "a segment past the end");
    }

    #[test]
    fn png_stripping_drops_text_chunks() {
        let img = DynamicImage::ImageRgb8(RgbImage::from_pixel(4, 4, image::Rgb([9, 9, 200])));
        let png = encode::encode(&img, &EncodeOptions::new(OutputFormat::Png)).unwrap();
        let mut text = b"tEXtComment\0hi".to_vec();
        let crc = util::crc32(&text);
        let mut with_text = png[..33].to_vec(); // signature + IHDR
        with_text.extend_from_slice(&((text.len() - 4) as u32).to_be_bytes());
        with_text.append(&mut text);
        with_text.extend_from_slice(&crc.to_be_bytes());
        with_text.extend_from_slice(&png[33..]);
        assert_eq!(strip_metadata(Format::Png, &with_text, 1).unwrap(), png);
        let oriented = strip_metadata(Format::Png, &png, 8).unwrap();
        assert_eq!(decode::probe(&oriented, DEFAULT_MAX_PIXELS).unwrap().orientation, 8);
    }

    #[test]
    fn orientation_is_applied_to_the_pixels() {
        let mut with_exif = jpeg(&photo(40, 20), 90);
        let exif = orientation_exif(6);
        let mut app1 = vec![0xFF, 0xE1];
        app1.extend_from_slice(&((exif.len() + 8) as u16).to_be_bytes());
        app1.extend_from_slice(b"Exif\0\0");
        app1.extend_from_slice(&exif);
        with_exif.splice(2..2, app1);
        let out = optimize_bytes(&with_exif, &OptimizeOptions { allow_larger: true, ..OptimizeOptions::default() }).unwrap();
        assert_eq!((out.width, out.height), (20, 40));
        let info = decode::probe(&out.data, DEFAULT_MAX_PIXELS).unwrap();
        assert_eq!((info.width, info.height, info.orientation), (20, 40, 1), "rotated pixels, no Exif");
    }

    #[test]
    fn max_bytes_picks_the_highest_quality_that_fits() {
        let img = photo(256, 192);
        let input = jpeg(&img, 95);
        let full = optimize_bytes(&input, &OptimizeOptions { quality: 90, allow_larger: true, ..OptimizeOptions::default() }).unwrap();
        let budget = full.data.len() as u64 * 2 / 3;
        let fitted = optimize_bytes(&input, &OptimizeOptions { quality: 90, max_bytes: Some(budget), ..OptimizeOptions::default() }).unwrap();
        assert!(fitted.data.len() as u64 <= budget, "{} > {budget}", fitted.data.len());
        let q = fitted.quality.unwrap();
        assert!(q < 90 && !fitted.over_budget);
        // One quality step up would not have fitted (or is the maximum).
        let above = optimize_bytes(&input, &OptimizeOptions { quality: q + 1, allow_larger: true, ..OptimizeOptions::default() }).unwrap();
        assert!(above.data.len() as u64 > budget);

        let tiny = optimize_bytes(&input, &OptimizeOptions { max_bytes: Some(10), ..OptimizeOptions::default() }).unwrap();
        assert!(tiny.over_budget, "an unreachable budget is flagged, not hidden");
        assert_eq!(tiny.quality, Some(1));
    }

    #[test]
    fn files_refuse_to_overwrite_their_input() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("a.jpg");
        std::fs::write(&input, jpeg(&photo(16, 16), 95)).unwrap();
        assert!(matches!(optimize_file(&input, dir.path(), &OptimizeOptions::default()), Err(Error::InvalidParameters(_))));
        let out = optimize_file(&input, &dir.path().join("out"), &OptimizeOptions::default()).unwrap();
        assert_eq!(out.path, dir.path().join("out/a.jpg"));
        assert_eq!(std::fs::metadata(&out.path).unwrap().len(), out.bytes);
    }
}
