//! Pre- and post-processing on pixels, in parallel on rayon's pool: the model input (resize,
//! normalise, lay out), the mask (activation, quantisation, resize back, threshold, feather),
//! its statistics (coverage, bounding box) and the images made from it (cutout, crop, new
//! background).

use fast_image_resize as fir;
use image::{GrayImage, RgbImage, Rgba, RgbaImage};
use pixelflow_imaging::resize::Filter;
use rayon::prelude::*;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::manifest::{Activation, InputSpec, Layout, Manifest, Normalize};
use crate::resample;

/// Resamples packed 8-bit pixels (`pixel_type` U8 or U8x3) to `dst_w` x `dst_h`: Pillow's
/// convolution exactly ([`crate::resample`]), or fast_image_resize for `nearest`.
pub fn resize_packed(src: &[u8], src_w: u32, src_h: u32, pixel_type: fir::PixelType, dst_w: u32, dst_h: u32, filter: Filter) -> Result<Vec<u8>> {
    let (sw, sh, dw, dh) = (src_w as usize, src_h as usize, dst_w as usize, dst_h as usize);
    let exact = match pixel_type {
        fir::PixelType::U8 => resample::resize::<1>(src, sw, sh, dw, dh, filter),
        fir::PixelType::U8x3 => resample::resize::<3>(src, sw, sh, dw, dh, filter),
        other => return Err(Error::invalid(format!("cannot resample {other:?} pixels"))),
    };
    if let Some(out) = exact {
        return Ok(out);
    }
    let failed = |e: String| Error::Image(pixelflow_imaging::Error::Decode(format!("resampling failed: {e}")));
    let source = fir::images::ImageRef::new(src_w, src_h, src, pixel_type).map_err(|e| failed(e.to_string()))?;
    let mut out = fir::images::Image::new(dst_w, dst_h, pixel_type);
    let options = fir::ResizeOptions::new().resize_alg(filter.algorithm());
    fir::Resizer::new().resize(&source, &mut out, &options).map_err(|e| failed(e.to_string()))?;
    Ok(out.into_vec())
}

/// The model's input tensor for an RGB image: resized to the manifest's size with its filter,
/// each channel `(px - mean) / std`, in its layout.
pub fn prepare_input(rgb: &RgbImage, spec: &InputSpec) -> Result<Vec<f32>> {
    let (w, h) = (spec.width as usize, spec.height as usize);
    let resized = if (rgb.width(), rgb.height()) == (spec.width, spec.height) {
        rgb.as_raw().clone()
    } else {
        resize_packed(rgb.as_raw(), rgb.width(), rgb.height(), fir::PixelType::U8x3, spec.width, spec.height, spec.resize)?
    };
    let scale = spec.std.map(|s| 1.0 / s);
    let bias = [0, 1, 2].map(|c| -spec.mean[c] * scale[c]);
    let mut tensor = vec![0f32; 3 * w * h];
    match spec.layout {
        Layout::Nchw => {
            // One task per (channel, row): rows of each plane are contiguous.
            tensor.par_chunks_mut(w).enumerate().for_each(|(i, out)| {
                let (c, y) = (i / h, i % h);
                let src = &resized[y * w * 3..(y + 1) * w * 3];
                for (o, px) in out.iter_mut().zip(src.chunks_exact(3)) {
                    *o = f32::from(px[c]) * scale[c] + bias[c];
                }
            });
        }
        Layout::Nhwc => {
            tensor.par_chunks_mut(w * 3).zip(resized.par_chunks(w * 3)).for_each(|(out, src)| {
                for (i, (o, &v)) in out.iter_mut().zip(src).enumerate() {
                    *o = f32::from(v) * scale[i % 3] + bias[i % 3];
                }
            });
        }
    }
    Ok(tensor)
}

/// The model's output as an 8-bit mask at the model's size: the manifest's activation and
/// normalisation, clamped to 0..1, `round(p * 255)` (as @imgly/background-removal does; ties to
/// even, as numpy rounds).
pub fn quantise_output(output: &[f32], manifest: &Manifest) -> GrayImage {
    let (w, h) = (manifest.input.width, manifest.input.height);
    let (lo, hi) = match manifest.output.normalize {
        Normalize::None => (0.0, 1.0),
        Normalize::Minmax => {
            let (lo, hi) = output.iter().filter(|v| v.is_finite()).fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
            if hi > lo {
                (lo, hi)
            } else {
                (0.0, 1.0)
            }
        }
    };
    let activation = manifest.output.activation;
    let pixels: Vec<u8> = output
        .par_iter()
        .map(|&v| {
            let v = match activation {
                Activation::None => v,
                Activation::Sigmoid => 1.0 / (1.0 + (-v).exp()),
            };
            let p = ((v - lo) / (hi - lo)).clamp(0.0, 1.0);
            // NaN (a broken model) becomes background.
            if p.is_nan() {
                0
            } else {
                (p * 255.0).round_ties_even() as u8
            }
        })
        .collect();
    GrayImage::from_raw(w, h, pixels).expect("one byte per pixel")
}

