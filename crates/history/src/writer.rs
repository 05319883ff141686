//! The writer thread: the only user of the write connection.
//!
//! Why one thread: SQLite allows one writer at a time anyway, and the engine records many small
//! events per state transition from many threads. Funnelling them through a channel to one
//! thread lets it batch them, up to [`MAX_BATCH`] messages per transaction, so the cost of a
//! commit is shared; with WAL and `synchronous=NORMAL` a commit is a `write()` without `fsync`.
//! Within a transaction each execution's events go to one chunk row (module `events`), so the
//! writer's cost per event is appending bytes the recording thread already encoded.
//!
//! Two kinds of messages:
//! * events, fire-and-forget: the caller does not wait;
//! * jobs (checkpoints, flushes, execution rows, tokens, claims): a closure run inside the
//!   batch transaction, in its own savepoint so a failing job does not take the others down,
//!   whose result is sent back only after the transaction *committed* (group commit: every job
//!   of a batch shares that one commit).
//!
//! The channel is FIFO, so a job's commit also covers every event recorded before it was sent:
//! that is what makes `save_checkpoint` and `flush` cover earlier events.
//!
//! An event that cannot be stored (its execution does not exist, or its batch failed to commit)
//! cannot report to its caller, so the failure is parked under its execution id and handed to
//! the next job that covers that execution (`save_checkpoint`, `finish_execution`, `flush`).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::{Connection, TransactionBehavior};

use crate::error::{Error, Result};
use crate::events::{ChunkBuilder, PendingEvent, Stream};
use crate::executions;
use crate::process::{ProcessIdentity, HEARTBEAT_INTERVAL};

/// Most messages applied in one transaction; bounds the latency a big backlog adds to a waiting
/// checkpoint and the size of the WAL growth per commit.
pub(crate) const MAX_BATCH: usize = 1000;

/// Events queued before `record` blocks: back pressure instead of unbounded memory. Large, so
/// that a burst (a Map's items on 40 threads) never waits: with a few batches' worth the
/// recording threads took turns blocking and a 10,000-item Map ran 2.5 times slower. The
/// queue is an unbounded channel that grows as needed (a bounded one allocates every slot up
/// front, which cost 5 ms at every open) with this count on the side.
const BACKLOG_LIMIT: usize = 64 * 1024;

/// Events sent and not yet taken by the writer, and where a blocked `record` waits for room.
#[derive(Default)]
struct Backlog {
    queued: AtomicUsize,
    /// The writer thread ended (dropped, or died in a panic): nobody will make room.
    closed: AtomicBool,
    lock: Mutex<()>,
    room: Condvar,
}

impl Backlog {
    /// Counts one more event, first waiting while the writer is [`BACKLOG_LIMIT`] behind.
    fn reserve(&self) {
        if self.queued.fetch_add(1, Ordering::AcqRel) < BACKLOG_LIMIT {
            return;
        }
        let mut guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        while self.queued.load(Ordering::Acquire) > BACKLOG_LIMIT && !self.closed.load(Ordering::Acquire) {
            // The timeout only guards against a missed wake-up; `release` notifies.
            guard = self.room.wait_timeout(guard, Duration::from_millis(10)).unwrap_or_else(|e| e.into_inner()).0;
        }
    }

    /// An event counted by [`Backlog::reserve`] was not sent after all.
    fn unreserve(&self) {
        self.queued.fetch_sub(1, Ordering::AcqRel);
    }

    /// The writer is gone: wakes whoever waits for room, and nobody waits again.
    fn close(&self) {
        self.closed.store(true, Ordering::Release);
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        self.room.notify_all();
    }

    /// The writer took `n` events off the queue.
    fn release(&self, n: usize) {
        if n > 0 && self.queued.fetch_sub(n, Ordering::AcqRel) > BACKLOG_LIMIT {
            let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
            self.room.notify_all();
        }
    }
}

/// Which parked event failures a job reports.
pub(crate) enum Scope {
    /// None: the job does not vouch for any events.
    Nothing,
    /// Events of one execution.
    Execution(String),
    /// Every event (a `flush`).
    All,
}

/// A type-erased job: runs in the batch transaction, reports after the commit.
trait Job: Send {
    fn scope(&self) -> &Scope;
    /// Runs the job; false if it failed (its savepoint is then rolled back).
    fn run(&mut self, conn: &Connection) -> bool;
    /// Overrides the job's result with an error (savepoint or commit failure).
    fn fail(&mut self, error: Error);
    /// Sends the result to the waiting caller.
    fn reply(self: Box<Self>);
}

