//! The filter chain against hand-computed pixels (expected values worked out from the
//! documented formulas in `f64`, none of them near a rounding tie), and its invariants.

use image::{DynamicImage, GrayImage, ImageBuffer, Luma, Rgb, RgbImage, Rgba, RgbaImage};
use serde_json::{json, Value};

use super::*;

fn chain(filters: Value) -> FilterChain {
    FilterChain::parse(&filters).unwrap_or_else(|e| panic!("{filters}: {e}"))
}

fn applied(filters: Value, image: &DynamicImage) -> DynamicImage {
    let mut out = image.clone();
    chain(filters).apply(&mut out).unwrap();
    out
}

/// One RGBA pixel through a chain.
fn pixel(filters: Value, px: [u8; 4]) -> [u8; 4] {
    let img = DynamicImage::ImageRgba8(RgbaImage::from_pixel(1, 1, Rgba(px)));
    applied(filters, &img).as_rgba8().expect("stays RGBA8").get_pixel(0, 0).0
}

/// A deterministic busy RGBA image, alpha never 0 unless `holes`.
fn busy(w: u32, h: u32, holes: bool) -> RgbaImage {
    RgbaImage::from_fn(w, h, |x, y| {
        let n = x.wrapping_mul(2_654_435_761).wrapping_add(y.wrapping_mul(40_503)).rotate_left(x % 13 + y % 7);
        let a = if holes && (x + 2 * y) % 5 == 0 { 0 } else { (n >> 24) as u8 | 1 };
        Rgba([n as u8, (n >> 8) as u8, (n >> 16) as u8, a])
    })
}

/// A one-row grey image (opaque RGB) from its values.
fn row_rgb(values: &[u8]) -> DynamicImage {
    DynamicImage::ImageRgb8(RgbImage::from_fn(values.len() as u32, 1, |x, _| {
        let v = values[x as usize];
        Rgb([v, v, v])
    }))
}

fn red_row(image: &DynamicImage) -> Vec<u8> {
    image.to_rgba8().pixels().map(|p| p.0[0]).collect()
}

// ---- per-pixel filters, hand-computed ----

const PX: [u8; 4] = [200, 100, 50, 77];

#[test]
fn brightness_multiplies_and_clamps() {
    assert_eq!(pixel(json!([{"type": "brightness", "amount": 1.5}]), PX), [255, 150, 75, 77]);
    assert_eq!(pixel(json!([{"type": "brightness", "amount": 0}]), PX), [0, 0, 0, 77]);
}

#[test]
fn contrast_scales_around_the_middle() {
    // (c - 0.5) * k + 0.5, in 8-bit terms 1.5v - 63.75 and 0.5v + 63.75.
    assert_eq!(pixel(json!([{"type": "contrast", "amount": 1.5}]), [40, 128, 200, 255]), [0, 128, 236, 255]);
    assert_eq!(pixel(json!([{"type": "contrast", "amount": 0.5}]), PX), [164, 114, 89, 77]);
}

#[test]
fn saturation_uses_the_css_matrix() {
    // 0: every channel becomes .213 R + .715 G + .072 B = 117.7.
    assert_eq!(pixel(json!([{"type": "saturation", "amount": 0}]), PX), [118, 118, 118, 77]);
    assert_eq!(pixel(json!([{"type": "saturation", "amount": 0.5}]), PX), [159, 109, 84, 77]);
    // 2: 282.3, 82.3, -17.7 before clamping.
    assert_eq!(pixel(json!([{"type": "saturation", "amount": 2}]), PX), [255, 82, 0, 77]);
}

#[test]
fn hue_rotate_uses_the_css_matrix() {
    assert_eq!(pixel(json!([{"type": "hueRotate", "degrees": 180}]), PX), [35, 135, 185, 77]);
    assert_eq!(pixel(json!([{"type": "hueRotate", "degrees": 90}]), PX), [50, 146, 35, 77]);
    assert_eq!(pixel(json!([{"type": "hueRotate", "degrees": -90}]), PX), [185, 89, 200, 77]);
    assert_eq!(pixel(json!([{"type": "hueRotate", "degrees": 270}]), PX), [185, 89, 200, 77], "reduced modulo 360");
}

