//! The commands the UI calls. Each takes the state and its arguments, makes one call into
//! `pixelflow_app` (as `crates/cli/main.rs` does) and maps the error. They are `async` so they
//! run off the main thread; long work (a batch) runs on its own thread and reports on a channel.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use pixelflow_app::batch::{self, BatchOptions};
use pixelflow_app::desktop::{self, DesktopSettings, ExecutionDetail, ExportMessage, ExportRequest, RunMessage, RunReport, WorkflowEntry};
use pixelflow_app::export::ExportReport;
use pixelflow_app::profiles::{self, CloudProfile, ProfileEntry, Saved};
use pixelflow_app::doctor::{self, Check};
use pixelflow_app::execution;
use pixelflow_app::watch::{self, RuleSpec, RuleStatus};
use pixelflow_app::workflow::DEFAULT_WORKFLOW;
use pixelflow_engine::{CancelToken, Diagnostic, Failure, TokenOutcome};
use pixelflow_history::{ExecutionFilter, ExecutionStatus, ExecutionSummary, PendingToken, StoredEvent, WatchRule};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tauri::ipc::Channel;
use tauri::{AppHandle, Manager, Runtime, State};

use crate::error::{CommandError, Result};
use crate::Desktop;

/// Runs the watch service (`pixelflow watch`) on its own thread for as long as the app runs.
pub fn start_watch_service<R: Runtime>(handle: AppHandle<R>) {
    std::thread::spawn(move || {
        let desktop = handle.state::<Desktop>();
        let mut fallback = RuleSpec::new(desktop.app.data().watch_dir());
        fallback.recursive = true;
        if let Err(e) = watch::run(&desktop.app, &fallback, &desktop.service) {
            tracing::warn!(error = %e, "the watch service is not running in the app");
            *desktop.service_note.lock().unwrap_or_else(|e| e.into_inner()) = Some(e.to_string());
        }
    });
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AppInfo {
    version: &'static str,
    data_dir: PathBuf,
    output_dir: PathBuf,
    watch_dir: PathBuf,
    default_workflow: &'static str,
    jobs: usize,
    /// Why the app's watch service is not running, when it is not.
    watch_service_note: Option<String>,
}

#[tauri::command]
pub async fn app_info(state: State<'_, Desktop>) -> Result<AppInfo> {
    let data = state.app.data();
    Ok(AppInfo {
        version: env!("CARGO_PKG_VERSION"),
        data_dir: data.root().to_path_buf(),
        output_dir: data.output_dir(),
        watch_dir: data.watch_dir(),
        default_workflow: DEFAULT_WORKFLOW,
        jobs: std::thread::available_parallelism().map_or(1, |n| n.get()),
        watch_service_note: state.service_note.lock().unwrap_or_else(|e| e.into_inner()).clone(),
    })
}

#[tauri::command]
pub async fn list_workflows(state: State<'_, Desktop>) -> Result<Vec<WorkflowEntry>> {
    Ok(desktop::list_workflows(&state.app))
}

#[tauri::command]
pub async fn validate_workflow(state: State<'_, Desktop>, text: String) -> Result<Vec<Diagnostic>> {
    Ok(desktop::validate(&state.app, &text))
}

#[tauri::command]
pub async fn save_workflow(state: State<'_, Desktop>, name: String, text: String) -> Result<WorkflowEntry> {
    Ok(desktop::save_workflow(&state.app, &name, &text)?)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InputFile {
    path: PathBuf,
    bytes: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunStarted {
    run_id: String,
    /// The images found in what was dropped (folders searched), so thumbnails show at once.
    inputs: Vec<InputFile>,
}

/// What the drop zone calls: runs `workflow` (a bundled name or a saved file; the default
/// pipeline when absent) over the dropped files and folders. Returns at once; the batch's
/// progress and end arrive on `on_progress`.
#[tauri::command]
#[allow(clippy::too_many_arguments)]
pub async fn start_run<R: Runtime>(
    handle: AppHandle<R>,
    state: State<'_, Desktop>,
    paths: Vec<PathBuf>,
    workflow: Option<String>,
    jobs: Option<usize>,
    force: Option<bool>,
    out: Option<PathBuf>,
    on_progress: Channel<RunMessage>,
) -> Result<RunStarted> {
    let app = state.app.clone();
    let workflow = watch::resolve_workflow(&app, workflow.as_deref().unwrap_or(DEFAULT_WORKFLOW))?;
    let inputs = batch::collect_inputs(&paths)?;
    if inputs.is_empty() {
        return Err(CommandError::invalid("no images found in what was dropped"));
    }
    let out = out.unwrap_or_else(|| app.data().output_dir());
    // The viewer may show what was dropped and what the run writes, and nothing else.
    let scope = handle.asset_protocol_scope();
    for p in paths.iter().chain(std::iter::once(&out)) {
        let allowed = if p.is_dir() { scope.allow_directory(p, true) } else { scope.allow_file(p) };
        if let Err(e) = allowed {
            tracing::warn!(error = %e, path = %p.display(), "could not allow a path to the viewer");
        }
    }
    let jobs = jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())).max(1);
    let opts = BatchOptions { jobs, force: force.unwrap_or(false), out, flat: false };
    let run_id = format!("run-{}", state.next_run.fetch_add(1, Ordering::Relaxed));
    let cancel = CancelToken::new();
    state.runs.lock().unwrap_or_else(|e| e.into_inner()).insert(run_id.clone(), cancel.clone());
    let started = RunStarted {
        run_id: run_id.clone(),
        inputs: inputs.iter().map(|i| InputFile { bytes: std::fs::metadata(&i.path).map_or(0, |m| m.len()), path: i.path.clone() }).collect(),
    };
    std::thread::spawn(move || {
        let sink = move |m: RunMessage| {
            // The window may be gone; the batch still finishes and is in the history.
            let _ = on_progress.send(m);
        };
        match desktop::run_batch(&app, &workflow, inputs, &opts, sink, &cancel) {
            Ok(report) => notify_finished(&handle, &workflow.name, &report),
            Err(e) => tracing::warn!(error = %e, run = %run_id, "a batch failed"),
        }
        handle.state::<Desktop>().runs.lock().unwrap_or_else(|e| e.into_inner()).remove(&run_id);
    });
    Ok(started)
}

/// Tells the desktop that a batch finished, when the person may not be looking: the window is
/// not focused, or the batch was long. Without a notification daemon (CI under Xvfb) nothing
/// shows and nothing fails: the plugin sends it on its own task and drops the error.
fn notify_finished<R: Runtime>(handle: &AppHandle<R>, workflow: &str, report: &RunReport) {
    use tauri_plugin_notification::NotificationExt;
    let focused = handle.get_webview_window("main").and_then(|w| w.is_focused().ok()).unwrap_or(false);
    if !desktop::should_notify(focused, report) {
        return;
    }
    let (title, body) = desktop::finished_notice(workflow, report);
    if let Err(e) = handle.notification().builder().title(title).body(body).show() {
        tracing::debug!(error = %e, "no notification");
    }
}

/// Stops a batch cleanly: what finished is kept, and running it again continues.
#[tauri::command]
pub async fn cancel_run(state: State<'_, Desktop>, run_id: String) -> Result<bool> {
    let runs = state.runs.lock().unwrap_or_else(|e| e.into_inner());
    Ok(runs.get(&run_id).map(CancelToken::cancel).is_some())
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct ListFilter {
    status: Option<String>,
    workflow: Option<String>,
    since: Option<String>,
    until: Option<String>,
    text: Option<String>,
    limit: Option<usize>,
}

#[tauri::command]
pub async fn list_executions(state: State<'_, Desktop>, filter: ListFilter) -> Result<Vec<ExecutionSummary>> {
    let status = filter.status.filter(|s| !s.is_empty()).map(|s| s.parse::<ExecutionStatus>()).transpose().map_err(CommandError::invalid)?;
    let nonempty = |s: Option<String>| s.filter(|s| !s.trim().is_empty());
    let filter = ExecutionFilter {
        status,
        workflow: nonempty(filter.workflow),
        since: nonempty(filter.since),
        until: nonempty(filter.until),
        text: nonempty(filter.text),
        limit: filter.limit,
    };
    Ok(state.app.history().list_executions(&filter)?)
}

fn not_found(id: &str) -> CommandError {
    CommandError::from(pixelflow_app::Error::NotFound(format!("no execution '{id}'")))
}

/// One execution (an id or a unique prefix), its event timeline and the files it read and wrote
/// (`desktop::execution_detail`: large inputs and outputs come as previews).
#[tauri::command]
pub async fn execution_detail<R: Runtime>(handle: AppHandle<R>, state: State<'_, Desktop>, id: String) -> Result<ExecutionDetail> {
    let detail = desktop::execution_detail(&state.app, &id)?.ok_or_else(|| not_found(&id))?;
    let scope = handle.asset_protocol_scope();
    for f in &detail.files {
        for p in std::iter::once(&f.input).chain(&f.outputs) {
            if p.bytes.is_some() {
                let _ = scope.allow_file(Path::new(&p.path));
            }
        }
    }
    Ok(detail)
}

/// A page of an execution's events: `limit` (at most `desktop::EVENTS_PAGE`) from `offset`.
#[tauri::command]
pub async fn execution_events(state: State<'_, Desktop>, id: String, offset: usize, limit: Option<usize>) -> Result<Vec<StoredEvent>> {
    desktop::execution_events(&state.app, &id, offset, limit)?.ok_or_else(|| not_found(&id))
}

/// The review queue: tasks waiting on `.waitForTaskToken`, oldest first (`pixelflow task list`).
#[tauri::command]
pub async fn pending_tasks<R: Runtime>(handle: AppHandle<R>, state: State<'_, Desktop>) -> Result<Vec<PendingToken>> {
    let pending = state.app.history().pending_tokens()?;
    // A reviewer sees the image the task names.
    let scope = handle.asset_protocol_scope();
    for p in &pending {
        if let Some(path) = p.payload.get("path").and_then(Value::as_str) {
            let _ = scope.allow_file(Path::new(path));
        }
    }
    Ok(pending)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Answered {
    token: String,
    /// The execution that continues, or why the token could not be answered.
    execution_id: Option<String>,
    error: Option<String>,
}

/// Approves (task success with `output`, default `{"approved": true}`) or rejects (task
/// failure, `Pixelflow.Rejected` with `cause`) each token, as `pixelflow task` does.
#[tauri::command]
pub async fn answer_tasks(
    state: State<'_, Desktop>,
    tokens: Vec<String>,
    approve: bool,
    output: Option<Value>,
    cause: Option<String>,
) -> Result<Vec<Answered>> {
    let mut answers = Vec::with_capacity(tokens.len());
    for token in tokens {
        let outcome = if approve {
            TokenOutcome::Succeeded(output.clone().unwrap_or_else(|| serde_json::json!({ "approved": true })))
        } else {
            TokenOutcome::Failed(Failure::new("Pixelflow.Rejected", cause.clone().unwrap_or_default()))
        };
        answers.push(match execution::answer_token(&state.app, &token, outcome) {
            Ok(id) => Answered { token, execution_id: Some(id), error: None },
            Err(e) => Answered { token, execution_id: None, error: Some(e.to_string()) },
        });
    }
    Ok(answers)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WatchOverview {
    rules: Vec<WatchRule>,
    /// `pixelflow watch status`: each rule's state and the running service's counters.
    statuses: Vec<RuleStatus>,
    default_folder: PathBuf,
}

#[tauri::command]
pub async fn watch_rules(state: State<'_, Desktop>) -> Result<WatchOverview> {
    Ok(WatchOverview {
        rules: watch::list_rules(&state.app)?,
        statuses: watch::status(&state.app)?,
        default_folder: state.app.data().watch_dir(),
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewRule {
    folder: PathBuf,
    #[serde(default)]
    recursive: bool,
    #[serde(default)]
    include: Vec<String>,
    #[serde(default)]
    exclude: Vec<String>,
    workflow: Option<String>,
    out: Option<PathBuf>,
    jobs: Option<usize>,
    on_success: Option<String>,
    on_failure: Option<String>,
}

/// `pixelflow watch add`.
#[tauri::command]
pub async fn watch_add(state: State<'_, Desktop>, rule: NewRule) -> Result<WatchRule> {
    let action = |s: Option<String>| s.as_deref().unwrap_or("leave").parse().map_err(CommandError::invalid);
    let spec = RuleSpec {
        folder: rule.folder,
        recursive: rule.recursive,
        include: rule.include,
        exclude: rule.exclude,
        workflow: rule.workflow.filter(|w| !w.is_empty()),
        out: rule.out.filter(|o| !o.as_os_str().is_empty()),
        jobs: rule.jobs,
        on_success: action(rule.on_success)?,
        on_failure: action(rule.on_failure)?,
    };
    Ok(watch::add_rule(&state.app, &spec)?)
}

#[tauri::command]
pub async fn watch_set_paused(state: State<'_, Desktop>, id: i64, paused: bool) -> Result<WatchRule> {
    Ok(watch::set_paused(&state.app, id, paused)?)
}

#[tauri::command]
pub async fn watch_remove(state: State<'_, Desktop>, id: i64) -> Result<()> {
    Ok(watch::remove_rule(&state.app, id)?)
}

/// Deletes the executions that ended more than `days` days ago; how many.
#[tauri::command]
pub async fn prune_history(state: State<'_, Desktop>, days: u32) -> Result<u64> {
    Ok(desktop::prune_history(&state.app, days)?)
}

#[tauri::command]
pub async fn doctor(state: State<'_, Desktop>) -> Result<Vec<Check>> {
    Ok(doctor::run(&state.app))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SettingsView {
    settings: DesktopSettings,
    /// The `gpu` line of `pixelflow doctor`: the adapter `auto` and `gpu` would use.
    gpu: Option<Check>,
}

#[tauri::command]
pub async fn get_settings(state: State<'_, Desktop>) -> Result<SettingsView> {
    let gpu = doctor::run(&state.app).into_iter().find(|c| c.part == "gpu");
    Ok(SettingsView { settings: desktop::load_settings(&state.app), gpu })
}

/// Saves the settings; the GPU choice applies to the next filter step that starts.
#[tauri::command]
pub async fn set_settings(state: State<'_, Desktop>, settings: DesktopSettings) -> Result<DesktopSettings> {
    desktop::save_settings(&state.app, &settings)?;
    state.device.set(&settings.device);
    Ok(settings)
}

#[tauri::command]
pub async fn list_profiles(state: State<'_, Desktop>) -> Result<Vec<ProfileEntry>> {
    Ok(profiles::list(&state.app, state.keychain.as_ref())?)
}

/// Saves a profile; `secret` (when given) goes to the OS keychain and nowhere else.
#[tauri::command]
pub async fn save_profile(state: State<'_, Desktop>, profile: CloudProfile, secret: Option<String>) -> Result<Saved> {
    Ok(profiles::save(&state.app, &profile, secret.as_deref(), state.keychain.as_ref())?)
}

#[tauri::command]
pub async fn remove_profile(state: State<'_, Desktop>, name: String) -> Result<()> {
    Ok(profiles::remove(&state.app, &name, state.keychain.as_ref())?)
}

/// What an export would send where (`pixelflow export --dry-run`): nothing is sent.
#[tauri::command]
pub async fn export_preview(state: State<'_, Desktop>, request: ExportRequest) -> Result<ExportReport> {
    let mut options = desktop::export_options(&state.app, &request, state.keychain.as_ref())?;
    options.dry_run = true;
    Ok(pixelflow_app::export::run(&state.app, &options, &CancelToken::new())?)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportStarted {
    export_id: String,
}

/// Sends the outputs of the chosen executions to a profile's destination (`pixelflow export`).
/// Returns at once; progress and each object's result arrive on `on_progress`.
#[tauri::command]
pub async fn start_export<R: Runtime>(handle: AppHandle<R>, state: State<'_, Desktop>, request: ExportRequest, on_progress: Channel<ExportMessage>) -> Result<ExportStarted> {
    let options = desktop::export_options(&state.app, &request, state.keychain.as_ref())?;
    let app = state.app.clone();
    let export_id = format!("export-{}", state.next_run.fetch_add(1, Ordering::Relaxed));
    let cancel = CancelToken::new();
    state.exports.lock().unwrap_or_else(|e| e.into_inner()).insert(export_id.clone(), cancel.clone());
    let id = export_id.clone();
    std::thread::spawn(move || {
        let sink = move |m: ExportMessage| {
            let _ = on_progress.send(m);
        };
        if let Err(e) = desktop::run_export(&app, &options, sink, &cancel) {
            tracing::warn!(error = %e, export = %id, "an export failed");
        }
        handle.state::<Desktop>().exports.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
    });
    Ok(ExportStarted { export_id })
}

/// Stops an export: files not started are not sent; running it again sends only what is missing.
#[tauri::command]
pub async fn cancel_export(state: State<'_, Desktop>, export_id: String) -> Result<bool> {
    let exports = state.exports.lock().unwrap_or_else(|e| e.into_inner());
    Ok(exports.get(&export_id).map(CancelToken::cancel).is_some())
}
