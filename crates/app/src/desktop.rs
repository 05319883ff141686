//! What the desktop app (`src-tauri`) needs beyond the CLI's calls: a batch whose progress is
//! throttled into a few messages a second for the webview, the files an execution read and
//! wrote (the before/after viewer), and the user's own workflows kept in the data dir.
//!
//! Nothing here knows Tauri: progress goes to a plain `Fn(RunMessage)` sink, so the throttling
//! is tested here and the shell stays a thin layer of commands.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pixelflow_engine::{CancelToken, Diagnostic};
use pixelflow_history::{ExecutionFilter, ExecutionRecord, ExecutionStatus};
use serde::Serialize;
use serde_json::Value;

use crate::batch::{self, BatchOptions, ItemReport};
use crate::error::{Error, Result};
use crate::workflow::{Workflow, BUNDLED, MAX_DEFINITION_BYTES};
use crate::App;

/// At most one progress message per this interval for one run (10 a second), however many
/// images finish in it: 10,000 images never flood the webview.
pub const PROGRESS_INTERVAL: Duration = Duration::from_millis(100);

/// What a running batch tells the UI, in order: `started` (after hashing), `progress` (at most
/// every [`PROGRESS_INTERVAL`]), then `finished` or `failed`.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum RunMessage {
    Started { to_run: usize, cached: usize },
    Progress {
        /// The batch execution, once it is known (for the live graph).
        execution_id: Option<String>,
        done: usize,
        failed: usize,
        to_run: usize,
        /// The images finished since the previous message.
        items: Vec<ItemDone>,
    },
    Finished { report: RunReport },
    Failed { message: String },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemDone {
    pub path: String,
    pub ok: bool,
}

/// A batch's report as the UI reads it (the CLI's `--json` report, with the time in ms).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunReport {
    pub execution_id: Option<String>,
    pub items: Vec<ItemReport>,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub elapsed_ms: u64,
    pub interrupted: bool,
}

type Sink = Box<dyn Fn(RunMessage) + Send + Sync>;

/// A [`batch::Progress`] that turns item events into [`RunMessage`]s, sending at most one
/// `progress` message per interval; what finished in between waits for the next one (a
/// ticker calls [`ThrottledProgress::tick`] so nothing waits longer than the interval).
pub struct ThrottledProgress {
    sink: Sink,
    interval: Duration,
    state: Mutex<Pending>,
}

#[derive(Default)]
struct Pending {
    to_run: usize,
    done: usize,
    failed: usize,
    items: Vec<ItemDone>,
    last_sent: Option<Instant>,
    execution_id: Option<String>,
}