#[test]
fn gamma_raises_to_the_inverse() {
    // sqrt(64/255) * 255 = 127.75; sqrt(16/255) * 255 = 63.875.
    assert_eq!(pixel(json!([{"type": "gamma", "value": 2}]), [64, 16, 255, 9]), [128, 64, 255, 9]);
    assert_eq!(pixel(json!([{"type": "gamma", "value": 0.5}]), PX), [157, 39, 10, 77]);
}

#[test]
fn grayscale_and_sepia_use_the_css_matrices() {
    assert_eq!(pixel(json!([{"type": "grayscale"}]), PX), [118, 118, 118, 77], "117.65");
    assert_eq!(pixel(json!([{"type": "grayscale", "amount": 0.5}]), PX), [159, 109, 84, 77]);
    assert_eq!(pixel(json!([{"type": "sepia"}]), PX), [165, 147, 114, 77], "164.95, 146.8, 114.35");
    assert_eq!(pixel(json!([{"type": "sepia", "amount": 0.5}]), PX), [182, 123, 82, 77]);
}

#[test]
fn invert_flips_colour_not_alpha() {
    assert_eq!(pixel(json!([{"type": "invert"}]), PX), [55, 155, 205, 77]);
    // c * 0.5 + 0.25.
    assert_eq!(pixel(json!([{"type": "invert", "amount": 0.25}]), PX), [164, 114, 89, 77]);
}

#[test]
fn color_matrix_is_row_major_with_unit_offsets_and_may_add_alpha() {
    let swap = json!([{"type": "colorMatrix", "matrix": [
        0, 0, 1, 0, 0.2,
        0, 1, 0, 0, 0,
        1, 0, 0, 0, 0,
        0, 0, 0, 0.5, 0
    ]}]);
    assert_eq!(pixel(swap.clone(), [200, 100, 50, 200]), [101, 100, 200, 100]);
    // An opaque RGB source gains an alpha channel, since this matrix changes alpha.
    let out = applied(swap, &DynamicImage::ImageRgb8(RgbImage::from_pixel(2, 2, Rgb([200, 100, 50]))));
    assert_eq!(out.as_rgba8().expect("RGBA8").get_pixel(1, 1).0, [101, 100, 200, 128]);
    // One that leaves alpha alone keeps RGB.
    let keep = json!([{"type": "colorMatrix", "matrix": [0.5, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 0]}]);
    assert!(applied(keep, &DynamicImage::ImageRgb8(RgbImage::new(2, 2))).as_rgb8().is_some());
}

#[test]
fn vignette_darkens_towards_the_corners() {
    let img = DynamicImage::ImageRgba8(RgbaImage::from_pixel(3, 3, Rgba([200, 200, 200, 255])));
    let grid = |filters: Value| {
        let out = applied(filters, &img).to_rgba8();
        (0..3).map(|y| (0..3).map(|x| out.get_pixel(x, y).0[0]).collect::<Vec<_>>()).collect::<Vec<_>>()
    };
    // Corner: d = 2/3, smoothstep 20/27; edge: d = sqrt(2)/3.
    assert_eq!(grid(json!([{"type": "vignette", "strength": 1, "radius": 0}])), [[52, 109, 52], [109, 200, 109], [52, 109, 52]]);
    assert_eq!(grid(json!([{"type": "vignette", "strength": 0.5, "radius": 0}])), [[126, 154, 126], [154, 200, 154], [126, 154, 126]]);
    // The default radius 0.5 leaves the edges' middles alone.
    assert_eq!(grid(json!([{"type": "vignette", "strength": 1}])), [[148, 200, 148], [200, 200, 200], [148, 200, 148]]);
    // It follows the image's aspect ratio.
    let wide = DynamicImage::ImageRgb8(RgbImage::from_pixel(4, 2, Rgb([200, 200, 200])));
    let out = applied(json!([{"type": "vignette", "strength": 1, "radius": 0.2}]), &wide);
    assert_eq!(red_row(&out), [86, 170, 170, 86, 86, 170, 170, 86]);
}

