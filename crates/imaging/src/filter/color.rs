//! The per-pixel filters, compiled from their parameters into [`PixelOp`]s (matrices computed
//! in `f64`, rounded to `f32` once) and applied to rows of straight RGBA `f32`.

use super::FilterOp;

/// A per-pixel filter, ready to run. Each clamps what it writes to `0..=1`.
#[derive(Debug, Clone, PartialEq)]
pub enum PixelOp {
    /// `c * scale + offset` on R, G, B: brightness (`amount`, 0), invert (`1 - 2a`, `a`).
    Affine { scale: f32, offset: f32 },
    /// `(c - 0.5) * k + 0.5` on R, G, B.
    Contrast(f32),
    /// `c ^ exponent` on R, G, B.
    Power(f32),
    /// `RGB' = M · RGB`, row-major 3x3: saturation, hue rotation, grayscale, sepia.
    Matrix3([f32; 9]),
    /// `RGBA' = M · [R G B A 1]`, row-major 4x5.
    Matrix4x5([f32; 20]),
    /// `c * (1 - strength * smoothstep)`, see the module documentation.
    Vignette { strength: f32, radius: f32 },
}

fn to_f32<const N: usize>(m: [f64; N]) -> [f32; N] {
    m.map(|v| v as f32)
}

/// CSS `saturate(s)`.
pub(crate) fn saturate_matrix(s: f64) -> [f64; 9] {
    [
        0.213 + 0.787 * s,
        0.715 - 0.715 * s,
        0.072 - 0.072 * s,
        0.213 - 0.213 * s,
        0.715 + 0.285 * s,
        0.072 - 0.072 * s,
        0.213 - 0.213 * s,
        0.715 - 0.715 * s,
        0.072 + 0.928 * s,
    ]
}

/// CSS `hue-rotate(degrees)`.
pub(crate) fn hue_rotate_matrix(degrees: f64) -> [f64; 9] {
    let (sin, cos) = degrees.rem_euclid(360.0).to_radians().sin_cos();
    [
        0.213 + cos * 0.787 - sin * 0.213,
        0.715 - cos * 0.715 - sin * 0.715,
        0.072 - cos * 0.072 + sin * 0.928,
        0.213 - cos * 0.213 + sin * 0.143,
        0.715 + cos * 0.285 + sin * 0.140,
        0.072 - cos * 0.072 - sin * 0.283,
        0.213 - cos * 0.213 - sin * 0.787,
        0.715 - cos * 0.715 + sin * 0.715,
        0.072 + cos * 0.928 + sin * 0.072,
    ]
}

/// CSS `grayscale(amount)`.
pub(crate) fn grayscale_matrix(amount: f64) -> [f64; 9] {
    let g = 1.0 - amount;
    [
        0.2126 + 0.7874 * g,
        0.7152 - 0.7152 * g,
        0.0722 - 0.0722 * g,
        0.2126 - 0.2126 * g,
        0.7152 + 0.2848 * g,
        0.0722 - 0.0722 * g,
        0.2126 - 0.2126 * g,
        0.7152 - 0.7152 * g,
        0.0722 + 0.9278 * g,
    ]
}

/// CSS `sepia(amount)`.
pub(crate) fn sepia_matrix(amount: f64) -> [f64; 9] {
    let g = 1.0 - amount;
    [
        0.393 + 0.607 * g,
        0.769 - 0.769 * g,
        0.189 - 0.189 * g,
        0.349 - 0.349 * g,
        0.686 + 0.314 * g,
        0.168 - 0.168 * g,
        0.272 - 0.272 * g,
        0.534 - 0.534 * g,
        0.131 + 0.869 * g,
    ]
}

