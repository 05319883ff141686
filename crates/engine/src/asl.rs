//! The Amazon States Language definition: parsing a JSON definition into a validated
//! [`StateMachine`], collecting every fault with the JSON pointer where it sits.
//!
//! Validation follows the AWS specification: unknown fields, missing or dangling transitions,
//! unreachable states, malformed paths, payload templates and intrinsic calls, Retry/Catch
//! ordering rules, and field types are all reported before anything runs.

use std::collections::{HashMap, HashSet, VecDeque};

use serde_json::{Map, Value};

use crate::choice::{self, Choice};
use crate::error::{pointer_token, Diagnostics};
use crate::intrinsics;
use crate::path::{self, ReferencePath};
use crate::step::StepRegistry;

/// The deepest nesting of Parallel/Map state machines accepted; deeper definitions are refused
/// rather than risking the interpreter's stack.
pub const MAX_NESTING: usize = 16;

/// A validated state machine (the top level, a Parallel branch, or a Map's item processor).
#[derive(Debug, Clone)]
pub struct StateMachine {
    pub start_at: String,
    pub states: Vec<State>,
    index: HashMap<String, usize>,
    pub timeout_seconds: Option<u64>,
    pub comment: Option<String>,
}

impl StateMachine {
    pub fn state(&self, name: &str) -> Option<&State> {
        self.index.get(name).map(|&i| &self.states[i])
    }
}

/// A path field that may be absent (default `$`), `null`, or a path.
#[derive(Debug, Clone, PartialEq)]
pub enum PathField {
    Default,
    Null,
    Path(String),
}