// ---- neighbourhood filters ----

/// Expected blur of a black-to-white step (sigma 1: taps e^0, e^-1/2, e^-2, e^-9/2).
const STEP_BLURRED: [u8; 8] = [0, 1, 15, 77, 178, 240, 254, 255];

#[test]
fn blur_of_a_step_follows_the_gaussian_with_clamped_edges() {
    let step = row_rgb(&[0, 0, 0, 0, 255, 255, 255, 255]);
    let out = applied(json!([{"type": "blur", "sigma": 1}]), &step);
    assert_eq!(red_row(&out), STEP_BLURRED);
    assert!(out.as_rgb8().is_some(), "an opaque RGB image stays RGB");
    // The vertical pass: the same step as a column.
    let column = DynamicImage::ImageRgb8(RgbImage::from_fn(1, 8, |_, y| if y < 4 { Rgb([0, 0, 0]) } else { Rgb([255, 255, 255]) }));
    assert_eq!(red_row(&applied(json!([{"type": "blur", "sigma": 1}]), &column)), STEP_BLURRED);
}

#[test]
fn blur_of_a_constant_image_is_constant() {
    for sigma in [0.5, 2.0, 40.0] {
        let img = DynamicImage::ImageRgba8(RgbaImage::from_pixel(9, 7, Rgba([13, 200, 77, 128])));
        let out = applied(json!([{"type": "blur", "sigma": sigma}]), &img);
        assert!(out.to_rgba8().pixels().all(|p| p.0 == [13, 200, 77, 128]), "sigma {sigma}");
        let img16 = DynamicImage::ImageRgb16(ImageBuffer::from_pixel(9, 7, Rgb([1234u16, 40000, 65535])));
        let out = applied(json!([{"type": "blur", "sigma": sigma}]), &img16);
        assert!(out.as_rgb16().unwrap().pixels().all(|p| p.0 == [1234, 40000, 65535]), "16-bit, sigma {sigma}");
    }
}

#[test]
fn blur_is_premultiplied_so_hidden_colour_does_not_bleed() {
    // Opaque grey next to transparent pixels whose (invisible) colour is red.
    let img = DynamicImage::ImageRgba8(RgbaImage::from_fn(8, 1, |x, _| if x < 4 { Rgba([100, 100, 100, 255]) } else { Rgba([255, 0, 0, 0]) }));
    let out = applied(json!([{"type": "blur", "sigma": 1}]), &img).to_rgba8();
    let alpha: Vec<u8> = out.pixels().map(|p| p.0[3]).collect();
    let mut expect = STEP_BLURRED;
    expect.reverse();
    assert_eq!(alpha, expect);
    for p in out.pixels().take(7) {
        assert_eq!(&p.0[..3], &[100, 100, 100], "colour stays grey where anything is visible");
    }
    // Nothing reached the last pixel: alpha 0, colour left as it was.
    assert_eq!(out.get_pixel(7, 0).0, [255, 0, 0, 0]);
}

#[test]
fn a_sigma_larger_than_the_image_is_fine() {
    let img = DynamicImage::ImageRgba8(busy(5, 3, true));
    let out = applied(json!([{"type": "blur", "sigma": 100}]), &img);
    assert_eq!((out.width(), out.height()), (5, 3));
}

