//! The image steps as ASL Task resources (`pixelflow:validate`, `pixelflow:resize`,
//! `pixelflow:filter`, `pixelflow:optimize`): step input in the ASL's camelCase spelling is read into raw serde
//! types, checked into the options of the in-memory API, run, and answered as JSON. Errors
//! become [`Failure`]s named after [`Error::asl_name`], which Retry and Catch match.

use std::path::{Path, PathBuf};

use image::Rgba;
use pixelflow_engine::{Failure, StepRegistry, TaskContext};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::color::IccPolicy;
use crate::encode::{Effort, OutputFormat};
use crate::error::{Error, Result};
use crate::filter::{self, FilterChain, FilterOptions};
use crate::format::Format;
use crate::geometry::{Fit, Position, Target};
use crate::naming::NameTemplate;
use crate::optimize::{self, OptimizeOptions};
use crate::resize::{Filter, ResizeOptions, Resizer, Variant};
use crate::validate::{self, ValidateOptions};

/// Registers `validate`, `resize`, `filter` and `optimize`.
pub fn register(steps: &mut StepRegistry) {
    steps.register("validate", |input: Value, _: &TaskContext| run_validate(input).map_err(failure));
    steps.register("resize", |input: Value, ctx: &TaskContext| run_resize(input, &|| still_wanted(ctx)).map_err(failure));
    steps.register("filter", |input: Value, ctx: &TaskContext| run_filter(input, &|| still_wanted(ctx)).map_err(failure));
    steps.register("optimize", |input: Value, ctx: &TaskContext| run_optimize(input, &|| still_wanted(ctx)).map_err(failure));
}

/// Called between units of work (before a decode, between variants and files): tells the engine
/// the task is alive (`HeartbeatSeconds`) and answers whether it was cancelled.
fn still_wanted(ctx: &TaskContext) -> bool {
    ctx.heartbeat();
    ctx.is_cancelled()
}

/// The ASL failure for an error: its name, and the message as the cause.
pub fn failure(error: Error) -> Failure {
    Failure::new(error.asl_name(), error.to_string())
}

