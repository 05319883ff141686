//! Image formats: recognised from the bytes (never from the file name), with the names and
//! extensions the steps speak.

use std::fmt;

/// A container format recognised by its magic bytes. Only some are decoded
/// ([`Format::is_decodable`]); the others are named so a rejection can say what the file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Format {
    Jpeg,
    Png,
    Webp,
    Gif,
    Bmp,
    Tiff,
    Avif,
    Heic,
    Jxl,
}

impl Format {
    /// Every format, for messages and parsing.
    pub const ALL: [Format; 9] =
        [Format::Jpeg, Format::Png, Format::Webp, Format::Gif, Format::Bmp, Format::Tiff, Format::Avif, Format::Heic, Format::Jxl];

    /// Recognises the format from the first bytes of a file. `None`: not an image we know.
    pub fn sniff(data: &[u8]) -> Option<Format> {
        let starts = |magic: &[u8]| data.starts_with(magic);
        if starts(&[0xFF, 0xD8, 0xFF]) {
            Some(Format::Jpeg)
        } else if starts(b"\x89PNG\r\n\x1a\n") {
            Some(Format::Png)
        } else if starts(b"GIF87a") || starts(b"GIF89a") {
            Some(Format::Gif)
        } else if data.len() >= 12 && &data[..4] == b"RIFF" && &data[8..12] == b"WEBP" {
            Some(Format::Webp)
        } else if starts(b"II*\0") || starts(b"MM\0*") || starts(b"II+\0") || starts(b"MM\0+") {
            // Classic TIFF, or BigTIFF (64-bit offsets).
            Some(Format::Tiff)
        } else if starts(&[0xFF, 0x0A]) || starts(b"\0\0\0\x0cJXL \r\n\x87\n") {
            Some(Format::Jxl)
        } else if data.len() >= 12 && &data[4..8] == b"ftyp" {
            iso_brand(data)
        } else if starts(b"BM") && data.len() >= 26 && bmp_header_plausible(data) {
            Some(Format::Bmp)
        } else {
            None
        }
    }

    /// Whether this build decodes the format.
    pub fn is_decodable(self) -> bool {
        matches!(self, Format::Jpeg | Format::Png | Format::Webp | Format::Gif | Format::Bmp | Format::Tiff)
    }

