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

use pixelflow_engine::{CancelToken, Diagnostic, TaskContext};
use pixelflow_history::{ExecutionRecord, MapProgress, StoredEvent};
use pixelflow_sync::{Overwrite, StoreOptions};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::batch::{self, BatchInput, BatchOptions, ItemReport};
use crate::error::{Error, Result};
use crate::export::{self, ExportOptions, ExportProgress, ExportReport};
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

    fn execution_started(&self, id: &str) {
        self.set_execution_id(id.to_string());
    }
}

/// Runs a batch as `pixelflow run` does, telling `sink` its progress (throttled) and its end.
/// Returns the report that the `finished` message carried.
pub fn run_batch(
    app: &App,
    workflow: &Workflow,
    inputs: Vec<BatchInput>,
    opts: &BatchOptions,
    sink: impl Fn(RunMessage) + Send + Sync + 'static,
    cancel: &CancelToken,
) -> Result<RunReport> {
    let progress = Arc::new(ThrottledProgress::new(PROGRESS_INTERVAL, sink));
    let done = AtomicBool::new(false);
    let result = std::thread::scope(|scope| {
        scope.spawn(|| {
            while !done.load(Ordering::Acquire) {
                std::thread::sleep(PROGRESS_INTERVAL / 2);
                progress.tick_at(Instant::now());
            }
        });
        let result = batch::run(app, workflow, inputs, opts, progress.clone(), cancel);
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

/// The images an execution read (`{"path"}` input, or a batch's `{"items": [...]}`, each a
/// `{"path", "outputDir"}` or, from before outputs mirrored folders, a path) and the files its
/// output names (`"path"` fields), paired by item for a batch.
pub fn execution_files(record: &ExecutionRecord) -> Vec<ImageFiles> {
    let output = record.output.as_ref().unwrap_or(&Value::Null);
    let mut pairs = Vec::new();
    if let Some(path) = record.input.get("path").and_then(Value::as_str) {
        pairs.push(image_files(path, output));
    } else if let Some(items) = record.input.get("items").and_then(Value::as_array) {
        for (i, item) in items.iter().take(MAX_IMAGE_PAIRS).enumerate() {
            if let Some(path) = item.as_str().or_else(|| item.get("path").and_then(Value::as_str)) {
                pairs.push(image_files(path, output.get(i).unwrap_or(&Value::Null)));
            }
        }
    }
    pairs
}

fn image_files(input: &str, output: &Value) -> ImageFiles {
    let mut named = Vec::new();
    batch::output_paths(output, &mut named);
    let named: BTreeSet<&str> = named.into_iter().filter(|p| *p != input).collect();
    ImageFiles { input: file_info(input), outputs: named.into_iter().map(file_info).collect() }
}

fn file_info(path: &str) -> FileInfo {
    FileInfo { path: path.to_string(), bytes: std::fs::metadata(path).ok().filter(|m| m.is_file()).map(|m| m.len()) }
}

/// The events [`execution_detail`] returns at first, and the most one [`execution_events`]
/// page holds (a batch of thousands of images records many; the UI loads more on demand).
pub const EVENTS_PAGE: usize = 2000;

/// The largest JSON payload (an execution's input or output) the window is sent whole. A
/// 40,000-image batch's input is 3 MB of JSON and its output 5 MB, its first events carry them
/// again, and the window asks for a running execution every second: sent whole, they kept the
/// webview parsing and laying out megabytes it never showed.
pub const SHOWN_WHOLE_BYTES: usize = 64 * 1024;

/// The largest state input or output in an event's detail the window is sent: the timeline
/// shows errors, causes and item numbers, never those.
pub const EVENT_FIELD_BYTES: usize = 4 * 1024;

/// One execution as the window shows it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionDetail {
    /// The record; an input or output over [`SHOWN_WHOLE_BYTES`] is `null` here and has a preview.
    pub execution: ExecutionRecord,
    pub input_preview: Option<Preview>,
    pub output_preview: Option<Preview>,
    /// The first events (at most [`EVENTS_PAGE`], see [`trim_event_details`]).
    pub events: Vec<StoredEvent>,
    /// How many events the execution recorded.
    pub events_total: usize,
    /// Each Map state's iteration counts over all the events, loaded or not.
    pub map_progress: Vec<MapProgress>,
    pub files: Vec<ImageFiles>,
}

/// The start of a payload too large to send whole: its first [`SHOWN_WHOLE_BYTES`]
/// pretty-printed, cut at a line's end, and the size of the whole as compact JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Preview {
    pub text: String,
    pub bytes: u64,
}

/// One execution (an id or a unique prefix), its first events and the files it read and wrote,
/// sized for the window; `None` when there is no such execution.
pub fn execution_detail(app: &App, id: &str) -> Result<Option<ExecutionDetail>> {
    let history = app.history();
    let Some(mut execution) = history.execution(id)? else { return Ok(None) };
    let mut events = history.events_page(&execution.id, 0, EVENTS_PAGE)?;
    trim_event_details(&mut events);
    let events_total = usize::try_from(history.event_count(&execution.id)?).unwrap_or(usize::MAX);
    let map_progress = history.map_progress(&execution.id)?;
    let files = execution_files(&execution);
    let input_preview = preview_if_large(&mut execution.input);
    let output_preview = execution.output.as_mut().and_then(preview_if_large);
    Ok(Some(ExecutionDetail { execution, input_preview, output_preview, events, events_total, map_progress, files }))
}

/// A page of an execution's events: `limit` (at most [`EVENTS_PAGE`]) from `offset`, trimmed as
/// [`trim_event_details`] says; `None` when there is no such execution.
pub fn execution_events(app: &App, id: &str, offset: usize, limit: Option<usize>) -> Result<Option<Vec<StoredEvent>>> {
    let history = app.history();
    let Some(execution) = history.execution(id)? else { return Ok(None) };
    let mut events = history.events_page(&execution.id, offset, limit.unwrap_or(EVENTS_PAGE).min(EVENTS_PAGE))?;
    trim_event_details(&mut events);
    Ok(Some(events))
}

/// Replaces `value` with `null` and returns its [`Preview`] when its JSON is over
/// [`SHOWN_WHOLE_BYTES`]; leaves it alone otherwise.
pub fn preview_if_large(value: &mut Value) -> Option<Preview> {
    let bytes = json_bytes(value, u64::MAX);
    if bytes <= SHOWN_WHOLE_BYTES as u64 {
        return None;
    }
    let mut head = Capped { bytes: Vec::with_capacity(SHOWN_WHOLE_BYTES + 1), cap: SHOWN_WHOLE_BYTES + 1 };
    // Stops with an error once the cap is passed: the rest is never formatted.
    let _ = serde_json::to_writer_pretty(&mut head, value);
    let mut text = String::from_utf8_lossy(&head.bytes).into_owned();
    // At a line's end; within the one line of a huge string, at a character's end.
    let mut cut = text.rfind('\n').unwrap_or(SHOWN_WHOLE_BYTES.min(text.len()));
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    text.truncate(cut);
    *value = Value::Null;
    Some(Preview { text, bytes })
}

/// Replaces each state input or output in the events' details over [`EVENT_FIELD_BYTES`] of
/// JSON with a note of its size: `pixelflow history show --json` has them whole.
pub fn trim_event_details(events: &mut [StoredEvent]) {
    for event in events {
        let Value::Object(fields) = &mut event.detail else { continue };
        for (_, value) in fields.iter_mut().filter(|(k, _)| matches!(k.as_str(), "input" | "output")) {
            let bytes = json_bytes(value, EVENT_FIELD_BYTES as u64 + 1);
            if bytes > EVENT_FIELD_BYTES as u64 {
                *value = Value::String(format!("(over {} KB of JSON, not shown here)", EVENT_FIELD_BYTES / 1024));
            }
        }
    }
}

/// The size of `value` as compact JSON, counted up to `cap` (a larger value gives at least
/// `cap`) without building the text.
fn json_bytes(value: &Value, cap: u64) -> u64 {
    struct Counter {
        bytes: u64,
        cap: u64,
    }
    impl std::io::Write for Counter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.bytes += buf.len() as u64;
            if self.bytes >= self.cap {
                return Err(std::io::Error::other("past the cap"));
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter { bytes: 0, cap };
    let _ = serde_json::to_writer(&mut counter, value);
    counter.bytes
}

/// A writer that keeps the first `cap` bytes, then fails.
struct Capped {
    bytes: Vec<u8>,
    cap: usize,
}

impl std::io::Write for Capped {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let room = self.cap - self.bytes.len();
        self.bytes.extend_from_slice(&buf[..buf.len().min(room)]);
        if buf.len() >= room {
            return Err(std::io::Error::other("past the cap"));
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
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

/// A batch that takes longer than this is announced by a notification even with the window in
/// front (a shorter one only when the window is not focused).
pub const NOTIFY_AFTER: Duration = Duration::from_secs(10);

/// Whether a finished batch deserves a notification: the person may not be looking (the
/// window is not focused) or waited long; a batch that ran nothing says nothing.
/// Settings > History: deletes the executions that ended more than `days` days ago (see
/// `History::prune`: running ones and the results cache stay). Returns how many.
pub fn prune_history(app: &App, days: u32) -> Result<u64> {
    let before = app.clock().now_ms().saturating_sub(i64::from(days) * 86_400_000);
    Ok(app.history().prune(before)?)
}

pub fn should_notify(window_focused: bool, report: &RunReport) -> bool {
    !report.items.is_empty() && (!window_focused || report.elapsed_ms >= NOTIFY_AFTER.as_millis() as u64)
}

/// The title and text of the notification for a finished batch.
pub fn finished_notice(workflow: &str, report: &RunReport) -> (String, String) {
    let failed = report.items.iter().filter(|i| matches!(i.outcome, batch::ItemOutcome::Failed { .. })).count();
    let title = if report.interrupted {
        format!("{workflow}: stopped")
    } else if failed > 0 {
        format!("{workflow}: finished with {failed} failed")
    } else {
        format!("{workflow}: finished")
    };
    let secs = report.elapsed_ms as f64 / 1000.0;
    let body = format!("{} images in {secs:.1} s ({} failed)", report.items.len(), failed);
    (title, body)
}

/// The desktop app's own settings, kept in `desktop-settings.json` of the data dir (no
/// secrets: cloud secrets are in the OS keychain, see [`crate::profiles`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DesktopSettings {
    /// `auto`, `gpu` or `cpu`: the `device` of a filter step that names none, in the runs and
    /// watch folders the app serves (the CLI keeps the step's own default, `auto`).
    pub device: String,
}

impl Default for DesktopSettings {
    fn default() -> Self {
        DesktopSettings { device: "auto".to_string() }
    }
}

const SETTINGS_FILE: &str = "desktop-settings.json";

/// The choices of [`DesktopSettings::device`].
pub const DEVICES: [&str; 3] = ["auto", "gpu", "cpu"];

/// The saved settings; the defaults when there are none or they cannot be read (with a warning).
pub fn load_settings(app: &App) -> DesktopSettings {
    let path = app.data().root().join(SETTINGS_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice::<DesktopSettings>(&bytes)
            .ok()
            .filter(|s| DEVICES.contains(&s.device.as_str()))
            .unwrap_or_else(|| {
                tracing::warn!(path = %path.display(), "the desktop settings cannot be read; using the defaults");
                DesktopSettings::default()
            }),
        Err(_) => DesktopSettings::default(),
    }
}

/// Checks and saves the settings (atomically).
pub fn save_settings(app: &App, settings: &DesktopSettings) -> Result<()> {
    if !DEVICES.contains(&settings.device.as_str()) {
        return Err(Error::invalid("/device", format!("'{}' is not a device: expected auto, gpu or cpu", settings.device)));
    }
    let text = serde_json::to_vec_pretty(settings).map_err(|e| Error::invalid("", e.to_string()))?;
    let dir = app.data().root();
    pixelflow_imaging::util::write_atomic(dir, SETTINGS_FILE, &text).map_err(|e| Error::io(dir.join(SETTINGS_FILE), std::io::Error::other(e.to_string())))?;
    Ok(())
}

/// The `device` a filter step without one gets, shared by the steps and the settings view.
#[derive(Debug, Clone)]
pub struct DeviceDefault(Arc<Mutex<String>>);

impl DeviceDefault {
    pub fn new(device: &str) -> Self {
        DeviceDefault(Arc::new(Mutex::new(device.to_string())))
    }

    pub fn get(&self) -> String {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn set(&self, device: &str) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = device.to_string();
    }
}

/// `app` whose `filter` step gives a filter without `device` the current default: the app's
/// runs and watch folders follow the GPU setting, while a workflow that names a device keeps it.
pub fn with_device_default(app: App, device: &DeviceDefault) -> App {
    let mut steps = app.steps().clone();
    if let Some(filter) = steps.get("filter") {
        let device = device.clone();
        steps.register("filter", move |mut input: Value, ctx: &TaskContext| {
            if let Some(obj) = input.as_object_mut() {
                if obj.get("device").is_none_or(Value::is_null) {
                    obj.insert("device".into(), Value::String(device.get()));
                }
            }
            filter.run(input, ctx)
        });
    }
    app.with_steps(steps)
}

/// What an export from the app asks: the executions, and a profile or a destination URL.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ExportRequest {
    pub executions: Vec<String>,
    /// A cloud profile's name; its destination and store options are used.
    pub profile: Option<String>,
    /// `s3://bucket/prefix` or `az://container/prefix` when no profile is named.
    pub destination: Option<String>,
    pub dry_run: bool,
    pub overwrite: Option<Overwrite>,
}

/// The export's options for a request (the profile looked up, its secret from `keychain`).
pub fn export_options(app: &App, request: &ExportRequest, keychain: &dyn crate::profiles::Keychain) -> Result<ExportOptions> {
    if request.executions.is_empty() {
        return Err(Error::invalid("/executions", "select the executions to export"));
    }
    let (destination, store) = match (request.profile.as_deref().filter(|p| !p.is_empty()), request.destination.as_deref().filter(|d| !d.is_empty())) {
        (Some(name), _) => {
            let profile = crate::profiles::get(app, name)?;
            (profile.destination(), profile.store_options(crate::profiles::secret(name, keychain)?))
        }
        (None, Some(url)) => (url.to_string(), StoreOptions::default()),
        (None, None) => return Err(Error::invalid("/profile", "choose a cloud profile or type a destination (s3://bucket/prefix or az://container/prefix)")),
    };
    Ok(ExportOptions {
        destination,
        executions: request.executions.clone(),
        dry_run: request.dry_run,
        store,
        overwrite: request.overwrite.unwrap_or_default(),
        ..ExportOptions::default()
    })
}

/// What an export from the app tells the UI, in order: `planned`, `progress` (at most every
/// [`PROGRESS_INTERVAL`]), then `finished` (each object's result) or `failed`.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum ExportMessage {
    Planned { total: usize },
    Progress {
        done: usize,
        total: usize,
        bytes: u64,
        /// The objects confirmed since the previous message.
        objects: Vec<ObjectDone>,
    },
    Finished { report: ExportReport },
    Failed { message: String },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectDone {
    pub key: String,
    pub unchanged: bool,
}

/// Turns an export's confirmed objects into at most one `progress` message per interval.
pub struct ExportThrottle<S: Fn(ExportMessage)> {
    interval: Duration,
    sink: S,
    state: Mutex<ExportState>,
}

#[derive(Default)]
struct ExportState {
    total: usize,
    done: usize,
    bytes: u64,
    pending: Vec<ObjectDone>,
    last_sent: Option<Instant>,
}

impl<S: Fn(ExportMessage)> ExportThrottle<S> {
    pub fn new(interval: Duration, sink: S) -> Self {
        ExportThrottle { interval, sink, state: Mutex::new(ExportState::default()) }
    }

    pub fn planned(&self, total: usize) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).total = total;
        (self.sink)(ExportMessage::Planned { total });
    }

    pub fn confirmed_at(&self, key: &str, size: u64, unchanged: bool, now: Instant) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.done += 1;
        s.bytes += size;
        s.pending.push(ObjectDone { key: key.to_string(), unchanged });
        if s.last_sent.is_none_or(|last| now.saturating_duration_since(last) >= self.interval) {
            self.send(&mut s, now);
        }
    }

    /// Sends what is pending (at the end).
    pub fn flush(&self) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        self.send(&mut s, Instant::now());
    }

    fn send(&self, s: &mut ExportState, now: Instant) {
        if s.pending.is_empty() {
            return;
        }
        s.last_sent = Some(now);
        let objects = std::mem::take(&mut s.pending);
        (self.sink)(ExportMessage::Progress { done: s.done, total: s.total, bytes: s.bytes, objects });
    }
}