#[test]
fn unsharp_adds_the_difference_from_the_blur() {
    let step = row_rgb(&[64, 64, 64, 64, 192, 192, 192, 192]);
    // 2p - blur(p): 64, 63.43, 56.52, 25.54 | 230.46, 199.48, 192.57, 192.
    let out = applied(json!([{"type": "unsharp", "sigma": 1, "amount": 1}]), &step);
    assert_eq!(red_row(&out), [64, 63, 57, 26, 230, 199, 193, 192]);
    // Differences below the threshold (0.05 = 12.75 levels) are left alone.
    let out = applied(json!([{"type": "unsharp", "sigma": 1, "amount": 0.5, "threshold": 0.05}]), &step);
    assert_eq!(red_row(&out), [64, 64, 64, 45, 211, 192, 192, 192]);
    // Overshoot clamps.
    let out = applied(json!([{"type": "unsharp", "sigma": 1, "amount": 10}]), &step);
    assert_eq!(red_row(&out)[3..5], [0, 255]);
    // A constant image has nothing to sharpen, up to its edges.
    let flat = row_rgb(&[90; 6]);
    assert_eq!(red_row(&applied(json!([{"type": "unsharp", "sigma": 2, "amount": 3}]), &flat)), [90; 6]);
}

fn grid3() -> DynamicImage {
    let v = [10u8, 20, 30, 40, 50, 60, 70, 80, 90];
    DynamicImage::ImageLuma8(GrayImage::from_fn(3, 3, |x, y| Luma([v[(y * 3 + x) as usize]])))
}

fn luma(image: &DynamicImage) -> Vec<u8> {
    image.as_luma8().expect("stays grey").as_raw().clone()
}

#[test]
fn convolve_lays_the_kernel_as_written_with_clamped_edges() {
    // The weight right of the centre takes each pixel's right neighbour (correlation).
    let right = applied(json!([{"type": "convolve", "kernel": [0, 0, 0, 0, 0, 1, 0, 0, 0]}]), &grid3());
    assert_eq!(luma(&right), [20, 30, 30, 50, 60, 60, 80, 90, 90]);
    // Box blur, divisor defaulting to the sum (9). Corner: (10+10+20)*2 + 40+40+50 = 210 -> 23.3.
    let boxed = applied(json!([{"type": "convolve", "kernel": [1, 1, 1, 1, 1, 1, 1, 1, 1]}]), &grid3());
    assert_eq!(luma(&boxed)[0], 23);
    assert_eq!(luma(&boxed)[4], 50);
    // 5x5: kernel[2] takes the pixel two rows up, kernel[10] the one two columns left; clamped.
    let one_at = |i: usize| {
        let mut k = vec![0; 25];
        k[i] = 1;
        json!([{"type": "convolve", "kernel": k}])
    };
    assert_eq!(luma(&applied(one_at(2), &grid3())), [10, 20, 30, 10, 20, 30, 10, 20, 30]);
    assert_eq!(luma(&applied(one_at(10), &grid3())), [10, 10, 10, 40, 40, 40, 70, 70, 70]);
}

#[test]
fn convolve_divisor_bias_and_preserve_alpha() {
    let edge = [-1, -1, -1, -1, 8, -1, -1, -1, -1];
    // Centre: 8 * 50 - 400 = 0; bias 0.2 = 51 levels.
    let out = applied(json!([{"type": "convolve", "kernel": edge, "preserveAlpha": true, "bias": 0.2}]), &grid3());
    assert_eq!(luma(&out)[4], 51);
    // On premultiplied alpha a kernel summing to 0 makes the opaque image transparent: the
    // output gains an alpha channel (and keeps the colour of what became invisible).
    let out = applied(json!([{"type": "convolve", "kernel": edge}]), &grid3());
    let la = out.as_luma_alpha8().expect("grey + alpha");
    assert!(la.pixels().all(|p| p.0[1] == 0));
    assert_eq!(la.get_pixel(1, 1).0, [50, 0]);
    // An explicit divisor: box sum 450 / 18 = 25 at the centre.
    let out = applied(json!([{"type": "convolve", "kernel": [1, 1, 1, 1, 1, 1, 1, 1, 1], "divisor": 18, "preserveAlpha": true}]), &grid3());
    assert_eq!(luma(&out)[4], 25);
}

// ---- chain invariants ----

