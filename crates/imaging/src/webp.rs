//! Lossy WebP through libwebp (`libwebp-sys`, built from its bundled C source): the only unsafe
//! code of the encoders, kept to one function whose buffers are checked before libwebp sees
//! them and freed on every path. Plus [`with_icc`], which adds an ICC profile to a WebP file
//! (libwebp's simple encoder writes none) by rewriting its RIFF chunks.

use std::ffi::c_void;
use std::mem::MaybeUninit;

use image::DynamicImage;
use libwebp_sys as sys;

/// Encodes 8-bit RGB or RGBA pixels as lossy WebP at `quality` (1 to 100) with libwebp's
/// `method` (0 fastest to 6 smallest). Alpha is kept, losslessly compressed (alpha quality
/// 100, as sharp's default).
pub(crate) fn encode_lossy(pixels: &DynamicImage, quality: u8, method: i32) -> Result<Vec<u8>, String> {
    let (raw, bytes_per_pixel, alpha) = match pixels {
        DynamicImage::ImageRgb8(buf) => (buf.as_raw(), 3usize, false),
        DynamicImage::ImageRgba8(buf) => (buf.as_raw(), 4, true),
        _ => return Err("libwebp takes 8-bit RGB or RGBA".to_string()),
    };
    let (width, height) = (pixels.width(), pixels.height());
    let stride = usize::try_from(width).ok().and_then(|w| w.checked_mul(bytes_per_pixel)).ok_or("too wide")?;
    if width == 0 || height == 0 || raw.len() < stride * height as usize {
        return Err(format!("{width}x{height}: no pixels, or a short buffer"));
    }
    let (w, h, stride) = (
        i32::try_from(width).map_err(|e| e.to_string())?,
        i32::try_from(height).map_err(|e| e.to_string())?,
        i32::try_from(stride).map_err(|e| e.to_string())?,
    );

    let mut config = sys::WebPConfig::new().map_err(|()| "libwebp: incompatible encoder version".to_string())?;
    config.quality = f32::from(quality.min(100));
    config.method = method.clamp(0, 6);
    config.alpha_quality = 100;
    // SAFETY: `config` was initialised by libwebp above.
    if unsafe { sys::WebPValidateConfig(&config) } == 0 {
        return Err("libwebp refused the configuration".to_string());
    }

    /// Frees what libwebp allocated, on every path out.
    struct Owned {
        picture: sys::WebPPicture,
        writer: sys::WebPMemoryWriter,
    }
    impl Drop for Owned {
        fn drop(&mut self) {
            // SAFETY: both were initialised by libwebp's init functions; freeing an empty
            // picture or writer is allowed.
            unsafe {
                sys::WebPPictureFree(&mut self.picture);
                sys::WebPMemoryWriterClear(&mut self.writer);
            }
        }
    }
    let picture = sys::WebPPicture::new().map_err(|()| "libwebp: incompatible picture version".to_string())?;
    let mut writer = MaybeUninit::<sys::WebPMemoryWriter>::uninit();
    // SAFETY: WebPMemoryWriterInit fully initialises the writer.
    let writer = unsafe {
        sys::WebPMemoryWriterInit(writer.as_mut_ptr());
        writer.assume_init()
    };
    let mut owned = Box::new(Owned { picture, writer });
    owned.picture.width = w;
    owned.picture.height = h;
    // SAFETY: `raw` holds at least `stride * height` bytes (checked above); libwebp copies them
    // into the picture's own buffers.
    let imported = unsafe {
        if alpha {
            sys::WebPPictureImportRGBA(&mut owned.picture, raw.as_ptr(), stride)
        } else {
            sys::WebPPictureImportRGB(&mut owned.picture, raw.as_ptr(), stride)
        }
    };
    if imported == 0 {
        return Err("libwebp could not import the pixels (out of memory?)".to_string());
    }
    owned.picture.writer = Some(sys::WebPMemoryWrite);
    // The writer lives in the same boxed struct, so its address is stable during the encode.
    owned.picture.custom_ptr = (&mut owned.writer as *mut sys::WebPMemoryWriter).cast::<c_void>();
    // SAFETY: config and picture are initialised; the picture's writer appends to `writer`.
    let ok = unsafe { sys::WebPEncode(&config, &mut owned.picture) };
    if ok == 0 {
        return Err(format!("libwebp failed: {:?}", owned.picture.error_code));
    }
    if owned.writer.mem.is_null() || owned.writer.size == 0 {
        return Err("libwebp wrote nothing".to_string());
    }
    // SAFETY: libwebp wrote `size` bytes at `mem`, which stays allocated until `owned` drops.
    Ok(unsafe { std::slice::from_raw_parts(owned.writer.mem, owned.writer.size) }.to_vec())
}

