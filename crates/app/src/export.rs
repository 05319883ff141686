//! Cloud sync from the app: the history as the sync step's upload log, and `pixelflow export`
//! (the desktop app's export calls the same [`run`]): the output files of the chosen
//! executions, uploaded with the step's code.
//!
//! What an execution produced is read from its output: every object with a string `path`
//! (a resize variant `{name, path, ...}`, a filter or optimize answer, a batch's items) names a
//! file, and its sibling `name` is the `{variant}`. Paths that also appear in the execution's
//! input are originals and are never exported. A file produced by several selected executions
//! goes up once.
//!
//! Resume is a re-run: every file is looked up at its key first (HEAD) and skipped when the
//! object holds the same content, so an export interrupted by a crash, a lost network or a
//! server restart, run again, sends only what is missing and ends with every object present
//! once. Each run is recorded in `exports`; each confirmed object in `uploads`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use pixelflow_engine::{CancelToken, Failure, StepRegistry};
use pixelflow_history::{ExecutionFilter, ExecutionRecord, ExecutionStatus, History, Upload};
use pixelflow_sync::{Action, Destination, Item, KeyVars, Overwrite, StoreOptions, UploadLog, UploadOptions, UploadRecord};
use serde::Serialize;
use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::App;

/// Records confirmed uploads in the history.
pub struct HistoryLog(pub History);

impl UploadLog for HistoryLog {
    fn record(&self, u: &UploadRecord) -> std::result::Result<(), String> {
        let upload = Upload {
            destination: u.destination.clone(),
            key: u.key.clone(),
            etag: u.etag.clone(),
            size: u.size,
            content_hash: u.content_hash.clone(),
            source: u.source.clone(),
            execution_id: u.execution_id.clone(),
            credentials: u.credentials.clone(),
            uploaded_at_ms: pixelflow_history::now_ms(),
        };
        self.0.record_upload(&upload, u.unchanged).map_err(|e| e.to_string())
    }
}

/// Registers `pixelflow:sync` with the history as its upload log.
pub fn register_sync(steps: &mut StepRegistry, history: &History) {
    pixelflow_sync::register(steps, Arc::new(HistoryLog(history.clone())));
}

/// What to export and where.
#[derive(Debug, Clone, Default)]
pub struct ExportOptions {
    /// `s3://bucket/prefix/` or `az://container/prefix/` (may use `{variant}`, `{execution}`,
    /// `{date}`: the execution's start date).
    pub destination: String,
    /// Executions by id or unique prefix.
    pub executions: Vec<String>,
    /// Executions started at or after (RFC 3339, a date or ms since the epoch).
    pub since: Option<String>,
    /// Executions of this workflow.
    pub workflow: Option<String>,
    /// List what would go where; send nothing.
    pub dry_run: bool,
    pub store: StoreOptions,
    pub overwrite: Overwrite,
    /// Files in flight at once (default: [`UploadOptions::default`]'s).
    pub concurrency: Option<usize>,
}

/// One file of an export.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportItem {
    pub source: PathBuf,
    pub key: String,
    pub execution_id: String,
    /// `None` in a dry run or when it failed.
    pub action: Option<Action>,
    pub etag: Option<String>,
    pub error: Option<Failure>,
}

/// What an export did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportReport {
    /// The id of the `exports` row (absent in a dry run).
    pub id: Option<String>,
    pub destination: String,
    pub dry_run: bool,
    pub total: usize,
    pub uploaded: usize,
    pub unchanged: usize,
    pub kept: usize,
    pub failed: usize,
    /// The first failure, for the CLI's `{"error", "cause"}`.
    pub error: Option<Failure>,
    pub objects: Vec<ExportItem>,
}

impl ExportReport {
    pub fn succeeded(&self) -> bool {
        self.failed == 0 && self.error.is_none()
    }
}

fn sync_failure(e: pixelflow_sync::Error) -> Failure {
    pixelflow_sync::step::failure(e)
}

/// What an export tells [`run_with_progress`]'s callback as it goes.
#[derive(Debug)]
pub enum ExportProgress<'a> {
    /// The files are known (before anything is sent).
    Planned { total: usize },
    /// One object is confirmed at its key: uploaded, or found there unchanged.
    Confirmed(&'a UploadRecord),
}

