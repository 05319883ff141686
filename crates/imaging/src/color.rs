//! Colour management: pixels that an embedded ICC profile describes (Adobe RGB, Display P3, a
//! CMYK press profile) are converted to sRGB, the space browsers and most viewers assume for an
//! untagged image, as sharp does by default. The conversion runs through `moxcms` (a pure-Rust
//! CMS, already built as a dependency of `image`) with the relative colorimetric intent (what
//! libvips uses): colours outside sRGB are clipped, white stays white.
//!
//! What is converted: RGB profiles on RGB(A) pixels, 8 or 16 bits, alpha passed through; CMYK
//! JPEGs through their CMYK profile at decode time ([`cmyk_to_srgb`]). A profile that is sRGB
//! already (checked by converting a grid of colours) is dropped without touching the pixels.
//! What is not: grey profiles (carried as they are), and profiles the CMS cannot read
//! (carried, with a warning: dropping them would change how a viewer that reads them shows the
//! image).

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Mutex;

use image::{DynamicImage, ImageBuffer, Pixel};
use moxcms::{ColorProfile, DataColorSpace, Layout, RenderingIntent, TransformExecutor, TransformOptions};

/// What becomes of a source's ICC profile when an image is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum IccPolicy {
    /// Convert the pixels to sRGB and write no profile (sharp's default).
    #[default]
    Srgb,
    /// Keep the pixels as they are and carry the profile (sharp's `keepIccProfile`).
    Keep,
}

impl IccPolicy {
    pub fn parse(name: &str) -> crate::Result<IccPolicy> {
        match name.to_ascii_lowercase().as_str() {
            "srgb" => Ok(IccPolicy::Srgb),
            "keep" => Ok(IccPolicy::Keep),
            _ => Err(crate::Error::invalid(format!("icc must be \"srgb\" or \"keep\", not '{name}'"))),
        }
    }
}

fn options() -> TransformOptions {
    TransformOptions { rendering_intent: RenderingIntent::RelativeColorimetric, ..TransformOptions::default() }
}

/// The profile's colour space from its header (bytes 16..20), without parsing the rest.
pub(crate) fn header_space(icc: &[u8]) -> Option<&[u8]> {
    icc.get(16..20)
}

/// Converts RGB(A) pixels described by `icc` to sRGB. Answers the pixels to write and the
/// profile to write with them: no profile when the pixels are sRGB now (converted, or the
/// profile was an sRGB one), the profile unchanged when it is not an RGB profile on RGB pixels
/// or cannot be read.
pub fn to_srgb<'a, 'p>(image: &'a DynamicImage, icc: Option<&'p [u8]>) -> (Cow<'a, DynamicImage>, Option<&'p [u8]>) {
    let Some(icc) = icc else {
        return (Cow::Borrowed(image), None);
    };
    if header_space(icc) != Some(b"RGB ") || image.color().channel_count() < 3 {
        return (Cow::Borrowed(image), Some(icc));
    }
    match convert_rgb(image, icc) {
        Ok(None) => (Cow::Borrowed(image), None),
        Ok(Some(converted)) => (Cow::Owned(converted), None),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the image's ICC profile; carrying it unconverted");
            (Cow::Borrowed(image), Some(icc))
        }
    }
}

/// Which profiles were found to be sRGB, by their blake3 hash: most photos that carry a
/// profile carry one of a handful of sRGB ones, and every variant of every image asks again.
static SRGB_VERDICTS: Mutex<Option<HashMap<[u8; 32], bool>>> = Mutex::new(None);

/// `Ok(None)`: the profile is sRGB already.
fn convert_rgb(image: &DynamicImage, icc: &[u8]) -> Result<Option<DynamicImage>, String> {
    let key = *blake3::hash(icc).as_bytes();
    let verdict = |map: &mut Option<HashMap<[u8; 32], bool>>| map.as_ref().and_then(|m| m.get(&key).copied());
    if SRGB_VERDICTS.lock().map(|mut m| verdict(&mut m)).ok().flatten() == Some(true) {
        return Ok(None);
    }
    let source = ColorProfile::new_from_slice(icc).map_err(|e| e.to_string())?;
    if source.color_space != DataColorSpace::Rgb {
        return Err(format!("the header says RGB but the profile is {:?}", source.color_space));
    }
    let srgb = ColorProfile::new_srgb();
    let probe = source.create_transform_8bit(Layout::Rgb, &srgb, Layout::Rgb, options()).map_err(|e| e.to_string())?;
    let identity = is_identity(probe.as_ref())?;
    if let Ok(mut map) = SRGB_VERDICTS.lock() {
        let map = map.get_or_insert_with(HashMap::new);
        if map.len() >= 256 {
            map.clear();
        }
        map.insert(key, identity);
    }
    if identity {
        return Ok(None);
    }
    let fail = |e: moxcms::CmsError| e.to_string();
    let converted = match image {
        DynamicImage::ImageRgb8(buf) => DynamicImage::ImageRgb8(apply(probe.as_ref(), buf)?),
        DynamicImage::ImageRgba8(buf) => {
            let t = source.create_transform_8bit(Layout::Rgba, &srgb, Layout::Rgba, options()).map_err(fail)?;
            DynamicImage::ImageRgba8(apply(t.as_ref(), buf)?)
        }
        DynamicImage::ImageRgb16(buf) => {
            let t = source.create_transform_16bit(Layout::Rgb, &srgb, Layout::Rgb, options()).map_err(fail)?;
            DynamicImage::ImageRgb16(apply(t.as_ref(), buf)?)
        }
        DynamicImage::ImageRgba16(buf) => {
            let t = source.create_transform_16bit(Layout::Rgba, &srgb, Layout::Rgba, options()).map_err(fail)?;
            DynamicImage::ImageRgba16(apply(t.as_ref(), buf)?)
        }
        // Float pixels (none of our decoders make them): through 16 bits.
        other if other.color().has_alpha() => return convert_rgb(&DynamicImage::ImageRgba16(other.to_rgba16()), icc),
        other => return convert_rgb(&DynamicImage::ImageRgb16(other.to_rgb16()), icc),
    };
    Ok(Some(converted))
}

