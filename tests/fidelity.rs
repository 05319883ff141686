//! Differential fidelity tests: the engine (`pixelflow_engine::run_in_memory`) against a reference
//! interpreter of the Amazon States Language, `aws-local-stepfunctions` (pinned in
//! tests/oracle/package.json, run by tests/oracle/oracle.mjs in node).
//!
//! Two tests, each on a batch of cases (a definition and an input): about 400 generated from a
//! fixed seed ([`generate`]), and a list written by hand ([`hand_written`]). Each runs the oracle
//! once on its whole batch, runs our engine on every case, and compares:
//!
//! * both refuse the definition, or both run it;
//! * on success, equal output (serde_json `Value` equality after [`normalize`]: numbers compared
//!   by value, since node writes `1.0` as `1`; the `Cause` of a caught `States.*` error ignored);
//! * on failure, the same error name, and the same cause where the cause is meaningful (see
//!   [`cause_is_meaningful`]).
//!
//! When branches or Map items that fail differently run at once, which failure surfaces is a race
//! (in AWS too): such a case is run again a few times and any outcome our engine can give counts.
//!
//! aws-local-stepfunctions departs from AWS Step Functions in known places. Each one is a named
//! entry of [`DEVIATIONS`], which says what AWS documents and recognises a mismatch as that
//! deviation, preferably by emulating the oracle's behaviour on our engine and checking that this
//! gives exactly the oracle's result. Entries marked [`Source::Engine`] are the reverse: places
//! where this engine deliberately follows the ASL specification rather than AWS's current
//! behaviour. The test prints how many cases each entry explained, and fails on any mismatch that
//! none explains, printing the definition, the input and both results. Hand-written cases that
//! show a deviation must be classified as it; those marked [`Expect::EngineBug`] show bugs of this
//! engine that are reported and not fixed yet.
//!
//! The generator builds each state machine step by step and runs our engine on what it has so far
//! to pick paths that exist in the data the next step will see; the comparison with the oracle is
//! what checks the results. It also keeps away from what would only make one deviation show up
//! over and over (falsy Pass results, ResultPath "$", `IsX: false`... appear now and then, at the
//! top level only), and from races the race rule above would not absorb.
//!
//! Without the oracle (`npm ci` in tests/oracle, node 20+) the tests print a loud notice and pass,
//! unless `PIXELFLOW_REQUIRE_ORACLE=1` is set (as the project's test command does): then they fail.
//!
//! Looking into a mismatch:
//! * `PIXELFLOW_FIDELITY_SEED=<n>` generates another batch (the default one is what CI checks);
//! * `PIXELFLOW_FIDELITY_DUMP=<prefix>` writes every case with both results to
//!   `<prefix>.generated.json` and `<prefix>.hand-written.json`;
//! * `PIXELFLOW_FIDELITY_CASE=<file> cargo test --test integration fidelity::explain -- --ignored
//!   --nocapture` runs one `{definition, input}` and shows what each deviation makes of it
//!   (`PIXELFLOW_FIDELITY_EVENTS=1` adds our engine's history).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Map, Value};

/// The seed of the generated batch; change it to explore, keep it fixed to reproduce.
const SEED: u64 = 0x5EED_0F1D_E117;
/// How many cases the generator makes.
const GENERATED_CASES: usize = 400;

// ---------------------------------------------------------------------------------------------
// Cases and outcomes
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Case {
    name: String,
    definition: Value,
    input: Value,
    expect: Expect,
}

/// What a case must show.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    /// Generated cases: agreement, or a mismatch that known deviations of the oracle explain.
    Any,
    /// The engines must agree.
    Agree,
    /// The case demonstrates this known deviation: the mismatch must be classified as it.
    Deviation(&'static str),
    /// A reported bug of our engine, not fixed yet: the mismatch is expected and listed. Once the
    /// engines agree the test fails, so that the case is switched to `Agree`.
    // No case uses it while no engine bug is open; it stays for the next one found.
    #[allow(dead_code)]
    EngineBug(&'static str),
}

#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    Ok(Value),
    Failed { error: String, cause: String },
    Invalid(String),
    /// The oracle gave up on the case (it ran past its per-case limit).
    Timeout,
    /// Our engine panicked, or the oracle sent something unreadable.
    Crashed(String),
}

impl Outcome {
    fn to_json(&self) -> Value {
        match self {
            Outcome::Ok(v) => json!({ "ok": v }),
            Outcome::Failed { error, cause } => json!({ "error": error, "cause": cause }),
            Outcome::Invalid(m) => json!({ "invalid": m }),
            Outcome::Timeout => json!({ "timeout": true }),
            Outcome::Crashed(m) => json!({ "crashed": m }),
        }
    }

}

fn run_ours(case: &Case) -> Outcome {
    let run = std::panic::catch_unwind(|| pixelflow_engine::run_in_memory(&case.definition, case.input.clone()));
    match run {
        Ok(Ok(Ok(v))) => Outcome::Ok(v),
        Ok(Ok(Err(f))) => Outcome::Failed { error: f.error, cause: f.cause },
        Ok(Err(d)) => Outcome::Invalid(d.to_string()),
        Err(panic) => Outcome::Crashed(
            panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "panic".to_string()),
        ),
    }
}

/// Our outcome of `case`, run again a few times when it disagrees with the oracle's and the case
/// runs branches or Map items at once: when two of them fail, which failure the state reports is a
/// race (in AWS as well), so any outcome our engine can give counts. The flag says whether a rerun
/// was what agreed.
fn run_ours_against(case: &Case, oracle: &Outcome) -> (Outcome, bool) {
    let first = run_ours(case);
    if disagreement(oracle, &first).is_none() || !concurrent(&case.definition) {
        return (first, false);
    }
    for _ in 0..10 {
        let again = run_ours(case);
        if disagreement(oracle, &again).is_none() {
            return (again, true);
        }
    }
    (first, false)
}

/// Whether a definition runs things at once: a Parallel state with several branches, or a Map
/// state whose MaxConcurrency is not 1.
fn concurrent(definition: &Value) -> bool {
    let mut found = false;
    walk_states(definition, &mut |state| {
        let branches = state.get("Branches").and_then(Value::as_array).map_or(0, Vec::len);
        let map = state.get("Type") == Some(&json!("Map")) && state.get("MaxConcurrency") != Some(&json!(1));
        found |= branches > 1 || map;
    });
    found
}

fn oracle_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests").join("oracle")
}

/// Whether the oracle can run. When it cannot: a loud notice and `false` (the caller skips), or a
/// panic under `PIXELFLOW_REQUIRE_ORACLE=1`.
fn oracle_available() -> bool {
    let installed = oracle_dir().join("node_modules").join("aws-local-stepfunctions").join("package.json").is_file();
    let node = Command::new("node").arg("--version").output().map(|o| o.status.success()).unwrap_or(false);
    if installed && node {
        return true;
    }
    let why = if !node { "`node` is not on PATH" } else { "tests/oracle/node_modules is missing" };
    if std::env::var("PIXELFLOW_REQUIRE_ORACLE").as_deref() == Ok("1") {
        panic!("PIXELFLOW_REQUIRE_ORACLE=1 but the fidelity oracle cannot run: {why} (run `npm ci` in tests/oracle)");
    }
    eprintln!();
    eprintln!("!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!");
    eprintln!("!!! FIDELITY TESTS SKIPPED: {why}.");
    eprintln!("!!! Run `npm ci` in tests/oracle (node 20+) to compare the engine with");
    eprintln!("!!! aws-local-stepfunctions; set PIXELFLOW_REQUIRE_ORACLE=1 to make this an error.");
    eprintln!("!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!");
    eprintln!();
    false
}

