//! The neighbourhood filters (gaussian blur, unsharp mask, 3x3/5x5 convolution) on
//! premultiplied RGBA `f32` with clamp-to-edge borders, as passes over row bands on rayon.
//!
//! Every sum is built tap by tap in kernel order as `acc += w * v` from `0.0`, over whole rows
//! at a time (so the loops vectorise) but in the same order for every pixel.

use rayon::prelude::*;

use super::run::band_rows;

/// A normalised gaussian: `2 * radius + 1` weights.
#[derive(Debug, Clone, PartialEq)]
pub struct Gaussian {
    pub radius: usize,
    pub weights: Vec<f32>,
}

impl Gaussian {
    /// Radius `ceil(3 * sigma)`, weights `exp(-i² / (2 sigma²))` normalised in `f64`.
    pub(crate) fn new(sigma: f64) -> Gaussian {
        let radius = (3.0 * sigma).ceil().max(1.0) as usize;
        let r = radius as i64;
        let raw: Vec<f64> = (-r..=r).map(|i| (-((i * i) as f64) / (2.0 * sigma * sigma)).exp()).collect();
        let sum: f64 = raw.iter().sum();
        Gaussian { radius, weights: raw.iter().map(|w| (w / sum) as f32).collect() }
    }
}

#[derive(Debug, Clone)]
pub enum Neighbourhood {
    Blur(Gaussian),
    Unsharp { gaussian: Gaussian, amount: f32, threshold: f32 },
    /// `weights`: `size * size`, row-major, already divided by the divisor.
    Convolve { size: usize, weights: Vec<f32>, bias: f32, preserve_alpha: bool },
}

fn premultiplied(px: &[f32]) -> [f32; 4] {
    let a = px[3];
    [px[0] * a, px[1] * a, px[2] * a, a]
}

/// Writes a premultiplied result back as straight colour into `px` (which holds the pixel's
/// value before the pass): alpha clamped; where it is 0 the colour is left as it was.
fn unpremultiply_into(q: &[f32], bias: f32, px: &mut [f32]) {
    let a = q[3].clamp(0.0, 1.0);
    if a > 0.0 {
        for c in 0..3 {
            px[c] = (q[c] / a + bias).clamp(0.0, 1.0);
        }
    }
    px[3] = a;
}

/// `row` (RGBA) with `pad` copies of its first pixel before it and of its last after it,
/// premultiplied or not, into `out`.
fn padded_row(row: &[f32], pad: usize, premultiply: bool, out: &mut Vec<f32>) {
    let pixel = |px: &[f32]| if premultiply { premultiplied(px) } else { [px[0], px[1], px[2], px[3]] };
    out.clear();
    let (first, last) = (pixel(&row[..4]), pixel(&row[row.len() - 4..]));
    for _ in 0..pad {
        out.extend_from_slice(&first);
    }
    for px in row.chunks_exact(4) {
        out.extend_from_slice(&pixel(px));
    }
    for _ in 0..pad {
        out.extend_from_slice(&last);
    }
}

/// `acc += w * src`, element by element.
fn axpy(acc: &mut [f32], w: f32, src: &[f32]) {
    for (a, s) in acc.iter_mut().zip(src) {
        *a += w * s;
    }
}

/// The source row index `y + j - radius`, clamped into the image.
fn clamped(y: usize, j: usize, radius: usize, height: usize) -> usize {
    (y + j).saturating_sub(radius).min(height - 1)
}

/// Horizontal gaussian pass: `image` (straight RGBA) premultiplied and blurred along rows
/// into `scratch`.
fn blur_rows(image: &[f32], scratch: &mut [f32], width: usize, height: usize, g: &Gaussian) {
    let stride = width * 4;
    let band = band_rows(height) * stride;
    scratch.par_chunks_mut(band).zip(image.par_chunks(band)).for_each_init(Vec::new, |padded, (out_band, in_band)| {
        for (out, row) in out_band.chunks_exact_mut(stride).zip(in_band.chunks_exact(stride)) {
            padded_row(row, g.radius, true, padded);
            out.fill(0.0);
            for (j, &w) in g.weights.iter().enumerate() {
                axpy(out, w, &padded[j * 4..j * 4 + stride]);
            }
        }
    });
}

/// Vertical gaussian sum of `scratch` for output row `y`, into `acc`.
fn blur_column(scratch: &[f32], y: usize, width: usize, height: usize, g: &Gaussian, acc: &mut [f32]) {
    let stride = width * 4;
    acc.fill(0.0);
    for (j, &w) in g.weights.iter().enumerate() {
        let sy = clamped(y, j, g.radius, height);
        axpy(acc, w, &scratch[sy * stride..(sy + 1) * stride]);
    }
}