    /// The name used in step inputs and outputs (`"jpeg"`, `"png"`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Format::Jpeg => "jpeg",
            Format::Png => "png",
            Format::Webp => "webp",
            Format::Gif => "gif",
            Format::Bmp => "bmp",
            Format::Tiff => "tiff",
            Format::Avif => "avif",
            Format::Heic => "heic",
            Format::Jxl => "jxl",
        }
    }

    /// The usual file extension, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Jpeg => "jpg",
            Format::Tiff => "tif",
            other => other.name(),
        }
    }

    /// Parses a format name as written in a step input (`"jpg"` is accepted for JPEG).
    pub fn parse(name: &str) -> Option<Format> {
        let lower = name.to_ascii_lowercase();
        match lower.as_str() {
            "jpg" | "jpeg" => Some(Format::Jpeg),
            "tif" | "tiff" => Some(Format::Tiff),
            "heif" => Some(Format::Heic),
            _ => Format::ALL.into_iter().find(|f| f.name() == lower),
        }
    }

    /// The format a file extension claims, for the extension check. Unknown extensions (`.tmp`,
    /// `.bin`) claim nothing.
    pub fn from_extension(ext: &str) -> Option<Format> {
        let lower = ext.to_ascii_lowercase();
        match lower.as_str() {
            "jpg" | "jpeg" | "jpe" | "jfif" | "pjpeg" | "pjp" => Some(Format::Jpeg),
            "png" | "apng" => Some(Format::Png),
            "webp" => Some(Format::Webp),
            "gif" => Some(Format::Gif),
            "bmp" | "dib" => Some(Format::Bmp),
            "tif" | "tiff" => Some(Format::Tiff),
            "avif" => Some(Format::Avif),
            "heic" | "heif" | "hif" => Some(Format::Heic),
            "jxl" => Some(Format::Jxl),
            _ => None,
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The image format of an ISO base media file, from its `ftyp` box: the major brand, then the
/// compatible brands (an AVIF may have the generic HEIF brand `mif1` as its major brand and
/// `avif` among the compatible ones). Generic HEIF alone counts as HEIC; a video is `None`.
fn iso_brand(data: &[u8]) -> Option<Format> {
    let size = u32::from_be_bytes([data[0], data[1], data[2], data[3]]) as usize;
    let end = size.clamp(12, 256).min(data.len());
    // major brand (8..12), minor version (12..16), compatible brands (16..end)
    let brands: Vec<&[u8]> = std::iter::once(&data[8..12]).chain(data.get(16..end).unwrap_or(&[]).chunks_exact(4)).collect();
    let any = |names: &[&[u8; 4]]| brands.iter().any(|b| names.iter().any(|n| *b == &n[..]));
    if any(&[b"avif", b"avis"]) {
        Some(Format::Avif)
    } else if any(&[b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"]) {
        Some(Format::Heic)
    } else {
        None
    }
}

/// "BM" alone is too weak a magic (a text file may start with it): also require a plausible
/// DIB header size.
fn bmp_header_plausible(data: &[u8]) -> bool {
    let dib = u32::from_le_bytes([data[14], data[15], data[16], data[17]]);
    matches!(dib, 12 | 40 | 52 | 56 | 64 | 108 | 124)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_by_content() {
        assert_eq!(Format::sniff(&[0xFF, 0xD8, 0xFF, 0xE0, 0, 0]), Some(Format::Jpeg));
        assert_eq!(Format::sniff(b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR"), Some(Format::Png));
        assert_eq!(Format::sniff(b"GIF89a\x01\0\x01\0"), Some(Format::Gif));
        assert_eq!(Format::sniff(b"RIFF\x10\0\0\0WEBPVP8L"), Some(Format::Webp));
        assert_eq!(Format::sniff(b"II*\0\x08\0\0\0"), Some(Format::Tiff));
        assert_eq!(Format::sniff(b"\0\0\0\x1cftypavif\0\0\0\0"), Some(Format::Avif));
        assert_eq!(Format::sniff(b"\0\0\0\x18ftypheic\0\0\0\0"), Some(Format::Heic));
        assert_eq!(Format::sniff(b"\0\0\0\x18ftypisom\0\0\0\0"), None, "an MP4 is not an image");
        assert_eq!(Format::sniff(b"\0\0\0\x18ftypmif1\0\0\0\0mif1avif"), Some(Format::Avif), "AVIF under the generic brand");
        assert_eq!(Format::sniff(b"\0\0\0\x14ftypmif1\0\0\0\0heic"), Some(Format::Heic));
        assert_eq!(Format::sniff(b"\0\0\0\x14ftypisom\0\0\0\0avc1"), None);
        assert_eq!(Format::sniff(b"MM\0+\0\x08\0\0"), Some(Format::Tiff), "BigTIFF");
        assert_eq!(Format::sniff(b"BMW is a car, not a bitmap at all"), None);
        assert_eq!(Format::sniff(b""), None);
        assert_eq!(Format::sniff(b"hello"), None);
    }

    #[test]
    fn names_and_extensions() {
        assert_eq!(Format::parse("JPG"), Some(Format::Jpeg));
        assert_eq!(Format::parse("webp"), Some(Format::Webp));
        assert_eq!(Format::parse("svg"), None);
        assert_eq!(Format::from_extension("JPEG"), Some(Format::Jpeg));
        assert_eq!(Format::from_extension("tmp"), None);
        assert_eq!(Format::Jpeg.extension(), "jpg");
        for f in Format::ALL {
            assert_eq!(Format::parse(f.name()), Some(f));
            assert_eq!(Format::from_extension(f.extension()), Some(f));
        }
    }
}
