//! Golden tests for the image kinds `images.rs` does not cover: CMYK (and YCCK) JPEG,
//! progressive JPEG, animated GIF (first frame), ICC-tagged images (carried, or converted to
//! sRGB with the expected values computed here from the colour spaces' primaries), TIFF (8 and
//! 16 bits), lossy WebP and AVIF output. The fixtures are generated here with the encoders the
//! crate already links (mozjpeg, the `image` crate, moxcms for real ICC profiles), except one
//! CMYK JPEG made by Pillow (`tests/data/cmyk-pillow.jpg`, recipe beside it) as a second
//! writer's opinion; each test says what a user expects of that kind of file.

use image::codecs::gif::{GifEncoder, Repeat};
use image::{Delay, DynamicImage, Frame, GenericImageView, Rgb, RgbImage, Rgba, RgbaImage};
use mozjpeg::{ColorSpace, Compress};
use pixelflow_imaging::decode::{self, ColorKind};
use pixelflow_imaging::encode::{self, EncodeExtras, EncodeOptions};
use pixelflow_imaging::geometry::{Fit, Target};
use pixelflow_imaging::{
    optimize_bytes, validate_bytes, Effort, Format, IccPolicy, OptimizeOptions, OutputFormat, ResizeOptions, Resizer, ValidateOptions,
    Variant,
};

fn decoding() -> ValidateOptions {
    ValidateOptions { decode: true, ..ValidateOptions::default() }
}

fn decode_bytes(bytes: &[u8]) -> DynamicImage {
    let info = decode::probe(bytes, 1 << 30).unwrap();
    decode::decode(bytes, &info, &decode::DecodeOptions::default()).unwrap()
}

/// One resize to `w` x `h` (fill) into `format`.
fn resize_to(bytes: &[u8], w: u32, h: u32, format: OutputFormat) -> Vec<u8> {
    let mut variant = Variant::new("v", Target { width: Some(w), height: Some(h), fit: Fit::Fill, ..Target::default() });
    variant.format = Some(format);
    let mut out = Resizer::new().resize(bytes, &ResizeOptions::new(vec![variant]).unwrap()).unwrap();
    assert_eq!((out[0].width, out[0].height), (w, h));
    out.remove(0).data
}

fn max_channel_diff(a: [u8; 3], b: [u8; 3]) -> i32 {
    (0..3).map(|c| (i32::from(a[c]) - i32::from(b[c])).abs()).max().unwrap_or(0)
}

fn assert_near(what: &str, got: [u8; 3], expected: [u8; 3], tolerance: i32) {
    assert!(max_channel_diff(got, expected) <= tolerance, "{what}: got {got:?}, expected {expected:?} (tolerance {tolerance})");
}

// ---------------------------------------------------------------------------------------------
// CMYK JPEG

/// The Adobe (inverted) CMYK of an sRGB colour, naive conversion: 255 means no ink, as
/// Photoshop and Pillow store it (with an APP14 Adobe marker, which libjpeg writes for CMYK).
fn adobe_cmyk(rgb: [u8; 3]) -> [u8; 4] {
    let max = *rgb.iter().max().unwrap();
    if max == 0 {
        return [255, 255, 255, 0];
    }
    let m = u32::from(max);
    // Inverted: c' = 255 - c = r / (1 - k) in 0..255; k' = 255 - k = max.
    let inv = |v: u8| ((u32::from(v) * 255 + m / 2) / m) as u8;
    [inv(rgb[0]), inv(rgb[1]), inv(rgb[2]), max]
}

/// A 32x16 CMYK JPEG, left half `left`, right half `right` (sRGB colours stored as Adobe CMYK),
/// written as plain CMYK or, like Photoshop by default, as YCCK.
fn cmyk_jpeg(left: [u8; 3], right: [u8; 3], ycck: bool) -> Vec<u8> {
    let (w, h) = (32usize, 16usize);
    let pixels: Vec<u8> = (0..w * h).flat_map(|i| adobe_cmyk(if i % w < w / 2 { left } else { right })).collect();
    let mut comp = Compress::new(ColorSpace::JCS_CMYK);
    if ycck {
        comp.set_color_space(ColorSpace::JCS_YCCK);
    }
    comp.set_size(w, h);
    comp.set_quality(95.0);
    let mut started = comp.start_compress(Vec::new()).unwrap();
    started.write_scanlines(&pixels).unwrap();
    started.finish().unwrap()
}

