//! `pixelflow run`: a workflow over folders of images as one batch, with the results cache.

use std::path::Path;

use serde_json::Value;

use crate::util::{stderr, stdout_json, Sandbox};

fn photos(sb: &Sandbox) -> std::path::PathBuf {
    let dir = sb.path().join("photos");
    std::fs::create_dir_all(dir.join("nested")).unwrap();
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    std::fs::copy(data.join("large.jpg"), dir.join("large.jpg")).unwrap();
    std::fs::copy(data.join("rotated-6.jpg"), dir.join("nested/rotated.jpg")).unwrap();
    std::fs::copy(data.join("transparent.png"), dir.join("transparent.png")).unwrap();
    std::fs::write(dir.join("broken.jpg"), b"\xff\xd8\xff\xe0 not really a jpeg").unwrap();
    std::fs::write(dir.join("notes.txt"), b"not picked up from a folder").unwrap();
    dir
}

fn run_batch(sb: &Sandbox, dir: &Path, extra: &[&str]) -> (i32, Value) {
    let workflow = Path::new(env!("CARGO_MANIFEST_DIR")).join("workflows/thumbnail.asl.json");
    let out_dir = sb.path().join("out");
    let mut args = vec![
        "run",
        "--json",
        "--jobs",
        "2",
        "--workflow",
        workflow.to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
        dir.to_str().unwrap(),
    ];
    args.extend(extra);
    let out = sb.run(&args);
    (out.status.code().unwrap_or(-1), stdout_json(&out))
}

fn statuses(report: &Value) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = report["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            let name = Path::new(i["path"].as_str().unwrap()).file_name().unwrap().to_string_lossy().into_owned();
            (name, i["status"].as_str().unwrap().to_string())
        })
        .collect();
    v.sort();
    v
}

#[test]
fn a_batch_processes_good_images_reports_bad_ones_and_caches_results() {
    let sb = Sandbox::new();
    let dir = photos(&sb);
    let (code, report) = run_batch(&sb, &dir, &[]);
    assert_eq!(code, 1, "one image failed: {report}");
    assert_eq!(
        statuses(&report),
        [("broken.jpg", "failed"), ("large.jpg", "processed"), ("rotated.jpg", "processed"), ("transparent.png", "processed")]
            .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    let broken = report["items"].as_array().unwrap().iter().find(|i| i["status"] == "failed").unwrap();
    assert_eq!(broken["error"], "Pixelflow.InvalidImage");
    assert!(!broken["cause"].as_str().unwrap().is_empty());
    for name in ["large.jpg", "rotated.jpg", "transparent.jpg"] {
        assert!(sb.path().join("out").join(name).is_file(), "{name} written");
    }
    assert!(report["bytesOut"].as_u64().unwrap() > 0);

    // The batch is one Map execution in the history.
    let rows = stdout_json(&sb.run(&["history", "list", "--json"]));
    assert_eq!(rows.as_array().unwrap().len(), 1);
    assert_eq!(rows[0]["status"], "SUCCEEDED", "failed images are tolerated by the batch");

    // Run again: the good images come from the cache, the broken one is tried again.
    let (code, again) = run_batch(&sb, &dir, &[]);
    assert_eq!(code, 1);
    assert_eq!(
        statuses(&again),
        [("broken.jpg", "failed"), ("large.jpg", "cached"), ("rotated.jpg", "cached"), ("transparent.png", "cached")]
            .map(|(a, b)| (a.to_string(), b.to_string()))
    );

    // --force does the work again.
    let (_, forced) = run_batch(&sb, &dir, &["--force"]);
    assert_eq!(statuses(&forced).iter().filter(|(_, s)| s == "processed").count(), 3);
}

#[test]
fn a_batch_with_nothing_to_do_is_a_clear_error() {
    let sb = Sandbox::new();
    let empty = sb.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let out = sb.run(&["run", empty.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("no images"), "{}", stderr(&out));
    let out = sb.run(&["run", sb.path().join("missing").to_str().unwrap()]);
    assert_ne!(out.status.code(), Some(0));
    assert!(stderr(&out).contains("missing"), "{}", stderr(&out));
}
