//! Tests of the step on the tiny generated models (models/test/make_tiny_models.py): red is
//! subject, blue background, so every mask is known. They need ONNX Runtime (found as the step
//! finds it); without it they are skipped loudly, unless PIXELFLOW_REQUIRE_MODEL=1 (test.sh).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use image::{DynamicImage, Rgb, RgbImage, Rgba, RgbaImage};
use pixelflow_imaging::encode::{self, EncodeOptions, OutputFormat};
use serde_json::{json, Value};

use crate::error::Error;
use crate::provider::{Provider, Selection, AUTO_ORDER};
use crate::{manifest, runtime, step};

fn models() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/test")
}

fn tiny(name: &str) -> String {
    models().join(format!("{name}.json")).to_string_lossy().into_owned()
}

/// Whether ONNX Runtime is here; panics when it must be.
fn have_runtime() -> bool {
    match runtime::runtime() {
        Ok(_) => true,
        Err(e) => {
            assert!(std::env::var("PIXELFLOW_REQUIRE_MODEL").map_or(true, |v| v != "1"), "ONNX Runtime is required: {e}");
            eprintln!("\n*** segment: SKIPPED (no ONNX Runtime): {e} ***\n");
            false
        }
    }
}

/// A blue image with a red rectangle.
fn red_on_blue(w: u32, h: u32, rect: (u32, u32, u32, u32)) -> RgbImage {
    let (rx, ry, rw, rh) = rect;
    RgbImage::from_fn(w, h, |x, y| if (rx..rx + rw).contains(&x) && (ry..ry + rh).contains(&y) { Rgb([255, 0, 0]) } else { Rgb([0, 0, 255]) })
}

fn save(dir: &Path, name: &str, image: DynamicImage) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, encode::encode(&image, &EncodeOptions::new(OutputFormat::Png)).unwrap()).unwrap();
    p
}

fn run(input: Value) -> Result<Value, Error> {
    step::run_segment(input, &|| false)
}

