//! GPU filters through the real CLI (issue 8): `pixelflow doctor` reports the adapter, a
//! filter with `device: gpu` writes what `device: cpu` writes within 1/255, and the device
//! used lands in the execution's history. On a machine without an adapter the GPU run falls
//! back to the CPU (and says why); CI installs lavapipe and sets
//! `PIXELFLOW_REQUIRE_GPU_ADAPTER=1`, so there the GPU path must run.

use std::path::Path;

use serde_json::{json, Value};

use crate::util::{stderr, stdout_json, Sandbox};

fn adapter_required() -> bool {
    std::env::var_os("PIXELFLOW_REQUIRE_GPU_ADAPTER").is_some_and(|v| v == "1")
}

#[test]
fn doctor_reports_the_gpu_adapter() {
    let sb = Sandbox::new();
    let out = sb.run(&["doctor", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let checks = stdout_json(&out);
    let gpu = checks.as_array().unwrap().iter().find(|c| c["part"] == "gpu").unwrap_or_else(|| panic!("no gpu line: {checks}"));
    let detail = gpu["detail"].as_str().unwrap();
    assert!(matches!(gpu["status"].as_str(), Some("ok" | "warn")), "{gpu}");
    if detail.starts_with("no GPU adapter") {
        assert!(!adapter_required(), "PIXELFLOW_REQUIRE_GPU_ADAPTER=1 but doctor says {detail}");
        assert_eq!(gpu["status"], "warn");
    } else {
        // "NAME (vulkan, TYPE)", and a software adapter (lavapipe) is a warning.
        assert!(detail.contains("(vulkan, "), "{detail}");
        assert_eq!(gpu["status"] == "warn", detail.contains("software"), "{gpu}");
    }
}

/// Runs one filter Task on `path` with `device`, writing `{stem}-{device}.png`, as an
/// execution named `device`; returns the exit code and the execution's output.
fn filter(sb: &Sandbox, path: &Path, device: &str) -> (Option<i32>, Value) {
    let filters = json!([
        {"type": "contrast", "amount": 1.3},
        {"type": "blur", "sigma": 1.5},
        {"type": "hueRotate", "degrees": 40},
        {"type": "unsharp", "sigma": 1, "amount": 0.8},
        {"type": "vignette", "strength": 0.5}
    ]);
    let def = sb.json(
        "filter.asl.json",
        &json!({"StartAt": "Filter", "States": {"Filter": {"Type": "Task", "Resource": "pixelflow:filter", "Parameters": {
            "path.$": "$.path", "outputDir.$": "$.outputDir", "device.$": "$.device", "filters": filters,
            "format": "png", "naming": format!("{{stem}}-{device}.{{ext}}")
        }, "End": true}}}),
    );
    let input = sb.json("in.json", &json!({"path": path, "outputDir": sb.path().join("out"), "device": device}));
    let out = sb.run(&["workflow", "run", def.to_str().unwrap(), "--input", input.to_str().unwrap(), "--name", device]);
    (out.status.code(), stdout_json(&out))
}

#[test]
fn device_gpu_matches_device_cpu_and_the_history_records_the_device() {
    let sb = Sandbox::new();
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/transparent.png");
    let (code, cpu) = filter(&sb, &source, "cpu");
    assert_eq!(code, Some(0), "{cpu}");
    assert_eq!(cpu["device"], "cpu");
    assert!(cpu.get("fallback").is_none(), "{cpu}");
    let (code, gpu) = filter(&sb, &source, "gpu");
    assert_eq!(code, Some(0), "{gpu}");
    match gpu["device"].as_str() {
        Some("gpu") => assert!(gpu["adapter"].as_str().is_some_and(|a| !a.is_empty()), "{gpu}"),
        // No adapter here: the CPU ran it, with the reason, and the run still succeeded.
        _ => {
            assert!(!adapter_required(), "PIXELFLOW_REQUIRE_GPU_ADAPTER=1 but the filter ran on the CPU: {gpu}");
            assert!(gpu["fallback"].as_str().is_some(), "{gpu}");
        }
    }

    let cpu_image = image::open(cpu["path"].as_str().unwrap()).unwrap().to_rgba8();
    let gpu_image = image::open(gpu["path"].as_str().unwrap()).unwrap().to_rgba8();
    assert_eq!(cpu_image.dimensions(), gpu_image.dimensions());
    for (c, g) in cpu_image.pixels().zip(gpu_image.pixels()) {
        // The colour of a pixel transparent in both is invisible (see crates/imaging's filter docs).
        let channels = if c[3] == 0 && g[3] == 0 { 3..4 } else { 0..4 };
        for k in channels {
            assert!(c[k].abs_diff(g[k]) <= 1, "cpu {c:?} gpu {g:?}");
        }
    }

    // The step's result, with the device, is in the history of the execution.
    let rows = stdout_json(&sb.run(&["history", "list", "--json"]));
    let row = rows.as_array().unwrap().iter().find(|r| r["name"] == "gpu").unwrap_or_else(|| panic!("{rows}"));
    let id = row["id"].as_str().unwrap().to_string();
    let show = stdout_json(&sb.run(&["history", "show", &id, "--json"]));
    assert_eq!(show["execution"]["output"]["device"], gpu["device"], "{show}");
    let events = show["events"].to_string();
    assert!(events.contains(&format!("\\\"device\\\":{}", gpu["device"])) || events.contains(&format!("\"device\":{}", gpu["device"])), "{events}");
}

#[test]
fn an_unknown_device_is_a_clear_error() {
    let sb = Sandbox::new();
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/transparent.png");
    let (code, out) = filter(&sb, &source, "tpu");
    assert_eq!(code, Some(1), "{out}");
    assert_eq!(out["error"], "Pixelflow.InvalidParameters");
    assert!(out["cause"].as_str().unwrap().contains("device must be"), "{out}");
}
