//! Golden tests for the image kinds `images.rs` does not cover: CMYK (and YCCK) JPEG,
//! progressive JPEG, animated GIF (first frame) and ICC-tagged images. The fixtures are
//! generated here with the encoders the crate already links (mozjpeg, the `image` crate), except
//! one CMYK JPEG made by Pillow (`tests/data/cmyk-pillow.jpg`, recipe beside it) as a second
//! writer's opinion; each test says what a user expects of that kind of file.

use image::codecs::gif::{GifEncoder, Repeat};
use image::{Delay, DynamicImage, Frame, GenericImageView, Rgb, RgbImage, Rgba, RgbaImage};
use mozjpeg::{ColorSpace, Compress};
use pixelflow_imaging::decode::{self, ColorKind};
use pixelflow_imaging::encode::{self, EncodeOptions};
use pixelflow_imaging::geometry::{Fit, Target};
use pixelflow_imaging::{
    optimize_bytes, validate_bytes, Effort, Format, OptimizeOptions, OutputFormat, ResizeOptions, Resizer, ValidateOptions, Variant,
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
        let tolerance = if format == OutputFormat::Jpeg { 12 } else { 0 };
        for (x, y) in [(0, 0), (5, 2), (9, 4)] {
            assert_near(&format!("{format:?} ({x},{y})"), img.to_rgb8().get_pixel(x, y).0, [255, 0, 0], tolerance);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// ICC-tagged images

/// A structurally valid ICC profile header (v4, display class, colour space `space`, PCS XYZ,
/// no tags) padded to `len` bytes. Nothing here interprets it: it only has to be carried.
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
            let tolerance = if input == OutputFormat::Jpeg || output == OutputFormat::Jpeg { 24 } else { 2 };
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
