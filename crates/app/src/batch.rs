//! Batches (`pixelflow run`): a workflow over many images as ONE Map execution, with progress,
//! a results cache and a summary.
//!
//! The user's workflow becomes the item processor of a generated Map state
//! (`MaxConcurrency` = jobs, every failure tolerated, so one bad image never stops the batch).
//! Each image's content hash (blake3, memoised by path, size and mtime) is looked up in the
//! results cache first: content already processed by the same workflow, whose outputs are
//! still in this batch's output folder, is not processed again unless forced. Each finished
//! item is cached the moment it finishes, so a batch stopped by Ctrl-C continues where it
//! stopped when run again.
//!
//! Outputs mirror the folders the images were found in (`photos/2024/a.jpg` given as
//! `photos` goes to `out/2024/`), as rclone and XnConvert's "keep folder structure" do: a
//! photographer's card dumps reuse names (`DSC_0001.JPG` in every folder), and a flat output
//! folder silently kept only the last image of each name. Images whose outputs would still
//! take the same names (`a.png` and `a.jpg` side by side, or `--flat`) are refused with the
//! reason, never overwritten.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pixelflow_engine::{CancelToken, Checkpoint, Event, Failure, Journal, JournalError, Stop, TokenOutcome};
use pixelflow_history::{CachedResult, NamedOutputs, Outcome, OutputName};
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
    /// Every output directly in `out`, instead of in the input's folder mirrored under it.
    pub flat: bool,
}

/// The error of an image refused because its outputs would replace another image's.
pub const OUTPUT_CONFLICT: &str = "Pixelflow.OutputConflict";

/// An image a batch runs on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchInput {
    pub path: PathBuf,
    /// The folder it is in, relative to the folder it was found under (empty for a file given
    /// by name): where its outputs go under the output folder.
    pub subfolder: PathBuf,
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
/// (hidden files and folders skipped), sorted and without duplicates. Each keeps its folder
/// relative to the folder it was found under; when several folders are given, that folder's own
/// name comes first, as `cp -r cardA cardB out/` makes `out/cardA/` and `out/cardB/` (one
/// folder gives its contents). A file found twice (a folder and a folder inside it both given)
/// keeps the place of the first it was found under.
pub fn collect_inputs(paths: &[PathBuf]) -> Result<Vec<BatchInput>> {
    let mut files = BTreeMap::new();
    let folders = paths.iter().filter(|p| p.is_dir()).count();
    for p in paths {
        let meta = std::fs::metadata(p).map_err(|e| Error::io(p, e))?;
        if meta.is_file() {
            files.entry(absolute(p)).or_insert_with(PathBuf::new);
            continue;
        }
        let named = absolute(p);
        let base = match named.file_name() {
            Some(name) if folders > 1 => PathBuf::from(name),
            _ => PathBuf::new(),
        };
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
                let subfolder = entry.path().parent().and_then(|d| d.strip_prefix(p).ok()).map(|d| base.join(d)).unwrap_or_default();
                files.entry(absolute(entry.path())).or_insert(subfolder);
            }
        }
    }
    Ok(files.into_iter().map(|(path, subfolder)| BatchInput { path, subfolder }).collect())
}

/// Where the outputs of an image in `subfolder` (relative to the folder it was found under) go:
/// the same place under `out`. Only plain folder names are followed, so the result is always
/// inside `out`.
pub fn mirrored_output_dir(out: &Path, subfolder: &Path) -> PathBuf {
    let mut dir = out.to_path_buf();
    for part in subfolder.components() {
        if let std::path::Component::Normal(name) = part {
            dir.push(name);
        }
    }
    dir
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

/// The name under which an image's outputs are known in `out_dir`: its file stem, which output
/// names are made from (`{stem}-{variant}.{ext}`), folded to lower case where the file system
/// ignores case.
pub(crate) fn output_name(path: &Path, out_dir: &Path) -> OutputName {
    let mut key = pixelflow_imaging::naming::stem_of(path);
    if cfg!(any(target_os = "macos", target_os = "windows")) {
        key = key.to_lowercase();
    }
    OutputName { dir: out_dir.to_string_lossy().into_owned(), key }
}

/// For each image whose outputs would take the names of another's in this batch, the index of
/// that other: same output folder and same [`output_name`]. `order` is the indexes in order of
/// precedence: the first of each name keeps it.
fn output_conflicts(order: impl Iterator<Item = usize>, paths: &[&Path], dirs: &[PathBuf]) -> HashMap<usize, usize> {
    let mut owners: HashMap<OutputName, usize> = HashMap::new();
    let mut conflicts = HashMap::new();
    for i in order {
        match owners.entry(output_name(paths[i], &dirs[i])) {
            std::collections::hash_map::Entry::Occupied(owner) => {
                conflicts.insert(i, *owner.get());
            }
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(i);
            }
        }
    }
    conflicts
}