/// The mask resized back to the image's size.
pub fn resize_mask(mask: &GrayImage, width: u32, height: u32, filter: Filter) -> Result<GrayImage> {
    if (mask.width(), mask.height()) == (width, height) {
        return Ok(mask.clone());
    }
    let data = resize_packed(mask.as_raw(), mask.width(), mask.height(), fir::PixelType::U8, width, height, filter)?;
    Ok(GrayImage::from_raw(width, height, data).expect("one byte per pixel"))
}

/// The 8-bit cut-off of a 0..1 threshold: `alpha >= cut` is subject. 0.5 is 128.
pub fn cut_of(threshold: f64) -> u8 {
    (threshold * 255.0).round().clamp(1.0, 255.0) as u8
}

/// Makes the mask hard: 255 where `alpha >= cut`, else 0.
pub fn binarise(mask: &mut GrayImage, cut: u8) {
    mask.par_chunks_mut(4096).for_each(|px| px.iter_mut().for_each(|a| *a = if *a >= cut { 255 } else { 0 }));
}

/// Softens the mask's edges: a gaussian blur of `sigma` pixels (the filter step's blur).
pub fn feather(mask: GrayImage, sigma: f64) -> Result<GrayImage> {
    let chain = pixelflow_imaging::FilterChain::new(vec![pixelflow_imaging::FilterOp::Blur { sigma }])
        .map_err(|e| Error::invalid(format!("feather: {e}")))?;
    let mut image = image::DynamicImage::ImageLuma8(mask);
    chain.apply(&mut image)?;
    Ok(image.into_luma8())
}

/// A rectangle in image pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BBox {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

impl BBox {
    /// Grown by `padding` pixels on every side, within a `width` x `height` image.
    pub fn padded(self, padding: u32, width: u32, height: u32) -> BBox {
        let x = self.x.saturating_sub(padding);
        let y = self.y.saturating_sub(padding);
        let right = self.x.saturating_add(self.width).saturating_add(padding).min(width);
        let bottom = self.y.saturating_add(self.height).saturating_add(padding).min(height);
        BBox { x, y, width: right - x, height: bottom - y }
    }
}

/// The share of the mask's pixels with `alpha >= cut`, and the smallest box holding them
/// (`None` when there are none).
pub fn stats(mask: &GrayImage, cut: u8) -> (f64, Option<BBox>) {
    let w = mask.width() as usize;
    if w == 0 || mask.height() == 0 {
        return (0.0, None);
    }
    // Per row: (count, first x, last x); folded into (count, min x, max x, min y, max y).
    let (count, x0, x1, y0, y1) = mask
        .as_raw()
        .par_chunks(w)
        .enumerate()
        .filter_map(|(y, row)| {
            let first = row.iter().position(|&a| a >= cut)?;
            let last = row.iter().rposition(|&a| a >= cut)?;
            let count = row[first..=last].iter().filter(|&&a| a >= cut).count() as u64;
            Some((count, first, last, y, y))
        })
        .reduce(|| (0, usize::MAX, 0, usize::MAX, 0), |a, b| (a.0 + b.0, a.1.min(b.1), a.2.max(b.2), a.3.min(b.3), a.4.max(b.4)));
    if count == 0 {
        return (0.0, None);
    }
    let total = mask.width() as f64 * mask.height() as f64;
    let bbox = BBox { x: x0 as u32, y: y0 as u32, width: (x1 - x0 + 1) as u32, height: (y1 - y0 + 1) as u32 };
    (count as f64 / total, Some(bbox))
}

/// An RGBA image made pixel by pixel from the image and the mask, rows in parallel.
fn compose(rgb: &RgbImage, mask: &GrayImage, pixel: impl Fn(&[u8], u8) -> [u8; 4] + Sync) -> RgbaImage {
    let (w, h) = rgb.dimensions();
    let mut out = vec![0u8; w as usize * h as usize * 4];
    out.par_chunks_mut(4 * w as usize)
        .zip(rgb.as_raw().par_chunks(3 * w as usize))
        .zip(mask.as_raw().par_chunks(w as usize))
        .for_each(|((o, src), a)| {
            for ((o, px), &a) in o.chunks_exact_mut(4).zip(src.chunks_exact(3)).zip(a) {
                o.copy_from_slice(&pixel(px, a));
            }
        });
    RgbaImage::from_raw(w, h, out).expect("four bytes per pixel")
}

