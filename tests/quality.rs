//! Resize quality against a reference implementation: real photos from the benchmark corpus
//! (`../shared/corpus.sh`), resized by Pixelflow's `resize` step through the CLI (Lanczos3,
//! within 800x800, PNG out so no encoder loss), must stay within 40 dB PSNR of Pillow's Lanczos
//! at the same size (`tests/reference/resize_psnr.py`). Shrink-on-load is on, as users get it.
//!
//! Needs `PIXELFLOW_CORPUS` (the corpus folder) and `PIXELFLOW_PYTHON` (a Python with Pillow);
//! `scripts/test.sh` sets both up and sets `PIXELFLOW_REQUIRE_CORPUS=1` so the test cannot be
//! skipped there.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::util::{stderr, Sandbox};

const MIN_PSNR_DB: f64 = 40.0;

fn setup() -> Option<(Vec<PathBuf>, String)> {
    let required = std::env::var("PIXELFLOW_REQUIRE_CORPUS").is_ok_and(|v| v == "1");
    let corpus = std::env::var("PIXELFLOW_CORPUS").ok().map(PathBuf::from);
    let python = std::env::var("PIXELFLOW_PYTHON").ok();
    match (corpus, python) {
        (Some(c), Some(p)) if c.join("photos").is_dir() => {
            let mut photos: Vec<PathBuf> = std::fs::read_dir(c.join("photos")).expect("corpus").flatten().map(|e| e.path()).collect();
            photos.sort();
            // Every eighth photo: JPEGs of several sizes and sources, and a PNG.
            Some((photos.into_iter().step_by(8).collect(), p))
        }
        _ => {
            assert!(!required, "PIXELFLOW_CORPUS / PIXELFLOW_PYTHON are not set up (scripts/test.sh does it)");
            eprintln!("\n*** quality: SKIPPED: set PIXELFLOW_CORPUS and PIXELFLOW_PYTHON (scripts/test.sh does) ***\n");
            None
        }
    }
}

#[test]
fn lanczos3_resize_matches_pillow_within_40_db() {
    let Some((photos, python)) = setup() else { return };
    assert!(photos.len() >= 4, "the corpus has too few photos");
    let sb = Sandbox::new();
    let out_dir = sb.path().join("out");
    let def = sb.json(
        "resize.json",
        &json!({"StartAt": "R", "States": {"R": {"Type": "Task", "Resource": "pixelflow:resize", "End": true,
            "Parameters": {"path.$": "$.path", "outputDir.$": "$.outputDir", "naming": "{stem}.png",
                "variants": [{"name": "t", "width": 800, "height": 800, "fit": "inside", "filter": "lanczos3", "format": "png"}]}}}}),
    );
    let mut pairs = Vec::new();
    for photo in &photos {
        let input = sb.json("in.json", &json!({"path": photo, "outputDir": out_dir}));
        let out = sb.run(&["workflow", "run", def.to_str().unwrap(), "--input", input.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(0), "{}: {}", photo.display(), stderr(&out));
        let stem = photo.file_stem().unwrap().to_string_lossy();
        pairs.push(photo.clone());
        pairs.push(out_dir.join(format!("{stem}.png")));
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference/resize_psnr.py");
    let out = std::process::Command::new(&python).arg(script).args(&pairs).output().expect("run the Pillow reference");
    assert!(out.status.success(), "reference failed: {}", String::from_utf8_lossy(&out.stderr));
    let results: Vec<Value> = String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).expect("json line")).collect();
    assert_eq!(results.len(), photos.len());
    for r in &results {
        let psnr = r["psnr"].as_f64().unwrap_or(f64::INFINITY);
        eprintln!("quality: {} at {} -> {psnr:.1} dB", r["original"], r["size"]);
        assert!(psnr >= MIN_PSNR_DB, "{} resized to {} is {psnr:.1} dB from Pillow's Lanczos, under {MIN_PSNR_DB}", r["original"], r["size"]);
    }
}