/// `ResultPath`: absent (`$`, the result replaces the input), `null` (the result is discarded),
/// or a reference path where the result is written into the input.
#[derive(Debug, Clone, PartialEq)]
pub enum ResultPath {
    Replace,
    Discard,
    At(ReferencePath),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Transition {
    Next(String),
    End,
}

/// A number given literally or read from the input by a reference path (`Foo` / `FooPath`).
#[derive(Debug, Clone, PartialEq)]
pub enum NumberOrPath {
    Value(f64),
    Path(String),
}

/// A string given literally, read by a path, or computed by an intrinsic (`Error` / `ErrorPath`).
#[derive(Debug, Clone, PartialEq)]
pub enum StringOrPath {
    Value(String),
    Path(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Jitter {
    None,
    Full,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Retrier {
    pub error_equals: Vec<String>,
    pub interval_seconds: f64,
    pub max_attempts: u32,
    pub backoff_rate: f64,
    pub max_delay_seconds: Option<f64>,
    pub jitter: Jitter,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Catcher {
    pub error_equals: Vec<String>,
    pub next: String,
    pub result_path: ResultPath,
}

#[derive(Debug, Clone)]
pub enum Wait {
    Seconds(f64),
    SecondsPath(String),
    Timestamp(String),
    TimestampPath(String),
}

#[derive(Debug, Clone)]
pub struct TaskSpec {
    pub resource: String,
    /// The step name, without the `pixelflow:` prefix and the `.waitForTaskToken` suffix.
    pub step: String,
    pub wait_for_token: bool,
    pub timeout: Option<NumberOrPath>,
    pub heartbeat: Option<NumberOrPath>,
}

#[derive(Debug, Clone)]
pub struct MapSpec {
    pub items_path: String,
    pub item_selector: Option<Value>,
    pub processor: Box<StateMachine>,
    pub max_concurrency: Option<NumberOrPath>,
    pub tolerated_failure_percentage: Option<NumberOrPath>,
    pub tolerated_failure_count: Option<NumberOrPath>,
}

#[derive(Debug, Clone)]
pub enum Kind {
    Pass { result: Option<Value> },
    Task(TaskSpec),
    Choice { choices: Vec<Choice>, default: Option<String> },
    Wait(Wait),
    Succeed,
    Fail { error: Option<StringOrPath>, cause: Option<StringOrPath> },
    Parallel { branches: Vec<StateMachine> },
    Map(MapSpec),
}

impl Kind {
    /// The ASL `Type` name, and the kinds of the events recorded when a state of this type is
    /// entered and left.
    fn names(&self) -> (&'static str, &'static str, &'static str) {
        match self {
            Kind::Pass { .. } => ("Pass", "PassStateEntered", "PassStateExited"),
            Kind::Task(_) => ("Task", "TaskStateEntered", "TaskStateExited"),
            Kind::Choice { .. } => ("Choice", "ChoiceStateEntered", "ChoiceStateExited"),
            Kind::Wait(_) => ("Wait", "WaitStateEntered", "WaitStateExited"),
            Kind::Succeed => ("Succeed", "SucceedStateEntered", "SucceedStateExited"),
            Kind::Fail { .. } => ("Fail", "FailStateEntered", "FailStateExited"),
            Kind::Parallel { .. } => ("Parallel", "ParallelStateEntered", "ParallelStateExited"),
            Kind::Map(_) => ("Map", "MapStateEntered", "MapStateExited"),
        }
    }

    /// The ASL `Type` name.
    pub fn type_name(&self) -> &'static str {
        self.names().0
    }

    /// The kind of event recorded when a state of this type is entered.
    pub fn entered_event(&self) -> &'static str {
        self.names().1
    }

    /// The kind of event recorded when a state of this type is left.
    pub fn exited_event(&self) -> &'static str {
        self.names().2
    }
}

#[derive(Debug, Clone)]
pub struct State {
    pub name: String,
    pub kind: Kind,
    pub input_path: PathField,
    pub output_path: PathField,
    pub parameters: Option<Value>,
    pub result_selector: Option<Value>,
    pub result_path: ResultPath,
    pub transition: Transition,
    pub retry: Vec<Retrier>,
    pub catch: Vec<Catcher>,
    /// Whether any field of the state reads the context object (`$$`), so the interpreter builds
    /// it only for the states that use it.
    pub reads_context: bool,
}

/// Parses and validates a definition. `steps` is the registry that Task resources must name.
pub fn parse(definition: &Value, steps: &StepRegistry) -> Result<StateMachine, Diagnostics> {
    let mut diags = Diagnostics::default();
    let machine = Parser { steps, diags: &mut diags }.machine(definition, "", 0, true);
    if let Some(m) = &machine {
        unique_names(m, "", &mut HashMap::new(), &mut diags);
    }
    match machine {
        Some(m) if diags.is_empty() => Ok(m),
        _ => {
            if diags.is_empty() {
                diags.push("", "the definition is not a valid state machine");
            }
            Err(diags)
        }
    }
}

/// Parses a definition from text, reporting JSON syntax errors with their line and column.
pub fn parse_str(text: &str, steps: &StepRegistry) -> Result<StateMachine, Diagnostics> {
    let value: Value = serde_json::from_str(text).map_err(|e| {
        let mut d = Diagnostics::default();
        d.push("", format!("the definition is not valid JSON: {e}"));
        d
    })?;
    parse(&value, steps)
}

const COMMON: &[&str] = &["Type", "Comment"];
const IO: &[&str] = &["InputPath", "OutputPath"];
const TRANSITION: &[&str] = &["Next", "End"];
const RESULT: &[&str] = &["ResultPath"];
const ERRORS: &[&str] = &["Retry", "Catch"];

fn allowed_fields(kind: &str) -> Vec<&'static str> {
    let mut f: Vec<&'static str> = COMMON.to_vec();
    let extra: &[&[&str]] = match kind {
        "Pass" => &[IO, TRANSITION, RESULT, &["Parameters", "Result"]],
        "Task" => &[
            IO,
            TRANSITION,
            RESULT,
            ERRORS,
            &[
                "Parameters",
                "ResultSelector",
                "Resource",
                "TimeoutSeconds",
                "TimeoutSecondsPath",
                "HeartbeatSeconds",
                "HeartbeatSecondsPath",
                "Credentials",
            ],
        ],
        "Choice" => &[IO, &["Choices", "Default"]],
        "Wait" => &[IO, TRANSITION, &["Seconds", "SecondsPath", "Timestamp", "TimestampPath"]],
        "Succeed" => &[IO],
        "Fail" => &[&["Error", "ErrorPath", "Cause", "CausePath"]],
        "Parallel" => &[IO, TRANSITION, RESULT, ERRORS, &["Branches", "Parameters", "ResultSelector"]],
        "Map" => &[
            IO,
            TRANSITION,
            RESULT,
            ERRORS,
            &[
                "Iterator",
                "ItemProcessor",
                "ItemsPath",
                "ItemSelector",
                "Parameters",
                "ResultSelector",
                "MaxConcurrency",
                "MaxConcurrencyPath",
                "ToleratedFailurePercentage",
                "ToleratedFailurePercentagePath",
                "ToleratedFailureCount",
                "ToleratedFailureCountPath",
                "Label",
            ],
        ],
        _ => &[],
    };
    for group in extra {
        f.extend_from_slice(group);
    }
    f
}

struct Parser<'a> {
    steps: &'a StepRegistry,
    diags: &'a mut Diagnostics,
}

fn ptr(base: &str, token: &str) -> String {
    format!("{base}/{}", pointer_token(token))
}