impl ThrottledProgress {
    pub fn new(interval: Duration, sink: impl Fn(RunMessage) + Send + Sync + 'static) -> Self {
        ThrottledProgress { sink: Box::new(sink), interval, state: Mutex::new(Pending::default()) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records one finished image at `now`; sends if the interval has passed.
    pub fn item_finished_at(&self, path: &Path, ok: bool, now: Instant) {
        let mut p = self.lock();
        p.done += 1;
        if !ok {
            p.failed += 1;
        }
        p.items.push(ItemDone { path: path.to_string_lossy().into_owned(), ok });
        self.send_if_due(&mut p, now);
    }

    /// Sends what is pending if the interval has passed since the last message.
    pub fn tick_at(&self, now: Instant) {
        let mut p = self.lock();
        self.send_if_due(&mut p, now);
    }

    /// Sends what is pending now (at the end of a run).
    pub fn flush(&self) {
        let mut p = self.lock();
        self.send(&mut p, Instant::now());
    }

    /// Names the execution the batch runs as; the next message carries it.
    pub fn set_execution_id(&self, id: String) {
        self.lock().execution_id = Some(id);
    }

    pub fn execution_id(&self) -> Option<String> {
        self.lock().execution_id.clone()
    }

    fn send_if_due(&self, p: &mut Pending, now: Instant) {
        if p.last_sent.is_none_or(|last| now.saturating_duration_since(last) >= self.interval) {
            self.send(p, now);
        }
    }

    fn send(&self, p: &mut Pending, now: Instant) {
        if p.items.is_empty() {
            return;
        }
        let items = std::mem::take(&mut p.items);
        p.last_sent = Some(now);
        (self.sink)(RunMessage::Progress {
            execution_id: p.execution_id.clone(),
            done: p.done,
            failed: p.failed,
            to_run: p.to_run,
            items,
        });
    }
}

impl batch::Progress for ThrottledProgress {
    fn start(&self, to_run: usize, cached: usize) {
        self.lock().to_run = to_run;
        (self.sink)(RunMessage::Started { to_run, cached });
    }

    fn item_finished(&self, path: &Path, ok: bool) {
        self.item_finished_at(path, ok, Instant::now());
    }
}

/// Runs a batch as `pixelflow run` does, telling `sink` its progress (throttled) and its end.
/// Returns the report that the `finished` message carried.
pub fn run_batch(
    app: &App,
    workflow: &Workflow,
    paths: Vec<PathBuf>,
    opts: &BatchOptions,
    sink: impl Fn(RunMessage) + Send + Sync + 'static,
    cancel: &CancelToken,
) -> Result<RunReport> {
    let progress = Arc::new(ThrottledProgress::new(PROGRESS_INTERVAL, sink));
    let started_ms = app.clock().now_ms();
    let done = AtomicBool::new(false);
    let result = std::thread::scope(|scope| {
        scope.spawn(|| {
            while !done.load(Ordering::Acquire) {
                std::thread::sleep(PROGRESS_INTERVAL / 2);
                if progress.execution_id().is_none() {
                    if let Some(id) = running_execution(app, &workflow.name, started_ms) {
                        progress.set_execution_id(id);
                    }
                }
                progress.tick_at(Instant::now());
            }
        });
        let result = batch::run(app, workflow, paths, opts, progress.clone(), cancel);
        done.store(true, Ordering::Release);
        result
    });
    progress.flush();
    match result {
        Ok(report) => {
            let report = RunReport {
                execution_id: report.execution_id,
                items: report.items,
                bytes_in: report.bytes_in,
                bytes_out: report.bytes_out,
                elapsed_ms: u64::try_from(report.elapsed.as_millis()).unwrap_or(u64::MAX),
                interrupted: report.interrupted,
            };
            (progress.sink)(RunMessage::Finished { report: report.clone() });
            Ok(report)
        }
        Err(e) => {
            (progress.sink)(RunMessage::Failed { message: e.to_string() });
            Err(e)
        }
    }
}

/// The newest RUNNING execution of `workflow` started at or after `since_ms` (the batch that
/// this process just started; two batches of one workflow started together may be confused).
fn running_execution(app: &App, workflow: &str, since_ms: i64) -> Option<String> {
    let filter = ExecutionFilter {
        status: Some(ExecutionStatus::Running),
        workflow: Some(workflow.to_string()),
        since: Some(since_ms.to_string()),
        limit: Some(1),
        ..Default::default()
    };
    app.history().list_executions(&filter).ok()?.into_iter().next().map(|e| e.id)
}

/// A file an execution read or wrote, with its size now (`None`: it is gone).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FileInfo {
    pub path: String,
    pub bytes: Option<u64>,
}

/// One image of an execution and the files made from it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageFiles {
    pub input: FileInfo,
    pub outputs: Vec<FileInfo>,
}

/// The most image pairs [`execution_files`] returns for one execution.
pub const MAX_IMAGE_PAIRS: usize = 1000;

/// The images an execution read (`{"path"}` input, or a batch's `{"items": [...]}`) and the
/// files its output names (`"path"` fields), paired by item for a batch.
pub fn execution_files(record: &ExecutionRecord) -> Vec<ImageFiles> {
    let output = record.output.as_ref().unwrap_or(&Value::Null);
    let mut pairs = Vec::new();
    if let Some(path) = record.input.get("path").and_then(Value::as_str) {
        pairs.push(image_files(path, output));
    } else if let Some(items) = record.input.get("items").and_then(Value::as_array) {
        for (i, item) in items.iter().take(MAX_IMAGE_PAIRS).enumerate() {
            if let Some(path) = item.as_str() {
                pairs.push(image_files(path, output.get(i).unwrap_or(&Value::Null)));
            }
        }
    }
    pairs
}

