//! Durable execution history on SQLite: executions, their events, task checkpoints and task
//! tokens. [`History`] implements the engine's [`Journal`], so an execution that records into
//! it can be resumed after a crash, and it answers the CLI's and the app's questions (`list`,
//! `show`, the review queue).
//!
//! # Design
//!
//! * **One writer thread** owns the write connection (module `writer`).
//!   [`Journal::record`] is fire-and-forget: the event is appended to its execution's pending
//!   chunk (module `outbox`) and stored in one of the writer's next transactions. Calls that
//!   must be durable when they return (`save_checkpoint`, `flush`, `task_token`,
//!   `create_execution`, `finish_execution` and so [`Journal::end`], `answer_token`, `claim`)
//!   queue a job and block until the transaction holding it committed; concurrent callers
//!   share one commit (group commit). The writer takes the outbox before it runs the jobs it
//!   received, so such a call also makes durable every event recorded before it.
//! * **Reads** use a small pool of separate read-only connections; WAL lets them run while the
//!   writer writes. Events recorded but not yet committed are not visible to reads: call
//!   [`Journal::flush`] first where that matters.
//! * **Durability**: WAL with `synchronous=NORMAL`. A committed transaction survives the
//!   process crashing or being killed (`kill -9`): it is in the WAL file, which the OS has.
//!   A power loss or OS crash may lose the last commits before the next WAL checkpoint, but
//!   never corrupts the database. A resumed execution replays its finished prefix; the writer
//!   drops the events of that replay it already stored (by (kind, key), loaded when the run
//!   begins), so nothing is recorded twice.
//! * **Events** are stored in chunks, a row per execution per writer transaction (module
//!   `events`): the writer's cost per event is a copy, which is what lets the engine run
//!   hundreds of thousands of transitions per second with every event durable.
//! * **Ownership**: a RUNNING execution records the process running it as pid + process start
//!   identity (see [`process`]); [`History::orphaned_executions`] lists those whose owner is
//!   gone and [`History::claim`] hands one over atomically to a process that resumes it.
//! * **Times** are stored and returned as integer milliseconds since the Unix epoch (the DTO
//!   fields end in `_ms`); [`to_rfc3339`] renders one, [`parse_time`] reads filter bounds.
//! * **Errors**: nothing read from disk is unwrapped; a failed write reaches the caller waiting
//!   on it as an [`Error`] (as a [`JournalError`] through the `Journal` trait).
//!
//! # Differences from [`pixelflow_engine::MemoryJournal`]
//!
//! * The execution must exist ([`History::create_execution`]) before anything is recorded for
//!   it (foreign keys). An event for an unknown execution is dropped and reported by the next
//!   `flush` (or `save_checkpoint`/`finish_execution` of that id); `save_checkpoint` and
//!   `task_token` for an unknown execution fail at once.
//! * [`Journal::end`] finishes the execution's row ([`History::finish_execution`]) or, for an
//!   interrupted run, releases it ([`History::release`]).
//! * `wait_for_token` on a token that was never handed out fails ([`Error::UnknownToken`])
//!   instead of waiting for an answer that cannot come.
//!
//! A rejected execution attempt (invalid definition or input, see [`History::record_rejected`])
//! is stored FAILED with error [`VALIDATION_ERROR`] and the diagnostics as cause.
//!
//! Nothing here logs execution inputs, outputs or payloads: they may be private.

mod checkpoints;
mod cloud_profiles;
mod error;
mod events;
mod executions;
mod outbox;
pub mod process;
mod results;
mod schema;
mod tokens;
mod uploads;
mod watch_rules;
mod watch_status;
mod writer;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pixelflow_engine::{CancelToken, Checkpoint, Event, Failure, Journal, JournalError, Stop, TokenOutcome};
use rusqlite::{Connection, OpenFlags};
use serde_json::Value;

pub use cloud_profiles::StoredProfile;
pub use error::{Error, Result};
pub use events::{MapProgress, StoredEvent};
pub use executions::{
    ExecutionFilter, ExecutionRecord, ExecutionStatus, ExecutionSummary, NewExecution, Outcome, DEFAULT_LIST_LIMIT,
    VALIDATION_ERROR,
};
pub use process::ProcessIdentity;
pub use results::{CachedResult, FileHash, NamedOutputs, OutputName};
pub use schema::SCHEMA_VERSION;
pub use tokens::{PendingToken, TokenAnswer};
pub use uploads::{ExportRecord, Upload};
pub use watch_rules::{NewWatchRule, OriginalAction, WatchRule};
pub use watch_status::WatchStatus;

