//! The writer thread: the only user of the write connection.
//!
//! Why one thread: SQLite allows one writer at a time anyway, and the engine records many small
//! events per state transition from many threads. The recording threads append events to the
//! [`Outbox`], each execution's as the chunk row they will become (module `events`), and this
//! thread takes them in bulk, so the cost of a transaction is shared by thousands of events;
//! with WAL and `synchronous=NORMAL` a commit is a `write()` without `fsync`.
//!
//! Jobs (checkpoints, the end of a run, execution rows, tokens, claims) come over a channel: a
//! closure run inside the batch transaction, in its own savepoint so a failing job does not take
//! the others down, whose result is sent back only after the transaction *committed* (group
//! commit: every job of a batch shares that one commit). Before running the jobs it received,
//! the writer takes everything in the outbox: an event recorded before a job was sent is there
//! by then, so the job's commit covers it. That is what makes `save_checkpoint`,
//! `finish_execution` (a run's end) and `flush` cover earlier events.
//!
//! An event that cannot be stored (its execution does not exist, or its batch failed to commit)
//! cannot report to its caller, so the failure is parked under its execution id and handed to
//! the next job that covers that execution (`save_checkpoint`, `finish_execution`, `flush`).
//! Such a job fails without running, except one that asked to see the failure
//! ([`Writer::call_seeing_lost`]): `finish_execution` stores the execution FAILED with it.

use std::collections::{HashMap, HashSet};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use rusqlite::{Connection, Transaction, TransactionBehavior};

use crate::error::{Error, Result};
use crate::events::{ChunkBuilder, Stream};
use crate::executions;
use crate::outbox::{Closed, Outbox, Signal, Taken, GATHER};
use crate::process::{ProcessIdentity, HEARTBEAT_INTERVAL};

