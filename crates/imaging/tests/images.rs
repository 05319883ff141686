//! Golden-ish tests on small generated images: every EXIF orientation, 16-bit PNG, grey+alpha,
//! palette PNG with transparency; and the bad-input set, each answered `isValid: false` with
//! its reason. Outputs are compared by decoding them (per-channel tolerance for JPEG, exact for
//! PNG); on a mismatch the actual image is written to `tests/output/` for a look.

use std::path::PathBuf;

use image::{DynamicImage, GenericImageView, Rgba, RgbaImage};
use pixelflow_imaging::encode::{self, EncodeOptions};
use pixelflow_imaging::geometry::{Fit, Target};
use pixelflow_imaging::{decode, validate_bytes, Format, OutputFormat, ResizeOptions, Resizer, ValidateOptions, Variant};

const QUADRANTS: [[u8; 4]; 4] = [[230, 30, 30, 255], [30, 200, 40, 255], [40, 60, 220, 255], [240, 220, 40, 255]];

/// 48x32, four flat quadrants (top-left red, top-right green, bottom-left blue, bottom-right
/// yellow): any flip or turn moves a colour to another corner.
fn upright() -> DynamicImage {
    DynamicImage::ImageRgba8(RgbaImage::from_fn(48, 32, |x, y| Rgba(QUADRANTS[usize::from(x >= 24) + 2 * usize::from(y >= 16)])))
}

/// The stored pixels of an image that shows `img` once EXIF orientation `o` is applied.
fn stored_for(o: u8, img: &DynamicImage) -> DynamicImage {
    match o {
        2 => img.fliph(),
        3 => img.rotate180(),
        4 => img.flipv(),
        5 => img.rotate90().fliph(), // transpose: its own inverse
        6 => img.rotate270(),
        7 => img.rotate270().fliph(), // transverse: its own inverse
        8 => img.rotate90(),
        _ => img.clone(),
    }
}

/// A TIFF block with only the orientation tag.
fn exif(o: u8) -> Vec<u8> {
    let mut t = b"MM\0\x2a\0\0\0\x08\0\x01\x01\x12\0\x03\0\0\0\x01".to_vec();
    t.extend_from_slice(&[0, o, 0, 0, 0, 0, 0, 0]);
    t
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

fn encode_as(img: &DynamicImage, format: OutputFormat, quality: u8) -> Vec<u8> {
    let mut o = EncodeOptions::new(format);
    o.quality = quality;
    encode::encode(img, &o).unwrap()
}

/// `img` as a JPEG (APP1 Exif) or a PNG (eXIf chunk) carrying orientation `o`.
fn with_orientation(format: OutputFormat, img: &DynamicImage, o: u8) -> Vec<u8> {
    let mut bytes = encode_as(img, format, 95);
    let tiff = exif(o);
    match format {
        OutputFormat::Jpeg => {
            let mut app1 = vec![0xFF, 0xE1];
            app1.extend_from_slice(&((tiff.len() + 8) as u16).to_be_bytes());
            app1.extend_from_slice(b"Exif\0\0");
            app1.extend_from_slice(&tiff);
            bytes.splice(2..2, app1);
        }
        _ => {
            let mut body = b"eXIf".to_vec();
            body.extend_from_slice(&tiff);
            let mut chunk = (tiff.len() as u32).to_be_bytes().to_vec();
            chunk.extend_from_slice(&body);
            chunk.extend_from_slice(&crc32(&body).to_be_bytes());
            bytes.splice(33..33, chunk); // after the signature and IHDR
        }
    }
    bytes
}

fn decode_bytes(bytes: &[u8]) -> DynamicImage {
    let info = decode::probe(bytes, 1 << 30).unwrap();
    decode::decode(bytes, &info, &decode::DecodeOptions::default()).unwrap()
}

/// Saves an unexpected output where a person can look at it.
fn keep_actual(name: &str, img: &DynamicImage) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/output");
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join(format!("{name}-actual.png"));
    let _ = std::fs::write(&path, encode_as(img, OutputFormat::Png, 80));
    path
}

