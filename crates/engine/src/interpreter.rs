//! The interpreter: runs a validated [`StateMachine`] on an input, recording history events and
//! task checkpoints in a [`Journal`].
//!
//! Architecture Invariant: a run is a deterministic function of the definition, the input and
//! the checkpoints. Each state visit has a key built from its position (`/3:Resize`, a Map item
//! `/2:Batch#0/i7/0:Resize`, a retry attempt `#2`), randomness is seeded from the execution id
//! and that key, and every task attempt and every wait deadline is checkpointed. Resuming an
//! execution after a crash is therefore just running it again: finished tasks replay from their
//! checkpoints, events already recorded are ignored by the journal, and the run picks up where
//! it stopped without redoing any finished task.

use std::cell::OnceCell;
use std::fmt::Write as _;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use serde_json::{json, Map, Value};
use sha2::Digest;

use crate::asl::{Catcher, Jitter, Kind, MapSpec, NumberOrPath, PathField, ResultPath, State, StateMachine, StringOrPath, TaskSpec, Transition, Wait};
use crate::cancel::CancelToken;
use crate::choice;
use crate::clock::Clock;
use crate::error::{names, Failure};
use crate::intrinsics;
use crate::journal::{Checkpoint, Event, Journal, TokenOutcome};
use crate::path;
use crate::step::{StepRegistry, TaskContext};

/// How many iterations of a Map run at once when MaxConcurrency is 0 (unlimited); the same cap
/// AWS applies to inline Map states.
pub const UNLIMITED_MAP_CONCURRENCY: usize = 40;

/// A guard against definitions that loop forever without waiting (a Choice that always goes
/// back): one state machine may make at most this many transitions.
pub const MAX_TRANSITIONS: usize = 1_000_000;

/// What identifies an execution to the interpreter and to the context object (`$$.Execution`).
#[derive(Debug, Clone)]
pub struct Execution {
    pub id: String,
    pub name: String,
    pub state_machine_name: String,
    pub input: Value,
    /// Milliseconds since the Unix epoch, fixed when the execution was first started (so a
    /// resumed run sees the same `$$.Execution.StartTime`).
    pub start_ms: i64,
}

/// Why a run did not succeed.
#[derive(Debug, Clone, PartialEq)]
pub enum Stop {
    Failed(Failure),
    TimedOut(Failure),
    /// Cancelled from outside (Ctrl-C, shutdown): the execution is left RUNNING to be resumed.
    Interrupted,
}

pub struct Engine {
    steps: StepRegistry,
    journal: Arc<dyn Journal>,
    clock: Arc<dyn Clock>,
}

impl Engine {
    pub fn new(steps: StepRegistry, journal: Arc<dyn Journal>, clock: Arc<dyn Clock>) -> Self {
        Engine { steps, journal, clock }
    }

    pub fn steps(&self) -> &StepRegistry {
        &self.steps
    }

    pub fn journal(&self) -> &Arc<dyn Journal> {
        &self.journal
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Runs (or resumes) an execution to its end, which it reports to the journal
    /// ([`Journal::end`]). `cancel` interrupts it.
    pub fn run(&self, machine: &StateMachine, exec: &Execution, cancel: &CancelToken) -> Result<Value, Stop> {
        let run = Run { engine: self, exec, cancel: cancel.child(), timed_out: AtomicBool::new(false) };
        self.journal.begin(&exec.id);
        run.event("ExecutionStarted", None, "", json!({ "input": exec.input }));

        let finished = AtomicBool::new(false);
        let result = std::thread::scope(|scope| {
            if let Some(limit) = machine.timeout_seconds {
                let deadline = exec.start_ms.saturating_add((limit as i64).saturating_mul(1000));
                let run = &run;
                let finished = &finished;
                scope.spawn(move || {
                    // Polls the engine's clock so a manual clock in tests times out as surely as a real one.
                    while !finished.load(Ordering::SeqCst) && !run.cancel.is_cancelled() {
                        if self.clock.now_ms() >= deadline {
                            run.timed_out.store(true, Ordering::SeqCst);
                            run.cancel.cancel();
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(10));
                    }
                });
            }
            let frame = Frame { prefix: String::new(), cancel: run.cancel.clone() };
            let result = run.machine(machine, exec.input.clone(), &frame);
            finished.store(true, Ordering::SeqCst);
            result
        });

        let result = match result {
            Ok(output) => {
                run.event("ExecutionSucceeded", None, "", json!({ "output": output }));
                Ok(output)
            }
            Err(_) if run.timed_out.load(Ordering::SeqCst) => {
                let f = Failure::new(
                    names::TIMEOUT,
                    format!("the execution ran longer than its TimeoutSeconds ({}s)", machine.timeout_seconds.unwrap_or(0)),
                );
                run.event("ExecutionTimedOut", None, "", json!({ "error": f.error, "cause": f.cause }));
                Err(Stop::TimedOut(f))
            }
            Err(_) if cancel.is_cancelled() => Err(Stop::Interrupted),
            Err(f) => {
                run.event("ExecutionFailed", None, "", json!({ "error": f.error, "cause": f.cause }));
                Err(Stop::Failed(f))
            }
        };
        match self.journal.end(&exec.id, &result) {
            // An interrupted run is resumed later; whatever was not stored is done again then.
            Err(e) if !matches!(result, Err(Stop::Interrupted)) => Err(Stop::Failed(Failure::runtime(e.to_string()))),
            _ => result,
        }
    }
}

/// One run of an execution.
struct Run<'a> {
    engine: &'a Engine,
    exec: &'a Execution,
    /// Cancelled by the caller, or by the execution's own timeout.
    cancel: CancelToken,
    timed_out: AtomicBool,
}

