//! The data-driven ASL cases: each `tests/workflows/<case>/` holds `definition.json`,
//! `input.json` and `expected.json`, run through the CLI contract
//! (`pixelflow workflow run DEF --input IN`): exit code, output or error/cause, or the
//! validation messages on stderr.

use std::path::Path;

use serde_json::Value;

use crate::util::{stderr, stdout_json, Sandbox};

#[test]
fn every_workflow_case_matches_its_expectation() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/workflows");
    let mut cases: Vec<_> = std::fs::read_dir(&root).expect("tests/workflows").flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect();
    cases.sort();
    assert!(cases.len() >= 20, "expected the case folders in {}", root.display());
    let mut failures = Vec::new();
    for case in &cases {
        let name = case.file_name().unwrap_or_default().to_string_lossy().into_owned();
        let expected: Value = serde_json::from_slice(&std::fs::read(case.join("expected.json")).expect("expected.json")).expect("expected json");
        let sandbox = Sandbox::new();
        let out = sandbox.run(&[
            "workflow",
            "run",
            &case.join("definition.json").to_string_lossy(),
            "--input",
            &case.join("input.json").to_string_lossy(),
        ]);
        let code = out.status.code().unwrap_or(-1);
        let want_code = expected["exitCode"].as_i64().unwrap_or(0) as i32;
        let mut problems = Vec::new();
        if code != want_code {
            problems.push(format!("exit code {code}, expected {want_code}"));
        }
        match want_code {
            0 => {
                if code == 0 && stdout_json(&out) != expected["output"] {
                    problems.push(format!("output {}, expected {}", stdout_json(&out), expected["output"]));
                }
            }
            1 => {
                if code == 1 {
                    let got = stdout_json(&out);
                    if got["error"] != expected["error"] {
                        problems.push(format!("error {}, expected {}", got["error"], expected["error"]));
                    }
                    if expected.get("cause").is_some() && got["cause"] != expected["cause"] {
                        problems.push(format!("cause {}, expected {}", got["cause"], expected["cause"]));
                    }
                }
            }
            _ => {
                let err = stderr(&out);
                for needle in expected["stderrContains"].as_array().into_iter().flatten() {
                    let needle = needle.as_str().unwrap_or_default();
                    if !err.contains(needle) {
                        problems.push(format!("stderr lacks {needle:?}:\n{err}"));
                    }
                }
                if !out.stdout.is_empty() {
                    problems.push("an invalid definition printed on stdout".to_string());
                }
            }
        }
        if !problems.is_empty() {
            failures.push(format!("{name}: {}\n  stderr: {}", problems.join("; "), stderr(&out)));
        }
    }
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), cases.len(), failures.join("\n"));
}
