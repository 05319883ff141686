//! Batches (`pixelflow run`): a workflow over many images as ONE Map execution, with progress,
//! a results cache and a summary.
//!
//! The user's workflow becomes the item processor of a generated Map state
//! (`MaxConcurrency` = jobs, every failure tolerated, so one bad image never stops the batch).
//! Each image's content hash (blake3, memoised by path, size and mtime) is looked up in the
//! results cache first: content already processed by the same workflow is not processed again
//! unless forced. Each finished item is cached the moment it finishes, so a batch stopped by
//! Ctrl-C continues where it stopped when run again.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pixelflow_engine::{CancelToken, Checkpoint, Event, Journal, JournalError, Stop, TokenOutcome};
use pixelflow_history::{CachedResult, Outcome};
use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::execution::{self, Finished};
use crate::hashing::{hash_file, HashedFile};
use crate::workflow::Workflow;
use crate::App;

/// File extensions picked up when a folder is given (files named explicitly are always taken:
/// validation then says what they are).
pub const IMAGE_EXTENSIONS: &[&str] = &["jpg", "jpeg", "jpe", "png", "webp", "gif", "bmp", "tif", "tiff", "heic", "heif", "avif"];

#[derive(Debug, Clone)]
pub struct BatchOptions {
    /// Images processed at once.
    pub jobs: usize,
    /// Process again content the cache says is done.
    pub force: bool,
    pub out: PathBuf,
}

/// What happened to one image.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase", tag = "status")]
pub enum ItemOutcome {
    Processed { output: Value },
    /// Done by an earlier execution (the results cache).
    Cached { output: Value, execution_id: String },
    Failed { error: String, cause: String },
    /// Not reached before the batch was interrupted.
    Pending,
}

#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemReport {
    pub path: PathBuf,
    pub bytes: u64,
    #[serde(flatten)]
    pub outcome: ItemOutcome,
}

#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchReport {
    /// The Map execution, when anything had to run.
    pub execution_id: Option<String>,
    pub items: Vec<ItemReport>,
    pub bytes_in: u64,
    /// Total size of the files the outputs name inside the output folder.
    pub bytes_out: u64,
    pub elapsed: Duration,
    pub interrupted: bool,
}

impl BatchReport {
    pub fn count(&self, pred: impl Fn(&ItemOutcome) -> bool) -> usize {
        self.items.iter().filter(|i| pred(&i.outcome)).count()
    }
}

/// Told about the batch's progress as it happens (the CLI draws a progress bar from it).
pub trait Progress: Send + Sync {
    /// How many images will run (after the cache).
    fn start(&self, to_run: usize, cached: usize);
    fn item_finished(&self, path: &Path, ok: bool);
    /// The batch's execution has started (or resumed) under `id`.
    fn execution_started(&self, _id: &str) {}
}

/// The files a batch runs on: files as given, folders searched recursively for images
/// (hidden files and folders skipped), sorted and without duplicates.
pub fn collect_inputs(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut files = BTreeSet::new();
    for p in paths {
        let meta = std::fs::metadata(p).map_err(|e| Error::io(p, e))?;
        if meta.is_file() {
            files.insert(absolute(p));
            continue;
        }
        let walker = walkdir::WalkDir::new(p).follow_links(true).into_iter().filter_entry(|e| e.depth() == 0 || !is_hidden(e.path()));
        for entry in walker {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    // A symlink loop or an unreadable folder loses that folder, not the batch.
                    tracing::warn!(error = %e, "skipped while collecting inputs");
                    continue;
                }
            };
            if entry.file_type().is_file() && has_image_extension(entry.path()) {
                files.insert(absolute(entry.path()));
            }
        }
    }
    Ok(files.into_iter().collect())
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

fn is_hidden(p: &Path) -> bool {
    p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.'))
}