#[test]
fn identity_parameters_give_identical_output() {
    let mut identity_5x5 = vec![0; 25];
    identity_5x5[12] = 1;
    let filters = json!([
        {"type": "brightness", "amount": 1}, {"type": "contrast", "amount": 1}, {"type": "saturation", "amount": 1},
        {"type": "hueRotate", "degrees": 0}, {"type": "hueRotate", "degrees": 360}, {"type": "gamma", "value": 1},
        {"type": "grayscale", "amount": 0}, {"type": "sepia", "amount": 0}, {"type": "invert", "amount": 0},
        {"type": "colorMatrix", "matrix": [1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 0]},
        {"type": "vignette", "strength": 0}, {"type": "unsharp", "sigma": 2, "amount": 0},
        {"type": "convolve", "kernel": [0, 0, 0, 0, 1, 0, 0, 0, 0]}, {"type": "convolve", "kernel": identity_5x5},
        {"type": "brightness", "amount": 1}
    ]);
    let rgba = DynamicImage::ImageRgba8(busy(23, 11, true));
    assert_eq!(applied(filters.clone(), &rgba), rgba);
    let rgba16 = DynamicImage::ImageRgba16(ImageBuffer::from_fn(13, 9, |x, y| {
        let p = busy(13, 9, false).get_pixel(x, y).0;
        Rgba([u16::from(p[0]) * 256 + 90, u16::from(p[1]) * 251, u16::from(p[2]) * 199, u16::from(p[3]) * 257])
    }));
    assert_eq!(applied(filters.clone(), &rgba16), rgba16);
    let gray = DynamicImage::ImageLuma8(GrayImage::from_fn(7, 5, |x, y| Luma([(x * 37 + y * 11) as u8])));
    assert_eq!(applied(filters, &gray), gray);
}

#[test]
fn fused_passes_equal_sequential_application() {
    let filters = json!([
        {"type": "brightness", "amount": 1.3}, {"type": "hueRotate", "degrees": 40}, {"type": "gamma", "value": 1.7},
        {"type": "blur", "sigma": 1.5},
        {"type": "contrast", "amount": 1.4}, {"type": "vignette", "strength": 0.6}, {"type": "saturation", "amount": 1.8},
        {"type": "colorMatrix", "matrix": [0.9, 0.1, 0, 0, 0.02, 0, 1, 0, 0, 0, 0.1, 0, 0.9, 0, 0, 0, 0, 0, 0.8, 0.1]},
        {"type": "unsharp", "sigma": 0.8, "amount": 0.7},
        {"type": "sepia", "amount": 0.3}, {"type": "invert", "amount": 0.1}
    ]);
    let fused = chain(filters);
    assert_eq!(fused.passes(), 5, "three runs of per-pixel filters and two neighbourhood passes");
    let sequential = FilterChain { passes: compile(fused.filters(), false), ..fused.clone() };
    assert_eq!(sequential.passes(), 11);
    // Compared on 16 bits: any difference in the f32 working values would show.
    let img = DynamicImage::ImageRgba16(DynamicImage::ImageRgba8(busy(31, 17, true)).to_rgba16());
    let (mut a, mut b) = (img.clone(), img);
    fused.apply(&mut a).unwrap();
    sequential.apply(&mut b).unwrap();
    assert_eq!(a, b);
}

#[test]
fn the_result_does_not_depend_on_the_number_of_threads() {
    let filters = json!([{"type": "contrast", "amount": 1.2}, {"type": "blur", "sigma": 2}, {"type": "convolve", "kernel": [0, -1, 0, -1, 5, -1, 0, -1, 0]}]);
    let img = DynamicImage::ImageRgba8(busy(40, 300, true));
    let many = applied(filters.clone(), &img);
    let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
    let one = pool.install(|| applied(filters, &img));
    assert_eq!(many, one);
}

#[test]
fn sixteen_bit_sources_stay_sixteen_bit() {
    let img = DynamicImage::ImageRgba16(ImageBuffer::from_fn(4, 3, |x, y| Rgba([x as u16 * 9000, y as u16 * 20000 + 7, 65535, 1000 + x as u16])));
    let out = applied(json!([{"type": "invert"}]), &img);
    let (src, out) = (img.as_rgba16().unwrap(), out.as_rgba16().expect("stays RGBA16"));
    for (s, o) in src.pixels().zip(out.pixels()) {
        assert_eq!(o.0, [65535 - s.0[0], 65535 - s.0[1], 65535 - s.0[2], s.0[3]]);
    }
    let grey = DynamicImage::ImageLuma16(ImageBuffer::from_pixel(3, 3, Luma([1000u16])));
    let out = applied(json!([{"type": "brightness", "amount": 0.5}, {"type": "blur", "sigma": 1}]), &grey);
    assert!(out.as_luma16().expect("stays grey 16").pixels().all(|p| p.0 == [500]));
}

