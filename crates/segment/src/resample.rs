//! Convolution resampling of 8-bit images that reproduces Pillow's (`Image.resize` with a
//! convolution filter, `libImaging/Resample.c`) exactly: the same kernel support and placement,
//! coefficients normalised then fixed to 22 bits, a horizontal pass over the rows the vertical
//! pass needs, rounding and clipping to 8 bits between the passes. The published IS-Net
//! pre-processing resizes with Pillow; segmentation models can be sensitive enough to the last
//! bit of their input that a resampler differing by 1 on a few pixels changes large parts of a
//! mask, so the model input and the mask are resampled exactly as the reference does. Rows run
//! in parallel on rayon's pool.

use pixelflow_imaging::resize::Filter;
use rayon::prelude::*;

const PRECISION_BITS: u32 = 32 - 8 - 2;

/// A kernel and its support (in source pixels at scale 1).
#[derive(Clone, Copy)]
struct Kernel {
    support: f64,
    weight: fn(f64) -> f64,
}

fn bilinear(x: f64) -> f64 {
    let x = x.abs();
    if x < 1.0 {
        1.0 - x
    } else {
        0.0
    }
}

fn boxed(x: f64) -> f64 {
    if x > -0.5 && x <= 0.5 {
        1.0
    } else {
        0.0
    }
}

/// Pillow's bicubic: Keys' cubic with a = -0.5 (Catmull-Rom).
fn bicubic(x: f64) -> f64 {
    const A: f64 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * A
    } else {
        0.0
    }
}

/// Mitchell-Netravali with B = C = 1/3 (not in Pillow; same machinery).
fn mitchell(x: f64) -> f64 {
    const B: f64 = 1.0 / 3.0;
    const C: f64 = 1.0 / 3.0;
    let x = x.abs();
    if x < 1.0 {
        ((12.0 - 9.0 * B - 6.0 * C) * x * x * x + (-18.0 + 12.0 * B + 6.0 * C) * x * x + (6.0 - 2.0 * B)) / 6.0
    } else if x < 2.0 {
        ((-B - 6.0 * C) * x * x * x + (6.0 * B + 30.0 * C) * x * x + (-12.0 * B - 48.0 * C) * x + (8.0 * B + 24.0 * C)) / 6.0
    } else {
        0.0
    }
}

fn sinc(x: f64) -> f64 {
    if x == 0.0 {
        1.0
    } else {
        let x = x * std::f64::consts::PI;
        x.sin() / x
    }
}

fn lanczos3(x: f64) -> f64 {
    if -3.0 < x && x < 3.0 {
        sinc(x) * sinc(x / 3.0)
    } else {
        0.0
    }
}

fn kernel(filter: Filter) -> Option<Kernel> {
    let k = |support, weight| Some(Kernel { support, weight });
    match filter {
        Filter::Bilinear => k(1.0, bilinear),
        Filter::Box => k(0.5, boxed),
        Filter::CatmullRom => k(2.0, bicubic),
        Filter::Mitchell => k(2.0, mitchell),
        Filter::Lanczos3 => k(3.0, lanczos3),
        Filter::Nearest => None,
    }
}

/// For each output pixel along one axis: the first source pixel, how many, and their weights.
struct Coefficients {
    bounds: Vec<(usize, usize)>,
    ksize: usize,
    weights: Vec<i32>,
}

fn coefficients(in_size: usize, out_size: usize, kernel: Kernel) -> Coefficients {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = kernel.support * filterscale;
    let ksize = support.ceil() as usize * 2 + 1;
    let mut bounds = Vec::with_capacity(out_size);
    let mut weights = vec![0i32; out_size * ksize];
    let mut k = vec![0f64; ksize];
    for xx in 0..out_size {
        let center = (xx as f64 + 0.5) * scale;
        let ss = 1.0 / filterscale;
        // C's (int) truncates toward zero, as `as` does.
        let xmin = ((center - support + 0.5) as i64).max(0) as usize;
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize - xmin;
        let mut ww = 0.0;
        for (x, w) in k.iter_mut().enumerate().take(xmax) {
            *w = (kernel.weight)((x as f64 + xmin as f64 - center + 0.5) * ss);
            ww += *w;
        }
        for (x, w) in k.iter().enumerate().take(xmax) {
            let w = if ww != 0.0 { w / ww } else { *w };
            let fixed = w * f64::from(1u32 << PRECISION_BITS);
            weights[xx * ksize + x] = if w < 0.0 { (fixed - 0.5) as i32 } else { (fixed + 0.5) as i32 };
        }
        bounds.push((xmin, xmax));
    }
    Coefficients { bounds, ksize, weights }
}