/// Runs the whole batch through tests/oracle/oracle.mjs (one node process).
fn run_oracle(cases: &[Case]) -> Vec<Outcome> {
    let payload =
        Value::Array(cases.iter().map(|c| json!({ "definition": c.definition, "input": c.input })).collect()).to_string();
    let mut child = Command::new("node")
        .arg(oracle_dir().join("oracle.mjs"))
        .current_dir(oracle_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start node tests/oracle/oracle.mjs");
    let mut stdin = child.stdin.take().expect("oracle stdin");
    // Written from a thread: the oracle only answers after reading everything, but a big batch
    // must not deadlock on a full pipe either way.
    let writer = std::thread::spawn(move || stdin.write_all(payload.as_bytes()));
    let out = child.wait_with_output().expect("wait for the oracle");
    writer.join().expect("oracle writer thread").expect("write the cases to the oracle");
    assert!(out.status.success(), "the oracle failed ({}); see its stderr above", out.status);
    let results: Vec<Value> = serde_json::from_slice(&out.stdout).expect("the oracle prints a JSON array");
    assert_eq!(results.len(), cases.len(), "the oracle answered a different number of cases");
    results
        .into_iter()
        .map(|r| {
            if let Some(v) = r.get("ok") {
                Outcome::Ok(v.clone())
            } else if let Some(m) = r.get("invalid") {
                Outcome::Invalid(m.as_str().unwrap_or_default().to_string())
            } else if r.get("timeout").is_some() {
                Outcome::Timeout
            } else if let Some(e) = r.get("error") {
                Outcome::Failed {
                    error: e.as_str().unwrap_or_default().to_string(),
                    cause: r.get("cause").and_then(Value::as_str).unwrap_or_default().to_string(),
                }
            } else {
                Outcome::Crashed(format!("unreadable oracle result {r}"))
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Comparison
// ---------------------------------------------------------------------------------------------

/// Whether the cause of a failure must be equal in both engines. Errors that a definition names
/// (a Fail state's `Error`, anything not `States.*`) carry a cause taken verbatim from the
/// definition or the input: both must report it exactly. The `States.*` errors are raised by the
/// interpreters themselves, with their own wording (AWS's included), so only the name counts.
fn cause_is_meaningful(error: &str) -> bool {
    !error.starts_with("States.")
}

/// A canonical form for comparing outputs: every number written as an integer when it is one
/// (node prints `2.0` as `2`), and the `Cause` of a caught `States.*` error (an `{"Error",
/// "Cause"}` object, as Catch writes it) blanked, for the reason given in [`cause_is_meaningful`].
fn normalize(v: &Value) -> Value {
    match v {
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => Value::from(i),
            (None, Some(u), _) => Value::from(u),
            (None, None, Some(f)) if f.fract() == 0.0 && f.abs() < 9.0e15 => Value::from(f as i64),
            _ => v.clone(),
        },
        Value::Array(items) => Value::Array(items.iter().map(normalize).collect()),
        Value::Object(map) => {
            // Later states may add fields to a caught error object, so any object with both.
            let caught_runtime = map.get("Error").and_then(Value::as_str).is_some_and(|e| !cause_is_meaningful(e))
                && map.get("Cause").is_some_and(Value::is_string);
            Value::Object(
                map.iter()
                    .map(|(k, v)| {
                        let v = if caught_runtime && k == "Cause" { Value::String("<States.* cause>".into()) } else { normalize(v) };
                        (k.clone(), v)
                    })
                    .collect(),
            )
        }
        other => other.clone(),
    }
}

/// `None` when the two outcomes agree, else why they do not.
fn disagreement(oracle: &Outcome, ours: &Outcome) -> Option<String> {
    match (oracle, ours) {
        (Outcome::Ok(a), Outcome::Ok(b)) => (normalize(a) != normalize(b)).then(|| "the outputs differ".to_string()),
        (Outcome::Failed { error: e1, cause: c1 }, Outcome::Failed { error: e2, cause: c2 }) => {
            if e1 != e2 {
                Some(format!("the error names differ ({e1} vs {e2})"))
            } else if cause_is_meaningful(e1) && c1 != c2 {
                Some("the causes differ".to_string())
            } else {
                None
            }
        }
        (Outcome::Invalid(_), Outcome::Invalid(_)) => None,
        (a, b) => Some(format!("{} vs {}", kind(a), kind(b))),
    }
}

fn kind(o: &Outcome) -> &'static str {
    match o {
        Outcome::Ok(_) => "succeeded",
        Outcome::Failed { .. } => "failed",
        Outcome::Invalid(_) => "refused the definition",
        Outcome::Timeout => "timed out",
        Outcome::Crashed(_) => "crashed",
    }
}

// ---------------------------------------------------------------------------------------------
// Known deviations of aws-local-stepfunctions 3.0.0 from AWS Step Functions
// ---------------------------------------------------------------------------------------------

/// A place where aws-local-stepfunctions and the AWS documentation disagree, and we follow AWS.
struct Deviation {
    name: &'static str,
    /// Who departs from AWS's documented behaviour.
    source: Source,
    /// What AWS does, and what the oracle does instead.
    aws: &'static str,
    test: Test,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Source {
    /// aws-local-stepfunctions departs from AWS; this engine follows AWS.
    Oracle,
    /// This engine departs from AWS's current documentation on purpose (it follows the ASL
    /// specification, and its own tests rely on it) while the oracle does what AWS documents.
    /// Listed so that the choice stays visible; see the entry's text.
    Engine,
    /// AWS documents nothing either way; the engines differ and neither is known to be wrong.
    Undocumented,
}

/// How a deviation recognises a mismatch it explains.
enum Test {
    /// Rewrites one state (returning whether it changed anything) so that our engine does what
    /// the oracle does: the mismatch is explained if our engine, run on the rewritten definition,
    /// then agrees with the oracle (or disagrees only in ways other deviations explain).
    Emulate(fn(&mut Map<String, Value>) -> bool),
    /// Looks at the case and both outcomes: `(case, oracle, ours)`.
    Explain(fn(&Case, &Outcome, &Outcome) -> bool),
}

/// The known deviations, tried in this order on every mismatch. Most are recognised by
/// *emulation*: the definition is rewritten so that our engine does what the oracle does at that
/// one place (a Pass `Result` of `false` dropped, say), and the mismatch is explained only if our
/// engine then gives exactly the oracle's result. The others look at our engine's own history of
/// the run ([`Trace`]) to check that the oracle's failure is the one the deviation describes.
const DEVIATIONS: &[Deviation] = &[
    Deviation {
        name: "PASS_FALSY_RESULT",
        source: Source::Oracle,
        aws: "A Pass state's Result is its output whatever JSON value it is (\"Result: the output of a \
              virtual task\"), false, 0, \"\" and null included. The oracle tests `if (Result)` and passes \
              the input through when Result is falsy.",
        test: Test::Emulate(|state| {
            let falsy = |v: &Value| matches!(v, Value::Null | Value::Bool(false)) || v == &json!(0) || v == &json!("");
            if state.get("Type") == Some(&json!("Pass")) && state.get("Result").is_some_and(falsy) {
                state.remove("Result");
                true
            } else {
                false
            }
        }),
    },
    Deviation {
        name: "RESULT_PATH_ROOT",
        source: Source::Oracle,
        aws: "A ResultPath is a Reference Path from the input's root: \"$\" makes the result the whole \
              output (whatever the input), \"$['odd key']\" writes that key. The oracle strips \"$.\" from \
              the path and reads what is left as keys, so \"$\" and \"$[...]\" write under a key named \
              \"$\" (and fail with States.ResultPathMatchFailure when the input is not an object).",
        test: Test::Emulate(|state| {
            let mut changed = false;
            let mut fix = |holder: &mut Map<String, Value>| {
                if let Some(p) = holder.get("ResultPath").and_then(Value::as_str) {
                    if !p.starts_with("$.") && !p.starts_with("$['$']") {
                        let keyed = format!("$['$']{}", &p[1..]);
                        holder.insert("ResultPath".into(), json!(keyed));
                        changed = true;
                    }
                }
            };
            fix(state);
            if let Some(Value::Array(catchers)) = state.get_mut("Catch") {
                for c in catchers.iter_mut().filter_map(Value::as_object_mut) {
                    fix(c);
                }
            }
            changed
        }),
    },
    Deviation {
        name: "FAIL_STATE_DEFAULTS",
        source: Source::Oracle,
        aws: "A Fail state's Error and Cause are optional; without them the failure has no error name \
              or cause. The oracle makes up the name \"FailStateError\" and the cause \"Execution failed \
              because of a Fail state\".",
        test: Test::Emulate(|state| {
            if state.get("Type") != Some(&json!("Fail")) {
                return false;
            }
            let mut changed = false;
            if !state.contains_key("Error") && !state.contains_key("ErrorPath") {
                state.insert("Error".into(), json!("FailStateError"));
                changed = true;
            }
            if !state.contains_key("Cause") && !state.contains_key("CausePath") {
                state.insert("Cause".into(), json!("Execution failed because of a Fail state"));
                changed = true;
            }
            changed
        }),
    },
    Deviation {
        name: "FAIL_PATH_INTRINSIC",
        source: Source::Oracle,
        aws: "A Fail state's ErrorPath and CausePath may be an intrinsic function that returns a \
              string (States.Format, States.JsonToString, ...). The oracle reads them only as JSONPaths \
              and fails with States.Runtime.",
        test: Test::Explain(|_, oracle, _| {
            oracle_runtime_path(oracle, "does not point to a value").is_some_and(|p| p.starts_with("States."))
        }),
    },
    Deviation {
        name: "IS_TEST_FALSE",
        source: Source::Oracle,
        aws: "The data-test operators compare the test with the boolean given: {\"IsNull\": false} \
              matches a value that is not null, {\"IsPresent\": false} a path that matches nothing. The \
              oracle evaluates `IsX && test(value)`, so every `IsX: false` rule is false.",
        test: Test::Emulate(|state| {
            let mut changed = false;
            if let Some(Value::Array(choices)) = state.get_mut("Choices") {
                for c in choices.iter_mut() {
                    changed |= rewrite_is_false(c);
                }
            }
            changed
        }),
    },
    Deviation {
        name: "CHOICE_TYPE_MISMATCH",
        source: Source::Oracle,
        aws: "A comparison whose Variable has another type than the operator's (a number tested with \
              StringLessThan, an object with StringMatches, anything but an RFC 3339 timestamp with \
              Timestamp*) is simply false. The oracle applies JavaScript's `<`/`>` (\"3\" < 5 and \
              [] <= \"9\" are true), `new Date(value)` (numbers and bare dates are instants), and crashes \
              with a TypeError in StringMatches.",
        test: Test::Explain(|case, _, _| trace(case).visits.iter().any(|v| choice_has_type_mismatch(case, v))),
    },
    Deviation {
        name: "CHOICE_EQUALS_PATH_TYPE",
        source: Source::Oracle,
        aws: "An *EqualsPath comparison whose operand path gives a value of another type is false (as \
              AWS was observed to do; see crates/engine/src/choice.rs). The oracle fails with \
              States.Runtime (\"... but expected a string\").",
        test: Test::Explain(|case, oracle, _| {
            let Some(path) = oracle_runtime_path(oracle, "but expected") else { return false };
            let mut operands = Vec::new();
            walk_states(&case.definition, &mut |state| {
                for c in state.get("Choices").and_then(Value::as_array).into_iter().flatten() {
                    collect_equals_path_operands(c, &mut operands);
                }
            });
            operands.contains(&path)
        }),
    },
    Deviation {
        name: "PARAMETER_PATH_FAILURE",
        source: Source::Engine,
        aws: "A payload template path (`\"x.$\": \"$.missing\"`) that matches nothing: this engine \
              raises States.ParameterPathFailure as the ASL specification names it, which Catch and Retry \
              can handle. The oracle raises States.Runtime, which nothing catches, and so does AWS today: \
              its error-handling guide lists States.ParameterPathFailure as reserved for future use, \
              parameter processing errors being reported as States.Runtime.",
        test: Test::Explain(|case, oracle, ours| {
            let Some(path) = oracle_runtime_path(oracle, "does not point to a value") else { return false };
            let pattern = format!("The JSONPath '{path}' specified");
            // From our history; or, when the failure left no trace there (a Catch whose ResultPath
            // failed, a branch cancelled by another's failure), from the definition: a template path
            // that nothing else reads, where our engine can only raise States.ParameterPathFailure.
            let (templates, intrinsics, others) = definition_paths(&case.definition);
            trace(case).failures(ours).any(|(e, c)| e == "States.ParameterPathFailure" && c.contains(&pattern))
                || (path != "$"
                    && !path.starts_with("$$")
                    && templates.contains(&path)
                    && !others.contains(&path)
                    && !intrinsics.iter().any(|i| i.contains(&path)))
        }),
    },
    Deviation {
        name: "INTRINSIC_FAILURE",
        source: Source::Engine,
        aws: "An intrinsic function that fails: this engine raises States.IntrinsicFailure as the ASL \
              specification names it, which Catch and Retry can handle (tests/workflows/\
              intrinsic-failure-caught relies on it). The oracle raises States.Runtime, which nothing \
              catches, and so does AWS today: its error-handling guide lists States.IntrinsicFailure as \
              reserved for future use, intrinsic function errors being reported as States.Runtime.",
        test: Test::Explain(|case, oracle, ours| {
            // The oracle's own checks raise States.Runtime; JSON.parse in States.StringToJson throws
            // a JavaScript SyntaxError, which it passes on as the error name.
            // A JSONPath argument that matches nothing: the oracle names the path.
            let missing_argument = oracle_runtime_path(oracle, "does not point to a value").map(|p| format!("argument '{p}'"));
            let oracle_intrinsic_error = oracle_errors(oracle).iter().any(|(e, c)| {
                (e == "States.Runtime" && (c.contains("ntrinsic function") || c.contains("in States."))) || e == "SyntaxError"
            });
            let t = trace(case);
            let in_trace = t.failures(ours).any(|(e, c)| {
                e == "States.IntrinsicFailure"
                    && (oracle_intrinsic_error || missing_argument.as_deref().is_some_and(|arg| c.contains(arg)))
            });
            // When the failure left no trace in our history (see PARAMETER_PATH_FAILURE): a path
            // that only intrinsic calls read.
            let (templates, intrinsics, others) = definition_paths(&case.definition);
            let only_in_intrinsics = oracle_runtime_path(oracle, "does not point to a value").is_some_and(|p| {
                p != "$"
                    && !p.starts_with("$$")
                    && intrinsics.iter().any(|i| i.contains(&format!("{p},")) || i.contains(&format!("{p})")))
                    && !templates.contains(&p)
                    && !others.contains(&p)
            });
            // The oracle's own argument checks (type, count, constraints) match those of our engine,
            // which raises States.IntrinsicFailure there: its failure needs no trace of ours (which
            // a race may have cut short).
            let argument_check = matches!(oracle, Outcome::Failed { error, cause }
                if error == "States.Runtime" && cause.starts_with("Intrinsic function States.") && cause.contains(" expect")
                    && !(cause.starts_with("Intrinsic function States.Format ") && cause.ends_with("received object")));
            in_trace || only_in_intrinsics || argument_check
        }),
    },
    Deviation {
        name: "ARRAY_GET_ITEM_OUT_OF_RANGE",
        source: Source::Oracle,
        aws: "States.ArrayGetItem with an index outside the array fails (States.IntrinsicFailure). The \
              oracle returns null.",
        test: Test::Explain(|case, _, ours| {
            trace(case).failures(ours).any(|(e, c)| e == "States.IntrinsicFailure" && c.contains("ArrayGetItem") && c.contains("out of bounds"))
        }),
    },
    Deviation {
        name: "INTRINSIC_BACKSLASHES",
        source: Source::Oracle,
        aws: "Intrinsic functions return exact strings: States.JsonToString escapes quotes as \\\", \
              States.Format keeps a backslash of its arguments. The oracle deletes every backslash from \
              every string an intrinsic function returns.",
        test: Test::Explain(|case, oracle, ours| {
            if let (Outcome::Ok(a), Outcome::Ok(b)) = (oracle, ours) {
                let stripped = map_strings(b, &|s| s.replace('\\', ""));
                if case.definition.to_string().contains("States.") && normalize(a) == normalize(&stripped) {
                    return true;
                }
            }
            // A backslash that went on into another function (a hash, Base64) or a decision.
            trace(case).visits.iter().any(|v| intrinsic_made_backslash(case, v))
        }),
    },
    Deviation {
        name: "HASH_LONG_INPUT",
        source: Source::Oracle,
        aws: "States.Hash computes the standard digest of its input. The oracle's own MD5, SHA-1 and \
              SHA-256 give wrong digests for inputs of 56 bytes or more, SHA-384 and SHA-512 for 112 or \
              more (a padding bug); ours agree with the reference implementations.",
        test: Test::Explain(|case, _, _| {
            trace(case).visits.iter().any(|v| {
                pass_intrinsic_calls(case, v).iter().any(|call| {
                    let Some(args) = call.strip_prefix("States.Hash(").and_then(|r| r.strip_suffix(')')) else { return false };
                    let args = split_args(args);
                    let [data, algorithm] = args.as_slice() else { return false };
                    let (Some(data), Some(algorithm)) = (as_text(data, &v.effective), as_text(algorithm, &v.effective)) else { return false };
                    let limit = if algorithm == "SHA-384" || algorithm == "SHA-512" { 112 } else { 56 };
                    data.len() >= limit
                })
            })
        }),
    },
    Deviation {
        name: "BASE64_ENCODING",
        source: Source::Oracle,
        aws: "States.Base64Encode encodes the UTF-8 bytes of any string. The oracle uses the browser's \
              btoa, which encodes Latin-1 (\"café\" gives \"Y2Fm6Q==\" instead of \"Y2Fmw6k=\") and throws \
              on characters past U+00FF.",
        test: Test::Explain(|case, oracle, _| {
            // btoa's own error names the deviation wherever it happened.
            if oracle_errors(oracle).iter().any(|(e, _)| e == "InvalidCharacterError") {
                return true;
            }
            trace(case).visits.iter().any(|v| {
                pass_intrinsic_calls(case, v).iter().any(|call| {
                    call.strip_prefix("States.Base64Encode(")
                        .and_then(|r| r.strip_suffix(')'))
                        .and_then(|arg| as_text(arg, &v.effective))
                        .is_some_and(|text| !text.is_ascii())
                })
            })
        }),
    },
    Deviation {
        name: "STRING_SPLIT",
        source: Source::Oracle,
        aws: "States.StringSplit splits at every character of its delimiter argument (\"the delimiting \
              character\"; AWS's example splits \"This.is+a,test=string\" at \".+,=\") and, as this engine \
              does, leaves out empty parts. The oracle splits at the whole delimiter string with \
              JavaScript's String.split and keeps empty strings.",
        test: Test::Explain(|case, oracle, ours| {
            let text = case.definition.to_string();
            if !text.contains("States.StringSplit") {
                return false;
            }
            let multi_char = text.split("States.StringSplit(").skip(1).any(|rest| {
                let args = rest.split(')').next().unwrap_or_default();
                args.rsplit_once(", '").is_some_and(|(_, delim)| delim.trim_end_matches('\'').chars().count() > 1)
            });
            let drop_empty = |v: &Value| map_arrays(v, &|items| {
                if items.iter().all(Value::is_string) {
                    items.iter().filter(|s| s.as_str() != Some("")).cloned().collect()
                } else {
                    items.to_vec()
                }
            });
            if multi_char || matches!((oracle, ours), (Outcome::Ok(a), Outcome::Ok(b)) if normalize(&drop_empty(a)) == normalize(b)) {
                return true;
            }
            // A split whose parts the two read differently, feeding something else (a length).
            trace(case).visits.iter().any(|v| {
                pass_intrinsic_calls(case, v).iter().any(|call| {
                    let Some(args) = call.strip_prefix("States.StringSplit(").and_then(|r| r.strip_suffix(')')) else { return false };
                    let args = split_args(args);
                    let [text, delimiter] = args.as_slice() else { return false };
                    let (Some(text), Some(delimiter)) = (as_text(text, &v.effective), as_text(delimiter, &v.effective)) else { return false };
                    delimiter.chars().count() != 1 || text.split(delimiter.as_str()).any(str::is_empty)
                })
            })
        }),
    },
    Deviation {
        name: "JSON_MERGE_MUTATES_INPUT",
        source: Source::Oracle,
        aws: "States.JsonMerge returns a new object and leaves its arguments alone. The oracle \
              merges into its first argument (Object.assign), changing the state's input as it goes: \
              later paths of the same template see the merged object, and merging an object into one \
              that contains it builds a cycle (TypeError: Converting circular structure to JSON, or \
              RangeError: Maximum call stack size exceeded).",
        test: Test::Explain(|case, _, _| {
            // Where the mutation shows is unpredictable (a cycle, a later path that finds a value
            // replaced, a Map item that sees the previous item's merge), so any mismatch of a case
            // that merges into a path counts; the generator does that only now and then.
            case.definition.to_string().contains("States.JsonMerge($")
        }),
    },
    Deviation {
        name: "JSONPATH_FALSY_ROOT",
        source: Source::Oracle,
        aws: "The path \"$\" is the whole value, whatever it is. The oracle's JSONPath library finds \
              nothing at \"$\" when the value is false, 0, \"\" or null, and fails with States.Runtime.",
        // Our engine always finds "$", so an oracle failure there can only be this quirk (and it
        // may surface in a branch or Map item that our run never reached, cancelled by another).
        test: Test::Explain(|_, oracle, _| {
            oracle_errors(oracle).iter().any(|(e, c)| e == "States.Runtime" && c == "Path expression '$' does not point to a value")
        }),
    },
    Deviation {
        name: "JSONPATH_STRING_INDEX",
        source: Source::Oracle,
        aws: "A JSONPath index selects an element of an array; on a string it matches nothing (AWS \
              evaluates paths with Jayway JsonPath). The oracle's jsonpath-plus indexes the characters \
              of a string (\"$.name[1]\" on \"pixel\" gives \"i\").",
        test: Test::Explain(|case, _, _| trace(case).visits.iter().any(|v| indexes_a_string(case, v))),
    },
    Deviation {
        name: "FORMAT_ARGUMENT_TYPES",
        source: Source::Undocumented,
        aws: "AWS documents no type for the values of States.Format (each {} is \"replaced by the value \
              of the positionally-corresponding argument\"); this engine writes arrays and objects as \
              JSON. The oracle refuses them with States.Runtime. Neither is known to be what AWS does.",
        test: Test::Explain(|case, oracle, _| {
            let refused = oracle_errors(oracle)
                .iter()
                .any(|(e, c)| e == "States.Runtime" && c.starts_with("Intrinsic function States.Format expected argument") && c.ends_with("received object"));
            refused && trace(case).visits.iter().any(|v| find_state(&case.definition, &v.state).is_some_and(|s| Value::Object(s).to_string().contains("States.Format")))
        }),
    },
    Deviation {
        name: "CONTEXT_OBJECT",
        source: Source::Oracle,
        aws: "The context object has State.Name, State.EnteredTime, State.RetryCount and \
              Execution.StartTime, and inside Parallel branches and Map iterations $$.Execution.Input is \
              still the execution's input. The oracle only knows the fields this test hands it \
              (Execution.Id and Name, StateMachine.Id and Name), stamps its own wall-clock StartTime, \
              and makes each branch's and iteration's input its $$.Execution.Input.",
        test: Test::Explain(|case, oracle, ours| {
            if let Some(p) = oracle_runtime_path(oracle, "does not point to a value") {
                if ["$$.State", "$$.Task", "$$.Map"].iter().any(|prefix| p.starts_with(prefix)) {
                    return true;
                }
            }
            let text = case.definition.to_string();
            if text.contains("$$.Execution.StartTime") || text.contains("$$.State.EnteredTime") {
                let blank = |v: &Value| map_strings(v, &|s| if rfc3339(s) { String::new() } else { s.to_string() });
                if let (Outcome::Ok(a), Outcome::Ok(b)) = (oracle, ours) {
                    if normalize(&blank(a)) == normalize(&blank(b)) {
                        return true;
                    }
                }
            }
            let mut nested_input = false;
            walk_states(&case.definition, &mut |state| {
                let nested: Vec<&Value> = state
                    .get("Branches")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .chain(state.get("ItemProcessor"))
                    .chain(state.get("Iterator"))
                    .collect();
                nested_input |= nested.iter().any(|m| m.to_string().contains("$$.Execution.Input"));
            });
            nested_input
        }),
    },
];

/// The deviations that explain a mismatch, if any: usually one, or a chain of emulations
/// followed by the deviation that explains what is left (PASS_FALSY_RESULT then STRING_SPLIT).
fn classify(case: &Case, oracle: &Outcome, ours: &Outcome) -> Option<Vec<&'static str>> {
    classify_within(case, oracle, ours, 3)
}

fn classify_within(case: &Case, oracle: &Outcome, ours: &Outcome, depth: usize) -> Option<Vec<&'static str>> {
    for d in DEVIATIONS {
        match d.test {
            Test::Explain(explains) => {
                if explains(case, oracle, ours) {
                    return Some(vec![d.name]);
                }
            }
            Test::Emulate(rewrite) => {
                let mut definition = case.definition.clone();
                let mut changed = false;
                rewrite_states(&mut definition, &mut |s| changed |= rewrite(s));
                if !changed {
                    continue;
                }
                let emulated = Case { definition, ..case.clone() };
                let emulated_ours = run_ours_against(&emulated, oracle).0;
                if disagreement(oracle, &emulated_ours).is_none() {
                    return Some(vec![d.name]);
                }
                if depth > 0 {
                    if let Some(rest) = classify_within(&emulated, oracle, &emulated_ours, depth - 1) {
                        return Some(std::iter::once(d.name).chain(rest).collect());
                    }
                }
            }
        }
    }
    None
}

fn is_falsy(v: &Value) -> bool {
    matches!(v, Value::Null | Value::Bool(false)) || v.as_f64() == Some(0.0) || v.as_str() == Some("")
}

/// Calls `f` on every state of a definition, nested machines included.
fn rewrite_states(machine: &mut Value, f: &mut dyn FnMut(&mut Map<String, Value>)) {
    let Some(states) = machine.get_mut("States").and_then(Value::as_object_mut) else { return };
    for state in states.values_mut() {
        if let Some(obj) = state.as_object_mut() {
            f(obj);
            for b in obj.get_mut("Branches").and_then(Value::as_array_mut).into_iter().flatten() {
                rewrite_states(b, f);
            }
            for key in ["ItemProcessor", "Iterator"] {
                if let Some(p) = obj.get_mut(key) {
                    rewrite_states(p, f);
                }
            }
        }
    }
}

/// Calls `f` on every state of a definition, nested machines included.
fn walk_states(machine: &Value, f: &mut dyn FnMut(&Map<String, Value>)) {
    let mut copy = machine.clone();
    rewrite_states(&mut copy, &mut |s| f(s));
}

/// The state named `name` anywhere in a definition.
fn find_state(machine: &Value, name: &str) -> Option<Map<String, Value>> {
    let mut found = None;
    let mut copy = machine.clone();
    fn visit(machine: &mut Value, name: &str, found: &mut Option<Map<String, Value>>) {
        let Some(states) = machine.get_mut("States").and_then(Value::as_object_mut) else { return };
        for (n, state) in states.iter_mut() {
            if n == name && found.is_none() {
                *found = state.as_object().cloned();
            }
            for b in state.get_mut("Branches").and_then(Value::as_array_mut).into_iter().flatten() {
                visit(b, name, found);
            }
            for key in ["ItemProcessor", "Iterator"] {
                if let Some(p) = state.get_mut(key) {
                    visit(p, name, found);
                }
            }
        }
    }
    visit(&mut copy, name, &mut found);
    found
}

/// Rewrites every `{"IsX": false}` of a Choice rule into a rule that, like the oracle's, is false
/// (after reading the Variable, which fails on a missing path, except for IsPresent).
fn rewrite_is_false(rule: &mut Value) -> bool {
    let Some(obj) = rule.as_object_mut() else { return false };
    let mut changed = false;
    for key in ["And", "Or"] {
        for r in obj.get_mut(key).and_then(Value::as_array_mut).into_iter().flatten() {
            changed |= rewrite_is_false(r);
        }
    }
    if let Some(r) = obj.get_mut("Not") {
        changed |= rewrite_is_false(r);
    }
    let test = ["IsNull", "IsPresent", "IsNumeric", "IsString", "IsBoolean", "IsTimestamp"]
        .into_iter()
        .find(|k| obj.get(*k) == Some(&json!(false)));
    if let (Some(test), Some(variable)) = (test, obj.get("Variable").cloned()) {
        let probe = if test == "IsPresent" { "IsPresent" } else { "IsNull" };
        let never = json!({ "And": [
            { "Variable": variable, probe: true },
            { "Not": { "Variable": variable, probe: true } },
        ]});
        obj.remove(test);
        obj.remove("Variable");
        for (k, v) in never.as_object().expect("rule").clone() {
            obj.insert(k, v);
        }
        changed = true;
    }
    changed
}

/// The paths of a definition: those of payload templates (`"x.$": "$.a"`), the intrinsic calls
/// of payload templates, and every other path field (InputPath, Variable, ItemsPath, ...).
fn definition_paths(definition: &Value) -> (Vec<String>, Vec<String>, Vec<String>) {
    let (mut templates, mut intrinsics, mut others) = (Vec::new(), Vec::new(), Vec::new());
    fn walk(v: &Value, templates: &mut Vec<String>, intrinsics: &mut Vec<String>, others: &mut Vec<String>) {
        match v {
            Value::Object(map) => {
                for (k, v) in map {
                    match (v, k.as_str()) {
                        (Value::String(s), k) if k.ends_with(".$") => {
                            if s.starts_with("States.") {
                                intrinsics.push(s.clone());
                            } else {
                                templates.push(s.clone());
                            }
                        }
                        (Value::String(s), k) if s.starts_with('$') && (k.ends_with("Path") || k == "Variable") => others.push(s.clone()),
                        (Value::String(s), "ErrorPath" | "CausePath") => others.push(s.clone()),
                        _ => walk(v, templates, intrinsics, others),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|i| walk(i, templates, intrinsics, others)),
            _ => {}
        }
    }
    walk(definition, &mut templates, &mut intrinsics, &mut others);
    (templates, intrinsics, others)
}

/// Every error in an outcome: the failure, and every caught `{"Error", "Cause"}` in the output.
fn oracle_errors(o: &Outcome) -> Vec<(String, String)> {
    fn walk(v: &Value, out: &mut Vec<(String, String)>) {
        match v {
            Value::Object(map) => {
                if let (Some(Value::String(e)), Some(Value::String(c))) = (map.get("Error"), map.get("Cause")) {
                    out.push((e.clone(), c.clone()));
                }
                map.values().for_each(|v| walk(v, out));
            }
            Value::Array(items) => items.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    match o {
        Outcome::Failed { error, cause } => out.push((error.clone(), cause.clone())),
        Outcome::Ok(v) => walk(v, &mut out),
        _ => {}
    }
    out
}

/// The path named in an oracle States.Runtime failure "Path expression '<path>' <what>...".
fn oracle_runtime_path(oracle: &Outcome, what: &str) -> Option<String> {
    let Outcome::Failed { error, cause } = oracle else { return None };
    if error != "States.Runtime" || !cause.contains(what) {
        return None;
    }
    let rest = cause.strip_prefix("Path expression '")?;
    Some(rest[..rest.find("' ")?].to_string())
}

fn collect_equals_path_operands(rule: &Value, out: &mut Vec<String>) {
    let Some(obj) = rule.as_object() else { return };
    for (k, v) in obj {
        match k.as_str() {
            "And" | "Or" => v.as_array().into_iter().flatten().for_each(|r| collect_equals_path_operands(r, out)),
            "Not" => collect_equals_path_operands(v, out),
            k if k.ends_with("EqualsPath") && !k.ends_with("ThanEqualsPath") => {
                out.extend(v.as_str().map(str::to_string));
            }
            _ => {}
        }
    }
}

/// `v` with `f` applied to every string in it.
fn map_strings(v: &Value, f: &dyn Fn(&str) -> String) -> Value {
    match v {
        Value::String(s) => Value::String(f(s)),
        Value::Array(items) => Value::Array(items.iter().map(|i| map_strings(i, f)).collect()),
        Value::Object(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), map_strings(v, f))).collect()),
        other => other.clone(),
    }
}

/// `v` with `f` applied to every array in it (innermost first).
fn map_arrays(v: &Value, f: &dyn Fn(&[Value]) -> Vec<Value>) -> Value {
    match v {
        Value::Array(items) => {
            let items: Vec<Value> = items.iter().map(|i| map_arrays(i, f)).collect();
            Value::Array(f(&items))
        }
        Value::Object(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), map_arrays(v, f))).collect()),
        other => other.clone(),
    }
}

