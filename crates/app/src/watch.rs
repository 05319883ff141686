//! Watch folders: rules stored in the history (`pixelflow watch add|list|remove|pause|resume`)
//! and the headless service that serves them (`pixelflow watch run`).
//!
//! The service first resumes executions left unfinished, then serves every active rule on its
//! own thread: a catch-up scan of the files already there, then file-system events. A file is
//! taken only once it is complete: at once when its writer closes it (inotify's close-write),
//! else once its size and mtime are unchanged across two looks [`STABLE_AFTER`] apart (longer
//! for a file seen growing: a copy or download renamed into place), and never when it is hidden, a
//! partial download or temporary file, or inside the rule's output folder or its `done/` and
//! `failed/` subfolders. Its content hash is looked up in the results cache: content the rule's
//! workflow already processed (the same file renamed or moved, or a restart) is skipped while
//! its outputs are there. A file whose outputs would replace another image's (the same name
//! in the same output folder) is renamed in place under a rule that moves originals, refused
//! otherwise (see [`name_conflict`]).
//! Successes are recorded in that cache; failures are not (the next start tries again) but are
//! not retried within one run. Each rule runs `concurrency` executions at a time from a bounded
//! queue, so a folder of 10,000 new files does not balloon memory. A missing watched folder
//! sets the rule's `last_error` and is looked for again every [`RETRY_EVERY`].
//!
//! Change notification is the OS's (inotify on Linux) unless the OS refuses more watches
//! (`fs.inotify.max_user_watches` / `max_user_instances` reached): the rule then falls back to
//! polling the folder every [`POLL_EVERY`], says so in the log and in `watch status`, and keeps
//! working. `--poll` asks for polling from the start (network volumes, where inotify sees no
//! remote changes). One service at a time serves a data directory: a second one is refused
//! (an exclusive lock on `watch.lock`), since two would race on the same files.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use globset::{Glob, GlobSet, GlobSetBuilder};
use notify::event::{AccessKind, AccessMode};
use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use pixelflow_engine::CancelToken;
use pixelflow_engine::Failure;
use pixelflow_history::{CachedResult, NewWatchRule, OriginalAction, OutputName, WatchRule, WatchStatus};
use serde_json::{json, Value};

use crate::batch;
use crate::error::{Error, Result};
use crate::execution::{self, Finished};
use crate::hashing;
use crate::workflow::{Workflow, BUNDLED, DEFAULT_WORKFLOW};
use crate::App;

/// Files discovered and waiting for a worker, per rule; beyond it discovery waits.
const QUEUE_DEPTH: usize = 64;

/// How long a file's size and mtime must stay the same before it is taken.
pub const STABLE_AFTER: Duration = Duration::from_millis(300);

/// The longest quiet period asked of a file that was seen growing.
const STABLE_MAX: Duration = Duration::from_secs(2);

/// How often a missing watched folder is looked for again.
pub const RETRY_EVERY: Duration = Duration::from_secs(3);

/// How often the service looks for rules added, removed, paused or resumed.
pub const RELOAD_EVERY: Duration = Duration::from_secs(1);

/// How often a polled folder is scanned (when the OS gives no events, or `--poll` asks).
pub const POLL_EVERY: Duration = Duration::from_secs(2);

/// What `watch status` shows for a rule served with the OS's change events.
pub const WATCHING_EVENTS: &str = "events";

/// Executions a rule runs at once unless told otherwise.
pub const DEFAULT_JOBS: usize = 2;

/// The subfolders of a watched folder that originals move to (never watched).
pub const DONE_DIR: &str = "done";
pub const FAILED_DIR: &str = "failed";

/// A rule as the user gives it (`pixelflow watch add`).
#[derive(Debug, Clone)]
pub struct RuleSpec {
    pub folder: PathBuf,
    pub recursive: bool,
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    /// A workflow file or a bundled workflow's name; the default pipeline when absent.
    pub workflow: Option<String>,
    /// The output folder; `output/` of the data dir when absent.
    pub out: Option<PathBuf>,
    pub jobs: Option<usize>,
    pub on_success: OriginalAction,
    pub on_failure: OriginalAction,
}

impl RuleSpec {
    /// A rule for `folder` with every default.
    pub fn new(folder: impl Into<PathBuf>) -> Self {
        RuleSpec {
            folder: folder.into(),
            recursive: false,
            include: Vec::new(),
            exclude: Vec::new(),
            workflow: None,
            out: None,
            jobs: None,
            on_success: OriginalAction::Leave,
            on_failure: OriginalAction::Leave,
        }
    }
}

fn absolute(p: &Path) -> Result<PathBuf> {
    std::path::absolute(p).map_err(|e| Error::io(p, e))
}

/// The workflow a rule names: a bundled workflow's name, else a file.
pub fn resolve_workflow(app: &App, name_or_path: &str) -> Result<Workflow> {
    if BUNDLED.iter().any(|(n, _)| *n == name_or_path) {
        Workflow::bundled(name_or_path, app.steps())
    } else {
        Workflow::load(Path::new(name_or_path), app.steps())
    }
}

fn glob_set(patterns: &[String]) -> Result<GlobSet> {
    let mut builder = GlobSetBuilder::new();
    for p in patterns {
        builder.add(Glob::new(p).map_err(|e| Error::invalid("", format!("invalid glob '{p}': {e}")))?);
    }
    builder.build().map_err(|e| Error::invalid("", format!("invalid globs: {e}")))
}

/// Validates and stores a rule: the folder and output made absolute, the globs compiled, the
/// workflow loaded (a file is stored by its absolute path).
pub fn add_rule(app: &App, spec: &RuleSpec) -> Result<WatchRule> {
    let folder = absolute(&spec.folder)?;
    let out = absolute(&spec.out.clone().unwrap_or_else(|| app.data().output_dir()))?;
    if out == folder {
        return Err(Error::invalid("", "the output folder cannot be the watched folder itself (use a subfolder or another folder)"));
    }
    glob_set(&spec.include)?;
    glob_set(&spec.exclude)?;
    let workflow = match &spec.workflow {
        None => DEFAULT_WORKFLOW.to_string(),
        Some(w) if BUNDLED.iter().any(|(n, _)| n == w) => w.clone(),
        Some(w) if Path::new(w).is_file() => absolute(Path::new(w))?.to_string_lossy().into_owned(),
        Some(w) => {
            let names: Vec<&str> = BUNDLED.iter().map(|(n, _)| *n).collect();
            return Err(Error::NotFound(format!("'{w}' is neither a workflow file nor a bundled workflow ({})", names.join(", "))));
        }
    };
    resolve_workflow(app, &workflow)?;
    let jobs = spec.jobs.unwrap_or(DEFAULT_JOBS);
    if jobs == 0 {
        return Err(Error::invalid("", "--jobs must be at least 1"));
    }
    let new = NewWatchRule {
        folder: folder.to_string_lossy().into_owned(),
        recursive: spec.recursive,
        include: spec.include.clone(),
        exclude: spec.exclude.clone(),
        workflow,
        output: out.to_string_lossy().into_owned(),
        concurrency: u32::try_from(jobs).unwrap_or(u32::MAX),
        on_success: spec.on_success,
        on_failure: spec.on_failure,
    };
    Ok(app.history().add_watch_rule(&new)?)
}

