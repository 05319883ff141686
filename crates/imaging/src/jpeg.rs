//! JPEG through mozjpeg (libjpeg-turbo): header reading, decoding with DCT-domain
//! shrink-on-load, and encoding (baseline or progressive, optimised Huffman, trellis).
//!
//! libjpeg reports a fatal error by calling `error_exit`, which must not return; mozjpeg's
//! convention is to unwind from it (the C code is built with `-fexceptions`). Every call into
//! libjpeg therefore runs inside [`guard`], which turns that unwind into an `Err` so a hostile
//! file can never take the process down. Warnings (a truncated file, corrupt entropy data)
//! do not stop libjpeg, which fills the missing part with grey; they are collected per thread
//! so a caller can refuse such a file, as sharp does by default (`failOn: 'warning'`).

use std::cell::RefCell;
use std::os::raw::c_int;
use std::panic::{catch_unwind, AssertUnwindSafe};

use image::{DynamicImage, GrayImage, RgbImage};
use mozjpeg::{ColorSpace, Compress, Decompress, Marker};
use mozjpeg_sys as ffi;

/// Colour model of a JPEG as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JpegColor {
    Gray,
    /// YCbCr or RGB: decodes to RGB.
    Rgb,
    /// CMYK or YCCK (Adobe): decodes to CMYK, converted to RGB here.
    Cmyk,
}

/// What the header says, read without decoding any pixels.
#[derive(Debug, Clone)]
pub(crate) struct JpegHeader {
    pub width: u32,
    pub height: u32,
    pub color: JpegColor,
    /// The TIFF structure of the APP1 Exif segment (after `Exif\0\0`).
    pub exif: Option<Vec<u8>>,
    /// The ICC profile, reassembled from its APP2 chunks.
    pub icc: Option<Vec<u8>>,
}

thread_local! {
    /// The first warning libjpeg gave while decoding on this thread, if any.
    static FIRST_WARNING: RefCell<Option<String>> = const { RefCell::new(None) };
}

const EXIF_PREFIX: &[u8] = b"Exif\0\0";
const ICC_PREFIX: &[u8] = b"ICC_PROFILE\0";

/// Runs libjpeg code, turning its error unwind (or any panic) into `Err(message)`.
fn guard<T>(f: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(result) => result,
        Err(payload) => Err(payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "libjpeg failed".to_string())),
    }
}

/// An error manager that unwinds on errors (as mozjpeg's own does) and records warnings.
fn error_mgr() -> ffi::jpeg_error_mgr {
    // SAFETY: jpeg_error_mgr is a plain C struct that jpeg_std_error fully initialises.
    let mut err: ffi::jpeg_error_mgr = unsafe { std::mem::zeroed() };
    unsafe { ffi::jpeg_std_error(&mut err) };
    err.error_exit = Some(error_exit);
    err.emit_message = Some(emit_message);
    err
}

/// libjpeg's text for the current message (`msg_code` and its parameters).
fn message(cinfo: &mut ffi::jpeg_common_struct) -> String {
    // SAFETY: libjpeg calls us with `err` pointing at the manager we installed.
    let (format, code) = match unsafe { cinfo.err.as_ref() } {
        Some(err) => (err.format_message, err.msg_code),
        None => return "libjpeg error".to_string(),
    };
    let Some(format) = format else { return format!("libjpeg error {code}") };
    let mut buffer = [0u8; 80];
    // The binding declares the output buffer `&[u8; 80]` although libjpeg writes into it; call
    // through a pointer type that says so (same ABI: one pointer argument).
    // SAFETY: format_message writes at most 80 bytes (JMSG_LENGTH_MAX) into the buffer.
    unsafe {
        let format: unsafe extern "C-unwind" fn(&mut ffi::jpeg_common_struct, *mut u8) = std::mem::transmute(format);
        format(cinfo, buffer.as_mut_ptr());
    }
    let end = buffer.iter().position(|&b| b == 0).unwrap_or(buffer.len());
    String::from_utf8_lossy(&buffer[..end]).into_owned()
}

