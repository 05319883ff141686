//! `validate`: is this file an image we can process? Checks in order of cost (file size, the
//! format sniffed from the bytes, the header's pixel count, the container's end marker, then
//! optionally a full decode) and answers with what it learned. A bad image is an answer
//! (`isValid: false` and a reason), not an error, so a workflow's Choice can route it.

use std::path::Path;

use crate::decode::{self, ColorKind, DecodeOptions, DEFAULT_MAX_PIXELS};
use crate::error::{Error, Result};
use crate::format::Format;
use crate::util;

/// What to check.
#[derive(Debug, Clone)]
pub struct ValidateOptions {
    /// Decode every pixel, to catch truncated or corrupt data the header cannot show.
    pub decode: bool,
    /// The most pixels (width x height, from the header) an image may have.
    pub max_pixels: u64,
    /// The largest file accepted, in bytes.
    pub max_bytes: Option<u64>,
    /// The formats accepted; `None` accepts every format this build decodes.
    pub formats: Option<Vec<Format>>,
    /// Refuse a file whose extension names another image format than its content (a JPEG
    /// called `.png`). Extensions that name no image format (`.tmp`) are not judged.
    pub check_extension: bool,
}

impl Default for ValidateOptions {
    fn default() -> Self {
        ValidateOptions { decode: false, max_pixels: DEFAULT_MAX_PIXELS, max_bytes: None, formats: None, check_extension: true }
    }
}

/// The answer: `isValid`, a `reason` when it is not, and what could be learned either way.
/// Serialises to the step's camelCase output.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Validation {
    pub is_valid: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub format: Option<Format>,
    /// Size as stored (before orientation), like sharp's `metadata()`.
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub color_type: Option<ColorKind>,
    pub bit_depth: Option<u8>,
    pub has_alpha: Option<bool>,
    /// EXIF orientation, 1 to 8.
    pub orientation: Option<u8>,
    pub has_icc: Option<bool>,
    pub bytes: u64,
    /// blake3 of the whole file, lowercase hex.
    pub hash: String,
}

impl Validation {
    fn new(bytes: u64, hash: String) -> Validation {
        Validation {
            is_valid: false,
            reason: None,
            format: None,
            width: None,
            height: None,
            color_type: None,
            bit_depth: None,
            has_alpha: None,
            orientation: None,
            has_icc: None,
            bytes,
            hash,
        }
    }

    fn invalid(mut self, reason: impl Into<String>) -> Validation {
        self.is_valid = false;
        self.reason = Some(reason.into());
        self
    }
}

/// Validates an image in memory. `file_name`, when given, is used for the extension check.
pub fn validate_bytes(data: &[u8], file_name: Option<&str>, options: &ValidateOptions) -> Validation {
    let v = Validation::new(data.len() as u64, util::hash_hex(data));
    if let Some(max) = options.max_bytes {
        if v.bytes > max {
            let bytes = v.bytes;
            return v.invalid(format!("the file is {bytes} bytes, more than maxBytes ({max})"));
        }
    }
    check(data, file_name, options, v)
}

fn check(data: &[u8], file_name: Option<&str>, options: &ValidateOptions, mut v: Validation) -> Validation {
    if data.is_empty() {
        return v.invalid("empty file (0 bytes)");
    }
    let Some(format) = Format::sniff(data) else {
        return v.invalid("not an image: the content matches no known image format");
    };
    v.format = Some(format);
    if !format.is_decodable() {
        return v.invalid(format!("unsupported format: {format}"));
    }
    if let Some(allowed) = &options.formats {
        if !allowed.contains(&format) {
            let list: Vec<&str> = allowed.iter().map(|f| f.name()).collect();
            return v.invalid(format!("format {format} is not allowed (allowed: {})", list.join(", ")));
        }
    }
    if options.check_extension {
        let ext = file_name.and_then(|n| Path::new(n).extension()).and_then(|e| e.to_str());
        if let Some((ext, claimed)) = ext.and_then(|e| Format::from_extension(e).map(|f| (e, f))) {
            if claimed != format {
                return v.invalid(format!("the extension .{ext} says {claimed} but the content is {format}"));
            }
        }
    }
    let info = match decode::probe(data, options.max_pixels) {
        Ok(info) => info,
        Err(Error::TooManyPixels { width, height, limit }) => {
            v.width = Some(width);
            v.height = Some(height);
            let pixels = u64::from(width) * u64::from(height);
            return v.invalid(format!("too many pixels: {width}x{height} is {pixels} pixels, more than maxPixels ({limit})"));
        }
        Err(Error::Decode(msg)) => {
            // A header cut short reads as a corrupt one; say what really happened.
            let truncated = msg.starts_with("corrupt").then(|| decode::truncation(format, data)).flatten();
            return v.invalid(truncated.unwrap_or(msg));
        }
        Err(e) => return v.invalid(e.to_string()),
    };
    v.width = Some(info.width);
    v.height = Some(info.height);
    v.color_type = Some(info.color);
    v.bit_depth = Some(info.bit_depth);
    v.has_alpha = Some(info.has_alpha);
    v.orientation = Some(info.orientation);
    v.has_icc = Some(info.icc_profile.is_some());
    if let Some(reason) = decode::truncation(format, data) {
        return v.invalid(reason);
    }
    if options.decode {
        // Orientation is irrelevant to whether the data decodes: skip the rotation.
        let decode_options = DecodeOptions { jpeg_shrink: 1, strict: true, apply_orientation: false };
        if let Err(e) = decode::decode(data, &info, &decode_options) {
            return v.invalid(match e {
                Error::Decode(msg) => msg,
                other => other.to_string(),
            });
        }
    }
    v.is_valid = true;
    v
}

