//! The step registry every entry point uses: the image steps (provided by their crates as they
//! land: validate, resize, filter and optimize by crates/imaging), the notify step, and small
//! utility steps for building and debugging workflows.

use std::io::Write;
use std::time::Duration;

use pixelflow_engine::{Failure, StepRegistry, TaskContext};
use serde_json::{json, Value};

/// Environment variable that adds the test-only steps (`test.*`) to the registry.
pub const TEST_STEPS_ENV: &str = "PIXELFLOW_TEST_STEPS";

/// Builds the registry of every step this build offers.
pub fn registry() -> StepRegistry {
    let mut steps = StepRegistry::new();
    // validate, resize, filter, optimize.
    pixelflow_imaging::steps::register(&mut steps);
    // filter on the GPU: crates/gpu (issue 8) replaces imaging's filter with a device-aware one.
    pixelflow_gpu::register(&mut steps);
    // segment: crates/segment (issue 7), ONNX Runtime found at run time.
    pixelflow_segment::register(&mut steps);
    // sync: crates/sync. This registration records nothing; `App::open` registers it again
    // with the history as its upload log (`export::register_sync`).
    pixelflow_sync::register(&mut steps, std::sync::Arc::new(pixelflow_sync::NoLog));
    steps.register("notify", notify);
    steps.register("echo", |input: Value, _: &TaskContext| Ok(input));
    steps.register("sleep", sleep);
    steps.register("fail", fail);
    steps.register("review", review);
    if std::env::var_os(TEST_STEPS_ENV).is_some_and(|v| v == "1") {
        steps.register("test.append", test_append);
    }
    steps
}

/// `pixelflow:notify`: records the outcome of an image's run where people look: the log (the
/// CLI prints it; the desktop app will turn it into a notification) and, optionally, a webhook
/// that receives the outcome as JSON.
///
/// The webhook is `webhookEnv` (the name of an environment variable holding the URL: the way to
/// pass a URL that carries a token, since step parameters are recorded in the history) or
/// `webhook` (a URL without secrets). A webhook that fails or answers an error status fails the
/// task with `Pixelflow.WebhookFailed`, which the workflow can Retry.
fn notify(input: Value, ctx: &TaskContext) -> Result<Value, Failure> {
    let status = input.get("status").and_then(Value::as_str).unwrap_or("INFO").to_string();
    let path = input.get("path").and_then(Value::as_str).unwrap_or("");
    match status.as_str() {
        "FAILED" => {
            let error = input.get("error").cloned().unwrap_or(Value::Null);
            tracing::warn!(execution = %ctx.execution_id, path, %error, "image failed")
        }
        _ => tracing::info!(execution = %ctx.execution_id, path, status, "image processed"),
    }
    let url = match (input.get("webhookEnv").and_then(Value::as_str), input.get("webhook").and_then(Value::as_str)) {
        (Some(var), _) => Some(std::env::var(var).map_err(|_| {
            Failure::new("Pixelflow.InvalidParameters", format!("webhookEnv names {var}, which is not set"))
        })?),
        (None, Some(url)) => Some(url.to_string()),
        (None, None) => None,
    };
    let mut delivered = false;
    if let Some(url) = url {
        let mut body = input.clone();
        if let Some(obj) = body.as_object_mut() {
            obj.remove("webhook");
            obj.remove("webhookEnv");
            obj.insert("execution".into(), json!(ctx.execution_id));
            obj.insert("state".into(), json!(ctx.state_name));
        }
        post_json(&url, &body)?;
        delivered = true;
    }
    Ok(json!({ "notified": true, "status": status, "webhookDelivered": delivered }))
}

/// How long a webhook may take before the task fails (and may be retried).
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);

/// POSTs `body` to `url`. Errors never include the URL, which may carry a token.
fn post_json(url: &str, body: &Value) -> Result<(), Failure> {
    let agent: ureq::Agent = ureq::Agent::config_builder().timeout_global(Some(WEBHOOK_TIMEOUT)).http_status_as_error(false).build().into();
    let failed = |why: String| Failure::new("Pixelflow.WebhookFailed", why);
    let response = agent
        .post(url)
        .header("content-type", "application/json")
        .send(body.to_string())
        .map_err(|e| failed(format!("the webhook could not be reached: {}", redact(&e.to_string(), url))))?;
    let code = response.status().as_u16();
    if !(200..300).contains(&code) {
        return Err(failed(format!("the webhook answered HTTP {code}")));
    }
    Ok(())
}