extern "C-unwind" fn error_exit(cinfo: &mut ffi::jpeg_common_struct) {
    let msg = message(cinfo);
    // resume_unwind, not panic!: no panic hook noise for what is an ordinary bad file.
    std::panic::resume_unwind(Box::new(msg));
}

extern "C-unwind" fn emit_message(cinfo: &mut ffi::jpeg_common_struct, level: c_int) {
    // level -1 is a warning; 0 and up are trace messages, which we do not want.
    if level < 0 {
        let msg = message(cinfo);
        FIRST_WARNING.with(|w| {
            w.borrow_mut().get_or_insert(msg);
        });
    }
}

fn take_warning() -> Option<String> {
    FIRST_WARNING.with(|w| w.borrow_mut().take())
}

fn color_of(space: ColorSpace) -> JpegColor {
    match space {
        ColorSpace::JCS_GRAYSCALE => JpegColor::Gray,
        ColorSpace::JCS_CMYK | ColorSpace::JCS_YCCK => JpegColor::Cmyk,
        _ => JpegColor::Rgb,
    }
}

/// Reads the header (size, colour model, Exif, ICC) without decoding pixels.
pub(crate) fn read_header(data: &[u8]) -> Result<JpegHeader, String> {
    guard(|| {
        let dec = Decompress::builder()
            .with_err(error_mgr())
            .with_markers(&[Marker::APP(1), Marker::APP(2)])
            .from_mem(data)
            .map_err(|e| e.to_string())?;
        let mut exif = None;
        let mut icc_chunks: Vec<(u8, &[u8])> = Vec::new();
        for marker in dec.markers() {
            match marker.marker {
                Marker::APP(1) if exif.is_none() && marker.data.starts_with(EXIF_PREFIX) => {
                    exif = Some(marker.data[EXIF_PREFIX.len()..].to_vec());
                }
                Marker::APP(2) if marker.data.starts_with(ICC_PREFIX) && marker.data.len() > ICC_PREFIX.len() + 2 => {
                    let seq = marker.data[ICC_PREFIX.len()];
                    icc_chunks.push((seq, &marker.data[ICC_PREFIX.len() + 2..]));
                }
                _ => {}
            }
        }
        icc_chunks.sort_by_key(|(seq, _)| *seq);
        let icc = (!icc_chunks.is_empty()).then(|| icc_chunks.iter().flat_map(|(_, d)| d.iter().copied()).collect());
        let (width, height) = dec.size();
        Ok(JpegHeader {
            width: u32::try_from(width).map_err(|_| "width out of range")?,
            height: u32::try_from(height).map_err(|_| "height out of range")?,
            color: color_of(dec.color_space()),
            exif,
            icc,
        })
    })
}

/// Decodes at `1/denominator` scale (1, 2, 4 or 8), in the DCT domain: a 1/8 decode does an
/// eighth of the IDCT work and allocates a 64th of the memory. Orientation is not applied here.
///
/// With `strict`, a libjpeg warning (truncated file, corrupt data) is an error; otherwise the
/// image libjpeg made of it (grey where data is missing) is returned. A CMYK image is converted
/// to sRGB through `icc` when that is a CMYK profile, else naively.
pub(crate) fn decode(data: &[u8], denominator: u32, strict: bool, icc: Option<&[u8]>) -> Result<DynamicImage, String> {
    let numerator = match denominator {
        1 => 8,
        2 => 4,
        4 => 2,
        8 => 1,
        other => return Err(format!("unsupported JPEG scale 1/{other}")),
    };
    take_warning();
    let result = guard(|| {
        let mut dec = Decompress::builder().with_err(error_mgr()).from_mem(data).map_err(|e| e.to_string())?;
        dec.scale(numerator);
        let image = match dec.image().map_err(|e| e.to_string())? {
            mozjpeg::Format::RGB(mut started) => {
                let (w, h) = (started.width() as u32, started.height() as u32);
                let pixels: Vec<u8> = started.read_scanlines().map_err(|e| e.to_string())?;
                started.finish().map_err(|e| e.to_string())?;
                DynamicImage::ImageRgb8(RgbImage::from_raw(w, h, pixels).ok_or("short RGB buffer")?)
            }
            mozjpeg::Format::Gray(mut started) => {
                let (w, h) = (started.width() as u32, started.height() as u32);
                let pixels: Vec<u8> = started.read_scanlines().map_err(|e| e.to_string())?;
                started.finish().map_err(|e| e.to_string())?;
                DynamicImage::ImageLuma8(GrayImage::from_raw(w, h, pixels).ok_or("short grey buffer")?)
            }
            mozjpeg::Format::CMYK(mut started) => {
                let (w, h) = (started.width() as u32, started.height() as u32);
                let cmyk: Vec<u8> = started.read_scanlines().map_err(|e| e.to_string())?;
                started.finish().map_err(|e| e.to_string())?;
                let rgb = icc.and_then(|icc| crate::color::cmyk_to_srgb(&cmyk, icc)).unwrap_or_else(|| cmyk_to_rgb(&cmyk));
                DynamicImage::ImageRgb8(RgbImage::from_raw(w, h, rgb).ok_or("short CMYK buffer")?)
            }
        };
        Ok(image)
    });
    let warning = take_warning();
    let image = result?;
    match warning {
        Some(w) if strict => Err(w),
        _ => Ok(image),
    }
}