/// Runs a transform over every sample of `buf` into a new buffer of the same shape.
fn apply<P: Pixel>(t: &(dyn TransformExecutor<P::Subpixel> + Send + Sync), buf: &ImageBuffer<P, Vec<P::Subpixel>>) -> Result<ImageBuffer<P, Vec<P::Subpixel>>, String>
where
    P::Subpixel: Default,
{
    let mut out = vec![P::Subpixel::default(); buf.len()];
    t.transform(buf.as_raw(), &mut out).map_err(|e| e.to_string())?;
    ImageBuffer::from_raw(buf.width(), buf.height(), out).ok_or_else(|| "short buffer".to_string())
}

/// Whether an 8-bit transform leaves a 9x9x9 grid of colours (and so, the curves and matrix
/// being smooth, every colour) within one step: an sRGB profile, whoever wrote it.
fn is_identity(t: &(dyn TransformExecutor<u8> + Send + Sync)) -> Result<bool, String> {
    const STEPS: [u8; 9] = [0, 32, 64, 96, 128, 160, 192, 224, 255];
    let grid: Vec<u8> = (0..STEPS.len().pow(3)).flat_map(|i| [STEPS[i / 81], STEPS[i / 9 % 9], STEPS[i % 9]]).collect();
    let mut out = vec![0u8; grid.len()];
    t.transform(&grid, &mut out).map_err(|e| e.to_string())?;
    Ok(grid.iter().zip(&out).all(|(&a, &b)| a.abs_diff(b) <= 1))
}

/// Converts CMYK samples (4 a pixel, as libjpeg hands them out of an Adobe JPEG: inverted, 255
/// = no ink) to sRGB through a CMYK profile. `None` when the profile is not a readable CMYK
/// one; the caller then falls back to the naive conversion.
pub(crate) fn cmyk_to_srgb(cmyk: &[u8], icc: &[u8]) -> Option<Vec<u8>> {
    if header_space(icc) != Some(b"CMYK") {
        return None;
    }
    let run = || -> Result<Vec<u8>, String> {
        let source = ColorProfile::new_from_slice(icc).map_err(|e| e.to_string())?;
        let t = source.create_transform_8bit(Layout::Rgba, &ColorProfile::new_srgb(), Layout::Rgb, options()).map_err(|e| e.to_string())?;
        let inks: Vec<u8> = cmyk.iter().map(|&v| 255 - v).collect();
        let mut rgb = vec![0u8; cmyk.len() / 4 * 3];
        t.transform(&inks, &mut rgb).map_err(|e| e.to_string())?;
        Ok(rgb)
    };
    match run() {
        Ok(rgb) => Some(rgb),
        Err(e) => {
            tracing::warn!(error = %e, "cannot convert CMYK through the image's ICC profile; using the naive conversion");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{Rgb, RgbImage};

    fn profile(p: ColorProfile) -> Vec<u8> {
        p.encode().unwrap()
    }

    #[test]
    fn an_srgb_profile_is_dropped_and_the_pixels_untouched() {
        let img = DynamicImage::ImageRgb8(RgbImage::from_fn(8, 8, |x, y| Rgb([x as u8 * 30, y as u8 * 30, 77])));
        let icc = profile(ColorProfile::new_srgb());
        let (out, icc_out) = to_srgb(&img, Some(&icc));
        assert!(matches!(out, Cow::Borrowed(_)) && icc_out.is_none());
    }

    #[test]
    fn unreadable_and_grey_profiles_are_carried() {
        let img = DynamicImage::ImageRgb8(RgbImage::new(2, 2));
        let mut junk = vec![0u8; 200];
        junk[16..20].copy_from_slice(b"RGB ");
        let (out, icc) = to_srgb(&img, Some(&junk));
        assert!(matches!(out, Cow::Borrowed(_)) && icc == Some(&junk[..]));
        let grey = profile(ColorProfile::new_gray_with_gamma(2.2));
        let (_, icc) = to_srgb(&DynamicImage::ImageLuma8(image::GrayImage::new(2, 2)), Some(&grey));
        assert_eq!(icc, Some(&grey[..]));
        assert_eq!(IccPolicy::parse("KEEP").unwrap(), IccPolicy::Keep);
        assert!(IccPolicy::parse("p3").is_err());
    }

    #[test]
    fn sixteen_bit_and_alpha_are_converted_too() {
        let p3 = profile(ColorProfile::new_display_p3());
        let img = DynamicImage::ImageRgba16(ImageBuffer::from_pixel(2, 2, image::Rgba([65535u16, 0, 0, 1234])));
        let (out, icc) = to_srgb(&img, Some(&p3));
        assert!(icc.is_none());
        let [r, g, b, a] = out.as_rgba16().unwrap().get_pixel(0, 0).0;
        assert!(r > 65000 && g < 600 && b < 600, "P3 red clips to sRGB red: {r} {g} {b}");
        assert_eq!(a, 1234, "alpha passes through");
    }
}
