//! Events on their way to the writer thread, kept per execution until the writer takes them.
//!
//! Why not a message per event: a state transition records two events, and handing each one
//! to the writer thread (a channel send, an allocation freed on the other thread, often a
//! wake-up of the writer and a transaction of its own) cost more than the transition itself.
//! A recording thread now appends the event, already encoded, to its execution's pending chunk
//! ([`ChunkBuilder`]) under that execution's own lock, and the writer takes whole chunks:
//! * before it runs a job (a checkpoint, the end of a run): every event recorded before the
//!   job was sent is in the outbox by then, so the job's commit covers it;
//! * when an execution has [`FULL`] events waiting, so a long run is stored as it goes;
//! * [`GATHER`] after the first event it has not taken, so a live view lags by at most that.
//!
//! Order: one execution's events are appended under one lock, so they are stored in the order
//! they were recorded, across threads too (a Map's iterations, then its parent's next event).

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use crate::events::ChunkBuilder;

/// Events of one execution waiting before the writer is asked to take them at once, and the
/// most one chunk holds. Smaller makes the end of a run wait for fewer events (the writer stores
/// the others as the run goes); larger makes fewer transactions, which a wide Map, with every
/// core busy, pays for. The cap on a chunk matters when the writer falls behind (a Map's
/// threads outrun it on a small machine): one growing chunk reached 60,000 events (8 MB,
/// reallocated as it doubled), and reading any page of the stored history decodes a whole chunk.
pub(crate) const FULL: usize = 1024;

/// How long the writer lets events gather after the first one it has not taken.
pub(crate) const GATHER: Duration = Duration::from_millis(5);

/// Events of one execution waiting before recording blocks: back pressure instead of unbounded
/// memory when the disk is slower than the engine. Large, so that a burst never waits: with a
/// few chunks' worth, a Map's threads took turns blocking.
const LIMIT: usize = 64 * 1024;

/// Emptied chunks kept for reuse, and the largest kept.
const MAX_SPARE: usize = 16;
const MAX_SPARE_BYTES: usize = 4 << 20;

/// What the writer must be told after an append.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Signal {
    /// It knows already.
    Nothing,
    /// Events are waiting: take them within [`GATHER`].
    Wake,
    /// An execution has [`FULL`] events waiting: take them now.
    Full,
}

/// The writer is gone: nothing appended would ever be stored.
#[derive(Debug)]
pub(crate) struct Closed;

pub(crate) struct Outbox {
    /// Tells outboxes apart in the recording threads' caches (an address can be reused).
    id: usize,
    executions: Mutex<HashMap<String, Arc<Pending>>>,
    /// A [`Signal::Wake`] was returned since the writer last took the events.
    wake_sent: AtomicBool,
    closed: AtomicBool,
    /// Chunks the writer stored and emptied, for the next events: a chunk grows to a few
    /// hundred KB, and allocating, growing and freeing one per execution per transaction cost
    /// as much as the events' encoding.
    spare: Mutex<Vec<ChunkBuilder>>,
}

/// One execution's events not taken yet.
struct Pending {
    execution: String,
    state: Mutex<PendingState>,
    /// Where recording waits while [`LIMIT`] events are waiting.
    room: Condvar,
}

#[derive(Default)]
struct PendingState {
    segments: Vec<Segment>,
    /// Events in `segments`.
    events: usize,
    /// [`Signal::Full`] was returned since the writer last took the events.
    full_sent: bool,
    /// Taken out of the outbox (the writer found it empty): a recording thread that still holds
    /// it looks the execution up again.
    detached: bool,
}

/// A run of one execution's events, in order.
pub(crate) struct Segment {
    /// A run of the execution began before these events (it may be a resume replaying stored
    /// events): the writer reads again what the execution has stored.
    pub(crate) restart: bool,
    pub(crate) chunk: ChunkBuilder,
}

/// One execution's events taken by the writer.
pub(crate) struct Taken {
    pub(crate) execution: String,
    pub(crate) segments: Vec<Segment>,
}