/// The earlier image, of an earlier run or of a watch folder, whose outputs `path` would
/// replace: recorded under the same output folder and name, other content, and the latest to
/// write a file that is still in that folder. When `same_path_is_an_edit`, outputs made from
/// this very path are this image's earlier version (edited since), which it is meant to replace.
pub(crate) fn displaced_outputs(
    app: &App,
    path: &Path,
    hash: Option<&str>,
    name: &OutputName,
    same_path_is_an_edit: bool,
) -> Result<Option<NamedOutputs>> {
    // Newest first: a file rewritten by a later image is that image's, not the older one's.
    let mut written_later: HashSet<String> = HashSet::new();
    for earlier in app.history().outputs_named(name)?.into_iter().rev() {
        let owned: Vec<&String> = earlier.files.iter().filter(|f| written_later.insert((*f).clone())).collect();
        let its_own = Some(earlier.content_hash.as_str()) == hash || (same_path_is_an_edit && Path::new(&earlier.path) == path);
        if !its_own && owned.iter().any(|f| Path::new(f).is_file()) {
            return Ok(Some(earlier));
        }
    }
    Ok(None)
}

/// The files of `output` that lie directly in `out_dir`: what an image leaves under its
/// [`output_name`] there.
pub(crate) fn files_in(output: &Value, out_dir: &Path) -> Vec<String> {
    let mut named = Vec::new();
    output_paths(output, &mut named);
    let mut files: Vec<String> = named.into_iter().filter(|f| Path::new(f).parent() == Some(out_dir)).map(str::to_string).collect();
    files.sort();
    files.dedup();
    files
}

/// Whether the workflow writes output files, so that its images' output names can collide
/// (see [`writes_outputs`]); assumed when its text does not parse.
pub(crate) fn workflow_writes_outputs(workflow: &Workflow) -> bool {
    serde_json::from_str(&workflow.text).map_or(true, |d: Value| writes_outputs(&d))
}

/// Whether any state of the definition reads or sets `outputDir` (a parameter of the steps
/// that write files): a workflow that writes nothing has no output names to collide.
fn writes_outputs(definition: &Value) -> bool {
    match definition {
        Value::Object(map) => map.iter().any(|(k, v)| k == "outputDir" || k == "outputDir.$" || writes_outputs(v)),
        Value::Array(items) => items.iter().any(writes_outputs),
        _ => false,
    }
}

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
                "ItemSelector": { "path.$": "$$.Map.Item.Value.path", "outputDir.$": "$$.Map.Item.Value.outputDir" },
                "ItemProcessor": inner,
                "End": true
            }
        }
    });
    Ok(serde_json::to_string_pretty(&def).unwrap_or_default())
}