#[test]
fn masks_cutouts_crops_and_backgrounds_of_a_known_subject() {
    if !have_runtime() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let photo = save(dir.path(), "photo.png", DynamicImage::ImageRgb8(red_on_blue(200, 160, (40, 20, 80, 60))));
    let out_dir = dir.path().join("out");
    let input = json!({"path": photo, "outputDir": out_dir, "model": tiny("tiny-red"),
        "outputs": ["mask", "cutout", "crop", "background"], "padding": 5, "background": "#00ff00"});
    let out = run(input.clone()).unwrap();
    assert_eq!(out["model"], "tiny-red");
    assert!(out["provider"].as_str().is_some_and(|p| p.ends_with("ExecutionProvider")), "{out}");
    assert_eq!((out["width"].as_u64(), out["height"].as_u64()), (Some(200), Some(160)));
    assert_eq!(out["subjectFound"], true);
    // 64x64 and back blurs the edges by a pixel or two; the 0.5 line stays on the rectangle.
    let b = &out["bbox"];
    let near = |v: &Value, want: i64| (v.as_i64().unwrap() - want).abs() <= 2;
    assert!(near(&b["x"], 40) && near(&b["y"], 20) && near(&b["width"], 80) && near(&b["height"], 60), "{b}");
    let coverage = out["coverage"].as_f64().unwrap();
    assert!((coverage - 4800.0 / 32000.0).abs() < 0.01, "{coverage}");

    let outputs = out["outputs"].as_array().unwrap();
    let names: Vec<&str> = outputs.iter().map(|o| o["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["mask", "cutout", "crop", "background"]);
    let path = |i: usize| PathBuf::from(outputs[i]["path"].as_str().unwrap());
    assert_eq!(path(0), out_dir.join("photo-mask.png"));
    let mask = image::open(path(0)).unwrap();
    assert!(matches!(mask, DynamicImage::ImageLuma8(_)));
    let mask = mask.into_luma8();
    assert_eq!((mask.get_pixel(80, 50).0[0], mask.get_pixel(5, 5).0[0]), (255, 0));
    let cutout = image::open(path(1)).unwrap().into_rgba8();
    assert_eq!((cutout.get_pixel(80, 50).0, cutout.get_pixel(5, 5).0[3]), ([255, 0, 0, 255], 0));
    let crop = image::open(path(2)).unwrap().into_rgba8();
    assert_eq!(u64::from(crop.width()), b["width"].as_u64().unwrap() + 10);
    assert_eq!(u64::from(crop.height()), b["height"].as_u64().unwrap() + 10);
    assert_eq!(crop.get_pixel(0, 0).0[3], 0, "the padding is background");
    let background = image::open(path(3)).unwrap();
    assert!(matches!(background, DynamicImage::ImageRgb8(_)), "an opaque colour makes an opaque image");
    let background = background.into_rgb8();
    assert_eq!((background.get_pixel(5, 5).0, background.get_pixel(80, 50).0), ([0, 255, 0], [255, 0, 0]));

    // Idempotent: the same input writes the same bytes under the same names.
    let first: Vec<Vec<u8>> = (0..4).map(|i| std::fs::read(path(i)).unwrap()).collect();
    let again = run(input).unwrap();
    assert_eq!(again, out);
    for (i, bytes) in first.iter().enumerate() {
        assert_eq!(&std::fs::read(path(i)).unwrap(), bytes);
    }
}

#[test]
fn threshold_feather_and_measure_only() {
    if !have_runtime() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // At the model's own size nothing is resampled: the mask is exactly the rectangle.
    let photo = save(dir.path(), "exact.png", DynamicImage::ImageRgb8(red_on_blue(64, 64, (10, 20, 30, 15))));
    let out = run(json!({"path": photo, "model": tiny("tiny-red"), "outputs": [], "threshold": 0.9})).unwrap();
    assert_eq!(out["bbox"], json!({"x": 10, "y": 20, "width": 30, "height": 15}));
    assert!((out["coverage"].as_f64().unwrap() - 450.0 / 4096.0).abs() < 1e-6, "{}", out["coverage"]);
    assert_eq!(out["outputs"], json!([]));

    let out_dir = dir.path().join("out");
    let out = run(json!({"path": photo, "outputDir": out_dir, "model": tiny("tiny-red"), "threshold": 0.5, "feather": 2})).unwrap();
    let mask = image::open(out_dir.join("exact-mask.png")).unwrap().into_luma8();
    let edge = mask.get_pixel(10, 27).0[0];
    assert!(edge > 0 && edge < 255, "feathered edge {edge}");
    assert_eq!(mask.get_pixel(25, 27).0[0], 255);
    assert_eq!(out["outputs"][0]["format"], "png");

    // No subject: no bbox, no crop written, and the Choice can route on subjectFound.
    let blue = save(dir.path(), "blue.png", DynamicImage::ImageRgb8(red_on_blue(64, 64, (0, 0, 0, 0))));
    let out = run(json!({"path": blue, "outputDir": out_dir, "model": tiny("tiny-red"), "outputs": ["crop"]})).unwrap();
    assert_eq!((out["bbox"].clone(), out["subjectFound"].clone(), out["coverage"].as_f64()), (Value::Null, json!(false), Some(0.0)));
    assert_eq!(out["outputs"], json!([]));
}

#[test]
fn one_session_per_model() {
    if !have_runtime() {
        return;
    }
    let a = runtime::model(&manifest::locate(&tiny("tiny-red")).unwrap(), Selection::Auto).unwrap();
    let b = runtime::model(&manifest::locate(&tiny("tiny-red")).unwrap(), Selection::Auto).unwrap();
    assert!(Arc::ptr_eq(&a.model, &b.model));
}

/// Whether the loaded library offers an accelerator `auto` would try (not so with the PyPI
/// `onnxruntime` wheel the tests use).
fn offers_an_accelerator(offered: &[String]) -> bool {
    AUTO_ORDER.iter().any(|p| offered.iter().any(|o| o == p.ort_name()))
}

// Issue 7: the execution provider is the CPU by default, an accelerator when the library offers one.
#[test]
fn auto_runs_on_what_the_library_offers_and_the_result_names_it() {
    if !have_runtime() {
        return;
    }
    let offered = runtime::available_providers().unwrap();
    assert!(offered.iter().any(|p| p == "CPUExecutionProvider"), "{offered:?}");
    let dir = tempfile::tempdir().unwrap();
    let photo = save(dir.path(), "photo.png", DynamicImage::ImageRgb8(red_on_blue(64, 64, (10, 20, 30, 15))));
    let out = run(json!({"path": photo, "model": tiny("tiny-red"), "outputs": []})).unwrap();
    let cpu = run(json!({"path": photo, "model": tiny("tiny-red"), "outputs": [], "device": "cpu"})).unwrap();
    assert_eq!(cpu["provider"], "CPUExecutionProvider");
    assert_eq!(cpu.get("fallback"), None);
    if offers_an_accelerator(&offered) {
        let first = AUTO_ORDER.iter().find(|p| offered.iter().any(|o| o == p.ort_name())).unwrap();
        assert!(out["provider"] == first.ort_name() || out.get("fallback").is_some(), "{out}");
        return;
    }
    // The CPU-only wheel: the CPU, no fallback to explain, the same session as device: cpu.
    assert_eq!(out["provider"], "CPUExecutionProvider", "{out}");
    assert_eq!(out.get("fallback"), None, "{out}");
    assert_eq!(out["bbox"], cpu["bbox"]);
    let located = manifest::locate(&tiny("tiny-red")).unwrap();
    let auto = runtime::model(&located, Selection::Auto).unwrap();
    let only_cpu = runtime::model(&located, Selection::Only(Provider::Cpu)).unwrap();
    assert!(Arc::ptr_eq(&auto.model, &only_cpu.model), "one session per model and provider");
    assert_eq!(crate::health().auto_provider, Some(Provider::Cpu));
}

#[test]
fn an_accelerator_the_library_lacks_is_a_clear_error() {
    if !have_runtime() {
        return;
    }
    let offered = runtime::available_providers().unwrap();
    if offered.iter().any(|p| p == "CUDAExecutionProvider") {
        eprintln!("this ONNX Runtime offers CUDA: the error for a missing provider is not checked here");
        return;
    }
    let library = runtime::runtime().unwrap().library.display().to_string();
    let dir = tempfile::tempdir().unwrap();
    let photo = save(dir.path(), "photo.png", DynamicImage::ImageRgb8(red_on_blue(64, 64, (10, 20, 30, 15))));
    let e = run(json!({"path": photo, "model": tiny("tiny-red"), "outputs": [], "provider": "cuda"})).unwrap_err();
    assert_eq!(e.asl_name(), "Pixelflow.ProviderUnavailable");
    let m = e.to_string();
    for says in ["execution provider CUDAExecutionProvider", &library, "does not offer it", &offered.join(", "), "onnxruntime-gpu"] {
        assert!(m.contains(says), "{says}: {m}");
    }
    if !offers_an_accelerator(&offered) {
        let e = run(json!({"path": photo, "model": tiny("tiny-red"), "outputs": [], "device": "gpu"})).unwrap_err();
        assert_eq!(e.asl_name(), "Pixelflow.ProviderUnavailable");
        let m = e.to_string();
        assert!(m.starts_with("device gpu: ") && m.contains(&library) && m.contains("offers none of CUDAExecutionProvider"), "{m}");
    }
}

/// tiny-red under another manifest path: a model of its own in the session cache.
fn private_tiny_red(dir: &Path) -> manifest::Located {
    std::fs::copy(models().join("tiny-red.onnx"), dir.join("tiny-red.onnx")).unwrap();
    std::fs::copy(models().join("tiny-red.json"), dir.join("tiny-red.json")).unwrap();
    manifest::locate(&dir.join("tiny-red.json").to_string_lossy()).unwrap()
}

#[test]
fn an_offered_provider_that_cannot_start_falls_back_to_the_cpu_under_auto_only() {
    if !have_runtime() {
        return;
    }
    if runtime::available_providers().unwrap().iter().any(|p| p == "CUDAExecutionProvider") {
        eprintln!("this ONNX Runtime offers CUDA, which may start: the fallback is not checked here");
        return;
    }
    // The library is told to offer CUDA, which it was not built with: registering it fails for
    // real inside ONNX Runtime, as it does for a CUDA build without its libraries or a device.
    let pretend = Some(vec!["CUDAExecutionProvider".to_string(), "CPUExecutionProvider".to_string()]);
    let dir = tempfile::tempdir().unwrap();
    let located = private_tiny_red(dir.path());

    let e = runtime::load(&located, Selection::Only(Provider::Cuda), pretend.clone()).unwrap_err();
    assert_eq!(e.asl_name(), "Pixelflow.ProviderUnavailable");
    let m = e.to_string();
    assert!(m.starts_with("execution provider CUDAExecutionProvider: "), "{m}");
    assert!(m.contains("offers it, but CUDAExecutionProvider failed to start: ") && m.contains("the model itself loads on the CPU"), "{m}");
    let e = runtime::load(&located, Selection::Gpu, pretend.clone()).unwrap_err();
    assert_eq!(e.asl_name(), "Pixelflow.ProviderUnavailable");
    assert!(e.to_string().starts_with("device gpu: "), "{e}");

    let auto = runtime::load(&located, Selection::Auto, pretend.clone()).unwrap();
    assert_eq!(auto.model.provider, Provider::Cpu);
    let why = auto.fallback.clone().unwrap();
    assert!(why.starts_with("CUDAExecutionProvider failed to start: "), "{why}");
    // Decided once: the same session and reason, the CPU session shared with device: cpu.
    let again = runtime::load(&located, Selection::Auto, pretend).unwrap();
    assert!(Arc::ptr_eq(&auto.model, &again.model));
    assert_eq!(again.fallback.as_deref(), Some(why.as_str()));
    let cpu = runtime::load(&located, Selection::Only(Provider::Cpu), None).unwrap();
    assert!(Arc::ptr_eq(&auto.model, &cpu.model));
    assert_eq!(cpu.fallback, None);
    // The fallback session computes: the known mask.
    let seg = step::segment(&auto.model, &red_on_blue(64, 64, (10, 20, 30, 15)), &step::SegmentOptions::default(), &|| false).unwrap();
    assert_eq!(seg.bbox.map(|b| (b.x, b.y, b.width, b.height)), Some((10, 20, 30, 15)));
}

#[test]
fn bad_models_and_images_fail_clearly() {
    if !have_runtime() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let photo = save(dir.path(), "photo.png", DynamicImage::ImageRgb8(red_on_blue(100, 100, (10, 10, 20, 20))));
    let fail = |input: Value| {
        let e = run(input).unwrap_err();
        (e.asl_name(), e.to_string())
    };

    // A model with unexpected inputs: NHWC where the manifest says NCHW.
    let (name, cause) = fail(json!({"path": photo, "model": tiny("tiny-nhwc"), "outputs": []}));
    assert_eq!(name, "Pixelflow.ModelMismatch");
    assert!(cause.contains("tiny-nhwc") && cause.contains("[1,64,64,3]") && cause.contains("[1,3,64,64]"), "{cause}");

    // A manifest whose model file is missing, or is not the file it describes.
    let manifest = std::fs::read_to_string(models().join("tiny-red.json")).unwrap();
    std::fs::write(dir.path().join("gone.json"), manifest.replace("\"tiny-red\"", "\"gone\"")).unwrap();
    let (name, cause) = fail(json!({"path": photo, "model": dir.path().join("gone.json"), "outputs": []}));
    assert_eq!(name, "Pixelflow.ModelNotFound");
    assert!(cause.contains("model gone") && cause.contains("tiny-red.onnx is not installed"), "{cause}");
    std::fs::copy(models().join("tiny-red.onnx"), dir.path().join("tiny-red.onnx")).unwrap();
    std::fs::write(dir.path().join("other.json"), manifest.replace("\"tiny-red\"", "\"other\"").replace("212", "213")).unwrap();
    let (name, cause) = fail(json!({"path": photo, "model": dir.path().join("other.json"), "outputs": []}));
    assert_eq!(name, "Pixelflow.ModelMismatch");
    assert!(cause.contains("212 bytes") && cause.contains("213"), "{cause}");
    let (name, cause) = fail(json!({"path": photo, "model": "no-such-model", "outputs": []}));
    assert_eq!(name, "Pixelflow.ModelNotFound");
    assert!(cause.contains("no-such-model.json"), "{cause}");

    // Too small an image; an image that already has transparency.
    let small = save(dir.path(), "small.png", DynamicImage::ImageRgb8(red_on_blue(7, 30, (0, 0, 2, 2))));
    let (name, cause) = fail(json!({"path": small, "model": tiny("tiny-red"), "outputs": []}));
    assert_eq!(name, "Pixelflow.ImageTooSmall");
    assert!(cause.contains("7x30") && cause.contains("tiny-red") && cause.contains("8x8"), "{cause}");
    let mut rgba = RgbaImage::from_pixel(40, 40, Rgba([255, 0, 0, 255]));
    rgba.put_pixel(0, 0, Rgba([0, 0, 255, 10]));
    let clear = save(dir.path(), "clear.png", DynamicImage::ImageRgba8(rgba.clone()));
    let (name, cause) = fail(json!({"path": clear, "model": tiny("tiny-red"), "outputs": []}));
    assert_eq!(name, "Pixelflow.ImageHasAlpha");
    assert!(cause.contains("clear.png") && cause.contains("ignoreAlpha"), "{cause}");
    let out = run(json!({"path": clear, "model": tiny("tiny-red"), "outputs": [], "ignoreAlpha": true})).unwrap();
    assert_eq!(out["subjectFound"], true);
    rgba.put_pixel(0, 0, Rgba([255, 0, 0, 255]));
    let opaque = save(dir.path(), "opaque.png", DynamicImage::ImageRgba8(rgba));
    assert!(run(json!({"path": opaque, "model": tiny("tiny-red"), "outputs": []})).is_ok(), "an opaque alpha channel is fine");

    // Parameters.
    let out_dir = dir.path().join("out");
    for (input, says) in [
        (json!({"path": photo, "model": tiny("tiny-red")}), "outputDir"),
        (json!({"path": photo, "model": tiny("tiny-red"), "outputs": [], "threshold": 1.5}), "threshold"),
        (json!({"path": photo, "model": tiny("tiny-red"), "outputs": ["halo"]}), "halo"),
        (json!({"path": photo, "outputDir": out_dir, "model": tiny("tiny-red"), "outputs": ["cutout"], "format": "jpeg"}), "transparency"),
        (json!({"path": photo, "outputDir": out_dir, "model": tiny("tiny-red"), "outputs": ["mask", "cutout"], "naming": "{stem}.{ext}"}), "{variant}"),
        (json!({"path": photo, "outputDir": out_dir, "model": tiny("tiny-red"), "naming": "../{stem}.{ext}"}), "file name"),
        (json!({"path": photo, "model": tiny("tiny-red"), "outputs": [], "device": "fast"}), "device must be \"auto\", \"gpu\" or \"cpu\", got \"fast\""),
        (json!({"path": photo, "model": tiny("tiny-red"), "outputs": [], "provider": "vulkan"}), "unknown provider \"vulkan\""),
        (json!({"path": photo, "model": tiny("tiny-red"), "outputs": [], "device": "cpu", "provider": "cuda"}), "contradicts"),
    ] {
        let (name, cause) = fail(input.clone());
        assert_eq!(name, "Pixelflow.InvalidParameters", "{input}");
        assert!(cause.contains(says), "{input}: {cause}");
    }
    let (name, _) = fail(json!({"path": dir.path().join("missing.png"), "model": tiny("tiny-red"), "outputs": []}));
    assert_eq!(name, "Pixelflow.InputNotFound");
    assert!(!out_dir.exists(), "nothing written by a failed call");
}
