//! Resize geometry, as sharp defines it: how a source of one size becomes a target box under a
//! `fit` (cover, contain, fill, inside, outside), a `position` and `withoutEnlargement`. Pure
//! arithmetic, so every rule is unit-tested here.

use crate::error::{Error, Result};

/// How the image is fitted to the target box (sharp's `fit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fit {
    /// Fill the box exactly, cropping what overflows (keeps the aspect ratio).
    #[default]
    Cover,
    /// Fit inside the box, letterboxing the rest with the background (keeps the aspect ratio).
    Contain,
    /// Stretch to the box (ignores the aspect ratio).
    Fill,
    /// As large as possible within the box; the output may be smaller than the box.
    Inside,
    /// As small as possible while covering the box; the output may be larger than the box.
    Outside,
}

/// Where the image sits when cropped (cover) or letterboxed (contain): 0 is left/top, 1 is
/// right/bottom, on each axis.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Position {
    pub x: f64,
    pub y: f64,
}

impl Default for Position {
    fn default() -> Self {
        Position::CENTER
    }
}

impl Position {
    pub const CENTER: Position = Position { x: 0.5, y: 0.5 };

    /// Parses sharp's names: `centre`/`center`, `top`, `right top`, `left bottom`, ... and the
    /// gravities `north`, `northeast`, `east`, ... `southwest`, `west`, `northwest`.
    /// The content-aware strategies (`entropy`, `attention`) are not supported.
    pub fn parse(name: &str) -> Result<Position> {
        let bad = || {
            Error::invalid(format!(
                "unknown position '{name}' (use centre, top, bottom, left, right, 'left top', ..., or north, northeast, ..., northwest)"
            ))
        };
        let lower = name.trim().to_ascii_lowercase();
        let words: Vec<&str> = match lower.as_str() {
            "northeast" => vec!["top", "right"],
            "southeast" => vec!["bottom", "right"],
            "southwest" => vec!["bottom", "left"],
            "northwest" => vec!["top", "left"],
            "entropy" | "attention" => {
                return Err(Error::invalid(format!("position '{name}' (content-aware cropping) is not supported yet")));
            }
            other => other.split(|c: char| c.is_whitespace() || c == '-').filter(|w| !w.is_empty()).collect(),
        };
        if words.is_empty() || words.len() > 2 {
            return Err(bad());
        }
        let (mut x, mut y) = (None, None);
        for word in words {
            let (axis, value) = match word {
                "left" | "west" => (&mut x, 0.0),
                "right" | "east" => (&mut x, 1.0),
                "top" | "north" => (&mut y, 0.0),
                "bottom" | "south" => (&mut y, 1.0),
                "centre" | "center" => continue,
                _ => return Err(bad()),
            };
            if axis.replace(value).is_some() {
                return Err(bad());
            }
        }
        Ok(Position { x: x.unwrap_or(0.5), y: y.unwrap_or(0.5) })
    }
}

/// The requested box and how to fit into it.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Target {
    /// With only one side given, the other follows the aspect ratio (and `fit` is moot).
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub fit: Fit,
    pub position: Position,
    /// Never scale up: the box is first clamped to the source size on each axis, as sharp does,
    /// so the output may be smaller than asked.
    pub without_enlargement: bool,
}

/// How a source becomes the output: resample `crop` (in source pixels, fractional) to
/// `resized`, then place it at `offset` on a `canvas` (larger than `resized` only for contain).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Plan {
    pub crop: Crop,
    pub resized: (u32, u32),
    pub canvas: (u32, u32),
    pub offset: (u32, u32),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Crop {
    pub left: f64,
    pub top: f64,
    pub width: f64,
    pub height: f64,
}

impl Plan {
    /// How many source pixels go into one output pixel along the less-shrunk axis: the most a
    /// decoder may shrink on load without leaving the resampler less than it needs.
    pub fn shrink_factor(&self) -> f64 {
        (self.crop.width / f64::from(self.resized.0)).min(self.crop.height / f64::from(self.resized.1))
    }