struct TypedJob<T, F> {
    scope: Scope,
    f: Option<F>,
    result: Option<Result<T>>,
    reply: SyncSender<Result<T>>,
}

impl<T, F> Job for TypedJob<T, F>
where
    T: Send,
    F: FnOnce(&Connection) -> Result<T> + Send,
{
    fn scope(&self) -> &Scope {
        &self.scope
    }

    fn run(&mut self, conn: &Connection) -> bool {
        let Some(f) = self.f.take() else { return false };
        let result = f(conn);
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn fail(&mut self, error: Error) {
        self.result = Some(Err(error));
    }

    fn reply(self: Box<Self>) {
        let result = self.result.unwrap_or(Err(Error::Write("the write was never applied".into())));
        // The caller may have given up (it never does today); nothing to do then.
        let _ = self.reply.send(result);
    }
}

enum Msg {
    Event(PendingEvent),
    Job(Box<dyn Job>),
    /// Drop what the writer knows of an execution's events: a run of it begins (it may be a
    /// resume, whose replayed events must be recognised) or it finished (free the memory).
    Forget(String),
}

/// The handle that owns the writer thread. Dropping it drains the channel, commits, and joins.
pub(crate) struct Writer {
    tx: Option<Sender<Msg>>,
    backlog: Arc<Backlog>,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    pub(crate) fn spawn(conn: Connection, owner: ProcessIdentity) -> Result<Writer> {
        let (tx, rx) = mpsc::channel();
        let backlog = Arc::new(Backlog::default());
        let state = WriterState {
            conn,
            owner,
            parked: HashMap::new(),
            streams: HashMap::new(),
            next_heartbeat: Instant::now() + HEARTBEAT_INTERVAL,
        };
        let thread = std::thread::Builder::new()
            .name("pixelflow-history".into())
            .spawn({
                let backlog = backlog.clone();
                move || state.run(rx, &backlog)
            })
            .map_err(|e| Error::Write(format!("cannot start the writer thread: {e}")))?;
        Ok(Writer { tx: Some(tx), backlog, thread: Some(thread) })
    }

    /// Queues an event; gives it back only if the writer thread is gone.
    pub(crate) fn record(&self, event: PendingEvent) -> std::result::Result<(), PendingEvent> {
        let Some(tx) = &self.tx else { return Err(event) };
        self.backlog.reserve();
        let Err(unsent) = tx.send(Msg::Event(event)) else { return Ok(()) };
        self.backlog.unreserve();
        match unsent.0 {
            Msg::Event(event) => Err(event),
            _ => unreachable!("the message sent was an event"),
        }
    }

    /// Makes the writer forget an execution's event stream (see [`Msg::Forget`]).
    pub(crate) fn forget(&self, execution: &str) {
        if let Some(tx) = &self.tx {
            // Only fails when the writer thread is gone, which every durable call reports.
            let _ = tx.send(Msg::Forget(execution.to_string()));
        }
    }

    /// Runs `f` in the writer's next transaction and returns its result once committed.
    pub(crate) fn call<T, F>(&self, scope: Scope, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let tx = self.tx.as_ref().ok_or(Error::WriterStopped)?;
        let (reply, answer) = mpsc::sync_channel(1);
        let job = TypedJob { scope, f: Some(f), result: None, reply };
        tx.send(Msg::Job(Box::new(job))).map_err(|_| Error::WriterStopped)?;
        answer.recv().map_err(|_| Error::WriterStopped)?
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Closing the channel is the stop signal: the thread still receives everything queued
        // before, commits it, and only then sees the disconnect.
        drop(self.tx.take());
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("the history writer thread panicked");
            }
        }
    }
}

struct WriterState {
    conn: Connection,
    owner: ProcessIdentity,
    /// Event failures not reported yet, by execution id.
    parked: HashMap<String, String>,
    /// Each execution seen since a run of it began: for a resumed one, the (kind, key) pairs
    /// it stored.
    streams: HashMap<String, Stream>,
    next_heartbeat: Instant,
}