/// Runs an export as `pixelflow export` does, telling `sink` its progress (throttled) and its
/// end. Returns the report that the `finished` message carried.
pub fn run_export(app: &App, options: &ExportOptions, sink: impl Fn(ExportMessage) + Send + Sync, cancel: &CancelToken) -> Result<ExportReport> {
    let throttle = ExportThrottle::new(PROGRESS_INTERVAL, sink);
    let on_progress = |p: ExportProgress<'_>| match p {
        ExportProgress::Planned { total } => throttle.planned(total),
        ExportProgress::Confirmed(u) => throttle.confirmed_at(&u.key, u.size, u.unchanged, Instant::now()),
    };
    let result = export::run_with_progress(app, options, cancel, &on_progress);
    throttle.flush();
    match result {
        Ok(report) => {
            (throttle.sink)(ExportMessage::Finished { report: report.clone() });
            Ok(report)
        }
        Err(e) => {
            (throttle.sink)(ExportMessage::Failed { message: e.to_string() });
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pixelflow_history::ExecutionStatus;
    use serde_json::json;

    fn collecting<M: Send + 'static>() -> (Arc<Mutex<Vec<M>>>, impl Fn(M) + Send + Sync + 'static) {
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

        // A batch's items as recorded now, and as recorded before outputs mirrored folders.
        for items in [json!([{"path": i, "outputDir": "/o"}, {"path": "/gone.png", "outputDir": "/o"}]), json!([i, "/gone.png"])] {
            let batch = record(json!({ "items": items }), Some(json!([{"path": o}, {"Error": "E", "Cause": "c"}])));
            let files = execution_files(&batch);
            assert_eq!(files.len(), 2);
            assert_eq!(files[0].input, FileInfo { path: i.into(), bytes: Some(1000) });
            assert_eq!(files[0].outputs.len(), 1);
            assert_eq!(files[1].input.bytes, None);
            assert!(files[1].outputs.is_empty());
        }
    }

    #[test]
    fn an_export_of_thousands_of_objects_makes_a_handful_of_messages() {
        let (got, sink) = collecting();
        let t = ExportThrottle::new(Duration::from_millis(100), sink);
        t.planned(5000);
        let t0 = Instant::now();
        for i in 0..5000u64 {
            t.confirmed_at(&format!("k/{i}.jpg"), 10, i % 2 == 0, t0 + Duration::from_micros(i * 200));
        }
        t.flush();
        let got = got.lock().unwrap();
        assert_eq!(serde_json::to_value(&got[0]).unwrap(), json!({"kind": "planned", "total": 5000}));
        let progress: Vec<_> = got[1..]
            .iter()
            .map(|m| match m {
                ExportMessage::Progress { done, bytes, objects, .. } => (*done, *bytes, objects.len()),
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert!(progress.len() <= 12, "{} messages", progress.len());
        assert_eq!(progress.iter().map(|p| p.2).sum::<usize>(), 5000);
        assert_eq!(progress.last().map(|p| (p.0, p.1)), Some((5000, 50_000)));
    }

    #[test]
    fn a_finished_batch_is_announced_with_its_failures() {
        let item = |outcome| ItemReport { path: "/a.jpg".into(), bytes: 1, outcome };
        let mut report = RunReport {
            execution_id: None,
            items: vec![item(batch::ItemOutcome::Processed { output: json!({}) }), item(batch::ItemOutcome::Failed { error: "E".into(), cause: "c".into() })],
            bytes_in: 2,
            bytes_out: 1,
            elapsed_ms: 12_345,
            interrupted: false,
        };
        assert_eq!(finished_notice("thumbnail", &report), ("thumbnail: finished with 1 failed".to_string(), "2 images in 12.3 s (1 failed)".to_string()));
        assert!(should_notify(true, &report), "long: announced even in front");
        report.elapsed_ms = 900;
        assert!(!should_notify(true, &report), "short, in front: the person saw it");
        assert!(should_notify(false, &report), "short, in the background");
        report.items.clear();
        assert!(!should_notify(false, &report), "nothing ran");
        report.items.push(item(batch::ItemOutcome::Pending));
        report.interrupted = true;
        assert_eq!(finished_notice("thumbnail", &report).0, "thumbnail: stopped");
    }

    #[test]
    fn a_large_executions_detail_is_sent_as_previews_and_a_small_ones_whole() {
        let dir = tempfile::tempdir().unwrap();
        let app = App::open(crate::DataDir::new(dir.path())).unwrap();
        let definition = r#"{"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}"#;
        let workflow = Workflow::from_text("pass", definition, app.steps()).unwrap();
        let run = |input: Value| crate::execution::start(&app, &workflow, input, None, &CancelToken::new()).unwrap().id;

        // A batch's input: 20,000 items, about 1.1 MB of JSON.
        let items: Vec<Value> = (0..20_000).map(|i| json!({"path": format!("/photos/day{}/IMG_{i:05}.png", i / 1000), "outputDir": "/out"})).collect();
        let input = json!({ "items": items });
        let whole = serde_json::to_string(&input).unwrap().len() as u64;
        let id = run(input.clone());
        let detail = execution_detail(&app, &id).unwrap().unwrap();
        let preview = detail.input_preview.as_ref().expect("a preview of the input");
        assert_eq!(preview.bytes, whole);
        assert!(preview.text.starts_with("{\n  \"items\": [\n    {\n      \"path\": \"/photos/day0/IMG_00000.png\""), "{}", &preview.text[..80]);
        assert!(preview.text.len() <= SHOWN_WHOLE_BYTES && preview.text.len() > SHOWN_WHOLE_BYTES - 100);
        let pretty = serde_json::to_string_pretty(&input).unwrap();
        assert!(pretty.starts_with(&format!("{}\n", preview.text)), "the start of the pretty text, cut at a line's end");
        assert_eq!(detail.execution.input, Value::Null);
        assert_eq!(detail.output_preview.as_ref().map(|p| p.bytes), Some(whole), "the Pass state's output is its input");
        // The files are those of the whole input (up to the window's limit).
        assert_eq!(detail.files.len(), MAX_IMAGE_PAIRS);
        // The events keep what the timeline shows and lose the payloads.
        let started = detail.events.iter().find(|e| e.kind == "ExecutionStarted").unwrap();
        assert_eq!(started.detail["input"], json!("(over 4 KB of JSON, not shown here)"));
        let sent = serde_json::to_string(&detail).unwrap().len() as u64;
        // Previews and 1,000 pairs of files: about 225 KB, not the 6 MB of every copy of the input.
        assert!(sent < whole / 4, "{sent} bytes sent for an input of {whole}");
        let paged = execution_events(&app, &id, 0, None).unwrap().unwrap();
        assert_eq!(paged, detail.events);
        assert!(execution_events(&app, "no-such-execution", 0, None).unwrap().is_none());

        // A single image's execution is sent whole.
        let input = json!({"path": "/photos/a.jpg", "outputDir": "/out"});
        let id = run(input.clone());
        let detail = execution_detail(&app, &id).unwrap().unwrap();
        assert_eq!((detail.input_preview, detail.output_preview), (None, None));
        assert_eq!((detail.execution.input, detail.execution.output), (input.clone(), Some(input.clone())));
        assert_eq!(detail.events.iter().find(|e| e.kind == "ExecutionStarted").unwrap().detail["input"], input);
    }

    #[test]
    fn previews_cut_at_a_characters_end_and_events_keep_long_causes() {
        // One line of multi-byte text: cut within it, at a character's end.
        let mut huge = Value::String("é".repeat(40_000));
        let preview = preview_if_large(&mut huge).unwrap();
        assert_eq!(preview.bytes, 80_002);
        assert!(preview.text.len() > SHOWN_WHOLE_BYTES - 4 && preview.text.len() <= SHOWN_WHOLE_BYTES);
        assert!(preview.text.starts_with("\"éé") && preview.text[1..].chars().all(|c| c == 'é'));
        assert_eq!(huge, Value::Null);
        let mut small = json!({"a": 1});
        assert_eq!(preview_if_large(&mut small), None);
        assert_eq!(small, json!({"a": 1}));

        let cause = "x".repeat(10_000);
        let big = json!({ "items": vec!["y".repeat(100); 100] });
        let mut events = vec![StoredEvent {
            seq: 1,
            timestamp_ms: 0,
            kind: "TaskFailed".into(),
            state: Some("S".into()),
            key: "/0:S".into(),
            detail: json!({"error": "E", "cause": cause, "input": big, "output": {"small": true}}),
        }];
        trim_event_details(&mut events);
        assert_eq!(events[0].detail["cause"], json!(cause), "the timeline shows causes whole");
        assert_eq!(events[0].detail["input"], json!("(over 4 KB of JSON, not shown here)"));
        assert_eq!(events[0].detail["output"], json!({"small": true}));
    }

    #[test]
    fn two_batches_of_one_workflow_at_once_each_report_their_own_execution() {
        let dir = tempfile::tempdir().unwrap();
        let app = App::open(crate::DataDir::new(dir.path())).unwrap();
        let mut steps = pixelflow_engine::StepRegistry::new();
        // Slow enough that both batches run at the same time.
        steps.register("slow", |input: Value, _: &TaskContext| {
            std::thread::sleep(Duration::from_millis(50));
            Ok(input)
        });
        let app = app.with_steps(steps);
        let definition = r#"{"StartAt": "S", "States": {"S": {"Type": "Task", "Resource": "pixelflow:slow", "End": true}}}"#;
        let workflow = Workflow::from_text("same", definition, app.steps()).unwrap();
        let inputs = |name: &str| {
            let folder = dir.path().join(name);
            std::fs::create_dir_all(&folder).unwrap();
            (0..4)
                .map(|i| folder.join(format!("{i}.png")))
                .inspect(|p| std::fs::write(p, name).unwrap())
                .map(|path| BatchInput { path, subfolder: PathBuf::new() })
                .collect::<Vec<_>>()
        };
        let opts = BatchOptions { jobs: 1, force: true, out: dir.path().join("out"), flat: false };
        let run = |name: &str| {
            let (got, sink) = collecting();
            let report = run_batch(&app, &workflow, inputs(name), &opts, sink, &CancelToken::new()).unwrap();
            let announced: Vec<Option<String>> = got
                .lock()
                .unwrap()
                .iter()
                .filter_map(|m| match m {
                    RunMessage::Progress { execution_id, .. } => Some(execution_id.clone()),
                    _ => None,
                })
                .collect();
            (report.execution_id, announced)
        };
        let ((a, a_said), (b, b_said)) = std::thread::scope(|s| {
            let a = s.spawn(|| run("a"));
            let b = s.spawn(|| run("b"));
            (a.join().unwrap(), b.join().unwrap())
        });
        assert!(a.is_some() && b.is_some() && a != b);
        assert!(!a_said.is_empty() && a_said.iter().all(|id| *id == a), "{a:?}: {a_said:?}");
        assert!(!b_said.is_empty() && b_said.iter().all(|id| *id == b), "{b:?}: {b_said:?}");
    }

    #[test]
    fn the_device_setting_reaches_filters_that_name_none() {
        let dir = tempfile::tempdir().unwrap();
        let app = App::open(crate::DataDir::new(dir.path())).unwrap();
        assert_eq!(load_settings(&app), DesktopSettings::default());
        assert!(save_settings(&app, &DesktopSettings { device: "tpu".into() }).is_err());
        save_settings(&app, &DesktopSettings { device: "cpu".into() }).unwrap();
        assert_eq!(load_settings(&app).device, "cpu");
        // The filter step sees the default unless the workflow names a device.
        let mut steps = pixelflow_engine::StepRegistry::new();
        steps.register("filter", |input: Value, _: &TaskContext| Ok(input));
        let device = DeviceDefault::new("cpu");
        let app = with_device_default(app.with_steps(steps), &device);
        let definition = r#"{"StartAt": "F", "States": {"F": {"Type": "Task", "Resource": "pixelflow:filter", "End": true}}}"#;
        let workflow = Workflow::from_text("f", definition, app.steps()).unwrap();
        let run = |input: Value| match crate::execution::start(&app, &workflow, input, None, &CancelToken::new()).unwrap().finished {
            crate::execution::Finished::Succeeded(out) => out["device"].clone(),
            other => panic!("{other:?}"),
        };
        assert_eq!(run(json!({"path": "a.png"})), "cpu");
        device.set("gpu");
        assert_eq!(run(json!({"path": "a.png", "device": null})), "gpu");
        assert_eq!(run(json!({"path": "a.png", "device": "auto"})), "auto");
    }

    /// A machine without a keychain (CI).
    struct NoKeychain;

    impl crate::profiles::Keychain for NoKeychain {
        fn set(&self, _: &str, _: &str) -> std::result::Result<(), crate::profiles::KeychainError> {
            Err(crate::profiles::KeychainError::Unavailable("none here".into()))
        }
        fn get(&self, _: &str) -> std::result::Result<Option<String>, crate::profiles::KeychainError> {
            Err(crate::profiles::KeychainError::Unavailable("none here".into()))
        }
        fn delete(&self, _: &str) -> std::result::Result<(), crate::profiles::KeychainError> {
            Err(crate::profiles::KeychainError::Unavailable("none here".into()))
        }
    }

    #[test]
    fn an_export_request_needs_executions_and_a_destination() {
        let dir = tempfile::tempdir().unwrap();
        let app = App::open(crate::DataDir::new(dir.path())).unwrap();
        let none = ExportRequest { executions: vec!["e".into()], ..Default::default() };
        assert!(export_options(&app, &none, &NoKeychain).unwrap_err().to_string().contains("cloud profile"));
        assert!(export_options(&app, &ExportRequest { destination: Some("s3://b/p".into()), ..Default::default() }, &NoKeychain).is_err());
        let missing = ExportRequest { executions: vec!["e".into()], profile: Some("nope".into()), ..Default::default() };
        assert!(matches!(export_options(&app, &missing, &NoKeychain), Err(Error::NotFound(_))));
        let url = ExportRequest { executions: vec!["e".into()], destination: Some("s3://bucket/p".into()), dry_run: true, ..Default::default() };
        let opts = export_options(&app, &url, &NoKeychain).unwrap();
        assert_eq!((opts.destination.as_str(), opts.dry_run), ("s3://bucket/p", true));
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