pub fn list_rules(app: &App) -> Result<Vec<WatchRule>> {
    Ok(app.history().watch_rules()?)
}

pub fn remove_rule(app: &App, id: i64) -> Result<()> {
    if app.history().remove_watch_rule(id)? {
        Ok(())
    } else {
        Err(Error::NotFound(format!("no watch rule {id}")))
    }
}

/// Pauses or resumes a rule; returns it as it now is. A running service sees it within
/// [`RELOAD_EVERY`]; executions under way finish.
pub fn set_paused(app: &App, id: i64, paused: bool) -> Result<WatchRule> {
    if !app.history().set_watch_rule_paused(id, paused)? {
        return Err(Error::NotFound(format!("no watch rule {id}")));
    }
    app.history().watch_rule(id)?.ok_or_else(|| Error::NotFound(format!("no watch rule {id}")))
}

/// A published status older than this belongs to a service that is gone (it publishes every
/// [`RELOAD_EVERY`]).
pub const STATUS_STALE_AFTER: Duration = Duration::from_secs(5);

/// One rule as `pixelflow watch status` shows it: its state, and what the running service
/// published about it (zeros when no service serves it).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleStatus {
    /// 0: the default rule, served when none is stored.
    pub id: i64,
    /// `None` for the default rule.
    pub folder: Option<String>,
    /// `active`, `paused`, `error` (see `last_error`) or `stopped` (no running service serves it).
    pub state: &'static str,
    pub last_error: Option<String>,
    /// The pid of the service serving it, when one is running.
    pub service_pid: Option<u32>,
    /// Complete files waiting for a worker.
    pub queued: u64,
    /// Executions running now.
    pub in_flight: u64,
    /// Since the service started serving the rule.
    pub processed: u64,
    pub failed: u64,
    /// Files whose content the rule's workflow had already processed (not run again).
    pub skipped: u64,
    /// How the service sees new files: `events`, or `polling: <why>`; `None` when not served.
    pub watching: Option<String>,
}

/// Every stored rule (and the default one while a service serves it) with its state and the
/// counters the running service published.
pub fn status(app: &App) -> Result<Vec<RuleStatus>> {
    let now = app.clock().now_ms();
    let stale = i64::try_from(STATUS_STALE_AFTER.as_millis()).unwrap_or(i64::MAX);
    let published: HashMap<i64, WatchStatus> =
        app.history().watch_statuses()?.into_iter().filter(|s| now - s.updated_at_ms < stale).map(|s| (s.rule_id, s)).collect();
    let row = |id: i64, folder: Option<String>, paused: bool, last_error: Option<String>| {
        let live = published.get(&id);
        let state = match (paused, &last_error, live) {
            (true, _, _) => "paused",
            (false, Some(_), _) => "error",
            (false, None, Some(_)) => "active",
            (false, None, None) => "stopped",
        };
        RuleStatus {
            id,
            folder,
            state,
            last_error,
            service_pid: live.map(|s| s.pid),
            queued: live.map_or(0, |s| s.queued),
            in_flight: live.map_or(0, |s| s.in_flight),
            processed: live.map_or(0, |s| s.processed),
            failed: live.map_or(0, |s| s.failed),
            skipped: live.map_or(0, |s| s.skipped),
            watching: live.map(|s| s.watching.clone()),
        }
    };
    let mut out = Vec::new();
    if published.contains_key(&0) {
        out.push(row(0, None, false, None));
    }
    for r in app.history().watch_rules()? {
        out.push(row(r.id, Some(r.folder), r.paused, r.last_error));
    }
    Ok(out)
}

/// A rule ready to serve.
#[derive(Clone)]
struct Active {
    /// `None` for the default rule used when none is stored.
    id: Option<i64>,
    folder: PathBuf,
    recursive: bool,
    /// `None`: images by extension.
    include: Option<GlobSet>,
    exclude: GlobSet,
    workflow: Workflow,
    /// Whether the workflow writes output files (whose names can collide).
    writes_outputs: bool,
    out: PathBuf,
    jobs: usize,
    on_success: OriginalAction,
    on_failure: OriginalAction,
}

impl Active {
    fn from_rule(app: &App, rule: &WatchRule) -> Result<Active> {
        let workflow = resolve_workflow(app, &rule.workflow)?;
        Ok(Active {
            id: Some(rule.id),
            folder: PathBuf::from(&rule.folder),
            recursive: rule.recursive,
            include: if rule.include.is_empty() { None } else { Some(glob_set(&rule.include)?) },
            exclude: glob_set(&rule.exclude)?,
            writes_outputs: batch::workflow_writes_outputs(&workflow),
            workflow,
            out: PathBuf::from(&rule.output),
            jobs: (rule.concurrency as usize).max(1),
            on_success: rule.on_success,
            on_failure: rule.on_failure,
        })
    }

    fn name(&self) -> String {
        match self.id {
            Some(id) => format!("rule {id}"),
            None => "default rule".to_string(),
        }
    }

    fn set_error(&self, app: &App, error: Option<&str>) {
        if let Some(id) = self.id {
            if let Err(e) = app.history().set_watch_rule_error(id, error) {
                tracing::warn!(rule = id, error = %e, "could not record the rule's last error");
            }
        }
    }

    /// Where the outputs of `path` go: its subfolder of the watched folder mirrored under the
    /// output folder, as a batch's are.
    fn output_dir(&self, path: &Path) -> PathBuf {
        let subfolder = path.parent().and_then(|d| d.strip_prefix(&self.folder).ok()).unwrap_or(Path::new(""));
        batch::mirrored_output_dir(&self.out, subfolder)
    }

    /// Whether the service takes this file (its name and place only; completeness is checked apart).
    fn wants(&self, path: &Path) -> bool {
        let Ok(rel) = path.strip_prefix(&self.folder) else { return false };
        if rel.as_os_str().is_empty() || (!self.recursive && rel.components().count() != 1) {
            return false;
        }
        if rel.components().any(|c| c.as_os_str().to_str().is_none_or(|s| s.starts_with('.'))) {
            return false;
        }
        if !is_candidate(path) || path.starts_with(&self.out) {
            return false;
        }
        if path.starts_with(self.folder.join(DONE_DIR)) || path.starts_with(self.folder.join(FAILED_DIR)) {
            return false;
        }
        let name = Path::new(path.file_name().unwrap_or_default());
        let matches = |set: &GlobSet| set.is_match(rel) || set.is_match(name);
        let included = match &self.include {
            Some(set) => matches(set),
            None => crate::batch::has_image_extension(path),
        };
        included && !matches(&self.exclude)
    }
}

