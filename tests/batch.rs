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
    run_batch_to(sb, dir, "out", extra)
}

fn run_batch_to(sb: &Sandbox, dir: &Path, out: &str, extra: &[&str]) -> (i32, Value) {
    let workflow = Path::new(env!("CARGO_MANIFEST_DIR")).join("workflows/thumbnail.asl.json");
    let out_dir = sb.path().join(out);
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
    // Each output in its image's folder, mirrored under --out.
    for name in ["large.jpg", "nested/rotated.jpg", "transparent.jpg"] {
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

/// Each item's path relative to `dir`, with its status.
fn relative_statuses(report: &Value, dir: &Path) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = report["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            let path = Path::new(i["path"].as_str().unwrap()).strip_prefix(dir).unwrap().to_string_lossy().into_owned();
            (path, i["status"].as_str().unwrap().to_string())
        })
        .collect();
    v.sort();
    v
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
}

#[test]
fn outputs_mirror_the_input_folders_and_an_output_is_never_overwritten_by_another_image() {
    let sb = Sandbox::new();
    let cards = sb.path().join("cards");
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    // Two memory cards that both start at DSC_0001, and an edited copy saved as PNG beside
    // the first card's original: the same stem, so the same output name.
    for (from, to) in [("large.jpg", "a/DSC_0001.jpg"), ("rotated-6.jpg", "b/DSC_0001.jpg"), ("transparent.png", "a/DSC_0001.png")] {
        std::fs::create_dir_all(cards.join(to).parent().unwrap()).unwrap();
        std::fs::copy(data.join(from), cards.join(to)).unwrap();
    }
    let (code, report) = run_batch(&sb, &cards, &[]);
    assert_eq!(code, 1, "{report}");
    assert_eq!(
        relative_statuses(&report, &cards),
        pairs(&[("a/DSC_0001.jpg", "processed"), ("a/DSC_0001.png", "failed"), ("b/DSC_0001.jpg", "processed")])
    );
    let refused = report["items"].as_array().unwrap().iter().find(|i| i["status"] == "failed").unwrap();
    assert_eq!(refused["error"], "Pixelflow.OutputConflict");
    let cause = refused["cause"].as_str().unwrap();
    assert!(cause.contains(&cards.join("a/DSC_0001.jpg").display().to_string()), "{cause}");
    let (a, b) = (sb.path().join("out/a/DSC_0001.jpg"), sb.path().join("out/b/DSC_0001.jpg"));
    assert!(a.is_file() && b.is_file());
    assert_ne!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap(), "each card's image has its own output");
    // The refusal is in the history, as a failed attempt with the reason.
    let failed = stdout_json(&sb.run(&["history", "list", "--status", "FAILED", "--json"]));
    assert_eq!(failed.as_array().unwrap().len(), 1, "{failed}");
    let shown = stdout_json(&sb.run(&["history", "show", failed[0]["id"].as_str().unwrap(), "--json"]));
    assert_eq!(shown["execution"]["error"], "Pixelflow.OutputConflict");
    assert!(shown["execution"]["cause"].as_str().unwrap().contains("same name"), "{shown}");
    assert_eq!(shown["execution"]["input"]["path"], cards.join("a/DSC_0001.png").to_str().unwrap());

    // --flat puts every output in one folder: then the second card's DSC_0001 is refused too,
    // and the first card's output is left as it was.
    let (code, flat) = run_batch_to(&sb, &cards, "flat", &["--flat"]);
    assert_eq!(code, 1);
    assert_eq!(
        relative_statuses(&flat, &cards),
        pairs(&[("a/DSC_0001.jpg", "processed"), ("a/DSC_0001.png", "failed"), ("b/DSC_0001.jpg", "failed")])
    );
    assert_eq!(std::fs::read(sb.path().join("flat/DSC_0001.jpg")).unwrap(), std::fs::read(&a).unwrap());
    let entries: Vec<_> = std::fs::read_dir(sb.path().join("flat")).unwrap().collect();
    assert_eq!(entries.len(), 1);
}