impl Parser<'_> {
    fn err(&mut self, pointer: impl Into<String>, message: impl Into<String>) {
        self.diags.push(pointer, message);
    }

    fn machine(&mut self, v: &Value, at: &str, depth: usize, top: bool) -> Option<StateMachine> {
        if depth > MAX_NESTING {
            self.err(at, format!("state machines are nested more than {MAX_NESTING} levels deep"));
            return None;
        }
        let Some(obj) = v.as_object() else {
            self.err(at, "a state machine must be a JSON object");
            return None;
        };
        let mut allowed = vec!["StartAt", "States", "Comment", "Version", "TimeoutSeconds", "QueryLanguage"];
        if !top {
            allowed.push("ProcessorConfig");
        }
        for key in obj.keys() {
            if !allowed.contains(&key.as_str()) {
                self.err(ptr(at, key), format!("field '{key}' is not allowed in a state machine"));
            }
        }
        if let Some(lang) = obj.get("QueryLanguage") {
            if lang != "JSONPath" {
                self.err(ptr(at, "QueryLanguage"), "only the JSONPath query language is supported");
            }
        }
        let comment = self.opt_string(obj, at, "Comment");
        let timeout_seconds = if top { self.opt_uint(obj, at, "TimeoutSeconds", 1) } else { None };
        if !top && obj.contains_key("TimeoutSeconds") {
            self.err(ptr(at, "TimeoutSeconds"), "TimeoutSeconds is only allowed at the top level");
        }
        if let Some(cfg) = obj.get("ProcessorConfig") {
            self.processor_config(cfg, &ptr(at, "ProcessorConfig"));
        }
        let start_at = self.req_string(obj, at, "StartAt");
        let Some(states_v) = obj.get("States") else {
            self.err(at, "the state machine has no 'States'");
            return None;
        };
        let states_at = ptr(at, "States");
        let Some(states_obj) = states_v.as_object() else {
            self.err(&states_at, "'States' must be an object");
            return None;
        };
        if states_obj.is_empty() {
            self.err(&states_at, "'States' must hold at least one state");
        }
        let mut states = Vec::new();
        for (name, sv) in states_obj {
            let state_at = ptr(&states_at, name);
            if name.is_empty() || name.chars().count() > 80 {
                self.err(&state_at, "a state name must be 1 to 80 characters long");
            }
            if let Some(s) = self.state(name, sv, &state_at, depth) {
                states.push(s);
            }
        }
        let index: HashMap<String, usize> = states.iter().enumerate().map(|(i, s)| (s.name.clone(), i)).collect();
        let start_at = start_at?;
        if !states_obj.contains_key(&start_at) {
            self.err(ptr(at, "StartAt"), format!("StartAt names '{start_at}', which is not a state"));
        }
        // Transitions must name states of this same machine (not of a branch or the parent).
        let mut has_terminal = false;
        for s in &states {
            let s_at = ptr(&states_at, &s.name);
            for (target, field) in transitions(s) {
                if !states_obj.contains_key(&target) {
                    self.err(
                        format!("{s_at}{field}"),
                        format!("state '{}' goes to '{target}', which is not a state of this state machine", s.name),
                    );
                }
            }
            if matches!(s.kind, Kind::Succeed | Kind::Fail { .. }) || s.transition == Transition::End {
                has_terminal = true;
            }
        }
        if !states.is_empty() && !has_terminal {
            self.err(&states_at, "no state ends the execution (End, Succeed or Fail)");
        }
        // Every state must be reachable from StartAt.
        if states_obj.contains_key(&start_at) {
            let mut seen = HashSet::new();
            let mut queue = VecDeque::from([start_at.clone()]);
            while let Some(name) = queue.pop_front() {
                if !seen.insert(name.clone()) {
                    continue;
                }
                if let Some(&i) = index.get(&name) {
                    for (t, _) in transitions(&states[i]) {
                        queue.push_back(t);
                    }
                }
            }
            for s in &states {
                if !seen.contains(&s.name) {
                    self.err(ptr(&states_at, &s.name), format!("state '{}' is not reachable from StartAt", s.name));
                }
            }
        }
        Some(StateMachine { start_at, states, index, timeout_seconds, comment })
    }

    fn processor_config(&mut self, v: &Value, at: &str) {
        let Some(obj) = v.as_object() else {
            self.err(at, "ProcessorConfig must be an object");
            return;
        };
        for (k, val) in obj {
            match k.as_str() {
                "Mode" => {
                    if val != "INLINE" && val != "DISTRIBUTED" {
                        self.err(ptr(at, k), "Mode must be INLINE or DISTRIBUTED");
                    }
                }
                "ExecutionType" => {
                    if val != "STANDARD" && val != "EXPRESS" {
                        self.err(ptr(at, k), "ExecutionType must be STANDARD or EXPRESS");
                    }
                }
                _ => self.err(ptr(at, k), format!("field '{k}' is not allowed in ProcessorConfig")),
            }
        }
    }

    fn state(&mut self, name: &str, v: &Value, at: &str, depth: usize) -> Option<State> {
        let Some(obj) = v.as_object() else {
            self.err(at, format!("state '{name}' must be a JSON object"));
            return None;
        };
        let type_name = match obj.get("Type") {
            Some(Value::String(t)) => t.clone(),
            Some(_) => {
                self.err(ptr(at, "Type"), "Type must be a string");
                return None;
            }
            None => {
                self.err(at, format!("state '{name}' has no Type"));
                return None;
            }
        };
        let allowed = allowed_fields(&type_name);
        if allowed.len() == COMMON.len() {
            self.err(
                ptr(at, "Type"),
                format!("unknown state type '{type_name}' (expected Pass, Task, Choice, Wait, Succeed, Fail, Parallel or Map)"),
            );
            return None;
        }
        for key in obj.keys() {
            if !allowed.contains(&key.as_str()) {
                let hint = if matches!(key.as_str(), "ItemReader" | "ResultWriter" | "ItemBatcher") {
                    " (distributed Map readers and writers are not supported; pass the items in the input)"
                } else {
                    ""
                };
                self.err(ptr(at, key), format!("field '{key}' is not allowed in a {type_name} state{hint}"));
            }
        }
        let _ = self.opt_string(obj, at, "Comment");

        let input_path = self.path_field(obj, at, "InputPath");
        let output_path = self.path_field(obj, at, "OutputPath");
        let result_path = self.result_path(obj, at, "ResultPath");
        let parameters = obj.get("Parameters").map(|p| {
            self.template(p, &ptr(at, "Parameters"));
            p.clone()
        });
        let result_selector = obj.get("ResultSelector").map(|p| {
            self.template(p, &ptr(at, "ResultSelector"));
            p.clone()
        });
        let transition = if matches!(type_name.as_str(), "Choice" | "Succeed" | "Fail") {
            Transition::End
        } else {
            self.transition(obj, at, name)
        };
        let retry = match obj.get("Retry") {
            Some(r) => self.retriers(r, &ptr(at, "Retry")),
            None => Vec::new(),
        };
        let catch = match obj.get("Catch") {
            Some(c) => self.catchers(c, &ptr(at, "Catch")),
            None => Vec::new(),
        };

        let kind = match type_name.as_str() {
            "Pass" => Kind::Pass { result: obj.get("Result").cloned() },
            "Task" => Kind::Task(self.task(obj, at)?),
            "Choice" => {
                let choices = match obj.get("Choices") {
                    Some(c) => {
                        if c.as_array().is_some_and(|a| a.is_empty()) {
                            self.err(ptr(at, "Choices"), "Choices must hold at least one rule");
                        }
                        choice::parse_choices(c, &ptr(at, "Choices"), self.diags)
                    }
                    None => {
                        self.err(at, format!("Choice state '{name}' has no Choices"));
                        Vec::new()
                    }
                };
                let default = self.opt_string(obj, at, "Default");
                Kind::Choice { choices, default }
            }
            "Wait" => Kind::Wait(self.wait(obj, at, name)?),
            "Succeed" => Kind::Succeed,
            "Fail" => {
                let error = self.string_or_path(obj, at, "Error", "ErrorPath");
                let cause = self.string_or_path(obj, at, "Cause", "CausePath");
                Kind::Fail { error, cause }
            }
            "Parallel" => {
                let branches_at = ptr(at, "Branches");
                let branches = match obj.get("Branches") {
                    Some(Value::Array(items)) if !items.is_empty() => items
                        .iter()
                        .enumerate()
                        .filter_map(|(i, b)| self.machine(b, &ptr(&branches_at, &i.to_string()), depth + 1, false))
                        .collect(),
                    Some(_) => {
                        self.err(&branches_at, "Branches must be a non-empty array of state machines");
                        Vec::new()
                    }
                    None => {
                        self.err(at, format!("Parallel state '{name}' has no Branches"));
                        Vec::new()
                    }
                };
                Kind::Parallel { branches }
            }
            "Map" => Kind::Map(self.map(obj, at, name, depth)?),
            _ => unreachable!("state types are checked above"),
        };
        Some(State {
            name: name.to_string(),
            kind,
            input_path,
            output_path,
            parameters,
            result_selector,
            result_path,
            transition,
            retry,
            catch,
            reads_context: v.to_string().contains("$$"),
        })
    }

    fn task(&mut self, obj: &Map<String, Value>, at: &str) -> Option<TaskSpec> {
        let resource = self.req_string(obj, at, "Resource")?;
        let Some((step, wait_for_token)) = StepRegistry::parse_resource(&resource) else {
            self.err(
                ptr(at, "Resource"),
                format!("resource '{resource}' is not a local step; Task resources are 'pixelflow:<step>'"),
            );
            return None;
        };
        if self.steps.get(step).is_none() {
            let known: Vec<&str> = self.steps.names().collect();
            self.err(
                ptr(at, "Resource"),
                format!("unknown step '{step}' in resource '{resource}' (known steps: {})", known.join(", ")),
            );
        }
        let timeout = self.number_or_path(obj, at, "TimeoutSeconds", "TimeoutSecondsPath", 1.0);
        let heartbeat = self.number_or_path(obj, at, "HeartbeatSeconds", "HeartbeatSecondsPath", 1.0);
        if let (Some(NumberOrPath::Value(t)), Some(NumberOrPath::Value(h))) = (&timeout, &heartbeat) {
            if h >= t {
                self.err(ptr(at, "HeartbeatSeconds"), "HeartbeatSeconds must be smaller than TimeoutSeconds");
            }
        }
        if let Some(c) = obj.get("Credentials") {
            if !c.is_object() {
                self.err(ptr(at, "Credentials"), "Credentials must be an object");
            }
        }
        Some(TaskSpec { resource: resource.clone(), step: step.to_string(), wait_for_token, timeout, heartbeat })
    }

    fn wait(&mut self, obj: &Map<String, Value>, at: &str, name: &str) -> Option<Wait> {
        let fields = ["Seconds", "SecondsPath", "Timestamp", "TimestampPath"];
        let present: Vec<&str> = fields.iter().copied().filter(|f| obj.contains_key(*f)).collect();
        if present.len() != 1 {
            self.err(at, format!("Wait state '{name}' needs exactly one of Seconds, SecondsPath, Timestamp, TimestampPath"));
            return None;
        }
        let field = present[0];
        let f_at = ptr(at, field);
        let v = &obj[field];
        match field {
            "Seconds" => match v.as_f64() {
                Some(s) if s >= 0.0 && v.is_u64() => Some(Wait::Seconds(s)),
                _ => {
                    self.err(f_at, "Seconds must be a non-negative integer");
                    None
                }
            },
            "Timestamp" => match v.as_str() {
                Some(t) if chrono::DateTime::parse_from_rfc3339(t).is_ok() => Some(Wait::Timestamp(t.to_string())),
                _ => {
                    self.err(f_at, "Timestamp must be an RFC 3339 timestamp such as 2026-01-31T12:00:00Z");
                    None
                }
            },
            _ => {
                let p = self.reference_path(v, &f_at)?;
                Some(if field == "SecondsPath" { Wait::SecondsPath(p) } else { Wait::TimestampPath(p) })
            }
        }
    }

    fn map(&mut self, obj: &Map<String, Value>, at: &str, name: &str, depth: usize) -> Option<MapSpec> {
        let processor_v = match (obj.get("ItemProcessor"), obj.get("Iterator")) {
            (Some(p), None) => (p, "ItemProcessor"),
            (None, Some(i)) => (i, "Iterator"),
            (Some(_), Some(_)) => {
                self.err(at, format!("Map state '{name}' has both ItemProcessor and Iterator; keep ItemProcessor"));
                return None;
            }
            (None, None) => {
                self.err(at, format!("Map state '{name}' has no ItemProcessor"));
                return None;
            }
        };
        if obj.contains_key("ItemSelector") && obj.contains_key("Parameters") {
            self.err(ptr(at, "Parameters"), "ItemSelector and Parameters cannot both be set; Parameters is the older name");
        }
        let item_selector = obj.get("ItemSelector").or_else(|| obj.get("Parameters")).map(|s| {
            self.template(s, &ptr(at, if obj.contains_key("ItemSelector") { "ItemSelector" } else { "Parameters" }));
            s.clone()
        });
        let items_path = match obj.get("ItemsPath") {
            None => "$".to_string(),
            Some(v) => self.reference_path(v, &ptr(at, "ItemsPath"))?,
        };
        let processor = self.machine(processor_v.0, &ptr(at, processor_v.1), depth + 1, false)?;
        let max_concurrency = self.number_or_path(obj, at, "MaxConcurrency", "MaxConcurrencyPath", 0.0);
        let tolerated_failure_percentage =
            self.number_or_path(obj, at, "ToleratedFailurePercentage", "ToleratedFailurePercentagePath", 0.0);
        if let Some(NumberOrPath::Value(p)) = tolerated_failure_percentage {
            if p > 100.0 {
                self.err(ptr(at, "ToleratedFailurePercentage"), "ToleratedFailurePercentage must be between 0 and 100");
            }
        }
        let tolerated_failure_count =
            self.number_or_path(obj, at, "ToleratedFailureCount", "ToleratedFailureCountPath", 0.0);
        Some(MapSpec {
            items_path,
            item_selector,
            processor: Box::new(processor),
            max_concurrency,
            tolerated_failure_percentage,
            tolerated_failure_count,
        })
    }

    fn transition(&mut self, obj: &Map<String, Value>, at: &str, name: &str) -> Transition {
        match (obj.get("Next"), obj.get("End")) {
            (Some(Value::String(n)), None) => Transition::Next(n.clone()),
            (Some(_), None) => {
                self.err(ptr(at, "Next"), "Next must be a string");
                Transition::End
            }
            (None, Some(Value::Bool(true))) => Transition::End,
            (None, Some(_)) => {
                self.err(ptr(at, "End"), "End must be true (or use Next)");
                Transition::End
            }
            (Some(_), Some(_)) => {
                self.err(at, format!("state '{name}' has both Next and End"));
                Transition::End
            }
            (None, None) => {
                self.err(at, format!("state '{name}' has neither Next nor End"));
                Transition::End
            }
        }
    }

    fn retriers(&mut self, v: &Value, at: &str) -> Vec<Retrier> {
        let Some(items) = v.as_array() else {
            self.err(at, "Retry must be an array");
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, r) in items.iter().enumerate() {
            let r_at = ptr(at, &i.to_string());
            let Some(obj) = r.as_object() else {
                self.err(&r_at, "a retrier must be an object");
                continue;
            };
            for key in obj.keys() {
                if !matches!(
                    key.as_str(),
                    "ErrorEquals" | "IntervalSeconds" | "MaxAttempts" | "BackoffRate" | "MaxDelaySeconds" | "JitterStrategy" | "Comment"
                ) {
                    self.err(ptr(&r_at, key), format!("field '{key}' is not allowed in a retrier"));
                }
            }
            let error_equals = self.error_equals(obj, &r_at, i + 1 == items.len());
            let interval_seconds = self.opt_uint(obj, &r_at, "IntervalSeconds", 1).map_or(1.0, |v| v as f64);
            let max_attempts = self.opt_uint(obj, &r_at, "MaxAttempts", 0).map_or(3, |v| v.min(99_999_999) as u32);
            let backoff_rate = match obj.get("BackoffRate") {
                None => 2.0,
                Some(b) => match b.as_f64() {
                    Some(x) if x >= 1.0 => x,
                    _ => {
                        self.err(ptr(&r_at, "BackoffRate"), "BackoffRate must be a number >= 1.0");
                        2.0
                    }
                },
            };
            let max_delay_seconds = self.opt_uint(obj, &r_at, "MaxDelaySeconds", 1).map(|v| v as f64);
            let jitter = match obj.get("JitterStrategy") {
                None => Jitter::None,
                Some(j) if j == "NONE" => Jitter::None,
                Some(j) if j == "FULL" => Jitter::Full,
                Some(_) => {
                    self.err(ptr(&r_at, "JitterStrategy"), "JitterStrategy must be FULL or NONE");
                    Jitter::None
                }
            };
            out.push(Retrier { error_equals, interval_seconds, max_attempts, backoff_rate, max_delay_seconds, jitter });
        }
        out
    }

    fn catchers(&mut self, v: &Value, at: &str) -> Vec<Catcher> {
        let Some(items) = v.as_array() else {
            self.err(at, "Catch must be an array");
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, c) in items.iter().enumerate() {
            let c_at = ptr(at, &i.to_string());
            let Some(obj) = c.as_object() else {
                self.err(&c_at, "a catcher must be an object");
                continue;
            };
            for key in obj.keys() {
                if !matches!(key.as_str(), "ErrorEquals" | "Next" | "ResultPath" | "Comment") {
                    self.err(ptr(&c_at, key), format!("field '{key}' is not allowed in a catcher"));
                }
            }
            let error_equals = self.error_equals(obj, &c_at, i + 1 == items.len());
            let result_path = self.result_path(obj, &c_at, "ResultPath");
            if let Some(next) = self.req_string(obj, &c_at, "Next") {
                out.push(Catcher { error_equals, next, result_path });
            }
        }
        out
    }

    fn error_equals(&mut self, obj: &Map<String, Value>, at: &str, is_last: bool) -> Vec<String> {
        let e_at = ptr(at, "ErrorEquals");
        let names: Vec<String> = match obj.get("ErrorEquals") {
            Some(Value::Array(items)) if !items.is_empty() => items
                .iter()
                .enumerate()
                .filter_map(|(i, e)| match e.as_str() {
                    Some(s) => Some(s.to_string()),
                    None => {
                        self.err(ptr(&e_at, &i.to_string()), "error names must be strings");
                        None
                    }
                })
                .collect(),
            Some(_) => {
                self.err(&e_at, "ErrorEquals must be a non-empty array of error names");
                Vec::new()
            }
            None => {
                self.err(at, "ErrorEquals is required");
                Vec::new()
            }
        };
        if names.iter().any(|n| n == crate::error::names::ALL) {
            if names.len() > 1 {
                self.err(&e_at, "States.ALL must appear alone in ErrorEquals");
            }
            if !is_last {
                self.err(&e_at, "States.ALL must be in the last retrier or catcher");
            }
        }
        names
    }

    /// Checks a payload template (Parameters, ResultSelector, ItemSelector): every key ending in
    /// `.$` holds a path or an intrinsic call.
    fn template(&mut self, v: &Value, at: &str) {
        match v {
            Value::Object(obj) => {
                for (k, val) in obj {
                    let k_at = ptr(at, k);
                    if k.ends_with(".$") {
                        match val.as_str() {
                            Some(s) if intrinsics::is_intrinsic(s) => {
                                if let Err(e) = intrinsics::check(s) {
                                    self.err(k_at, format!("bad intrinsic function call: {e}"));
                                }
                            }
                            Some(s) => {
                                if let Err(e) = path::check_syntax(s) {
                                    self.err(k_at, e);
                                }
                            }
                            None => self.err(k_at, format!("the value of '{k}' must be a path or an intrinsic function call")),
                        }
                    } else {
                        self.template(val, &k_at);
                    }
                }
            }
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    self.template(item, &ptr(at, &i.to_string()));
                }
            }
            _ => {}
        }
    }

    fn path_field(&mut self, obj: &Map<String, Value>, at: &str, field: &str) -> PathField {
        match obj.get(field) {
            None => PathField::Default,
            Some(Value::Null) => PathField::Null,
            Some(Value::String(s)) => match path::check_syntax(s) {
                Ok(()) => PathField::Path(s.clone()),
                Err(e) => {
                    self.err(ptr(at, field), e);
                    PathField::Default
                }
            },
            Some(_) => {
                self.err(ptr(at, field), format!("{field} must be a path string or null"));
                PathField::Default
            }
        }
    }

    fn result_path(&mut self, obj: &Map<String, Value>, at: &str, field: &str) -> ResultPath {
        match obj.get(field) {
            None => ResultPath::Replace,
            Some(Value::Null) => ResultPath::Discard,
            Some(Value::String(s)) => match ReferencePath::parse(s) {
                Some(p) if p.segments.is_empty() => ResultPath::Replace,
                Some(p) => ResultPath::At(p),
                None => {
                    self.err(ptr(at, field), format!("{field} '{s}' must be a reference path such as $.result (no wildcards or filters)"));
                    ResultPath::Replace
                }
            },
            Some(_) => {
                self.err(ptr(at, field), format!("{field} must be a path string or null"));
                ResultPath::Replace
            }
        }
    }

    fn reference_path(&mut self, v: &Value, at: &str) -> Option<String> {
        match v.as_str() {
            Some(s) if s.starts_with("$$") && ReferencePath::parse(&s[1..]).is_some() => Some(s.to_string()),
            Some(s) if ReferencePath::parse(s).is_some() => Some(s.to_string()),
            Some(s) => {
                self.err(at, format!("'{s}' must be a reference path such as $.items (no wildcards or filters)"));
                None
            }
            None => {
                self.err(at, "must be a path string");
                None
            }
        }
    }

    fn number_or_path(
        &mut self,
        obj: &Map<String, Value>,
        at: &str,
        field: &str,
        path_field: &str,
        min: f64,
    ) -> Option<NumberOrPath> {
        match (obj.get(field), obj.get(path_field)) {
            (Some(_), Some(_)) => {
                self.err(at, format!("{field} and {path_field} cannot both be set"));
                None
            }
            (Some(v), None) => match v.as_f64() {
                Some(n) if n >= min && (v.is_u64() || field.contains("Percentage")) => Some(NumberOrPath::Value(n)),
                _ => {
                    let what = if field.contains("Percentage") { "a number" } else { "an integer" };
                    self.err(ptr(at, field), format!("{field} must be {what} >= {min}"));
                    None
                }
            },
            (None, Some(p)) => self.reference_path(p, &ptr(at, path_field)).map(NumberOrPath::Path),
            (None, None) => None,
        }
    }

    fn string_or_path(&mut self, obj: &Map<String, Value>, at: &str, field: &str, path_field: &str) -> Option<StringOrPath> {
        match (obj.get(field), obj.get(path_field)) {
            (Some(_), Some(_)) => {
                self.err(at, format!("{field} and {path_field} cannot both be set"));
                None
            }
            (Some(Value::String(s)), None) => Some(StringOrPath::Value(s.clone())),
            (Some(_), None) => {
                self.err(ptr(at, field), format!("{field} must be a string"));
                None
            }
            (None, Some(Value::String(p))) => {
                let check = if intrinsics::is_intrinsic(p) { intrinsics::check(p) } else { path::check_syntax(p) };
                match check {
                    Ok(()) => Some(StringOrPath::Path(p.clone())),
                    Err(e) => {
                        self.err(ptr(at, path_field), e);
                        None
                    }
                }
            }
            (None, Some(_)) => {
                self.err(ptr(at, path_field), format!("{path_field} must be a path or intrinsic function string"));
                None
            }
            (None, None) => None,
        }
    }

    fn req_string(&mut self, obj: &Map<String, Value>, at: &str, field: &str) -> Option<String> {
        match obj.get(field) {
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                self.err(ptr(at, field), format!("{field} must be a string"));
                None
            }
            None => {
                self.err(at, format!("{field} is required"));
                None
            }
        }
    }

    fn opt_string(&mut self, obj: &Map<String, Value>, at: &str, field: &str) -> Option<String> {
        match obj.get(field) {
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                self.err(ptr(at, field), format!("{field} must be a string"));
                None
            }
            None => None,
        }
    }

    fn opt_uint(&mut self, obj: &Map<String, Value>, at: &str, field: &str, min: u64) -> Option<u64> {
        match obj.get(field) {
            None => None,
            Some(v) => match v.as_u64() {
                Some(n) if n >= min => Some(n),
                _ => {
                    self.err(ptr(at, field), format!("{field} must be an integer >= {min}"));
                    None
                }
            },
        }
    }
}