impl PixelOp {
    /// Compiles a per-pixel filter (whose parameters were checked).
    pub(crate) fn new(filter: &FilterOp) -> PixelOp {
        match *filter {
            FilterOp::Brightness { amount } => PixelOp::Affine { scale: amount as f32, offset: 0.0 },
            FilterOp::Contrast { amount } => PixelOp::Contrast(amount as f32),
            FilterOp::Saturation { amount } => PixelOp::Matrix3(to_f32(saturate_matrix(amount))),
            FilterOp::HueRotate { degrees } => PixelOp::Matrix3(to_f32(hue_rotate_matrix(degrees))),
            FilterOp::Gamma { value } => PixelOp::Power((1.0 / value) as f32),
            FilterOp::Grayscale { amount } => PixelOp::Matrix3(to_f32(grayscale_matrix(amount))),
            FilterOp::Sepia { amount } => PixelOp::Matrix3(to_f32(sepia_matrix(amount))),
            FilterOp::Invert { amount } => PixelOp::Affine { scale: (1.0 - 2.0 * amount) as f32, offset: amount as f32 },
            FilterOp::ColorMatrix { matrix } => PixelOp::Matrix4x5(to_f32(matrix)),
            FilterOp::Vignette { strength, radius } => PixelOp::Vignette { strength: strength as f32, radius: radius as f32 },
            FilterOp::Blur { .. } | FilterOp::Unsharp { .. } | FilterOp::Convolve { .. } => {
                unreachable!("{} is a neighbourhood filter", filter.name())
            }
        }
    }

    /// Applies the filter to row `y` (straight RGBA, `width` pixels) of a `width x height` image.
    pub(crate) fn apply_row(&self, row: &mut [f32], y: usize, width: usize, height: usize) {
        let unit = |v: f32| v.clamp(0.0, 1.0);
        let pixels = row.chunks_exact_mut(4);
        match *self {
            PixelOp::Affine { scale, offset } => {
                for px in pixels {
                    for c in &mut px[..3] {
                        *c = unit(*c * scale + offset);
                    }
                }
            }
            PixelOp::Contrast(k) => {
                for px in pixels {
                    for c in &mut px[..3] {
                        *c = unit((*c - 0.5) * k + 0.5);
                    }
                }
            }
            PixelOp::Power(e) => {
                for px in pixels {
                    for c in &mut px[..3] {
                        *c = unit(c.powf(e));
                    }
                }
            }
            PixelOp::Matrix3(m) => {
                for px in pixels {
                    let [r, g, b] = [px[0], px[1], px[2]];
                    px[0] = unit(m[0] * r + m[1] * g + m[2] * b);
                    px[1] = unit(m[3] * r + m[4] * g + m[5] * b);
                    px[2] = unit(m[6] * r + m[7] * g + m[8] * b);
                }
            }
            PixelOp::Matrix4x5(m) => {
                for px in pixels {
                    let [r, g, b, a] = [px[0], px[1], px[2], px[3]];
                    for (i, out) in px.iter_mut().enumerate() {
                        let m = &m[i * 5..i * 5 + 5];
                        *out = unit(m[0] * r + m[1] * g + m[2] * b + m[3] * a + m[4]);
                    }
                }
            }
            PixelOp::Vignette { strength, radius } => {
                let (cx, cy) = (width as f32 / 2.0, height as f32 / 2.0);
                let dy = (y as f32 + 0.5 - cy) / cy;
                for (x, px) in pixels.enumerate() {
                    let dx = (x as f32 + 0.5 - cx) / cx;
                    let d = ((dx * dx + dy * dy) / 2.0).sqrt();
                    let t = ((d - radius) / (1.0 - radius)).clamp(0.0, 1.0);
                    let f = 1.0 - strength * (t * t * (3.0 - 2.0 * t));
                    for c in &mut px[..3] {
                        *c = unit(*c * f);
                    }
                }
            }
        }
    }
}

/// Applies a run of per-pixel filters to one row, in order.
pub(crate) fn apply_row(ops: &[PixelOp], row: &mut [f32], y: usize, width: usize, height: usize) {
    for op in ops {
        op.apply_row(row, y, width, height);
    }
}