#[test]
fn a_later_run_never_replaces_the_outputs_of_another_image_but_replaces_an_edited_ones() {
    // One card imported today, another next month: both start at DSC_0001, into one folder.
    let sb = Sandbox::new();
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let (first, second) = (sb.path().join("card-1"), sb.path().join("card-2"));
    for (from, dir) in [("large.jpg", &first), ("rotated-6.jpg", &second)] {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::copy(data.join(from), dir.join("DSC_0001.jpg")).unwrap();
    }
    let (code, report) = run_batch(&sb, &first, &[]);
    assert_eq!(code, 0, "{report}");
    let thumbnail = sb.path().join("out/DSC_0001.jpg");
    let made_first = std::fs::read(&thumbnail).unwrap();
    // The same card into a second folder: its thumbnail in the first one still holds the name.
    assert_eq!(run_batch_to(&sb, &first, "web", &[]).0, 0);

    let (code, report) = run_batch(&sb, &second, &[]);
    assert_eq!(code, 1, "{report}");
    let item = &report["items"][0];
    assert_eq!((item["status"].as_str(), item["error"].as_str()), (Some("failed"), Some("Pixelflow.OutputConflict")), "{report}");
    let cause = item["cause"].as_str().unwrap();
    assert!(cause.contains(first.join("DSC_0001.jpg").to_str().unwrap()) && cause.contains("rename"), "{cause}");
    assert_eq!(std::fs::read(&thumbnail).unwrap(), made_first, "the first card's thumbnail is left as it was");
    // Once that thumbnail is gone (moved away by the person), the name is free.
    std::fs::rename(&thumbnail, sb.path().join("kept.jpg")).unwrap();
    let (code, report) = run_batch(&sb, &second, &[]);
    assert_eq!(code, 0, "{report}");
    assert_ne!(std::fs::read(&thumbnail).unwrap(), made_first);

    // The same file edited in place is the same image: its new thumbnail replaces the old one.
    let mut edited = std::fs::read(data.join("large.jpg")).unwrap();
    edited.extend_from_slice(b"edited"); // not the first card's content, which is cached
    std::fs::write(second.join("DSC_0001.jpg"), edited).unwrap();
    let made_second = std::fs::read(&thumbnail).unwrap();
    let (code, report) = run_batch(&sb, &second, &[]);
    assert_eq!((code, report["items"][0]["status"].as_str()), (0, Some("processed")), "{report}");
    assert_ne!(std::fs::read(&thumbnail).unwrap(), made_second);
}

#[test]
fn a_result_is_made_again_when_its_outputs_are_gone_or_go_to_another_folder() {
    let sb = Sandbox::new();
    let dir = photos(&sb);
    run_batch(&sb, &dir, &[]);
    // The person deleted one thumbnail to have it made again.
    std::fs::remove_file(sb.path().join("out/large.jpg")).unwrap();
    let (_, again) = run_batch(&sb, &dir, &[]);
    assert_eq!(
        statuses(&again),
        pairs(&[("broken.jpg", "failed"), ("large.jpg", "processed"), ("rotated.jpg", "cached"), ("transparent.png", "cached")])
    );
    assert!(sb.path().join("out/large.jpg").is_file());
    // Another output folder gets every output, not "already done".
    let (_, elsewhere) = run_batch_to(&sb, &dir, "web", &[]);
    assert_eq!(statuses(&elsewhere).iter().filter(|(_, s)| s == "processed").count(), 3, "{elsewhere}");
    assert!(sb.path().join("web/nested/rotated.jpg").is_file());
}

#[test]
fn copies_of_an_image_stay_done_run_after_run() {
    // The results cache is keyed by content: a copy in another folder is the same work.
    let sb = Sandbox::new();
    let dir = sb.path().join("photos");
    std::fs::create_dir_all(dir.join("album")).unwrap();
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    std::fs::copy(data.join("large.jpg"), dir.join("large.jpg")).unwrap();
    std::fs::copy(data.join("large.jpg"), dir.join("album/large copy.jpg")).unwrap();
    let (code, first) = run_batch(&sb, &dir, &[]);
    assert_eq!(code, 0, "{first}");
    for _ in 0..2 {
        let (code, again) = run_batch(&sb, &dir, &[]);
        assert_eq!(code, 0);
        assert_eq!(relative_statuses(&again, &dir), pairs(&[("album/large copy.jpg", "cached"), ("large.jpg", "cached")]));
    }
    // Another output folder: both are made there, then stay done there too.
    let (_, web) = run_batch_to(&sb, &dir, "web", &[]);
    assert_eq!(relative_statuses(&web, &dir), pairs(&[("album/large copy.jpg", "processed"), ("large.jpg", "processed")]));
    assert!(sb.path().join("web/album/large copy.jpg").is_file() && sb.path().join("web/large.jpg").is_file());
    let (_, again) = run_batch_to(&sb, &dir, "web", &[]);
    assert_eq!(relative_statuses(&again, &dir), pairs(&[("album/large copy.jpg", "cached"), ("large.jpg", "cached")]));
}

#[test]
fn several_folders_each_keep_their_name_and_an_output_folder_inside_an_input_is_not_read_back() {
    let sb = Sandbox::new();
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let (a, b) = (sb.path().join("cardA"), sb.path().join("cardB"));
    for (from, dir) in [("large.jpg", &a), ("rotated-6.jpg", &b)] {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::copy(data.join(from), dir.join("DSC_0001.jpg")).unwrap();
    }
    // Both cards at once, into a folder inside the first card.
    let workflow = Path::new(env!("CARGO_MANIFEST_DIR")).join("workflows/thumbnail.asl.json");
    let out = a.join("thumbs");
    let args = ["run", "--json", "--workflow", workflow.to_str().unwrap(), "--out", out.to_str().unwrap(), a.to_str().unwrap(), b.to_str().unwrap()];
    let first = sb.run(&args);
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    assert!(out.join("cardA/DSC_0001.jpg").is_file() && out.join("cardB/DSC_0001.jpg").is_file());
    // Run again: the thumbnails inside cardA are not taken as photos of cardA.
    let again = stdout_json(&sb.run(&args));
    assert_eq!(again["items"].as_array().unwrap().len(), 2, "{again}");
    assert!(!out.join("cardA/thumbs").exists());
}
