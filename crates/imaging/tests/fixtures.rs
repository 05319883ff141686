//! The image fixtures of the CLI integration tests (`tests/data/` at the repository root) are
//! generated here, so they can be remade and explained:
//!
//! ```sh
//! PIXELFLOW_WRITE_FIXTURES=1 cargo test -p pixelflow-imaging --test fixtures
//! ```
//!
//! Without the variable the test checks that each committed fixture is still what it says.

use std::path::PathBuf;

use image::{DynamicImage, Rgb, RgbImage, Rgba, RgbaImage};
use pixelflow_imaging::encode::{self, EncodeOptions};
use pixelflow_imaging::{probe, Format, OutputFormat};

struct Fixture {
    name: &'static str,
    make: fn() -> Vec<u8>,
    /// Format, stored width and height, EXIF orientation.
    expect: (Format, u32, u32, u8),
}

fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/data")
}

fn jpeg(img: &DynamicImage, quality: u8) -> Vec<u8> {
    let mut o = EncodeOptions::new(OutputFormat::Jpeg);
    o.quality = quality;
    encode::encode(img, &o).unwrap()
}

/// 1600x1200 smooth gradient: large enough for JPEG shrink-on-load to 800x600, small on disk.
fn large() -> Vec<u8> {
    let img = RgbImage::from_fn(1600, 1200, |x, y| Rgb([(x / 7) as u8, (y / 5) as u8, ((x + y) / 11) as u8]));
    jpeg(&DynamicImage::ImageRgb8(img), 50)
}

/// 240x160 as stored, EXIF orientation 6 (turn 90 degrees clockwise to view): upright it is
/// 160x240, with the red band at the top.
fn rotated() -> Vec<u8> {
    // Upright: red top third. Stored: the upright image turned 90 degrees counter-clockwise,
    // so the red band is on the left.
    let stored = RgbImage::from_fn(240, 160, |x, _| if x < 80 { Rgb([220, 20, 20]) } else { Rgb([20, 20, 220]) });
    let mut bytes = jpeg(&DynamicImage::ImageRgb8(stored), 85);
    let mut tiff = b"MM\0\x2a\0\0\0\x08\0\x01\x01\x12\0\x03\0\0\0\x01".to_vec();
    tiff.extend_from_slice(&[0, 6, 0, 0, 0, 0, 0, 0]);
    let mut app1 = vec![0xFF, 0xE1];
    app1.extend_from_slice(&((tiff.len() + 8) as u16).to_be_bytes());
    app1.extend_from_slice(b"Exif\0\0");
    app1.extend_from_slice(&tiff);
    bytes.splice(2..2, app1);
    bytes
}

/// 300x200 RGBA: an opaque green disc on a transparent background.
fn transparent() -> Vec<u8> {
    let img = RgbaImage::from_fn(300, 200, |x, y| {
        let (dx, dy) = (x as i32 - 150, y as i32 - 100);
        if dx * dx + dy * dy < 80 * 80 { Rgba([30, 180, 60, 255]) } else { Rgba([0, 0, 0, 0]) }
    });
    encode::encode(&DynamicImage::ImageRgba8(img), &EncodeOptions::new(OutputFormat::Png)).unwrap()
}

/// 48x32 16-bit RGB TIFF (uncompressed, 9 KB): a scanner's output.
fn tiff16() -> Vec<u8> {
    let img = image::ImageBuffer::from_fn(48, 32, |x, y| Rgb([x as u16 * 1300, y as u16 * 2000, 30_000u16]));
    let mut out = Vec::new();
    DynamicImage::ImageRgb16(img).write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Tiff).unwrap();
    out
}

/// 32x24 PNG tagged Display P3 (the profile moxcms writes): left half P3 (200, 100, 50), which
/// is (215, 93, 31) in sRGB; right half P3 pure red, outside sRGB (clips to sRGB red).
fn display_p3() -> Vec<u8> {
    let img = RgbImage::from_fn(32, 24, |x, _| if x < 16 { Rgb([200, 100, 50]) } else { Rgb([255, 0, 0]) });
    let mut o = EncodeOptions::new(OutputFormat::Png);
    o.icc_profile = Some(moxcms::ColorProfile::new_display_p3().encode().unwrap());
    let keep = encode::EncodeExtras { icc: pixelflow_imaging::IccPolicy::Keep, ..encode::EncodeExtras::default() };
    encode::encode_with(&DynamicImage::ImageRgb8(img), &o, &keep).unwrap()
}

const FIXTURES: &[Fixture] = &[
    Fixture { name: "large.jpg", make: large, expect: (Format::Jpeg, 1600, 1200, 1) },
    Fixture { name: "rotated-6.jpg", make: rotated, expect: (Format::Jpeg, 240, 160, 6) },
    Fixture { name: "transparent.png", make: transparent, expect: (Format::Png, 300, 200, 1) },
    Fixture { name: "scan-16bit.tif", make: tiff16, expect: (Format::Tiff, 48, 32, 1) },
    Fixture { name: "display-p3.png", make: display_p3, expect: (Format::Png, 32, 24, 1) },
];

#[test]
fn fixtures_are_what_they_say() {
    let dir = data_dir();
    let write = std::env::var_os("PIXELFLOW_WRITE_FIXTURES").is_some_and(|v| v == "1");
    for f in FIXTURES {
        let path = dir.join(f.name);
        if write {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, (f.make)()).unwrap();
        }
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e} (make it with PIXELFLOW_WRITE_FIXTURES=1)", path.display()));
        let info = probe(&bytes, 1 << 30).unwrap();
        assert_eq!((info.format, info.width, info.height, info.orientation), f.expect, "{}", f.name);
        assert!(bytes.len() < 64 << 10, "{} is {} bytes: keep fixtures small", f.name, bytes.len());
    }
}