/// Hidden files, partial downloads and temporary files are never picked up.
fn is_candidate(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else { return false };
    !(name.starts_with('.') || name.ends_with(".part") || name.ends_with(".crdownload") || name.ends_with(".tmp") || name.ends_with('~'))
}

/// The service. Serves every active stored rule or, when none is stored, `fallback` (the
/// default folder, workflow and output); runs until `cancel` fires. Rules added, removed,
/// paused or resumed while it runs take effect within [`RELOAD_EVERY`].
/// How the service watches, beyond the rules themselves.
#[derive(Debug, Clone, Default)]
pub struct ServiceOptions {
    /// Poll every folder at this interval instead of using the OS's change events.
    pub poll: Option<Duration>,
}

/// Runs the service with the default options until `cancel` fires.
pub fn run(app: &App, fallback: &RuleSpec, cancel: &CancelToken) -> Result<()> {
    run_with(app, fallback, &ServiceOptions::default(), cancel)
}

/// Runs the service until `cancel` fires: resumes what a crash left, then serves every active
/// rule (or `fallback` when none is stored), following rule changes as they are made.
pub fn run_with(app: &App, fallback: &RuleSpec, options: &ServiceOptions, cancel: &CancelToken) -> Result<()> {
    let _lock = ServiceLock::acquire(app)?;
    resume_left_over(app, cancel)?;
    let default_rule = default_active(app, fallback)?;
    std::thread::scope(|scope| {
        // The rules being served (`None`: the default one), with the token that stops each and
        // the counters it publishes.
        let mut running: HashMap<Option<i64>, (CancelToken, Arc<Shared>)> = HashMap::new();
        // Rules that could not start (their last_error says why); tried again once resumed.
        let mut refused: HashSet<i64> = HashSet::new();
        let mut idle_warned = false;
        let spawn = |id: Option<i64>, active: Active, running: &mut HashMap<Option<i64>, (CancelToken, Arc<Shared>)>| {
            let stop = cancel.child();
            let shared = Arc::new(Shared::new(app.clock().now_ms(), options.poll));
            running.insert(id, (stop.clone(), shared.clone()));
            scope.spawn(move || serve_rule(app, &active, &shared, &stop, cancel));
        };
        while !cancel.is_cancelled() {
            match app.history().watch_rules() {
                Ok(rules) => {
                    let wanted: HashSet<Option<i64>> = if rules.is_empty() {
                        HashSet::from([None])
                    } else {
                        rules.iter().filter(|r| !r.paused).map(|r| Some(r.id)).collect()
                    };
                    running.retain(|id, (stop, _)| {
                        let keep = wanted.contains(id);
                        if !keep {
                            let name = id.map_or_else(|| "default rule".to_string(), |id| format!("rule {id}"));
                            tracing::info!(rule = %name, "stopped serving (paused, removed, or replaced by stored rules)");
                            stop.cancel();
                        }
                        keep
                    });
                    refused.retain(|id| wanted.contains(&Some(*id)));
                    if rules.is_empty() && !running.contains_key(&None) {
                        spawn(None, default_rule.clone(), &mut running);
                    }
                    for rule in rules.iter().filter(|r| !r.paused) {
                        if running.contains_key(&Some(rule.id)) || refused.contains(&rule.id) {
                            continue;
                        }
                        match Active::from_rule(app, rule) {
                            Ok(active) => spawn(Some(rule.id), active, &mut running),
                            Err(e) => {
                                tracing::error!(rule = rule.id, error = %e, "watch rule cannot run");
                                let _ = app.history().set_watch_rule_error(rule.id, Some(&e.to_string()));
                                refused.insert(rule.id);
                            }
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot read the watch rules; serving those already running"),
            }
            if running.is_empty() && !idle_warned {
                tracing::warn!("no active watch rule (all paused or invalid); waiting");
            }
            idle_warned = running.is_empty();
            publish_status(app, &running);
            sleep_unless_cancelled(cancel, RELOAD_EVERY);
        }
    });
    // Stopped cleanly: no rule is served any more (a killed service leaves rows that age).
    if let Err(e) = app.history().publish_watch_status(Vec::new()) {
        tracing::warn!(error = %e, "could not clear the published watch status");
    }
    Ok(())
}

/// Publishes each served rule's counters into the history (`pixelflow watch status` reads them).
fn publish_status(app: &App, running: &HashMap<Option<i64>, (CancelToken, Arc<Shared>)>) {
    let now = app.clock().now_ms();
    let rows = running
        .iter()
        .map(|(id, (_, shared))| {
            let in_flight = shared.in_flight.load(Ordering::Relaxed);
            WatchStatus {
                rule_id: id.unwrap_or(0),
                pid: std::process::id(),
                queued: (lock(&shared.queued).len() as u64).saturating_sub(in_flight),
                in_flight,
                processed: shared.processed.load(Ordering::Relaxed),
                failed: shared.failed_count.load(Ordering::Relaxed),
                skipped: shared.skipped.load(Ordering::Relaxed),
                started_at_ms: shared.started_at_ms,
                updated_at_ms: now,
                watching: lock(&shared.watching).clone(),
            }
        })
        .collect();
    if let Err(e) = app.history().publish_watch_status(rows) {
        tracing::warn!(error = %e, "could not publish the watch status");
    }
}

/// The rule served when none is stored.
fn default_active(app: &App, fallback: &RuleSpec) -> Result<Active> {
    let workflow = resolve_workflow(app, fallback.workflow.as_deref().unwrap_or(DEFAULT_WORKFLOW))?;
    let out = absolute(&fallback.out.clone().unwrap_or_else(|| app.data().output_dir()))?;
    let folder = absolute(&fallback.folder)?;
    std::fs::create_dir_all(&folder).map_err(|e| Error::io(&folder, e))?;
    Ok(Active {
        id: None,
        folder,
        recursive: fallback.recursive,
        include: if fallback.include.is_empty() { None } else { Some(glob_set(&fallback.include)?) },
        exclude: glob_set(&fallback.exclude)?,
        writes_outputs: batch::workflow_writes_outputs(&workflow),
        workflow,
        out,
        jobs: fallback.jobs.unwrap_or(DEFAULT_JOBS).max(1),
        on_success: fallback.on_success,
        on_failure: fallback.on_failure,
    })
}

/// Resumes executions left unfinished, recording in the results cache those of single files
/// that succeed, so the catch-up scan that follows does not process them again.
fn resume_left_over(app: &App, cancel: &CancelToken) -> Result<()> {
    for r in execution::resume_orphans(app, cancel)? {
        tracing::info!(execution = %r.id, finished = ?r.finished, "resumed");
        let Finished::Succeeded(output) = r.finished else { continue };
        let Some(record) = app.history().execution(&r.id)? else { continue };
        let Some(path) = record.input.get("path").and_then(Value::as_str) else { continue };
        let hashed = hashing::hash_file(app, Path::new(path));
        if let Some(hash) = hashed.hash {
            let named = record.input.get("outputDir").and_then(Value::as_str).map(|dir| {
                let dir = Path::new(dir);
                (batch::output_name(Path::new(path), dir), batch::files_in(&output, dir))
            });
            let result = CachedResult { path: path.to_string(), output, execution_id: r.id.clone(), finished_at_ms: app.clock().now_ms() };
            app.history().store_result(&hash, &record.workflow_hash, &result, named.as_ref().map(|(n, f)| (n, f.as_slice())))?;
        }
    }
    Ok(())
}

fn sleep_unless_cancelled(cancel: &CancelToken, d: Duration) {
    let until = Instant::now() + d;
    while !cancel.is_cancelled() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(50).min(until - Instant::now()));
    }
}

/// Serves one rule until `stop` fires (the rule was paused or removed, or the service stops),
/// waiting for its folder whenever it is missing. Executions under way run on until `cancel`
/// (the service's token) fires, so pausing a rule never interrupts one.
fn serve_rule(app: &App, rule: &Active, shared: &Shared, stop: &CancelToken, cancel: &CancelToken) {
    // `None` until the first report, so the first "watching" is logged too.
    let mut reported: Option<Option<String>> = None;
    let mut report = |error: Option<String>| {
        if reported.as_ref() != Some(&error) {
            match &error {
                Some(e) => tracing::warn!(rule = %rule.name(), error = %e, "watch rule paused by an error; retrying"),
                None => tracing::info!(rule = %rule.name(), folder = %rule.folder.display(), out = %rule.out.display(), workflow = %rule.workflow.name, "watching"),
            }
            rule.set_error(app, error.as_deref());
            reported = Some(error);
        }
    };
    // Files done (or given up) in this run, by their (size, mtime) then, live in `shared`,
    // kept across sessions so a folder that comes back does not redo them.
    while !stop.is_cancelled() {
        if !rule.folder.is_dir() {
            report(Some(format!("the watched folder {} is missing", rule.folder.display())));
            sleep_unless_cancelled(stop, RETRY_EVERY);
            continue;
        }
        if let Err(e) = std::fs::create_dir_all(&rule.out) {
            report(Some(format!("cannot create the output folder {}: {e}", rule.out.display())));
            sleep_unless_cancelled(stop, RETRY_EVERY);
            continue;
        }
        report(None);
        // Half-written outputs of a service killed mid-write: never results, only clutter.
        pixelflow_imaging::util::sweep_stale_temp_files(&rule.out, pixelflow_imaging::util::STALE_TEMP_AGE);
        match session(app, rule, shared, stop, cancel) {
            Ok(()) => {}
            Err(e) => {
                report(Some(e));
                sleep_unless_cancelled(stop, RETRY_EVERY);
            }
        }
    }
}

/// What a rule's discovery and workers share, with the counters the service publishes.
#[derive(Default)]
struct Shared {
    started_at_ms: i64,
    /// Executions running now.
    in_flight: AtomicU64,
    /// Files processed successfully since the rule started being served.
    processed: AtomicU64,
    /// Files that failed (or could not be processed) since then.
    failed_count: AtomicU64,
    /// Files whose content the rule's workflow had already processed.
    skipped: AtomicU64,
    /// Paths queued or being processed.
    queued: Mutex<HashSet<PathBuf>>,
    /// Paths finished in this run, with the (size, mtime) they had.
    done: Mutex<HashMap<PathBuf, Stat>>,
    /// Content hashes that failed in this run (not retried until the next start).
    failed: Mutex<HashSet<String>>,
    /// The output names of the executions running now (see [`NameInUse`]).
    names_in_use: Mutex<HashSet<OutputName>>,
    /// Poll at this interval instead of asking the OS for events (asked, or the OS refused).
    poll: Mutex<Option<Duration>>,
    /// What `watch status` shows: [`WATCHING_EVENTS`] or `polling: <why>`.
    watching: Mutex<String>,
}

impl Shared {
    fn new(started_at_ms: i64, poll: Option<Duration>) -> Self {
        let watching = match poll {
            Some(every) => format!("polling every {}s: asked with --poll", every.as_secs_f64()),
            None => WATCHING_EVENTS.to_string(),
        };
        Shared { started_at_ms, poll: Mutex::new(poll), watching: Mutex::new(watching), ..Default::default() }
    }
}

/// The exclusive lock that keeps a second service off a data directory. Held for the life of
/// the service; the OS releases it when the process dies, so a crash leaves no stale lock.
struct ServiceLock {
    _file: std::fs::File,
}

impl ServiceLock {
    fn acquire(app: &App) -> Result<ServiceLock> {
        let path = app.data().root().join("watch.lock");
        let mut file = std::fs::OpenOptions::new().create(true).truncate(false).read(true).write(true).open(&path).map_err(|e| Error::io(&path, e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let holder = std::fs::read_to_string(&path).unwrap_or_default();
                let holder = holder.trim();
                let who = if holder.is_empty() { String::new() } else { format!(" (pid {holder})") };
                return Err(Error::Busy(format!(
                    "another watch service{who} is already serving {}; stop it first (one service per data directory)",
                    app.data().root().display()
                )));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(&path, e)),
        }
        // The holder's pid, for the message above (the lock, not this text, is what counts).
        use std::io::{Seek, Write};
        let _ = file.set_len(0).and_then(|_| file.rewind()).and_then(|_| write!(file, "{}", std::process::id()));
        Ok(ServiceLock { _file: file })
    }
}

type Stat = (u64, i64);

fn stat(path: &Path) -> Option<Stat> {
    let meta = std::fs::metadata(path).ok()?;
    meta.is_file().then(|| (meta.len(), hashing::mtime_ns(&meta)))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A file seen but not yet known to be complete.
struct Watching {
    last: Option<Stat>,
    window: Duration,
    next_check: Instant,
}

impl Watching {
    fn new(now: Instant) -> Self {
        Watching { last: None, window: STABLE_AFTER, next_check: now }
    }
}

/// One watch of a present folder: catch-up, then events. `Ok` when cancelled, `Err` (the
/// reason) when the folder went away or could not be watched.
fn session(app: &App, rule: &Active, shared: &Shared, stop: &CancelToken, cancel: &CancelToken) -> Result<(), String> {
    let (ev_tx, ev_rx) = mpsc::sync_channel::<Seen>(QUEUE_DEPTH * 16);
    // Set by the event callback when the OS refuses a watch later on (a new subfolder beyond
    // the limit): discovery then ends the session and the next one polls.
    let refused = Arc::new(AtomicBool::new(false));
    let watcher = FolderWatcher::start(rule, shared, &ev_tx, &refused)?;
    drop(ev_tx);
    let (work_tx, work_rx) = mpsc::sync_channel::<(PathBuf, Stat)>(QUEUE_DEPTH);
    let work_rx = Mutex::new(work_rx);
    let result = std::thread::scope(|scope| {
        for _ in 0..rule.jobs {
            scope.spawn(|| worker(app, rule, shared, &work_rx, stop, cancel));
        }
        discover(rule, shared, &ev_rx, work_tx, stop, &refused)
    });
    // The event channel goes first, so a callback blocked on it returns and the debouncer stops.
    drop(ev_rx);
    drop(watcher);
    result
}

/// What the watcher tells discovery.
enum Seen {
    /// Created, written to, or moved in: complete once it stops changing.
    Changed(PathBuf),
    /// Its writer closed it: complete now.
    Closed(PathBuf),
    /// Events were lost (the OS's queue overflowed): walk the folder again.
    Rescan,
}

/// The OS's change events for a folder, or polling when the OS refuses them.
///
/// Events come straight from notify, without a time-based debouncer: completeness is decided
/// by [`discover`] (close-write, or size and mtime stable), which is what a debouncer's delay
/// would only approximate, and a debouncer would add its timeout to every file's latency and
/// wake up every tick while the folder is idle. Polling is [`discover`]'s own walk every
/// interval, comparing each file's (size, mtime in ns) with what was done: notify's
/// PollWatcher compares whole seconds of mtime and so misses a file rewritten within the
/// second it was last seen.
enum FolderWatcher {
    Events(#[allow(dead_code)] RecommendedWatcher),
    /// Keeps discovery's event channel open; nothing sends on it.
    Polling(#[allow(dead_code)] SyncSender<Seen>),
}

impl FolderWatcher {
    fn start(rule: &Active, shared: &Shared, events: &SyncSender<Seen>, refused: &Arc<AtomicBool>) -> Result<FolderWatcher, String> {
        let mode = if rule.recursive { RecursiveMode::Recursive } else { RecursiveMode::NonRecursive };
        if lock(&shared.poll).is_none() {
            let started = RecommendedWatcher::new(event_handler(events.clone(), refused.clone()), notify::Config::default())
                .and_then(|mut w| w.watch(&rule.folder, mode).map(|()| w));
            match started {
                Ok(w) => return Ok(FolderWatcher::Events(w)),
                Err(e) if is_watch_limit(&e) => {
                    let why = format!("polling every {}s: {}", POLL_EVERY.as_secs(), watch_limit_message(&e));
                    tracing::warn!(rule = %rule.name(), "{why}");
                    *lock(&shared.poll) = Some(POLL_EVERY);
                    *lock(&shared.watching) = why;
                }
                Err(e) => return Err(format!("cannot watch {}: {e}", rule.folder.display())),
            }
        }
        Ok(FolderWatcher::Polling(events.clone()))
    }
}

/// Forwards what discovery needs; flags a watch refused after the start.
fn event_handler(events: SyncSender<Seen>, refused: Arc<AtomicBool>) -> impl FnMut(notify::Result<notify::Event>) + Send + 'static {
    move |res: notify::Result<notify::Event>| match res {
        Ok(ev) => {
            if ev.need_rescan() {
                let _ = events.send(Seen::Rescan);
                return;
            }
            let seen: fn(PathBuf) -> Seen = match ev.kind {
                EventKind::Access(AccessKind::Close(AccessMode::Write)) => Seen::Closed,
                EventKind::Create(_) | EventKind::Modify(_) => Seen::Changed,
                _ => return,
            };
            for p in ev.paths {
                if is_candidate(&p) {
                    // Blocks when discovery is behind: backpressure, not memory (the OS queues
                    // meanwhile, and says so with a rescan if its queue overflows).
                    let _ = events.send(seen(p));
                }
            }
        }
        Err(e) => {
            if is_watch_limit(&e) {
                refused.store(true, Ordering::Relaxed);
            }
            tracing::warn!(error = %e, "watch error");
        }
    }
}

/// Whether the OS refused a watch for lack of watches or instances (inotify's limits), as
/// opposed to a missing folder or a permission problem.
fn is_watch_limit(e: &notify::Error) -> bool {
    match &e.kind {
        notify::ErrorKind::MaxFilesWatch => true,
        // inotify_init: EMFILE when max_user_instances is reached; add_watch: ENOSPC.
        notify::ErrorKind::Io(io) => matches!(io.raw_os_error(), Some(24 | 28)),
        _ => false,
    }
}

/// What to tell the user about a refused watch, with the knob to turn.
fn watch_limit_message(e: &notify::Error) -> String {
    let read = |name: &str| std::fs::read_to_string(format!("/proc/sys/fs/inotify/{name}")).map(|v| v.trim().to_string()).unwrap_or_else(|_| "?".into());
    format!(
        "the OS refused more file watches ({e}); raise fs.inotify.max_user_watches (now {}) or max_user_instances (now {}) with sysctl to get events again",
        read("max_user_watches"),
        read("max_user_instances")
    )
}

/// Adds the wanted files under `dir` (the rule's folder, or a subfolder that appeared) to
/// `pending`, to be looked at from `now` on; returns how many it found.
fn walk(rule: &Active, dir: &Path, pending: &mut HashMap<PathBuf, Watching>, now: Instant) -> usize {
    let depth = if rule.recursive { usize::MAX } else { 1 };
    let walker = walkdir::WalkDir::new(dir).min_depth(1).max_depth(depth).into_iter().filter_entry(|e| {
        !e.file_name().to_str().is_none_or(|n| n.starts_with('.')) && !e.path().starts_with(&rule.out)
    });
    let mut found = 0;
    for entry in walker.flatten() {
        if entry.file_type().is_file() && rule.wants(entry.path()) {
            pending.entry(entry.path().to_path_buf()).or_insert_with(|| Watching::new(now));
            found += 1;
        }
    }
    found
}

/// One look of polling: the wanted files under the folder that are new or changed since they
/// were done (size or mtime in ns), and not already pending or queued, become pending.
fn poll(rule: &Active, shared: &Shared, pending: &mut HashMap<PathBuf, Watching>, now: Instant) {
    let mut found = HashMap::new();
    walk(rule, &rule.folder, &mut found, now);
    let done = lock(&shared.done);
    let queued = lock(&shared.queued);
    for (path, watching) in found {
        if pending.contains_key(&path) || queued.contains(&path) {
            continue;
        }
        if stat(&path).is_some_and(|st| done.get(&path) != Some(&st)) {
            pending.insert(path, watching);
        }
    }
}

/// Catch-up scan, then events; hands complete files to the workers.
fn discover(rule: &Active, shared: &Shared, events: &Receiver<Seen>, work: SyncSender<(PathBuf, Stat)>, stop: &CancelToken, refused: &AtomicBool) -> Result<(), String> {
    let mut pending: HashMap<PathBuf, Watching> = HashMap::new();
    let found = walk(rule, &rule.folder, &mut pending, Instant::now());
    tracing::debug!(rule = %rule.name(), files = found, "catch-up scan");

    let mut folder_checked = Instant::now();
    let mut polled = Instant::now();
    while !stop.is_cancelled() {
        if let Some(every) = *lock(&shared.poll) {
            if polled.elapsed() >= every {
                polled = Instant::now();
                poll(rule, shared, &mut pending, polled);
            }
        }
        // New events: wait for one when there is nothing else to do, else until the next look
        // at a pending file is due.
        let wait = pending.values().map(|w| w.next_check).min().map_or(Duration::from_millis(200), |t| t.saturating_duration_since(Instant::now()).min(Duration::from_millis(200)));
        let first = match events.recv_timeout(wait) {
            Ok(seen) => Some(seen),
            Err(mpsc::RecvTimeoutError::Timeout) => None,
            Err(mpsc::RecvTimeoutError::Disconnected) => return Err("the watcher stopped".to_string()),
        };
        let now = Instant::now();
        let take = |seen: Seen, pending: &mut HashMap<PathBuf, Watching>| match seen {
            Seen::Changed(p) if p.is_dir() => {
                // A new folder in a recursive rule: files written before its watch was in
                // place send no events.
                if rule.recursive && !p.starts_with(&rule.out) {
                    walk(rule, &p, pending, now);
                }
            }
            Seen::Changed(p) if rule.wants(&p) => {
                pending.entry(p).or_insert_with(|| Watching::new(now + STABLE_AFTER / 2));
            }
            Seen::Closed(p) if rule.wants(&p) => {
                // Closed by its writer: complete as it is now, no quiet period to wait for.
                if let Some(st) = stat(&p) {
                    pending.insert(p, Watching { last: Some(st), window: STABLE_AFTER, next_check: now });
                }
            }
            Seen::Rescan => {
                tracing::warn!(rule = %rule.name(), "the OS dropped file events (its queue overflowed): scanning the folder again");
                walk(rule, &rule.folder, pending, now);
            }
            Seen::Changed(_) | Seen::Closed(_) => {}
        };
        if let Some(seen) = first {
            take(seen, &mut pending);
        }
        loop {
            match events.try_recv() {
                Ok(seen) => take(seen, &mut pending),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => return Err("the watcher stopped".to_string()),
            }
        }

        if refused.load(Ordering::Relaxed) && lock(&shared.poll).is_none() {
            // A watch was refused after the start: poll from now on (a new session).
            let why = format!("polling every {}s: the OS refused more file watches; raise fs.inotify.max_user_watches with sysctl to get events again", POLL_EVERY.as_secs());
            tracing::warn!(rule = %rule.name(), "{why}");
            *lock(&shared.poll) = Some(POLL_EVERY);
            *lock(&shared.watching) = why;
            return Ok(());
        }
        if now.duration_since(folder_checked) >= Duration::from_secs(1) {
            folder_checked = now;
            if !rule.folder.is_dir() {
                return Err(format!("the watched folder {} is missing", rule.folder.display()));
            }
        }

        // Completeness: the same size and mtime across two looks a window apart.
        let mut ready = Vec::new();
        pending.retain(|path, w| {
            if now < w.next_check {
                return true;
            }
            let Some(current) = stat(path) else { return false };
            match w.last {
                Some(last) if last == current => {
                    ready.push((path.clone(), current));
                    false
                }
                previous => {
                    if previous.is_some() {
                        // Still being written: ask for a longer quiet period.
                        w.window = (w.window + STABLE_AFTER).min(STABLE_MAX);
                    }
                    w.last = Some(current);
                    w.next_check = now + w.window;
                    true
                }
            }
        });
        for (path, st) in ready {
            if lock(&shared.done).get(&path) == Some(&st) {
                continue;
            }
            if !lock(&shared.queued).insert(path.clone()) {
                // Changed while a worker has it: look again once that run is over.
                pending.insert(path, Watching { last: None, window: STABLE_AFTER, next_check: now + STABLE_MAX });
                continue;
            }
            let mut job = (path, st);
            loop {
                match work.try_send(job) {
                    Ok(()) => break,
                    Err(TrySendError::Full(back)) => {
                        if stop.is_cancelled() {
                            return Ok(());
                        }
                        job = back;
                        // Short: a worker that skips already-processed content takes well under
                        // a millisecond per file, and a long nap here would starve the workers
                        // (a catch-up over 100,000 processed files went at 64 files per nap).
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    Err(TrySendError::Disconnected(_)) => return Ok(()),
                }
            }
        }
    }
    Ok(())
}

fn worker(app: &App, rule: &Active, shared: &Shared, jobs: &Mutex<Receiver<(PathBuf, Stat)>>, stop: &CancelToken, cancel: &CancelToken) {
    loop {
        let job = lock(jobs).recv_timeout(Duration::from_millis(200));
        let (path, st) = match job {
            Ok(j) => j,
            Err(mpsc::RecvTimeoutError::Timeout) if !stop.is_cancelled() => continue,
            Err(_) => return,
        };
        if stop.is_cancelled() {
            return;
        }
        shared.in_flight.fetch_add(1, Ordering::Relaxed);
        let processed = process(app, rule, shared, &path, cancel);
        shared.in_flight.fetch_sub(1, Ordering::Relaxed);
        if let Err(e) = processed {
            shared.failed_count.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(rule = %rule.name(), path = %path.display(), error = %e, "could not process");
            rule.set_error(app, Some(&e.to_string()));
        }
        lock(&shared.done).insert(path.clone(), st);
        lock(&shared.queued).remove(&path);
    }
}

/// Runs the rule's workflow on one complete file, unless the results cache has its content.
fn process(app: &App, rule: &Active, shared: &Shared, path: &Path, cancel: &CancelToken) -> Result<()> {
    let hashed = hashing::hash_file(app, path);
    if let Some(learned) = hashed.learned {
        app.history().remember_file_hashes(vec![learned])?;
    }
    let Some(hash) = hashed.hash else {
        if matches!(std::fs::metadata(path), Err(e) if e.kind() == std::io::ErrorKind::NotFound) {
            tracing::debug!(path = %path.display(), "gone before it could be processed");
            return Ok(());
        }
        // There but unreadable (permission denied, an I/O error): run the workflow anyway, so
        // the reason lands in the history as a failed execution instead of a silent skip.
        // Without a content hash nothing is cached; the file is looked at again once it changes.
        return run_workflow(app, rule, shared, path, None, cancel);
    };
    let out_dir = rule.output_dir(path);
    let cached = app.history().cached_result(&hash, &rule.workflow.hash)?;
    if cached.is_some_and(|c| batch::cached_result_stands(&c, path, &out_dir, &rule.out)) {
        tracing::debug!(path = %path.display(), "already processed by this workflow");
        shared.skipped.fetch_add(1, Ordering::Relaxed);
        // Done already (a copy of an image processed before, or a crash before the move): it
        // leaves the watched folder as a processed file does.
        if rule.on_success == OriginalAction::Move {
            move_aside(&rule.folder, path, DONE_DIR)?;
        }
        return Ok(());
    }
    if lock(&shared.failed).contains(&hash) {
        return Ok(());
    }
    if let Some((id, output)) = earlier_success(app, rule, path)? {
        // A run that succeeded but whose results row (or move) a crash cut off: finish its
        // bookkeeping instead of processing the file a second time.
        tracing::info!(execution = %id, path = %path.display(), "already processed (recorded after a crash)");
        shared.processed.fetch_add(1, Ordering::Relaxed);
        return record_success(app, rule, path, &hash, output, id);
    }
    // An image of the same name as one processed earlier, or being processed now, would
    // replace its outputs (when the workflow writes any).
    let mut _in_use = None;
    if rule.writes_outputs {
        let name = batch::output_name(path, &out_dir);
        let Some(held) = NameInUse::take(shared, &name) else {
            return name_conflict(app, rule, shared, path, &hash, &out_dir, "another image of the same name, being processed now");
        };
        _in_use = Some(held);
        let edits_in_place = rule.on_success != OriginalAction::Move;
        if let Some(earlier) = batch::displaced_outputs(app, path, Some(&hash), &name, edits_in_place)? {
            let other = format!("{}, processed earlier (execution {})", earlier.path, earlier.execution_id);
            return name_conflict(app, rule, shared, path, &hash, &out_dir, &other);
        }
    }
    run_workflow(app, rule, shared, path, Some(hash), cancel)
}

/// An output name held by an execution running now, so that a second image of the same name
/// is not run beside it; released when dropped.
struct NameInUse<'a> {
    shared: &'a Shared,
    name: OutputName,
}

impl<'a> NameInUse<'a> {
    fn take(shared: &'a Shared, name: &OutputName) -> Option<NameInUse<'a>> {
        lock(&shared.names_in_use).insert(name.clone()).then(|| NameInUse { shared, name: name.clone() })
    }
}

impl Drop for NameInUse<'_> {
    fn drop(&mut self) {
        lock(&self.shared.names_in_use).remove(&self.name);
    }
}

/// The most names tried when renaming an image whose name is taken (`a-1.jpg` ... `a-1000.jpg`).
const RENAME_TRIES: u32 = 1000;

/// `path`'s outputs would replace those of `other` (same output folder, same name). Under a
/// rule that moves originals away, `path` is renamed in place to the first free name
/// (`a-1.jpg`, `a-2.jpg`, ...) that the rule still takes, and the watcher takes it under that
/// name: cameras and phones reuse names, and its original would be renamed so in `done/`
/// anyway. Otherwise, or when no such name is free, the image is refused, with the reason in
/// the history, as a batch refuses it; nothing is overwritten.
fn name_conflict(app: &App, rule: &Active, shared: &Shared, path: &Path, hash: &str, out_dir: &Path, other: &str) -> Result<()> {
    if rule.on_success == OriginalAction::Move {
        let dir = path.parent().unwrap_or(Path::new(""));
        let renamed = move_to_free_name(path, dir, RENAME_TRIES, |candidate| {
            let name = batch::output_name(candidate, out_dir);
            Ok(candidate != path
                && rule.wants(candidate)
                && !lock(&shared.names_in_use).contains(&name)
                && batch::displaced_outputs(app, candidate, None, &name, false)?.is_none())
        })?;
        if let Some(renamed) = renamed {
            tracing::info!(path = %path.display(), renamed = %renamed.display(), "renamed: its outputs would replace those of {other}");
            return Ok(());
        }
        tracing::warn!(path = %path.display(), "no free name to rename it to among {RENAME_TRIES}");
    }
    let cause = format!(
        "its outputs would replace those of {other}, which has the same name and writes to the same folder {}; rename it",
        out_dir.display()
    );
    let input = json!({ "path": path, "outputDir": out_dir, "outputRoot": rule.out });
    let id = execution::reject(app, &rule.workflow.name, &rule.workflow.text, input, &Failure::new(batch::OUTPUT_CONFLICT, cause.clone()))?;
    lock(&shared.failed).insert(hash.to_string());
    shared.failed_count.fetch_add(1, Ordering::Relaxed);
    tracing::warn!(execution = %id, path = %path.display(), error = %cause, "refused");
    if rule.on_failure == OriginalAction::Move {
        move_aside(&rule.folder, path, FAILED_DIR)?;
    }
    Ok(())
}

/// One execution of the rule's workflow on `path`, and its bookkeeping: the results cache
/// (when the content `hash` is known), the counters, moving the original.
fn run_workflow(app: &App, rule: &Active, shared: &Shared, path: &Path, hash: Option<String>, cancel: &CancelToken) -> Result<()> {
    // `outputRoot` keeps a recursive rule's mirrored subfolders in export keys.
    let input = json!({ "path": path, "outputDir": rule.output_dir(path), "outputRoot": rule.out });
    let result = execution::start(app, &rule.workflow, input, None, cancel)?;
    match result.finished {
        Finished::Succeeded(output) => {
            tracing::info!(execution = %result.id, path = %path.display(), "done");
            shared.processed.fetch_add(1, Ordering::Relaxed);
            match hash {
                Some(hash) => record_success(app, rule, path, &hash, output, result.id)?,
                None if rule.on_success == OriginalAction::Move => {
                    move_aside(&rule.folder, path, DONE_DIR)?;
                }
                None => {}
            }
        }
        Finished::Failed(f) | Finished::TimedOut(f) => {
            if let Some(hash) = hash {
                lock(&shared.failed).insert(hash);
            }
            shared.failed_count.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(execution = %result.id, path = %path.display(), error = %f, "failed");
            if rule.on_failure == OriginalAction::Move {
                move_aside(&rule.folder, path, FAILED_DIR)?;
            }
        }
        // Stays RUNNING; the next start resumes it.
        Finished::Interrupted => {}
    }
    Ok(())
}

/// Records a success in the results cache, then moves the original when the rule says so.
fn record_success(app: &App, rule: &Active, path: &Path, hash: &str, output: Value, execution_id: String) -> Result<()> {
    let out_dir = rule.output_dir(path);
    let name = batch::output_name(path, &out_dir);
    let files = batch::files_in(&output, &out_dir);
    let cached = CachedResult { path: path.to_string_lossy().into_owned(), output, execution_id, finished_at_ms: app.clock().now_ms() };
    app.history().store_result(hash, &rule.workflow.hash, &cached, Some((&name, &files)))?;
    if rule.on_success == OriginalAction::Move {
        move_aside(&rule.folder, path, DONE_DIR)?;
    }
    Ok(())
}

/// A SUCCEEDED execution of the rule's workflow on `path` that started after the file was last
/// modified (so on this very content) and has no results row: what a crash between an
/// execution's success and the recording of its result leaves. Its id and output. (One with a
/// results row ran on other content: a file replaced keeping an older mtime, `cp -p`.)
fn earlier_success(app: &App, rule: &Active, path: &Path) -> Result<Option<(String, Value)>> {
    let Some(path_str) = path.to_str() else { return Ok(None) };
    let Ok(meta) = std::fs::metadata(path) else { return Ok(None) };
    let modified_ms = hashing::mtime_ns(&meta).div_euclid(1_000_000);
    for id in app.history().succeeded_on_path(path_str, &rule.workflow.hash, modified_ms)? {
        let Some(record) = app.history().execution(&id)? else { continue };
        if !app.history().result_recorded_for(&record.id)? {
            if let Some(output) = record.output {
                return Ok(Some((record.id, output)));
            }
        }
    }
    Ok(None)
}

/// Moves `path` into `folder/sub/`, never overwriting: `a.jpg`, then `a-1.jpg`, `a-2.jpg`, ...
/// Returns where it went.
pub fn move_aside(folder: &Path, path: &Path, sub: &str) -> Result<PathBuf> {
    let dir = folder.join(sub);
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    move_to_free_name(path, &dir, u32::MAX, |_| Ok(true))?.ok_or_else(|| Error::io(&dir, std::io::Error::other("no free name")))
}

/// Moves `path` into `dir` under the first of its own name, `a-1.jpg`, ... `a-{max_suffix}.jpg`
/// that `acceptable` takes and no file has; never overwrites. Returns where it went, or `None`
/// when none of them would do.
fn move_to_free_name(path: &Path, dir: &Path, max_suffix: u32, mut acceptable: impl FnMut(&Path) -> Result<bool>) -> Result<Option<PathBuf>> {
    let name = Path::new(path.file_name().unwrap_or_default());
    let stem = name.file_stem().unwrap_or_default().to_string_lossy().into_owned();
    let ext = name.extension().map(|e| format!(".{}", e.to_string_lossy())).unwrap_or_default();
    for n in 0..=max_suffix {
        let target = if n == 0 { dir.join(name) } else { dir.join(format!("{stem}-{n}{ext}")) };
        if !acceptable(&target)? {
            continue;
        }
        // A hard link fails when the target exists, so a race cannot overwrite either.
        match std::fs::hard_link(path, &target) {
            Ok(()) => {
                std::fs::remove_file(path).map_err(|e| Error::io(path, e))?;
                return Ok(Some(target));
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(_) if !target.exists() => {
                // No hard links here (another file system, or not supported): a plain rename.
                std::fs::rename(path, &target).map_err(|e| Error::io(path, e))?;
                return Ok(Some(target));
            }
            Err(e) => return Err(Error::io(&target, e)),
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_os_refusing_watches_is_told_apart_from_other_watch_errors() {
        let io = |code| notify::Error::io(std::io::Error::from_raw_os_error(code));
        // inotify_add_watch: ENOSPC (max_user_watches); inotify_init: EMFILE (max_user_instances).
        assert!(is_watch_limit(&notify::Error::new(notify::ErrorKind::MaxFilesWatch)));
        assert!(is_watch_limit(&io(28)));
        assert!(is_watch_limit(&io(24)));
        // A missing folder or a permission problem is an error state, not a reason to poll.
        assert!(!is_watch_limit(&io(2)));
        assert!(!is_watch_limit(&io(13)));
        assert!(!is_watch_limit(&notify::Error::path_not_found()));
        let message = watch_limit_message(&notify::Error::new(notify::ErrorKind::MaxFilesWatch));
        assert!(message.contains("fs.inotify.max_user_watches (now "), "{message}");
    }

    fn active(folder: &Path, include: &[&str], exclude: &[&str], recursive: bool) -> Active {
        let steps = crate::steps::registry();
        Active {
            id: None,
            folder: folder.to_path_buf(),
            recursive,
            include: if include.is_empty() { None } else { Some(glob_set(&include.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()) },
            exclude: glob_set(&exclude.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap(),
            workflow: Workflow::bundled("thumbnail", &steps).unwrap(),
            writes_outputs: true,
            out: folder.join("out"),
            jobs: 1,
            on_success: OriginalAction::Leave,
            on_failure: OriginalAction::Leave,
        }
    }

    #[test]
    fn rules_skip_hidden_partial_output_and_moved_files() {
        let f = Path::new("/w");
        let r = active(f, &[], &[], true);
        assert!(r.wants(Path::new("/w/a.jpg")));
        assert!(r.wants(Path::new("/w/sub/a.PNG")));
        for no in ["/w/.a.jpg", "/w/.cache/a.jpg", "/w/a.jpg.part", "/w/a.crdownload", "/w/a.tmp", "/w/a.jpg~", "/w/out/a.jpg", "/w/done/a.jpg", "/w/failed/a.jpg", "/w/notes.txt", "/x/a.jpg"] {
            assert!(!r.wants(Path::new(no)), "{no}");
        }
        let flat = active(f, &[], &[], false);
        assert!(!flat.wants(Path::new("/w/sub/a.jpg")));
    }

    #[test]
    fn globs_match_the_relative_path_or_the_name() {
        let r = active(Path::new("/w"), &["*.jpg", "raw/*.txt"], &["skip*"], true);
        assert!(r.wants(Path::new("/w/deep/a.jpg")));
        assert!(r.wants(Path::new("/w/raw/a.txt")));
        assert!(!r.wants(Path::new("/w/a.txt")));
        assert!(!r.wants(Path::new("/w/deep/skip-me.jpg")));
    }

    #[test]
    fn moves_never_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for (i, name) in ["a.jpg", "a.jpg", "a.jpg"].iter().enumerate() {
            std::fs::write(d.join(name), [i as u8]).unwrap();
            let to = move_aside(d, &d.join(name), DONE_DIR).unwrap();
            assert_eq!(std::fs::read(&to).unwrap(), [i as u8]);
        }
        let mut names: Vec<_> = std::fs::read_dir(d.join(DONE_DIR)).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        assert_eq!(names, ["a-1.jpg", "a-2.jpg", "a.jpg"]);
        assert!(!d.join("a.jpg").exists());
    }
}