#[test]
fn colour_filters_leave_alpha_untouched() {
    let img = DynamicImage::ImageRgba8(busy(17, 9, true));
    let out = applied(
        json!([{"type": "brightness", "amount": 1.7}, {"type": "sepia"}, {"type": "hueRotate", "degrees": 123},
               {"type": "gamma", "value": 0.4}, {"type": "vignette", "strength": 0.9, "radius": 0.1}, {"type": "invert"}]),
        &img,
    );
    let alpha = |i: &DynamicImage| i.to_rgba8().pixels().map(|p| p.0[3]).collect::<Vec<_>>();
    assert_eq!(alpha(&out), alpha(&img));
}

#[test]
fn grey_stays_grey_unless_a_filter_adds_colour() {
    let gray = DynamicImage::ImageLuma8(GrayImage::from_pixel(2, 2, Luma([100])));
    assert!(applied(json!([{"type": "saturation", "amount": 3}, {"type": "hueRotate", "degrees": 77}]), &gray).as_luma8().is_some());
    let sepia = applied(json!([{"type": "sepia"}]), &gray);
    assert_eq!(sepia.as_rgb8().expect("colour").get_pixel(0, 0).0, [135, 120, 94]);
}

#[test]
fn cancelling_leaves_the_image_as_it_was() {
    let img = DynamicImage::ImageRgba8(busy(5, 5, false));
    let mut out = img.clone();
    let err = chain(json!([{"type": "blur", "sigma": 1}])).apply_with(&mut out, &|| true).unwrap_err();
    assert!(matches!(err, Error::Cancelled));
    assert_eq!(out, img);
}

// ---- hostile parameters ----

fn refusal(filters: Value) -> String {
    match FilterChain::parse(&filters) {
        Err(Error::InvalidParameters(m)) => m,
        other => panic!("{filters} was not refused as invalid parameters: {other:?}"),
    }
}