#[test]
fn cmyk_jpeg_is_described_and_comes_out_as_its_rgb_colours() {
    let (red, teal) = ([220u8, 40, 30], [20u8, 150, 160]);
    for ycck in [false, true] {
        let bytes = cmyk_jpeg(red, teal, ycck);
        // An Adobe APP14 marker says how the channels are stored (transform 0 CMYK, 2 YCCK).
        let adobe = bytes.windows(7).position(|w| w == b"\xFF\xEE\0\x0EAdo").expect("an APP14 Adobe marker");
        assert_eq!(bytes[adobe + 15], if ycck { 2 } else { 0 }, "Adobe transform");
        let v = validate_bytes(&bytes, Some("print.jpg"), &decoding());
        assert!(v.is_valid, "{v:?}");
        assert_eq!((v.format, v.width, v.height, v.color_type), (Some(Format::Jpeg), Some(32), Some(16), Some(ColorKind::Cmyk)));
        assert_eq!((v.bit_depth, v.has_alpha, v.has_icc), (Some(8), Some(false), Some(false)));
        assert_eq!(serde_json::to_value(&v).unwrap()["colorType"], "cmyk");

        // Same size and half size (JPEG shrink-on-load), into PNG (exact) and JPEG.
        for (w, h) in [(32, 16), (16, 8)] {
            let png = decode_bytes(&resize_to(&bytes, w, h, OutputFormat::Png));
            assert_eq!(png.color(), image::ColorType::Rgb8, "CMYK becomes RGB");
            let rgb = png.to_rgb8();
            assert_near(&format!("ycck={ycck} {w}x{h} left"), rgb.get_pixel(w / 8, h / 2).0, red, 8);
            assert_near(&format!("ycck={ycck} {w}x{h} right"), rgb.get_pixel(w * 7 / 8, h / 2).0, teal, 8);
        }
        let jpeg = resize_to(&bytes, 16, 8, OutputFormat::Jpeg);
        let info = decode::probe(&jpeg, 1 << 20).unwrap();
        assert_eq!(info.color, ColorKind::Rgb, "the output JPEG is RGB, not CMYK");
        let back = decode_bytes(&jpeg).to_rgb8();
        assert_near("jpeg out left", back.get_pixel(2, 4).0, red, 16);
        assert_near("jpeg out right", back.get_pixel(13, 4).0, teal, 16);
    }
}

/// Made by Pillow (`tests/data/make_cmyk_pillow.py`, which lists the inks): another writer's
/// idea of a CMYK JPEG, so the inverted-CMYK reading is not only checked against our own.
const PILLOW_CMYK: &[u8] = include_bytes!("data/cmyk-pillow.jpg");

#[test]
fn cmyk_jpeg_written_by_pillow_comes_out_as_pillow_shows_it() {
    let v = validate_bytes(PILLOW_CMYK, Some("cmyk-pillow.jpg"), &decoding());
    assert!(v.is_valid, "{v:?}");
    assert_eq!((v.format, v.width, v.height, v.color_type, v.has_icc), (Some(Format::Jpeg), Some(32), Some(32), Some(ColorKind::Cmyk), Some(false)));
    // What Pillow's own convert("RGB") gives for the four quadrants.
    let expected = [[255, 0, 0], [0, 255, 255], [127, 127, 127], [191, 0, 0]];
    for (w, h) in [(32, 32), (8, 8)] {
        let rgb = decode_bytes(&resize_to(PILLOW_CMYK, w, h, OutputFormat::Png)).to_rgb8();
        for (i, want) in expected.iter().enumerate() {
            let (x, y) = (if i % 2 == 0 { w / 4 } else { w * 3 / 4 }, if i < 2 { h / 4 } else { h * 3 / 4 });
            assert_near(&format!("{w}x{h} quadrant {i}"), rgb.get_pixel(x, y).0, *want, 6);
        }
    }
}

#[test]
fn cmyk_jpeg_with_a_cmyk_profile_does_not_pass_it_to_rgb_outputs() {
    let mut bytes = cmyk_jpeg([200, 200, 200], [10, 10, 10], false);
    let profile = icc_profile(b"CMYK", 300);
    bytes.splice(2..2, app2_icc(&profile));
    let v = validate_bytes(&bytes, None, &decoding());
    assert_eq!((v.is_valid, v.color_type, v.has_icc), (true, Some(ColorKind::Cmyk), Some(true)), "{v:?}");
    for format in [OutputFormat::Jpeg, OutputFormat::Png, OutputFormat::Webp] {
        let out = resize_to(&bytes, 16, 8, format);
        assert_eq!(decode::probe(&out, 1 << 20).unwrap().icc_profile, None, "{format:?}: a CMYK profile would misdescribe RGB pixels");
    }
}

// ---------------------------------------------------------------------------------------------
// Progressive JPEG

/// 64x48: four flat quadrants plus a gentle gradient, so the DCT has more than DC to code.
fn photo() -> DynamicImage {
    DynamicImage::ImageRgb8(RgbImage::from_fn(64, 48, |x, y| {
        let q = [[200u8, 40, 40], [40, 180, 60], [50, 70, 210], [230, 210, 50]][usize::from(x >= 32) + 2 * usize::from(y >= 24)];
        Rgb([q[0].saturating_add((x % 32) as u8), q[1].saturating_add((y % 24) as u8), q[2]])
    }))
}

fn jpeg_with(img: &DynamicImage, effort: Effort) -> Vec<u8> {
    let mut o = EncodeOptions::new(OutputFormat::Jpeg);
    o.quality = 90;
    o.effort = effort;
    encode::encode(img, &o).unwrap()
}

/// Whether the JPEG's frame header is SOF2 (progressive, Huffman) rather than SOF0/SOF1.
/// (0xFF in entropy-coded data is always stuffed, so the marker bytes cannot occur there.)
fn is_progressive(jpeg: &[u8]) -> bool {
    jpeg.windows(2).any(|w| w == [0xFF, 0xC2])
}

