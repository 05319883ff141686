//! `pixelflow:segment`: the step's parameters as a workflow writes them, the in-memory
//! [`segment`] (image in, mask and its statistics out) and the file wrapper that writes the
//! asked outputs atomically under deterministic names in `outputDir`.

use std::path::{Path, PathBuf};

use image::{DynamicImage, GrayImage, RgbImage, Rgba};
use pixelflow_engine::{Failure, StepRegistry, TaskContext};
use pixelflow_imaging::decode::{self, DecodeOptions};
use pixelflow_imaging::encode::{self, EncodeOptions, OutputFormat};
use pixelflow_imaging::naming::{self, NameTemplate, NameVars};
use pixelflow_imaging::util;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::manifest::{self, DEFAULT_MODEL};
use crate::process::{self, BBox};
use crate::provider::Selection;
use crate::runtime::{self, Model};

/// Registers `segment`.
pub fn register(steps: &mut StepRegistry) {
    steps.register("segment", |input: Value, ctx: &TaskContext| {
        run_segment(input, &|| {
            ctx.heartbeat();
            ctx.is_cancelled()
        })
        .map_err(failure)
    });
}

/// The ASL failure for an error: its name, and the message as the cause.
pub fn failure(error: Error) -> Failure {
    Failure::new(error.asl_name(), error.to_string())
}

/// What to do to the mask before it is used.
#[derive(Debug, Clone, Copy, Default)]
pub struct SegmentOptions {
    /// Makes the mask hard at this probability (0..1); `None` keeps the model's soft edges.
    /// Coverage and the bounding box count pixels at or above it (0.5 when `None`).
    pub threshold: Option<f64>,
    /// Softens the mask's edges: a gaussian blur of this sigma in pixels, after the threshold.
    pub feather: Option<f64>,
    /// Segments an image that already has transparency as if it were opaque (its colours).
    pub ignore_alpha: bool,
}

/// A mask at the image's size and what it says.
#[derive(Debug, Clone)]
pub struct Segmentation {
    /// 8-bit: 255 subject, 0 background.
    pub mask: GrayImage,
    /// The share of pixels at or above the threshold.
    pub coverage: f64,
    /// The smallest box holding them; `None` when no subject was found.
    pub bbox: Option<BBox>,
}

/// Segments an upright RGB image in memory. `should_stop` is asked before the inference.
pub fn segment(model: &Model, rgb: &RgbImage, options: &SegmentOptions, should_stop: &dyn Fn() -> bool) -> Result<Segmentation> {
    let manifest = &model.manifest;
    let min = manifest.min_size;
    if rgb.width() < min || rgb.height() < min {
        return Err(Error::ImageTooSmall { model: manifest.name.clone(), width: rgb.width(), height: rgb.height(), min });
    }
    let started = std::time::Instant::now();
    let input = process::prepare_input(rgb, &manifest.input)?;
    if should_stop() {
        return Err(pixelflow_imaging::Error::Cancelled.into());
    }
    let prepared = std::time::Instant::now();
    let mut inferred = prepared;
    // The output is quantised where ONNX Runtime wrote it (no copy of its million floats).
    let small = model.infer(&input, |output| {
        inferred = std::time::Instant::now();
        process::quantise_output(output, manifest)
    })?;
    drop(input);
    let mut mask = process::resize_mask(&small, rgb.width(), rgb.height(), manifest.output.resize)?;
    let cut = process::cut_of(options.threshold.unwrap_or(0.5));
    if options.threshold.is_some() {
        process::binarise(&mut mask, cut);
    }
    if let Some(sigma) = options.feather {
        mask = process::feather(mask, sigma)?;
    }
    let (coverage, bbox) = process::stats(&mask, cut);
    tracing::debug!(
        model = %manifest.name,
        pre_ms = (prepared - started).as_secs_f64() * 1e3,
        inference_ms = (inferred - prepared).as_secs_f64() * 1e3,
        post_ms = inferred.elapsed().as_secs_f64() * 1e3,
        "segmented"
    );
    Ok(Segmentation { mask, coverage, bbox })
}

/// What the step can write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputKind {
    /// The mask as an 8-bit greyscale PNG.
    Mask,
    /// The image with the mask as alpha (PNG or WebP).
    Cutout,
    /// The cutout cropped to the subject's bounding box plus `padding` (not written when no
    /// subject was found).
    Crop,
    /// The subject over the `background` colour.
    Background,
}