/// Adds `icc` to a WebP file: its flag in the `VP8X` header (made when the file is a simple
/// one, `VP8 ` or `VP8L` alone) and an `ICCP` chunk right after it, as the container spec
/// orders them.
pub(crate) fn with_icc(webp: &[u8], icc: &[u8]) -> Result<Vec<u8>, String> {
    let bad = || "not a WebP file this can rewrite".to_string();
    if webp.len() < 20 || &webp[..4] != b"RIFF" || &webp[8..12] != b"WEBP" {
        return Err(bad());
    }
    let chunks = chunks(&webp[12..]).ok_or_else(bad)?;
    let mut body: Vec<u8> = b"WEBP".to_vec();
    let first = chunks.first().ok_or_else(bad)?;
    let mut rest = &chunks[..];
    if first.0 == *b"VP8X" {
        let mut header = first.1.to_vec();
        *header.first_mut().ok_or_else(bad)? |= 0x20;
        push_chunk(&mut body, b"VP8X", &header);
        rest = &chunks[1..];
    } else {
        let (w, h) = simple_size(first.0, first.1).ok_or_else(bad)?;
        let mut header = vec![0x20, 0, 0, 0];
        header.extend_from_slice(&(w - 1).to_le_bytes()[..3]);
        header.extend_from_slice(&(h - 1).to_le_bytes()[..3]);
        push_chunk(&mut body, b"VP8X", &header);
    }
    push_chunk(&mut body, b"ICCP", icc);
    for (kind, data) in rest.iter().filter(|(kind, _)| kind != b"ICCP") {
        push_chunk(&mut body, kind, data);
    }
    riff(body).ok_or_else(|| "the profile makes the file larger than RIFF allows".to_string())
}

/// A RIFF file around `body` (which starts with its form type, `WEBP`).
pub(crate) fn riff(body: Vec<u8>) -> Option<Vec<u8>> {
    let size = u32::try_from(body.len()).ok()?;
    let mut out = b"RIFF".to_vec();
    out.extend_from_slice(&size.to_le_bytes());
    out.extend_from_slice(&body);
    Some(out)
}

/// The file without its `EXIF` and `XMP ` chunks (and their flags in `VP8X`), everything else
/// as it was; `None` when it cannot be walked.
pub(crate) fn strip_metadata(webp: &[u8]) -> Option<Vec<u8>> {
    if webp.len() < 12 || &webp[..4] != b"RIFF" || &webp[8..12] != b"WEBP" {
        return None;
    }
    let mut body = b"WEBP".to_vec();
    for (kind, data) in chunks(&webp[12..])? {
        match &kind {
            b"EXIF" | b"XMP " => {}
            b"VP8X" => {
                let mut header = data.to_vec();
                *header.first_mut()? &= !(0x08 | 0x04);
                push_chunk(&mut body, &kind, &header);
            }
            _ => push_chunk(&mut body, &kind, data),
        }
    }
    riff(body)
}