/// The history's log that also tells the caller of each confirmed object.
struct ProgressLog<'a> {
    log: HistoryLog,
    on_progress: &'a (dyn Fn(ExportProgress<'_>) + Sync),
}

impl UploadLog for ProgressLog<'_> {
    fn record(&self, u: &UploadRecord) -> std::result::Result<(), String> {
        let recorded = self.log.record(u);
        (self.on_progress)(ExportProgress::Confirmed(u));
        recorded
    }
}

/// Runs an export (or, with `dry_run`, only plans it).
pub fn run(app: &App, options: &ExportOptions, cancel: &CancelToken) -> Result<ExportReport> {
    run_with_progress(app, options, cancel, &|_| {})
}

/// Like [`run`], telling `on_progress` the number of files once planned and then each object
/// as it is confirmed (from the upload threads; the desktop app throttles them into events).
pub fn run_with_progress(app: &App, options: &ExportOptions, cancel: &CancelToken, on_progress: &(dyn Fn(ExportProgress<'_>) + Sync)) -> Result<ExportReport> {
    let destination = Destination::parse(&options.destination).map_err(|e| Error::invalid("/destination", e.to_string()))?;
    let mut upload = UploadOptions { overwrite: options.overwrite, ..UploadOptions::default() };
    if let Some(c) = options.concurrency {
        upload.concurrency = c;
    }
    upload.validate().map_err(|e| Error::invalid("", e.to_string()))?;
    let executions = select(app.history(), options)?;
    let items = plan(&destination, &executions)?;
    on_progress(ExportProgress::Planned { total: items.len() });
    let mut report = ExportReport {
        id: None,
        destination: destination.to_string(),
        dry_run: options.dry_run,
        total: items.len(),
        uploaded: 0,
        unchanged: 0,
        kept: 0,
        failed: 0,
        error: None,
        objects: Vec::with_capacity(items.len()),
    };
    if options.dry_run {
        report.objects = items
            .into_iter()
            .map(|i| ExportItem { source: i.source, key: i.key, execution_id: i.execution_id.unwrap_or_default(), action: None, etag: None, error: None })
            .collect();
        return Ok(report);
    }
    let id = uuid::Uuid::new_v4().to_string();
    let selection = json!({ "executions": options.executions, "since": options.since, "workflow": options.workflow, "prefix": destination.prefix() });
    app.history().start_export(&id, &destination.root(), &selection, items.len() as u64)?;
    report.id = Some(id.clone());
    let store = match pixelflow_sync::open(&destination, &options.store) {
        Ok(store) => store,
        Err(e) => {
            let failure = sync_failure(e);
            report.failed = items.len();
            app.history().finish_export(&id, 0, 0, report.failed as u64, Some(&failure.to_string()))?;
            report.objects = items
                .into_iter()
                .map(|i| ExportItem { source: i.source, key: i.key, execution_id: i.execution_id.unwrap_or_default(), action: None, etag: None, error: Some(failure.clone()) })
                .collect();
            report.error = Some(failure);
            return Ok(report);
        }
    };
    tracing::info!(files = items.len(), destination = %destination, credentials = %store.credentials, "export");
    let log = ProgressLog { log: HistoryLog(app.history().clone()), on_progress };
    let results = pixelflow_sync::upload_all(&store, items.clone(), &upload, &log, &|| cancel.is_cancelled());
    for (item, result) in items.into_iter().zip(results) {
        let mut entry = ExportItem { source: item.source, key: item.key, execution_id: item.execution_id.unwrap_or_default(), action: None, etag: None, error: None };
        match result {
            Ok(outcome) => {
                match outcome.action {
                    Action::Uploaded => report.uploaded += 1,
                    Action::Unchanged => report.unchanged += 1,
                    Action::Kept => report.kept += 1,
                }
                entry.action = Some(outcome.action);
                entry.etag = outcome.etag;
            }
            Err(e) => {
                report.failed += 1;
                let failure = sync_failure(e);
                report.error.get_or_insert_with(|| failure.clone());
                entry.error = Some(failure);
            }
        }
        report.objects.push(entry);
    }
    let error = report.error.as_ref().map(|f| f.to_string());
    app.history().finish_export(&id, report.uploaded as u64, (report.unchanged + report.kept) as u64, report.failed as u64, error.as_deref())?;
    Ok(report)
}

/// The SUCCEEDED executions the options name.
fn select(history: &History, options: &ExportOptions) -> Result<Vec<ExecutionRecord>> {
    if options.executions.is_empty() && options.since.is_none() && options.workflow.is_none() {
        return Err(Error::invalid("", "say what to export: --execution ID, --since DATE or --workflow NAME"));
    }
    let mut out = Vec::new();
    if !options.executions.is_empty() {
        for id in &options.executions {
            let record = history.execution(id)?.ok_or_else(|| Error::NotFound(format!("no execution '{id}'")))?;
            let since_ok = match &options.since {
                Some(s) => record.started_at_ms >= pixelflow_history::parse_time(s)?,
                None => true,
            };
            let workflow_ok = options.workflow.as_ref().is_none_or(|w| &record.workflow_name == w);
            if since_ok && workflow_ok {
                if record.status != ExecutionStatus::Succeeded {
                    return Err(Error::invalid("", format!("execution {} is {}, not SUCCEEDED: it has no outputs to export", record.id, record.status.as_str())));
                }
                out.push(record);
            }
        }
        return Ok(out);
    }
    let filter = ExecutionFilter {
        status: Some(ExecutionStatus::Succeeded),
        workflow: options.workflow.clone(),
        since: options.since.clone(),
        limit: Some(usize::MAX >> 1),
        ..ExecutionFilter::default()
    };
    for summary in history.list_executions(&filter)? {
        if let Some(record) = history.execution(&summary.id)? {
            out.push(record);
        }
    }
    // Oldest first: when several executions made the same file, the first one names it.
    out.reverse();
    Ok(out)
}

/// The files of the executions' outputs and their keys.
fn plan(destination: &Destination, executions: &[ExecutionRecord]) -> Result<Vec<Item>> {
    let mut seen = HashSet::new();
    let mut items = Vec::new();
    for record in executions {
        let Some(output) = &record.output else { continue };
        let mut originals = HashSet::new();
        strings(&record.input, &mut originals);
        let date = chrono::DateTime::from_timestamp_millis(record.started_at_ms).map(|t| t.format("%Y-%m-%d").to_string());
        let mut files = Vec::new();
        output_files(output, "output", &mut files);
        for (path, variant) in files {
            if originals.contains(path) || !seen.insert(PathBuf::from(path)) {
                continue;
            }
            let source = PathBuf::from(path);
            let name = key_name(&record.input, &source).ok_or_else(|| Error::invalid("", format!("output path '{path}' has no file name")))?;
            let vars = KeyVars { variant, execution: Some(&record.id), date: date.as_deref() };
            let key = destination.key(&vars, &name).map_err(|e| Error::invalid("/destination", format!("execution {}: {e}", record.id)))?;
            items.push(Item { source, key, execution_id: Some(record.id.clone()) });
        }
    }
    Ok(items)
}

/// What an output file is called under the destination's prefix: its path under the output
/// folder its execution wrote to (the input's `outputRoot`, that of a watch rule, else its
/// `outputDir`; a batch's outputs mirror its input folders there, `2024/05/a.jpg`), so the
/// folders are kept as they are on disk; its file name when it lies elsewhere or a folder's
/// name could not be a key's.
fn key_name(input: &Value, source: &Path) -> Option<String> {
    let root = input.get("outputRoot").or_else(|| input.get("outputDir")).and_then(Value::as_str);
    if let Some(relative) = root.and_then(|dir| source.strip_prefix(dir).ok()) {
        let parts: Option<Vec<&str>> = relative
            .components()
            .map(|c| match c {
                std::path::Component::Normal(part) => part.to_str().filter(|p| !p.contains('\\') && !p.chars().any(char::is_control)),
                _ => None,
            })
            .collect();
        if let Some(parts) = parts.filter(|p| !p.is_empty()) {
            return Some(parts.join("/"));
        }
    }
    source.file_name().and_then(|n| n.to_str()).map(str::to_string)
}

/// Every string in a JSON value.
fn strings<'a>(v: &'a Value, out: &mut HashSet<&'a str>) {
    match v {
        Value::String(s) => {
            out.insert(s);
        }
        Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        Value::Object(o) => o.values().for_each(|x| strings(x, out)),
        _ => {}
    }
}

/// `(path, variant)` of every object with a string `path` in an output, in document order.
/// The variant is the object's `name` (a resize variant) or else the nearest key it sits
/// under (`filtered`, `optimized`; lists like `outputs` pass their parent's on), or `output`
/// at the top.
fn output_files<'a>(v: &'a Value, under: &'a str, out: &mut Vec<(&'a str, Option<&'a str>)>) {
    match v {
        Value::Array(a) => a.iter().for_each(|x| output_files(x, under, out)),
        Value::Object(o) => {
            if let Some(path) = o.get("path").and_then(Value::as_str) {
                out.push((path, Some(o.get("name").and_then(Value::as_str).unwrap_or(under))));
            }
            for (k, x) in o.iter().filter(|(k, _)| k.as_str() != "path") {
                // Lists of results name nothing themselves: `optimized.outputs[i]` is `optimized`.
                let name = if matches!(k.as_str(), "outputs" | "variants" | "items" | "results") { under } else { k.as_str() };
                output_files(x, name, out);
            }
        }
        _ => {}
    }
}