#[test]
fn hostile_parameters_are_refused_with_index_and_field() {
    let cases = [
        (json!([{"type": "blur", "sigma": 1}, {"type": "blur", "sigma": 1e6}]), "filters[1].sigma (blur)"),
        (json!([{"type": "blur", "sigma": 0}]), "filters[0].sigma"),
        (json!([{"type": "blur", "sigma": -1}]), "filters[0].sigma"),
        (json!([{"type": "blur", "sigma": "2"}]), "filters[0].sigma (blur): must be a number"),
        (json!([{"type": "blur"}]), "filters[0].sigma (blur): is required"),
        (json!([{"type": "blur", "sigma": 1, "radius": 3}]), "filters[0].radius (blur): unknown field"),
        (json!([{"type": "invert"}, {"type": "sharpen"}]), "filters[1].type: unknown filter 'sharpen'"),
        (json!([{"sigma": 1}]), "filters[0].type is required"),
        (json!([5]), "filters[0] must be an object"),
        (json!([{"type": "convolve", "kernel": [1, 2, 3, 4, 5, 6, 7, 8]}]), "filters[0].kernel (convolve): must hold 9"),
        (json!([{"type": "convolve", "kernel": vec![1; 10_000]}]), "filters[0].kernel"),
        (json!([{"type": "convolve", "kernel": [1, 1, 1, 1, "x", 1, 1, 1, 1]}]), "entry 4 must be a number"),
        (json!([{"type": "convolve", "kernel": [0, 0, 0, 0, 1, 0, 0, 0, 0], "divisor": 0}]), "filters[0].divisor"),
        (json!([{"type": "convolve", "kernel": [0, 0, 0, 0, 1e9, 0, 0, 0, 0]}]), "filters[0].kernel"),
        (json!([{"type": "colorMatrix", "matrix": vec![0; 19]}]), "filters[0].matrix (colorMatrix): must hold 20"),
        (json!([{"type": "gamma", "value": 0}]), "filters[0].value (gamma)"),
        (json!([{"type": "vignette", "strength": 0.5, "radius": 1}]), "filters[0].radius"),
        (json!([{"type": "grayscale", "amount": 1.5}]), "filters[0].amount"),
        (json!([{"type": "unsharp", "sigma": 1, "amount": 1, "threshold": 2}]), "filters[0].threshold"),
        (json!([{"type": "convolve", "kernel": [0, 0, 0, 0, 1, 0, 0, 0, 0], "preserveAlpha": "yes"}]), "filters[0].preserveAlpha"),
        (json!([]), "1 to 32 filters"),
        (json!(vec![json!({"type": "invert"}); 33]), "1 to 32 filters"),
        (json!({"type": "blur", "sigma": 1}), "must be an array"),
    ];
    for (filters, expect) in cases {
        let message = refusal(filters.clone());
        assert!(message.contains(expect), "{filters}: {message:?} should contain {expect:?}");
    }
    // Values JSON cannot carry, through the Rust API.
    for (op, field) in [
        (FilterOp::Blur { sigma: f64::NAN }, "sigma"),
        (FilterOp::Brightness { amount: f64::INFINITY }, "amount"),
        (FilterOp::HueRotate { degrees: f64::NAN }, "degrees"),
        (FilterOp::Unsharp { sigma: 1.0, amount: f64::NAN, threshold: 0.0 }, "amount"),
        (FilterOp::Convolve { kernel: vec![f64::NAN; 9], divisor: None, bias: 0.0, preserve_alpha: false }, "kernel"),
        (FilterOp::Convolve { kernel: vec![1.0; 9], divisor: Some(f64::NAN), bias: 0.0, preserve_alpha: false }, "divisor"),
    ] {
        let message = match FilterChain::new(vec![FilterOp::Invert { amount: 1.0 }, op.clone()]) {
            Err(Error::InvalidParameters(m)) => m,
            other => panic!("{op:?} was accepted: {other:?}"),
        };
        assert!(message.starts_with(&format!("filters[1].{field} ")), "{message}");
    }
    // null reads as absent.
    assert_eq!(chain(json!([{"type": "vignette", "strength": 0.5, "radius": null}])).filters(), [FilterOp::Vignette { strength: 0.5, radius: 0.5 }]);
}

// ---- bytes and files ----

fn png(image: &DynamicImage) -> Vec<u8> {
    encode::encode(image, &EncodeOptions::new(OutputFormat::Png)).unwrap()
}

#[test]
fn bytes_are_decoded_filtered_and_encoded() {
    let img = DynamicImage::ImageRgba8(RgbaImage::from_pixel(6, 4, Rgba(PX)));
    let options = FilterOptions::new(chain(json!([{"type": "invert"}])));
    let out = filter_bytes(&png(&img), &options).unwrap();
    assert_eq!((out.width, out.height, out.format), (6, 4, OutputFormat::Png));
    let back = image::load_from_memory(&out.data).unwrap().to_rgba8();
    assert_eq!(back.get_pixel(5, 3).0, [55, 155, 205, 77]);

    let mut bad = options.clone();
    bad.quality = 0;
    assert!(matches!(filter_bytes(&png(&img), &bad), Err(Error::InvalidParameters(_))));
    let mut small = options;
    small.max_pixels = 10;
    assert!(matches!(filter_bytes(&png(&img), &small), Err(Error::TooManyPixels { .. })));
}