thread_local! {
    /// The execution this thread recorded into last, per outbox id: a run records thousands of
    /// events in a row into the same one.
    static LAST: RefCell<Option<(usize, Arc<Pending>)>> = const { RefCell::new(None) };
}

static NEXT_ID: AtomicUsize = AtomicUsize::new(0);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Outbox {
    pub(crate) fn new() -> Outbox {
        Outbox {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            executions: Mutex::new(HashMap::new()),
            wake_sent: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            spare: Mutex::new(Vec::new()),
        }
    }

    /// Appends one encoded chunk item (with what it adds to a Map state's counts: state,
    /// column, amount) to the execution's pending events. Blocks while [`LIMIT`] events of the
    /// execution are waiting.
    pub(crate) fn append(&self, execution: &str, item: &[u8], map: Option<(&str, usize, i64)>) -> Result<Signal, Closed> {
        let cached = LAST.with_borrow(|last| match last {
            Some((id, pending)) if *id == self.id && pending.execution == execution => Some(pending.clone()),
            _ => None,
        });
        let mut pending = match cached {
            Some(pending) => pending,
            None => self.lookup(execution),
        };
        loop {
            if self.closed.load(Ordering::Acquire) {
                return Err(Closed);
            }
            let mut state = lock(&pending.state);
            while state.events >= LIMIT && !state.detached && !self.closed.load(Ordering::Acquire) {
                // The timeout only guards against a missed wake-up; the writer notifies.
                state = pending.room.wait_timeout(state, Duration::from_millis(10)).unwrap_or_else(|e| e.into_inner()).0;
            }
            if state.detached {
                drop(state);
                pending = self.lookup(execution);
                continue;
            }
            if state.segments.last().is_none_or(|last| last.chunk.len() >= FULL) {
                state.segments.push(Segment { restart: false, chunk: self.spare_chunk() });
            }
            let segment = state.segments.last_mut().expect("a segment was just ensured");
            segment.chunk.push_item(item);
            if let Some((map_state, column, amount)) = map {
                segment.chunk.count_map(map_state, column, amount);
            }
            state.events += 1;
            let full = state.events >= FULL && !state.full_sent;
            state.full_sent |= full;
            drop(state);
            return Ok(if full {
                Signal::Full
            } else if !self.wake_sent.load(Ordering::Acquire) && !self.wake_sent.swap(true, Ordering::AcqRel) {
                Signal::Wake
            } else {
                Signal::Nothing
            });
        }
    }

    /// A run of `execution` begins: the events recorded from now on may replay stored ones.
    pub(crate) fn begin(&self, execution: &str) {
        loop {
            let pending = self.lookup(execution);
            let mut state = lock(&pending.state);
            if state.detached {
                continue;
            }
            match state.segments.last_mut() {
                Some(last) if last.chunk.is_empty() => last.restart = true,
                _ => state.segments.push(Segment { restart: true, chunk: self.spare_chunk() }),
            }
            return;
        }
    }

    /// An empty chunk, with memory if one was given back.
    fn spare_chunk(&self) -> ChunkBuilder {
        lock(&self.spare).pop().unwrap_or_else(ChunkBuilder::new)
    }

    /// Gives back a stored chunk's memory (see `spare`). Keeps a few, of a bounded size.
    pub(crate) fn recycle(&self, mut chunk: ChunkBuilder) {
        if chunk.capacity() > MAX_SPARE_BYTES {
            return;
        }
        chunk.clear();
        let mut spare = lock(&self.spare);
        if spare.len() < MAX_SPARE {
            spare.push(chunk);
        }
    }

    /// The execution's pending events, found or added in the outbox, and remembered as this
    /// thread's last.
    fn lookup(&self, execution: &str) -> Arc<Pending> {
        let pending = lock(&self.executions)
            .entry(execution.to_string())
            .or_insert_with(|| {
                Arc::new(Pending { execution: execution.to_string(), state: Mutex::default(), room: Condvar::new() })
            })
            .clone();
        LAST.with_borrow_mut(|last| *last = Some((self.id, pending.clone())));
        pending
    }

    /// Takes every execution's pending events (and forgets the executions that had none since
    /// the last time).
    pub(crate) fn take(&self) -> Vec<Taken> {
        // Before taking: an event appended after this line returns a new Wake, so none is left
        // behind without one.
        self.wake_sent.store(false, Ordering::Release);
        let mut taken = Vec::new();
        lock(&self.executions).retain(|execution, pending| {
            let mut state = lock(&pending.state);
            if state.segments.is_empty() {
                state.detached = true;
                drop(state);
                pending.room.notify_all();
                return false;
            }
            let segments = std::mem::take(&mut state.segments);
            let was_blocking = state.events >= LIMIT;
            state.events = 0;
            state.full_sent = false;
            drop(state);
            if was_blocking {
                pending.room.notify_all();
            }
            taken.push(Taken { execution: execution.clone(), segments });
            true
        });
        taken
    }

    /// The writer is gone: appends fail from now on, and those waiting for room stop waiting.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        for pending in lock(&self.executions).values() {
            // Taking the lock orders the flag before a waiter's check.
            drop(lock(&pending.state));
            pending.room.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(taken: &[Taken]) -> Vec<(String, bool, usize)> {
        taken.iter().flat_map(|t| t.segments.iter().map(|s| (t.execution.clone(), s.restart, s.chunk.len()))).collect()
    }

    #[test]
    fn signals_wake_once_until_taken_and_full_once_per_execution() {
        let outbox = Outbox::new();
        assert_eq!(outbox.append("a", b"1", None).unwrap(), Signal::Wake);
        assert_eq!(outbox.append("a", b"2", None).unwrap(), Signal::Nothing);
        assert_eq!(outbox.append("b", b"3", None).unwrap(), Signal::Nothing);
        for _ in 3..FULL {
            assert_eq!(outbox.append("a", b"x", None).unwrap(), Signal::Nothing);
        }
        assert_eq!(outbox.append("a", b"x", None).unwrap(), Signal::Full);
        assert_eq!(outbox.append("a", b"x", None).unwrap(), Signal::Nothing);
        let mut taken = items(&outbox.take());
        taken.sort_by_key(|(execution, ..)| execution.clone());
        // A chunk holds at most FULL events: the one after it starts the next chunk.
        assert_eq!(taken, [("a".to_string(), false, FULL), ("a".to_string(), false, 1), ("b".to_string(), false, 1)]);
        assert_eq!(outbox.append("b", b"4", None).unwrap(), Signal::Wake);
    }

    #[test]
    fn a_run_beginning_starts_a_segment_and_idle_executions_are_forgotten() {
        let outbox = Outbox::new();
        outbox.append("a", b"1", None).unwrap();
        outbox.begin("a");
        outbox.append("a", b"2", None).unwrap();
        outbox.append("a", b"3", None).unwrap();
        assert_eq!(items(&outbox.take()), [("a".to_string(), false, 1), ("a".to_string(), true, 2)]);
        // Nothing since: the execution is dropped from the outbox...
        assert!(outbox.take().is_empty());
        assert!(lock(&outbox.executions).is_empty());
        // ...and this thread's cached entry, now detached, is replaced on the next append.
        outbox.begin("a");
        outbox.append("a", b"4", None).unwrap();
        assert_eq!(items(&outbox.take()), [("a".to_string(), true, 1)]);
    }

    #[test]
    fn closed_outbox_refuses_events() {
        let outbox = Outbox::new();
        outbox.close();
        assert!(outbox.append("a", b"1", None).is_err());
    }

    #[test]
    fn events_of_one_execution_from_many_threads_are_all_kept() {
        let outbox = Arc::new(Outbox::new());
        std::thread::scope(|scope| {
            for t in 0..4 {
                let outbox = outbox.clone();
                scope.spawn(move || {
                    for i in 0..1000 {
                        outbox.append("a", format!("{t}{i}").as_bytes(), Some(("M", 1, 1))).unwrap();
                    }
                });
            }
        });
        let taken = outbox.take();
        let total: usize = taken.iter().flat_map(|t| &t.segments).map(|s| s.chunk.len()).sum();
        assert_eq!(total, 4000);
    }
}