/// Where in the run a state machine (top level, branch, Map item) executes.
struct Frame {
    prefix: String,
    cancel: CancelToken,
}

/// The context object (`$$`) of one state visit, built only if a path asks for it.
struct Context<'a> {
    run: &'a Run<'a>,
    state: &'a str,
    entered_ms: i64,
    retry_count: u32,
    token: Option<String>,
    map_item: Option<(usize, &'a Value)>,
    built: OnceCell<Value>,
    /// The same without `Execution.Input`, for paths that cannot reach it: building the whole
    /// object copies the execution's input, which in a Map over N items would cost O(N) per
    /// item (`$$.Map.Item.Value` in an ItemSelector) and O(N^2) in all.
    built_without_input: OnceCell<Value>,
}

impl<'a> Context<'a> {
    fn new(run: &'a Run<'a>, state: &'a str, entered_ms: i64) -> Self {
        Context { run, state, entered_ms, retry_count: 0, token: None, map_item: None, built: OnceCell::new(), built_without_input: OnceCell::new() }
    }

    fn value(&self) -> &Value {
        self.built.get_or_init(|| self.build(true))
    }

    fn build(&self, with_input: bool) -> Value {
        let exec = self.run.exec;
        let mut execution = serde_json::Map::new();
        execution.insert("Id".into(), json!(exec.id));
        if with_input {
            execution.insert("Input".into(), exec.input.clone());
        }
        execution.insert("Name".into(), json!(exec.name));
        execution.insert("StartTime".into(), json!(rfc3339(exec.start_ms)));
        execution.insert("RedriveCount".into(), json!(0));
        let mut ctx = json!({
            "Execution": execution,
            "StateMachine": { "Id": exec.state_machine_name, "Name": exec.state_machine_name },
            "State": { "Name": self.state, "EnteredTime": rfc3339(self.entered_ms), "RetryCount": self.retry_count },
        });
        if let Some(token) = &self.token {
            ctx["Task"] = json!({ "Token": token });
        }
        if let Some((index, value)) = self.map_item {
            ctx["Map"] = json!({ "Item": { "Index": index, "Value": value } });
        }
        ctx
    }

    /// The context object for paths that start with `$$`, else a null that is never read.
    fn for_path(&self, text: &str) -> &Value {
        static NULL: Value = Value::Null;
        if !text.contains("$$") {
            &NULL
        } else if reaches_execution_input(text) {
            self.value()
        } else {
            self.built_without_input.get_or_init(|| self.build(false))
        }
    }
}

/// Whether a path or intrinsic may read `$$.Execution.Input`: conservatively, unless every
/// `$$` in it is followed by a member known not to contain it.
fn reaches_execution_input(text: &str) -> bool {
    const ELSEWHERE: [&str; 8] =
        [".Map", ".State", ".StateMachine", ".Task", ".Execution.Id", ".Execution.Name", ".Execution.StartTime", ".Execution.RedriveCount"];
    text.match_indices("$$").any(|(at, _)| {
        let rest = &text[at + 2..];
        !ELSEWHERE.iter().any(|member| {
            rest.strip_prefix(member).is_some_and(|after| !after.starts_with(|c: char| c.is_alphanumeric() || c == '_'))
        })
    })
}

#[cfg(test)]
#[test]
fn only_paths_that_may_read_the_execution_input_get_it() {
    for text in ["$$.Map.Item.Value", "$$.Map.Item.Value.path", "States.Format('{}', $$.Execution.Id)", "$$.State.Name", "$$.Task.Token", "$$.StateMachine.Id"] {
        assert!(!reaches_execution_input(text), "{text}");
    }
    for text in ["$$", "$$.Execution", "$$.Execution.Input", "$$.Execution.Input.items", "$$..path", "$$['Execution']", "$$.Execution.Identity", "$$.Map.Item.Value, $$.Execution.Input"] {
        assert!(reaches_execution_input(text), "{text}");
    }
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn compact(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 256 {
        let mut end = 256;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}...", &s[..end])
    } else {
        s
    }
}

/// Whether an error name listed in ErrorEquals matches a raised error. The terminal
/// `States.Runtime` and `States.DataLimitExceeded` match nothing, not even when named: AWS
/// says they "always cause the execution to fail".
fn error_matches(list: &[String], error: &str) -> bool {
    is_catchable(error) && list.iter().any(|e| e == error || e == names::ALL)
}

fn is_catchable(error: &str) -> bool {
    error != names::RUNTIME && error != "States.DataLimitExceeded"
}