fn image_files(input: &str, output: &Value) -> ImageFiles {
    fn collect<'a>(v: &'a Value, acc: &mut BTreeSet<&'a str>) {
        match v {
            Value::Object(map) => {
                for (k, v) in map {
                    match (k.as_str(), v) {
                        ("path", Value::String(s)) => {
                            acc.insert(s);
                        }
                        _ => collect(v, acc),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|i| collect(i, acc)),
            _ => {}
        }
    }
    let mut named = BTreeSet::new();
    collect(output, &mut named);
    named.remove(input);
    ImageFiles { input: file_info(input), outputs: named.into_iter().map(file_info).collect() }
}

fn file_info(path: &str) -> FileInfo {
    FileInfo { path: path.to_string(), bytes: std::fs::metadata(path).ok().filter(|m| m.is_file()).map(|m| m.len()) }
}

/// Every fault of a definition (empty when it is valid), as `pixelflow workflow validate`
/// finds them.
pub fn validate(app: &App, text: &str) -> Vec<Diagnostic> {
    match Workflow::from_text("workflow", text, app.steps()) {
        Ok(_) => Vec::new(),
        Err(d) => d.0,
    }
}

/// A workflow the app offers: bundled in the binary, or saved by the user in `workflows/` of
/// the data dir.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowEntry {
    pub name: String,
    /// What to pass to [`crate::watch::resolve_workflow`]: the bundled name, or the file path.
    pub id: String,
    pub bundled: bool,
    pub text: String,
}

fn workflows_dir(app: &App) -> PathBuf {
    app.data().root().join("workflows")
}

/// The bundled workflows, then the saved ones by name. A saved file that cannot be read is
/// skipped with a warning.
pub fn list_workflows(app: &App) -> Vec<WorkflowEntry> {
    let mut out: Vec<WorkflowEntry> = BUNDLED
        .iter()
        .map(|(name, text)| WorkflowEntry { name: name.to_string(), id: name.to_string(), bundled: true, text: text.to_string() })
        .collect();
    let mut saved = Vec::new();
    if let Ok(entries) = std::fs::read_dir(workflows_dir(app)) {
        for entry in entries.flatten() {
            let path = entry.path();
            let is_asl = path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.ends_with(".asl.json") && !n.starts_with('.'));
            if !is_asl {
                continue;
            }
            match crate::workflow::read_limited(&path, MAX_DEFINITION_BYTES) {
                Ok(text) => saved.push(WorkflowEntry {
                    name: crate::workflow::name_of(&path),
                    id: path.to_string_lossy().into_owned(),
                    bundled: false,
                    text,
                }),
                Err(e) => tracing::warn!(error = %e, "skipped a saved workflow"),
            }
        }
    }
    saved.sort_by(|a, b| a.name.cmp(&b.name));
    out.extend(saved);
    out
}