/// The chunks of a RIFF body (after `WEBP`), or `None` when one runs past the end.
pub(crate) fn chunks(mut data: &[u8]) -> Option<Vec<([u8; 4], &[u8])>> {
    let mut out = Vec::new();
    while data.len() >= 8 {
        let kind: [u8; 4] = data[..4].try_into().ok()?;
        let len = u32::from_le_bytes(data[4..8].try_into().ok()?) as usize;
        let payload = data.get(8..8 + len)?;
        out.push((kind, payload));
        data = data.get(8 + len + (len & 1)..).unwrap_or(&[]);
    }
    Some(out)
}

pub(crate) fn push_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(kind);
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(data);
    if data.len() % 2 == 1 {
        out.push(0);
    }
}

/// Width and height of a simple-format bitstream (`VP8 ` key frame or `VP8L`).
fn simple_size(kind: [u8; 4], data: &[u8]) -> Option<(u32, u32)> {
    match &kind {
        b"VP8 " if data.len() >= 10 && data[3..6] == [0x9d, 0x01, 0x2a] => {
            let w = u32::from(u16::from_le_bytes([data[6], data[7]]) & 0x3fff);
            let h = u32::from(u16::from_le_bytes([data[8], data[9]]) & 0x3fff);
            Some((w, h))
        }
        b"VP8L" if data.len() >= 5 && data[0] == 0x2f => {
            let bits = u32::from_le_bytes([data[1], data[2], data[3], data[4]]);
            Some(((bits & 0x3fff) + 1, ((bits >> 14) & 0x3fff) + 1))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{ImageDecoder, RgbImage, RgbaImage};

    fn icc_of(webp: &[u8]) -> Option<Vec<u8>> {
        image::codecs::webp::WebPDecoder::new(std::io::Cursor::new(webp)).unwrap().icc_profile().unwrap()
    }

    #[test]
    fn a_profile_is_added_to_simple_and_extended_files() {
        let icc: Vec<u8> = (0..301u32).map(|i| (i % 251) as u8).collect(); // odd length: padded
        let opaque = DynamicImage::ImageRgb8(RgbImage::from_pixel(20, 10, image::Rgb([10, 200, 30])));
        let translucent = DynamicImage::ImageRgba8(RgbaImage::from_pixel(7, 9, image::Rgba([10, 200, 30, 100])));
        for img in [opaque, translucent] {
            let plain = encode_lossy(&img, 80, 4).unwrap();
            assert_eq!(icc_of(&plain), None);
            let tagged = with_icc(&plain, &icc).unwrap();
            assert_eq!(icc_of(&tagged).as_deref(), Some(&icc[..]));
            let back = image::load_from_memory(&tagged).unwrap();
            assert_eq!((back.width(), back.height(), back.color().has_alpha()), (img.width(), img.height(), img.color().has_alpha()));
        }
        assert!(with_icc(b"RIFF\0\0\0\0WEBPjunk", &icc).is_err());
    }

    #[test]
    fn stripping_drops_exif_and_xmp_only() {
        let img = DynamicImage::ImageRgb8(RgbImage::from_pixel(8, 8, image::Rgb([1, 2, 3])));
        let tagged = with_icc(&encode_lossy(&img, 80, 4).unwrap(), b"icc!").unwrap();
        let mut body = tagged[8..].to_vec();
        body[12] |= 0x08 | 0x04; // VP8X flags: Exif and XMP present
        push_chunk(&mut body, b"EXIF", b"MM\0\x2a\0\0\0\x08\0\0");
        push_chunk(&mut body, b"XMP ", b"<x:xmpmeta/>");
        let with_meta = riff(body).unwrap();
        let stripped = strip_metadata(&with_meta).unwrap();
        assert_eq!(stripped, tagged, "back to the file without them, profile kept");
        assert_eq!(strip_metadata(b"RIFF\0\0\0\0WEBPVP8 \xff\0\0\0"), None);
    }

    #[test]
    fn only_8_bit_rgb_is_taken() {
        let grey = DynamicImage::ImageLuma8(image::GrayImage::new(4, 4));
        assert!(encode_lossy(&grey, 80, 4).is_err());
    }
}