/// Removes the URL (and its query, where tokens live) from an error message.
fn redact(message: &str, url: &str) -> String {
    message.replace(url, "<webhook>")
}

/// `pixelflow:sleep`: waits `seconds` (cancellable), sending heartbeats every `heartbeatEvery`
/// seconds if given. Returns its input. Useful to test timeouts and to pace workflows.
fn sleep(input: Value, ctx: &TaskContext) -> Result<Value, Failure> {
    let seconds = input.get("seconds").and_then(Value::as_f64).unwrap_or(0.0);
    if !(0.0..=86_400.0).contains(&seconds) {
        return Err(Failure::new("Pixelflow.InvalidParameters", "seconds must be between 0 and 86400"));
    }
    let every = input.get("heartbeatEvery").and_then(Value::as_f64).filter(|e| *e > 0.0);
    let mut left = seconds;
    while left > 0.0 {
        let slice = every.unwrap_or(left).min(left);
        if !ctx.sleep(Duration::from_secs_f64(slice)) {
            return Err(Failure::new(pixelflow_engine::error::names::ABORTED, "cancelled"));
        }
        ctx.heartbeat();
        left -= slice;
    }
    Ok(input)
}

/// `pixelflow:fail`: raises `error`/`cause` (for testing Retry and Catch). With `failTimes: N`
/// only the first N attempts fail, so a Retry can be seen succeeding.
fn fail(input: Value, ctx: &TaskContext) -> Result<Value, Failure> {
    let error = input.get("error").and_then(Value::as_str).unwrap_or("Pixelflow.Failed");
    let cause = input.get("cause").and_then(Value::as_str).unwrap_or("failed on purpose");
    match input.get("failTimes").and_then(Value::as_u64) {
        Some(n) if u64::from(ctx.retry_count) >= n => Ok(json!({ "attempts": ctx.retry_count + 1 })),
        _ => Err(Failure::new(error, cause)),
    }
}

/// `pixelflow:review`: hands an image to a person. Used as `pixelflow:review.waitForTaskToken`:
/// the execution waits until someone approves (`pixelflow task success`) or rejects it.
fn review(input: Value, ctx: &TaskContext) -> Result<Value, Failure> {
    match &ctx.task_token {
        Some(token) => {
            tracing::info!(execution = %ctx.execution_id, state = %ctx.state_name, token = %token, "waiting for review: answer with `pixelflow task success|failure {token}`");
            Ok(input)
        }
        None => Err(Failure::new(
            "Pixelflow.InvalidParameters",
            "the review step waits for a person: use it as \"pixelflow:review.waitForTaskToken\"",
        )),
    }
}

/// `pixelflow:test.append` (test builds only, see [`TEST_STEPS_ENV`]): appends `line` to `file`.
/// Deliberately not idempotent, so tests can count how often a task really ran.
fn test_append(input: Value, ctx: &TaskContext) -> Result<Value, Failure> {
    let file = input.get("file").and_then(Value::as_str).ok_or_else(|| Failure::new("Pixelflow.InvalidParameters", "file is required"))?;
    let line = input.get("line").map(|l| l.as_str().map(str::to_string).unwrap_or_else(|| l.to_string())).unwrap_or_default();
    if let Some(secs) = input.get("sleepBefore").and_then(Value::as_f64) {
        if !ctx.sleep(Duration::from_secs_f64(secs)) {
            return Err(Failure::new(pixelflow_engine::error::names::ABORTED, "cancelled"));
        }
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)
        .map_err(|e| Failure::new(pixelflow_engine::error::names::TASK_FAILED, format!("{file}: {e}")))?;
    // One write of the whole line: O_APPEND keeps concurrent Map items from interleaving.
    f.write_all(format!("{line}\n").as_bytes()).and_then(|_| f.sync_data()).map_err(|e| Failure::new(pixelflow_engine::error::names::TASK_FAILED, e.to_string()))?;
    Ok(json!({ "appended": line }))
}
