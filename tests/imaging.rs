//! The image steps through the real CLI: the bundled thumbnail workflow on the fixtures in
//! `tests/data/` (made by `crates/imaging/tests/fixtures.rs`), bad inputs routed by the
//! workflow's Choice, and step errors as ASL errors.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::util::{stderr, stdout_json, Sandbox};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn fixture(name: &str) -> PathBuf {
    root().join("tests/data").join(name)
}

fn thumbnail_workflow() -> String {
    root().join("workflows/thumbnail.asl.json").to_string_lossy().into_owned()
}

/// Runs the thumbnail workflow on `path`, writing into the sandbox's `out/`.
fn thumbnail(sb: &Sandbox, path: &Path) -> (Option<i32>, Value) {
    let input = sb.json("in.json", &json!({"path": path, "outputDir": sb.path().join("out")}));
    let out = sb.run(&["workflow", "run", &thumbnail_workflow(), "--input", input.to_str().unwrap()]);
    let code = out.status.code();
    assert!(matches!(code, Some(0 | 1)), "exit {code:?}: {}", stderr(&out));
    (code, stdout_json(&out))
}

/// Reads width and height from a baseline or progressive JPEG's SOF segment.
fn jpeg_size(bytes: &[u8]) -> (u32, u32) {
    let mut pos = 2;
    while pos + 9 < bytes.len() {
        let marker = bytes[pos + 1];
        let len = usize::from(u16::from_be_bytes([bytes[pos + 2], bytes[pos + 3]]));
        if matches!(marker, 0xC0..=0xC2) {
            let h = u16::from_be_bytes([bytes[pos + 5], bytes[pos + 6]]);
            let w = u16::from_be_bytes([bytes[pos + 7], bytes[pos + 8]]);
            return (u32::from(w), u32::from(h));
        }
        pos += 2 + len;
    }
    panic!("no SOF segment");
}