/// What our engine did on a case, from its history: every state visit with its input, and every
/// failure on the way (caught, or failing a Map iteration, a branch, a state).
struct Trace {
    visits: Vec<Visit>,
    caught: Vec<(String, String)>,
}

struct Visit {
    state: String,
    /// The state's input after its InputPath.
    effective: Value,
}

impl Trace {
    /// Every failure of the run: the caught ones, and how it ended if it failed.
    fn failures<'a>(&'a self, ours: &'a Outcome) -> impl Iterator<Item = (&'a str, &'a str)> {
        let last = match ours {
            Outcome::Failed { error, cause } => Some((error.as_str(), cause.as_str())),
            _ => None,
        };
        self.caught.iter().map(|(e, c)| (e.as_str(), c.as_str())).chain(last)
    }
}

/// Our engine's history of a run of `case` (empty if the definition is refused).
fn history(case: &Case) -> Vec<pixelflow_engine::Event> {
    use pixelflow_engine::{CancelToken, Engine, Execution, ManualClock, MemoryJournal, StepRegistry};
    let steps = StepRegistry::new();
    let Ok(machine) = pixelflow_engine::asl::parse(&case.definition, &steps) else { return Vec::new() };
    let journal = std::sync::Arc::new(MemoryJournal::new());
    let engine = Engine::new(steps, journal.clone(), std::sync::Arc::new(ManualClock::new(1_700_000_000_000)));
    let exec = Execution {
        id: "fidelity-trace".to_string(),
        name: "in-memory".to_string(),
        state_machine_name: "local".to_string(),
        input: case.input.clone(),
        start_ms: 1_700_000_000_000,
    };
    let _ = engine.run(&machine, &exec, &CancelToken::new());
    journal.events(&exec.id)
}

fn trace(case: &Case) -> Trace {
    let mut t = Trace { visits: Vec::new(), caught: Vec::new() };
    for event in history(case) {
        // Caught failures, and the failures of Map iterations, Parallel and Map states and Fail
        // states on the way (a Catch whose ResultPath fails hides the failure it caught).
        for failure in [event.detail.get("caught"), Some(&event.detail)].into_iter().flatten() {
            if let (Some(Value::String(e)), Some(Value::String(c))) = (failure.get("error"), failure.get("cause")) {
                t.caught.push((e.clone(), c.clone()));
            }
        }
        if let (true, Some(state), Some(input)) = (event.kind.ends_with("StateEntered"), &event.state, event.detail.get("input")) {
            let input_path = find_state(&case.definition, state).and_then(|s| s.get("InputPath").cloned());
            let effective = match input_path {
                Some(Value::String(p)) => pixelflow_engine::path::select(input, &Value::Null, &p).ok().flatten().unwrap_or(Value::Null),
                Some(Value::Null) => json!({}),
                _ => input.clone(),
            };
            t.visits.push(Visit { state: state.clone(), effective });
        }
    }
    t
}

/// Whether a Choice state visit has a comparison whose Variable has a type the operator does not
/// take and on which the oracle's JavaScript gives another answer than AWS's `false` (see
/// CHOICE_TYPE_MISMATCH): a coerced `<`/`>` that holds, a StringMatches that throws, a Timestamp
/// comparison on something `new Date()` may read as an instant.
fn choice_has_type_mismatch(case: &Case, visit: &Visit) -> bool {
    let Some(state) = find_state(&case.definition, &visit.state) else { return false };
    let Some(choices) = state.get("Choices").and_then(Value::as_array) else { return false };
    fn check(rule: &Value, input: &Value) -> bool {
        let Some(obj) = rule.as_object() else { return false };
        if let Some(rules) = obj.get("And").or_else(|| obj.get("Or")).and_then(Value::as_array) {
            return rules.iter().any(|r| check(r, input));
        }
        if let Some(r) = obj.get("Not") {
            return check(r, input);
        }
        let select = |p: &str| pixelflow_engine::path::select(input, &Value::Null, p).ok().flatten();
        let Some(value) = obj.get("Variable").and_then(Value::as_str).and_then(select) else { return false };
        obj.iter().any(|(key, operand)| {
            let (op, operand) = match key.strip_suffix("Path") {
                Some(op) => match operand.as_str().and_then(select) {
                    Some(v) => (op, v),
                    None => return false,
                },
                None => (key.as_str(), operand.clone()),
            };
            if op.starts_with("Timestamp") {
                return !value.as_str().is_some_and(rfc3339);
            }
            if op == "StringMatches" {
                return !value.is_string();
            }
            let family_type_ok = if op.starts_with("String") {
                value.is_string()
            } else if op.starts_with("Numeric") {
                value.is_number()
            } else {
                return false;
            };
            if family_type_ok {
                return false;
            }
            // What JavaScript's relational operators make of it; AWS says false.
            let holds = match op.trim_start_matches("String").trim_start_matches("Numeric") {
                "LessThan" => js_less(&value, &operand) == Some(true),
                "GreaterThan" => js_less(&operand, &value) == Some(true),
                "LessThanEquals" => js_less(&operand, &value) == Some(false),
                "GreaterThanEquals" => js_less(&value, &operand) == Some(false),
                _ => false, // Equals: `===`, no coercion
            };
            holds
        })
    }
    choices.iter().any(|c| check(c, &visit.effective))
}

/// JavaScript's `a < b` on JSON values (ToPrimitive, then string or number comparison); `None`
/// where JavaScript gives `undefined` (a NaN), which makes every relational operator false.
fn js_less(a: &Value, b: &Value) -> Option<bool> {
    fn primitive(v: &Value) -> Value {
        match v {
            Value::Array(_) | Value::Object(_) => Value::String(js_string(v)),
            other => other.clone(),
        }
    }
    fn number(v: &Value) -> Option<f64> {
        let n = match v {
            Value::Null => 0.0,
            Value::Bool(b) => f64::from(u8::from(*b)),
            Value::Number(n) => n.as_f64()?,
            Value::String(s) => {
                let t = s.trim();
                if t.is_empty() {
                    0.0
                } else if t.chars().all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-')) {
                    t.parse().ok()?
                } else {
                    return None;
                }
            }
            _ => return None,
        };
        (!n.is_nan()).then_some(n)
    }
    match (primitive(a), primitive(b)) {
        (Value::String(x), Value::String(y)) => Some(x.encode_utf16().lt(y.encode_utf16())),
        (x, y) => Some(number(&x)? < number(&y)?),
    }
}

/// JavaScript's String(value) for JSON values.
fn js_string(v: &Value) -> String {
    match v {
        Value::Null => "null".to_string(),
        Value::String(s) => s.clone(),
        Value::Array(items) => items
            .iter()
            .map(|i| if i.is_null() { String::new() } else { js_string(i) })
            .collect::<Vec<_>>()
            .join(","),
        Value::Object(_) => "[object Object]".to_string(),
        Value::Number(n) => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 1e21 => format!("{}", f as i64),
            _ => n.to_string(),
        },
        Value::Bool(b) => b.to_string(),
    }
}