fn assert_quadrants(name: &str, img: &DynamicImage, tolerance: i32) {
    let (w, h) = img.dimensions();
    let rgba = img.to_rgba8();
    for (i, expected) in QUADRANTS.iter().enumerate() {
        let (x, y) = (if i % 2 == 0 { w / 4 } else { w * 3 / 4 }, if i < 2 { h / 4 } else { h * 3 / 4 });
        let got = rgba.get_pixel(x, y).0;
        let off = (0..3).map(|c| (i32::from(got[c]) - i32::from(expected[c])).abs()).max().unwrap_or(0);
        if off > tolerance {
            let at = keep_actual(name, img);
            panic!("{name}: quadrant {i} at ({x},{y}) is {got:?}, expected {expected:?}; actual image in {}", at.display());
        }
    }
}

#[test]
fn every_exif_orientation_comes_out_upright() {
    let up = upright();
    for format in [OutputFormat::Jpeg, OutputFormat::Png] {
        for o in 1..=8u8 {
            let stored = stored_for(o, &up);
            let bytes = with_orientation(format, &stored, o);
            let v = validate_bytes(&bytes, None, &ValidateOptions { decode: true, ..ValidateOptions::default() });
            assert!(v.is_valid, "{v:?}");
            assert_eq!((v.orientation, v.width, v.height), (Some(o), Some(stored.width()), Some(stored.height())), "{format:?} {o}");
            // Same size: orientation alone. Half size: orientation and resampling.
            for (w, h) in [(48, 32), (24, 16)] {
                let mut variant = Variant::new("v", Target { width: Some(w), height: Some(h), fit: Fit::Fill, ..Target::default() });
                variant.format = Some(OutputFormat::Png);
                let out = Resizer::new().resize(&bytes, &ResizeOptions::new(vec![variant]).unwrap()).unwrap();
                let img = decode_bytes(&out[0].data);
                assert_eq!(img.dimensions(), (w, h), "{format:?} orientation {o}");
                let tolerance = if format == OutputFormat::Jpeg { 24 } else { 0 };
                assert_quadrants(&format!("orientation-{o}-{}-{w}", format.name()), &img, tolerance);
            }
        }
    }
}

#[test]
fn sixteen_bit_png_is_described_and_kept() {
    let img = DynamicImage::ImageRgb16(image::ImageBuffer::from_fn(40, 30, |x, y| image::Rgb([x as u16 * 1600, y as u16 * 2100, 40_000])));
    let bytes = encode_as(&img, OutputFormat::Png, 80);
    let v = validate_bytes(&bytes, Some("deep.png"), &ValidateOptions { decode: true, ..ValidateOptions::default() });
    assert_eq!((v.is_valid, v.bit_depth, v.has_alpha), (true, Some(16), Some(false)));
    let json = serde_json::to_value(&v).unwrap();
    assert_eq!(json["colorType"], "rgb");
    let variant = Variant::new("v", Target { width: Some(20), height: Some(15), fit: Fit::Fill, ..Target::default() });
    let out = Resizer::new().resize(&bytes, &ResizeOptions::new(vec![variant]).unwrap()).unwrap();
    let back = decode_bytes(&out[0].data);
    assert_eq!(back.color(), image::ColorType::Rgb16);
    // A flat channel stays exactly flat through Lanczos3 at 16 bits.
    assert!(back.as_rgb16().unwrap().pixels().all(|p| p.0[2] == 40_000));
}