use writer::{Scope, Writer};

/// How long a connection waits for another process's write lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How often a waiter polls its task token when no in-process answer wakes it.
const TOKEN_POLL: Duration = Duration::from_millis(100);

/// WAL pages (4 KiB each) after which a commit checkpoints the WAL into the database.
const WAL_AUTOCHECKPOINT_PAGES: i64 = 10_000;

/// Bytes the WAL file is truncated to after a checkpoint.
const JOURNAL_SIZE_LIMIT: i64 = 64 * 1024 * 1024;

/// Idle read connections kept for reuse.
const READ_POOL: usize = 4;

/// The kind of the one event a rejected attempt gets.
pub const EXECUTION_FAILED: &str = "ExecutionFailed";

/// The history database. Cheap to clone (an `Arc` inside); the writer thread stops, after
/// committing everything queued, when the last clone is dropped.
#[derive(Clone)]
pub struct History {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    owner: ProcessIdentity,
    readers: Mutex<Vec<Connection>>,
    // Declared last: dropped after the fields above, but its Drop (drain + join) is what
    // matters, and it needs nothing else.
    writer: Writer,
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    pixelflow_engine::clock::unix_ms()
}

/// Renders ms since the Unix epoch as RFC 3339 UTC with milliseconds (`2024-05-01T12:00:00.000Z`).
pub fn to_rfc3339(ms: i64) -> String {
    match chrono::DateTime::from_timestamp_millis(ms) {
        Some(t) => t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        None => ms.to_string(),
    }
}

/// Parses a time bound: RFC 3339 (`2024-05-01T12:00:00+02:00`), a date (`2024-05-01`, midnight
/// UTC) or an integer of ms since the Unix epoch.
pub fn parse_time(s: &str) -> Result<i64> {
    let t = s.trim();
    if let Ok(ms) = t.parse::<i64>() {
        return Ok(ms);
    }
    if let Ok(dt) = chrono::DateTime::parse_from_rfc3339(t) {
        return Ok(dt.timestamp_millis());
    }
    if let Ok(date) = chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        if let Some(midnight) = date.and_hms_opt(0, 0, 0) {
            return Ok(midnight.and_utc().timestamp_millis());
        }
    }
    Err(Error::InvalidTime(s.to_string()))
}

fn configure(conn: &Connection) -> Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(())
}


/// Opens the write connection and brings the schema up to date.
fn open_writer_connection(path: &Path) -> Result<Connection> {
    let mut conn = Connection::open(path)?;
    configure(&conn)?;
    let mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        // E.g. a file system without shared memory; still correct, only slower and readers
        // block on the writer.
        tracing::warn!(path = %path.display(), "history database is not in WAL mode ({mode})");
    }
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", true)?;
    // Checkpoint the WAL into the database every ~40 MB instead of SQLite's default ~4 MB:
    // a checkpoint fsyncs, and at thousands of commits per second the default made the
    // writer checkpoint many times a second (measured: +10-30% throughput). The WAL file is
    // cut back to JOURNAL_SIZE_LIMIT after a checkpoint so it does not stay large.
    conn.pragma_update(None, "wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES)?;
    conn.pragma_update(None, "journal_size_limit", JOURNAL_SIZE_LIMIT)?;
    schema::migrate(&mut conn, path)?;
    Ok(conn)
}