/// Whether the file name ends in one of [`IMAGE_EXTENSIONS`] (any case).
pub fn has_image_extension(p: &Path) -> bool {
    p.extension().and_then(|e| e.to_str()).is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// One input with what the batch knows of it before running.
struct Input {
    path: PathBuf,
    bytes: u64,
    /// `None` when the file could not be read (it then fails in the workflow with its reason).
    hash: Option<String>,
}

/// Hashes the inputs, `jobs` at a time, reusing hashes remembered for unchanged files and
/// remembering the new ones in one transaction.
fn hash_inputs(app: &App, paths: Vec<PathBuf>, jobs: usize) -> Result<Vec<Input>> {
    let next = AtomicUsize::new(0);
    let slots: Vec<Mutex<Option<HashedFile>>> = paths.iter().map(|_| Mutex::new(None)).collect();
    std::thread::scope(|scope| {
        for _ in 0..jobs.max(1).min(paths.len().max(1)) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(path) = paths.get(i) else { break };
                *slots[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(hash_file(app, path));
            });
        }
    });
    let mut inputs = Vec::with_capacity(paths.len());
    let mut learned = Vec::new();
    for (path, slot) in paths.into_iter().zip(slots) {
        if let Some(hashed) = slot.into_inner().unwrap_or_else(|e| e.into_inner()) {
            learned.extend(hashed.learned);
            inputs.push(Input { path, bytes: hashed.bytes, hash: hashed.hash });
        }
    }
    if !learned.is_empty() {
        app.history().remember_file_hashes(learned)?;
    }
    Ok(inputs)
}

/// The name of the generated Map state; its items' events are what progress counts.
const BATCH_STATE: &str = "PixelflowBatch";

/// Wraps a workflow's states as the item processor of a Map over `$.items`.
fn batch_definition(workflow: &Workflow, jobs: usize) -> Result<String> {
    let mut inner: Value = serde_json::from_str(&workflow.text).map_err(|e| Error::invalid("", e.to_string()))?;
    if let Some(obj) = inner.as_object_mut() {
        // Only the top level may have these; the batch as a whole has no time limit.
        obj.remove("TimeoutSeconds");
        obj.remove("Version");
        obj.remove("Comment");
    }
    let def = json!({
        "Comment": format!("pixelflow run: {} over a batch", workflow.name),
        "StartAt": BATCH_STATE,
        "States": {
            BATCH_STATE: {
                "Type": "Map",
                "ItemsPath": "$.items",
                "MaxConcurrency": jobs,
                "ToleratedFailurePercentage": 100,
                "ItemSelector": { "path.$": "$$.Map.Item.Value", "outputDir.$": "$.outputDir" },
                "ItemProcessor": inner,
                "End": true
            }
        }
    });
    Ok(serde_json::to_string_pretty(&def).unwrap_or_default())
}

/// Runs `workflow` over `paths`.
pub fn run(
    app: &App,
    workflow: &Workflow,
    paths: Vec<PathBuf>,
    opts: &BatchOptions,
    progress: Arc<dyn Progress>,
    cancel: &CancelToken,
) -> Result<BatchReport> {
    let started = Instant::now();
    std::fs::create_dir_all(&opts.out).map_err(|e| Error::io(&opts.out, e))?;
    // Half-written outputs of a process killed mid-write: never results, only clutter.
    pixelflow_imaging::util::sweep_stale_temp_files(&opts.out, pixelflow_imaging::util::STALE_TEMP_AGE);
    let jobs = opts.jobs.max(1);
    let inputs = hash_inputs(app, paths, jobs)?;

    let mut items: Vec<ItemReport> = Vec::with_capacity(inputs.len());
    let mut to_run: Vec<usize> = Vec::new();
    for (i, input) in inputs.iter().enumerate() {
        let cached = match (&input.hash, opts.force) {
            (Some(hash), false) => app.history().cached_result(hash, &workflow.hash)?,
            _ => None,
        };
        let outcome = match cached {
            Some(c) => ItemOutcome::Cached { output: c.output, execution_id: c.execution_id },
            None => {
                to_run.push(i);
                ItemOutcome::Pending
            }
        };
        items.push(ItemReport { path: input.path.clone(), bytes: input.bytes, outcome });
    }
    progress.start(to_run.len(), items.len() - to_run.len());

    let mut execution_id = None;
    let mut interrupted = false;
    if !to_run.is_empty() {
        let batch = Workflow::from_text(&workflow.name, &batch_definition(workflow, jobs)?, app.steps()).map_err(Error::Invalid)?;
        let run_paths: Vec<&Path> = to_run.iter().map(|&i| inputs[i].path.as_path()).collect();
        let input = json!({ "items": run_paths, "outputDir": opts.out });
        let observer = Arc::new(BatchObserver {
            inner: app.journal(),
            app: app.clone(),
            workflow_hash: workflow.hash.clone(),
            items: to_run.iter().map(|&i| (inputs[i].path.clone(), inputs[i].hash.clone())).collect(),
            progress: progress.clone(),
        });
        let result = execution::start_with_journal(app, &batch, input, None, cancel, observer)?;
        execution_id = Some(result.id.clone());
        match result.finished {
            Finished::Succeeded(Value::Array(outputs)) => {
                for (&i, out) in to_run.iter().zip(outputs) {
                    items[i].outcome = item_outcome(out);
                }
            }
            Finished::Succeeded(other) => {
                return Err(Error::invalid("", format!("the batch ended with an unexpected output {other}")));
            }
            Finished::Failed(f) | Finished::TimedOut(f) => {
                for &i in &to_run {
                    items[i].outcome = ItemOutcome::Failed { error: f.error.clone(), cause: f.cause.clone() };
                }
            }
            Finished::Interrupted => {
                interrupted = true;
                // Finished items are in the results cache; running the batch again continues
                // from there, so this execution is closed rather than left to be resumed too.
                let aborted = pixelflow_engine::Failure::new(
                    pixelflow_engine::error::names::ABORTED,
                    "interrupted; run the same batch again to continue",
                );
                app.history().finish_execution(&result.id, &Outcome::Aborted(aborted))?;
                for &i in &to_run {
                    if let Some(hash) = &inputs[i].hash {
                        if let Some(c) = app.history().cached_result(hash, &workflow.hash)? {
                            items[i].outcome = item_outcome(c.output);
                        }
                    }
                }
            }
        }
    }
    let bytes_in = items.iter().map(|i| i.bytes).sum();
    let bytes_out = output_bytes(&items, &opts.out);
    Ok(BatchReport { execution_id, items, bytes_in, bytes_out, elapsed: started.elapsed(), interrupted })
}