/// The image with the mask as its alpha channel.
pub fn cutout(rgb: &RgbImage, mask: &GrayImage) -> RgbaImage {
    compose(rgb, mask, |px, a| [px[0], px[1], px[2], a])
}

/// The image over a new background colour, the mask as the subject's coverage: opaque RGB when
/// the colour is opaque, else RGBA ("over" compositing, straight alpha).
pub fn over_background(rgb: &RgbImage, mask: &GrayImage, background: Rgba<u8>) -> image::DynamicImage {
    let [br, bg, bb, ba] = background.0.map(f32::from);
    let ba = ba / 255.0;
    let rgba = compose(rgb, mask, |px, a| {
        let fa = f32::from(a) / 255.0;
        let out_a = fa + ba * (1.0 - fa);
        let mix = |c: u8, b: f32| if out_a > 0.0 { ((f32::from(c) * fa + b * ba * (1.0 - fa)) / out_a).round() as u8 } else { 0 };
        [mix(px[0], br), mix(px[1], bg), mix(px[2], bb), (out_a * 255.0).round() as u8]
    });
    if background.0[3] == 255 {
        image::DynamicImage::ImageRgb8(image::DynamicImage::ImageRgba8(rgba).to_rgb8())
    } else {
        image::DynamicImage::ImageRgba8(rgba)
    }
}

/// Whether any pixel of an image with an alpha channel is not fully opaque.
pub fn has_transparency(image: &image::DynamicImage) -> bool {
    use image::DynamicImage as D;
    match image {
        D::ImageLumaA8(b) => b.as_raw().par_chunks(2).any(|p| p[1] != u8::MAX),
        D::ImageRgba8(b) => b.as_raw().par_chunks(4).any(|p| p[3] != u8::MAX),
        D::ImageLumaA16(b) => b.as_raw().par_chunks(2).any(|p| p[1] != u16::MAX),
        D::ImageRgba16(b) => b.as_raw().par_chunks(4).any(|p| p[3] != u16::MAX),
        other if other.color().has_alpha() => other.to_rgba8().pixels().any(|p| p.0[3] != u8::MAX),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

    fn solid(width: u32, height: u32, colour: [u8; 3]) -> RgbImage {
        RgbImage::from_pixel(width, height, Rgb(colour))
    }

    #[test]
    fn nearest_goes_through_fast_image_resize() {
        let src = [10u8, 20, 30, 40];
        assert_eq!(resize_packed(&src, 2, 2, fir::PixelType::U8, 4, 4, Filter::Nearest).unwrap()[..4], [10, 10, 20, 20]);
        assert_eq!(resize_packed(&src, 2, 2, fir::PixelType::U8, 1, 1, Filter::Bilinear).unwrap(), [25]);
    }

    #[test]
    fn stats_coverage_and_bbox() {
        let mut m = GrayImage::new(10, 8);
        assert_eq!(stats(&m, 128), (0.0, None));
        for (x, y) in [(2, 3), (5, 3), (4, 6)] {
            m.put_pixel(x, y, image::Luma([200]));
        }
        m.put_pixel(9, 0, image::Luma([127]));
        let (coverage, bbox) = stats(&m, cut_of(0.5));
        assert_eq!(coverage, 3.0 / 80.0);
        assert_eq!(bbox, Some(BBox { x: 2, y: 3, width: 4, height: 4 }));
        assert_eq!(stats(&m, cut_of(0.4)).1, Some(BBox { x: 2, y: 0, width: 8, height: 7 }));
        assert_eq!(bbox.unwrap().padded(3, 10, 8), BBox { x: 0, y: 0, width: 9, height: 8 });
    }

    #[test]
    fn compositing() {
        let rgb = solid(2, 1, [200, 100, 0]);
        let mask = GrayImage::from_raw(2, 1, vec![255, 0]).unwrap();
        assert_eq!(cutout(&rgb, &mask).as_raw(), &[200, 100, 0, 255, 200, 100, 0, 0]);
        let on_white = over_background(&rgb, &mask, Rgba([255, 255, 255, 255]));
        assert_eq!(on_white.as_rgb8().unwrap().as_raw(), &[200, 100, 0, 255, 255, 255]);
        let half = GrayImage::from_raw(2, 1, vec![128, 0]).unwrap();
        let clear = over_background(&rgb, &half, Rgba([0, 0, 0, 0]));
        assert_eq!(clear.as_rgba8().unwrap().as_raw(), &[200, 100, 0, 128, 0, 0, 0, 0]);
        let mut hard = GrayImage::from_raw(3, 1, vec![127, 128, 255]).unwrap();
        binarise(&mut hard, 128);
        assert_eq!(hard.as_raw(), &[0, 255, 255]);
    }
}