/// Runs `workflow` over `inputs`.
pub fn run(
    app: &App,
    workflow: &Workflow,
    inputs: Vec<BatchInput>,
    opts: &BatchOptions,
    progress: Arc<dyn Progress>,
    cancel: &CancelToken,
) -> Result<BatchReport> {
    let started = Instant::now();
    // Absolute: the outputs' paths are recorded in the history, and read from elsewhere.
    let out = absolute(&opts.out);
    std::fs::create_dir_all(&out).map_err(|e| Error::io(&out, e))?;
    let jobs = opts.jobs.max(1);
    // Outputs of earlier runs, when the output folder is inside a folder given
    // (`run ~/Pictures --out ~/Pictures/thumbs`), are not inputs: each run would nest another copy.
    let mut inputs = inputs;
    let given = inputs.len();
    inputs.retain(|i| !i.path.starts_with(&out));
    if inputs.len() < given {
        tracing::info!(count = given - inputs.len(), out = %out.display(), "left out the images inside the output folder");
    }
    let out_dirs: Vec<PathBuf> = inputs.iter().map(|i| if opts.flat { out.clone() } else { mirrored_output_dir(&out, &i.subfolder) }).collect();
    // Half-written outputs of a process killed mid-write: never results, only clutter.
    for dir in out_dirs.iter().chain([&out]).collect::<BTreeSet<_>>() {
        pixelflow_imaging::util::sweep_stale_temp_files(dir, pixelflow_imaging::util::STALE_TEMP_AGE);
    }
    let inputs = hash_inputs(app, inputs.into_iter().map(|i| i.path).collect(), jobs)?;

    let mut items: Vec<ItemReport> = Vec::with_capacity(inputs.len());
    let mut runnable: Vec<usize> = Vec::new();
    for (i, input) in inputs.iter().enumerate() {
        let cached = match (&input.hash, opts.force) {
            (Some(hash), false) => app.history().cached_result(hash, &workflow.hash)?,
            _ => None,
        }
        .filter(|c| cached_result_stands(c, &input.path, &out_dirs[i], &out));
        let outcome = match cached {
            Some(c) => ItemOutcome::Cached { output: c.output, execution_id: c.execution_id },
            None => {
                runnable.push(i);
                ItemOutcome::Pending
            }
        };
        items.push(ItemReport { path: input.path.clone(), bytes: input.bytes, outcome });
    }
    // Images already done own their output names; then the rest in path order.
    let checks_names = workflow_writes_outputs(workflow);
    let conflicts = if checks_names {
        let paths: Vec<&Path> = inputs.iter().map(|i| i.path.as_path()).collect();
        let done = (0..inputs.len()).filter(|i| matches!(items[*i].outcome, ItemOutcome::Cached { .. }));
        output_conflicts(done.chain(runnable.iter().copied()), &paths, &out_dirs)
    } else {
        HashMap::new()
    };
    // Earlier outputs are looked up name by name only in output folders that have any, and
    // only for a workflow that writes outputs.
    let mut folders_with_outputs: HashMap<&Path, bool> = HashMap::new();
    for &i in &runnable {
        if let std::collections::hash_map::Entry::Vacant(slot) = folders_with_outputs.entry(&out_dirs[i]) {
            slot.insert(checks_names && app.history().has_outputs_in(&out_dirs[i].to_string_lossy())?);
        }
    }
    let mut to_run = Vec::with_capacity(runnable.len());
    for i in runnable {
        let cause = match conflicts.get(&i) {
            Some(&owner) => format!(
                "its outputs would replace those of {}, which has the same name and writes to the same folder {}; rename one of them{}",
                inputs[owner].path.display(),
                out_dirs[i].display(),
                if opts.flat { ", or run without --flat" } else { "" },
            ),
            None if !folders_with_outputs[out_dirs[i].as_path()] => {
                to_run.push(i);
                continue;
            }
            None => {
                let name = output_name(&inputs[i].path, &out_dirs[i]);
                match displaced_outputs(app, &inputs[i].path, inputs[i].hash.as_deref(), &name, true)? {
                    Some(earlier) => format!(
                        "its outputs would replace those of {}, made earlier (execution {}) with the same name in {}; rename it, or write it to another folder",
                        earlier.path,
                        earlier.execution_id,
                        out_dirs[i].display(),
                    ),
                    None => {
                        to_run.push(i);
                        continue;
                    }
                }
            }
        };
        // In the history too, as an attempt refused before it ran.
        let input = json!({ "path": inputs[i].path, "outputDir": out_dirs[i] });
        execution::reject(app, &workflow.name, &workflow.text, input, &Failure::new(OUTPUT_CONFLICT, cause.clone()))?;
        items[i].outcome = ItemOutcome::Failed { error: OUTPUT_CONFLICT.to_string(), cause };
    }
    progress.start(to_run.len(), items.iter().filter(|i| matches!(i.outcome, ItemOutcome::Cached { .. })).count());

    let mut execution_id = None;
    let mut interrupted = false;
    if !to_run.is_empty() {
        let batch = Workflow::from_text(&workflow.name, &batch_definition(workflow, jobs)?, app.steps()).map_err(Error::Invalid)?;
        let run_items: Vec<Value> = to_run.iter().map(|&i| json!({ "path": inputs[i].path, "outputDir": out_dirs[i] })).collect();
        let input = json!({ "items": run_items, "outputDir": out });
        let observer = Arc::new(BatchObserver {
            inner: app.journal(),
            app: app.clone(),
            workflow_hash: workflow.hash.clone(),
            items: to_run.iter().map(|&i| (inputs[i].path.clone(), inputs[i].hash.clone(), output_name(&inputs[i].path, &out_dirs[i]))).collect(),
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
                        // Only what this run made: an older result the run was to replace is not done.
                        if let Some(c) = app.history().cached_result(hash, &workflow.hash)?.filter(|c| c.execution_id == result.id) {
                            items[i].outcome = item_outcome(c.output);
                        }
                    }
                }
            }
        }
    }
    let bytes_in = items.iter().map(|i| i.bytes).sum();
    let bytes_out = output_bytes(&items, &out);
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

