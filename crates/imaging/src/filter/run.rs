//! Running compiled passes over an image: a chain of per-pixel filters streams rows from the
//! stored samples to the output; any other chain reads the image into a working `f32` copy
//! (its leading per-pixel filters applied on the way in, its trailing ones on the way out).


use image::DynamicImage;
use rayon::prelude::*;

use super::color;
use super::kernel;
use super::pixels::{read_row, write_row, Sample};
use super::{FilterChain, Pass};
use crate::error::{Error, Result};

/// Rows in one unit of parallel work: about four bands a thread, at most 64 rows. The result
/// never depends on it.
pub(crate) fn band_rows(height: usize) -> usize {
    (height / (rayon::current_num_threads().max(1) * 4)).clamp(1, 64)
}

/// A zeroed buffer of `len` values, or [`Error::LimitExceeded`] when it cannot be had.
fn buffer<T: Clone + Default>(len: usize) -> Result<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(len).map_err(|_| {
        let bytes = len.saturating_mul(std::mem::size_of::<T>());
        Error::LimitExceeded(format!("not enough memory for the filter's working image ({bytes} bytes)"))
    })?;
    v.resize(len, T::default());
    Ok(v)
}

/// Applies a chain to `image` and returns the result (see the module documentation of
/// `filter` for its bit depth and channels).
pub(crate) fn apply(image: &DynamicImage, chain: &FilterChain, should_stop: &dyn Fn() -> bool) -> Result<DynamicImage> {
    // Float images (no decoder here makes them) go through 16 bits.
    let image = crate::util::integer_pixels(image);
    if let Some((samples, channels)) = u8::view(&image) {
        run(samples, channels, image.width(), image.height(), chain, should_stop)
    } else if let Some((samples, channels)) = u16::view(&image) {
        run(samples, channels, image.width(), image.height(), chain, should_stop)
    } else {
        unreachable!("converted to a stored sample type above")
    }
}

fn run<T: Sample>(samples: &[T], channels: usize, width: u32, height: u32, chain: &FilterChain, should_stop: &dyn Fn() -> bool) -> Result<DynamicImage> {
    let (w, h) = (width as usize, height as usize);
    let passes = chain.passes.as_slice();
    let out_channels = chain.output_channels(channels);
    let (in_stride, out_stride, stride) = (w * channels, w * out_channels, w * 4);
    let too_large = || Error::LimitExceeded(format!("a {width}x{height} image is too large to filter"));
    let mut out: Vec<T> = buffer(out_stride.checked_mul(h).ok_or_else(too_large)?)?;
    if w == 0 || h == 0 {
        return T::into_image(out, width, height, out_channels).ok_or_else(too_large);
    }
    let rows = band_rows(h);
    if should_stop() {
        return Err(Error::Cancelled);
    }

    // Per-pixel filters before the first neighbourhood pass are applied while reading, those
    // after the last one while writing.
    let (lead, middle) = match passes.split_first() {
        Some((Pass::Pixel(ops), rest)) => (ops.as_slice(), rest),
        _ => (&[][..], passes),
    };
    if middle.is_empty() {
        out.par_chunks_mut(rows * out_stride).enumerate().for_each_init(
            || vec![0.0f32; stride],
            |row, (b, out_band)| {
                for (i, out_row) in out_band.chunks_exact_mut(out_stride).enumerate() {
                    let y = b * rows + i;
                    read_row(&samples[y * in_stride..(y + 1) * in_stride], channels, row);
                    color::apply_row(lead, row, y, w, h);
                    write_row(row, out_channels, out_row);
                }
            },
        );
        return T::into_image(out, width, height, out_channels).ok_or_else(too_large);
    }
    let (middle, tail) = match middle.split_last() {
        Some((Pass::Pixel(ops), rest)) => (rest, ops.as_slice()),
        _ => (middle, &[][..]),
    };

    let len = stride.checked_mul(h).ok_or_else(too_large)?;
    let mut image: Vec<f32> = buffer(len)?;
    image.par_chunks_mut(rows * stride).enumerate().for_each(|(b, band)| {
        for (i, row) in band.chunks_exact_mut(stride).enumerate() {
            let y = b * rows + i;
            read_row(&samples[y * in_stride..(y + 1) * in_stride], channels, row);
            color::apply_row(lead, row, y, w, h);
        }
    });
    let mut scratch: Vec<f32> = Vec::new();
    for pass in middle {
        if should_stop() {
            return Err(Error::Cancelled);
        }
        match pass {
            Pass::Pixel(ops) => image.par_chunks_mut(rows * stride).enumerate().for_each(|(b, band)| {
                for (i, row) in band.chunks_exact_mut(stride).enumerate() {
                    color::apply_row(ops, row, b * rows + i, w, h);
                }
            }),
            Pass::Neighbourhood(n) => {
                if scratch.is_empty() {
                    scratch = buffer(len)?;
                }
                kernel::apply(n, &mut image, &mut scratch, w, h);
            }
        }
    }
    drop(scratch);
    if should_stop() {
        return Err(Error::Cancelled);
    }
    out.par_chunks_mut(rows * out_stride).zip(image.par_chunks_mut(rows * stride)).enumerate().for_each(|(b, (out_band, band))| {
        for (i, (out_row, row)) in out_band.chunks_exact_mut(out_stride).zip(band.chunks_exact_mut(stride)).enumerate() {
            color::apply_row(tail, row, b * rows + i, w, h);
            write_row(row, out_channels, out_row);
        }
    });
    T::into_image(out, width, height, out_channels).ok_or_else(too_large)
}