/// Validates a file. A file larger than `max_bytes` (or than the
/// [`util::DEFAULT_MAX_FILE_BYTES`] this build reads into memory) is answered without reading it
/// into memory: it is hashed as a stream. A missing or unreadable file is an error, not an answer.
pub fn validate_path(path: &Path, options: &ValidateOptions) -> Result<Validation> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if meta.is_dir() {
        return Err(Error::Io { path: path.to_path_buf(), source: std::io::Error::other("is a directory, not a file") });
    }
    let name = path.file_name().and_then(|n| n.to_str());
    let too_large = match options.max_bytes {
        Some(max) if meta.len() > max => Some(format!("the file is {} bytes, more than maxBytes ({max})", meta.len())),
        _ if meta.len() > util::DEFAULT_MAX_FILE_BYTES => {
            Some(format!("the file is {} bytes, more than the {} this build reads", meta.len(), util::DEFAULT_MAX_FILE_BYTES))
        }
        _ => None,
    };
    if let Some(reason) = too_large {
        let mut hasher = blake3::Hasher::new();
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        hasher.update_reader(file).map_err(|e| Error::io(path, e))?;
        return Ok(Validation::new(meta.len(), hasher.finalize().to_hex().to_string()).invalid(reason));
    }
    let data = util::read_file(path, util::DEFAULT_MAX_FILE_BYTES)?;
    Ok(validate_bytes(&data, name, options))
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{DynamicImage, RgbaImage};

    fn png(w: u32, h: u32) -> Vec<u8> {
        let img = DynamicImage::ImageRgba8(RgbaImage::from_fn(w, h, |x, y| image::Rgba([x as u8, y as u8, 0, 200])));
        let mut out = Vec::new();
        img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png).unwrap();
        out
    }

    fn opts() -> ValidateOptions {
        ValidateOptions { decode: true, ..ValidateOptions::default() }
    }

    #[test]
    fn a_good_png_is_described() {
        let data = png(7, 5);
        let v = validate_bytes(&data, Some("a.png"), &opts());
        assert!(v.is_valid, "{v:?}");
        assert_eq!((v.format, v.width, v.height), (Some(Format::Png), Some(7), Some(5)));
        assert_eq!((v.color_type, v.bit_depth, v.has_alpha, v.orientation, v.has_icc), (Some(ColorKind::Rgba), Some(8), Some(true), Some(1), Some(false)));
        assert_eq!(v.hash, blake3::hash(&data).to_hex().to_string());
        let json = serde_json::to_value(&v).unwrap();
        assert_eq!(json["isValid"], true);
        assert!(json.get("reason").is_none());
        assert_eq!(json["colorType"], "rgba");
    }

    #[test]
    fn limits_and_allow_lists_give_reasons() {
        let data = png(10, 10);
        let reason = |o: &ValidateOptions, name: Option<&str>| validate_bytes(&data, name, o).reason.unwrap_or_default();
        assert!(reason(&ValidateOptions { max_pixels: 99, ..opts() }, None).starts_with("too many pixels: 10x10"));
        assert!(reason(&ValidateOptions { max_bytes: Some(10), ..opts() }, None).contains("more than maxBytes (10)"));
        assert_eq!(reason(&ValidateOptions { formats: Some(vec![Format::Jpeg]), ..opts() }, None), "format png is not allowed (allowed: jpeg)");
        assert_eq!(reason(&opts(), Some("x.jpg")), "the extension .jpg says jpeg but the content is png");
        assert_eq!(reason(&ValidateOptions { check_extension: false, ..opts() }, Some("x.jpg")), "");
        assert_eq!(reason(&opts(), Some("upload.tmp")), "", "an extension naming no format is not judged");
    }

    #[test]
    fn truncated_png_is_caught_with_and_without_decoding() {
        let data = png(64, 64);
        let cut = &data[..data.len() - 20];
        for decode in [false, true] {
            let v = validate_bytes(cut, None, &ValidateOptions { decode, ..opts() });
            assert!(!v.is_valid);
            assert!(v.reason.as_deref().unwrap().starts_with("truncated"), "{v:?}");
            assert_eq!(v.width, Some(64), "the header is still described");
        }
    }

    #[test]
    fn path_errors_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(validate_path(&dir.path().join("nope.jpg"), &opts()), Err(Error::InputNotFound { .. })));
        assert!(matches!(validate_path(dir.path(), &opts()), Err(Error::Io { .. })));
        let big = dir.path().join("big.png");
        std::fs::write(&big, png(8, 8)).unwrap();
        let v = validate_path(&big, &ValidateOptions { max_bytes: Some(5), ..opts() }).unwrap();
        assert!(!v.is_valid && v.hash.len() == 64, "{v:?}");
    }
}