/// Runs one neighbourhood pass over `image` (straight RGBA, `width x height`), using
/// `scratch` (the same size) as working space.
pub(crate) fn apply(pass: &Neighbourhood, image: &mut [f32], scratch: &mut [f32], width: usize, height: usize) {
    let stride = width * 4;
    let rows = band_rows(height);
    let band = rows * stride;
    match pass {
        Neighbourhood::Blur(g) => {
            blur_rows(image, scratch, width, height, g);
            let scratch = &*scratch;
            image.par_chunks_mut(band).enumerate().for_each_init(
                || vec![0.0f32; stride],
                |acc, (b, out_band)| {
                    for (i, row) in out_band.chunks_exact_mut(stride).enumerate() {
                        blur_column(scratch, b * rows + i, width, height, g, acc);
                        for (q, px) in acc.chunks_exact(4).zip(row.chunks_exact_mut(4)) {
                            unpremultiply_into(q, 0.0, px);
                        }
                    }
                },
            );
        }
        Neighbourhood::Unsharp { gaussian: g, amount, threshold } => {
            blur_rows(image, scratch, width, height, g);
            let scratch = &*scratch;
            let (amount, threshold) = (*amount, *threshold);
            image.par_chunks_mut(band).enumerate().for_each_init(
                || vec![0.0f32; stride],
                |acc, (b, out_band)| {
                    for (i, row) in out_band.chunks_exact_mut(stride).enumerate() {
                        blur_column(scratch, b * rows + i, width, height, g, acc);
                        for (blurred, px) in acc.chunks_exact(4).zip(row.chunks_exact_mut(4)) {
                            let p = premultiplied(px);
                            let mut q = [0.0f32; 4];
                            for c in 0..4 {
                                let d = p[c] - blurred[c];
                                let d = if d.abs() < threshold { 0.0 } else { d };
                                q[c] = p[c] + amount * d;
                            }
                            unpremultiply_into(&q, 0.0, px);
                        }
                    }
                },
            );
        }
        Neighbourhood::Convolve { size, weights, bias, preserve_alpha } => {
            let (size, bias, premultiply) = (*size, *bias, !*preserve_alpha);
            let radius = size / 2;
            scratch.par_chunks_mut(band).zip(image.par_chunks(band)).for_each(|(out, src)| {
                for (o, px) in out.chunks_exact_mut(4).zip(src.chunks_exact(4)) {
                    o.copy_from_slice(&if premultiply { premultiplied(px) } else { [px[0], px[1], px[2], px[3]] });
                }
            });
            let scratch = &*scratch;
            image.par_chunks_mut(band).enumerate().for_each_init(
                || (vec![0.0f32; stride], Vec::new()),
                |(acc, padded), (b, out_band)| {
                    for (i, row) in out_band.chunks_exact_mut(stride).enumerate() {
                        let y = b * rows + i;
                        acc.fill(0.0);
                        for j in 0..size {
                            let sy = clamped(y, j, radius, height);
                            // Already premultiplied (or straight) in scratch: pad as it is.
                            padded_row(&scratch[sy * stride..(sy + 1) * stride], radius, false, padded);
                            for k in 0..size {
                                axpy(acc, weights[j * size + k], &padded[k * 4..k * 4 + stride]);
                            }
                        }
                        for (q, px) in acc.chunks_exact(4).zip(row.chunks_exact_mut(4)) {
                            if premultiply {
                                unpremultiply_into(q, bias, px);
                            } else {
                                for c in 0..3 {
                                    px[c] = (q[c] + bias).clamp(0.0, 1.0);
                                }
                            }
                        }
                    }
                },
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaussian_weights_are_normalised_and_symmetric() {
        for sigma in [0.3, 1.0, 2.5, 100.0] {
            let g = Gaussian::new(sigma);
            assert_eq!(g.radius, (3.0f64 * sigma).ceil() as usize);
            assert_eq!(g.weights.len(), 2 * g.radius + 1);
            let sum: f64 = g.weights.iter().map(|&w| f64::from(w)).sum();
            assert!((sum - 1.0).abs() < 1e-5, "sigma {sigma}: {sum}");
            assert!(g.weights.iter().zip(g.weights.iter().rev()).all(|(a, b)| a == b));
        }
        // A vanishing sigma is the identity.
        assert_eq!(Gaussian::new(1e-9).weights, [0.0, 1.0, 0.0]);
    }
}