/// `pixelflow doctor`'s "cloud" line: which credentials sync and export would find (never
/// the secrets themselves; no network).
pub fn cloud_check() -> crate::doctor::Check {
    use crate::doctor::{Check, Status};
    let found = pixelflow_sync::store::found_credentials();
    if found.is_empty() {
        Check::new(
            "cloud",
            Status::Warn,
            "no cloud credentials found (needed only for sync and export): set AWS_ACCESS_KEY_ID or add ~/.aws profiles; set AZURE_STORAGE_CONNECTION_STRING or AZURE_STORAGE_ACCOUNT",
        )
    } else {
        Check::new("cloud", Status::Ok, found.join(" | "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_files_are_found_with_their_variant() {
        let output = json!({"items": [{"variants": [{"name": "thumb", "path": "/o/a.jpg"}, {"name": "big", "path": "/o/a-big.jpg"}]}, {"filtered": {"path": "/o/b.png"}}], "optimized": {"outputs": [{"path": "/o/c.jpg"}]}});
        let mut files = Vec::new();
        output_files(&output, "output", &mut files);
        assert_eq!(files, [("/o/a.jpg", Some("thumb")), ("/o/a-big.jpg", Some("big")), ("/o/b.png", Some("filtered")), ("/o/c.jpg", Some("optimized"))]);
    }

    #[test]
    fn keys_keep_the_folders_under_the_output_folder() {
        let batch = json!({"items": [], "outputDir": "/o"});
        assert_eq!(key_name(&batch, Path::new("/o/2024/05/a.jpg")).as_deref(), Some("2024/05/a.jpg"));
        assert_eq!(key_name(&batch, Path::new("/o/a.jpg")).as_deref(), Some("a.jpg"));
        // Written elsewhere (a step with its own outputDir), or no outputDir: the file name.
        assert_eq!(key_name(&batch, Path::new("/elsewhere/b/c.jpg")).as_deref(), Some("c.jpg"));
        assert_eq!(key_name(&json!({"path": "/in.jpg"}), Path::new("/o/x/c.jpg")).as_deref(), Some("c.jpg"));
        // A watch rule's execution: its outputDir is the mirrored subfolder, its outputRoot the rule's.
        let watched = json!({"path": "/in/day 1/a.jpg", "outputDir": "/o/day 1", "outputRoot": "/o"});
        assert_eq!(key_name(&watched, Path::new("/o/day 1/a.jpg")).as_deref(), Some("day 1/a.jpg"));
        // A folder name that no key may hold: the file name.
        assert_eq!(key_name(&batch, Path::new("/o/a\\b/c.jpg")).as_deref(), Some("c.jpg"));
    }
}