fn aborted() -> Failure {
    Failure::new(names::ABORTED, "the execution was stopped")
}

impl<'a> Run<'a> {
    fn journal(&self) -> &dyn Journal {
        self.engine.journal.as_ref()
    }

    fn now(&self) -> i64 {
        self.engine.clock.now_ms()
    }

    fn event(&self, kind: &str, state: Option<&str>, key: &str, detail: Value) {
        self.journal().record(
            &self.exec.id,
            Event { kind: kind.to_string(), state: state.map(str::to_string), key: key.to_string(), detail },
        );
    }

    /// An event whose detail is `{name: value, ...}`: the values are not copied.
    fn event_fields(&self, kind: &str, state: Option<&str>, key: &str, fields: &[(&str, &Value)]) {
        self.journal().record_fields(&self.exec.id, kind, state, key, fields);
    }

    /// A random generator seeded by the execution and the state visit, so that a replay draws
    /// the same numbers.
    fn rng(&self, key: &str) -> rand::rngs::StdRng {
        let digest = sha2::Sha256::new().chain_update(self.exec.id.as_bytes()).chain_update([0]).chain_update(key.as_bytes()).finalize();
        let mut seed = [0u8; 32];
        seed.copy_from_slice(&digest);
        rand::rngs::StdRng::from_seed(seed)
    }

    fn checkpoint(&self, key: &str) -> Result<Option<Checkpoint>, Failure> {
        self.journal().checkpoint(&self.exec.id, key).map_err(|e| Failure::runtime(e.to_string()))
    }

    fn save_checkpoint(&self, key: &str, cp: &Checkpoint) -> Result<(), Failure> {
        self.journal().save_checkpoint(&self.exec.id, key, cp).map_err(|e| Failure::runtime(e.to_string()))
    }

    fn machine(&self, m: &StateMachine, input: Value, frame: &Frame) -> Result<Value, Failure> {
        let mut name = m.start_at.as_str();
        let mut input = input;
        // One buffer for every visit's key.
        let mut key = String::new();
        for step in 0..MAX_TRANSITIONS {
            if frame.cancel.is_cancelled() {
                return Err(aborted());
            }
            let state = m
                .state(name)
                .ok_or_else(|| Failure::runtime(format!("the state machine has no state '{name}'")))?;
            key.clear();
            let _ = write!(key, "{}/{step}:{name}", frame.prefix);
            self.event_fields(state.kind.entered_event(), Some(name), &key, &[("input", &input)]);
            // The state consumes its input; a copy is kept only where a Catch may need it.
            let kept = if state.catch.is_empty() { None } else { Some(input.clone()) };
            let outcome = self.state(state, input, &key, frame);
            let next = match outcome {
                Ok((output, next)) => {
                    self.event_fields(state.kind.exited_event(), Some(name), &key, &[("output", &output)]);
                    match next {
                        Some(n) => {
                            input = output;
                            n
                        }
                        None => return Ok(output),
                    }
                }
                Err(failure) => {
                    if frame.cancel.is_cancelled() {
                        return Err(failure);
                    }
                    let (Some(catcher), Some(kept)) =
                        (state.catch.iter().find(|c| error_matches(&c.error_equals, &failure.error)), kept)
                    else {
                        return Err(failure);
                    };
                    let output = self.catch_output(catcher, &kept, &failure)?;
                    let caught = json!({ "error": failure.error, "cause": failure.cause });
                    self.event_fields(state.kind.exited_event(), Some(name), &key, &[("output", &output), ("caught", &caught)]);
                    input = output;
                    catcher.next.as_str()
                }
            };
            name = next;
        }
        Err(Failure::runtime(format!("the state machine made more than {MAX_TRANSITIONS} transitions")))
    }

    fn catch_output(&self, catcher: &Catcher, input: &Value, failure: &Failure) -> Result<Value, Failure> {
        apply_result_path(&catcher.result_path, input, failure.to_error_output())
    }