/// Every intrinsic call (nested ones included) in the Parameters of a visited Pass or Parallel
/// state, which read the visit's input (as opposed to a Map's ItemSelector, which also reads the
/// item from the context object).
fn pass_intrinsic_calls(case: &Case, visit: &Visit) -> Vec<String> {
    let Some(state) = find_state(&case.definition, &visit.state) else { return Vec::new() };
    if state.get("Type") != Some(&json!("Pass")) && state.get("Type") != Some(&json!("Parallel")) {
        return Vec::new();
    }
    let Some(template) = state.get("Parameters") else { return Vec::new() };
    fn collect(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(map) => {
                for (k, v) in map {
                    match (k.ends_with(".$"), v) {
                        (true, Value::String(expr)) => {
                            // Every `States.X(...)` in the expression, nested ones included.
                            for (start, _) in expr.match_indices("States.") {
                                let mut depth = 0;
                                for (i, c) in expr[start..].char_indices() {
                                    match c {
                                        '(' => depth += 1,
                                        ')' => {
                                            depth -= 1;
                                            if depth == 0 {
                                                out.push(expr[start..start + i + 1].to_string());
                                                break;
                                            }
                                        }
                                        _ => {}
                                    }
                                }
                            }
                        }
                        _ => collect(v, out),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|i| collect(i, out)),
            _ => {}
        }
    }
    let mut calls = Vec::new();
    collect(template, &mut calls);
    calls
}

/// Whether a visited state has a path ending in an index (`$.a.b[1]`) whose parent is a string in
/// the visit's input.
fn indexes_a_string(case: &Case, visit: &Visit) -> bool {
    let Some(state) = find_state(&case.definition, &visit.state) else { return false };
    let mut found = false;
    fn strings(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::String(s) => out.push(s.clone()),
            Value::Array(items) => items.iter().for_each(|i| strings(i, out)),
            Value::Object(map) => map.values().for_each(|i| strings(i, out)),
            _ => {}
        }
    }
    let mut texts = Vec::new();
    strings(&Value::Object(state), &mut texts);
    for text in texts {
        for token in text.split([',', ' ', '(', ')']).filter(|t| t.starts_with('$') && !t.starts_with("$$")) {
            let Some(open) = token.rfind('[') else { continue };
            let index = &token[open + 1..token.len().saturating_sub(1)];
            if !token.ends_with(']') || index.is_empty() || !index.chars().all(|c| c.is_ascii_digit()) {
                continue;
            }
            let parent = pixelflow_engine::path::select(&visit.effective, &Value::Null, &token[..open]);
            found |= matches!(parent, Ok(Some(Value::String(_))));
        }
    }
    found
}

/// The top-level arguments of an intrinsic call (the text between its parentheses).
fn split_args(text: &str) -> Vec<String> {
    let (mut args, mut current, mut depth, mut quoted, mut escaped) = (Vec::new(), String::new(), 0, false, false);
    for c in text.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '\'' => quoted = !quoted,
            '(' if !quoted => depth += 1,
            ')' if !quoted => depth -= 1,
            ',' if !quoted && depth == 0 => {
                args.push(std::mem::take(&mut current).trim().to_string());
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    args.push(current.trim().to_string());
    args
}

/// The string an intrinsic argument (a literal, a path, a call) gives on `input`, as our engine
/// evaluates it.
fn as_text(arg: &str, input: &Value) -> Option<String> {
    let mut rng = StdRng::seed_from_u64(0);
    match pixelflow_engine::intrinsics::evaluate(&format!("States.Format('{{}}', {arg})"), input, &Value::Null, &mut rng) {
        Ok(Value::String(s)) => Some(s),
        _ => None,
    }
}

/// Whether an intrinsic call in the Parameters of a visited Pass state returns a string with a
/// backslash, as our engine evaluates it on the visit's input.
fn intrinsic_made_backslash(case: &Case, visit: &Visit) -> bool {
    let mut rng = StdRng::seed_from_u64(0);
    pass_intrinsic_calls(case, visit).iter().any(|call| {
        matches!(pixelflow_engine::intrinsics::evaluate(call, &visit.effective, &Value::Null, &mut rng),
            Ok(Value::String(s)) if s.contains('\\'))
    })
}

/// The RFC 3339 profile of ASL timestamps: `2016-03-14T01:59:00Z`, `...59:00.123+02:00`.
fn rfc3339(s: &str) -> bool {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| r.clone().all(|i| b.get(i).is_some_and(u8::is_ascii_digit));
    if b.len() < 20 || !digits(0..4) || b[4] != b'-' || !digits(5..7) || b[7] != b'-' || !digits(8..10) || b[10] != b'T' {
        return false;
    }
    if !digits(11..13) || b[13] != b':' || !digits(14..16) || b[16] != b':' || !digits(17..19) {
        return false;
    }
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return false;
        }
        rest = &frac[n..];
    }
    rest == "Z" || (rest.len() == 6 && (rest.starts_with('+') || rest.starts_with('-')) && rest.as_bytes()[3] == b':')
}

// ---------------------------------------------------------------------------------------------
// The driver
// ---------------------------------------------------------------------------------------------

struct Report {
    compared: usize,
    agreed: usize,
    deviations: BTreeMap<&'static str, usize>,
    bugs: Vec<String>,
    failures: Vec<String>,
}

fn check_batch(label: &str, title: &str, cases: &[Case]) {
    let started = Instant::now();
    let oracle = run_oracle(cases);
    let oracle_secs = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let runs: Vec<(Outcome, bool)> = cases.iter().zip(&oracle).map(|(c, o)| run_ours_against(c, o)).collect();
    let raced = runs.iter().filter(|(_, rerun)| *rerun).count();
    let ours: Vec<Outcome> = runs.into_iter().map(|(o, _)| o).collect();
    let ours_secs = started.elapsed().as_secs_f64();

    let mut report = Report { compared: 0, agreed: 0, deviations: BTreeMap::new(), bugs: Vec::new(), failures: Vec::new() };
    let mut classified = 0;
    for ((case, o), e) in cases.iter().zip(&oracle).zip(&ours) {
        let Some(why) = disagreement(o, e) else {
            report.compared += 1;
            report.agreed += 1;
            match case.expect {
                Expect::Any | Expect::Agree => {}
                Expect::Deviation(d) => report.failures.push(describe(
                    case,
                    o,
                    e,
                    &format!("expected the known deviation {d}, but the engines agree: is it still one?"),
                )),
                Expect::EngineBug(bug) => report.failures.push(describe(
                    case,
                    o,
                    e,
                    &format!("the engines agree now: engine bug '{bug}' looks fixed, mark this case Expect::Agree"),
                )),
            }
            continue;
        };
        let chain = classify(case, o, e);
        match (case.expect, &chain) {
            (Expect::Any, Some(chain)) => {
                classified += 1;
                for d in chain {
                    *report.deviations.entry(d).or_default() += 1;
                }
            }
            (Expect::Deviation(expected), Some(chain)) if chain.contains(&expected) => {
                classified += 1;
                for d in chain {
                    *report.deviations.entry(d).or_default() += 1;
                }
            }
            (Expect::EngineBug(bug), _) => {
                report.compared += 1;
                report.bugs.push(format!("{}: {bug} ({why})", case.name));
            }
            (expect, chain) => {
                report.compared += 1;
                let note = match (chain, expect) {
                    (Some(c), Expect::Deviation(expected)) => format!("{why}; classified as {}, expected {expected}", c.join("+")),
                    (Some(c), _) => format!("{why}; classified as {}, but the case must agree", c.join("+")),
                    (None, Expect::Deviation(expected)) => format!("{why}; expected {expected}, which does not recognise it"),
                    (None, _) => format!("{why}; no known deviation explains it"),
                };
                report.failures.push(describe(case, o, e, &note));
            }
        }
    }

    eprintln!();
    eprintln!("== fidelity: {title} ==");
    eprintln!(
        "{} cases: {} compared ({} agree), {} explained by known deviations; oracle {:.1}s, engine {:.1}s",
        cases.len(),
        report.compared,
        report.agreed,
        classified,
        oracle_secs,
        ours_secs
    );
    if raced > 0 {
        eprintln!("  ({raced} agreed only when run again: branches or Map items that fail differently race, in AWS too)");
    }
    for d in DEVIATIONS {
        if let Some(n) = report.deviations.get(d.name) {
            let summary = d.aws.split(". ").next().unwrap_or(d.aws);
            let who = match d.source {
                Source::Oracle => "oracle",
                Source::Engine => "ENGINE",
                Source::Undocumented => "undoc.",
            };
            eprintln!("  {:>4}  {who}  {:<28} {}", n, d.name, summary.split_whitespace().collect::<Vec<_>>().join(" "));
        }
    }
    for bug in &report.bugs {
        eprintln!("  KNOWN ENGINE BUG (reported, not fixed yet) {bug}");
    }
    if let Ok(path) = std::env::var("PIXELFLOW_FIDELITY_DUMP") {
        // Every case with both results, for looking into mismatches with other tools.
        let all: Vec<Value> = cases
            .iter()
            .zip(&oracle)
            .zip(&ours)
            .map(|((c, o), e)| {
                json!({
                    "name": c.name, "definition": c.definition, "input": c.input,
                    "oracle": o.to_json(), "ours": e.to_json(),
                    "mismatch": disagreement(o, e), "deviation": disagreement(o, e).and_then(|_| classify(c, o, e)).map(|c| c.join("+")),
                })
            })
            .collect();
        let file = format!("{path}.{label}.json");
        std::fs::write(&file, Value::Array(all).to_string()).expect("write PIXELFLOW_FIDELITY_DUMP");
        eprintln!("(every case and result written to {file})");
    }
    if !report.failures.is_empty() {
        for f in report.failures.iter().take(25) {
            eprintln!("{f}");
        }
        panic!("{} of {} cases mismatch the oracle with no known deviation to explain it (see above)", report.failures.len(), cases.len());
    }
}

fn describe(case: &Case, oracle: &Outcome, ours: &Outcome, why: &str) -> String {
    format!(
        "\n--- MISMATCH {}: {why}\ndefinition: {}\ninput: {}\noracle: {}\nours:   {}",
        case.name,
        case.definition,
        case.input,
        oracle.to_json(),
        ours.to_json()
    )
}

#[test]
fn generated_cases_match_the_oracle() {
    if !oracle_available() {
        return;
    }
    // PIXELFLOW_FIDELITY_SEED explores other batches; the default one is what CI checks.
    let seed = std::env::var("PIXELFLOW_FIDELITY_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(SEED);
    let cases = generate(seed, GENERATED_CASES);
    check_batch("generated", &format!("{} generated cases (seed {seed:#x})", cases.len()), &cases);
}

#[test]
fn hand_written_cases_match_the_oracle() {
    if !oracle_available() {
        return;
    }
    let cases = hand_written();
    check_batch("hand-written", &format!("{} hand-written cases", cases.len()), &cases);
}

/// Runs one case (`PIXELFLOW_FIDELITY_CASE=<file with {definition, input}>`) through both engines
/// and prints the outcomes and what each deviation makes of them, for looking into a mismatch:
/// `cargo test --test integration fidelity::explain -- --ignored --nocapture`.
#[test]
#[ignore]
fn explain() {
    let Ok(file) = std::env::var("PIXELFLOW_FIDELITY_CASE") else { return };
    let v: Value = serde_json::from_str(&std::fs::read_to_string(file).expect("case file")).expect("case JSON");
    let case = Case { name: "explain".into(), definition: v["definition"].clone(), input: v["input"].clone(), expect: Expect::Any };
    let oracle = run_oracle(std::slice::from_ref(&case)).remove(0);
    let ours = run_ours(&case);
    println!("oracle: {}\nours:   {}\nmismatch: {:?}", oracle.to_json(), ours.to_json(), disagreement(&oracle, &ours));
    for d in DEVIATIONS {
        match d.test {
            Test::Explain(f) => println!("{:<28} explains: {}", d.name, f(&case, &oracle, &ours)),
            Test::Emulate(rewrite) => {
                let mut definition = case.definition.clone();
                let mut changed = false;
                rewrite_states(&mut definition, &mut |s| changed |= rewrite(s));
                if changed {
                    let emulated = run_ours(&Case { definition: definition.clone(), ..case.clone() });
                    println!("{:<28} emulated: {}\n    definition: {definition}", d.name, emulated.to_json());
                }
            }
        }
    }
    println!("classified: {:?}", classify(&case, &oracle, &ours));
    if std::env::var("PIXELFLOW_FIDELITY_EVENTS").is_ok() {
        for e in history(&case) {
            let detail = e.detail.to_string();
            println!("  {:<28} {:<40} {}", e.kind, e.key, &detail[..detail.len().min(160)]);
        }
    }
}

/// Prints the generated batch as JSON for running the oracle by hand:
/// `cargo test --test integration fidelity::dump -- --ignored --nocapture`.
#[test]
#[ignore]
fn dump() {
    let cases: Vec<Value> = generate(SEED, GENERATED_CASES)
        .into_iter()
        .chain(hand_written())
        .map(|c| json!({ "name": c.name, "definition": c.definition, "input": c.input }))
        .collect();
    println!("{}", Value::Array(cases));
}

// ---------------------------------------------------------------------------------------------
// The generator
// ---------------------------------------------------------------------------------------------

fn generate(seed: u64, count: usize) -> Vec<Case> {
    let mut g = Gen { rng: StdRng::seed_from_u64(seed), counter: 0 };
    (0..count)
        .map(|i| {
            g.counter = 0;
            let input = g.input();
            let steps = g.int(1, 4) as usize;
            let definition = g.machine(&input, steps, 0, Scope::Top);
            Case { name: format!("generated #{i}"), definition, input, expect: Expect::Any }
        })
        .collect()
}

/// Where a state machine runs, which decides what its states may do.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Scope {
    Top,
    Branch,
    MapItem,
}

struct Gen {
    rng: StdRng,
    counter: usize,
}

/// A state machine under construction: states are added step by step, and the transitions that
/// lead out of the last step wait in `pending` (JSON pointers into `states`) for the next one.
struct Builder {
    states: Map<String, Value>,
    start: Option<String>,
    pending: Vec<String>,
}

impl Builder {
    fn new() -> Builder {
        Builder { states: Map::new(), start: None, pending: Vec::new() }
    }

    /// Adds a state and makes every pending transition go to it.
    fn add(&mut self, name: &str, state: Value) {
        self.link_to(name);
        self.states.insert(name.to_string(), state);
    }

    /// Adds a state that nothing pending goes to (a Choice target, a Fail reached from a Choice).
    fn add_detached(&mut self, name: &str, state: Value) {
        self.states.insert(name.to_string(), state);
    }

    fn link_to(&mut self, name: &str) {
        if self.start.is_none() {
            self.start = Some(name.to_string());
        }
        for p in std::mem::take(&mut self.pending) {
            if let Some(slot) = slot(&mut self.states, &p) {
                *slot = Value::String(name.to_string());
            }
        }
    }

    /// `name`'s `field` (a pointer suffix such as `/Next` or `/Catch/0/Next`) goes to the next step.
    fn pend(&mut self, name: &str, field: &str) {
        if field == "/Next" {
            if let Some(Value::Object(s)) = self.states.get_mut(name) {
                s.insert("Next".into(), Value::String(String::new()));
            }
        }
        self.pending.push(format!("/{name}{field}"));
    }

    fn definition(mut self) -> Value {
        // Whatever is still pending ends the machine.
        for p in std::mem::take(&mut self.pending) {
            let (state, field) = p[1..].split_once('/').unwrap_or((&p[1..], ""));
            if field == "Next" {
                if let Some(Value::Object(s)) = self.states.get_mut(state) {
                    s.remove("Next");
                    s.insert("End".into(), Value::Bool(true));
                }
            } else {
                // A Catch or Choice transition: give it a final state to go to.
                let end = format!("{state}_End");
                self.states.insert(end.clone(), json!({ "Type": "Succeed" }));
                if let Some(slot) = slot(&mut self.states, &p) {
                    *slot = Value::String(end);
                }
            }
        }
        json!({ "StartAt": self.start.unwrap_or_default(), "States": self.states })
    }

    /// The definition as it stands, every pending transition ending the machine: what the
    /// generator runs to learn the data the next step will see.
    fn snapshot(&self) -> Value {
        Builder { states: self.states.clone(), start: self.start.clone(), pending: self.pending.clone() }.definition()
    }
}

/// The value at JSON pointer `p` (`/<state>/<field>...`) of a States map.
fn slot<'a>(states: &'a mut Map<String, Value>, p: &str) -> Option<&'a mut Value> {
    let (state, rest) = p[1..].split_once('/')?;
    states.get_mut(state)?.pointer_mut(&format!("/{rest}"))
}

/// The output of `definition` on `input` as our engine computes it; the generator uses it only to
/// pick paths that exist (the comparison with the oracle is what checks it).
fn model(definition: &Value, input: &Value) -> Option<Value> {
    match pixelflow_engine::run_in_memory(definition, input.clone()) {
        Ok(Ok(v)) => Some(v),
        _ => None,
    }
}

const WORDS: &[&str] = &[
    "alpha", "beta", "gamma", "delta", "pixel", "image", "hdr", "raw", "thumb", "crop", "sepia", "café", "naïve", "日本",
    "x y", "a-b", "Zebra", "zebra", "10", "9", "", "alpha",
];

const ERROR_NAMES: &[&str] = &["Oops", "Custom.Error", "ImageTooLarge", "BadInput", "E"];