#[test]
fn files_are_written_atomically_under_their_names_and_never_over_the_input() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("pic.png");
    std::fs::write(&input, png(&DynamicImage::ImageRgb8(RgbImage::from_pixel(5, 5, Rgb([10, 20, 30]))))).unwrap();
    let out_dir = dir.path().join("out");
    let mut options = FilterOptions::new(chain(json!([{"type": "blur", "sigma": 1}])));
    options.format = Some(OutputFormat::Jpeg);
    let first = filter_file(&input, &out_dir, &options).unwrap();
    assert_eq!(first.path, out_dir.join("pic-filtered.jpg"));
    assert_eq!(first.bytes, std::fs::metadata(&first.path).unwrap().len());
    let bytes = std::fs::read(&first.path).unwrap();
    assert_eq!(filter_file(&input, &out_dir, &options).unwrap(), first);
    assert_eq!(std::fs::read(&first.path).unwrap(), bytes, "idempotent");

    options.format = None;
    options.naming = NameTemplate::parse("{stem}.{ext}").unwrap();
    assert!(matches!(filter_file(&input, dir.path(), &options), Err(Error::InvalidParameters(_))), "would overwrite the input");
    assert!(matches!(filter_file(&dir.path().join("nope.png"), &out_dir, &options), Err(Error::InputNotFound { .. })));
}

/// Random chains of in-range filters on random small images of every layout: never a panic,
/// the size kept, the bit depth kept, and the same answer twice.
#[test]
fn random_chains_on_random_images_behave() {
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..150 {
        let mut unit = || (next() % 10_001) as f64 / 10_000.0;
        let mut filters = Vec::new();
        for _ in 0..1 + (unit() * 4.0) as usize {
            let u = unit();
            let f = match (unit() * 13.0) as usize {
                0 => FilterOp::Brightness { amount: u * 3.0 },
                1 => FilterOp::Contrast { amount: u * 3.0 },
                2 => FilterOp::Saturation { amount: u * 3.0 },
                3 => FilterOp::HueRotate { degrees: u * 2000.0 - 1000.0 },
                4 => FilterOp::Gamma { value: 0.01 + u * 5.0 },
                5 => FilterOp::Grayscale { amount: u },
                6 => FilterOp::Sepia { amount: u },
                7 => FilterOp::Invert { amount: u },
                8 => FilterOp::ColorMatrix { matrix: std::array::from_fn(|i| ((i as f64 * 7.3 + u * 100.0) % 6.0) - 3.0) },
                9 => FilterOp::Vignette { strength: u, radius: u * 0.99 },
                10 => FilterOp::Blur { sigma: 0.01 + u * 4.0 },
                11 => FilterOp::Unsharp { sigma: 0.01 + u * 3.0, amount: u * 5.0, threshold: u / 10.0 },
                _ => FilterOp::Convolve {
                    kernel: (0..if u < 0.5 { 9 } else { 25 }).map(|i| ((i as f64 * 3.7 + u * 50.0) % 4.0) - 2.0).collect(),
                    divisor: None,
                    bias: u - 0.5,
                    preserve_alpha: u < 0.3,
                },
            };
            filters.push(f);
        }
        let chain = FilterChain::new(filters.clone()).unwrap();
        let (w, h) = (1 + (next() % 9) as u32, 1 + (next() % 7) as u32);
        let base = busy(w, h, true);
        let image = match next() % 5 {
            0 => DynamicImage::ImageLuma8(DynamicImage::ImageRgba8(base).to_luma8()),
            1 => DynamicImage::ImageLumaA16(DynamicImage::ImageRgba8(base).to_luma_alpha16()),
            2 => DynamicImage::ImageRgb8(DynamicImage::ImageRgba8(base).to_rgb8()),
            3 => DynamicImage::ImageRgba16(DynamicImage::ImageRgba8(base).to_rgba16()),
            _ => DynamicImage::ImageRgba8(base),
        };
        let (mut a, mut b) = (image.clone(), image.clone());
        chain.apply(&mut a).unwrap();
        chain.apply(&mut b).unwrap();
        assert_eq!(a, b, "{filters:?}");
        assert_eq!((a.width(), a.height()), (w, h));
        let depth = |i: &DynamicImage| i.color().bytes_per_pixel() / i.color().channel_count();
        assert_eq!(depth(&a), depth(&image), "{filters:?}");
    }
}