fn parse<T: for<'de> Deserialize<'de>>(step: &str, input: Value) -> Result<T> {
    serde_json::from_value(input).map_err(|e| Error::invalid(format!("{step}: {e}")))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ValidateInput {
    path: PathBuf,
    #[serde(default)]
    decode: bool,
    max_pixels: Option<u64>,
    max_bytes: Option<u64>,
    formats: Option<Vec<String>>,
    check_extension: Option<bool>,
}

/// `pixelflow:validate`: `{path, decode?, maxPixels?, maxBytes?, formats?, checkExtension?}`.
pub fn run_validate(input: Value) -> Result<Value> {
    let raw: ValidateInput = parse("validate", input)?;
    let formats = match raw.formats {
        None => None,
        Some(names) => Some(
            names
                .iter()
                .map(|n| Format::parse(n).ok_or_else(|| Error::invalid(format!("validate: unknown format '{n}' in formats"))))
                .collect::<Result<Vec<_>>>()?,
        ),
    };
    let options = ValidateOptions {
        decode: raw.decode,
        max_pixels: raw.max_pixels.unwrap_or(ValidateOptions::default().max_pixels),
        max_bytes: raw.max_bytes,
        formats,
        check_extension: raw.check_extension.unwrap_or(true),
    };
    let answer = validate::validate_path(&raw.path, &options)?;
    serde_json::to_value(answer).map_err(|e| Error::invalid(e.to_string()))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResizeInput {
    path: PathBuf,
    output_dir: PathBuf,
    variants: Vec<VariantInput>,
    naming: Option<String>,
    max_pixels: Option<u64>,
    shrink_on_load: Option<bool>,
    icc: Option<String>,
}

/// A variant as written in a workflow. Unknown fields are refused here (a misspelt `witdh`
/// would otherwise silently make an unscaled image).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct VariantInput {
    name: String,
    width: Option<u32>,
    height: Option<u32>,
    #[serde(default)]
    fit: Fit,
    position: Option<String>,
    background: Option<Value>,
    #[serde(default)]
    without_enlargement: bool,
    #[serde(default)]
    filter: Filter,
    format: Option<String>,
    quality: Option<u8>,
    /// WebP: lossless (`"lossless": true`); lossy by default, as in sharp.
    #[serde(default)]
    lossless: bool,
    /// AVIF: rav1e speed 1 to 10.
    speed: Option<u8>,
    /// Resample in linear light (`"linear": true`); off by default, as in sharp.
    #[serde(default)]
    linear: bool,
}

fn resize_options(raw: &ResizeInput) -> Result<ResizeOptions> {
    let mut variants = Vec::with_capacity(raw.variants.len());
    for (i, v) in raw.variants.iter().enumerate() {
        let at = |e: Error| match e {
            Error::InvalidParameters(m) => Error::invalid(format!("variants[{i}]: {m}")),
            other => other,
        };
        let position = v.position.as_deref().map(Position::parse).transpose().map_err(at)?.unwrap_or_default();
        let target = Target { width: v.width, height: v.height, fit: v.fit, position, without_enlargement: v.without_enlargement };
        let mut variant = Variant::new(v.name.clone(), target);
        variant.filter = v.filter;
        variant.linear = v.linear;
        variant.format = v.format.as_deref().map(OutputFormat::parse).transpose().map_err(at)?;
        variant.quality = v.quality.unwrap_or(variant.quality);
        variant.lossless = v.lossless;
        variant.speed = v.speed;
        if let Some(bg) = &v.background {
            variant.background = parse_color(bg).map_err(at)?;
        }
        variants.push(variant);
    }
    let mut options = ResizeOptions::new(variants)?;
    if let Some(naming) = &raw.naming {
        options.naming = NameTemplate::parse(naming)?;
    }
    options.max_pixels = raw.max_pixels.unwrap_or(options.max_pixels);
    options.shrink_on_load = raw.shrink_on_load.unwrap_or(true);
    options.icc = raw.icc.as_deref().map(IccPolicy::parse).transpose()?.unwrap_or_default();
    Ok(options)
}

/// `pixelflow:resize`: `{path, outputDir, variants: [...], naming?, icc?: srgb|keep}` ->
/// `{variants: [{name, path, width, height, format, bytes}]}`. A variant is `{name, width?,
/// height?, fit?, position?, background?, withoutEnlargement?, filter?, format?: jpeg|png|webp|avif,
/// quality?, lossless? (WebP), speed? (AVIF, 1-10), linear?}`; `linear: true` resamples it in
/// linear light (see [`crate::resize`]).
pub fn run_resize(input: Value, should_stop: &dyn Fn() -> bool) -> Result<Value> {
    let raw: ResizeInput = parse("resize", input)?;
    let options = resize_options(&raw)?;
    let written = Resizer::new().resize_file_with(&raw.path, &raw.output_dir, &options, should_stop)?;
    Ok(json!({ "variants": written }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FilterInput {
    path: PathBuf,
    output_dir: PathBuf,
    /// Read by [`FilterChain::parse`], which names the filter and field of any fault.
    filters: Value,
    format: Option<String>,
    quality: Option<u8>,
    naming: Option<String>,
    max_pixels: Option<u64>,
    background: Option<Value>,
    #[serde(default)]
    lossless: bool,
    speed: Option<u8>,
    icc: Option<String>,
}

/// `pixelflow:filter`: `{path, outputDir, filters: [{type, ...}], format?, quality?, naming?,
/// maxPixels?, background?, lossless? (WebP), speed? (AVIF, 1-10), icc?: srgb|keep}` ->
/// `{path, width, height, format, bytes}`. The filters and their exact semantics are
/// documented in [`crate::filter`].
pub fn run_filter(input: Value, should_stop: &dyn Fn() -> bool) -> Result<Value> {
    let raw: FilterInput = parse("filter", input)?;
    let mut options = FilterOptions::new(FilterChain::parse(&raw.filters)?);
    options.format = raw.format.as_deref().map(OutputFormat::parse).transpose()?;
    options.quality = raw.quality.unwrap_or(options.quality);
    options.max_pixels = raw.max_pixels.unwrap_or(options.max_pixels);
    if raw.speed.is_some_and(|s| !(1..=10).contains(&s)) {
        return Err(Error::invalid("speed must be 1 to 10"));
    }
    options.extras.lossless = raw.lossless;
    options.extras.speed = raw.speed;
    options.extras.icc = raw.icc.as_deref().map(IccPolicy::parse).transpose()?.unwrap_or_default();
    if let Some(bg) = &raw.background {
        options.background = parse_color(bg)?;
    }
    if let Some(naming) = &raw.naming {
        options.naming = NameTemplate::parse(naming)?;
    }
    let written = filter::filter_file_with(&raw.path, &raw.output_dir, &options, should_stop)?;
    serde_json::to_value(written).map_err(|e| Error::invalid(e.to_string()))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OptimizeInput {
    path: Option<PathBuf>,
    inputs: Option<Value>,
    output_dir: PathBuf,
    format: Option<String>,
    quality: Option<u8>,
    effort: Option<Effort>,
    #[serde(default)]
    lossless: bool,
    speed: Option<u8>,
    icc: Option<String>,
    allow_larger: Option<bool>,
    max_bytes: Option<u64>,
    naming: Option<String>,
    max_pixels: Option<u64>,
    background: Option<Value>,
}

/// `pixelflow:optimize`: `{path | inputs, outputDir, format?: auto|jpeg|png|webp|avif, quality?,
/// effort?: fast|balanced|smallest, lossless? (WebP), speed? (AVIF, 1-10), icc?: srgb|keep,
/// allowLarger?, maxBytes?, naming?}` -> `{outputs: [...]}`.
///
/// `inputs` takes what earlier steps produced as it is: a path, a list, or objects holding
/// `path` fields at any depth (a resize output, a Parallel state's results).
pub fn run_optimize(input: Value, should_stop: &dyn Fn() -> bool) -> Result<Value> {
    let raw: OptimizeInput = parse("optimize", input)?;
    let mut options = OptimizeOptions::default();
    options.format = match raw.format.as_deref() {
        None | Some("auto") => None,
        Some(name) => Some(OutputFormat::parse(name)?),
    };
    options.quality = raw.quality.unwrap_or(options.quality);
    options.effort = raw.effort.unwrap_or(options.effort);
    options.lossless = raw.lossless;
    options.speed = raw.speed;
    options.icc = raw.icc.as_deref().map(IccPolicy::parse).transpose()?.unwrap_or_default();
    options.allow_larger = raw.allow_larger.unwrap_or(false);
    options.max_bytes = raw.max_bytes;
    options.max_pixels = raw.max_pixels.unwrap_or(options.max_pixels);
    if let Some(bg) = &raw.background {
        options.background = parse_color(bg)?;
    }
    if let Some(naming) = &raw.naming {
        options.naming = NameTemplate::parse(naming)?;
    }
    let mut paths = Vec::new();
    if let Some(p) = raw.path {
        paths.push(p);
    }
    if let Some(inputs) = &raw.inputs {
        collect_paths(inputs, true, 0, &mut paths);
    }
    if paths.is_empty() {
        return Err(Error::invalid("optimize: give `path`, or `inputs` holding at least one path"));
    }
    let mut outputs = Vec::with_capacity(paths.len());
    for path in &paths {
        if should_stop() {
            return Err(Error::Cancelled);
        }
        outputs.push(optimize::optimize_file(path, &raw.output_dir, &options)?);
    }
    Ok(json!({ "outputs": outputs }))
}

/// The most files one optimize call takes.
const MAX_INPUTS: usize = 1000;

/// Paths in a step output: `inputs` itself or its items when they are strings, and `path`
/// fields of objects at any depth (bounded). Other strings of an object (names, formats) are
/// not paths.
fn collect_paths(value: &Value, bare_strings: bool, depth: usize, out: &mut Vec<PathBuf>) {
    if depth > 8 || out.len() >= MAX_INPUTS {
        return;
    }
    match value {
        Value::String(s) if bare_strings => push_unique(out, Path::new(s)),
        Value::Array(items) => items.iter().for_each(|v| collect_paths(v, bare_strings && depth == 0, depth + 1, out)),
        Value::Object(map) => match map.get("path").and_then(Value::as_str) {
            Some(p) => push_unique(out, Path::new(p)),
            None => map.values().for_each(|v| collect_paths(v, false, depth + 1, out)),
        },
        _ => {}
    }
}

fn push_unique(out: &mut Vec<PathBuf>, p: &Path) {
    if !out.iter().any(|q| q == p) {
        out.push(p.to_path_buf());
    }
}

/// A colour as sharp takes it: `"#rgb"`, `"#rrggbb"`, `"#rrggbbaa"`, or `{r, g, b, alpha}` with
/// alpha from 0 to 1.
pub fn parse_color(value: &Value) -> Result<Rgba<u8>> {
    let bad = || Error::invalid(format!("background {value} is not a colour (\"#rrggbb\", \"#rrggbbaa\" or {{r, g, b, alpha}})"));
    match value {
        Value::String(s) => {
            let hex = s.strip_prefix('#').unwrap_or(s);
            let digit = |i: usize| hex.get(i..i + 1).and_then(|d| u8::from_str_radix(d, 16).ok());
            let byte = |i: usize| hex.get(i..i + 2).and_then(|d| u8::from_str_radix(d, 16).ok());
            let rgba = match hex.len() {
                3 => [digit(0).map(|d| d * 17), digit(1).map(|d| d * 17), digit(2).map(|d| d * 17), Some(255)],
                6 => [byte(0), byte(2), byte(4), Some(255)],
                8 => [byte(0), byte(2), byte(4), byte(6)],
                _ => return Err(bad()),
            };
            let [r, g, b, a] = rgba;
            Ok(Rgba([r.ok_or_else(bad)?, g.ok_or_else(bad)?, b.ok_or_else(bad)?, a.ok_or_else(bad)?]))
        }
        Value::Object(map) => {
            let channel = |k: &str| match map.get(k).and_then(Value::as_f64) {
                Some(v) if (0.0..=255.0).contains(&v) => Ok(v.round() as u8),
                Some(_) => Err(bad()),
                None => Ok(0),
            };
            let alpha = match map.get("alpha").and_then(Value::as_f64) {
                Some(a) if (0.0..=1.0).contains(&a) => (a * 255.0).round() as u8,
                Some(_) => return Err(bad()),
                None => 255,
            };
            Ok(Rgba([channel("r")?, channel("g")?, channel("b")?, alpha]))
        }
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::{self, EncodeOptions};
    use image::{DynamicImage, RgbImage};

    fn jpeg_file(dir: &Path, name: &str, w: u32, h: u32) -> PathBuf {
        let img = DynamicImage::ImageRgb8(RgbImage::from_fn(w, h, |x, y| image::Rgb([x as u8, y as u8, 77])));
        let mut o = EncodeOptions::new(OutputFormat::Jpeg);
        o.quality = 95;
        let p = dir.join(name);
        std::fs::write(&p, encode::encode(&img, &o).unwrap()).unwrap();
        p
    }

    #[test]
    fn filter_writes_lossless_webp_and_checks_speed_like_resize() {
        let dir = tempfile::tempdir().unwrap();
        let p = jpeg_file(dir.path(), "a.jpg", 24, 16);
        let filters = json!([{"type": "invert"}]);
        let png = run_filter(json!({"path": p, "outputDir": dir.path(), "filters": filters, "format": "png", "naming": "{stem}-png.{ext}"}), &|| false).unwrap();
        let webp = run_filter(json!({"path": p, "outputDir": dir.path(), "filters": filters, "format": "webp", "lossless": true, "naming": "{stem}-lossless.{ext}"}), &|| false).unwrap();
        let decoded = |out: &Value| image::open(out["path"].as_str().unwrap()).unwrap().to_rgb8();
        assert_eq!(decoded(&png), decoded(&webp), "lossless WebP holds exactly the filtered pixels");
        let lossy = run_filter(json!({"path": p, "outputDir": dir.path(), "filters": filters, "format": "webp", "quality": 10, "naming": "{stem}-lossy.{ext}"}), &|| false).unwrap();
        assert_ne!(decoded(&png), decoded(&lossy), "without lossless, WebP is lossy (sharp's default)");
        let err = run_filter(json!({"path": p, "outputDir": dir.path(), "filters": filters, "format": "avif", "speed": 11}), &|| false).unwrap_err();
        assert!(err.to_string().contains("speed must be 1 to 10"), "{err}");
    }

    #[test]
    fn validate_answers_and_fails_as_asl_expects() {
        let dir = tempfile::tempdir().unwrap();
        let p = jpeg_file(dir.path(), "a.jpg", 20, 10);
        let out = run_validate(json!({"path": p, "decode": true})).unwrap();
        assert_eq!(out["isValid"], true);
        assert_eq!((out["format"].as_str(), out["width"].as_u64(), out["colorType"].as_str()), (Some("jpeg"), Some(20), Some("rgb")));
        let text = dir.path().join("notes.jpg");
        std::fs::write(&text, "just some text").unwrap();
        let out = run_validate(json!({"path": text})).unwrap();
        assert_eq!(out["isValid"], false);
        assert!(out["reason"].as_str().unwrap().starts_with("not an image"));

        let f = failure(run_validate(json!({"path": dir.path().join("missing.jpg")})).unwrap_err());
        assert_eq!(f.error, "Pixelflow.InputNotFound");
        let f = failure(run_validate(json!({"decode": true})).unwrap_err());
        assert_eq!(f.error, "Pixelflow.InvalidParameters");
        let f = failure(run_validate(json!({"path": p, "formats": ["png", "svg"]})).unwrap_err());
        assert!(f.cause.contains("svg"), "{f}");
    }

    #[test]
    fn resize_writes_variants_and_refuses_bad_parameters() {
        let dir = tempfile::tempdir().unwrap();
        let p = jpeg_file(dir.path(), "photo.jpg", 64, 48);
        let out_dir = dir.path().join("out");
        let input = json!({"path": p, "outputDir": out_dir, "variants": [
            {"name": "thumb", "width": 32, "height": 32, "fit": "cover", "position": "top"},
            {"name": "png", "width": 16, "format": "png", "background": "#ffffff"}
        ]});
        let out = run_resize(input, &|| false).unwrap();
        let v = &out["variants"];
        assert_eq!(v[0]["path"], json!(out_dir.join("photo-thumb.jpg")));
        assert_eq!((v[0]["width"].as_u64(), v[0]["height"].as_u64(), v[0]["format"].as_str()), (Some(32), Some(32), Some("jpeg")));
        assert_eq!((v[1]["width"].as_u64(), v[1]["height"].as_u64(), v[1]["format"].as_str()), (Some(16), Some(12), Some("png")));
        assert_eq!(std::fs::metadata(out_dir.join("photo-png.png")).unwrap().len(), v[1]["bytes"].as_u64().unwrap());

        let bad = |variants: Value, naming: Value| {
            let f = failure(run_resize(json!({"path": p, "outputDir": out_dir, "variants": variants, "naming": naming}), &|| false).unwrap_err());
            assert_eq!(f.error, "Pixelflow.InvalidParameters", "{f}");
            f.cause
        };
        assert!(bad(json!([{"name": "a", "witdh": 5}]), Value::Null).contains("witdh"));
        assert!(bad(json!([{"name": "a", "width": 5, "fit": "squash"}]), Value::Null).contains("squash"));
        assert!(bad(json!([{"name": "a", "width": 5, "filter": "sinc"}]), Value::Null).contains("sinc"));
        assert!(bad(json!([{"name": "a", "width": 5, "position": "middle"}]), Value::Null).starts_with("variants[0]"));
        assert!(bad(json!([{"name": "a", "width": 5}]), json!("../{stem}.{ext}")).contains("file name"));
        assert!(bad(json!([{"name": "a", "width": 5}, {"name": "b", "width": 6}]), json!("{stem}.{ext}")).contains("{variant}"));

        let f = failure(run_resize(json!({"path": p, "outputDir": out_dir, "variants": [{"name": "a", "width": 5}]}), &|| true).unwrap_err());
        assert_eq!(f.error, "States.Aborted");
    }

    #[test]
    fn resize_takes_linear_per_variant() {
        let dir = tempfile::tempdir().unwrap();
        // A 1-px black/white checkerboard: halved in linear light it is ~188, in sRGB ~128.
        let board = DynamicImage::ImageLuma8(image::GrayImage::from_fn(64, 64, |x, y| image::Luma([if (x + y) % 2 == 0 { 0 } else { 255 }])));
        let p = dir.path().join("board.png");
        std::fs::write(&p, encode::encode(&board, &EncodeOptions::new(OutputFormat::Png)).unwrap()).unwrap();
        let out_dir = dir.path().join("out");
        let input = json!({"path": p, "outputDir": out_dir, "variants": [
            {"name": "plain", "width": 32, "filter": "box"},
            {"name": "off", "width": 32, "filter": "box", "linear": false},
            {"name": "lin", "width": 32, "filter": "box", "linear": true}
        ]});
        let out = run_resize(input, &|| false).unwrap();
        let centre = |name: &str| {
            let img = image::open(out_dir.join(format!("board-{name}.png"))).unwrap().to_luma8();
            img.get_pixel(16, 16).0[0]
        };
        assert_eq!(out["variants"][2]["width"], 32);
        assert_eq!(centre("plain"), 128, "off by default");
        assert_eq!(centre("off"), 128);
        assert_eq!(centre("lin"), 188);

        let f = failure(run_resize(json!({"path": p, "outputDir": out_dir, "variants": [{"name": "a", "width": 5, "linear": "yes"}]}), &|| false).unwrap_err());
        assert_eq!(f.error, "Pixelflow.InvalidParameters", "{f}");
    }

    #[test]
    fn filter_writes_one_output_and_names_faults_by_index_and_field() {
        let dir = tempfile::tempdir().unwrap();
        let p = jpeg_file(dir.path(), "photo.jpg", 40, 30);
        let out_dir = dir.path().join("out");
        let filters = json!([{"type": "contrast", "amount": 1.1}, {"type": "unsharp", "sigma": 1.0, "amount": 0.5}]);
        let out = run_filter(json!({"path": p, "outputDir": out_dir, "filters": filters}), &|| false).unwrap();
        assert_eq!(out["path"], json!(out_dir.join("photo-filtered.jpg")));
        assert_eq!((out["width"].as_u64(), out["height"].as_u64(), out["format"].as_str()), (Some(40), Some(30), Some("jpeg")));
        assert_eq!(std::fs::metadata(out_dir.join("photo-filtered.jpg")).unwrap().len(), out["bytes"].as_u64().unwrap());
        let out = run_filter(json!({"path": p, "outputDir": out_dir, "filters": [{"type": "sepia"}], "format": "png", "naming": "{stem}.{ext}"}), &|| false).unwrap();
        assert_eq!(out["path"], json!(out_dir.join("photo.png")));

        let bad = |input: Value| {
            let f = failure(run_filter(input, &|| false).unwrap_err());
            assert_eq!(f.error, "Pixelflow.InvalidParameters", "{f}");
            f.cause
        };
        let cause = bad(json!({"path": p, "outputDir": out_dir, "filters": [{"type": "invert"}, {"type": "blur", "sigma": 1e9}]}));
        assert!(cause.starts_with("filters[1].sigma (blur)"), "{cause}");
        assert!(bad(json!({"path": p, "outputDir": out_dir})).contains("filters"));
        assert!(bad(json!({"path": p, "outputDir": out_dir, "filters": [{"type": "invert"}], "format": "tiff"})).contains("tiff"));
        assert!(bad(json!({"path": p, "outputDir": out_dir, "filters": [{"type": "invert"}], "naming": "../{stem}.{ext}"})).contains("file name"));
        let f = failure(run_filter(json!({"path": p, "outputDir": out_dir, "filters": [{"type": "invert"}]}), &|| true).unwrap_err());
        assert_eq!(f.error, "States.Aborted");
    }

    #[test]
    fn optimize_takes_resize_outputs_as_inputs() {
        let dir = tempfile::tempdir().unwrap();
        let a = jpeg_file(dir.path(), "a.jpg", 40, 30);
        let b = jpeg_file(dir.path(), "b.jpg", 30, 40);
        let processed = json!({"resized": {"variants": [{"name": "x", "path": a}, {"name": "y", "path": b}]}, "filtered": {"path": a}, "note": "not a path", "tags": ["nor this"]});
        let out = run_optimize(json!({"inputs": processed, "outputDir": dir.path().join("opt"), "format": "auto", "quality": 80}), &|| false).unwrap();
        let outputs = out["outputs"].as_array().unwrap();
        assert_eq!(outputs.len(), 2, "{out}");
        assert_eq!(outputs[0]["path"], json!(dir.path().join("opt/a.jpg")));
        assert_eq!(outputs[1]["format"], "jpeg");
        assert!(outputs[0]["bytes"].as_u64() <= outputs[0]["inputBytes"].as_u64());

        let mut found = Vec::new();
        collect_paths(&json!(["a.jpg", {"path": "b.png"}, ["c.jpg"]]), true, 0, &mut found);
        assert_eq!(found, [PathBuf::from("a.jpg"), PathBuf::from("b.png")]);

        let f = failure(run_optimize(json!({"outputDir": "x"}), &|| false).unwrap_err());
        assert_eq!(f.error, "Pixelflow.InvalidParameters");
        let f = failure(run_optimize(json!({"path": dir.path().join("nope.png"), "outputDir": dir.path()}), &|| false).unwrap_err());
        assert_eq!(f.error, "Pixelflow.InputNotFound");
    }

    #[test]
    fn colours_parse_like_sharp() {
        assert_eq!(parse_color(&json!("#fff")).unwrap(), Rgba([255, 255, 255, 255]));
        assert_eq!(parse_color(&json!("#10203080")).unwrap(), Rgba([16, 32, 48, 128]));
        assert_eq!(parse_color(&json!({"r": 1, "g": 2, "b": 3, "alpha": 0.5})).unwrap(), Rgba([1, 2, 3, 128]));
        for bad in [json!("#ggg"), json!("red"), json!({"r": 300}), json!({"alpha": 2}), json!(5), json!("#ééé")] {
            assert!(parse_color(&bad).is_err(), "{bad}");
        }
    }
}