/// An item's entry of the Map output: its workflow's output, or `{Error, Cause}` when it failed.
fn item_outcome(out: Value) -> ItemOutcome {
    match (out.get("Error"), out.get("Cause"), out.as_object().map(|o| o.len())) {
        (Some(Value::String(e)), cause, Some(2)) | (Some(Value::String(e)), cause @ None, Some(1)) => ItemOutcome::Failed {
            error: e.clone(),
            cause: cause.and_then(Value::as_str).unwrap_or_default().to_string(),
        },
        _ => ItemOutcome::Processed { output: out },
    }
}

/// Sums the sizes of distinct files inside `out` that the outputs name.
fn output_bytes(items: &[ItemReport], out: &Path) -> u64 {
    fn paths<'a>(v: &'a Value, acc: &mut Vec<&'a str>) {
        match v {
            Value::Object(map) => {
                for (k, v) in map {
                    match (k.as_str(), v) {
                        ("path", Value::String(s)) => acc.push(s),
                        _ => paths(v, acc),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|i| paths(i, acc)),
            _ => {}
        }
    }
    let out = std::fs::canonicalize(out).unwrap_or_else(|_| out.to_path_buf());
    let mut seen = BTreeSet::new();
    for item in items {
        if let ItemOutcome::Processed { output } | ItemOutcome::Cached { output, .. } = &item.outcome {
            let mut acc = Vec::new();
            paths(output, &mut acc);
            for p in acc {
                if let Ok(real) = std::fs::canonicalize(p) {
                    if real.starts_with(&out) {
                        seen.insert(real);
                    }
                }
            }
        }
    }
    seen.iter().filter_map(|p| std::fs::metadata(p).ok()).map(|m| m.len()).sum()
}

/// Passes everything to the app's journal, and watches the top-level Map's iterations finish:
/// each success goes to the results cache at once, each end to the progress sink.
struct BatchObserver {
    inner: Arc<dyn Journal>,
    app: App,
    workflow_hash: String,
    /// (path, content hash) of each Map item, by index.
    items: Vec<(PathBuf, Option<String>)>,
    progress: Arc<dyn Progress>,
}

impl BatchObserver {
    /// The item index of a top-level iteration key (`/0:PixelflowBatch#<attempt>/i<index>`).
    fn top_level_index(key: &str) -> Option<usize> {
        let rest = key.strip_prefix("/0:PixelflowBatch#")?;
        let (attempt, index) = rest.split_once("/i")?;
        if attempt.bytes().all(|b| b.is_ascii_digit()) {
            index.parse().ok()
        } else {
            None
        }
    }

    fn observe(&self, execution: &str, kind: &str, key: &str, output: Option<&Value>) {
        let ok = match kind {
            "MapIterationSucceeded" => true,
            "MapIterationFailed" => false,
            "ExecutionStarted" => return self.progress.execution_started(execution),
            _ => return,
        };
        let Some(index) = Self::top_level_index(key) else { return };
        let Some((path, hash)) = self.items.get(index) else { return };
        if ok {
            if let (Some(hash), Some(output)) = (hash, output) {
                let result = CachedResult {
                    path: path.to_string_lossy().into_owned(),
                    output: output.clone(),
                    execution_id: execution.to_string(),
                    finished_at_ms: self.app.clock().now_ms(),
                };
                if let Err(e) = self.app.history().store_result(hash, &self.workflow_hash, &result) {
                    tracing::warn!(error = %e, path = %path.display(), "could not record the result in the cache");
                }
            }
        }
        self.progress.item_finished(path, ok);
    }
}

impl Journal for BatchObserver {
    fn begin(&self, execution: &str) {
        self.inner.begin(execution);
    }
    fn record(&self, execution: &str, event: Event) {
        self.observe(execution, &event.kind, &event.key, event.detail.get("output"));
        self.inner.record(execution, event);
    }
    fn record_fields(&self, execution: &str, kind: &str, state: Option<&str>, key: &str, fields: &[(&str, &Value)]) {
        let output = fields.iter().find(|(name, _)| *name == "output").map(|(_, v)| *v);
        self.observe(execution, kind, key, output);
        self.inner.record_fields(execution, kind, state, key, fields);
    }
    fn checkpoint(&self, execution: &str, key: &str) -> Result<Option<Checkpoint>, JournalError> {
        self.inner.checkpoint(execution, key)
    }
    fn save_checkpoint(&self, execution: &str, key: &str, checkpoint: &Checkpoint) -> Result<(), JournalError> {
        self.inner.save_checkpoint(execution, key, checkpoint)
    }
    fn task_token(&self, execution: &str, key: &str, state: &str, payload: &Value) -> Result<String, JournalError> {
        self.inner.task_token(execution, key, state, payload)
    }
    fn wait_for_token(&self, token: &str, timeout: Option<Duration>, cancel: &CancelToken) -> Result<Option<TokenOutcome>, JournalError> {
        self.inner.wait_for_token(token, timeout, cancel)
    }
    fn flush(&self) -> Result<(), JournalError> {
        self.inner.flush()
    }
    fn end(&self, execution: &str, result: &Result<Value, Stop>) -> Result<(), JournalError> {
        self.inner.end(execution, result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_level_iteration_keys_only() {
        assert_eq!(BatchObserver::top_level_index("/0:PixelflowBatch#0/i17"), Some(17));
        assert_eq!(BatchObserver::top_level_index("/0:PixelflowBatch#2/i3"), Some(3));
        assert_eq!(BatchObserver::top_level_index("/0:PixelflowBatch#0/i3/2:Inner#0/i1"), None);
        assert_eq!(BatchObserver::top_level_index("/1:Other#0/i3"), None);
    }

    #[test]
    fn failed_items_are_told_from_outputs() {
        assert_eq!(
            item_outcome(json!({"Error": "E", "Cause": "c"})),
            ItemOutcome::Failed { error: "E".into(), cause: "c".into() }
        );
        assert!(matches!(item_outcome(json!({"Error": "E", "Cause": "c", "more": 1})), ItemOutcome::Processed { .. }));
    }

    #[test]
    fn folders_are_searched_for_images_and_hidden_files_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("sub/.cache")).unwrap();
        for f in ["a.jpg", "b.PNG", "notes.txt", ".hidden.jpg", "sub/c.webp", "sub/.cache/d.jpg"] {
            std::fs::write(d.join(f), b"x").unwrap();
        }
        let got = collect_inputs(&[d.to_path_buf(), d.join("notes.txt")]).unwrap();
        let names: Vec<String> = got.iter().map(|p| p.strip_prefix(d).unwrap().to_string_lossy().into_owned()).collect();
        assert_eq!(names, ["a.jpg", "b.PNG", "notes.txt", "sub/c.webp"]);
        assert!(collect_inputs(&[d.join("missing")]).is_err());
    }
}