/// State names must be unique in the whole state machine, branches and item processors
/// included (the ASL specification; Step Functions refuses duplicates).
fn unique_names(m: &StateMachine, at: &str, seen: &mut HashMap<String, String>, diags: &mut Diagnostics) {
    for s in &m.states {
        let s_at = ptr(&ptr(at, "States"), &s.name);
        if let Some(first) = seen.get(&s.name) {
            diags.push(&s_at, format!("state name '{}' is already used at {first}; state names must be unique in the whole state machine", s.name));
        } else {
            seen.insert(s.name.clone(), s_at.clone());
        }
        match &s.kind {
            Kind::Parallel { branches } => {
                for (i, b) in branches.iter().enumerate() {
                    unique_names(b, &ptr(&ptr(&s_at, "Branches"), &i.to_string()), seen, diags);
                }
            }
            Kind::Map(spec) => unique_names(&spec.processor, &ptr(&s_at, "ItemProcessor"), seen, diags),
            _ => {}
        }
    }
}

/// Every state a state can go to, with the pointer suffix of the field that names it.
fn transitions(s: &State) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Transition::Next(n) = &s.transition {
        out.push((n.clone(), "/Next".to_string()));
    }
    if let Kind::Choice { choices, default } = &s.kind {
        for (i, c) in choices.iter().enumerate() {
            out.push((c.next.clone(), format!("/Choices/{i}/Next")));
        }
        if let Some(d) = default {
            out.push((d.clone(), "/Default".to_string()));
        }
    }
    for (i, c) in s.catch.iter().enumerate() {
        out.push((c.next.clone(), format!("/Catch/{i}/Next")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn steps() -> StepRegistry {
        let mut r = StepRegistry::new();
        r.register("echo", |v: Value, _: &crate::step::TaskContext| Ok(v));
        r
    }

    fn diags(def: Value) -> Vec<String> {
        match parse(&def, &steps()) {
            Ok(_) => Vec::new(),
            Err(d) => d.iter().map(|d| d.to_string()).collect(),
        }
    }

    #[test]
    fn minimal_machine_is_valid() {
        assert!(diags(json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "End": true}}})).is_empty());
    }

    #[test]
    fn collects_every_fault_with_pointers() {
        let d = diags(json!({
            "StartAt": "A",
            "States": {
                "A": {"Type": "Pass", "Next": "Nowhere", "Bogus": 1},
                "B": {"Type": "Task", "Resource": "pixelflow:nope", "End": true},
                "C": {"Type": "Choice", "Choices": []}
            }
        }));
        let all = d.join("\n");
        assert!(all.contains("/States/A/Next: state 'A' goes to 'Nowhere'"), "{all}");
        assert!(all.contains("/States/A/Bogus: field 'Bogus' is not allowed in a Pass state"), "{all}");
        assert!(all.contains("/States/B/Resource: unknown step 'nope'"), "{all}");
        assert!(all.contains("/States/C/Choices: Choices must hold at least one rule"), "{all}");
        assert!(all.contains("/States/B: state 'B' is not reachable"), "{all}");
    }

    #[test]
    fn missing_transition_and_terminal() {
        let d = diags(json!({"StartAt": "A", "States": {"A": {"Type": "Pass"}}}));
        assert!(d.iter().any(|m| m.contains("neither Next nor End")), "{d:?}");
        let d = diags(json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "A"}}}));
        assert!(d.iter().any(|m| m.contains("no state ends the execution")), "{d:?}");
    }

    #[test]
    fn retry_and_catch_rules() {
        let d = diags(json!({"StartAt": "A", "States": {
            "A": {"Type": "Task", "Resource": "pixelflow:echo", "End": true,
                  "Retry": [{"ErrorEquals": ["States.ALL", "X"], "BackoffRate": 0.5}, {"ErrorEquals": ["Y"]}],
                  "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "A"}]}
        }}));
        let all = d.join("\n");
        assert!(all.contains("/States/A/Retry/0/ErrorEquals: States.ALL must appear alone"), "{all}");
        assert!(all.contains("/States/A/Retry/0/ErrorEquals: States.ALL must be in the last"), "{all}");
        assert!(all.contains("/States/A/Retry/0/BackoffRate"), "{all}");
    }

    #[test]
    fn nested_machines_are_checked_and_bounded() {
        let d = diags(json!({"StartAt": "P", "States": {"P": {"Type": "Parallel", "End": true, "Branches": [
            {"StartAt": "X", "States": {"X": {"Type": "Pass", "Next": "Outside"}}}
        ]}}}));
        assert!(d.iter().any(|m| m.starts_with("/States/P/Branches/0/States/X/Next")), "{d:?}");

        let mut inner = json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "End": true}}});
        for _ in 0..40 {
            inner = json!({"StartAt": "M", "States": {"M": {"Type": "Map", "End": true, "ItemProcessor": inner}}});
        }
        let d = diags(inner);
        assert!(d.iter().any(|m| m.contains("nested more than")), "{d:?}");
    }

    #[test]
    fn bad_paths_and_templates() {
        let d = diags(json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "End": true,
            "InputPath": "nope", "ResultPath": "$.a[*]", "Parameters": {"x.$": 3, "y.$": "States.Nope(1)"}}}}));
        let all = d.join("\n");
        assert!(all.contains("/States/A/InputPath"), "{all}");
        assert!(all.contains("/States/A/ResultPath"), "{all}");
        assert!(all.contains("/States/A/Parameters/x.$"), "{all}");
        assert!(all.contains("/States/A/Parameters/y.$"), "{all}");
    }

    #[test]
    fn state_names_are_unique_across_branches() {
        let d = diags(json!({"StartAt": "P", "States": {"P": {"Type": "Parallel", "End": true, "Branches": [
            {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}
        ]}}}));
        assert!(d.iter().any(|m| m.starts_with("/States/P/Branches/0/States/P: state name 'P' is already used at /States/P")), "{d:?}");
    }

    #[test]
    fn json_syntax_error_is_reported() {
        let e = parse_str("{\"StartAt\": ", &steps()).unwrap_err();
        assert!(e.to_string().contains("not valid JSON"), "{e}");
    }
}