    /// The same plan for a source decoded at another size (JPEG shrink-on-load): the crop is
    /// scaled by `fx`, `fy` (decoded size / original size).
    pub fn rescaled(&self, fx: f64, fy: f64) -> Plan {
        let c = self.crop;
        Plan { crop: Crop { left: c.left * fx, top: c.top * fy, width: c.width * fx, height: c.height * fy }, ..*self }
    }
}

fn round_px(v: f64) -> u32 {
    // Saturating float-to-int cast; at least one pixel.
    (v.round() as u32).max(1)
}

/// Plans the resize of a `src` (width, height, already upright) into `target`.
pub fn plan(src: (u32, u32), target: &Target) -> Plan {
    let (sw, sh) = (f64::from(src.0.max(1)), f64::from(src.1.max(1)));
    let full = Crop { left: 0.0, top: 0.0, width: sw, height: sh };
    let (mut w, mut h, fit) = match (target.width, target.height) {
        (Some(w), Some(h)) => (w.max(1), h.max(1), target.fit),
        (Some(w), None) => (w.max(1), round_px(sh * f64::from(w) / sw), Fit::Fill),
        (None, Some(h)) => (round_px(sw * f64::from(h) / sh), h.max(1), Fit::Fill),
        (None, None) => (src.0.max(1), src.1.max(1), Fit::Fill),
    };
    if target.without_enlargement {
        w = w.min(src.0.max(1));
        h = h.min(src.1.max(1));
    }
    let (fw, fh) = (f64::from(w), f64::from(h));
    let simple = |resized: (u32, u32)| Plan { crop: full, resized, canvas: resized, offset: (0, 0) };
    match fit {
        Fit::Fill => simple((w, h)),
        Fit::Inside => {
            let s = (fw / sw).min(fh / sh);
            simple((round_px(sw * s).min(w), round_px(sh * s).min(h)))
        }
        Fit::Outside => {
            let s = (fw / sw).max(fh / sh);
            simple((round_px(sw * s).max(w), round_px(sh * s).max(h)))
        }
        Fit::Cover => {
            let s = (fw / sw).max(fh / sh);
            let (cw, ch) = ((fw / s).min(sw), (fh / s).min(sh));
            let crop = Crop { left: (sw - cw) * target.position.x, top: (sh - ch) * target.position.y, width: cw, height: ch };
            Plan { crop, resized: (w, h), canvas: (w, h), offset: (0, 0) }
        }
        Fit::Contain => {
            let s = (fw / sw).min(fh / sh);
            let (rw, rh) = (round_px(sw * s).min(w), round_px(sh * s).min(h));
            let offset = (
                (f64::from(w - rw) * target.position.x).round() as u32,
                (f64::from(h - rh) * target.position.y).round() as u32,
            );
            Plan { crop: full, resized: (rw, rh), canvas: (w, h), offset }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(w: Option<u32>, h: Option<u32>, fit: Fit) -> Target {
        Target { width: w, height: h, fit, ..Target::default() }
    }

    #[test]
    fn inside_and_outside_keep_the_aspect_ratio() {
        assert_eq!(plan((4000, 3000), &t(Some(800), Some(800), Fit::Inside)).resized, (800, 600));
        assert_eq!(plan((3000, 4000), &t(Some(800), Some(800), Fit::Inside)).resized, (600, 800));
        assert_eq!(plan((4000, 3000), &t(Some(800), Some(800), Fit::Outside)).resized, (1067, 800));
        assert_eq!(plan((100, 50), &t(Some(800), Some(800), Fit::Inside)).resized, (800, 400), "inside enlarges by default");
    }

    #[test]
    fn cover_crops_the_overflow_at_the_position() {
        let p = plan((400, 200), &t(Some(100), Some(100), Fit::Cover));
        assert_eq!((p.resized, p.canvas), ((100, 100), (100, 100)));
        assert_eq!(p.crop, Crop { left: 100.0, top: 0.0, width: 200.0, height: 200.0 });
        let left = plan((400, 200), &Target { position: Position::parse("left").unwrap(), ..t(Some(100), Some(100), Fit::Cover) });
        assert_eq!(left.crop.left, 0.0);
        let right = plan((400, 200), &Target { position: Position::parse("east").unwrap(), ..t(Some(100), Some(100), Fit::Cover) });
        assert_eq!(right.crop.left, 200.0);
    }

    #[test]
    fn contain_letterboxes_at_the_position() {
        let p = plan((400, 200), &t(Some(100), Some(100), Fit::Contain));
        assert_eq!((p.resized, p.canvas, p.offset), ((100, 50), (100, 100), (0, 25)));
        let top = plan((400, 200), &Target { position: Position::parse("top").unwrap(), ..t(Some(100), Some(100), Fit::Contain) });
        assert_eq!(top.offset, (0, 0));
    }

    #[test]
    fn fill_stretches_and_one_side_follows_the_aspect_ratio() {
        assert_eq!(plan((400, 200), &t(Some(100), Some(100), Fit::Fill)).resized, (100, 100));
        assert_eq!(plan((400, 200), &t(Some(100), None, Fit::Cover)).resized, (100, 50));
        assert_eq!(plan((400, 200), &t(None, Some(100), Fit::Contain)).canvas, (200, 100));
        assert_eq!(plan((400, 200), &t(None, None, Fit::Cover)).resized, (400, 200));
    }

    #[test]
    fn without_enlargement_clamps_the_box_to_the_source() {
        let woe = |w, h, fit| Target { without_enlargement: true, ..t(Some(w), Some(h), fit) };
        assert_eq!(plan((500, 300), &woe(800, 800, Fit::Inside)).resized, (500, 300));
        assert_eq!(plan((1000, 500), &woe(800, 800, Fit::Inside)).resized, (800, 400));
        // sharp issue 2020: 1500x1000, cover 1750x250 without enlargement gives 1500x250.
        assert_eq!(plan((1500, 1000), &woe(1750, 250, Fit::Cover)).resized, (1500, 250));
        assert_eq!(plan((500, 300), &woe(800, 800, Fit::Contain)).canvas, (500, 300));
        assert_eq!(plan((500, 300), &woe(800, 800, Fit::Fill)).resized, (500, 300));
        assert_eq!(plan((1000, 500), &woe(800, 800, Fit::Outside)).resized, (1000, 500));
    }

    #[test]
    fn extreme_aspect_ratios_keep_at_least_a_pixel() {
        assert_eq!(plan((10_000, 1), &t(Some(100), Some(100), Fit::Inside)).resized, (100, 1));
        let p = plan((1, 10_000), &t(Some(10), Some(10), Fit::Cover));
        assert_eq!(p.resized, (10, 10));
        assert!(p.crop.width <= 1.0 && p.crop.height > 0.0);
    }

    #[test]
    fn shrink_factor_and_rescale() {
        let p = plan((4000, 3000), &t(Some(400), Some(400), Fit::Inside));
        assert_eq!(p.shrink_factor(), 10.0);
        let half = p.rescaled(0.5, 0.5);
        assert_eq!((half.crop.width, half.crop.height, half.resized), (2000.0, 1500.0, (400, 300)));
    }

    #[test]
    fn positions_parse_like_sharp() {
        let p = |s| Position::parse(s).map(|p| (p.x, p.y)).ok();
        assert_eq!(p("centre"), Some((0.5, 0.5)));
        assert_eq!(p("right top"), Some((1.0, 0.0)));
        assert_eq!(p("top right"), Some((1.0, 0.0)));
        assert_eq!(p("southwest"), Some((0.0, 1.0)));
        assert_eq!(p("bottom"), Some((0.5, 1.0)));
        assert_eq!(p("top bottom"), None);
        assert_eq!(p("attention"), None);
        assert_eq!(p("sideways"), None);
    }
}