impl History {
    /// Opens (creating it and its directory if needed) the history database at `path` and
    /// brings its schema up to date. Refuses a database written by a newer schema.
    pub fn open(path: &Path) -> Result<History> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| Error::Io { path: dir.to_path_buf(), source })?;
        }
        // Two processes opening a new file at once race to switch it to WAL, and SQLite answers
        // that race with SQLITE_BUSY without consulting the busy timeout; retry for a while.
        let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
        let conn = loop {
            match open_writer_connection(path) {
                Err(e) if e.is_busy() && std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                other => break other?,
            }
        };
        let owner = process::current();
        let writer = Writer::spawn(conn, owner)?;
        Ok(History {
            inner: Arc::new(Inner { path: path.to_path_buf(), owner, readers: Mutex::new(Vec::new()), writer }),
        })
    }

    /// The file this history lives in.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// This process's identity, as recorded in the executions it owns.
    pub fn owner(&self) -> ProcessIdentity {
        self.inner.owner
    }

    /// Runs `f` on a pooled read connection.
    fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let pooled = self.inner.readers.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let conn = match pooled {
            Some(c) => c,
            None => {
                let c = Connection::open_with_flags(
                    &self.inner.path,
                    OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI,
                )?;
                configure(&c)?;
                // Read-write open (a WAL reader must be able to update the -shm file), but no
                // statement through it may write: writes belong to the writer thread.
                c.pragma_update(None, "query_only", true)?;
                c
            }
        };
        let result = f(&conn);
        let mut pool = self.inner.readers.lock().unwrap_or_else(|e| e.into_inner());
        if pool.len() < READ_POOL {
            pool.push(conn);
        }
        result
    }

    /// Records a new execution as RUNNING, owned by this process. Durable on return.
    pub fn create_execution(&self, new: &NewExecution) -> Result<()> {
        // The input is serialized here rather than copied for the writer: a batch's input (every
        // image of the batch) is a large tree, and copying it costs more than writing it out.
        let input = new.input.to_string();
        let new = new.shallow_clone();
        let owner = self.inner.owner;
        self.inner.writer.call(Scope::Nothing, move |c| executions::insert_running(c, &new, &input, owner, now_ms()))
    }

    /// Stores how a RUNNING execution ended. Every event recorded before the call is committed
    /// with it. If one of them could not be stored, the execution is stored FAILED instead
    /// (`States.Runtime`, with the reason) and the call fails with that reason
    /// ([`Error::Write`]): a run with an incomplete history is not reported as succeeded.
    /// Other errors: [`Error::UnknownExecution`], [`Error::NotRunning`].
    ///
    /// Records no event: the interpreter records the terminal event itself.
    pub fn finish_execution(&self, id: &str, outcome: &Outcome) -> Result<()> {
        let (owned, outcome) = (id.to_string(), outcome.clone());
        let finished = self.inner.writer.call_seeing_lost(Scope::Execution(id.to_string()), move |c, lost| {
            let Some(reason) = lost else {
                return executions::finish(c, &owned, &outcome, now_ms()).map(|()| None);
            };
            // The cause the engine reports for the failed run (`Journal::end`), word for word.
            let reported = JournalError::from(Error::Write(reason.clone()));
            let failed = Outcome::Failed(Failure::runtime(reported.to_string()));
            let error = Error::Write(reason);
            // The execution may not exist (that is why its events were refused): the reason
            // matters more than that. Returned as a value, so that the FAILED row commits.
            let _ = executions::finish(c, &owned, &failed, now_ms());
            Ok(Some(error))
        });
        self.inner.writer.forget(id);
        match finished? {
            None => Ok(()),
            Some(lost) => Err(lost),
        }
    }

    /// Records an attempt rejected before it ran (an invalid definition or input: error
    /// [`VALIDATION_ERROR`], the diagnostics as cause; or another refusal with its own error):
    /// one row, status FAILED, no owner, and a single [`EXECUTION_FAILED`] event (key `""`)
    /// whose detail is the failure (`{"error", "cause"}`).
    pub fn record_rejected(&self, new: &NewExecution, failure: &Failure) -> Result<()> {
        let new = new.clone();
        let failure = failure.clone();
        self.inner.writer.call(Scope::Nothing, move |c| {
            let now = now_ms();
            executions::insert_rejected(c, &new, &failure, now)?;
            let detail = serde_json::to_value(&failure).unwrap_or(Value::Null);
            let event = Event { kind: EXECUTION_FAILED.into(), state: None, key: String::new(), detail };
            events::insert_only(c, &new.id, &event, now.max(new.started_at_ms))
        })
    }

    /// Deletes the executions that ended before `before_ms` (see [`executions::prune_some`] for
    /// what goes and what stays), at most [`executions::PRUNE_ROWS`] rows per transaction so
    /// that recording, in this process or another, goes on meanwhile.
    /// SQLite reuses the freed pages for what is recorded next; the file does not shrink.
    /// Returns how many were deleted.
    pub fn prune(&self, before_ms: i64) -> Result<u64> {
        let mut deleted = 0;
        loop {
            let (n, more) = self.inner.writer.call(Scope::Nothing, move |c| executions::prune_some(c, before_ms, executions::PRUNE_ROWS))?;
            deleted += n as u64;
            if !more {
                break;
            }
        }
        if deleted > 0 {
            self.inner.writer.call(Scope::Nothing, executions::drop_unused_definitions)?;
        }
        Ok(deleted)
    }

    /// Executions matching `filter`, newest first.
    pub fn list_executions(&self, filter: &ExecutionFilter) -> Result<Vec<ExecutionSummary>> {
        self.read(|c| executions::list(c, filter))
    }

    /// The execution with this id or, failing that, the only one whose id starts with it.
    /// `Ok(None)` when nothing matches (or the prefix is empty); [`Error::AmbiguousPrefix`]
    /// when several do.
    pub fn execution(&self, id_or_unique_prefix: &str) -> Result<Option<ExecutionRecord>> {
        self.read(|c| executions::get(c, id_or_unique_prefix))
    }

    /// Ids of SUCCEEDED executions of `workflow_hash` on the image at `path` (their input's
    /// `path`), started at or after `since_ms`, newest first (at most 20). Indexed.
    pub fn succeeded_on_path(&self, path: &str, workflow_hash: &str, since_ms: i64) -> Result<Vec<String>> {
        self.read(|c| executions::succeeded_on_path(c, path, workflow_hash, since_ms))
    }

    /// The committed events of an execution, in recording order.
    pub fn events(&self, execution_id: &str) -> Result<Vec<StoredEvent>> {
        self.read(|c| events::list(c, execution_id))
    }

    /// Up to `limit` of an execution's events from the `offset`-th, in recording order (a
    /// page of a huge execution without loading the rest).
    pub fn events_page(&self, execution_id: &str, offset: usize, limit: usize) -> Result<Vec<StoredEvent>> {
        let (offset, limit) = (i64::try_from(offset).unwrap_or(i64::MAX), i64::try_from(limit).unwrap_or(i64::MAX));
        self.read(|c| events::page(c, execution_id, offset, limit))
    }

    /// An execution's committed events, in recording order, read a page at a time as the
    /// iterator goes: a 40,000-image batch records over half a million events, which [`events`]
    /// would hold in memory at once (1.2 GB measured). Events recorded while it iterates are
    /// included; an error ends the iteration.
    ///
    /// [`events`]: History::events
    pub fn events_iter(&self, execution_id: &str) -> EventsIter<'_> {
        EventsIter { history: self, execution_id: execution_id.to_string(), next: 0, page: Vec::new().into_iter(), done: false }
    }

    /// How many events an execution recorded.
    pub fn event_count(&self, execution_id: &str) -> Result<u64> {
        self.read(|c| events::count(c, execution_id))
    }

    /// Each Map state's iteration counts over all of an execution's events.
    pub fn map_progress(&self, execution_id: &str) -> Result<Vec<MapProgress>> {
        self.read(|c| events::map_progress(c, execution_id))
    }

    /// RUNNING executions whose owner process is gone (dead, its pid reused, or, where that
    /// cannot be checked, its heartbeat older than [`process::ORPHAN_AFTER_MS`]). Oldest first.
    pub fn orphaned_executions(&self) -> Result<Vec<ExecutionRecord>> {
        let running = self.read(executions::running)?;
        let now = now_ms();
        Ok(running
            .into_iter()
            .filter(|r| process::is_orphaned(r.owner_pid.map(i64::from), r.owner_start, r.heartbeat_at_ms, now))
            .collect())
    }

    /// Takes ownership of an orphaned RUNNING execution, atomically across processes. False
    /// when it is not RUNNING or a live process (this one included) owns it.
    /// [`Error::UnknownExecution`] when there is no such execution.
    pub fn claim(&self, execution_id: &str) -> Result<bool> {
        let id = execution_id.to_string();
        let owner = self.inner.owner;
        self.inner.writer.call(Scope::Nothing, move |c| executions::claim(c, &id, owner, now_ms()))
    }

    /// The result recorded for this content and workflow, if any.
    pub fn cached_result(&self, content_hash: &str, workflow_hash: &str) -> Result<Option<CachedResult>> {
        self.read(|c| results::get(c, content_hash, workflow_hash))
    }

    /// What images left in this folder under this name key, oldest first: the outputs an
    /// image of the same name would displace.
    pub fn outputs_named(&self, name: &OutputName) -> Result<Vec<NamedOutputs>> {
        self.read(|c| results::named(c, name))
    }

    /// Whether any image's outputs are recorded in this folder: when none are, no image can
    /// displace them there, and a batch into a new folder skips looking name by name.
    pub fn has_outputs_in(&self, output_dir: &str) -> Result<bool> {
        self.read(|c| results::any_in(c, output_dir))
    }

    /// Whether the results cache holds a row recorded from this execution.
    pub fn result_recorded_for(&self, execution_id: &str) -> Result<bool> {
        self.read(|c| results::recorded_for(c, execution_id))
    }

    /// Records what a workflow produced for an image's content and, when given, the output
    /// files it left under that output name, in one transaction (durable on return).
    pub fn store_result(&self, content_hash: &str, workflow_hash: &str, result: &CachedResult, named: Option<(&OutputName, &[String])>) -> Result<()> {
        let (content_hash, workflow_hash, result) = (content_hash.to_string(), workflow_hash.to_string(), result.clone());
        let named = named.map(|(name, files)| (name.clone(), files.to_vec()));
        self.inner.writer.call(Scope::Nothing, move |c| {
            results::put(c, &content_hash, &workflow_hash, &result)?;
            if let Some((name, files)) = &named {
                results::put_named(c, name, &content_hash, &result.path, files, &result.execution_id)?;
            }
            Ok(())
        })
    }

    /// The content hash remembered for a file, valid while its size and mtime are unchanged.
    pub fn file_hash(&self, path: &str, size: u64, mtime_ns: i64) -> Result<Option<String>> {
        self.read(|c| results::file_hash(c, path, size, mtime_ns))
    }

    /// Remembers files' content hashes for their current size and mtime, in one transaction.
    pub fn remember_file_hashes(&self, entries: Vec<FileHash>) -> Result<()> {
        self.inner.writer.call(Scope::Nothing, move |c| {
            for e in &entries {
                results::remember_file_hash(c, &e.path, e.size, e.mtime_ns, &e.content_hash)?;
            }
            Ok(())
        })
    }

    /// Gives up this process's ownership of a RUNNING execution that was interrupted on purpose
    /// (Ctrl-C), so a resume can claim it at once. Pending events are flushed first.
    pub fn release(&self, execution_id: &str) -> Result<bool> {
        let id = execution_id.to_string();
        let owner = self.inner.owner;
        let released = self.inner.writer.call(Scope::Nothing, move |c| executions::release(c, &id, owner));
        self.inner.writer.forget(execution_id);
        released
    }

    /// Refreshes now the heartbeat of every RUNNING execution this process owns. The writer
    /// thread does it by itself every [`process::HEARTBEAT_INTERVAL`].
    pub fn heartbeat(&self) -> Result<usize> {
        let owner = self.inner.owner;
        self.inner.writer.call(Scope::Nothing, move |c| executions::heartbeat(c, owner, now_ms()))
    }

    /// Answers a task token. The first answer wins; the execution waiting on it, in this process
    /// or another, picks it up.
    pub fn answer_token(&self, token: &str, outcome: &TokenOutcome) -> Result<TokenAnswer> {
        let token = token.to_string();
        let outcome = outcome.clone();
        let answer = self.inner.writer.call(Scope::Nothing, move |c| tokens::answer(c, &token, &outcome, now_ms()))?;
        if matches!(answer, TokenAnswer::Answered { .. }) {
            // Committed: wake waiters of this process now rather than at their next poll.
            tokens::notify_answered();
        }
        Ok(answer)
    }

    /// Tokens waiting for an answer, of executions still RUNNING, oldest first.
    pub fn pending_tokens(&self) -> Result<Vec<PendingToken>> {
        self.read(tokens::pending)
    }

    /// Stores a new watch rule and returns it with its id (durable on return).
    pub fn add_watch_rule(&self, rule: &NewWatchRule) -> Result<WatchRule> {
        let rule = rule.clone();
        let id = self.inner.writer.call(Scope::Nothing, move |c| watch_rules::insert(c, &rule, now_ms()))?;
        self.watch_rule(id)?.ok_or_else(|| Error::Corrupt(format!("watch rule {id} vanished after it was added")))
    }

    /// Adds or replaces a cloud profile of the desktop app (its settings, never a secret).
    pub fn save_cloud_profile(&self, name: &str, settings: &serde_json::Value) -> Result<()> {
        let (name, settings) = (name.to_string(), settings.clone());
        self.inner.writer.call(Scope::Nothing, move |c| cloud_profiles::upsert(c, &name, &settings, now_ms()))
    }

    /// Every cloud profile, by name.
    pub fn cloud_profiles(&self) -> Result<Vec<StoredProfile>> {
        self.read(cloud_profiles::list)
    }

    /// Removes a cloud profile; false when there was none of that name.
    pub fn remove_cloud_profile(&self, name: &str) -> Result<bool> {
        let name = name.to_string();
        self.inner.writer.call(Scope::Nothing, move |c| cloud_profiles::remove(c, &name))
    }

    /// Every watch rule, oldest first.
    pub fn watch_rules(&self) -> Result<Vec<WatchRule>> {
        self.read(watch_rules::list)
    }

    /// The watch rule with this id.
    pub fn watch_rule(&self, id: i64) -> Result<Option<WatchRule>> {
        self.read(|c| watch_rules::get(c, id))
    }

    /// Deletes a watch rule; false when there was none with this id.
    pub fn remove_watch_rule(&self, id: i64) -> Result<bool> {
        self.inner.writer.call(Scope::Nothing, move |c| watch_rules::remove(c, id))
    }

    /// Pauses (the service skips it) or resumes a watch rule; false when there is none with this id.
    pub fn set_watch_rule_paused(&self, id: i64, paused: bool) -> Result<bool> {
        self.inner.writer.call(Scope::Nothing, move |c| watch_rules::set_paused(c, id, paused))
    }

    /// Records (or clears, with `None`) the last error the service met on a rule.
    pub fn set_watch_rule_error(&self, id: i64, error: Option<&str>) -> Result<bool> {
        let error = error.map(str::to_string);
        self.inner.writer.call(Scope::Nothing, move |c| watch_rules::set_last_error(c, id, error.as_deref()))
    }

    /// Replaces the watch service's published status with `rows` (empty: no service running).
    pub fn publish_watch_status(&self, rows: Vec<WatchStatus>) -> Result<()> {
        self.inner.writer.call(Scope::Nothing, move |c| watch_status::publish(c, &rows))
    }

    /// What the watch service last published, by rule id (0: the default rule).
    pub fn watch_statuses(&self) -> Result<Vec<WatchStatus>> {
        self.read(watch_status::list)
    }

    /// The stored schema version of the file (equals [`SCHEMA_VERSION`] once open).
    pub fn schema_version(&self) -> Result<usize> {
        self.read(schema::stored_version)
    }
}