impl OutputKind {
    fn name(self) -> &'static str {
        match self {
            OutputKind::Mask => "mask",
            OutputKind::Cutout => "cutout",
            OutputKind::Crop => "crop",
            OutputKind::Background => "background",
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SegmentInput {
    path: PathBuf,
    output_dir: Option<PathBuf>,
    model: Option<String>,
    outputs: Option<Vec<OutputKind>>,
    format: Option<String>,
    threshold: Option<f64>,
    feather: Option<f64>,
    padding: Option<u32>,
    background: Option<Value>,
    naming: Option<String>,
    max_pixels: Option<u64>,
    #[serde(default)]
    ignore_alpha: bool,
    device: Option<String>,
    provider: Option<String>,
}

/// The largest `padding`, in pixels.
const MAX_PADDING: u32 = 100_000;
/// The largest `feather` sigma (the blur filter's own limit).
const MAX_FEATHER: f64 = 100.0;

/// One file the step wrote.
#[derive(Debug, Clone, Serialize)]
pub struct Written {
    pub name: &'static str,
    pub path: PathBuf,
    pub width: u32,
    pub height: u32,
    pub format: OutputFormat,
    pub bytes: u64,
}

/// `pixelflow:segment`: `{path, outputDir?, model?, outputs?: ["mask" | "cutout" | "crop" |
/// "background"], format?: png|webp, threshold?, feather?, padding?, background?, naming?,
/// maxPixels?, ignoreAlpha?, device?: auto|gpu|cpu, provider?}` -> `{model, provider, width,
/// height, coverage, bbox, subjectFound, outputs: [{name, path, width, height, format, bytes}]}`
/// plus `fallback` (why) when `auto` runs on the CPU because an offered accelerator could not
/// start. `provider` in the result is ONNX Runtime's name (`CPUExecutionProvider`).
pub fn run_segment(input: Value, should_stop: &dyn Fn() -> bool) -> Result<Value> {
    let raw: SegmentInput = serde_json::from_value(input).map_err(|e| Error::invalid(format!("segment: {e}")))?;
    let selection = Selection::parse(raw.device.as_deref(), raw.provider.as_deref())?;
    // Each kind once, in the order asked.
    let mut kinds: Vec<OutputKind> = Vec::new();
    for k in raw.outputs.clone().unwrap_or_else(|| vec![OutputKind::Mask]) {
        if !kinds.contains(&k) {
            kinds.push(k);
        }
    }
    let output_dir = match (&raw.output_dir, kinds.is_empty()) {
        (Some(d), _) => Some(d.clone()),
        (None, true) => None,
        (None, false) => return Err(Error::invalid("segment: outputDir is required to write outputs (or give outputs: [] to only measure)")),
    };
    let options = SegmentOptions {
        threshold: raw.threshold.map(|t| if t > 0.0 && t <= 1.0 { Ok(t) } else { Err(Error::invalid("segment: threshold must be in (0, 1]")) }).transpose()?,
        feather: raw
            .feather
            .filter(|f| *f != 0.0)
            .map(|f| if f > 0.0 && f <= MAX_FEATHER { Ok(f) } else { Err(Error::invalid(format!("segment: feather must be 0 to {MAX_FEATHER} pixels"))) })
            .transpose()?,
        ignore_alpha: raw.ignore_alpha,
    };
    let padding = raw.padding.unwrap_or(0);
    if padding > MAX_PADDING {
        return Err(Error::invalid(format!("segment: padding must be at most {MAX_PADDING} pixels")));
    }
    let format = match raw.format.as_deref() {
        None => OutputFormat::Png,
        Some(name) => OutputFormat::parse(name)?,
    };
    if !format.supports_alpha() && kinds.iter().any(|k| matches!(k, OutputKind::Cutout | OutputKind::Crop)) {
        return Err(Error::invalid(format!("segment: cutout and crop need transparency, which {} does not have", format.name())));
    }
    let background = match &raw.background {
        Some(v) => pixelflow_imaging::steps::parse_color(v)?,
        None => Rgba([255, 255, 255, 255]),
    };
    let naming = match &raw.naming {
        Some(t) => NameTemplate::parse(t)?,
        None => NameTemplate::parse("{stem}-{variant}.{ext}")?,
    };
    if kinds.len() > 1 && !naming.uses_variant_or_size() {
        return Err(Error::invalid("segment: with several outputs, naming must use {variant} so their names differ"));
    }

    let model_name = raw.model.as_deref().unwrap_or(DEFAULT_MODEL);
    let located = manifest::locate(model_name)?;
    let runtime::Loaded { model, fallback } = runtime::model(&located, selection)?;
    if should_stop() {
        return Err(pixelflow_imaging::Error::Cancelled.into());
    }

    let started = std::time::Instant::now();
    let data = util::read_file(&raw.path, util::DEFAULT_MAX_FILE_BYTES)?;
    let info = decode::probe(&data, raw.max_pixels.unwrap_or(decode::DEFAULT_MAX_PIXELS))?;
    let (ow, oh) = info.oriented_size();
    let min = model.manifest.min_size;
    if ow < min || oh < min {
        return Err(Error::ImageTooSmall { model: model.manifest.name.clone(), width: ow, height: oh, min });
    }
    let image = decode::decode(&data, &info, &DecodeOptions::default())?;
    drop(data);
    let decoded = std::time::Instant::now();
    if !options.ignore_alpha && process::has_transparency(&image) {
        return Err(Error::ImageHasAlpha { path: raw.path.clone() });
    }
    let rgb = match image {
        DynamicImage::ImageRgb8(b) => b,
        other => other.to_rgb8(),
    };
    let seg = segment(&model, &rgb, &options, should_stop)?;
    let segmented = std::time::Instant::now();

    let stem = naming::stem_of(&raw.path);
    let mut written = Vec::with_capacity(kinds.len());
    for kind in &kinds {
        if should_stop() {
            return Err(pixelflow_imaging::Error::Cancelled.into());
        }
        let (picture, fmt) = match kind {
            OutputKind::Mask => (DynamicImage::ImageLuma8(seg.mask.clone()), OutputFormat::Png),
            OutputKind::Cutout => (DynamicImage::ImageRgba8(process::cutout(&rgb, &seg.mask)), format),
            OutputKind::Crop => {
                let Some(b) = seg.bbox else { continue };
                let b = b.padded(padding, rgb.width(), rgb.height());
                let rgb_crop = image::imageops::crop_imm(&rgb, b.x, b.y, b.width, b.height).to_image();
                let mask_crop = image::imageops::crop_imm(&seg.mask, b.x, b.y, b.width, b.height).to_image();
                (DynamicImage::ImageRgba8(process::cutout(&rgb_crop, &mask_crop)), format)
            }
            OutputKind::Background => (process::over_background(&rgb, &seg.mask, background), format),
        };
        let mut enc = EncodeOptions::new(fmt);
        enc.quality = 90;
        if *kind != OutputKind::Mask {
            enc.icc_profile = info.icc_profile.clone();
        }
        let bytes = encode::encode(&picture, &enc)?;
        let name = naming.render(&NameVars { stem: &stem, variant: kind.name(), ext: fmt.extension(), width: picture.width(), height: picture.height() })?;
        let dir = output_dir.as_deref().unwrap_or(Path::new("."));
        let path = util::write_atomic(dir, &name, &bytes)?;
        written.push(Written { name: kind.name(), path, width: picture.width(), height: picture.height(), format: fmt, bytes: bytes.len() as u64 });
    }
    tracing::debug!(
        path = %raw.path.display(),
        total_ms = started.elapsed().as_secs_f64() * 1e3,
        decode_ms = (decoded - started).as_secs_f64() * 1e3,
        write_ms = segmented.elapsed().as_secs_f64() * 1e3,
        "segment step done"
    );
    let mut result = json!({
        "model": model.manifest.name,
        "provider": model.provider.ort_name(),
        "width": rgb.width(),
        "height": rgb.height(),
        "coverage": (seg.coverage * 1e6).round() / 1e6,
        "bbox": seg.bbox,
        "subjectFound": seg.bbox.is_some(),
        "outputs": written,
    });
    if let (Some(why), Some(obj)) = (fallback, result.as_object_mut()) {
        obj.insert("fallback".into(), json!(why));
    }
    Ok(result)
}