/// Every `"path"` string of a workflow's output: the files it names.
pub(crate) fn output_paths<'a>(v: &'a Value, acc: &mut Vec<&'a str>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("path", Value::String(s)) => acc.push(s),
                    _ => output_paths(v, acc),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| output_paths(i, acc)),
        _ => {}
    }
}

/// Whether an earlier result still stands for `input` in a batch writing its outputs to
/// `out_dir` under the output folder `out`: every file the result names (its input aside) is
/// still there, and it wrote into `out_dir` (a result made from this very file) or anywhere
/// under `out` (a result made from a copy of the file, the same content at another path:
/// content is processed once). A result whose files were deleted, or that went to another
/// output folder, is made again instead of being reported "already done" for outputs the
/// person cannot find.
pub(crate) fn cached_result_stands(cached: &CachedResult, input: &Path, out_dir: &Path, out: &Path) -> bool {
    let mut named = Vec::new();
    output_paths(&cached.output, &mut named);
    let source = Path::new(&cached.path);
    let files: Vec<&Path> = named.into_iter().map(Path::new).filter(|p| *p != input && *p != source).collect();
    let in_place = if source == input { files.iter().any(|p| p.parent() == Some(out_dir)) } else { files.iter().any(|p| p.starts_with(out)) };
    files.is_empty() || (files.iter().all(|p| p.is_file()) && in_place)
}