impl WriterState {
    fn run(mut self, rx: Receiver<Msg>, backlog: &Backlog) {
        /// Closes the backlog however the thread ends, a panic included.
        struct CloseOnExit<'a>(&'a Backlog);
        impl Drop for CloseOnExit<'_> {
            fn drop(&mut self) {
                self.0.close();
            }
        }
        let _close = CloseOnExit(backlog);
        loop {
            let wait = self.next_heartbeat.saturating_duration_since(Instant::now());
            let first = match rx.recv_timeout(wait) {
                Ok(msg) => msg,
                Err(RecvTimeoutError::Timeout) => {
                    self.heartbeat();
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            };
            let mut batch = Vec::with_capacity(64);
            batch.push(first);
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(msg) => batch.push(msg),
                    Err(_) => break,
                }
            }
            backlog.release(batch.iter().filter(|m| matches!(m, Msg::Event(_))).count());
            self.apply(batch);
            if Instant::now() >= self.next_heartbeat {
                self.heartbeat();
            }
        }
        for (execution, error) in self.parked.drain() {
            tracing::error!(execution = %execution, "history events were lost: {error}");
        }
    }

    /// Refreshes this process's heartbeats, so other processes on platforms without `/proc`
    /// can tell our executions are alive.
    fn heartbeat(&mut self) {
        self.next_heartbeat = Instant::now() + HEARTBEAT_INTERVAL;
        if let Err(e) = executions::heartbeat(&self.conn, self.owner, crate::now_ms()) {
            tracing::warn!("cannot refresh execution heartbeats: {e}");
        }
    }

    fn apply(&mut self, batch: Vec<Msg>) {
        let mut jobs: Vec<Box<dyn Job>> = Vec::new();
        // Executions whose events this batch stored, to park the error if the commit fails.
        let mut stored: HashSet<String> = HashSet::new();
        // Each execution's events not yet inserted, one chunk each. A batch holds the events of
        // a few executions, the same one many times in a row: a short list searched from the
        // newest beats hashing every event's execution id.
        let mut chunks: Vec<PendingChunk> = Vec::new();
        // Disjoint borrows: the transaction holds the connection while failures are parked.
        let parked = &mut self.parked;
        let streams = &mut self.streams;
        let mut tx = match self.conn.transaction_with_behavior(TransactionBehavior::Immediate) {
            Ok(tx) => tx,
            Err(e) => return abandon(parked, streams, stored, jobs, batch, &format!("cannot begin a transaction: {e}")),
        };
        let mut batch = batch.into_iter();
        while let Some(m) = batch.next() {
            match m {
                Msg::Event(ev) => {
                    if let Some(pending) = chunks.iter_mut().rev().find(|p| p.execution == ev.execution()) {
                        // Only a resumed execution's stream has anything to check.
                        if !pending.resumed || streams.get_mut(ev.execution()).is_none_or(|s| s.admit(&ev)) {
                            pending.chunk.push(&ev);
                        }
                        continue;
                    }
                    let stream = match streams.get_mut(ev.execution()) {
                        Some(stream) => stream,
                        None => match Stream::load(&tx, ev.execution()) {
                            Ok(stream) => streams.entry(ev.execution().to_string()).or_insert(stream),
                            Err(e) => {
                                park(parked, ev.execution(), format!("cannot read the stored events: {e}"));
                                continue;
                            }
                        },
                    };
                    if stream.admit(&ev) {
                        let mut chunk = ChunkBuilder::new();
                        chunk.push(&ev);
                        chunks.push(PendingChunk { execution: ev.execution().to_string(), resumed: stream.is_resumed(), chunk });
                    }
                }
                Msg::Forget(execution) => {
                    insert_chunks(&tx, &mut chunks, streams, parked, &mut stored);
                    streams.remove(&execution);
                }
                Msg::Job(mut job) => {
                    // The job's commit covers the events recorded before it, and a failure to
                    // store them must reach it: insert them first.
                    insert_chunks(&tx, &mut chunks, streams, parked, &mut stored);
                    match tx.savepoint() {
                        Ok(mut sp) => {
                            if job.run(&sp) {
                                if let Err(e) = sp.commit() {
                                    job.fail(e.into());
                                }
                            } else if let Err(e) = sp.rollback() {
                                tracing::warn!("cannot roll back a failed history write: {e}");
                            }
                        }
                        Err(e) => job.fail(e.into()),
                    }
                    jobs.push(job);
                }
            }
            if tx.is_autocommit() {
                // A failed statement (disk full, I/O error) made SQLite roll the whole
                // transaction back: nothing of the batch is stored, and statements after it
                // would each commit alone. Fail the batch instead.
                return abandon(parked, streams, stored, jobs, batch.collect(), ROLLED_BACK);
            }
        }
        insert_chunks(&tx, &mut chunks, streams, parked, &mut stored);
        if tx.is_autocommit() {
            return abandon(parked, streams, stored, jobs, Vec::new(), ROLLED_BACK);
        }
        match tx.commit() {
            Ok(()) => {
                for mut job in jobs {
                    if let Some(error) = take_parked(parked, job.scope()) {
                        job.fail(Error::Write(error));
                    }
                    job.reply();
                }
            }
            Err(e) => abandon(parked, streams, stored, jobs, Vec::new(), &format!("cannot commit: {e}")),
        }
    }
}