#[test]
fn progressive_jpeg_decodes_like_its_baseline_twin() {
    let img = photo();
    let baseline = jpeg_with(&img, Effort::Fast);
    let progressive = jpeg_with(&img, Effort::Balanced);
    assert!(!is_progressive(&baseline) && is_progressive(&progressive), "the fixtures are what they claim");
    for bytes in [&baseline, &progressive] {
        let v = validate_bytes(bytes, Some("p.jpg"), &decoding());
        assert!(v.is_valid, "{v:?}");
        assert_eq!((v.format, v.width, v.height, v.color_type, v.has_icc), (Some(Format::Jpeg), Some(64), Some(48), Some(ColorKind::Rgb), Some(false)));
    }
    // Same quantisation, only the scan order differs: the pixels agree (a small tolerance for
    // the IDCT, none expected), at full size and through shrink-on-load.
    for (w, h) in [(64, 48), (32, 24), (16, 12)] {
        let a = decode_bytes(&resize_to(&baseline, w, h, OutputFormat::Png)).to_rgb8();
        let b = decode_bytes(&resize_to(&progressive, w, h, OutputFormat::Png)).to_rgb8();
        let worst = a.pixels().zip(b.pixels()).map(|(p, q)| max_channel_diff(p.0, q.0)).max().unwrap();
        assert!(worst <= 2, "{w}x{h}: progressive differs from baseline by up to {worst}");
        let src = img.resize_exact(w, h, image::imageops::FilterType::Triangle).to_rgb8();
        for (x, y) in [(w / 4, h / 4), (w * 3 / 4, h / 4), (w / 4, h * 3 / 4), (w * 3 / 4, h * 3 / 4)] {
            assert_near(&format!("{w}x{h} at ({x},{y})"), b.get_pixel(x, y).0, src.get_pixel(x, y).0, 16);
        }
    }
    // A progressive file cut short is refused, as a baseline one is.
    let cut = &progressive[..progressive.len() * 2 / 3];
    assert!(!validate_bytes(cut, None, &decoding()).is_valid);
}

#[test]
fn optimize_writes_a_progressive_jpeg_that_decodes_like_its_input() {
    let baseline = jpeg_with(&photo(), Effort::Fast);
    let options = OptimizeOptions { allow_larger: true, ..OptimizeOptions::default() };
    let out = optimize_bytes(&baseline, &options).unwrap();
    assert!(out.reencoded && is_progressive(&out.data));
    let (a, b) = (decode_bytes(&baseline).to_rgb8(), decode_bytes(&out.data).to_rgb8());
    let worst = a.pixels().zip(b.pixels()).map(|(p, q)| max_channel_diff(p.0, q.0)).max().unwrap();
    assert!(worst <= 40, "optimize at quality 80 moved a pixel by {worst}");
}

// ---------------------------------------------------------------------------------------------
// Animated GIF: the first frame (lib.rs: "animation (GIF and WebP give their first frame)")

fn animated_gif() -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut enc = GifEncoder::new(&mut out);
        enc.set_repeat(Repeat::Infinite).unwrap();
        let frame = |c: [u8; 4]| Frame::from_parts(RgbaImage::from_pixel(20, 10, Rgba(c)), 0, 0, Delay::from_numer_denom_ms(100, 1));
        enc.encode_frames(vec![frame([255, 0, 0, 255]), frame([0, 0, 255, 255]), frame([0, 255, 0, 255])]).unwrap();
    }
    out
}