/// Sums the sizes of distinct files inside `out` that the outputs name.
fn output_bytes(items: &[ItemReport], out: &Path) -> u64 {
    let out = std::fs::canonicalize(out).unwrap_or_else(|_| out.to_path_buf());
    let mut seen = BTreeSet::new();
    for item in items {
        if let ItemOutcome::Processed { output } | ItemOutcome::Cached { output, .. } = &item.outcome {
            let mut acc = Vec::new();
            output_paths(output, &mut acc);
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
    /// (path, content hash, output name) of each Map item, by index.
    items: Vec<(PathBuf, Option<String>, OutputName)>,
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
        let Some((path, hash, name)) = self.items.get(index) else { return };
        if ok {
            if let (Some(hash), Some(output)) = (hash, output) {
                let result = CachedResult {
                    path: path.to_string_lossy().into_owned(),
                    output: output.clone(),
                    execution_id: execution.to_string(),
                    finished_at_ms: self.app.clock().now_ms(),
                };
                let files = files_in(output, Path::new(&name.dir));
                if let Err(e) = self.app.history().store_result(hash, &self.workflow_hash, &result, Some((name, &files))) {
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
        let names: Vec<String> = got.iter().map(|i| i.path.strip_prefix(d).unwrap().to_string_lossy().into_owned()).collect();
        assert_eq!(names, ["a.jpg", "b.PNG", "notes.txt", "sub/c.webp"]);
        let subfolders: Vec<&Path> = got.iter().map(|i| i.subfolder.as_path()).collect();
        assert_eq!(subfolders, [Path::new(""), Path::new(""), Path::new(""), Path::new("sub")]);
        assert!(collect_inputs(&[d.join("missing")]).is_err());
    }

    #[test]
    fn a_file_keeps_its_place_under_the_first_folder_it_was_found_under() {
        let dir = tempfile::tempdir().unwrap();
        let d = &dir.path().join("photos");
        std::fs::create_dir_all(d.join("2024/05")).unwrap();
        std::fs::write(d.join("2024/05/a.jpg"), b"x").unwrap();
        let found = |roots: &[PathBuf]| collect_inputs(roots).unwrap().into_iter().map(|i| i.subfolder).collect::<Vec<_>>();
        assert_eq!(found(&[d.to_path_buf()]), [PathBuf::from("2024/05")]);
        // Two folders given: each keeps its name, and the file its place under the first.
        assert_eq!(found(&[d.to_path_buf(), d.join("2024")]), [PathBuf::from("photos/2024/05")]);
        assert_eq!(found(&[d.join("2024"), d.to_path_buf()]), [PathBuf::from("2024/05")]);
        assert_eq!(found(&[d.join("2024/05/a.jpg"), d.to_path_buf()]), [PathBuf::new()]);
        // Several folders: each under its own name.
        std::fs::create_dir_all(dir.path().join("cardB")).unwrap();
        std::fs::write(dir.path().join("cardB/a.jpg"), b"y").unwrap();
        assert_eq!(found(&[d.join("2024"), dir.path().join("cardB")]), [PathBuf::from("cardB"), PathBuf::from("2024/05")]);
    }

    #[test]
    fn mirrored_output_folders_stay_inside_the_output_folder() {
        let out = Path::new("/out");
        assert_eq!(mirrored_output_dir(out, Path::new("")), Path::new("/out"));
        assert_eq!(mirrored_output_dir(out, Path::new("2024/05")), Path::new("/out/2024/05"));
        assert_eq!(mirrored_output_dir(out, Path::new("../../etc")), Path::new("/out/etc"));
        assert_eq!(mirrored_output_dir(out, Path::new("/abs/x")), Path::new("/out/abs/x"));
    }

    #[test]
    fn outputs_with_the_same_name_in_the_same_folder_conflict_and_the_first_keeps_it() {
        let paths = [Path::new("/a/IMG.png"), Path::new("/a/IMG.jpg"), Path::new("/b/IMG.jpg"), Path::new("/a/other.jpg")];
        let mirrored = [PathBuf::from("/o/a"), PathBuf::from("/o/a"), PathBuf::from("/o/b"), PathBuf::from("/o/a")];
        // Mirrored: only the two of folder a named IMG collide; in order 1 first, 0 is refused.
        assert_eq!(output_conflicts([1, 0, 2, 3].into_iter(), &paths, &mirrored), HashMap::from([(0, 1)]));
        let flat = [PathBuf::from("/o"), PathBuf::from("/o"), PathBuf::from("/o"), PathBuf::from("/o")];
        assert_eq!(output_conflicts(0..4, &paths, &flat), HashMap::from([(1, 0), (2, 0)]));
    }

    #[test]
    fn a_cached_result_stands_while_its_files_are_in_the_output_folder() {
        let dir = tempfile::tempdir().unwrap();
        let (input, out) = (dir.path().join("a.png"), dir.path().join("out"));
        std::fs::create_dir_all(&out).unwrap();
        std::fs::write(&input, b"x").unwrap();
        std::fs::write(out.join("a.jpg"), b"x").unwrap();
        let cached = |output: Value| CachedResult { path: input.to_string_lossy().into_owned(), output, execution_id: "e".into(), finished_at_ms: 0 };
        let resized = cached(json!({"path": input, "resized": {"variants": [{"path": out.join("a.jpg")}]}}));
        assert!(cached_result_stands(&resized, &input, &out, &out));
        let elsewhere = dir.path().join("elsewhere");
        assert!(!cached_result_stands(&resized, &input, &elsewhere, &elsewhere), "another output folder");
        // A copy of the file: the content was processed, its outputs are under this output folder.
        let copy = dir.path().join("copy/a.png");
        assert!(cached_result_stands(&resized, &copy, &out.join("copy"), &out));
        assert!(!cached_result_stands(&resized, &copy, &elsewhere, &elsewhere), "a copy, another output folder");
        let validated = cached(json!({"path": input, "validation": {"isValid": true}}));
        assert!(cached_result_stands(&validated, &input, &out, &out), "writes nothing");
        std::fs::remove_file(out.join("a.jpg")).unwrap();
        assert!(!cached_result_stands(&resized, &input, &out, &out), "deleted");
        assert!(!cached_result_stands(&resized, &copy, &out.join("copy"), &out), "deleted");
    }

    #[test]
    fn workflows_that_write_outputs_are_told_by_their_output_dir() {
        assert!(writes_outputs(&json!({"States": {"R": {"Parameters": {"outputDir.$": "$.outputDir"}}}})));
        assert!(writes_outputs(&json!({"States": {"M": {"ItemProcessor": {"States": {"R": {"Parameters": {"outputDir": "/o"}}}}}}})));
        assert!(!writes_outputs(&json!({"States": {"V": {"Parameters": {"path.$": "$.path"}}}})));
    }
}
