//! Between stored samples (8 or 16 bits, 1 to 4 channels) and the filters' working rows of
//! straight RGBA `f32`: `v / MAX` on the way in, round half up on the way out.

use image::{DynamicImage, ImageBuffer, Luma, LumaA, Rgb, Rgba};

/// A stored sample type: `u8` or `u16` (public for crates/gpu, which reads and builds images
/// through it too).
pub trait Sample: Copy + Default + Send + Sync + 'static {
    /// `v / MAX`.
    fn to_unit(self) -> f32;
    /// `floor(clamp(v, 0, 1) * MAX + 0.5)`.
    fn from_unit(v: f32) -> Self;
    /// The samples and channel count of an image of this sample type.
    fn view(image: &DynamicImage) -> Option<(&[Self], usize)>;
    /// An image of `channels` channels from its samples.
    fn into_image(samples: Vec<Self>, width: u32, height: u32, channels: usize) -> Option<DynamicImage>;
}

impl Sample for u8 {
    fn to_unit(self) -> f32 {
        f32::from(self) / 255.0
    }

    fn from_unit(v: f32) -> u8 {
        // `as` saturates (and takes NaN to 0, which the chain never produces).
        (v.clamp(0.0, 1.0) * 255.0 + 0.5).floor() as u8
    }

    fn view(image: &DynamicImage) -> Option<(&[u8], usize)> {
        match image {
            DynamicImage::ImageLuma8(i) => Some((i.as_raw(), 1)),
            DynamicImage::ImageLumaA8(i) => Some((i.as_raw(), 2)),
            DynamicImage::ImageRgb8(i) => Some((i.as_raw(), 3)),
            DynamicImage::ImageRgba8(i) => Some((i.as_raw(), 4)),
            _ => None,
        }
    }

    fn into_image(samples: Vec<u8>, width: u32, height: u32, channels: usize) -> Option<DynamicImage> {
        Some(match channels {
            1 => DynamicImage::ImageLuma8(ImageBuffer::<Luma<u8>, _>::from_raw(width, height, samples)?),
            2 => DynamicImage::ImageLumaA8(ImageBuffer::<LumaA<u8>, _>::from_raw(width, height, samples)?),
            3 => DynamicImage::ImageRgb8(ImageBuffer::<Rgb<u8>, _>::from_raw(width, height, samples)?),
            _ => DynamicImage::ImageRgba8(ImageBuffer::<Rgba<u8>, _>::from_raw(width, height, samples)?),
        })
    }
}

impl Sample for u16 {
    fn to_unit(self) -> f32 {
        f32::from(self) / 65535.0
    }

    fn from_unit(v: f32) -> u16 {
        (v.clamp(0.0, 1.0) * 65535.0 + 0.5).floor() as u16
    }

    fn view(image: &DynamicImage) -> Option<(&[u16], usize)> {
        match image {
            DynamicImage::ImageLuma16(i) => Some((i.as_raw(), 1)),
            DynamicImage::ImageLumaA16(i) => Some((i.as_raw(), 2)),
            DynamicImage::ImageRgb16(i) => Some((i.as_raw(), 3)),
            DynamicImage::ImageRgba16(i) => Some((i.as_raw(), 4)),
            _ => None,
        }
    }

    fn into_image(samples: Vec<u16>, width: u32, height: u32, channels: usize) -> Option<DynamicImage> {
        Some(match channels {
            1 => DynamicImage::ImageLuma16(ImageBuffer::<Luma<u16>, _>::from_raw(width, height, samples)?),
            2 => DynamicImage::ImageLumaA16(ImageBuffer::<LumaA<u16>, _>::from_raw(width, height, samples)?),
            3 => DynamicImage::ImageRgb16(ImageBuffer::<Rgb<u16>, _>::from_raw(width, height, samples)?),
            _ => DynamicImage::ImageRgba16(ImageBuffer::<Rgba<u16>, _>::from_raw(width, height, samples)?),
        })
    }
}

/// One stored row (`channels` samples a pixel) into straight RGBA: grey to `R = G = B`, a
/// missing alpha to 1.
pub(crate) fn read_row<T: Sample>(samples: &[T], channels: usize, out: &mut [f32]) {
    let pixels = out.chunks_exact_mut(4).zip(samples.chunks_exact(channels));
    match channels {
        1 => pixels.for_each(|(o, s)| {
            let v = s[0].to_unit();
            o.copy_from_slice(&[v, v, v, 1.0]);
        }),
        2 => pixels.for_each(|(o, s)| {
            let v = s[0].to_unit();
            o.copy_from_slice(&[v, v, v, s[1].to_unit()]);
        }),
        3 => pixels.for_each(|(o, s)| o.copy_from_slice(&[s[0].to_unit(), s[1].to_unit(), s[2].to_unit(), 1.0])),
        _ => pixels.for_each(|(o, s)| o.copy_from_slice(&[s[0].to_unit(), s[1].to_unit(), s[2].to_unit(), s[3].to_unit()])),
    }
}

/// One straight RGBA row into `channels` samples a pixel: grey takes R, no alpha drops A.
pub(crate) fn write_row<T: Sample>(row: &[f32], channels: usize, out: &mut [T]) {
    let pixels = out.chunks_exact_mut(channels).zip(row.chunks_exact(4));
    match channels {
        1 => pixels.for_each(|(o, p)| o[0] = T::from_unit(p[0])),
        2 => pixels.for_each(|(o, p)| {
            o[0] = T::from_unit(p[0]);
            o[1] = T::from_unit(p[3]);
        }),
        3 => pixels.for_each(|(o, p)| {
            for c in 0..3 {
                o[c] = T::from_unit(p[c]);
            }
        }),
        _ => pixels.for_each(|(o, p)| {
            for c in 0..4 {
                o[c] = T::from_unit(p[c]);
            }
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sample_survives_the_round_trip() {
        for v in 0..=u8::MAX {
            assert_eq!(u8::from_unit(v.to_unit()), v);
        }
        for v in 0..=u16::MAX {
            assert_eq!(u16::from_unit(v.to_unit()), v);
        }
    }

    #[test]
    fn rounding_is_half_up_and_clamped() {
        assert_eq!(u8::from_unit(0.5), 128, "127.5 rounds up");
        assert_eq!(u8::from_unit(1.0 / 255.0 * 0.49), 0);
        assert_eq!(u8::from_unit(-3.0), 0);
        assert_eq!(u8::from_unit(7.0), 255);
        assert_eq!(u16::from_unit(0.5), 32768, "32767.5 rounds up");
        assert_eq!(u16::from_unit(f32::INFINITY), 65535);
    }

    #[test]
    fn grey_and_alpha_layouts() {
        let mut row = [0.0f32; 8];
        read_row(&[51u8, 102, 204, 255], 2, &mut row);
        assert_eq!(row, [0.2, 0.2, 0.2, 0.4, 0.8, 0.8, 0.8, 1.0]);
        let mut back = [0u8; 4];
        write_row(&row, 2, &mut back);
        assert_eq!(back, [51, 102, 204, 255]);
        let mut rgb = [0u8; 6];
        write_row(&row, 3, &mut rgb);
        assert_eq!(rgb, [51, 51, 51, 204, 204, 204]);
    }
}