/// Why a batch failed when SQLite rolled its transaction back by itself.
const ROLLED_BACK: &str = "SQLite rolled the transaction back after a failed write";

/// Fails a batch whose transaction did not commit (could not begin, was rolled back, or failed
/// to commit): the events it stored are lost (parked under their executions), its jobs fail,
/// and the messages not applied yet fail with them.
fn abandon(
    parked: &mut HashMap<String, String>,
    streams: &mut HashMap<String, Stream>,
    stored: HashSet<String>,
    mut jobs: Vec<Box<dyn Job>>,
    rest: Vec<Msg>,
    msg: &str,
) {
    tracing::error!("history: {msg}");
    for execution in stored {
        park(parked, &execution, msg.to_string());
    }
    for m in rest {
        match m {
            Msg::Event(ev) => park(parked, ev.execution(), msg.to_string()),
            Msg::Job(job) => jobs.push(job),
            // Every stream is cleared below.
            Msg::Forget(_) => {}
        }
    }
    // The streams may remember pairs that are not stored: read them again.
    streams.clear();
    fail_all(parked, jobs, msg);
}

/// One execution's events of the transaction, not inserted yet.
struct PendingChunk {
    execution: String,
    /// Whether the execution's stream checks for replayed events.
    resumed: bool,
    chunk: ChunkBuilder,
}

/// Inserts the pending chunks; a chunk that cannot be stored parks the error under its
/// execution (a failed statement is rolled back on its own, the transaction goes on).
fn insert_chunks(
    conn: &Connection,
    chunks: &mut Vec<PendingChunk>,
    streams: &mut HashMap<String, Stream>,
    parked: &mut HashMap<String, String>,
    stored: &mut HashSet<String>,
) {
    for PendingChunk { execution, chunk, .. } in chunks.drain(..) {
        let Some(stream) = streams.get_mut(&execution) else {
            // Every pending chunk's stream was loaded first; forgotten only after inserting.
            tracing::error!(execution = %execution, "history events without a stream were dropped");
            continue;
        };
        match chunk.insert(conn, &execution, stream) {
            Ok(()) => {
                stored.insert(execution);
            }
            Err(e) => {
                tracing::warn!(execution = %execution, "cannot store history events: {e}");
                park(parked, &execution, format!("cannot store events: {e}"));
            }
        }
    }
}

fn park(parked: &mut HashMap<String, String>, execution: &str, error: String) {
    parked.entry(execution.to_string()).or_insert(error);
}

fn fail_all(parked: &mut HashMap<String, String>, jobs: Vec<Box<dyn Job>>, msg: &str) {
    for mut job in jobs {
        // The job gets the batch's error; parked errors it covers are reported with it.
        let _ = take_parked(parked, job.scope());
        job.fail(Error::Write(msg.to_string()));
        job.reply();
    }
}

/// The parked event failures a job with this scope must report, removed from the park.
fn take_parked(parked: &mut HashMap<String, String>, scope: &Scope) -> Option<String> {
    if parked.is_empty() {
        return None;
    }
    match scope {
        Scope::Nothing => None,
        Scope::Execution(id) => parked.remove(id),
        Scope::All => {
            let mut all: Vec<String> = parked.drain().map(|(_, e)| e).collect();
            all.sort();
            let n = all.len();
            let first = all.into_iter().next()?;
            Some(if n > 1 { format!("{first} (and failures of {} more executions)", n - 1) } else { first })
        }
    }
}