#[inline]
fn clip8(v: i32) -> u8 {
    if v >= (1 << PRECISION_BITS << 8) {
        255
    } else if v <= 0 {
        0
    } else {
        (v >> PRECISION_BITS) as u8
    }
}

/// Resamples packed 8-bit pixels of `C` channels (1: grey, 3: RGB) from `sw` x `sh` to
/// `dw` x `dh` exactly as Pillow does; `None` for a filter that is not a convolution (nearest).
pub fn resize<const C: usize>(src: &[u8], sw: usize, sh: usize, dw: usize, dh: usize, filter: Filter) -> Option<Vec<u8>> {
    let kernel = kernel(filter)?;
    assert_eq!(src.len(), sw * sh * C, "packed pixels");
    let horizontal = coefficients(sw, dw, kernel);
    let vertical = coefficients(sh, dh, kernel);
    let (first, last) = (vertical.bounds[0].0, vertical.bounds[dh - 1].0 + vertical.bounds[dh - 1].1);
    // The horizontal pass, over the source rows the vertical pass reads.
    let (rows, offset): (std::borrow::Cow<[u8]>, usize) = if dw != sw {
        let mut tmp = vec![0u8; (last - first) * dw * C];
        tmp.par_chunks_mut(dw * C).enumerate().for_each(|(i, out)| {
            let row = &src[(first + i) * sw * C..(first + i + 1) * sw * C];
            for (xx, px) in out.chunks_exact_mut(C).enumerate() {
                let (xmin, n) = horizontal.bounds[xx];
                let k = &horizontal.weights[xx * horizontal.ksize..xx * horizontal.ksize + n];
                let mut ss = [1i32 << (PRECISION_BITS - 1); C];
                for (x, &w) in k.iter().enumerate() {
                    let s = &row[(xmin + x) * C..(xmin + x + 1) * C];
                    for c in 0..C {
                        ss[c] += i32::from(s[c]) * w;
                    }
                }
                for c in 0..C {
                    px[c] = clip8(ss[c]);
                }
            }
        });
        (tmp.into(), first)
    } else {
        (src.into(), 0)
    };
    if dh == sh {
        return Some(rows.into_owned());
    }
    let mut out = vec![0u8; dw * dh * C];
    out.par_chunks_mut(dw * C).enumerate().for_each(|(yy, line)| {
        let (ymin, n) = vertical.bounds[yy];
        let k = &vertical.weights[yy * vertical.ksize..yy * vertical.ksize + n];
        let mut ss = vec![1i32 << (PRECISION_BITS - 1); dw * C];
        for (y, &w) in k.iter().enumerate() {
            let row = &rows[(ymin + y - offset) * dw * C..(ymin + y - offset + 1) * dw * C];
            for (acc, &v) in ss.iter_mut().zip(row) {
                *acc += i32::from(v) * w;
            }
        }
        for (o, acc) in line.iter_mut().zip(ss) {
            *o = clip8(acc);
        }
    });
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_pillow_on_known_values() {
        // Pillow 13: Image.frombytes("L", (6, 1), bytes([0, 50, 100, 150, 200, 250])).resize((4, 1), Image.BILINEAR)
        // -> [19, 89, 161, 231]; .resize((9, 1), Image.BILINEAR) -> [0, 25, 58, 92, 125, 158, 192, 225, 250]
        let src = [0u8, 50, 100, 150, 200, 250];
        assert_eq!(resize::<1>(&src, 6, 1, 4, 1, Filter::Bilinear).unwrap(), [19, 89, 161, 231]);
        assert_eq!(resize::<1>(&src, 6, 1, 9, 1, Filter::Bilinear).unwrap(), [0, 25, 58, 92, 125, 158, 192, 225, 250]);
        // Separable: the same along a column.
        assert_eq!(resize::<1>(&src, 1, 6, 1, 4, Filter::Bilinear).unwrap(), [19, 89, 161, 231]);
        assert!(resize::<1>(&src, 6, 1, 3, 1, Filter::Nearest).is_none());
    }

    #[test]
    fn flat_images_stay_flat_and_sizes_are_kept() {
        for filter in [Filter::Bilinear, Filter::Box, Filter::CatmullRom, Filter::Mitchell, Filter::Lanczos3] {
            let src = vec![77u8; 37 * 23 * 3];
            let out = resize::<3>(&src, 37, 23, 100, 9, filter).unwrap();
            assert_eq!(out.len(), 100 * 9 * 3);
            assert!(out.iter().all(|&v| v == 77), "{filter:?}");
        }
    }
}