/// Most jobs applied in one transaction; bounds the latency a big backlog adds to a waiting
/// checkpoint.
pub(crate) const MAX_BATCH: usize = 1000;

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
    /// Runs the job, told why events it covers were lost, if they were; false if it failed
    /// (its savepoint is then rolled back).
    fn run(&mut self, conn: &Connection, lost: Option<String>) -> bool;
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
    F: FnOnce(&Connection, Option<String>) -> Result<T> + Send,
{
    fn scope(&self) -> &Scope {
        &self.scope
    }

    fn run(&mut self, conn: &Connection, lost: Option<String>) -> bool {
        let Some(f) = self.f.take() else { return false };
        let result = f(conn, lost);
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
    /// Events are waiting in the outbox: take them within [`GATHER`].
    Wake,
    /// An execution has many events waiting: take them now.
    Full,
    Job(Box<dyn Job>),
    /// Drop what the writer knows of an execution's events: it finished, or another process
    /// may take it over (free the memory; a later run reads them again).
    Forget(String),
}

/// The handle that owns the writer thread. Dropping it commits what is queued and joins.
pub(crate) struct Writer {
    tx: Option<Sender<Msg>>,
    outbox: Arc<Outbox>,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    pub(crate) fn spawn(conn: Connection, owner: ProcessIdentity) -> Result<Writer> {
        let (tx, rx) = mpsc::channel();
        let outbox = Arc::new(Outbox::new());
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
                let outbox = outbox.clone();
                move || state.run(rx, &outbox)
            })
            .map_err(|e| Error::Write(format!("cannot start the writer thread: {e}")))?;
        Ok(Writer { tx: Some(tx), outbox, thread: Some(thread) })
    }

    /// Queues an event, encoded as its chunk item, with what it adds to a Map state's counts
    /// (state, column, amount). Fails only if the writer thread is gone.
    pub(crate) fn record(&self, execution: &str, item: &[u8], map: Option<(&str, usize, i64)>) -> std::result::Result<(), Closed> {
        let tx = self.tx.as_ref().ok_or(Closed)?;
        let msg = match self.outbox.append(execution, item, map)? {
            Signal::Nothing => return Ok(()),
            Signal::Wake => Msg::Wake,
            Signal::Full => Msg::Full,
        };
        tx.send(msg).map_err(|_| Closed)
    }

    /// A run of `execution` begins: the events recorded from now on may replay stored ones
    /// (a resume), which the writer then recognises.
    pub(crate) fn begin(&self, execution: &str) {
        self.outbox.begin(execution);
    }

    /// Makes the writer forget an execution's event stream (see [`Msg::Forget`]).
    pub(crate) fn forget(&self, execution: &str) {
        if let Some(tx) = &self.tx {
            // Only fails when the writer thread is gone, which every durable call reports.
            let _ = tx.send(Msg::Forget(execution.to_string()));
        }
    }

    /// Runs `f` in the writer's next transaction and returns its result once committed. If
    /// events in `scope` were lost, `f` does not run and the call fails with the reason.
    pub(crate) fn call<T, F>(&self, scope: Scope, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        self.call_seeing_lost(scope, move |conn, lost| match lost {
            Some(reason) => Err(Error::Write(reason)),
            None => f(conn),
        })
    }

    /// Like [`Writer::call`], but `f` runs either way and is told why events in `scope` were
    /// lost, if they were.
    pub(crate) fn call_seeing_lost<T, F>(&self, scope: Scope, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, Option<String>) -> Result<T> + Send + 'static,
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
        // before, commits it with what the outbox holds, and only then sees the disconnect.
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
    fn run(mut self, rx: Receiver<Msg>, outbox: &Outbox) {
        /// Closes the outbox however the thread ends, a panic included.
        struct CloseOnExit<'a>(&'a Outbox);
        impl Drop for CloseOnExit<'_> {
            fn drop(&mut self) {
                self.0.close();
            }
        }
        let _close = CloseOnExit(outbox);
        // When to take the outbox's events if nothing else comes first (a Wake arrived).
        let mut gathered_by: Option<Instant> = None;
        loop {
            let until = gathered_by.map_or(self.next_heartbeat, |g| g.min(self.next_heartbeat));
            let first = match rx.recv_timeout(until.saturating_duration_since(Instant::now())) {
                Ok(Msg::Wake) => {
                    gathered_by.get_or_insert_with(|| Instant::now() + GATHER);
                    continue;
                }
                Ok(msg) => Some(msg),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            if first.is_some() || gathered_by.is_some_and(|g| Instant::now() >= g) {
                let mut batch: Vec<Msg> = first.into_iter().collect();
                while batch.len() < MAX_BATCH {
                    match rx.try_recv() {
                        Ok(msg) => batch.push(msg),
                        Err(_) => break,
                    }
                }
                gathered_by = None;
                // Taken after the jobs were received: it holds every event recorded before them.
                self.apply(outbox, outbox.take(), batch);
            }
            if Instant::now() >= self.next_heartbeat {
                self.heartbeat();
            }
        }
        // Every History handle is gone: nothing more will be recorded.
        self.apply(outbox, outbox.take(), Vec::new());
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

    /// Stores the events taken from the outbox, then runs the jobs, in one transaction.
    fn apply(&mut self, outbox: &Outbox, taken: Vec<Taken>, batch: Vec<Msg>) {
        if taken.is_empty() && batch.iter().all(|m| matches!(m, Msg::Wake | Msg::Full)) {
            return;
        }
        let mut jobs: Vec<Box<dyn Job>> = Vec::new();
        // Executions whose events this batch holds, to park the error if it does not commit.
        let involved: HashSet<String> = taken.iter().map(|t| t.execution.clone()).collect();
        // Disjoint borrows: the transaction holds the connection while failures are parked.
        let parked = &mut self.parked;
        let streams = &mut self.streams;
        let mut tx = match self.conn.transaction_with_behavior(TransactionBehavior::Immediate) {
            Ok(tx) => tx,
            Err(e) => return abandon(parked, streams, involved, jobs, batch, &format!("cannot begin a transaction: {e}")),
        };
        for Taken { execution, segments } in taken {
            for segment in segments {
                if segment.restart {
                    streams.remove(&execution);
                }
                let mut chunk = segment.chunk;
                if !chunk.is_empty() {
                    insert_chunk(&mut tx, &execution, &mut chunk, streams, parked);
                }
                outbox.recycle(chunk);
                if tx.is_autocommit() {
                    // A failed statement (disk full, I/O error) made SQLite roll the whole
                    // transaction back: nothing of the batch is stored, and statements after it
                    // would each commit alone. Fail the batch instead.
                    return abandon(parked, streams, involved, jobs, batch, ROLLED_BACK);
                }
            }
        }
        let mut batch = batch.into_iter();
        while let Some(m) = batch.next() {
            match m {
                Msg::Wake | Msg::Full => {}
                Msg::Forget(execution) => {
                    streams.remove(&execution);
                }
                Msg::Job(mut job) => {
                    // Every chunk of the batch is stored (or parked) by now.
                    let lost = take_parked(parked, job.scope());
                    match tx.savepoint() {
                        Ok(mut sp) => {
                            if job.run(&sp, lost) {
                                if let Err(e) = sp.commit() {
                                    job.fail(e.into());
                                }
                            } else if let Err(e) = sp.rollback() {
                                tracing::warn!("cannot roll back a failed history write: {e}");
                            }
                        }
                        Err(e) => job.fail(lost.map_or_else(|| e.into(), Error::Write)),
                    }
                    jobs.push(job);
                }
            }
            if tx.is_autocommit() {
                return abandon(parked, streams, involved, jobs, batch.collect(), ROLLED_BACK);
            }
        }
        match tx.commit() {
            Ok(()) => {
                for job in jobs {
                    job.reply();
                }
            }
            Err(e) => abandon(parked, streams, involved, jobs, Vec::new(), &format!("cannot commit: {e}")),
        }
    }
}