thread_local! {
    /// Where a recording thread encodes an event before appending it to the outbox: one
    /// buffer per thread, reused, instead of an allocation per event.
    static ENCODED: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl History {
    /// Encodes an event with `encode` and hands it to the writer.
    fn send_event(&self, execution: &str, kind: &str, state: Option<&str>, length: impl FnOnce() -> Option<i64>, encode: impl FnOnce(&mut Vec<u8>)) {
        let map = events::map_count(kind, length).map(|(column, amount)| (state.unwrap_or_default(), column, amount));
        let sent = ENCODED.with_borrow_mut(|item| {
            item.clear();
            encode(item);
            self.inner.writer.record(execution, item, map)
        });
        if sent.is_err() {
            // Only when the writer thread died; every later durable call fails too, so the
            // execution cannot report success with this event missing.
            tracing::error!(execution = %execution, "history writer stopped; event dropped");
        }
    }
}

impl Journal for History {
    fn begin(&self, execution: &str) {
        self.inner.writer.begin(execution);
    }

    fn record(&self, execution: &str, event: Event) {
        let length = || event.detail.get("length").and_then(Value::as_i64);
        self.send_event(execution, &event.kind, event.state.as_deref(), length, |out| events::encode_event(out, &event, now_ms()));
    }

    fn record_fields(&self, execution: &str, kind: &str, state: Option<&str>, key: &str, fields: &[(&str, &Value)]) {
        let length = || fields.iter().find(|(name, _)| *name == "length").and_then(|(_, v)| v.as_i64());
        self.send_event(execution, kind, state, length, |out| events::encode_fields(out, kind, state, key, fields, now_ms()));
    }

    fn checkpoint(&self, execution: &str, key: &str) -> std::result::Result<Option<Checkpoint>, JournalError> {
        Ok(self.read(|c| checkpoints::get(c, execution, key))?)
    }

    fn save_checkpoint(&self, execution: &str, key: &str, checkpoint: &Checkpoint) -> std::result::Result<(), JournalError> {
        let json = serde_json::to_string(checkpoint).map_err(|e| JournalError(format!("cannot serialize checkpoint: {e}")))?;
        let (execution, key) = (execution.to_string(), key.to_string());
        Ok(self
            .inner
            .writer
            .call(Scope::Execution(execution.clone()), move |c| checkpoints::put(c, &execution, &key, &json, now_ms()))?)
    }

    fn task_token(&self, execution: &str, key: &str, state: &str, payload: &Value) -> std::result::Result<String, JournalError> {
        let (execution, key, state, payload) = (execution.to_string(), key.to_string(), state.to_string(), payload.to_string());
        Ok(self.inner.writer.call(Scope::Execution(execution.clone()), move |c| {
            tokens::get_or_create(c, &execution, &key, &state, &payload, now_ms())
        })?)
    }

    fn wait_for_token(
        &self,
        token: &str,
        timeout: Option<Duration>,
        cancel: &CancelToken,
    ) -> std::result::Result<Option<TokenOutcome>, JournalError> {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            // Read the generation before polling, so an answer that commits in between still
            // cuts the wait short.
            let seen = tokens::answer_generation();
            if let tokens::TokenState::Answered(outcome) = self.read(|c| tokens::poll(c, token))? {
                return Ok(Some(outcome));
            }
            if cancel.is_cancelled() {
                return Ok(None);
            }
            let mut slice = TOKEN_POLL;
            if let Some(deadline) = deadline {
                let now = Instant::now();
                if now >= deadline {
                    return Ok(None);
                }
                slice = slice.min(deadline - now);
            }
            tokens::wait_answer(seen, slice);
        }
    }

    fn flush(&self) -> std::result::Result<(), JournalError> {
        Ok(self.inner.writer.call(Scope::All, |_| Ok(()))?)
    }

    /// Stores how the run ended with its events, in one transaction ([`History::finish_execution`]);
    /// an interrupted run is handed back unfinished ([`History::release`]), to be resumed.
    fn end(&self, execution: &str, result: &std::result::Result<Value, Stop>) -> std::result::Result<(), JournalError> {
        let outcome = match result {
            Ok(output) => Outcome::Succeeded(output.clone()),
            Err(Stop::Failed(f)) => Outcome::Failed(f.clone()),
            Err(Stop::TimedOut(f)) => Outcome::TimedOut(f.clone()),
            Err(Stop::Interrupted) => return Ok(self.release(execution).map(drop)?),
        };
        Ok(self.finish_execution(execution, &outcome)?)
    }
}

/// Events read per page by [`EventsIter`]: about 1 MB of decoded events.
const EVENTS_ITER_PAGE: usize = 4096;

/// See [`History::events_iter`].
pub struct EventsIter<'a> {
    history: &'a History,
    execution_id: String,
    /// Index of the first event of the next page.
    next: usize,
    page: std::vec::IntoIter<StoredEvent>,
    done: bool,
}

impl Iterator for EventsIter<'_> {
    type Item = Result<StoredEvent>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(event) = self.page.next() {
            return Some(Ok(event));
        }
        if self.done {
            return None;
        }
        match self.history.events_page(&self.execution_id, self.next, EVENTS_ITER_PAGE) {
            Ok(page) => {
                self.done = page.len() < EVENTS_ITER_PAGE;
                self.next += page.len();
                self.page = page.into_iter();
                self.page.next().map(Ok)
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}