#[test]
fn thumbnail_workflow_is_valid() {
    let sb = Sandbox::new();
    let out = sb.run(&["workflow", "validate", &thumbnail_workflow()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn thumbnail_fits_a_large_jpeg_within_800() {
    let sb = Sandbox::new();
    let (code, out) = thumbnail(&sb, &fixture("large.jpg"));
    assert_eq!(code, Some(0), "{out}");
    let path = sb.path().join("out/large.jpg");
    assert_eq!(out["path"], json!(path));
    assert_eq!((out["width"].as_u64(), out["height"].as_u64(), out["format"].as_str()), (Some(800), Some(600), Some("jpeg")));
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(out["bytes"].as_u64(), Some(bytes.len() as u64));
    assert_eq!(jpeg_size(&bytes), (800, 600));

    // Idempotent: a second run (as after a crash) rewrites the same bytes, and leaves no
    // temporary files behind.
    let (code, _) = thumbnail(&sb, &fixture("large.jpg"));
    assert_eq!(code, Some(0));
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
    let names: Vec<_> = std::fs::read_dir(sb.path().join("out")).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, ["large.jpg"]);
}

#[test]
fn thumbnail_turns_the_image_upright_and_never_enlarges() {
    let sb = Sandbox::new();
    let (code, out) = thumbnail(&sb, &fixture("rotated-6.jpg"));
    assert_eq!(code, Some(0), "{out}");
    // Stored 240x160 with orientation 6: upright 160x240, smaller than 800, so not scaled.
    assert_eq!((out["width"].as_u64(), out["height"].as_u64()), (Some(160), Some(240)));
    let bytes = std::fs::read(sb.path().join("out/rotated-6.jpg")).unwrap();
    assert_eq!(jpeg_size(&bytes), (160, 240));
    assert!(!bytes.windows(6).any(|w| w == b"Exif\0\0"), "no Exif: the orientation is in the pixels");
}

#[test]
fn thumbnail_of_a_transparent_png_is_a_jpeg() {
    let sb = Sandbox::new();
    let (code, out) = thumbnail(&sb, &fixture("transparent.png"));
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(out["path"], json!(sb.path().join("out/transparent.jpg")));
    let bytes = std::fs::read(sb.path().join("out/transparent.jpg")).unwrap();
    assert_eq!(&bytes[..3], &[0xFF, 0xD8, 0xFF]);
    assert_eq!(jpeg_size(&bytes), (300, 200));
}

#[test]
fn bad_images_are_routed_to_invalid_image_with_the_reason() {
    let sb = Sandbox::new();
    let large = std::fs::read(fixture("large.jpg")).unwrap();
    let mut huge_png = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR\0\x01\x86\xa0\0\x01\x86\xa0\x08\x02\0\0\0".to_vec();
    huge_png.extend_from_slice(&[0x27, 0x30, 0x9C, 0x9F]); // CRC of the IHDR above
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("truncated.jpg", large[..large.len() / 2].to_vec(), "truncated"),
        ("empty.jpg", Vec::new(), "empty file"),
        ("notes.jpg", b"hello\n".to_vec(), "not an image"),
        ("huge.png", huge_png, "too many pixels: 100000x100000"),
        ("photo.png", large.clone(), "the extension .png says png but the content is jpeg"),
    ];
    for (name, bytes, reason) in cases {
        let path = sb.path().join(name);
        std::fs::write(&path, &bytes).unwrap();
        let (code, out) = thumbnail(&sb, &path);
        assert_eq!(code, Some(1), "{name}: {out}");
        assert_eq!(out["error"], "Pixelflow.InvalidImage", "{name}: {out}");
        let cause = out["cause"].as_str().unwrap_or_default();
        assert!(cause.contains(reason), "{name}: cause {cause:?} should mention {reason:?}");
    }
    assert!(!sb.path().join("out").exists(), "nothing was written for a bad image");
}

#[test]
fn missing_input_is_an_input_not_found_error() {
    let sb = Sandbox::new();
    let (code, out) = thumbnail(&sb, &sb.path().join("nowhere.jpg"));
    assert_eq!(code, Some(1));
    assert_eq!(out["error"], "Pixelflow.InputNotFound", "{out}");
}

#[test]
fn resize_and_optimize_steps_in_a_workflow() {
    let sb = Sandbox::new();
    let def = sb.json("def.json", &json!({"StartAt": "Resize", "States": {
        "Resize": {"Type": "Task", "Resource": "pixelflow:resize",
                   "Parameters": {"path.$": "$.path", "outputDir.$": "$.outputDir", "variants": [
                       {"name": "square", "width": 100, "height": 100, "fit": "cover", "position": "north"},
                       {"name": "box", "width": 100, "height": 100, "fit": "contain", "format": "png", "background": "#00000000"}
                   ]},
                   "ResultPath": "$.resized", "Next": "Optimize"},
        "Optimize": {"Type": "Task", "Resource": "pixelflow:optimize",
                     "Parameters": {"inputs.$": "$.resized", "outputDir.$": "$.optimizedDir", "format": "auto"},
                     "ResultPath": "$.optimized", "End": true}
    }}));
    let input = sb.json("in.json", &json!({"path": fixture("large.jpg"), "outputDir": sb.path().join("out"), "optimizedDir": sb.path().join("min")}));
    let out = sb.run(&["workflow", "run", def.to_str().unwrap(), "--input", input.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let result = stdout_json(&out);
    let variants = result["resized"]["variants"].as_array().unwrap();
    assert_eq!(variants[0]["path"], json!(sb.path().join("out/large-square.jpg")));
    assert_eq!(variants[1]["path"], json!(sb.path().join("out/large-box.png")));
    let optimized = result["optimized"]["outputs"].as_array().unwrap();
    assert_eq!(optimized.len(), 2);
    for o in optimized {
        assert!(o["bytes"].as_u64() <= o["inputBytes"].as_u64(), "never larger: {o}");
        assert!(Path::new(o["path"].as_str().unwrap()).starts_with(sb.path().join("min")));
    }
}

#[test]
fn hostile_step_parameters_are_invalid_parameters() {
    let sb = Sandbox::new();
    for (naming, variants) in [
        (json!("../../escaped-{stem}.{ext}"), json!([{"name": "a", "width": 10}])),
        (json!("{stem}-{variant}.{ext}"), json!([{"name": "a", "width": 0}])),
        (json!("{stem}-{variant}.{ext}"), json!([{"name": "a", "width": 10, "fit": "stretch"}])),
    ] {
        let def = sb.json("def.json", &json!({"StartAt": "R", "States": {"R": {"Type": "Task", "Resource": "pixelflow:resize",
            "Parameters": {"path": fixture("large.jpg"), "outputDir": sb.path().join("out"), "naming": naming, "variants": variants},
            "End": true}}}));
        let input = sb.json("in.json", &json!({}));
        let out = sb.run(&["workflow", "run", def.to_str().unwrap(), "--input", input.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        assert_eq!(stdout_json(&out)["error"], "Pixelflow.InvalidParameters", "{naming} {variants}");
    }
    assert!(!sb.path().join("escaped-large.jpg").exists() && !sb.path().join("out").exists());
}

/// Runs a Filter task, then validates (decodes) what it wrote.
fn filter_then_validate(sb: &Sandbox, path: &Path, filters: Value) -> (Option<i32>, Value) {
    let def = sb.json("filter.json", &json!({"StartAt": "Filter", "States": {
        "Filter": {"Type": "Task", "Resource": "pixelflow:filter",
                   "Parameters": {"path.$": "$.path", "outputDir.$": "$.outputDir", "filters.$": "$.filters", "format": "png"},
                   "ResultPath": "$.filtered", "Next": "Check"},
        "Check": {"Type": "Task", "Resource": "pixelflow:validate",
                  "Parameters": {"path.$": "$.filtered.path", "decode": true},
                  "ResultPath": "$.check", "End": true}
    }}));
    let input = sb.json("in.json", &json!({"path": path, "outputDir": sb.path().join("out"), "filters": filters}));
    let out = sb.run(&["workflow", "run", def.to_str().unwrap(), "--input", input.to_str().unwrap()]);
    assert!(matches!(out.status.code(), Some(0 | 1)), "{}", stderr(&out));
    (out.status.code(), stdout_json(&out))
}

#[test]
fn filter_step_in_a_workflow() {
    let sb = Sandbox::new();
    let filters = json!([{"type": "grayscale"}, {"type": "contrast", "amount": 1.2}, {"type": "blur", "sigma": 2},
                         {"type": "unsharp", "sigma": 1, "amount": 0.5}, {"type": "vignette", "strength": 0.4}]);
    let (code, out) = filter_then_validate(&sb, &fixture("transparent.png"), filters.clone());
    assert_eq!(code, Some(0), "{out}");
    let path = sb.path().join("out/transparent-filtered.png");
    let filtered = &out["filtered"];
    assert_eq!(filtered["path"], json!(path));
    assert_eq!((filtered["width"].as_u64(), filtered["height"].as_u64(), filtered["format"].as_str()), (Some(300), Some(200), Some("png")));
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(filtered["bytes"].as_u64(), Some(bytes.len() as u64));
    assert_eq!((out["check"]["isValid"].as_bool(), out["check"]["colorType"].as_str()), (Some(true), Some("rgba")), "{out}");
    // Idempotent: the same bytes again.
    let (code, _) = filter_then_validate(&sb, &fixture("transparent.png"), filters);
    assert_eq!(code, Some(0));
    assert_eq!(std::fs::read(&path).unwrap(), bytes);

    // The EXIF orientation is applied before filtering.
    let (code, out) = filter_then_validate(&sb, &fixture("rotated-6.jpg"), json!([{"type": "sepia"}]));
    assert_eq!(code, Some(0), "{out}");
    assert_eq!((out["filtered"]["width"].as_u64(), out["filtered"]["height"].as_u64()), (Some(160), Some(240)));

    // A bad parameter is an InvalidParameters failure naming the filter and field.
    let (code, out) = filter_then_validate(&sb, &fixture("large.jpg"), json!([{"type": "invert"}, {"type": "convolve", "kernel": [1, 2, 3]}]));
    assert_eq!(code, Some(1), "{out}");
    assert_eq!(out["error"], "Pixelflow.InvalidParameters", "{out}");
    assert!(out["cause"].as_str().unwrap_or_default().starts_with("filters[1].kernel"), "{out}");
}

/// Runs a one-state workflow (`resource` with `parameters`) and answers (exit code, output).
fn run_task(sb: &Sandbox, resource: &str, parameters: Value) -> (Option<i32>, Value) {
    let def = sb.json("task.json", &json!({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": resource, "Parameters": parameters, "End": true}}}));
    let input = sb.json("in.json", &json!({}));
    let out = sb.run(&["workflow", "run", def.to_str().unwrap(), "--input", input.to_str().unwrap()]);
    assert!(matches!(out.status.code(), Some(0 | 1)), "{}", stderr(&out));
    (out.status.code(), stdout_json(&out))
}

#[test]
fn resize_writes_lossy_webp_and_avif_from_a_16_bit_tiff() {
    let sb = Sandbox::new();
    let tiff = fixture("scan-16bit.tif");
    // Validate knows TIFF: allowed by name, described (16 bits), refused when not in the list.
    let (code, v) = run_task(&sb, "pixelflow:validate", json!({"path": tiff, "decode": true, "formats": ["tiff", "png"]}));
    assert_eq!(code, Some(0), "{v}");
    assert_eq!((v["isValid"].as_bool(), v["format"].as_str(), v["bitDepth"].as_u64()), (Some(true), Some("tiff"), Some(16)), "{v}");
    let (_, v) = run_task(&sb, "pixelflow:validate", json!({"path": tiff, "formats": ["jpeg", "avif"]}));
    assert_eq!(v["reason"], "format tiff is not allowed (allowed: jpeg, avif)", "{v}");

    let (code, out) = run_task(&sb, "pixelflow:resize", json!({"path": tiff, "outputDir": sb.path().join("out"), "variants": [
        {"name": "q20", "width": 40, "format": "webp", "quality": 20},
        {"name": "q95", "width": 40, "format": "webp", "quality": 95},
        {"name": "lossless", "width": 40, "format": "webp", "lossless": true},
        {"name": "avif", "width": 40, "format": "avif", "quality": 60, "speed": 10},
        {"name": "png", "width": 40}
    ]}));
    assert_eq!(code, Some(0), "{out}");
    let variants = out["variants"].as_array().unwrap();
    let bytes = |i: usize| std::fs::read(variants[i]["path"].as_str().unwrap()).unwrap();
    let (q20, q95, lossless, avif) = (bytes(0), bytes(1), bytes(2), bytes(3));
    assert_eq!(variants[0]["path"], json!(sb.path().join("out/scan-16bit-q20.webp")));
    assert_eq!((&q20[..4], &q20[8..12], &q20[12..16]), (&b"RIFF"[..], &b"WEBP"[..], &b"VP8 "[..]), "lossy WebP");
    assert_eq!(&lossless[12..16], b"VP8L", "lossless WebP");
    assert!(q20.len() < q95.len(), "quality is honoured: {} vs {}", q20.len(), q95.len());
    assert_eq!(&avif[4..12], b"ftypavif");
    assert_eq!((variants[3]["format"].as_str(), variants[3]["width"].as_u64(), variants[3]["height"].as_u64()), (Some("avif"), Some(40), Some(27)));
    assert_eq!(variants[4]["format"], "png", "a TIFF's default output is PNG");
    // What was written is a valid image of the announced kind.
    for (i, format) in [(0, "webp"), (2, "webp"), (4, "png")] {
        let (_, v) = run_task(&sb, "pixelflow:validate", json!({"path": variants[i]["path"], "decode": true}));
        assert_eq!((v["isValid"].as_bool(), v["format"].as_str(), v["width"].as_u64()), (Some(true), Some(format), Some(40)), "{v}");
    }
    // An AVIF input is recognised and refused by name (this build encodes AVIF but cannot decode it).
    let (_, v) = run_task(&sb, "pixelflow:validate", json!({"path": variants[3]["path"]}));
    assert_eq!((v["isValid"].as_bool(), v["reason"].as_str()), (Some(false), Some("unsupported format: avif")), "{v}");
}

#[test]
fn optimize_fits_a_webp_into_max_bytes() {
    let sb = Sandbox::new();
    let (code, full) = run_task(&sb, "pixelflow:optimize", json!({"path": fixture("large.jpg"), "outputDir": sb.path().join("full"), "format": "webp", "quality": 90, "effort": "fast"}));
    assert_eq!(code, Some(0), "{full}");
    let full = &full["outputs"][0];
    assert_eq!((full["format"].as_str(), full["quality"].as_u64()), (Some("webp"), Some(90)), "{full}");
    let budget = full["bytes"].as_u64().unwrap() / 2;
    let (code, out) = run_task(&sb, "pixelflow:optimize", json!({"path": fixture("large.jpg"), "outputDir": sb.path().join("fit"), "format": "webp", "quality": 90, "effort": "fast", "maxBytes": budget}));
    assert_eq!(code, Some(0), "{out}");
    let fitted = &out["outputs"][0];
    assert!(fitted["bytes"].as_u64().unwrap() <= budget, "{fitted} over {budget}");
    assert!(fitted["quality"].as_u64().unwrap() < 90 && fitted["overBudget"] == false, "{fitted}");
    assert_eq!(std::fs::metadata(sb.path().join("fit/large.webp")).unwrap().len(), fitted["bytes"].as_u64().unwrap());
}

#[test]
fn a_display_p3_image_is_converted_to_srgb_unless_its_profile_is_kept() {
    let sb = Sandbox::new();
    let p3 = fixture("display-p3.png");
    let (_, v) = run_task(&sb, "pixelflow:validate", json!({"path": p3}));
    assert_eq!(v["hasIcc"], true, "{v}");
    for (icc, out_dir, tagged) in [(None, "srgb", false), (Some("srgb"), "srgb2", false), (Some("keep"), "keep", true)] {
        let mut params = json!({"path": p3, "outputDir": sb.path().join(out_dir), "variants": [{"name": "v", "width": 16}, {"name": "j", "width": 16, "format": "jpeg"}]});
        if let Some(icc) = icc {
            params["icc"] = json!(icc);
        }
        let (code, out) = run_task(&sb, "pixelflow:resize", params);
        assert_eq!(code, Some(0), "{out}");
        for variant in out["variants"].as_array().unwrap() {
            let (_, v) = run_task(&sb, "pixelflow:validate", json!({"path": variant["path"], "decode": true}));
            assert_eq!((v["isValid"].as_bool(), v["hasIcc"].as_bool()), (Some(true), Some(tagged)), "icc {icc:?}: {v}");
        }
    }
    let (code, out) = run_task(&sb, "pixelflow:resize", json!({"path": p3, "outputDir": sb.path().join("x"), "icc": "p3", "variants": [{"name": "v", "width": 16}]}));
    assert_eq!((code, out["error"].as_str()), (Some(1), Some("Pixelflow.InvalidParameters")), "{out}");
}