/// Saves a definition as `workflows/<name>.asl.json` in the data dir after validating it
/// (every fault is returned, nothing is written). Bundled names cannot be overwritten.
pub fn save_workflow(app: &App, name: &str, text: &str) -> Result<WorkflowEntry> {
    let valid_name = !name.is_empty()
        && name.len() <= 100
        && !name.starts_with('.')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !valid_name {
        return Err(Error::invalid("", format!("'{name}' is not a workflow name: use letters, digits, '-', '_' and '.'")));
    }
    if BUNDLED.iter().any(|(n, _)| *n == name) {
        return Err(Error::invalid("", format!("'{name}' is a bundled workflow; save the copy under another name")));
    }
    Workflow::from_text(name, text, app.steps()).map_err(Error::Invalid)?;
    let dir = workflows_dir(app);
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let path = dir.join(format!("{name}.asl.json"));
    // Written beside and renamed over, so a crash never leaves half a definition.
    let tmp = dir.join(format!(".{name}.asl.json.tmp"));
    std::fs::write(&tmp, text).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))?;
    Ok(WorkflowEntry { name: name.to_string(), id: path.to_string_lossy().into_owned(), bundled: false, text: text.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn collecting() -> (Arc<Mutex<Vec<RunMessage>>>, impl Fn(RunMessage) + Send + Sync + 'static) {
        let got = Arc::new(Mutex::new(Vec::new()));
        let sink = {
            let got = got.clone();
            move |m| got.lock().unwrap().push(m)
        };
        (got, sink)
    }

    #[test]
    fn ten_thousand_images_make_a_handful_of_messages() {
        let (got, sink) = collecting();
        let p = ThrottledProgress::new(Duration::from_millis(100), sink);
        batch::Progress::start(&p, 10_000, 0);
        let t0 = Instant::now();
        for i in 0..10_000 {
            // 10,000 images over 1 s of (simulated) time.
            p.item_finished_at(Path::new(&format!("/in/{i}.jpg")), i % 100 != 0, t0 + Duration::from_micros(i * 100));
        }
        p.flush();
        let got = got.lock().unwrap();
        assert_eq!(serde_json::to_value(&got[0]).unwrap(), json!({"kind": "started", "toRun": 10_000, "cached": 0}));
        let progress: Vec<_> = got[1..]
            .iter()
            .map(|m| match m {
                RunMessage::Progress { done, failed, items, .. } => (*done, *failed, items.len()),
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        // One message per 100 ms of the simulated second, plus the first and the final flush.
        assert!(progress.len() <= 12, "{} messages", progress.len());
        assert_eq!(progress.iter().map(|p| p.2).sum::<usize>(), 10_000);
        assert_eq!(progress.last().map(|p| (p.0, p.1)), Some((10_000, 100)));
    }

    #[test]
    fn a_tick_sends_what_waits_once_the_interval_passed() {
        let (got, sink) = collecting();
        let p = ThrottledProgress::new(Duration::from_millis(100), sink);
        let t0 = Instant::now();
        p.item_finished_at(Path::new("/a.jpg"), true, t0);
        p.item_finished_at(Path::new("/b.jpg"), false, t0 + Duration::from_millis(10));
        p.tick_at(t0 + Duration::from_millis(50));
        assert_eq!(got.lock().unwrap().len(), 1, "b waits for the interval");
        p.set_execution_id("exec-1".into());
        p.tick_at(t0 + Duration::from_millis(100));
        let got = got.lock().unwrap();
        assert_eq!(
            serde_json::to_value(&got[1]).unwrap(),
            json!({"kind": "progress", "executionId": "exec-1", "done": 2, "failed": 1, "toRun": 0,
                   "items": [{"path": "/b.jpg", "ok": false}]})
        );
    }

    #[test]
    fn messages_serialize_as_the_ui_reads_them() {
        let m = RunMessage::Progress { execution_id: None, done: 1, failed: 0, to_run: 2, items: vec![] };
        assert_eq!(
            serde_json::to_value(&m).unwrap(),
            json!({"kind": "progress", "executionId": null, "done": 1, "failed": 0, "toRun": 2, "items": []})
        );
    }

    fn record(input: Value, output: Option<Value>) -> ExecutionRecord {
        ExecutionRecord {
            id: "e".into(),
            name: "e".into(),
            workflow_name: "w".into(),
            workflow_hash: "h".into(),
            definition: "{}".into(),
            input,
            output,
            error: None,
            cause: None,
            status: ExecutionStatus::Succeeded,
            started_at_ms: 0,
            stopped_at_ms: Some(1),
            owner_pid: None,
            owner_start: None,
            heartbeat_at_ms: None,
        }
    }

    #[test]
    fn files_pair_inputs_with_the_outputs_they_made() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("a.jpg");
        let out = dir.path().join("a.min.jpg");
        std::fs::write(&input, vec![0u8; 1000]).unwrap();
        std::fs::write(&out, vec![0u8; 400]).unwrap();
        let (i, o) = (input.to_str().unwrap(), out.to_str().unwrap());
        let single = record(json!({"path": i}), Some(json!({"path": i, "optimized": {"outputs": [{"path": o}]}})));
        let files = execution_files(&single);
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].input, FileInfo { path: i.into(), bytes: Some(1000) });
        assert_eq!(files[0].outputs, vec![FileInfo { path: o.into(), bytes: Some(400) }]);

        let batch = record(json!({"items": [i, "/gone.png"]}), Some(json!([{"path": o}, {"Error": "E", "Cause": "c"}])));
        let files = execution_files(&batch);
        assert_eq!(files.len(), 2);
        assert_eq!(files[0].outputs.len(), 1);
        assert_eq!(files[1].input.bytes, None);
        assert!(files[1].outputs.is_empty());
    }

    #[test]
    fn workflows_are_validated_saved_and_listed() {
        let dir = tempfile::tempdir().unwrap();
        let app = App::open(crate::DataDir::new(dir.path())).unwrap();
        let good = r#"{"StartAt": "A", "States": {"A": {"Type": "Pass", "End": true}}}"#;
        let bad = r#"{"StartAt": "B", "States": {"A": {"Type": "Pass"}}}"#;
        assert!(validate(&app, good).is_empty());
        assert!(!validate(&app, bad).is_empty());
        assert!(matches!(save_workflow(&app, "mine", bad), Err(Error::Invalid(_))));
        assert!(save_workflow(&app, "../escape", good).is_err());
        assert!(save_workflow(&app, "thumbnail", good).is_err());
        let saved = save_workflow(&app, "mine", good).unwrap();
        let all = list_workflows(&app);
        assert_eq!(all.len(), BUNDLED.len() + 1);
        let mine = all.iter().find(|w| w.name == "mine").unwrap();
        assert_eq!(mine, &saved);
        assert!(crate::watch::resolve_workflow(&app, &mine.id).is_ok());
    }
}