const TIMESTAMPS: &[&str] = &[
    "2024-03-01T10:00:00Z",
    "2024-03-01T10:00:00.5Z",
    "2024-03-01T12:00:00+02:00",
    "2023-12-31T23:59:59Z",
    "2025-06-15T08:30:00Z",
];

/// The reference paths to every value of `v` (down to `depth` levels), with the values.
fn paths_of(v: &Value, depth: usize) -> Vec<(String, Value)> {
    fn walk(v: &Value, path: String, depth: usize, out: &mut Vec<(String, Value)>) {
        out.push((path.clone(), v.clone()));
        if depth == 0 || is_caught_error(v) {
            return;
        }
        match v {
            Value::Object(map) => {
                for (k, child) in map {
                    // A caught error carries the interpreter's own wording (its Cause, see
                    // `cause_is_meaningful`) and, for some failures, a name that differs by design
                    // (INTRINSIC_FAILURE, PARAMETER_PATH_FAILURE): no path reads into one.
                    if is_caught_error(child) {
                        continue;
                    }
                    walk(child, child_path(&path, k), depth - 1, out);
                }
            }
            Value::Array(items) => {
                for (i, child) in items.iter().enumerate().take(3) {
                    walk(child, format!("{path}[{i}]"), depth - 1, out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(v, "$".to_string(), depth, &mut out);
    out
}

/// An `{"Error": ..., "Cause": ...}` object, as Catch writes it.
fn is_caught_error(v: &Value) -> bool {
    v.get("Error").is_some_and(Value::is_string) && v.get("Cause").is_some_and(Value::is_string)
}

/// Whether a caught error is anywhere inside `v`.
fn holds_caught_error(v: &Value) -> bool {
    is_caught_error(v)
        || match v {
            Value::Object(map) => map.values().any(holds_caught_error),
            Value::Array(items) => items.iter().any(holds_caught_error),
            _ => false,
        }
}

fn child_path(parent: &str, key: &str) -> String {
    let ident = !key.is_empty()
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !key.starts_with(|c: char| c.is_ascii_digit());
    if ident {
        format!("{parent}.{key}")
    } else {
        format!("{parent}['{key}']")
    }
}

fn is_timestamp(v: &Value) -> bool {
    v.as_str().is_some_and(|s| TIMESTAMPS.contains(&s))
}

/// Strings that are safe inside an intrinsic's quoted literal in both implementations.
fn literal_safe(s: &str) -> bool {
    !s.contains(['\'', '\\', '{', '}', '(', ')', ','])
}

fn base64(text: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = text.as_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

impl Gen {
    fn chance(&mut self, p: f64) -> bool {
        self.rng.random_bool(p)
    }

    fn int(&mut self, lo: i64, hi: i64) -> i64 {
        self.rng.random_range(lo..=hi)
    }

    fn pick<T: Clone>(&mut self, xs: &[T]) -> T {
        xs[self.rng.random_range(0..xs.len())].clone()
    }

    /// Picks an index by weight.
    fn weighted(&mut self, weights: &[u32]) -> usize {
        let total: u32 = weights.iter().sum();
        let mut x = self.rng.random_range(0..total);
        for (i, w) in weights.iter().enumerate() {
            if x < *w {
                return i;
            }
            x -= w;
        }
        weights.len() - 1
    }

    fn name(&mut self, prefix: &str) -> String {
        self.counter += 1;
        format!("{prefix}{}", self.counter)
    }

    fn word(&mut self) -> String {
        self.pick(WORDS).to_string()
    }

    fn safe_word(&mut self) -> String {
        loop {
            let w = self.word();
            if literal_safe(&w) && w.is_ascii() && !w.is_empty() {
                return w;
            }
        }
    }

    fn number(&mut self) -> Value {
        if self.chance(0.15) {
            json!(self.int(-40, 40) as f64 + 0.5)
        } else {
            json!(self.int(-100, 100))
        }
    }

    fn scalar(&mut self) -> Value {
        match self.weighted(&[4, 4, 2, 1]) {
            0 => Value::String(self.word()),
            1 => self.number(),
            2 => Value::Bool(self.chance(0.5)),
            _ => Value::Null,
        }
    }

    fn json_value(&mut self, depth: usize) -> Value {
        if depth == 0 || self.chance(0.5) {
            return self.scalar();
        }
        if self.chance(0.5) {
            let n = self.int(0, 3);
            Value::Array((0..n).map(|_| self.json_value(depth - 1)).collect())
        } else {
            let n = self.int(0, 3);
            let keys = ["k", "v", "w", "nested", "odd key"];
            Value::Object((0..n).map(|i| (keys[i as usize].to_string(), self.json_value(depth - 1))).collect())
        }
    }

    /// An execution input: mostly an object of known fields (each sometimes missing), now and
    /// then something else.
    fn input(&mut self) -> Value {
        match self.weighted(&[94, 2, 2, 2]) {
            1 => return json!([1, 2, 3]),
            2 => return json!(self.word()),
            3 => return self.number(),
            _ => {}
        }
        let mut o = Map::new();
        let word = self.word();
        o.insert("name".into(), json!(word));
        o.insert("n".into(), json!(self.int(-20, 50)));
        o.insert("m".into(), json!(self.int(0, 9)));
        o.insert("f".into(), json!(self.int(-10, 10) as f64 + 0.25));
        o.insert("flag".into(), json!(self.chance(0.5)));
        o.insert("nothing".into(), Value::Null);
        let tags: Vec<Value> = (0..self.int(0, 5)).map(|_| json!(self.safe_word())).collect();
        o.insert("tags".into(), Value::Array(tags));
        let nums: Vec<Value> = (0..self.int(0, 6)).map(|_| json!(self.int(-5, 20))).collect();
        o.insert("nums".into(), Value::Array(nums));
        let inner = json!({ "c": self.chance(0.5), "d": [self.int(0, 3), self.int(0, 3)], "e": self.word() });
        o.insert("obj".into(), json!({ "a": self.int(0, 10), "b": self.word(), "inner": inner }));
        let items: Vec<Value> = (0..self.int(0, 5))
            .map(|i| json!({ "id": i, "label": self.safe_word(), "v": self.int(0, 30), "ok": self.chance(0.7) }))
            .collect();
        o.insert("items".into(), Value::Array(items));
        o.insert("when".into(), json!(self.pick(TIMESTAMPS)));
        let csv: Vec<String> = (0..self.int(1, 4)).map(|_| self.safe_word()).collect();
        o.insert("csv".into(), json!(csv.join(",")));
        let small = json!({ "k": self.int(0, 9), "s": self.safe_word() });
        o.insert("json".into(), json!(small.to_string()));
        o.insert("b64".into(), json!(base64(&self.safe_word())));
        o.insert("extra".into(), json!({ "y": self.int(0, 5), "z": self.safe_word() }));
        o.insert("odd key".into(), json!(self.word()));
        o.insert("any".into(), self.json_value(2));
        // Drop a field now and then, so that paths sometimes miss.
        let keys: Vec<String> = o.keys().cloned().collect();
        for k in keys {
            if self.chance(0.03) {
                o.remove(&k);
            }
        }
        Value::Object(o)
    }

    /// A state machine of `steps` steps on an input like `input`, ended by a final state.
    fn machine(&mut self, input: &Value, steps: usize, depth: usize, scope: Scope) -> Value {
        let mut b = Builder::new();
        for _ in 0..steps {
            let Some(cur) = (if b.start.is_none() { Some(input.clone()) } else { model(&b.snapshot(), input) }) else {
                break; // the machine already fails: no point in adding to it
            };
            let arrays = paths_of(&cur, 3).into_iter().filter(|(_, v)| v.is_array()).count();
            let weights = [
                45,
                15,
                if depth < 2 && arrays > 0 { 14 } else { 0 },
                if depth < 2 { 10 } else { 0 },
                6,
            ];
            match self.weighted(&weights) {
                0 => {
                    let name = self.name("Pass");
                    let state = self.pass_state(&cur, scope);
                    b.add(&name, state);
                    b.pend(&name, "/Next");
                }
                1 => self.choice_step(&mut b, &cur, scope),
                2 => self.map_step(&mut b, input, &cur, depth, scope),
                3 => self.parallel_step(&mut b, input, &cur, depth, scope),
                _ => {
                    let name = self.name("Wait");
                    let state = self.wait_state(&cur);
                    b.add(&name, state);
                    b.pend(&name, "/Next");
                }
            }
        }
        // The final state.
        let cur = model(&b.snapshot(), input).unwrap_or_else(|| input.clone());
        let fail_weight = match scope {
            Scope::Top => 12,
            Scope::Branch => 15,
            Scope::MapItem => 6,
        };
        match self.weighted(&[45, 35, fail_weight]) {
            0 => {
                let name = self.name("Done");
                let mut s = json!({ "Type": "Succeed" });
                if self.chance(0.15) {
                    s["OutputPath"] = json!(self.existing_path(&cur));
                }
                if self.chance(0.05) {
                    s["InputPath"] = json!(self.existing_path(&cur));
                }
                b.add(&name, s);
            }
            1 => {
                let name = self.name("Last");
                let mut state = self.pass_state(&cur, scope);
                state["End"] = json!(true);
                b.add(&name, state);
            }
            _ => {
                let name = self.name("Fail");
                let state = self.fail_state(&cur, scope);
                b.add(&name, state);
            }
        }
        let mut def = b.definition();
        if self.chance(0.05) {
            def["Comment"] = json!("generated");
        }
        def
    }

    /// A path that exists in `v` (or `$`).
    fn existing_path(&mut self, v: &Value) -> String {
        let paths = paths_of(v, 3);
        self.pick(&paths).0
    }

    /// A path to a value of `v` that `want` accepts, if there is one.
    fn path_where(&mut self, v: &Value, want: impl Fn(&Value) -> bool) -> Option<String> {
        let paths: Vec<String> = paths_of(v, 3).into_iter().filter(|(_, x)| want(x)).map(|(p, _)| p).collect();
        (!paths.is_empty()).then(|| self.pick(&paths))
    }

    fn pass_state(&mut self, cur: &Value, scope: Scope) -> Value {
        let mut s = Map::new();
        s.insert("Type".into(), json!("Pass"));
        let mut effective = cur.clone();
        match self.weighted(&[240, 30, 9, 12, 2]) {
            1 => {
                if let Some(p) = self.path_where(cur, |v| v.is_object() || v.is_array()) {
                    effective = pixel_get(cur, &p).unwrap_or(Value::Null);
                    s.insert("InputPath".into(), json!(p));
                }
            }
            2 => {
                s.insert("InputPath".into(), json!("$"));
            }
            3 => {
                s.insert("InputPath".into(), Value::Null);
                effective = json!({});
            }
            4 => {
                s.insert("InputPath".into(), json!("$.missing"));
            }
            _ => {}
        }
        // Falsy Results and ResultPath "$" trip the oracle (PASS_FALSY_RESULT, RESULT_PATH_ROOT) and
        // can make a branch or item fail only there, racing with another one that fails in both:
        // only at the top level.
        let top = if scope == Scope::Top { 1 } else { 0 };
        match self.weighted(&[45, 22, 2 * top, 30]) {
            0 => {
                let t = self.template(&effective, 2, scope, false);
                s.insert("Parameters".into(), t);
            }
            1 => {
                let mut r = self.json_value(2);
                while is_falsy(&r) {
                    r = self.json_value(2);
                }
                s.insert("Result".into(), r);
            }
            2 => {
                let falsy = self.pick(&[json!(false), json!(0), json!(""), Value::Null]);
                s.insert("Result".into(), falsy);
            }
            _ => {}
        }
        let mut result_at = None;
        // Writing a result into data that is no object fails (States.ResultPathMatchFailure): let
        // that happen now and then, not whenever a state's output is an array or a string.
        let into = if cur.is_object() { 40 } else { 2 };
        match self.weighted(&[into, into / 4, 8, top, 40]) {
            0 => {
                let p = format!("$.r{}", self.counter);
                result_at = Some(p.clone());
                s.insert("ResultPath".into(), json!(p));
            }
            1 => {
                let p = format!("$.obj.r{}", self.counter);
                result_at = Some(p.clone());
                s.insert("ResultPath".into(), json!(p));
            }
            2 => {
                s.insert("ResultPath".into(), Value::Null);
            }
            3 => {
                s.insert("ResultPath".into(), json!("$"));
            }
            _ => {}
        }
        match self.weighted(&[85, 8, 4, 3]) {
            1 => {
                if let Some(p) = result_at {
                    s.insert("OutputPath".into(), json!(p));
                } else {
                    s.insert("OutputPath".into(), json!("$"));
                }
            }
            2 if s.get("ResultPath").is_some_and(Value::is_null) => {
                let p = self.existing_path(cur);
                s.insert("OutputPath".into(), json!(p));
            }
            3 => {
                s.insert("OutputPath".into(), Value::Null);
            }
            _ => {}
        }
        if self.chance(0.05) {
            s.insert("Comment".into(), json!("a pass state"));
        }
        Value::Object(s)
    }

    /// A payload template reading `input` (`$`), with paths, intrinsics and literals.
    fn template(&mut self, input: &Value, depth: usize, scope: Scope, in_map_selector: bool) -> Value {
        let mut t = Map::new();
        let n = self.int(1, 4);
        for i in 0..n {
            let key = format!("f{i}");
            match self.weighted(&[90, 90, 45, if depth > 0 { 30 } else { 0 }, if scope == Scope::Top { 12 } else { 0 }, 1]) {
                0 => {
                    let p = self.existing_path(input);
                    t.insert(format!("{key}.$"), json!(p));
                }
                1 => {
                    let e = self.intrinsic(input, 3);
                    t.insert(format!("{key}.$"), json!(e));
                }
                2 => {
                    let v = self.json_value(1);
                    t.insert(key, v);
                }
                3 => {
                    if self.chance(0.7) {
                        let inner = self.template(input, depth - 1, scope, in_map_selector);
                        t.insert(key, inner);
                    } else {
                        let a = self.template(input, depth - 1, scope, in_map_selector);
                        let b = self.json_value(1);
                        t.insert(key, json!([a, b]));
                    }
                }
                4 => {
                    let p = self.pick(&["$$.Execution.Id", "$$.Execution.Name", "$$.Execution.Input", "$$.StateMachine.Name"]);
                    t.insert(format!("{key}.$"), json!(p));
                }
                _ => {
                    t.insert(format!("{key}.$"), json!("$.missing.field"));
                }
            }
        }
        if in_map_selector {
            t.insert("index.$".into(), json!("$$.Map.Item.Index"));
            if self.chance(0.7) {
                t.insert("value.$".into(), json!("$$.Map.Item.Value"));
            }
            if self.chance(0.3) {
                t.insert("label.$".into(), json!("States.Format('item {}', $$.Map.Item.Index)"));
            }
        }
        Value::Object(t)
    }

    // --- intrinsic functions -----------------------------------------------------------------

    /// An intrinsic call on `input`, of any result type.
    fn intrinsic(&mut self, input: &Value, depth: usize) -> String {
        match self.weighted(&[5, 4, 5, 2, 1]) {
            0 => self.str_call(input, depth),
            1 => self.int_call(input, depth),
            2 => self.array_call(input, depth),
            3 => self.object_call(input, depth),
            _ => self.bool_call(input, depth),
        }
    }

    fn str_arg(&mut self, input: &Value, depth: usize) -> String {
        match self.weighted(&[3, 4, if depth > 0 { 2 } else { 0 }]) {
            0 => format!("'{}'", self.safe_word()),
            1 => match self.path_where(input, |v| v.as_str().is_some_and(|s| s.is_ascii() && !s.contains(['\\', '"']))) {
                Some(p) => p,
                None => format!("'{}'", self.safe_word()),
            },
            _ => self.str_call(input, depth - 1),
        }
    }

    fn int_arg(&mut self, input: &Value, depth: usize) -> String {
        match self.weighted(&[4, 3, if depth > 0 { 2 } else { 0 }]) {
            0 => self.int(-20, 20).to_string(),
            1 => match self.path_where(input, |v| v.is_i64()) {
                Some(p) => p,
                None => self.int(-20, 20).to_string(),
            },
            _ => self.int_call(input, depth - 1),
        }
    }

    fn array_arg(&mut self, input: &Value, depth: usize) -> String {
        match self.weighted(&[5, if depth > 0 { 3 } else { 0 }]) {
            0 => match self.path_where(input, |v| v.is_array() && !holds_caught_error(v)) {
                Some(p) => p,
                None => "States.Array(1, 2, 2)".to_string(),
            },
            _ => self.array_call(input, depth - 1),
        }
    }

    fn object_arg(&mut self, input: &Value, depth: usize) -> String {
        match self.weighted(&[5, if depth > 0 { 2 } else { 0 }]) {
            0 => match self.path_where(input, |v| v.is_object() && !holds_caught_error(v)) {
                Some(p) => p,
                None => "States.StringToJson('{\"k\": 1}')".to_string(),
            },
            _ => self.object_call(input, depth - 1),
        }
    }

    fn scalar_arg(&mut self, input: &Value, depth: usize) -> String {
        match self.weighted(&[3, 3, 1, 1, 3]) {
            0 => self.str_arg(input, depth),
            1 => self.int_arg(input, depth),
            2 => self.pick(&["true", "false"]).to_string(),
            3 => "null".to_string(),
            _ => match self.path_where(input, |v| !v.is_object() && !v.is_array() && !v.as_str().is_some_and(|s| s.contains('\\'))) {
                Some(p) => p,
                None => "1".to_string(),
            },
        }
    }

    fn str_call(&mut self, input: &Value, depth: usize) -> String {
        match self.weighted(&[6, 3, 2, 2, 1]) {
            0 => {
                let n = self.int(0, 3);
                let words: Vec<String> = (0..=n).map(|_| self.safe_word()).collect();
                let template = words.join(" {} ");
                let args: Vec<String> = (0..n).map(|_| self.scalar_arg(input, depth)).collect();
                let mut call = format!("States.Format('{template}'");
                for a in args {
                    call.push_str(", ");
                    call.push_str(&a);
                }
                call.push(')');
                call
            }
            1 => {
                // Quotes inside would come out escaped, which the oracle mangles
                // (INTRINSIC_BACKSLASHES): pick values without, nearly always.
                let plain = |v: &Value| !v.to_string().contains("\\") && !holds_caught_error(v);
                let arg = match self.weighted(&[2, 2, 1, 1]) {
                    0 => self.path_where(input, |v| v.is_object() && plain(v)).unwrap_or_else(|| self.object_arg(input, depth)),
                    1 => self.path_where(input, |v| v.is_array() && plain(v)).unwrap_or_else(|| self.array_arg(input, depth)),
                    2 if self.chance(0.1) => self.object_arg(input, depth),
                    _ => self.scalar_arg(input, depth),
                };
                format!("States.JsonToString({arg})")
            }
            2 => format!("States.Base64Encode({})", self.str_arg(input, depth)),
            3 => {
                let algorithm = self.pick(&["MD5", "SHA-1", "SHA-256", "SHA-384", "SHA-512"]);
                // The oracle's digests are wrong from 56 bytes on (HASH_LONG_INPUT): short data only.
                let data = match self.path_where(input, |v| v.as_str().is_some_and(|s| s.len() < 56 && !s.contains(['\\', '"']))) {
                    Some(p) if self.chance(0.6) => p,
                    _ => format!("'{}'", self.safe_word()),
                };
                format!("States.Hash({data}, '{algorithm}')")
            }
            _ => match self.path_where(input, |v| v.as_str().is_some_and(|s| s.len() % 4 == 0 && s.ends_with('='))) {
                Some(p) => format!("States.Base64Decode({p})"),
                None => format!("States.Base64Decode('{}')", base64(&self.safe_word())),
            },
        }
    }

    fn int_call(&mut self, input: &Value, depth: usize) -> String {
        match self.weighted(&[3, 3]) {
            0 => format!("States.MathAdd({}, {})", self.int_arg(input, depth), self.int_arg(input, depth)),
            _ => format!("States.ArrayLength({})", self.array_arg(input, depth)),
        }
    }

    fn array_call(&mut self, input: &Value, depth: usize) -> String {
        match self.weighted(&[3, 3, 3, 2, 2, 2, 2]) {
            0 => {
                let n = self.int(0, 4);
                let args: Vec<String> = (0..n)
                    .map(|_| match self.weighted(&[4, 1, 1]) {
                        0 => self.scalar_arg(input, depth),
                        1 => self.array_arg(input, depth),
                        _ => self.object_arg(input, depth),
                    })
                    .collect();
                format!("States.Array({})", args.join(", "))
            }
            1 => format!("States.ArrayPartition({}, {})", self.array_arg(input, depth), self.int(1, 4)),
            2 => {
                let start = self.int(-5, 10);
                let end = self.int(-5, 15);
                let step = if self.chance(0.5) { self.int(1, 4) } else { -self.int(1, 3) };
                format!("States.ArrayRange({start}, {end}, {step})")
            }
            3 => format!("States.ArrayUnique({})", self.array_arg(input, depth)),
            4 => {
                // JavaScript's split keeps empty parts (STRING_SPLIT): split a known string at a
                // character that makes none, nearly always.
                let strings: Vec<(String, String)> = paths_of(input, 3)
                    .into_iter()
                    .filter_map(|(p, v)| v.as_str().filter(|s| !s.is_empty() && literal_safe(s)).map(|s| (p, s.to_string())))
                    .collect();
                if strings.is_empty() || self.chance(0.05) {
                    let sep = self.pick(&[",", " ", "a", "-"]);
                    return format!("States.StringSplit({}, '{sep}')", self.str_arg(input, depth));
                }
                let (p, text) = self.pick(&strings);
                let chars: Vec<char> = text.chars().collect();
                let clean = |c: char| {
                    literal_safe(&c.to_string())
                        && chars.first() != Some(&c)
                        && chars.last() != Some(&c)
                        && !chars.windows(2).any(|w| w[0] == c && w[1] == c)
                };
                let candidates: Vec<char> = [',', ' ', 'a', '-', 'e'].into_iter().filter(|c| clean(*c)).collect();
                let sep = if candidates.is_empty() { '|' } else { self.pick(&candidates) };
                format!("States.StringSplit({p}, '{sep}')")
            }
            5 => {
                // ArrayGetItem of an array of arrays, so that the result is an array.
                format!("States.ArrayGetItem(States.ArrayPartition({}, 2), 0)", self.array_arg(input, depth))
            }
            _ => match self.path_where(input, |v| v.as_str().is_some_and(|s| s.contains(','))) {
                Some(p) => format!("States.StringSplit({p}, ',')"),
                None => "States.StringSplit('a,b,c', ',')".to_string(),
            },
        }
    }

    fn object_call(&mut self, input: &Value, depth: usize) -> String {
        match self.weighted(&[3, 2]) {
            0 => {
                // The oracle merges into its first argument (JSON_MERGE_MUTATES_INPUT): a path there
                // only now and then.
                let first = if self.chance(0.1) {
                    self.object_arg(input, depth)
                } else if depth > 0 && self.chance(0.3) {
                    self.object_call(input, depth - 1)
                } else {
                    match self.path_where(input, |v| v.as_str().is_some_and(|s| s.starts_with('{'))) {
                        Some(p) => format!("States.StringToJson({p})"),
                        None => "States.StringToJson('{\"k\": 1}')".to_string(),
                    }
                };
                format!("States.JsonMerge({first}, {}, false)", self.object_arg(input, depth))
            }
            _ => match self.path_where(input, |v| v.as_str().is_some_and(|s| s.starts_with('{'))) {
                Some(p) => format!("States.StringToJson({p})"),
                None => "States.StringToJson('{\"k\": [1, 2]}')".to_string(),
            },
        }
    }

    fn bool_call(&mut self, input: &Value, depth: usize) -> String {
        let array = self.array_arg(input, depth);
        let needle = self.scalar_arg(input, depth);
        format!("States.ArrayContains({array}, {needle})")
    }

    // --- Choice --------------------------------------------------------------------------------

    fn choice_step(&mut self, b: &mut Builder, cur: &Value, scope: Scope) {
        let name = self.name("Choice");
        let mut state = json!({ "Type": "Choice", "Choices": [] });
        let mut effective = cur.clone();
        if self.chance(0.08) {
            if let Some(p) = self.path_where(cur, Value::is_object) {
                effective = pixel_get(cur, &p).unwrap_or(Value::Null);
                state["InputPath"] = json!(p);
            }
        }
        let rules = self.int(1, 3);
        let mut targets = Vec::new();
        // Where the route goes: into the data when it is an object, else nowhere.
        let route = if cur.is_object() || self.chance(0.1) { json!("$.route") } else { Value::Null };
        for k in 0..rules {
            let target = self.name("Route");
            let mut rule = self.rule(&effective, 0, scope);
            rule["Next"] = json!(target);
            state["Choices"].as_array_mut().expect("choices").push(rule);
            targets.push((target, json!({ "Type": "Pass", "Result": format!("route {k}"), "ResultPath": route, "Next": "" })));
        }
        match self.weighted(&[75, if scope == Scope::MapItem { 4 } else { 10 }, 15]) {
            0 => {
                let target = self.name("Otherwise");
                state["Default"] = json!(target);
                targets.push((target, json!({ "Type": "Pass", "Result": "default", "ResultPath": route, "Next": "" })));
            }
            1 => {
                let target = self.name("Reject");
                state["Default"] = json!(target);
                let fail = self.fail_state(&effective, scope);
                b.add_detached(&target, fail);
            }
            _ => {}
        }
        if self.chance(0.05) {
            state["OutputPath"] = json!("$");
        }
        b.add(&name, state);
        for (target, s) in targets {
            b.add_detached(&target, s);
            b.pend(&target, "/Next");
        }
    }

    fn rule(&mut self, input: &Value, depth: usize, scope: Scope) -> Value {
        if depth < 2 && self.chance(0.25) {
            return match self.weighted(&[2, 2, 1]) {
                0 => json!({ "And": (0..self.int(1, 3)).map(|_| self.rule(input, depth + 1, scope)).collect::<Vec<_>>() }),
                1 => json!({ "Or": (0..self.int(1, 3)).map(|_| self.rule(input, depth + 1, scope)).collect::<Vec<_>>() }),
                _ => json!({ "Not": self.rule(input, depth + 1, scope) }),
            };
        }
        self.comparison(input, scope)
    }

    fn comparison(&mut self, input: &Value, scope: Scope) -> Value {
        let paths = paths_of(input, 3);
        let (variable, value) = self.pick(&paths);
        let roll = self.weighted(&[1, 6, 12, 79]);
        if roll == 0 {
            // A variable that is not there.
            let op = self.pick(&["StringEquals", "NumericGreaterThan", "IsNull", "BooleanEquals"]);
            let operand = match op {
                "StringEquals" => json!("x"),
                "NumericGreaterThan" => json!(1),
                _ => json!(true),
            };
            return json!({ "Variable": "$.absent", op: operand });
        }
        if roll == 1 {
            let (variable, _) = self.pick(&paths);
            let variable = if self.chance(0.4) { "$.absent".to_string() } else { variable };
            // `IsX: false` is always false in the oracle (IS_TEST_FALSE); in a branch that could make
            // a failure race with another: only at the top level.
            let expected = scope != Scope::Top || self.chance(0.85);
            return json!({ "Variable": variable, "IsPresent": expected });
        }
        if roll == 2 {
            let op = self.pick(&["IsNull", "IsNumeric", "IsString", "IsBoolean", "IsTimestamp"]);
            let expected = scope != Scope::Top || self.chance(0.85);
            return json!({ "Variable": variable, op: expected });
        }
        // A typed comparison, usually of the variable's own type. Other types make the oracle
        // coerce or crash (CHOICE_TYPE_MISMATCH); in a branch or Map item such a crash would race
        // with other failures, so there only equality (no coercion) meets other types.
        let nested = scope != Scope::Top;
        let same_type = nested || self.chance(0.92);
        let kind = if same_type {
            match &value {
                Value::String(_) if is_timestamp(&value) && self.chance(0.6) => "Timestamp",
                Value::String(_) => "String",
                Value::Number(_) => "Numeric",
                Value::Bool(_) => "Boolean",
                _ => self.pick(&["String", "Numeric", "Boolean"]),
            }
        } else {
            self.pick(&["String", "Numeric", "Boolean", "Timestamp"])
        };
        let scalar = matches!(value, Value::String(_) | Value::Number(_) | Value::Bool(_));
        let relation = match kind {
            "Boolean" => "Equals",
            _ if nested && !scalar => "Equals",
            _ => self.pick(&["Equals", "Equals", "LessThan", "GreaterThan", "LessThanEquals", "GreaterThanEquals"]),
        };
        // A *Path operand compares with another value of the input.
        if self.chance(0.2) {
            let wanted = |v: &Value| match kind {
                "String" => v.is_string(),
                "Numeric" => v.is_number(),
                "Boolean" => v.is_boolean(),
                _ => is_timestamp(v),
            };
            if let Some(p) = self.path_where(input, wanted) {
                return json!({ "Variable": variable, format!("{kind}{relation}Path"): p });
            }
        }
        if kind == "String" && (value.is_string() || !nested) && self.chance(0.2) {
            let s = value.as_str().unwrap_or("abc");
            let chars: Vec<char> = s.chars().collect();
            let cut = if chars.is_empty() { 0 } else { self.int(0, chars.len() as i64) as usize };
            let prefix: String = chars[..cut].iter().collect();
            let suffix: String = chars[cut..].iter().collect();
            let pattern = match self.weighted(&[2, 2, 1, 1, 1]) {
                0 => format!("{prefix}*"),
                1 => format!("*{suffix}"),
                2 => s.to_string(),
                3 => format!("{prefix}*{}", self.safe_word()),
                _ => "*".to_string(),
            };
            return json!({ "Variable": variable, "StringMatches": pattern });
        }
        let operand = match kind {
            "String" => {
                if self.chance(0.4) {
                    value.clone().as_str().map(|s| json!(s)).unwrap_or_else(|| json!(self.word()))
                } else {
                    json!(self.word())
                }
            }
            "Numeric" => match value.as_f64() {
                Some(x) if self.chance(0.6) => {
                    let delta = self.pick(&[0.0, 1.0, -1.0, 0.5]);
                    if delta == 0.5 {
                        json!(x + 0.5)
                    } else if x.fract() == 0.0 {
                        json!((x + delta) as i64)
                    } else {
                        json!(x + delta)
                    }
                }
                _ => self.number(),
            },
            "Boolean" => json!(self.chance(0.5)),
            _ => json!(self.pick(TIMESTAMPS)),
        };
        json!({ "Variable": variable, format!("{kind}{relation}"): operand })
    }

    // --- Fail, Wait ----------------------------------------------------------------------------

    fn fail_state(&mut self, cur: &Value, scope: Scope) -> Value {
        let mut s = json!({ "Type": "Fail" });
        // Inside a Map whose items run at once, which item fails first is a race: keep the error
        // and cause the same for every item.
        let per_item = scope != Scope::MapItem;
        match self.weighted(&[75, if per_item { 20 } else { 0 }, 2]) {
            0 => s["Error"] = json!(self.pick(ERROR_NAMES)),
            1 => match self.path_where(cur, |v| v.as_str().is_some_and(|s| !s.is_empty() && !s.starts_with("States."))) {
                Some(p) if self.chance(0.9) => s["ErrorPath"] = json!(p),
                _ => s["ErrorPath"] = json!(self.existing_path(cur)),
            },
            _ => {}
        }
        match self.weighted(&[60, if per_item { 25 } else { 0 }, 4]) {
            0 => s["Cause"] = json!(format!("because {}", self.word())),
            1 => match self.path_where(cur, Value::is_string) {
                Some(p) => s["CausePath"] = json!(p),
                None => s["CausePath"] = json!(self.existing_path(cur)),
            },
            _ => {}
        }
        s
    }

    fn wait_state(&mut self, cur: &Value) -> Value {
        let mut s = match self.weighted(&[4, 2, 1, 1]) {
            0 => json!({ "Type": "Wait", "Seconds": self.int(0, 2) }),
            1 => match self.path_where(cur, |v| v.as_i64().is_some_and(|n| n >= 0)) {
                Some(p) => json!({ "Type": "Wait", "SecondsPath": p }),
                None => json!({ "Type": "Wait", "Seconds": 0 }),
            },
            2 => json!({ "Type": "Wait", "Timestamp": "2020-01-01T00:00:00Z" }),
            _ => match self.path_where(cur, is_timestamp) {
                Some(p) => json!({ "Type": "Wait", "TimestampPath": p }),
                None => json!({ "Type": "Wait", "Seconds": 1 }),
            },
        };
        if self.chance(0.1) {
            s["OutputPath"] = json!(self.existing_path(cur));
        }
        s
    }

    // --- Map and Parallel ----------------------------------------------------------------------

    /// Error handling of a Parallel or Map state whose branches may fail with `errors`.
    /// Returns whether a catcher was added (its Next goes to the next step).
    fn error_handling(&mut self, state: &mut Value, cur: &Value, errors: &[String], scope: Scope) -> bool {
        if self.chance(0.2) {
            let equals = if errors.is_empty() || self.chance(0.5) { json!(["States.ALL"]) } else { json!([self.pick(errors)]) };
            state["Retry"] = json!([{ "ErrorEquals": equals, "MaxAttempts": self.int(0, 2), "IntervalSeconds": 1, "BackoffRate": 1.5 }]);
        }
        if self.chance(0.6) {
            let equals = match self.weighted(&[5, if errors.is_empty() { 0 } else { 3 }, 2]) {
                0 => json!(["States.ALL"]),
                1 => json!([self.pick(errors)]),
                _ => json!(["NoSuchError"]),
            };
            let mut catcher = json!({ "ErrorEquals": equals, "Next": "" });
            let into = if cur.is_object() { 50 } else { 3 };
            match self.weighted(&[into, 30, 10, if scope == Scope::Top { 2 } else { 0 }]) {
                0 => catcher["ResultPath"] = json!("$.caught"),
                2 => catcher["ResultPath"] = Value::Null,
                3 => catcher["ResultPath"] = json!("$"),
                _ => {}
            }
            state["Catch"] = json!([catcher]);
            return true;
        }
        false
    }

    fn result_handling(&mut self, state: &mut Value, cur: &Value, map: bool, scope: Scope) {
        if self.chance(0.25) {
            state["ResultSelector"] = if map && self.chance(0.5) {
                json!({ "all.$": "$", "count.$": "States.ArrayLength($)" })
            } else if self.chance(0.5) {
                json!({ "first.$": "$[0]", "fixed": "yes" })
            } else {
                json!({ "everything.$": "$" })
            };
        }
        let into = if cur.is_object() { 40 } else { 3 };
        match self.weighted(&[into, 35, 8, if scope == Scope::Top { 2 } else { 0 }]) {
            0 => state["ResultPath"] = json!("$.results"),
            2 => state["ResultPath"] = Value::Null,
            3 => state["ResultPath"] = json!("$"),
            _ => {}
        }
        if self.chance(0.08) {
            state["OutputPath"] = json!(self.existing_path(cur));
        }
    }

    /// The error names a machine can raise from its Fail states (literal `Error`s only).
    fn fail_errors(machine: &Value, out: &mut Vec<String>) {
        if let Some(states) = machine.get("States").and_then(Value::as_object) {
            for s in states.values() {
                if let Some(e) = s.get("Error").and_then(Value::as_str) {
                    out.push(e.to_string());
                }
                for b in s.get("Branches").and_then(Value::as_array).into_iter().flatten() {
                    Self::fail_errors(b, out);
                }
                if let Some(p) = s.get("ItemProcessor").or_else(|| s.get("Iterator")) {
                    Self::fail_errors(p, out);
                }
            }
        }
    }

    fn map_step(&mut self, b: &mut Builder, input: &Value, cur: &Value, depth: usize, scope: Scope) {
        let Some(items_path) = self.path_where(cur, |v| v.as_array().is_some_and(|a| a.len() <= 6)) else {
            let name = self.name("Pass");
            let state = self.pass_state(cur, scope);
            b.add(&name, state);
            b.pend(&name, "/Next");
            return;
        };
        let name = self.name("Map");
        let mut state = json!({ "Type": "Map" });
        if items_path != "$" || self.chance(0.5) {
            state["ItemsPath"] = json!(items_path);
        }
        let selector = self.chance(0.55).then(|| self.template(cur, 1, Scope::MapItem, true));
        if let Some(sel) = &selector {
            let field = if self.chance(0.8) { "ItemSelector" } else { "Parameters" };
            state[field] = sel.clone();
        }
        // What one item's machine sees: the first item, as the selector makes it.
        let probe = {
            let mut p = state.clone();
            p["ItemProcessor"] = json!({ "StartAt": "P", "States": { "P": { "Type": "Pass", "End": true } } });
            let mut probe = Builder { states: b.states.clone(), start: b.start.clone(), pending: b.pending.clone() };
            probe.add("__probe", p);
            probe.pend("__probe", "/Next");
            model(&probe.definition(), input)
        };
        let item = probe.as_ref().and_then(|v| v.as_array()).and_then(|a| a.first().cloned()).unwrap_or(json!({}));
        let steps = self.int(1, 2) as usize;
        let processor = self.machine(&item, steps, depth + 1, Scope::MapItem);
        let mut errors = Vec::new();
        Self::fail_errors(&processor, &mut errors);
        let field = if self.chance(0.85) { "ItemProcessor" } else { "Iterator" };
        state[field] = processor;
        if field == "ItemProcessor" && self.chance(0.2) {
            state[field]["ProcessorConfig"] = json!({ "Mode": "INLINE" });
        }
        match self.weighted(&[5, 2, 3, 2]) {
            1 => state["MaxConcurrency"] = json!(0),
            2 => state["MaxConcurrency"] = json!(1),
            3 => state["MaxConcurrency"] = json!(self.int(2, 3)),
            _ => {}
        }
        self.result_handling(&mut state, cur, true, scope);
        let caught = self.error_handling(&mut state, cur, &errors, scope);
        // When items fail, which one fails first decides the error; run them one at a time then,
        // so that both engines report the first failing item.
        let mut probe = Builder { states: b.states.clone(), start: b.start.clone(), pending: Vec::new() };
        let mut lone = state.clone();
        if let Some(o) = lone.as_object_mut() {
            o.remove("Catch");
            o.remove("Retry");
            o.remove("ResultSelector");
            o.remove("OutputPath");
            o.remove("ResultPath");
        }
        probe.pending = b.pending.clone();
        probe.add("__probe", lone);
        probe.pend("__probe", "/Next");
        if model(&probe.definition(), input).is_none() {
            state["MaxConcurrency"] = json!(1);
        }
        b.add(&name, state);
        b.pend(&name, "/Next");
        if caught {
            b.pend(&name, "/Catch/0/Next");
        }
    }

    fn parallel_step(&mut self, b: &mut Builder, input: &Value, cur: &Value, depth: usize, scope: Scope) {
        let name = self.name("Parallel");
        let mut state = json!({ "Type": "Parallel", "Branches": [] });
        let mut effective = cur.clone();
        if self.chance(0.25) {
            let t = self.template(cur, 1, scope, false);
            state["Parameters"] = t;
            let mut probe = Builder { states: b.states.clone(), start: b.start.clone(), pending: b.pending.clone() };
            probe.add("__probe", json!({ "Type": "Pass", "Parameters": state["Parameters"].clone(), "End": true }));
            effective = model(&probe.definition(), input).unwrap_or(json!({}));
        }
        let n = self.int(1, 3);
        let mut failing = 0;
        let mut errors = Vec::new();
        for _ in 0..n {
            let steps = self.int(1, 2) as usize;
            let mut branch = self.machine(&effective, steps, depth + 1, Scope::Branch);
            // Two failing branches would race to fail the state: keep one.
            if model(&branch, &effective).is_none() {
                failing += 1;
                if failing > 1 {
                    let p = self.name("Pass");
                    branch = json!({ "StartAt": p, "States": { p.clone(): { "Type": "Pass", "Result": "spare", "End": true } } });
                }
            }
            Self::fail_errors(&branch, &mut errors);
            state["Branches"].as_array_mut().expect("branches").push(branch);
        }
        self.result_handling(&mut state, cur, false, scope);
        let caught = self.error_handling(&mut state, cur, &errors, scope);
        b.add(&name, state);
        b.pend(&name, "/Next");
        if caught {
            b.pend(&name, "/Catch/0/Next");
        }
    }
}

/// The value at a reference path made by [`paths_of`].
fn pixel_get(v: &Value, path: &str) -> Option<Value> {
    paths_of(v, 3).into_iter().find(|(p, _)| p == path).map(|(_, v)| v)
}

// ---------------------------------------------------------------------------------------------
// Hand-written cases
// ---------------------------------------------------------------------------------------------

fn pass(fields: Value) -> Value {
    let mut s = json!({ "Type": "Pass", "End": true });
    for (k, v) in fields.as_object().expect("fields").clone() {
        s[k] = v;
    }
    json!({ "StartAt": "A", "States": { "A": s } })
}

fn hand(name: &str, definition: Value, input: Value) -> Case {
    Case { name: name.to_string(), definition, input, expect: Expect::Agree }
}

fn known(name: &str, deviation: &'static str, definition: Value, input: Value) -> Case {
    Case { name: name.to_string(), definition, input, expect: Expect::Deviation(deviation) }
}

#[allow(dead_code)]
fn engine_bug(name: &str, bug: &'static str, definition: Value, input: Value) -> Case {
    Case { name: name.to_string(), definition, input, expect: Expect::EngineBug(bug) }
}

/// A machine of one Choice state routing to Pass states that record the route.
fn choice(rules: Value, default: bool) -> Value {
    let mut states = Map::new();
    let mut choices = Vec::new();
    for (i, rule) in rules.as_array().expect("rules").iter().enumerate() {
        let mut rule = rule.clone();
        rule["Next"] = json!(format!("R{i}"));
        choices.push(rule);
        states.insert(format!("R{i}"), json!({ "Type": "Pass", "Result": format!("route {i}"), "ResultPath": "$.route", "End": true }));
    }
    let mut c = json!({ "Type": "Choice", "Choices": choices });
    if default {
        c["Default"] = json!("Other");
        states.insert("Other".into(), json!({ "Type": "Pass", "Result": "other", "ResultPath": "$.route", "End": true }));
    }
    states.insert("C".into(), c);
    json!({ "StartAt": "C", "States": states })
}

/// A machine of one Pass state computing `params`.
fn params(p: Value) -> Value {
    pass(json!({ "Parameters": p }))
}

/// A Parallel state (Catch on States.ALL into $.error) around `branches`.
fn parallel_catching(branches: Value) -> Value {
    json!({ "StartAt": "P", "States": {
        "P": { "Type": "Parallel", "Branches": branches, "ResultPath": "$.results",
               "Catch": [{ "ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Done" }], "Next": "Done" },
        "Done": { "Type": "Succeed" },
    }})
}

fn fail_branch(error: &str, cause: &str) -> Value {
    json!({ "StartAt": "F", "States": { "F": { "Type": "Fail", "Error": error, "Cause": cause } } })
}

fn pass_branch(name: &str, result: Value) -> Value {
    json!({ "StartAt": name, "States": { name: { "Type": "Pass", "Result": result, "End": true } } })
}

fn hand_written() -> Vec<Case> {
    let doc = json!({
        "name": "pixel", "n": 7, "f": 2.5, "flag": true, "nothing": null, "when": "2024-03-01T12:00:00+02:00",
        "tags": ["hdr", "raw", "hdr"], "nums": [3, 1, 2], "obj": { "a": 1, "b": { "c": [1, 2] } },
        "items": [{ "id": 1, "v": 5 }, { "id": 2, "v": 15 }, { "id": 3, "v": 25 }], "csv": "a,b,c",
        "quoted": "say \"hi\"", "json": "{\"k\": [1, 2], \"s\": \"x\"}", "odd key": "spaced",
    });
    let d = || doc.clone();
    vec![
        // --- paths and results --------------------------------------------------------------
        hand("pass through", pass(json!({})), d()),
        hand("result at a new nested path", pass(json!({ "Result": { "x": [1, 2] }, "ResultPath": "$.a.b.c" })), d()),
        hand("result replaces an array item", pass(json!({ "Result": "new", "ResultPath": "$.nums[1]" })), d()),

        hand("ResultPath null keeps the input", pass(json!({ "Result": 1, "ResultPath": null })), d()),
        hand("InputPath null gives {}", pass(json!({ "InputPath": null, "Parameters": { "k": 1 } })), d()),
        hand("OutputPath null gives {}", pass(json!({ "OutputPath": null })), d()),
        hand("InputPath, Parameters, ResultPath, OutputPath", pass(json!({
            "InputPath": "$.obj", "Parameters": { "a.$": "$.a", "c.$": "$.b.c[1]", "lit": [1, { "x.$": "$.a" }] },
            "ResultPath": "$.out", "OutputPath": "$.out" })), d()),
        hand("missing InputPath fails", pass(json!({ "InputPath": "$.nope" })), d()),
        hand("missing OutputPath fails", pass(json!({ "OutputPath": "$.nope" })), d()),
        hand("ResultPath on a non-object input fails", pass(json!({ "Result": 1, "ResultPath": "$.x" })), json!([1, 2])),
        hand("array and scalar inputs pass through", pass(json!({ "OutputPath": "$[1]" })), json!(["a", "b"])),
        hand("context object", params(json!({ "id.$": "$$.Execution.Id", "name.$": "$$.Execution.Name",
            "input.$": "$$.Execution.Input.obj", "machine.$": "$$.StateMachine.Name" })), d()),
        hand("Wait paths", json!({ "StartAt": "W", "States": {
            "W": { "Type": "Wait", "SecondsPath": "$.n", "Next": "T" },
            "T": { "Type": "Wait", "TimestampPath": "$.when", "OutputPath": "$.obj", "End": true } } }), d()),
        // --- Choice -----------------------------------------------------------------------------
        hand("string comparisons", choice(json!([
            { "Variable": "$.name", "StringLessThan": "pixea" },
            { "And": [{ "Variable": "$.name", "StringGreaterThanEquals": "pixel" }, { "Variable": "$.name", "StringLessThanEquals": "pixel" }] },
        ]), true), d()),
        hand("string matches", choice(json!([
            { "Variable": "$.name", "StringMatches": "p*l" }, { "Variable": "$.name", "StringMatches": "*x" },
        ]), true), d()),
        hand("numeric comparisons across int and float", choice(json!([
            { "Variable": "$.f", "NumericEquals": 2.50 },
            { "Variable": "$.n", "NumericGreaterThan": 6.5 },
        ]), true), d()),
        hand("numeric path operands", choice(json!([
            { "Variable": "$.nums[0]", "NumericGreaterThanPath": "$.nums[1]" },
        ]), true), d()),
        hand("boolean and null tests", choice(json!([
            { "And": [{ "Variable": "$.flag", "BooleanEquals": true }, { "Variable": "$.nothing", "IsNull": true },
                      { "Variable": "$.name", "IsString": true }, { "Variable": "$.f", "IsNumeric": true },
                      { "Variable": "$.flag", "IsBoolean": true }, { "Variable": "$.when", "IsTimestamp": true }] },
        ]), true), d()),
        hand("timestamps compare as instants", choice(json!([
            { "Variable": "$.when", "TimestampEquals": "2024-03-01T10:00:00Z" },
        ]), true), d()),
        hand("Not and Or", choice(json!([
            { "Not": { "Or": [{ "Variable": "$.n", "NumericLessThan": 0 }, { "Variable": "$.absent", "IsPresent": true }] } },
        ]), true), d()),
        hand("no rule matches: Default", choice(json!([{ "Variable": "$.n", "NumericEquals": 0 }]), true), d()),
        hand("no rule matches, no Default", choice(json!([{ "Variable": "$.n", "NumericEquals": 0 }]), false), d()),
        hand("a missing Variable fails", choice(json!([{ "Variable": "$.absent", "StringEquals": "x" }]), true), d()),
        hand("IsPresent guards a missing Variable", choice(json!([
            { "And": [{ "Variable": "$.absent", "IsPresent": true }, { "Variable": "$.absent", "StringEquals": "x" }] },
        ]), true), d()),
        hand("equality with another type is false", choice(json!([
            { "Variable": "$.n", "StringEquals": "7" }, { "Variable": "$.name", "NumericEquals": 7 },
        ]), true), d()),
        // --- Fail -----------------------------------------------------------------------------
        hand("Fail with Error and Cause", json!({ "StartAt": "F", "States": { "F": { "Type": "Fail", "Error": "Boom", "Cause": "it broke" } } }), d()),
        hand("Fail with ErrorPath and CausePath", json!({ "StartAt": "F", "States": {
            "F": { "Type": "Fail", "ErrorPath": "$.name", "CausePath": "$.quoted" } } }), d()),
        hand("Fail with an ErrorPath that is no string", json!({ "StartAt": "F", "States": {
            "F": { "Type": "Fail", "ErrorPath": "$.n", "Cause": "c" } } }), d()),
        // --- Parallel and Map -------------------------------------------------------------------
        hand("Parallel results in branch order", json!({ "StartAt": "P", "States": { "P": { "Type": "Parallel", "End": true,
            "Branches": [pass_branch("B1", json!(1)), pass_branch("B2", json!({ "two": 2 })),
                         json!({ "StartAt": "X", "States": { "X": { "Type": "Pass", "InputPath": "$.obj", "End": true } } })],
            "ResultSelector": { "first.$": "$[0]", "all.$": "$" } } } }), d()),
        hand("Catch a Fail inside a branch", parallel_catching(json!([pass_branch("B1", json!(1)), fail_branch("Bad", "very bad")])), d()),
        hand("Catch by name, Retry first", json!({ "StartAt": "P", "States": {
            "P": { "Type": "Parallel", "Branches": [fail_branch("Flaky", "again")], "Next": "Done",
                   "Retry": [{ "ErrorEquals": ["Flaky"], "MaxAttempts": 2, "IntervalSeconds": 1 }],
                   "Catch": [{ "ErrorEquals": ["Other"], "Next": "Done" }, { "ErrorEquals": ["Flaky"], "ResultPath": "$.e", "Next": "Done" }] },
            "Done": { "Type": "Succeed" } } }), d()),
        hand("an uncaught branch error fails the execution", json!({ "StartAt": "P", "States": {
            "P": { "Type": "Parallel", "End": true, "Branches": [fail_branch("Nope", "no")],
                   "Catch": [{ "ErrorEquals": ["Other"], "Next": "Done" }] },
            "Done": { "Type": "Succeed" } } }), d()),
        hand("States.ALL does not catch States.Runtime", parallel_catching(json!([
            { "StartAt": "X", "States": { "X": { "Type": "Pass", "InputPath": "$.nope", "End": true } } }]))
            , d()),
        hand("Map with ItemSelector and the context object", json!({ "StartAt": "M", "States": { "M": { "Type": "Map", "End": true,
            "ItemsPath": "$.items", "MaxConcurrency": 2,
            "ItemSelector": { "i.$": "$$.Map.Item.Index", "v.$": "$$.Map.Item.Value.v", "name.$": "$.name",
                              "label.$": "States.Format('item {} of {}', $$.Map.Item.Index, $.name)" },
            "ItemProcessor": { "StartAt": "D", "States": { "D": { "Type": "Pass", "Parameters": { "sum.$": "States.MathAdd($.i, $.v)", "name.$": "$.name" }, "End": true } } },
            "ResultSelector": { "n.$": "States.ArrayLength($)", "all.$": "$" }, "ResultPath": "$.mapped" } } }), d()),
        hand("Map over an empty array", json!({ "StartAt": "M", "States": { "M": { "Type": "Map", "End": true, "ItemsPath": "$.empty",
            "ItemProcessor": { "StartAt": "D", "States": { "D": { "Type": "Pass", "End": true } } } } } }), json!({ "empty": [] })),
        hand("Map over the input itself (Iterator)", json!({ "StartAt": "M", "States": { "M": { "Type": "Map", "End": true,
            "Iterator": { "StartAt": "D", "States": { "D": { "Type": "Pass", "Parameters": { "x.$": "$" }, "End": true } } } } } }), json!([1, "two", [3]])),
        hand("Map item failure caught", json!({ "StartAt": "M", "States": {
            "M": { "Type": "Map", "ItemsPath": "$.items", "MaxConcurrency": 1, "Next": "Done",
                   "ItemProcessor": { "StartAt": "C", "States": {
                       "C": { "Type": "Choice", "Choices": [{ "Variable": "$.v", "NumericGreaterThan": 10, "Next": "Big" }], "Default": "Ok" },
                       "Big": { "Type": "Fail", "Error": "TooBig", "CausePath": "$.label" },
                       "Ok": { "Type": "Pass", "End": true } } },
                   "Catch": [{ "ErrorEquals": ["TooBig"], "ResultPath": "$.error", "Next": "Done" }] },
            "Done": { "Type": "Succeed" } } }),
            json!({ "items": [{ "v": 1, "label": "small" }, { "v": 20, "label": "large" }, { "v": 30, "label": "huge" }] })),
        hand("ItemsPath that is no array fails", json!({ "StartAt": "M", "States": { "M": { "Type": "Map", "End": true, "ItemsPath": "$.name",
            "ItemProcessor": { "StartAt": "D", "States": { "D": { "Type": "Pass", "End": true } } } } } }), d()),
        // --- intrinsic functions ----------------------------------------------------------------
        hand("Format", params(json!({ "s.$": "States.Format('{} is {} ({}) {}', $.name, $.n, $.flag, $.nothing)", "f.$": "States.Format('{}', $.f)" })), d()),
        hand("Array", params(json!({ "a.$": "States.Array($.name, 1, true, null, $.obj, States.Array())" })), d()),
        hand("ArrayPartition", params(json!({ "p.$": "States.ArrayPartition(States.ArrayRange(1, 7, 1), 3)" })), d()),
        hand("ArrayContains objects", params(json!({ "yes.$": "States.ArrayContains($.items, $.items[1])", "no.$": "States.ArrayContains($.tags, 'jpg')" })), d()),
        hand("ArrayRange", params(json!({ "up.$": "States.ArrayRange(1, 9, 2)", "down.$": "States.ArrayRange(10, 0, -3)", "none.$": "States.ArrayRange(1, 0, 1)" })), d()),
        hand("ArrayGetItem", params(json!({ "x.$": "States.ArrayGetItem($.tags, 1)", "y.$": "States.ArrayGetItem($.items, 2)" })), d()),
        hand("ArrayLength and ArrayUnique", params(json!({ "n.$": "States.ArrayLength($.tags)", "u.$": "States.ArrayUnique($.tags)",
            "uo.$": "States.ArrayUnique(States.Array($.obj, $.obj, 1, 1))" })), d()),
        hand("Base64", params(json!({ "e.$": "States.Base64Encode($.csv)", "d.$": "States.Base64Decode('cGl4ZWwgZmxvdw==')" })), d()),
        hand("Hash", params(json!({ "md5.$": "States.Hash($.name, 'MD5')", "sha1.$": "States.Hash($.name, 'SHA-1')",
            "sha256.$": "States.Hash('café', 'SHA-256')", "sha384.$": "States.Hash($.csv, 'SHA-384')", "sha512.$": "States.Hash('', 'SHA-512')" })), d()),
        hand("JsonMerge is shallow", params(json!({ "m.$": "States.JsonMerge(States.StringToJson($.json), $.obj, false)" })), d()),
        hand("MathAdd", params(json!({ "a.$": "States.MathAdd($.n, -10)", "b.$": "States.MathAdd(States.ArrayLength($.nums), 100)" })), d()),
        hand("StringSplit", params(json!({ "s.$": "States.StringSplit($.csv, ',')", "n.$": "States.ArrayLength(States.StringSplit('a b c', ' '))" })), d()),
        hand("StringToJson and JsonToString", params(json!({ "o.$": "States.StringToJson($.json)", "s.$": "States.JsonToString($.obj)",
            "round.$": "States.StringToJson(States.JsonToString($.items))" })), d()),
        hand("intrinsic string escapes", params(json!({ "s.$": "States.Format('it\\'s {}', $.name)" })), d()),
        // --- known deviations of the oracle --------------------------------------------------------
        known("Pass Result false", "PASS_FALSY_RESULT", pass(json!({ "Result": false })), d()),
        known("Pass Result 0 at a path", "PASS_FALSY_RESULT", pass(json!({ "Result": 0, "ResultPath": "$.zero" })), d()),
        known("Pass Result null", "PASS_FALSY_RESULT", pass(json!({ "Result": null, "ResultPath": "$.r" })), d()),
        known("ResultPath $", "RESULT_PATH_ROOT", pass(json!({ "Result": { "only": "this" }, "ResultPath": "$" })), d()),
        known("ResultPath with a bracketed key", "RESULT_PATH_ROOT", pass(json!({ "Result": 1, "ResultPath": "$['odd key']" })), d()),
        known("ResultPath $ on an array", "RESULT_PATH_ROOT", pass(json!({ "Result": "x", "ResultPath": "$" })), json!([1])),
        known("Catch ResultPath $", "RESULT_PATH_ROOT", json!({ "StartAt": "P", "States": {
            "P": { "Type": "Parallel", "Branches": [fail_branch("E", "c")], "Next": "Done",
                   "Catch": [{ "ErrorEquals": ["States.ALL"], "ResultPath": "$", "Next": "Done" }] },
            "Done": { "Type": "Succeed" } } }), d()),
        known("Fail without Error or Cause", "FAIL_STATE_DEFAULTS", json!({ "StartAt": "F", "States": { "F": { "Type": "Fail" } } }), d()),
        known("Fail without Cause, caught", "FAIL_STATE_DEFAULTS", parallel_catching(json!([
            { "StartAt": "F", "States": { "F": { "Type": "Fail", "Error": "OnlyName" } } }])), d()),
        known("IsNull false", "IS_TEST_FALSE", choice(json!([{ "Variable": "$.name", "IsNull": false }]), true), d()),
        known("IsPresent false", "IS_TEST_FALSE", choice(json!([{ "Variable": "$.absent", "IsPresent": false }]), true), d()),
        known("IsString false under Not", "IS_TEST_FALSE", choice(json!([{ "Not": { "Variable": "$.n", "IsString": false } }]), true), d()),
        known("NumericLessThan on a numeric string", "CHOICE_TYPE_MISMATCH", choice(json!([{ "Variable": "$.s", "NumericLessThan": 5 }]), true), json!({ "s": "3" })),
        known("StringLessThanEquals on an array", "CHOICE_TYPE_MISMATCH", choice(json!([{ "Variable": "$.a", "StringLessThanEquals": "9" }]), true), json!({ "a": [] })),
        known("StringMatches on an object", "CHOICE_TYPE_MISMATCH", choice(json!([{ "Variable": "$.obj", "StringMatches": "*" }]), true), d()),
        known("TimestampEquals on a number", "CHOICE_TYPE_MISMATCH", choice(json!([{ "Variable": "$.t", "TimestampEquals": "1970-01-01T00:00:00Z" }]), true), json!({ "t": 0 })),
        known("StringEqualsPath to a number", "CHOICE_EQUALS_PATH_TYPE", choice(json!([{ "Variable": "$.name", "StringEqualsPath": "$.n" }]), true), d()),
        known("a missing Parameters path, caught", "PARAMETER_PATH_FAILURE", parallel_catching(json!([
            { "StartAt": "X", "States": { "X": { "Type": "Pass", "Parameters": { "v.$": "$.nope" }, "End": true } } }])), d()),
        known("a failing intrinsic, caught", "INTRINSIC_FAILURE", parallel_catching(json!([
            { "StartAt": "X", "States": { "X": { "Type": "Pass", "Parameters": { "v.$": "States.StringToJson($.name)" }, "End": true } } }])), d()),
        known("ArrayPartition by 0 fails", "INTRINSIC_FAILURE", params(json!({ "p.$": "States.ArrayPartition($.nums, 0)" })), d()),
        known("ArrayRange of more than 1000 items fails", "INTRINSIC_FAILURE", params(json!({ "r.$": "States.ArrayRange(0, 2000, 1)" })), d()),
        known("ArrayGetItem past the end", "ARRAY_GET_ITEM_OUT_OF_RANGE", params(json!({ "x.$": "States.ArrayGetItem($.tags, 7)" })), d()),
        known("JsonToString escapes quotes", "INTRINSIC_BACKSLASHES", params(json!({ "s.$": "States.JsonToString($.quoted)" })), d()),
        known("Format keeps backslashes", "INTRINSIC_BACKSLASHES", params(json!({ "s.$": "States.Format('path {}', $.p)" })), json!({ "p": "C:\\temp" })),
        known("Hash of 56 bytes", "HASH_LONG_INPUT", params(json!({ "h.$": "States.Hash($.long, 'SHA-256')" })), json!({ "long": "a".repeat(56) })),
        known("Hash of a hash", "HASH_LONG_INPUT", params(json!({ "h.$": "States.Hash(States.Hash('beta', 'SHA-384'), 'SHA-256')" })), d()),
        known("Base64Encode of non-ASCII text", "BASE64_ENCODING", params(json!({ "b.$": "States.Base64Encode('café')" })), d()),
        known("Base64Encode past U+00FF", "BASE64_ENCODING", params(json!({ "b.$": "States.Base64Encode('日本')" })), d()),
        known("an index into a string", "JSONPATH_STRING_INDEX", params(json!({ "c.$": "$.name[1]" })), d()),
        known("StringSplit on a two-character delimiter", "STRING_SPLIT", params(json!({ "s.$": "States.StringSplit('a.b+c', '.+')" })), d()),
        known("StringSplit with empty parts", "STRING_SPLIT", params(json!({ "s.$": "States.StringSplit('a,,b,', ',')" })), d()),
        known("JsonMerge into a path", "JSON_MERGE_MUTATES_INPUT", params(json!({
            "merged.$": "States.JsonMerge($.obj, States.StringToJson($.json), false)", "after.$": "$.obj" })), d()),
        known("JsonMerge of an object into itself", "JSON_MERGE_MUTATES_INPUT", params(json!({ "m.$": "States.JsonMerge($.obj.b, $.obj, false)" })), d()),
        known("$ on a false input", "JSONPATH_FALSY_ROOT", pass(json!({ "OutputPath": "$" })), json!(false)),
        known("$ on a zero item", "JSONPATH_FALSY_ROOT", json!({ "StartAt": "M", "States": { "M": { "Type": "Map", "End": true,
            "ItemProcessor": { "StartAt": "D", "States": { "D": { "Type": "Pass", "Parameters": { "x.$": "$" }, "End": true } } } } } }), json!([0, 1])),
        known("$$.State.Name", "CONTEXT_OBJECT", params(json!({ "state.$": "$$.State.Name" })), d()),
        known("$$.Execution.StartTime", "CONTEXT_OBJECT", params(json!({ "t.$": "$$.Execution.StartTime" })), d()),
        known("$$.Execution.Input inside a branch", "CONTEXT_OBJECT", json!({ "StartAt": "P", "States": { "P": { "Type": "Parallel", "End": true,
            "Parameters": { "name": "branch input" },
            "Branches": [{ "StartAt": "X", "States": { "X": { "Type": "Pass", "Parameters": { "in.$": "$$.Execution.Input.name" }, "End": true } } }] } } }), d()),
        known("intrinsic in CausePath", "FAIL_PATH_INTRINSIC", json!({ "StartAt": "F", "States": {
            "F": { "Type": "Fail", "Error": "Formatted", "CausePath": "States.Format('{} failed', $.name)" } } }), d()),
        // --- once bugs of this engine, fixed; kept as regressions ----------------------------------
        hand("a state name used twice",
            json!({ "StartAt": "A", "States": { "A": { "Type": "Parallel", "End": true,
                "Branches": [{ "StartAt": "A", "States": { "A": { "Type": "Pass", "End": true } } }] } } }), d()),
        hand("Catch naming States.Runtime",
            json!({ "StartAt": "P", "States": {
                "P": { "Type": "Parallel", "Next": "Done", "Branches": [{ "StartAt": "X", "States": { "X": { "Type": "Pass", "InputPath": "$.nope", "End": true } } }],
                       "Catch": [{ "ErrorEquals": ["States.Runtime"], "ResultPath": "$.error", "Next": "Done" }] },
                "Done": { "Type": "Succeed" } } }), d()),
        hand("SecondsPath of 2.5",
            json!({ "StartAt": "W", "States": { "W": { "Type": "Wait", "SecondsPath": "$.s", "End": true } } }), json!({ "s": 2.5 })),
    ]
}