#[test]
fn animated_gif_gives_its_first_frame() {
    let bytes = animated_gif();
    // Three image descriptors: it really is animated.
    assert_eq!(bytes.windows(2).filter(|w| w == b"\x00\x2C").count(), 3, "three frames");
    let v = validate_bytes(&bytes, Some("anim.gif"), &decoding());
    assert!(v.is_valid, "{v:?}");
    assert_eq!((v.format, v.width, v.height, v.color_type, v.has_icc), (Some(Format::Gif), Some(20), Some(10), Some(ColorKind::Palette), Some(false)));
    for format in [OutputFormat::Png, OutputFormat::Jpeg, OutputFormat::Webp] {
        let out = resize_to(&bytes, 10, 5, format);
        let img = decode_bytes(&out);
        let tolerance = match format {
            OutputFormat::Png => 0,
            _ => 12, // lossy
        };
        for (x, y) in [(0, 0), (5, 2), (9, 4)] {
            assert_near(&format!("{format:?} ({x},{y})"), img.to_rgb8().get_pixel(x, y).0, [255, 0, 0], tolerance);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// ICC-tagged images

/// A structurally valid ICC profile header (v4, display class, colour space `space`, PCS XYZ,
/// no tags) padded to `len` bytes. Without tags no CMS can read it, so it cannot be converted
/// and is carried as it is (`color.rs`), even under the default sRGB policy.
fn icc_profile(space: &[u8; 4], len: usize) -> Vec<u8> {
    let mut p = vec![0u8; len.max(132)];
    let n = p.len() as u32;
    p[0..4].copy_from_slice(&n.to_be_bytes());
    p[4..8].copy_from_slice(b"pxfl");
    p[8..12].copy_from_slice(&[4, 0x30, 0, 0]);
    p[12..16].copy_from_slice(b"mntr");
    p[16..20].copy_from_slice(space);
    p[20..24].copy_from_slice(b"XYZ ");
    p[36..40].copy_from_slice(b"acsp");
    for (i, b) in p.iter_mut().enumerate().skip(132) {
        *b = (i % 251) as u8; // a body that a truncation or a reorder would change
    }
    p
}

/// APP2 ICC_PROFILE segment holding a whole (< 64 KB) profile as chunk 1 of 1.
fn app2_icc(profile: &[u8]) -> Vec<u8> {
    let mut seg = vec![0xFF, 0xE2];
    seg.extend_from_slice(&((profile.len() + 16) as u16).to_be_bytes());
    seg.extend_from_slice(b"ICC_PROFILE\0\x01\x01");
    seg.extend_from_slice(profile);
    seg
}

fn encode_with_icc(img: &DynamicImage, format: OutputFormat, icc: &[u8]) -> Vec<u8> {
    let mut o = EncodeOptions::new(format);
    o.quality = 92;
    o.icc_profile = Some(icc.to_vec());
    encode::encode(img, &o).unwrap()
}

/// Whether the container itself carries a profile, looked for the way a reader would.
fn has_icc_marker(format: OutputFormat, data: &[u8]) -> bool {
    match format {
        OutputFormat::Jpeg => data.windows(4 + 12).any(|w| w[..2] == [0xFF, 0xE2] && &w[4..] == b"ICC_PROFILE\0"),
        OutputFormat::Png => data.windows(4).any(|w| w == b"iCCP"),
        OutputFormat::Webp => data.windows(4).any(|w| w == b"ICCP"),
        OutputFormat::Avif => data.windows(4).any(|w| w == b"colr"),
    }
}

#[test]
fn icc_tagged_inputs_are_described_and_their_profile_kept_by_resize() {
    let profile = icc_profile(b"RGB ", 600);
    let img = photo();
    for input in [OutputFormat::Png, OutputFormat::Jpeg, OutputFormat::Webp] {
        let bytes = encode_with_icc(&img, input, &profile);
        assert!(has_icc_marker(input, &bytes), "{input:?} fixture carries its profile");
        let v = validate_bytes(&bytes, None, &decoding());
        assert!(v.is_valid, "{input:?}: {v:?}");
        assert_eq!((v.format, v.has_icc, v.color_type), (Some(input.as_format()), Some(true), Some(ColorKind::Rgb)), "{input:?}");
        assert_eq!(serde_json::to_value(&v).unwrap()["hasIcc"], true);
        assert_eq!(decode::probe(&bytes, 1 << 20).unwrap().icc_profile.as_deref(), Some(&profile[..]));
        for output in [OutputFormat::Png, OutputFormat::Jpeg, OutputFormat::Webp] {
            let out = resize_to(&bytes, 32, 24, output);
            assert!(has_icc_marker(output, &out), "{input:?} -> {output:?}: no profile marker in the output");
            let kept = decode::probe(&out, 1 << 20).unwrap().icc_profile;
            assert_eq!(kept.as_deref(), Some(&profile[..]), "{input:?} -> {output:?}: the profile is carried byte for byte");
            // The profile is carried, not applied: the pixels are as without one.
            let rgb = decode_bytes(&out).to_rgb8();
            let lossy = |f: OutputFormat| matches!(f, OutputFormat::Jpeg | OutputFormat::Webp);
            let tolerance = if lossy(input) || lossy(output) { 24 } else { 2 };
            assert_near(&format!("{input:?} -> {output:?}"), rgb.get_pixel(4, 4).0, img.to_rgb8().get_pixel(8, 8).0, tolerance);
        }
    }
}

#[test]
fn a_jpeg_profile_in_several_app2_chunks_is_reassembled_and_kept() {
    // Over 65,519 bytes: the encoder splits it across APP2 segments, numbered.
    let profile = icc_profile(b"RGB ", 70_000);
    let bytes = encode_with_icc(&photo(), OutputFormat::Jpeg, &profile);
    assert_eq!(bytes.windows(14).filter(|w| w[..2] == [0xFF, 0xE2] && &w[4..14] == b"ICC_PROFIL").count(), 2);
    assert_eq!(validate_bytes(&bytes, None, &decoding()).has_icc, Some(true));
    for output in [OutputFormat::Jpeg, OutputFormat::Png] {
        let out = resize_to(&bytes, 16, 12, output);
        assert_eq!(decode::probe(&out, 1 << 20).unwrap().icc_profile.as_deref(), Some(&profile[..]), "{output:?}");
    }
}

#[test]
fn a_grey_profile_stays_with_grey_pixels_and_a_mismatched_one_is_dropped() {
    let grey = DynamicImage::ImageLuma8(image::GrayImage::from_fn(16, 16, |x, _| image::Luma([(x * 16) as u8])));
    let gray_profile = icc_profile(b"GRAY", 200);
    let bytes = encode_with_icc(&grey, OutputFormat::Png, &gray_profile);
    let v = validate_bytes(&bytes, None, &decoding());
    assert_eq!((v.is_valid, v.color_type, v.has_icc), (true, Some(ColorKind::Gray), Some(true)));
    for output in [OutputFormat::Png, OutputFormat::Jpeg] {
        let out = resize_to(&bytes, 8, 8, output);
        assert_eq!(decode::probe(&out, 1 << 20).unwrap().icc_profile.as_deref(), Some(&gray_profile[..]), "{output:?}");
    }
    // An RGB profile on grey pixels is not written (encode.rs: no profile beats a wrong one).
    let rgb_profile = icc_profile(b"RGB ", 200);
    let mut o = EncodeOptions::new(OutputFormat::Png);
    o.icc_profile = Some(rgb_profile);
    let out = encode::encode(&grey, &o).unwrap();
    assert!(!has_icc_marker(OutputFormat::Png, &out));
}

#[test]
fn optimize_keeps_the_icc_profile() {
    let profile = icc_profile(b"RGB ", 600);
    // The optimize step strips metadata but keeps the profile (it says how to read the colours),
    // whether it re-encodes or keeps the input's own data.
    for (input, allow_larger) in [(OutputFormat::Jpeg, true), (OutputFormat::Jpeg, false), (OutputFormat::Png, true), (OutputFormat::Png, false)] {
        let bytes = encode_with_icc(&photo(), input, &profile);
        let out = optimize_bytes(&bytes, &OptimizeOptions { allow_larger, ..OptimizeOptions::default() }).unwrap();
        assert!(has_icc_marker(input, &out.data), "{input:?} allow_larger={allow_larger} reencoded={}", out.reencoded);
        assert_eq!(decode::probe(&out.data, 1 << 20).unwrap().icc_profile.as_deref(), Some(&profile[..]));
    }
}

#[test]
fn optimize_does_not_drop_an_rgb_profile_by_reducing_grey_looking_pixels() {
    // Every pixel has r == g == b, so a lossless PNG reduction could store it as grey; but the
    // RGB profile then no longer fits, and dropping it changes how the image looks.
    let img = DynamicImage::ImageRgb8(RgbImage::from_fn(24, 24, |x, y| {
        let l = ((x * 7 + y * 3) % 256) as u8;
        Rgb([l, l, l])
    }));
    let profile = icc_profile(b"RGB ", 600);
    let bytes = encode_with_icc(&img, OutputFormat::Png, &profile);
    let out = optimize_bytes(&bytes, &OptimizeOptions { allow_larger: true, ..OptimizeOptions::default() }).unwrap();
    assert_eq!(decode::probe(&out.data, 1 << 20).unwrap().icc_profile.as_deref(), Some(&profile[..]));
    let back = decode_bytes(&out.data);
    assert_eq!(back.to_rgb8(), img.to_rgb8(), "still lossless");
    // Without a profile the reduction to grey is still made.
    let plain = encode::encode(&img, &EncodeOptions::new(OutputFormat::Png)).unwrap();
    let out = optimize_bytes(&plain, &OptimizeOptions { allow_larger: true, ..OptimizeOptions::default() }).unwrap();
    assert_eq!(decode::probe(&out.data, 1 << 20).unwrap().color, ColorKind::Gray);
}

// ---------------------------------------------------------------------------------------------
// ICC profiles converted to sRGB

/// Linear RGB -> XYZ for a colour space given by the xy chromaticities of its primaries and
/// white point (the standard derivation: each primary's XYZ scaled so that RGB 1,1,1 is white).
fn rgb_to_xyz(primaries: [(f64, f64); 3], white: (f64, f64)) -> [[f64; 3]; 3] {
    let xyz = |(x, y): (f64, f64)| [x / y, 1.0, (1.0 - x - y) / y];
    let p = primaries.map(xyz);
    let m = [[p[0][0], p[1][0], p[2][0]], [p[0][1], p[1][1], p[2][1]], [p[0][2], p[1][2], p[2][2]]];
    let s = mul(&invert(&m), xyz(white));
    [[m[0][0] * s[0], m[0][1] * s[1], m[0][2] * s[2]], [m[1][0] * s[0], m[1][1] * s[1], m[1][2] * s[2]], [m[2][0] * s[0], m[2][1] * s[1], m[2][2] * s[2]]]
}

fn invert(m: &[[f64; 3]; 3]) -> [[f64; 3]; 3] {
    let c = |r: usize, k: usize| m[(r + 1) % 3][(k + 1) % 3] * m[(r + 2) % 3][(k + 2) % 3] - m[(r + 1) % 3][(k + 2) % 3] * m[(r + 2) % 3][(k + 1) % 3];
    let det = m[0][0] * c(0, 0) + m[0][1] * c(0, 1) + m[0][2] * c(0, 2);
    let mut inv = [[0.0; 3]; 3];
    for (r, row) in inv.iter_mut().enumerate() {
        for (k, v) in row.iter_mut().enumerate() {
            *v = c(k, r) / det;
        }
    }
    inv
}

fn mul(m: &[[f64; 3]; 3], v: [f64; 3]) -> [f64; 3] {
    [0, 1, 2].map(|r| m[r][0] * v[0] + m[r][1] * v[1] + m[r][2] * v[2])
}

fn srgb_decode(v: f64) -> f64 {
    if v <= 0.04045 { v / 12.92 } else { ((v + 0.055) / 1.055).powf(2.4) }
}

fn srgb_encode(v: f64) -> f64 {
    let v = v.clamp(0.0, 1.0);
    if v <= 0.003_130_8 { v * 12.92 } else { 1.055 * v.powf(1.0 / 2.4) - 0.055 }
}

const D65: (f64, f64) = (0.3127, 0.3290);
const SRGB: [(f64, f64); 3] = [(0.64, 0.33), (0.30, 0.60), (0.15, 0.06)];
const DISPLAY_P3: [(f64, f64); 3] = [(0.680, 0.320), (0.265, 0.690), (0.150, 0.060)];
const ADOBE_RGB: [(f64, f64); 3] = [(0.64, 0.33), (0.21, 0.71), (0.15, 0.06)];

/// The sRGB value of an 8-bit colour in another D65 space (its primaries and decoding curve),
/// clipped to the sRGB gamut: what a relative colorimetric conversion must give.
fn expected_srgb(rgb: [u8; 3], primaries: [(f64, f64); 3], decode: fn(f64) -> f64) -> [u8; 3] {
    let to_srgb = invert(&rgb_to_xyz(SRGB, D65));
    let linear = mul(&to_srgb, mul(&rgb_to_xyz(primaries, D65), rgb.map(|c| decode(f64::from(c) / 255.0))));
    linear.map(|v| (srgb_encode(v) * 255.0).round() as u8)
}

fn adobe_decode(v: f64) -> f64 {
    v.powf(563.0 / 256.0)
}

/// A 16x12 PNG of one colour, tagged with `profile` (written with the profile kept).
fn tagged_png(rgb: [u8; 3], profile: &[u8]) -> Vec<u8> {
    let img = DynamicImage::ImageRgb8(RgbImage::from_pixel(16, 12, Rgb(rgb)));
    let mut o = EncodeOptions::new(OutputFormat::Png);
    o.icc_profile = Some(profile.to_vec());
    encode::encode_with(&img, &o, &EncodeExtras { icc: IccPolicy::Keep, ..EncodeExtras::default() }).unwrap()
}

fn resize_with_policy(bytes: &[u8], format: OutputFormat, icc: IccPolicy) -> Vec<u8> {
    let mut variant = Variant::new("v", Target { width: Some(8), height: Some(6), fit: Fit::Fill, ..Target::default() });
    variant.format = Some(format);
    variant.quality = 100;
    let mut options = ResizeOptions::new(vec![variant]).unwrap();
    options.icc = icc;
    Resizer::new().resize(bytes, &options).unwrap().remove(0).data
}

#[test]
fn display_p3_and_adobe_rgb_pixels_are_converted_to_srgb() {
    let p3 = moxcms::ColorProfile::new_display_p3().encode().unwrap();
    let adobe = moxcms::ColorProfile::new_adobe_rgb().encode().unwrap();
    type Case<'a> = (&'a str, &'a [u8], [u8; 3], [(f64, f64); 3], fn(f64) -> f64);
    let cases: [Case; 4] = [
        ("P3 pure red", &p3, [255, 0, 0], DISPLAY_P3, srgb_decode),
        ("P3 orange", &p3, [200, 100, 50], DISPLAY_P3, srgb_decode),
        ("Adobe RGB mid-green", &adobe, [100, 180, 120], ADOBE_RGB, adobe_decode),
        ("Adobe RGB grey", &adobe, [128, 128, 128], ADOBE_RGB, adobe_decode),
    ];
    for (what, profile, colour, primaries, decode_curve) in cases {
        let expected = expected_srgb(colour, primaries, decode_curve);
        let input = tagged_png(colour, profile);
        let v = validate_bytes(&input, None, &decoding());
        assert_eq!((v.is_valid, v.has_icc), (true, Some(true)), "{what}");
        for format in [OutputFormat::Png, OutputFormat::Jpeg] {
            let out = resize_with_policy(&input, format, IccPolicy::Srgb);
            let info = decode::probe(&out, 1 << 20).unwrap();
            assert_eq!(info.icc_profile, None, "{what} -> {format:?}: sRGB pixels go untagged");
            let got = decode_bytes(&out).to_rgb8().get_pixel(4, 3).0;
            let tolerance = if format == OutputFormat::Jpeg { 4 } else { 2 };
            assert_near(&format!("{what} -> {format:?}"), got, expected, tolerance);
        }
        // Kept: the pixels as they were, and the profile byte for byte.
        let kept = resize_with_policy(&input, OutputFormat::Png, IccPolicy::Keep);
        assert_eq!(decode::probe(&kept, 1 << 20).unwrap().icc_profile.as_deref(), Some(profile));
        assert_eq!(decode_bytes(&kept).to_rgb8().get_pixel(4, 3).0, colour, "{what}: kept");
    }
    // The conversion moves what it should: P3 red is outside sRGB and clips to sRGB red; the
    // Adobe green loses its red (outside sRGB too) and P3 orange gets redder and less blue.
    assert_eq!(expected_srgb([255, 0, 0], DISPLAY_P3, srgb_decode), [255, 0, 0]);
    let orange = expected_srgb([200, 100, 50], DISPLAY_P3, srgb_decode);
    assert!(orange[0] > 210 && orange[2] < 40, "{orange:?}");
    let green = expected_srgb([100, 180, 120], ADOBE_RGB, adobe_decode);
    assert!(green[0] < 20, "{green:?}");
}

#[test]
fn a_letterbox_background_stays_the_srgb_colour_asked_for() {
    let p3 = moxcms::ColorProfile::new_display_p3().encode().unwrap();
    let input = tagged_png([200, 100, 50], &p3); // 16x12
    let mut variant = Variant::new("box", Target { width: Some(16), height: Some(16), fit: Fit::Contain, ..Target::default() });
    variant.format = Some(OutputFormat::Png);
    variant.background = Rgba([10, 200, 30, 255]);
    let out = Resizer::new().resize(&input, &ResizeOptions::new(vec![variant]).unwrap()).unwrap().remove(0);
    let rgb = decode_bytes(&out.data).to_rgb8();
    assert_eq!(rgb.get_pixel(8, 0).0, [10, 200, 30], "the bar is the background as given");
    assert_near("the picture", rgb.get_pixel(8, 8).0, expected_srgb([200, 100, 50], DISPLAY_P3, srgb_decode), 2);
}

#[test]
fn sixteen_bit_p3_png_is_converted_in_16_bits() {
    let p3 = moxcms::ColorProfile::new_display_p3().encode().unwrap();
    let img = DynamicImage::ImageRgb16(image::ImageBuffer::from_pixel(16, 12, Rgb([51400u16, 25700, 12850])));
    let mut o = EncodeOptions::new(OutputFormat::Png);
    o.icc_profile = Some(p3);
    let input = encode::encode_with(&img, &o, &EncodeExtras { icc: IccPolicy::Keep, ..EncodeExtras::default() }).unwrap();
    let out = resize_with_policy(&input, OutputFormat::Png, IccPolicy::Srgb);
    let back = decode_bytes(&out);
    assert_eq!(back.color(), image::ColorType::Rgb16, "16 bits stay 16 bits");
    let got = back.to_rgb8().get_pixel(2, 2).0;
    assert_near("16-bit P3 orange", got, expected_srgb([200, 100, 50], DISPLAY_P3, srgb_decode), 2);
}

#[test]
fn optimize_converts_to_srgb_unless_asked_to_keep_the_profile() {
    let p3 = moxcms::ColorProfile::new_display_p3().encode().unwrap();
    let input = tagged_png([200, 100, 50], &p3);
    let out = optimize_bytes(&input, &OptimizeOptions { allow_larger: true, ..OptimizeOptions::default() }).unwrap();
    assert_eq!(decode::probe(&out.data, 1 << 20).unwrap().icc_profile, None);
    assert_near("optimize", decode_bytes(&out.data).to_rgb8().get_pixel(0, 0).0, expected_srgb([200, 100, 50], DISPLAY_P3, srgb_decode), 2);
    let kept = optimize_bytes(&input, &OptimizeOptions { allow_larger: true, icc: IccPolicy::Keep, ..OptimizeOptions::default() }).unwrap();
    assert_eq!(decode::probe(&kept.data, 1 << 20).unwrap().icc_profile.as_deref(), Some(&p3[..]));
    assert_eq!(decode_bytes(&kept.data).to_rgb8().get_pixel(0, 0).0, [200, 100, 50]);
}

/// A CMYK output profile (lut16, PCS XYZ) whose 2x2x2x2 grid says what each ink looks like on
/// paper: paper white, cyan ink sRGB (0, 160, 224), magenta (230, 0, 126), yellow (255, 236, 0),
/// black ink (30, 30, 30), overprints multiplying their linear reflectances. The naive reading
/// of cyan ink is (0, 255, 255): far from what this "press" prints.
fn cmyk_profile() -> Vec<u8> {
    use moxcms::{ColorProfile, DataColorSpace, LutDataType, LutStore, LutType, LutWarehouse, Matrix3d, ProfileClass};
    // sRGB (D65) to the ICC's D50 PCS: the Bradford-adapted matrix of the ICC sRGB profile.
    const SRGB_D50: [[f64; 3]; 3] = [[0.436_074_7, 0.385_064_9, 0.143_080_4], [0.222_504_5, 0.716_878_6, 0.060_616_9], [0.013_932_2, 0.097_104_5, 0.714_173_3]];
    let inks: [[u8; 3]; 4] = [[0, 160, 224], [230, 0, 126], [255, 236, 0], [30, 30, 30]];
    let mut clut = Vec::new();
    for corner in 0..16usize {
        let mut linear = [1.0f64; 3];
        for (i, ink) in inks.iter().enumerate() {
            if corner >> (3 - i) & 1 == 1 {
                (0..3).for_each(|c| linear[c] *= srgb_decode(f64::from(ink[c]) / 255.0));
            }
        }
        clut.extend(mul(&SRGB_D50, linear).map(|v| (v * 32768.0).round().min(65535.0) as u16));
    }
    let lut = LutWarehouse::Lut(LutDataType {
        num_input_channels: 4,
        num_output_channels: 3,
        num_clut_grid_points: 2,
        matrix: Matrix3d::IDENTITY,
        num_input_table_entries: 2,
        num_output_table_entries: 2,
        input_table: LutStore::Store16([0, 65535].repeat(4)),
        clut_table: LutStore::Store16(clut),
        output_table: LutStore::Store16([0, 65535].repeat(3)),
        lut_type: LutType::Lut16,
    });
    let mut profile = ColorProfile::default();
    profile.profile_class = ProfileClass::OutputDevice;
    profile.color_space = DataColorSpace::Cmyk;
    profile.pcs = DataColorSpace::Xyz;
    profile.lut_a_to_b_perceptual = Some(lut.clone());
    profile.lut_a_to_b_colorimetric = Some(lut);
    profile.encode().unwrap()
}

#[test]
fn a_cmyk_jpeg_is_converted_through_its_cmyk_profile() {
    let plain = cmyk_jpeg([0, 255, 255], [255, 255, 255], false);
    let naive = decode_bytes(&plain).to_rgb8();
    assert_near("naive cyan ink", naive.get_pixel(4, 8).0, [0, 255, 255], 6);
    for ycck in [false, true] {
        let mut bytes = cmyk_jpeg([0, 255, 255], [255, 255, 255], ycck);
        bytes.splice(2..2, app2_icc(&cmyk_profile()));
        assert_eq!(validate_bytes(&bytes, None, &decoding()).has_icc, Some(true));
        for format in [OutputFormat::Png, OutputFormat::Jpeg] {
            let out = decode_bytes(&resize_to(&bytes, 16, 8, format));
            let tolerance = if format == OutputFormat::Jpeg { 8 } else { 5 };
            assert_near(&format!("cyan ink ycck={ycck} {format:?}"), out.to_rgb8().get_pixel(2, 4).0, [0, 160, 224], tolerance);
            assert_near(&format!("paper ycck={ycck} {format:?}"), out.to_rgb8().get_pixel(13, 4).0, [255, 255, 255], tolerance);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// TIFF input

fn tiff(img: &DynamicImage) -> Vec<u8> {
    let mut out = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Tiff).unwrap();
    out
}

#[test]
fn tiff_8_and_16_bit_are_validated_and_resized() {
    let rgb8 = photo();
    let rgb16 = DynamicImage::ImageRgb16(image::ImageBuffer::from_fn(64, 48, |x, y| Rgb([x as u16 * 1000 + 7, y as u16 * 1300 + 3, 40_000])));
    let grey16 = DynamicImage::ImageLuma16(image::ImageBuffer::from_fn(64, 48, |x, y| image::Luma([(x * 1000 + y) as u16])));
    let rgba8 = DynamicImage::ImageRgba8(RgbaImage::from_fn(64, 48, |x, y| Rgba([x as u8 * 4, y as u8 * 5, 90, (x + y) as u8 * 2])));
    let cases = [("rgb8", &rgb8, ColorKind::Rgb, 8), ("rgb16", &rgb16, ColorKind::Rgb, 16), ("grey16", &grey16, ColorKind::Gray, 16), ("rgba8", &rgba8, ColorKind::Rgba, 8)];
    for (what, img, color, depth) in cases {
        let bytes = tiff(img);
        assert_eq!(Format::sniff(&bytes), Some(Format::Tiff));
        let v = validate_bytes(&bytes, Some("scan.tif"), &decoding());
        assert!(v.is_valid, "{what}: {v:?}");
        assert_eq!((v.format, v.width, v.height, v.color_type, v.bit_depth), (Some(Format::Tiff), Some(64), Some(48), Some(color), Some(depth)), "{what}");
        assert_eq!(v.has_alpha, Some(img.color().has_alpha()));
        // Resized to PNG (a TIFF's default output), at the same size: the samples come through.
        let mut variant = Variant::new("same", Target { width: Some(64), height: Some(48), fit: Fit::Fill, ..Target::default() });
        variant.filter = pixelflow_imaging::resize::Filter::Nearest;
        let out = Resizer::new().resize(&bytes, &ResizeOptions::new(vec![variant]).unwrap()).unwrap().remove(0);
        assert_eq!(out.format, OutputFormat::Png, "{what}");
        let back = decode_bytes(&out.data);
        assert_eq!(back.color(), img.color(), "{what}: bit depth and channels kept");
        assert_eq!(back.to_rgba16(), img.to_rgba16(), "{what}: same samples");
        let half = resize_to(&bytes, 32, 24, OutputFormat::Jpeg);
        assert_eq!(decode::probe(&half, 1 << 20).unwrap().width, 32);
    }
    // Cut short: the decode says so, the batch goes on.
    let bytes = tiff(&rgb16);
    let v = validate_bytes(&bytes[..bytes.len() / 2], None, &decoding());
    assert!(!v.is_valid && v.reason.is_some(), "{v:?}");
}

// ---------------------------------------------------------------------------------------------
// Lossy WebP and AVIF output

#[test]
fn webp_and_avif_outputs_follow_quality_and_max_bytes() {
    let input = jpeg_with(&photo(), Effort::Fast);
    for format in [OutputFormat::Webp, OutputFormat::Avif] {
        let opts = |quality: u8, max_bytes: Option<u64>| OptimizeOptions {
            format: Some(format),
            quality,
            max_bytes,
            speed: Some(10),
            allow_larger: true,
            ..OptimizeOptions::default()
        };
        let high = optimize_bytes(&input, &opts(95, None)).unwrap();
        let low = optimize_bytes(&input, &opts(20, None)).unwrap();
        assert_eq!(Format::sniff(&high.data), Some(format.as_format()));
        assert!(low.data.len() < high.data.len(), "{format:?}: q20 {} < q95 {}", low.data.len(), high.data.len());
        assert_eq!((high.quality, high.width, high.height), (Some(95), 64, 48));
        // A budget between the two: bisection finds a quality below 95 that fits.
        let budget = (low.data.len() + high.data.len()) as u64 / 2;
        let fitted = optimize_bytes(&input, &opts(95, Some(budget))).unwrap();
        let q = fitted.quality.unwrap();
        assert!(fitted.data.len() as u64 <= budget && (20..95).contains(&q) && !fitted.over_budget, "{format:?}: q{q}, {} bytes", fitted.data.len());
        let above = optimize_bytes(&input, &opts(q + 1, None)).unwrap();
        assert!(above.data.len() as u64 > budget, "{format:?}: q{} would have fitted", q + 1);
    }
    // The WebP is decodable and close to the source at high quality.
    let webp = optimize_bytes(&input, &OptimizeOptions { format: Some(OutputFormat::Webp), quality: 95, ..OptimizeOptions::default() }).unwrap();
    assert_near("webp q95", decode_bytes(&webp.data).to_rgb8().get_pixel(10, 10).0, photo().to_rgb8().get_pixel(10, 10).0, 12);
}

#[test]
fn fixtures_stay_tiny() {
    for (name, bytes) in [
        ("cmyk", cmyk_jpeg([1, 2, 3], [4, 5, 6], false)),
        ("ycck", cmyk_jpeg([1, 2, 3], [4, 5, 6], true)),
        ("progressive", jpeg_with(&photo(), Effort::Balanced)),
        ("gif", animated_gif()),
    ] {
        assert!(bytes.len() < 16 << 10, "{name}: {} bytes", bytes.len());
        assert!(GenericImageView::dimensions(&decode_bytes(&bytes)).0 > 0);
    }
}