/// Why a batch failed when SQLite rolled its transaction back by itself.
const ROLLED_BACK: &str = "SQLite rolled the transaction back after a failed write";

/// Fails a batch whose transaction did not commit (could not begin, was rolled back, or failed
/// to commit): the events it held are lost (parked under their executions), its jobs fail,
/// and the jobs not run yet fail with them.
fn abandon(
    parked: &mut HashMap<String, String>,
    streams: &mut HashMap<String, Stream>,
    involved: HashSet<String>,
    mut jobs: Vec<Box<dyn Job>>,
    rest: Vec<Msg>,
    msg: &str,
) {
    tracing::error!("history: {msg}");
    for execution in involved {
        park(parked, &execution, msg.to_string());
    }
    jobs.extend(rest.into_iter().filter_map(|m| match m {
        Msg::Job(job) => Some(job),
        // Every stream is cleared below.
        Msg::Forget(_) | Msg::Wake | Msg::Full => None,
    }));
    // The streams may remember pairs that are not stored: read them again.
    streams.clear();
    fail_all(parked, jobs, msg);
}

/// Inserts one execution's chunk with its Map counts, in a savepoint: a chunk that cannot be
/// stored leaves nothing behind and parks the error under its execution; the transaction goes on.
fn insert_chunk(
    tx: &mut Transaction,
    execution: &str,
    chunk: &mut ChunkBuilder,
    streams: &mut HashMap<String, Stream>,
    parked: &mut HashMap<String, String>,
) {
    let stream = match streams.get_mut(execution) {
        Some(stream) => stream,
        None => match Stream::load(tx, execution) {
            Ok(stream) => streams.entry(execution.to_string()).or_insert(stream),
            Err(e) => return park(parked, execution, format!("cannot read the stored events: {e}")),
        },
    };
    // Dropping the savepoint after a failed insert rolls it back.
    let stored = tx.savepoint().map_err(Error::from).and_then(|sp| {
        chunk.insert(&sp, execution, stream)?;
        Ok(sp.commit()?)
    });
    if let Err(e) = stored {
        tracing::warn!(execution = %execution, "cannot store history events: {e}");
        park(parked, execution, format!("cannot store events: {e}"));
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