/// Naive CMYK to RGB. JPEG CMYK is almost always Adobe's inverted form (255 = no ink), for
/// which the product below is the usual conversion. Without a colour-managed CMYK profile this
/// is approximate, as in every viewer that lacks one.
fn cmyk_to_rgb(cmyk: &[u8]) -> Vec<u8> {
    let mut rgb = Vec::with_capacity(cmyk.len() / 4 * 3);
    for px in cmyk.chunks_exact(4) {
        let k = u32::from(px[3]);
        for &c in &px[..3] {
            rgb.push(((u32::from(c) * k + 127) / 255) as u8);
        }
    }
    rgb
}

/// How hard the JPEG encoder works for size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum JpegEffort {
    /// libjpeg-turbo's settings with optimised Huffman tables, baseline: what sharp writes.
    #[default]
    Fast,
    /// Progressive with optimised Huffman tables; no trellis quantisation.
    Progressive,
    /// mozjpeg's defaults: progressive, trellis quantisation, optimised scans. Smallest files,
    /// several times slower.
    Smallest,
}

/// Encodes 8-bit RGB or grey pixels. `icc` is embedded when given (APP2 chunks).
pub(crate) fn encode(image: &DynamicImage, quality: u8, effort: JpegEffort, icc: Option<&[u8]>) -> Result<Vec<u8>, String> {
    let (space, pixels, width, height): (ColorSpace, &[u8], u32, u32) = match image {
        DynamicImage::ImageRgb8(img) => (ColorSpace::JCS_RGB, img.as_raw(), img.width(), img.height()),
        DynamicImage::ImageLuma8(img) => (ColorSpace::JCS_GRAYSCALE, img.as_raw(), img.width(), img.height()),
        _ => return Err("the JPEG encoder takes 8-bit RGB or grey pixels".to_string()),
    };
    if width == 0 || height == 0 || width > 65_500 || height > 65_500 {
        return Err(format!("{width}x{height} is outside JPEG's 1..65500 pixel range"));
    }
    guard(|| {
        let mut comp = Compress::new_err(Box::new(error_mgr()), space);
        if effort != JpegEffort::Smallest {
            // Resets to libjpeg-turbo behaviour: no trellis, no scan optimisation.
            comp.set_fastest_defaults();
        }
        comp.set_size(width as usize, height as usize);
        comp.set_quality(f32::from(quality.clamp(1, 100)));
        comp.set_optimize_coding(true);
        if effort == JpegEffort::Progressive {
            comp.set_progressive_mode();
        }
        let capacity = (width as usize * height as usize / 4).clamp(4096, 1 << 24);
        let mut started = comp.start_compress(Vec::with_capacity(capacity)).map_err(|e| e.to_string())?;
        if let Some(icc) = icc {
            started.write_icc_profile(icc);
        }
        started.write_scanlines(pixels).map_err(|e| e.to_string())?;
        started.finish().map_err(|e| e.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gradient(w: u32, h: u32) -> DynamicImage {
        DynamicImage::ImageRgb8(RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 255 / w) as u8, (y * 255 / h) as u8, 128])))
    }

    #[test]
    fn round_trip_and_header() {
        let jpeg = encode(&gradient(64, 48), 90, JpegEffort::Fast, None).unwrap();
        let header = read_header(&jpeg).unwrap();
        assert_eq!((header.width, header.height, header.color), (64, 48, JpegColor::Rgb));
        assert!(header.exif.is_none() && header.icc.is_none());
        let image = decode(&jpeg, 1, true, None).unwrap();
        assert_eq!((image.width(), image.height()), (64, 48));
    }

    #[test]
    fn shrink_on_load_scales_in_the_dct_domain() {
        let jpeg = encode(&gradient(100, 60), 90, JpegEffort::Fast, None).unwrap();
        for (d, (w, h)) in [(2, (50, 30)), (4, (25, 15)), (8, (13, 8))] {
            let image = decode(&jpeg, d, true, None).unwrap();
            assert_eq!((image.width(), image.height()), (w, h), "1/{d}");
            // libjpeg rounds a scaled size up.
            assert_eq!((100u32.div_ceil(d), 60u32.div_ceil(d)), (w, h));
        }
        assert!(decode(&jpeg, 3, true, None).is_err());
    }

    #[test]
    fn every_effort_decodes_and_smaller_effort_is_not_larger() {
        // Texture, as in a photo: on a tiny smooth gradient progressive scan headers dominate.
        let img = DynamicImage::ImageRgb8(RgbImage::from_fn(192, 160, |x, y| {
            let n = (x.wrapping_mul(7919) ^ y.wrapping_mul(104_729)).wrapping_mul(2_654_435_761) >> 27;
            image::Rgb([(x + n) as u8, (y * 2 + n) as u8, ((x ^ y) + n) as u8])
        }));
        let fast = encode(&img, 80, JpegEffort::Fast, None).unwrap();
        let progressive = encode(&img, 80, JpegEffort::Progressive, None).unwrap();
        let smallest = encode(&img, 80, JpegEffort::Smallest, None).unwrap();
        for bytes in [&fast, &progressive, &smallest] {
            assert_eq!(decode(bytes, 1, true, None).unwrap().width(), 192);
        }
        assert!(smallest.len() <= fast.len(), "trellis {} vs baseline {}", smallest.len(), fast.len());
    }

    #[test]
    fn icc_profile_round_trips_through_app2() {
        let icc: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect(); // spans two chunks
        let jpeg = encode(&gradient(16, 16), 80, JpegEffort::Fast, Some(&icc)).unwrap();
        assert_eq!(read_header(&jpeg).unwrap().icc.as_deref(), Some(&icc[..]));
    }

    #[test]
    fn truncation_is_a_warning_that_strict_refuses() {
        let jpeg = encode(&gradient(64, 64), 90, JpegEffort::Fast, None).unwrap();
        let cut = &jpeg[..jpeg.len() * 2 / 3];
        let err = decode(cut, 1, true, None).unwrap_err();
        assert!(err.contains("Premature end"), "{err}");
        assert!(decode(cut, 1, false, None).is_ok(), "lenient decoding fills the rest with grey");
        // The warning does not leak into the next decode on this thread.
        assert!(decode(&jpeg, 1, true, None).is_ok());
    }

    #[test]
    fn garbage_is_an_error_not_a_crash() {
        for bad in [&b""[..], b"\xFF\xD8\xFF", b"\xFF\xD8\xFF\xE0\x00\x10JFIF\0garbage-garbage", b"not a jpeg at all"] {
            assert!(read_header(bad).is_err());
            assert!(decode(bad, 1, true, None).is_err());
        }
    }

    #[test]
    fn cmyk_inverted_converts() {
        assert_eq!(cmyk_to_rgb(&[255, 255, 255, 255, 0, 255, 255, 255]), vec![255, 255, 255, 0, 255, 255]);
    }
}