#[test]
fn grey_alpha_png_keeps_grey_and_alpha() {
    let img = DynamicImage::ImageLumaA8(image::ImageBuffer::from_fn(32, 32, |x, _| image::LumaA([180, if x < 16 { 255 } else { 0 }])));
    let bytes = encode_as(&img, OutputFormat::Png, 80);
    let v = validate_bytes(&bytes, None, &ValidateOptions { decode: true, ..ValidateOptions::default() });
    let json = serde_json::to_value(&v).unwrap();
    assert_eq!((json["colorType"].as_str(), json["hasAlpha"].as_bool()), (Some("grayAlpha"), Some(true)));
    let variant = Variant::new("v", Target { width: Some(16), height: Some(16), fit: Fit::Fill, ..Target::default() });
    let out = Resizer::new().resize(&bytes, &ResizeOptions::new(vec![variant]).unwrap()).unwrap();
    let back = decode_bytes(&out[0].data);
    assert_eq!(back.color(), image::ColorType::La8);
    let la = back.as_luma_alpha8().unwrap();
    assert_eq!(la.get_pixel(2, 8).0, [180, 255]);
    // At the edge alpha falls off, but the grey is not pulled towards the black of the
    // transparent pixels (Lanczos may ring a little either way).
    for x in 0..16 {
        let [l, a] = la.get_pixel(x, 8).0;
        assert!(a < 32 || (170..=190).contains(&l), "pixel {x}: grey {l} alpha {a}");
    }
    assert_eq!(la.get_pixel(15, 8).0[1], 0);
}

/// A 2-bit palette PNG whose first entry is fully transparent.
fn palette_png() -> Vec<u8> {
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, 8, 8);
    enc.set_color(png::ColorType::Indexed);
    enc.set_depth(png::BitDepth::Two);
    enc.set_palette(vec![0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255]);
    enc.set_trns(vec![0u8]);
    let mut writer = enc.write_header().unwrap();
    // Each row: 8 pixels of 2 bits = 2 bytes. Left half index 0 (transparent), right half 1..3.
    let rows: Vec<u8> = (0..8).flat_map(|y| [0b0000_0000, [0b0101_0101, 0b1010_1010, 0b1111_1111][y % 3]]).collect();
    writer.write_image_data(&rows).unwrap();
    writer.finish().unwrap();
    out
}

#[test]
fn palette_png_with_transparency() {
    let bytes = palette_png();
    let v = validate_bytes(&bytes, Some("p.png"), &ValidateOptions { decode: true, ..ValidateOptions::default() });
    let json = serde_json::to_value(&v).unwrap();
    let described = (json["isValid"].as_bool(), json["colorType"].as_str(), json["bitDepth"].as_u64(), json["hasAlpha"].as_bool());
    assert_eq!(described, (Some(true), Some("palette"), Some(2), Some(true)));
    let variant = Variant::new("v", Target { width: Some(8), height: Some(8), fit: Fit::Fill, ..Target::default() });
    let out = Resizer::new().resize(&bytes, &ResizeOptions::new(vec![variant]).unwrap()).unwrap();
    let back = decode_bytes(&out[0].data).to_rgba8();
    assert_eq!(back.get_pixel(1, 0).0[3], 0, "transparent stays transparent");
    assert_eq!(back.get_pixel(6, 0).0, [255, 0, 0, 255]);
    assert_eq!(back.get_pixel(6, 1).0, [0, 255, 0, 255]);
}

#[test]
fn outputs_are_deterministic() {
    let bytes = encode_as(&upright(), OutputFormat::Jpeg, 90);
    let mut webp = Variant::new("w", Target { width: Some(20), height: Some(20), fit: Fit::Contain, ..Target::default() });
    webp.format = Some(OutputFormat::Webp);
    let options = ResizeOptions::new(vec![Variant::new("j", Target { width: Some(30), height: None, ..Target::default() }), webp]).unwrap();
    let a = Resizer::new().resize(&bytes, &options).unwrap();
    let b = Resizer::new().resize(&bytes, &options).unwrap();
    for (x, y) in a.iter().zip(&b) {
        assert!(x.data == y.data, "{} differs between runs", x.name);
    }
}

/// A PNG of only a signature and an IHDR claiming `w` x `h`.
fn png_header(w: u32, h: u32) -> Vec<u8> {
    let mut body = b"IHDR".to_vec();
    body.extend_from_slice(&w.to_be_bytes());
    body.extend_from_slice(&h.to_be_bytes());
    body.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\x0d".to_vec();
    png.extend_from_slice(&body);
    png.extend_from_slice(&crc32(&body).to_be_bytes());
    png
}