    /// Runs one state visit; returns its output and the next state (None at the end).
    fn state<'m>(&self, state: &'m State, raw_input: Value, key: &str, frame: &Frame) -> Result<(Value, Option<&'m str>), Failure> {
        let ctx = Context::new(self, &state.name, self.now());
        // After InputPath the raw input is read only by a ResultPath that does not replace it
        // and by a Fail state's paths; otherwise the default InputPath takes it without a copy
        // (most states of a workflow pass their input through).
        let raw_needed = !matches!(state.result_path, ResultPath::Replace) || matches!(state.kind, Kind::Fail { .. });
        let (effective, raw_input) = match (&state.input_path, raw_needed) {
            (PathField::Default, false) => (raw_input, Value::Null),
            _ => (self.input_path(&state.input_path, &raw_input, &ctx)?, raw_input),
        };
        let raw_input = &raw_input;
        let next = match &state.transition {
            Transition::Next(n) => Some(n.as_str()),
            Transition::End => None,
        };
        match &state.kind {
            Kind::Pass { result } => {
                let result = match (result, &state.parameters) {
                    (Some(r), _) => r.clone(),
                    (None, Some(p)) => self.template(p, &effective, &ctx, key)?,
                    (None, None) => effective,
                };
                let output = apply_result_path(&state.result_path, raw_input, result)?;
                Ok((self.output_path(&state.output_path, output, &ctx)?, next))
            }
            Kind::Succeed => Ok((self.output_path(&state.output_path, effective, &ctx)?, None)),
            Kind::Fail { error, cause } => {
                let error = self.fail_field(error.as_ref(), raw_input, &ctx, key)?;
                let cause = self.fail_field(cause.as_ref(), raw_input, &ctx, key)?;
                Err(Failure::new(error, cause))
            }
            Kind::Choice { choices, default } => {
                let mut chosen = None;
                for c in choices {
                    if choice::evaluate(&c.rule, &effective, if state.reads_context { ctx.value() } else { &Value::Null })? {
                        chosen = Some(c.next.as_str());
                        break;
                    }
                }
                let next = match chosen.or(default.as_deref()) {
                    Some(n) => n,
                    None => {
                        return Err(Failure::new(
                            names::NO_CHOICE_MATCHED,
                            format!("no Choice rule of state '{}' matched the input and it has no Default", state.name),
                        ))
                    }
                };
                Ok((self.output_path(&state.output_path, effective, &ctx)?, Some(next)))
            }
            Kind::Wait(wait) => {
                self.wait(wait, &effective, &ctx, key, frame)?;
                Ok((self.output_path(&state.output_path, effective, &ctx)?, next))
            }
            Kind::Task(spec) => {
                let result = self.with_retry(state, key, frame, |attempt_key, retry_count| {
                    self.task_attempt(state, spec, &effective, attempt_key, retry_count, frame)
                })?;
                self.finish(state, raw_input, result, &ctx, key).map(|o| (o, next))
            }
            Kind::Parallel { branches } => {
                let input = match &state.parameters {
                    Some(p) => self.template(p, &effective, &ctx, key)?,
                    None => effective,
                };
                self.event("ParallelStateStarted", Some(&state.name), key, json!({}));
                let result = self.with_retry(state, key, frame, |attempt_key, _| self.parallel(branches, &input, attempt_key, frame));
                match &result {
                    Ok(_) => self.event("ParallelStateSucceeded", Some(&state.name), key, json!({})),
                    Err(f) => self.event("ParallelStateFailed", Some(&state.name), key, json!({ "error": f.error, "cause": f.cause })),
                }
                self.finish(state, raw_input, result?, &ctx, key).map(|o| (o, next))
            }
            Kind::Map(spec) => {
                let result = self.with_retry(state, key, frame, |attempt_key, _| self.map(state, spec, &effective, attempt_key, frame));
                self.finish(state, raw_input, result?, &ctx, key).map(|o| (o, next))
            }
        }
    }

    /// ResultSelector, ResultPath and OutputPath of Task, Parallel and Map states.
    fn finish(&self, state: &State, raw_input: &Value, result: Value, ctx: &Context, key: &str) -> Result<Value, Failure> {
        let result = match &state.result_selector {
            Some(sel) => self.template(sel, &result, ctx, key)?,
            None => result,
        };
        let output = apply_result_path(&state.result_path, raw_input, result)?;
        self.output_path(&state.output_path, output, ctx)
    }

    fn input_path(&self, field: &PathField, input: &Value, ctx: &Context) -> Result<Value, Failure> {
        match field {
            PathField::Default => Ok(input.clone()),
            PathField::Null => Ok(json!({})),
            PathField::Path(p) => match path::select(input, ctx.for_path(p), p).map_err(Failure::runtime)? {
                Some(v) => Ok(v),
                None => Err(Failure::runtime(format!("Invalid path '{p}': the InputPath matches nothing in the input {}", compact(input)))),
            },
        }
    }

    fn output_path(&self, field: &PathField, output: Value, ctx: &Context) -> Result<Value, Failure> {
        match field {
            PathField::Default => Ok(output),
            PathField::Null => Ok(json!({})),
            PathField::Path(p) => match path::select(&output, ctx.for_path(p), p).map_err(Failure::runtime)? {
                Some(v) => Ok(v),
                None => Err(Failure::runtime(format!("Invalid path '{p}': the OutputPath matches nothing in {}", compact(&output)))),
            },
        }
    }

    /// Evaluates a payload template (Parameters, ItemSelector, ResultSelector).
    fn template(&self, tpl: &Value, input: &Value, ctx: &Context, key: &str) -> Result<Value, Failure> {
        let mut rng = None;
        self.template_inner(tpl, input, ctx, key, &mut rng)
    }

    fn template_inner(
        &self,
        tpl: &Value,
        input: &Value,
        ctx: &Context,
        key: &str,
        rng: &mut Option<rand::rngs::StdRng>,
    ) -> Result<Value, Failure> {
        match tpl {
            Value::Object(obj) => {
                let mut out = Map::with_capacity(obj.len());
                for (k, v) in obj {
                    match (k.strip_suffix(".$"), v) {
                        (Some(name), Value::String(expr)) => {
                            let value = if intrinsics::is_intrinsic(expr) {
                                let rng = rng.get_or_insert_with(|| self.rng(key));
                                intrinsics::evaluate(expr, input, ctx.for_path(expr), rng)?
                            } else {
                                match path::select(input, ctx.for_path(expr), expr).map_err(Failure::parameter_path)? {
                                    Some(v) => v,
                                    None => {
                                        return Err(Failure::parameter_path(format!(
                                            "The JSONPath '{expr}' specified for the field '{k}' could not be found in the input {}",
                                            compact(input)
                                        )))
                                    }
                                }
                            };
                            out.insert(name.to_string(), value);
                        }
                        _ => {
                            out.insert(k.clone(), self.template_inner(v, input, ctx, key, rng)?);
                        }
                    }
                }
                Ok(Value::Object(out))
            }
            Value::Array(items) => {
                items.iter().map(|i| self.template_inner(i, input, ctx, key, rng)).collect::<Result<Vec<_>, _>>().map(Value::Array)
            }
            other => Ok(other.clone()),
        }
    }

    fn fail_field(&self, field: Option<&StringOrPath>, input: &Value, ctx: &Context, key: &str) -> Result<String, Failure> {
        match field {
            None => Ok(String::new()),
            Some(StringOrPath::Value(s)) => Ok(s.clone()),
            Some(StringOrPath::Path(p)) => {
                let v = if intrinsics::is_intrinsic(p) {
                    intrinsics::evaluate(p, input, ctx.for_path(p), &mut self.rng(key))?
                } else {
                    path::select(input, ctx.for_path(p), p)
                        .map_err(Failure::runtime)?
                        .ok_or_else(|| Failure::runtime(format!("Invalid path '{p}': it matches nothing in the input {}", compact(input))))?
                };
                match v {
                    Value::String(s) => Ok(s),
                    other => Err(Failure::runtime(format!("the path '{p}' must give a string, not {}", compact(&other)))),
                }
            }
        }
    }

    /// A number given literally or by a path. Every such field but the tolerated failure
    /// percentage must be a whole number, as AWS requires (`SecondsPath` of 2.5 fails).
    fn number(&self, field: &NumberOrPath, input: &Value, ctx: &Context, what: &str) -> Result<f64, Failure> {
        let whole = !what.contains("Percentage");
        match field {
            NumberOrPath::Value(v) => Ok(*v),
            NumberOrPath::Path(p) => match path::select(input, ctx.for_path(p), p).map_err(Failure::runtime)? {
                Some(v) => v.as_f64().filter(|n| *n >= 0.0 && (!whole || n.fract() == 0.0)).ok_or_else(|| {
                    let kind = if whole { "a non-negative integer" } else { "a non-negative number" };
                    Failure::runtime(format!("{what} path '{p}' must give {kind}, not {}", compact(&v)))
                }),
                None => Err(Failure::runtime(format!("{what} path '{p}' matches nothing in the input"))),
            },
        }
    }

    /// Sleeps until `deadline_ms`, checkpointing the deadline under `key` first so that a resumed
    /// run waits only for what is left.
    fn sleep_until_checkpointed(&self, key: &str, deadline_ms: i64, cancel: &CancelToken) -> Result<(), Failure> {
        let deadline = match self.checkpoint(key)? {
            Some(Checkpoint::WaitUntil(d)) => d,
            _ => {
                self.save_checkpoint(key, &Checkpoint::WaitUntil(deadline_ms))?;
                deadline_ms
            }
        };
        let remaining = deadline - self.now();
        if remaining > 0 && !self.engine.clock.sleep(Duration::from_millis(remaining as u64), cancel) {
            return Err(aborted());
        }
        Ok(())
    }

    fn wait(&self, wait: &Wait, input: &Value, ctx: &Context, key: &str, frame: &Frame) -> Result<(), Failure> {
        let timestamp = |text: &str| -> Result<i64, Failure> {
            chrono::DateTime::parse_from_rfc3339(text)
                .map(|t| t.timestamp_millis())
                .map_err(|_| Failure::runtime(format!("'{text}' is not an RFC 3339 timestamp")))
        };
        let deadline = match wait {
            Wait::Seconds(s) => self.now() + (s * 1000.0) as i64,
            Wait::Timestamp(t) => timestamp(t)?,
            Wait::SecondsPath(p) => {
                let s = self.number(&NumberOrPath::Path(p.clone()), input, ctx, "SecondsPath")?;
                self.now() + (s * 1000.0) as i64
            }
            Wait::TimestampPath(p) => match path::select(input, ctx.for_path(p), p).map_err(Failure::runtime)? {
                Some(Value::String(t)) => timestamp(&t)?,
                Some(other) => return Err(Failure::runtime(format!("TimestampPath '{p}' must give a timestamp string, not {}", compact(&other)))),
                None => return Err(Failure::runtime(format!("TimestampPath '{p}' matches nothing in the input"))),
            },
        };
        self.sleep_until_checkpointed(key, deadline, &frame.cancel)
    }

    /// Runs `attempt` under the state's retriers: `attempt(key, retry_count)` is called with the
    /// key of this attempt (`<state key>#<n>`).
    fn with_retry(
        &self,
        state: &State,
        key: &str,
        frame: &Frame,
        attempt: impl Fn(&str, u32) -> Result<Value, Failure>,
    ) -> Result<Value, Failure> {
        let mut used = vec![0u32; state.retry.len()];
        let mut retry_count = 0u32;
        loop {
            let attempt_key = format!("{key}#{retry_count}");
            let failure = match attempt(&attempt_key, retry_count) {
                Ok(v) => return Ok(v),
                Err(f) => f,
            };
            if frame.cancel.is_cancelled() {
                return Err(failure);
            }
            let Some(index) = state.retry.iter().position(|r| error_matches(&r.error_equals, &failure.error)) else {
                return Err(failure);
            };
            let retrier = &state.retry[index];
            if used[index] >= retrier.max_attempts {
                return Err(failure);
            }
            let mut delay = retrier.interval_seconds * retrier.backoff_rate.powi(used[index] as i32);
            if let Some(max) = retrier.max_delay_seconds {
                delay = delay.min(max);
            }
            if retrier.jitter == Jitter::Full {
                delay = self.rng(&attempt_key).random_range(0.0..=delay);
            }
            used[index] += 1;
            retry_count += 1;
            self.event(
                "StateRetryScheduled",
                Some(&state.name),
                &attempt_key,
                json!({ "error": failure.error, "cause": failure.cause, "delaySeconds": delay, "retryCount": retry_count }),
            );
            let deadline = self.now() + (delay * 1000.0).round() as i64;
            self.sleep_until_checkpointed(&format!("{attempt_key}:backoff"), deadline, &frame.cancel)?;
        }
    }

    fn task_attempt(
        &self,
        state: &State,
        spec: &TaskSpec,
        effective: &Value,
        key: &str,
        retry_count: u32,
        frame: &Frame,
    ) -> Result<Value, Failure> {
        match self.checkpoint(key)? {
            Some(Checkpoint::Succeeded(v)) => return Ok(v),
            Some(Checkpoint::Failed(f)) => return Err(f),
            _ => {}
        }
        let name = state.name.as_str();
        let mut ctx = Context::new(self, name, self.now());
        ctx.retry_count = retry_count;
        if spec.wait_for_token {
            let token = self
                .journal()
                .task_token(&self.exec.id, key, name, effective)
                .map_err(|e| Failure::runtime(e.to_string()))?;
            ctx.token = Some(token);
        }
        let params = match &state.parameters {
            Some(p) => self.template(p, effective, &ctx, key)?,
            None => effective.clone(),
        };
        self.event("TaskScheduled", Some(name), key, json!({ "resource": spec.resource, "parameters": params }));
        let step = self
            .engine
            .steps
            .get(&spec.step)
            .ok_or_else(|| Failure::runtime(format!("no step is registered for resource '{}'", spec.resource)))?;
        let timeout = spec.timeout.as_ref().map(|t| self.number(t, effective, &ctx, "TimeoutSecondsPath")).transpose()?;
        let heartbeat = spec.heartbeat.as_ref().map(|h| self.number(h, effective, &ctx, "HeartbeatSecondsPath")).transpose()?;
        let cancel = frame.cancel.child();
        let task_ctx = TaskContext {
            execution_id: self.exec.id.clone(),
            state_name: name.to_string(),
            retry_count,
            task_token: ctx.token.clone(),
            cancel: cancel.clone(),
            last_heartbeat_ms: Arc::new(AtomicI64::new(self.now())),
            clock: self.engine.clock.clone(),
        };
        self.event("TaskStarted", Some(name), key, json!({}));
        let started = self.now();
        let mut outcome = supervise(step, params, task_ctx, timeout, heartbeat, self.engine.clock.as_ref());
        if let (Ok(_), Some(token)) = (&outcome, &ctx.token) {
            self.event("TaskSubmitted", Some(name), key, json!({ "token": token }));
            let limit = timeout
                .map(|t| (t, names::TIMEOUT))
                .into_iter()
                .chain(heartbeat.map(|h| (h, names::HEARTBEAT_TIMEOUT)))
                .min_by(|a, b| a.0.total_cmp(&b.0));
            let remaining = limit.map(|(secs, _)| {
                Duration::from_millis(((secs * 1000.0) as i64 - (self.now() - started)).max(0) as u64)
            });
            outcome = match self.journal().wait_for_token(token, remaining, &cancel).map_err(|e| Failure::runtime(e.to_string()))? {
                Some(TokenOutcome::Succeeded(v)) => Ok(v),
                Some(TokenOutcome::Failed(f)) => Err(f),
                None if frame.cancel.is_cancelled() => Err(aborted()),
                None => {
                    let (secs, error) = limit.unwrap_or((0.0, names::TIMEOUT));
                    Err(Failure::new(error, format!("no answer to the task token within {secs}s")))
                }
            };
        }
        if frame.cancel.is_cancelled() {
            // Interrupted work is not recorded: a resumed run must do it again.
            return Err(aborted());
        }
        match &outcome {
            Ok(v) => {
                self.save_checkpoint(key, &Checkpoint::Succeeded(v.clone()))?;
                self.event_fields("TaskSucceeded", Some(name), key, &[("output", v)]);
            }
            Err(f) => {
                self.save_checkpoint(key, &Checkpoint::Failed(f.clone()))?;
                let kind = if f.error == names::TIMEOUT || f.error == names::HEARTBEAT_TIMEOUT { "TaskTimedOut" } else { "TaskFailed" };
                self.event(kind, Some(name), key, json!({ "error": f.error, "cause": f.cause }));
            }
        }
        outcome
    }

    fn parallel(&self, branches: &[StateMachine], input: &Value, key: &str, frame: &Frame) -> Result<Value, Failure> {
        let cancel = frame.cancel.child();
        let first_failure: Mutex<Option<Failure>> = Mutex::new(None);
        let results: Vec<Option<Value>> = std::thread::scope(|scope| {
            let handles: Vec<_> = branches
                .iter()
                .enumerate()
                .map(|(i, branch)| {
                    let frame = Frame { prefix: format!("{key}/b{i}"), cancel: cancel.clone() };
                    let first_failure = &first_failure;
                    let cancel = &cancel;
                    scope.spawn(move || match self.machine(branch, input.clone(), &frame) {
                        Ok(v) => Some(v),
                        Err(f) => {
                            let mut first = first_failure.lock().unwrap_or_else(|e| e.into_inner());
                            if first.is_none() {
                                *first = Some(f);
                                cancel.cancel();
                            }
                            None
                        }
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap_or(None)).collect()
        });
        if let Some(f) = first_failure.into_inner().unwrap_or_else(|e| e.into_inner()) {
            return Err(f);
        }
        Ok(Value::Array(results.into_iter().map(|r| r.unwrap_or(Value::Null)).collect()))
    }

    fn map(&self, state: &State, spec: &MapSpec, effective: &Value, key: &str, frame: &Frame) -> Result<Value, Failure> {
        let ctx = Context::new(self, &state.name, self.now());
        let items = match path::select(effective, ctx.for_path(&spec.items_path), &spec.items_path).map_err(Failure::runtime)? {
            Some(Value::Array(items)) => items,
            Some(other) => {
                return Err(Failure::runtime(format!(
                    "ItemsPath '{}' must select an array, not {}",
                    spec.items_path,
                    compact(&other)
                )))
            }
            None => return Err(Failure::runtime(format!("ItemsPath '{}' matches nothing in the input", spec.items_path))),
        };
        let n = items.len();
        let max = match &spec.max_concurrency {
            Some(m) => self.number(m, effective, &ctx, "MaxConcurrencyPath")? as usize,
            None => 0,
        };
        let tolerated_count = spec.tolerated_failure_count.as_ref().map(|c| self.number(c, effective, &ctx, "ToleratedFailureCountPath")).transpose()?;
        let tolerated_pct =
            spec.tolerated_failure_percentage.as_ref().map(|p| self.number(p, effective, &ctx, "ToleratedFailurePercentagePath")).transpose()?;
        let tolerant = tolerated_count.unwrap_or(0.0) > 0.0 || tolerated_pct.unwrap_or(0.0) > 0.0;
        let exceeds = |failed: usize| {
            let over_count = tolerated_count.map_or(tolerated_pct.is_none(), |c| failed as f64 > c);
            let over_pct = tolerated_pct.map_or(tolerated_count.is_none(), |p| failed as f64 * 100.0 > p * n as f64);
            failed > 0 && (over_count || over_pct)
        };

        self.event("MapStateStarted", Some(&state.name), key, json!({ "length": n }));
        let workers = if max == 0 { n.min(UNLIMITED_MAP_CONCURRENCY) } else { n.min(max) };
        let cancel = frame.cancel.child();
        let next = AtomicUsize::new(0);
        let failed = AtomicUsize::new(0);
        let fatal: Mutex<Option<Failure>> = Mutex::new(None);
        let results: Mutex<Vec<Value>> = Mutex::new(vec![Value::Null; n]);
        let run_item = |i: usize| {
            let item_frame = Frame { prefix: format!("{key}/i{i}"), cancel: cancel.clone() };
            let item_key = item_frame.prefix.as_str();
            let mut item_ctx = Context::new(self, &state.name, self.now());
            item_ctx.map_item = Some((i, &items[i]));
            let index = Value::from(i);
            self.event_fields("MapIterationStarted", Some(&state.name), item_key, &[("index", &index)]);
            let outcome = match &spec.item_selector {
                Some(sel) => self.template(sel, effective, &item_ctx, item_key),
                None => Ok(items[i].clone()),
            }
            .and_then(|input| self.machine(&spec.processor, input, &item_frame));
            match outcome {
                Ok(v) => {
                    self.event_fields("MapIterationSucceeded", Some(&state.name), item_key, &[("index", &index), ("output", &v)]);
                    results.lock().unwrap_or_else(|e| e.into_inner())[i] = v;
                }
                Err(f) => {
                    if cancel.is_cancelled() {
                        return;
                    }
                    self.event("MapIterationFailed", Some(&state.name), item_key, json!({ "index": i, "error": f.error, "cause": f.cause }));
                    let count = failed.fetch_add(1, Ordering::SeqCst) + 1;
                    if tolerant && !exceeds(count) {
                        results.lock().unwrap_or_else(|e| e.into_inner())[i] = f.to_error_output();
                        return;
                    }
                    let mut fatal = fatal.lock().unwrap_or_else(|e| e.into_inner());
                    if fatal.is_none() {
                        *fatal = Some(if tolerant {
                            Failure::new(
                                names::EXCEED_TOLERATED_FAILURE_THRESHOLD,
                                format!("{count} of {n} items of Map state '{}' failed, more than tolerated; the last: {f}", state.name),
                            )
                        } else {
                            f
                        });
                        cancel.cancel();
                    }
                }
            }
        };
        if workers <= 1 {
            for i in 0..n {
                if cancel.is_cancelled() {
                    break;
                }
                run_item(i);
            }
        } else {
            std::thread::scope(|scope| {
                for _ in 0..workers {
                    scope.spawn(|| loop {
                        let i = next.fetch_add(1, Ordering::SeqCst);
                        if i >= n || cancel.is_cancelled() {
                            break;
                        }
                        run_item(i);
                    });
                }
            });
        }
        if let Some(f) = fatal.into_inner().unwrap_or_else(|e| e.into_inner()) {
            self.event("MapStateFailed", Some(&state.name), key, json!({ "error": f.error, "cause": f.cause }));
            return Err(f);
        }
        if frame.cancel.is_cancelled() {
            return Err(aborted());
        }
        self.event("MapStateSucceeded", Some(&state.name), key, json!({}));
        Ok(Value::Array(results.into_inner().unwrap_or_else(|e| e.into_inner())))
    }
}

/// Combines a state's raw input with its result as ResultPath says.
fn apply_result_path(result_path: &ResultPath, raw_input: &Value, result: Value) -> Result<Value, Failure> {
    match result_path {
        ResultPath::Replace => Ok(result),
        ResultPath::Discard => Ok(raw_input.clone()),
        ResultPath::At(p) => p.set(raw_input.clone(), result).map_err(|e| {
            Failure::new(names::RESULT_PATH_MATCH_FAILURE, format!("Unable to apply ResultPath to the input {}: {e}", compact(raw_input)))
        }),
    }
}

/// Calls a step, enforcing TimeoutSeconds and HeartbeatSeconds. A step that panics fails the
/// task with States.TaskFailed instead of taking the process down.
fn supervise(
    step: Arc<dyn crate::step::Step>,
    params: Value,
    ctx: TaskContext,
    timeout: Option<f64>,
    heartbeat: Option<f64>,
    clock: &dyn Clock,
) -> Result<Value, Failure> {
    fn call(step: &dyn crate::step::Step, params: Value, ctx: &TaskContext) -> Result<Value, Failure> {
        catch_unwind(AssertUnwindSafe(|| step.run(params, ctx))).unwrap_or_else(|panic| {
            let msg = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_string());
            Err(Failure::new(names::TASK_FAILED, format!("the step crashed: {msg}")))
        })
    }
    if (timeout.is_none() && heartbeat.is_none()) || ctx.task_token.is_some() {
        return call(step.as_ref(), params, &ctx);
    }
    let start = clock.now_ms();
    let last_heartbeat = ctx.last_heartbeat_ms.clone();
    let cancel = ctx.cancel.clone();
    let (tx, rx) = mpsc::channel();
    // The step runs on its own thread so a step that hangs cannot hang the execution; on
    // timeout it is told to stop through its cancel token and left to finish on its own.
    let spawned = std::thread::Builder::new().name(format!("step-{}", ctx.state_name)).spawn(move || {
        let _ = tx.send(call(step.as_ref(), params, &ctx));
    });
    if let Err(e) = spawned {
        return Err(Failure::new(names::TASK_FAILED, format!("could not start the step: {e}")));
    }
    let over = |now: i64| -> Option<Failure> {
        if let Some(t) = timeout {
            if (now - start) as f64 > t * 1000.0 {
                return Some(Failure::new(names::TIMEOUT, format!("the task ran longer than TimeoutSeconds ({t}s)")));
            }
        }
        if let Some(h) = heartbeat {
            if (now - last_heartbeat.load(Ordering::SeqCst)) as f64 > h * 1000.0 {
                return Some(Failure::new(names::HEARTBEAT_TIMEOUT, format!("the task sent no heartbeat for HeartbeatSeconds ({h}s)")));
            }
        }
        None
    };
    loop {
        match rx.recv_timeout(Duration::from_millis(10)) {
            Ok(result) => return over(clock.now_ms()).map_or(result, Err),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(Failure::new(names::TASK_FAILED, "the step stopped without a result"))
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if let Some(f) = over(clock.now_ms()) {
                    cancel.cancel();
                    return Err(f);
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "interpreter_tests.rs"]
mod tests;