/// The bad-input set: each is a normal answer, `isValid: false`, with a reason that says why.
#[test]
fn bad_inputs_are_invalid_with_their_reason() {
    // Big enough that most of the file is entropy-coded data, not tables.
    let texture = DynamicImage::ImageRgb8(image::RgbImage::from_fn(128, 96, |x, y| image::Rgb([(x * 2) as u8, (x ^ y) as u8, (y * 3) as u8])));
    let jpeg = encode_as(&texture, OutputFormat::Jpeg, 90);
    let png = encode_as(&upright(), OutputFormat::Png, 80);
    let mut cut_jpeg_with_eoi = jpeg[..jpeg.len() * 2 / 3].to_vec();
    cut_jpeg_with_eoi.extend_from_slice(&[0xFF, 0xD9]);
    let mut huge_with_data = png_header(100_000, 100_000);
    huge_with_data.extend_from_slice(&[0, 0, 0, 0, b'I', b'D', b'A', b'T', 0x35, 0xAF, 0x06, 0x1E]);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("truncated.jpg", jpeg[..jpeg.len() - 40].to_vec(), "truncated: the file ends before its end-of-image marker"),
        ("cut-then-eoi.jpg", cut_jpeg_with_eoi, "corrupt or truncated image data: "),
        ("truncated-in-header.jpg", jpeg[..200].to_vec(), "truncated: the file ends before its end-of-image marker"),
        ("truncated.png", png[..png.len() - 30].to_vec(), "truncated: the file ends before its IEND chunk"),
        ("empty.png", Vec::new(), "empty file (0 bytes)"),
        ("really-a-png.jpg", png.clone(), "the extension .jpg says jpeg but the content is png"),
        ("huge.png", png_header(100_000, 100_000), "too many pixels: 100000x100000 is 10000000000 pixels, more than maxPixels (100000000)"),
        ("huge-with-data.png", huge_with_data, "too many pixels: 100000x100000"),
        ("notes.jpg", b"Remember to buy milk.\n".to_vec(), "not an image: the content matches no known image format"),
        ("scan.tif", b"II*\0\x08\0\0\0\0\0\0\0".to_vec(), "corrupt or unsupported TIFF: "),
        ("photo.heic", b"\0\0\0\x18ftypheic\0\0\0\0mif1heic".to_vec(), "unsupported format: heic"),
        ("photo.avif", b"\0\0\0\x1cftypavif\0\0\0\0avifmif1miaf".to_vec(), "unsupported format: avif"),
        ("garbage.jpg", b"\xFF\xD8\xFF\xE0 this is not a JPEG segment\xFF\xD9".to_vec(), "corrupt JPEG header: "),
        ("zero-size.png", png_header(0, 7), "the image is 0x7: it has no pixels"),
    ];
    for (name, bytes, reason) in cases {
        let v = validate_bytes(&bytes, Some(name), &ValidateOptions { decode: true, ..ValidateOptions::default() });
        assert!(!v.is_valid, "{name} was accepted");
        let got = v.reason.clone().unwrap_or_default();
        assert!(got.starts_with(reason), "{name}: reason {got:?}, expected it to start with {reason:?}");
        assert_eq!(v.bytes, bytes.len() as u64);
        // Resize refuses the same inputs with an error, never a panic (the extension case
        // aside: resize goes by content, so a PNG named .jpg is simply a PNG).
        if name != "really-a-png.jpg" {
            let variant = Variant::new("v", Target { width: Some(8), height: Some(8), ..Target::default() });
            assert!(Resizer::new().resize(&bytes, &ResizeOptions::new(vec![variant]).unwrap()).is_err(), "{name} resized");
        }
    }
    assert!(validate_bytes(&png, Some("ok.png"), &ValidateOptions::default()).is_valid);
    assert_eq!(Format::sniff(&jpeg), Some(Format::Jpeg));
}
