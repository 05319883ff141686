//! Each execution's append-only event history, stored as **chunks**: one row holds a run of
//! consecutive events of one execution, as a JSON array of `[timestamp, kind, state, key,
//! detail]` items.
//!
//! Why chunks and not a row per event: a state transition records two events, and a batch of
//! 40,000 images several hundred thousand. A row per event, with the index that keeps events
//! unique, bounded the whole engine at about 10^5 transitions per second on the single SQLite
//! writer. The recording threads now encode each event and append it to its execution's
//! pending chunk (module `outbox`), and the writer thread stores each pending chunk as one row
//! (module `writer`), so its cost per event is a copy of bytes.
//!
//! * **Order and numbering**: a chunk's `first` is the index of its first event within the
//!   execution, chunks are contiguous, and an event's `seq` is its 1-based position in its
//!   execution. A page decodes only the chunks it overlaps.
//! * **Idempotence**: an event with the same (kind, key) as one already stored for the
//!   execution is dropped, so a resumed execution that replays its finished prefix stores
//!   nothing twice. The writer enforces it with the set of stored (kind, key) pairs, which it
//!   loads only for an execution that already has events when a run of it begins (a resume):
//!   a fresh run never repeats a key by construction. A writer that finds events it did not
//!   expect (another process appended some) reloads the pairs before inserting.
//! * **Map counts**: the writer also keeps `map_counts`, each Map state's iteration counts,
//!   so the app shows the progress of a huge batch without reading its events.

use std::collections::HashSet;

use pixelflow_engine::Event;
use rusqlite::{params, Connection, OptionalExtension};
use serde::de::IgnoredAny;
use serde::Serialize;
use serde_json::Value;

use crate::error::{corrupt, Error, Result};

/// The first history schema: a row per event. Kept as released; [`MIGRATION_CHUNKS`] moves
/// its rows into chunks and leaves it empty, with a trigger for older processes.
pub(crate) const MIGRATION: &str = "
CREATE TABLE IF NOT EXISTS events (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    execution_id TEXT NOT NULL REFERENCES executions (id) ON DELETE CASCADE,
    kind         TEXT NOT NULL,
    state        TEXT,
    key          TEXT NOT NULL,
    detail       TEXT NOT NULL,
    timestamp    INTEGER NOT NULL,
    -- Also the index `events(execution_id)` lookups use.
    UNIQUE (execution_id, kind, key)
);
";

/// Event chunks and Map counts. The rows of the per-event table are carried over, a chunk per
/// 1,000 events of an execution (rows of executions deleted behind SQLite's back, with foreign
/// keys off, are left out rather than failing every open). The table itself stays, empty, with
/// a trigger that moves what is inserted into it into chunks: a process of the previous version
/// still running when this one upgrades the file keeps recording (into `events`) instead of
/// failing its executions, and its events show.
pub(crate) const MIGRATION_CHUNKS: &str = "
CREATE TABLE IF NOT EXISTS event_chunks (
    execution_id TEXT NOT NULL REFERENCES executions (id) ON DELETE CASCADE,
    -- Index within the execution of the chunk's first event.
    first        INTEGER NOT NULL,
    count        INTEGER NOT NULL,
    -- JSON array of [timestamp_ms, kind, state, key, detail].
    events       TEXT NOT NULL,
    UNIQUE (execution_id, first)
);
CREATE TABLE IF NOT EXISTS map_counts (
    execution_id TEXT NOT NULL REFERENCES executions (id) ON DELETE CASCADE,
    state        TEXT NOT NULL,
    total        INTEGER NOT NULL,
    started      INTEGER NOT NULL,
    succeeded    INTEGER NOT NULL,
    failed       INTEGER NOT NULL,
    PRIMARY KEY (execution_id, state)
) WITHOUT ROWID;
INSERT INTO event_chunks (execution_id, first, count, events)
    SELECT execution_id, min(n), count(*), json_group_array(json(item) ORDER BY n)
    FROM (SELECT execution_id, row_number() OVER (PARTITION BY execution_id ORDER BY seq) - 1 AS n,
                 json_array(timestamp, kind, state, key, json(detail)) AS item
          FROM events WHERE execution_id IN (SELECT id FROM executions))
    GROUP BY execution_id, n / 1000;
INSERT INTO map_counts (execution_id, state, total, started, succeeded, failed)
    SELECT execution_id, coalesce(state, ''),
           sum(CASE kind WHEN 'MapStateStarted' THEN coalesce(json_extract(detail, '$.length'), 0) ELSE 0 END),
           sum(kind = 'MapIterationStarted'), sum(kind = 'MapIterationSucceeded'), sum(kind = 'MapIterationFailed')
    FROM events
    WHERE kind IN ('MapStateStarted', 'MapIterationStarted', 'MapIterationSucceeded', 'MapIterationFailed')
      AND execution_id IN (SELECT id FROM executions)
    GROUP BY execution_id, coalesce(state, '');
DELETE FROM events;
CREATE TRIGGER IF NOT EXISTS events_into_chunks AFTER INSERT ON events BEGIN
    INSERT INTO event_chunks (execution_id, first, count, events)
        VALUES (NEW.execution_id,
                coalesce((SELECT first + count FROM event_chunks WHERE execution_id = NEW.execution_id
                          ORDER BY first DESC LIMIT 1), 0),
                1, json_array(json_array(NEW.timestamp, NEW.kind, NEW.state, NEW.key, json(NEW.detail))));
    INSERT INTO map_counts (execution_id, state, total, started, succeeded, failed)
        SELECT NEW.execution_id, coalesce(NEW.state, ''),
               CASE NEW.kind WHEN 'MapStateStarted' THEN coalesce(json_extract(NEW.detail, '$.length'), 0) ELSE 0 END,
               NEW.kind = 'MapIterationStarted', NEW.kind = 'MapIterationSucceeded', NEW.kind = 'MapIterationFailed'
        WHERE NEW.kind IN ('MapStateStarted', 'MapIterationStarted', 'MapIterationSucceeded', 'MapIterationFailed')
        ON CONFLICT (execution_id, state) DO UPDATE SET
            total = total + excluded.total, started = started + excluded.started,
            succeeded = succeeded + excluded.succeeded, failed = failed + excluded.failed;
END;
";

/// An event as stored: the recorded [`Event`] plus its position in the execution and the time
/// (ms since the Unix epoch) at which `record` was called.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredEvent {
    /// 1-based position of the event in its execution's history.
    pub seq: i64,
    pub timestamp_ms: i64,
    pub kind: String,
    pub state: Option<String>,
    pub key: String,
    pub detail: Value,
}

impl StoredEvent {
    /// The event as the engine recorded it.
    pub fn to_event(&self) -> Event {
        Event { kind: self.kind.clone(), state: self.state.clone(), key: self.key.clone(), detail: self.detail.clone() }
    }
}

/// Writes an event as its chunk item, `[timestamp, kind, state, key, detail]`, on the recording
/// thread: that work is spread over the engine's threads, and the writer only copies bytes.
pub(crate) fn encode_event(out: &mut Vec<u8>, event: &Event, at_ms: i64) {
    encode_item(out, &event.kind, event.state.as_deref(), &event.key, at_ms, |out| {
        // Writing to a Vec cannot fail.
        let _ = serde_json::to_writer(out, &event.detail);
    });
}

/// The same for an event whose detail is the object `{name: value, ...}`, written without
/// building it.
pub(crate) fn encode_fields(out: &mut Vec<u8>, kind: &str, state: Option<&str>, key: &str, fields: &[(&str, &Value)], at_ms: i64) {
    encode_item(out, kind, state, key, at_ms, |out| {
        out.push(b'{');
        for (i, (name, value)) in fields.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            let _ = serde_json::to_writer(&mut *out, name);
            out.push(b':');
            let _ = serde_json::to_writer(&mut *out, value);
        }
        out.push(b'}');
    });
}

fn encode_item(out: &mut Vec<u8>, kind: &str, state: Option<&str>, key: &str, at_ms: i64, detail: impl FnOnce(&mut Vec<u8>)) {
    out.push(b'[');
    out.extend_from_slice(itoa::Buffer::new().format(at_ms).as_bytes());
    out.push(b',');
    let _ = serde_json::to_writer(&mut *out, kind);
    out.push(b',');
    let _ = serde_json::to_writer(&mut *out, &state);
    out.push(b',');
    let _ = serde_json::to_writer(&mut *out, key);
    out.push(b',');
    detail(out);
    out.push(b']');
}

/// What an event adds to its Map state's counts, if it is one of the Map events: the
/// `map_counts` column (0 total, 1 started, 2 succeeded, 3 failed) and the amount. `length`
/// reads the `length` field of the detail (items of a `MapStateStarted`).
pub(crate) fn map_count(kind: &str, length: impl FnOnce() -> Option<i64>) -> Option<(usize, i64)> {
    match kind {
        MAP_STATE_STARTED => Some((0, length().unwrap_or(0))),
        MAP_ITERATION_STARTED => Some((1, 1)),
        MAP_ITERATION_SUCCEEDED => Some((2, 1)),
        MAP_ITERATION_FAILED => Some((3, 1)),
        _ => None,
    }
}

const MAP_STATE_STARTED: &str = "MapStateStarted";
const MAP_ITERATION_STARTED: &str = "MapIterationStarted";
const MAP_ITERATION_SUCCEEDED: &str = "MapIterationSucceeded";
const MAP_ITERATION_FAILED: &str = "MapIterationFailed";

/// What the writer knows of one execution's events since a run of it began: where it expects
/// the next chunk to start and, when the execution already had events then (a resume), the
/// (kind, key) pairs stored, so replayed events are dropped.
pub(crate) struct Stream {
    next: i64,
    stored: Option<HashSet<(String, String)>>,
}

impl Stream {
    /// Only an execution with events already (a resumed one) pays for loading their pairs.
    pub(crate) fn load(conn: &Connection, execution: &str) -> Result<Stream> {
        let next = next_index(conn, execution)?;
        if next == 0 {
            return Ok(Stream { next, stored: None });
        }
        let mut stored = HashSet::new();
        let mut stmt = conn.prepare_cached("SELECT events FROM event_chunks WHERE execution_id = ?1")?;
        let mut rows = stmt.query([execution])?;
        while let Some(row) = rows.next()? {
            let text = chunk_text(row, 0)?;
            let items: Vec<(IgnoredAny, String, IgnoredAny, String, IgnoredAny)> =
                serde_json::from_str(text).map_err(|e| corrupt("event chunk", e))?;
            stored.extend(items.into_iter().map(|(_, kind, _, key, _)| (kind, key)));
        }
        Ok(Stream { next, stored: Some(stored) })
    }

    /// Whether the execution had events when its run began, so replays must be dropped.
    pub(crate) fn is_resumed(&self) -> bool {
        self.stored.is_some()
    }

    fn admit_pair(&mut self, pair: impl FnOnce() -> Option<(String, String)>) -> bool {
        match &mut self.stored {
            Some(stored) => pair().is_none_or(|pair| stored.insert(pair)),
            None => true,
        }
    }
}

/// Index of the execution's next event: read in the writer's transaction, which holds the
/// write lock, so it is right even when another process recorded events of the execution.
fn next_index(conn: &Connection, execution: &str) -> Result<i64> {
    Ok(conn
        // The last chunk by the (execution_id, first) index: one lookup, however many chunks.
        .prepare_cached("SELECT first + count FROM event_chunks WHERE execution_id = ?1 ORDER BY first DESC LIMIT 1")?
        .query_row([execution], |r| r.get(0))
        .optional()?
        .unwrap_or(0))
}

/// One execution's events of the current transaction, encoded as the chunk they will become.
pub(crate) struct ChunkBuilder {
    events: Vec<u8>,
    /// Where each item starts in `events`.
    starts: Vec<usize>,
    /// (state, total, started, succeeded, failed) per Map state.
    map: Vec<(String, [i64; 4])>,
}

impl ChunkBuilder {
    pub(crate) fn new() -> Self {
        ChunkBuilder { events: Vec::new(), starts: Vec::new(), map: Vec::new() }
    }

    /// Events in the chunk.
    pub(crate) fn len(&self) -> usize {
        self.starts.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.starts.is_empty()
    }

    /// Bytes the chunk can hold without growing.
    pub(crate) fn capacity(&self) -> usize {
        self.events.capacity()
    }

    /// Appends one item, as written by [`encode_event`] or [`encode_fields`] (UTF-8 JSON).
    pub(crate) fn push_item(&mut self, item: &[u8]) {
        if self.events.capacity() == 0 {
            self.events.reserve(16 * 1024);
        }
        self.events.push(if self.starts.is_empty() { b'[' } else { b',' });
        self.starts.push(self.events.len());
        self.events.extend_from_slice(item);
    }

    /// Adds to a Map state's counts (see [`map_count`]).
    pub(crate) fn count_map(&mut self, state: &str, column: usize, amount: i64) {
        let at = match self.map.iter().position(|(s, _)| s == state) {
            Some(at) => at,
            None => {
                self.map.push((state.to_string(), [0; 4]));
                self.map.len() - 1
            }
        };
        self.map[at].1[column] += amount;
    }

    /// The items, as encoded.
    fn items(&self) -> impl Iterator<Item = &str> {
        let ends = self.starts.iter().skip(1).map(|s| s - 1).chain(std::iter::once(self.events.len()));
        // Items were pushed as `&str`, so their bytes are UTF-8.
        self.starts.iter().zip(ends).map(|(&s, e)| std::str::from_utf8(&self.events[s..e]).unwrap_or_default())
    }

    /// The chunk without the events `stream` already holds (and with their Map counts taken out).
    fn without_stored(&self, stream: &mut Stream) -> ChunkBuilder {
        let mut kept = ChunkBuilder::new();
        for item in self.items() {
            let Ok((_, kind, state, key, detail)) = serde_json::from_str::<(IgnoredAny, String, Option<String>, String, Value)>(item) else {
                continue;
            };
            if !stream.admit_pair(|| Some((kind.clone(), key))) {
                continue;
            }
            kept.push_item(item.as_bytes());
            if let Some((column, amount)) = map_count(&kind, || detail.get("length").and_then(Value::as_i64)) {
                kept.count_map(state.as_deref().unwrap_or_default(), column, amount);
            }
        }
        kept
    }

    /// Stores the chunk after the execution's last one, with its Map counts. Call it in a
    /// savepoint, so that a failure stores neither. When another writer added events of the
    /// execution since `stream` was read (two processes both believing they own it), the events
    /// it holds already are dropped first.
    pub(crate) fn insert(&mut self, conn: &Connection, execution: &str, stream: &mut Stream) -> Result<()> {
        let first = next_index(conn, execution)?;
        if first != stream.next {
            *stream = Stream::load(conn, execution)?;
        }
        // Only a resumed execution's stream has anything to check.
        if stream.is_resumed() {
            *self = self.without_stored(stream);
        }
        if self.starts.is_empty() {
            return Ok(());
        }
        self.events.push(b']');
        let stored = self.insert_at(conn, execution, first);
        self.events.pop();
        stored?;
        stream.next = first + self.starts.len() as i64;
        Ok(())
    }

    /// Inserts the chunk (its `events` closed by `]`) as the one starting at `first`.
    fn insert_at(&self, conn: &Connection, execution: &str, first: i64) -> Result<()> {
        let text = std::str::from_utf8(&self.events).expect("serde_json writes UTF-8 and details are strings");
        conn.prepare_cached("INSERT INTO event_chunks (execution_id, first, count, events) VALUES (?1, ?2, ?3, ?4)")?
            .execute(params![execution, first, self.starts.len() as i64, text])?;
        for (state, [total, started, succeeded, failed]) in &self.map {
            conn.prepare_cached(
                "INSERT INTO map_counts (execution_id, state, total, started, succeeded, failed)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (execution_id, state) DO UPDATE SET
                     total = total + excluded.total, started = started + excluded.started,
                     succeeded = succeeded + excluded.succeeded, failed = failed + excluded.failed",
            )?
            .execute(params![execution, state, total, started, succeeded, failed])?;
        }
        Ok(())
    }

    /// Empties the chunk, keeping its memory for the next one.
    pub(crate) fn clear(&mut self) {
        self.events.clear();
        self.starts.clear();
        self.map.clear();
    }
}

/// The text of a chunk's `events` column.
fn chunk_text<'r>(row: &'r rusqlite::Row<'_>, column: usize) -> Result<&'r str> {
    row.get_ref(column)?.as_str().map_err(|e| Error::Corrupt(format!("event chunk: {e}")))
}

/// Stores the single event of an execution that never ran (a rejected attempt).
pub(crate) fn insert_only(conn: &Connection, execution: &str, event: &Event, at_ms: i64) -> Result<()> {
    let mut item = Vec::new();
    encode_event(&mut item, event, at_ms);
    let mut chunk = ChunkBuilder::new();
    chunk.push_item(&item);
    chunk.insert(conn, execution, &mut Stream { next: 0, stored: None })
}

/// A Map state's iterations over a whole execution (all its runs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MapProgress {
    pub state: String,
    /// Items of every run of the state (`MapStateStarted`'s `length`).
    pub total: u64,
    pub started: u64,
    pub succeeded: u64,
    pub failed: u64,
}

/// Each Map state's counts, kept by the writer as it stores the events, so an execution of
/// any size is summed without reading its events.
pub(crate) fn map_progress(conn: &Connection, execution: &str) -> Result<Vec<MapProgress>> {
    let mut stmt = conn.prepare_cached(
        "SELECT state, total, started, succeeded, failed FROM map_counts WHERE execution_id = ?1 ORDER BY state",
    )?;
    let count = |v: i64| u64::try_from(v).unwrap_or(0);
    let rows = stmt.query_map([execution], |r| {
        Ok(MapProgress {
            state: r.get(0)?,
            total: count(r.get(1)?),
            started: count(r.get(2)?),
            succeeded: count(r.get(3)?),
            failed: count(r.get(4)?),
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Every stored event of an execution, in recording order.
pub(crate) fn list(conn: &Connection, execution: &str) -> Result<Vec<StoredEvent>> {
    page(conn, execution, 0, i64::MAX)
}

/// How many events an execution recorded.
pub(crate) fn count(conn: &Connection, execution: &str) -> Result<u64> {
    Ok(u64::try_from(next_index(conn, execution)?).unwrap_or(0))
}

/// `limit` events of an execution from the `offset`-th (0-based), in recording order. Reads
/// and decodes only the chunks that overlap the page: the first is found through the index
/// (the chunk that starts at or before `offset`), so a page deep into a batch's 100,000 chunks
/// does not walk the chunks before it.
pub(crate) fn page(conn: &Connection, execution: &str, offset: i64, limit: i64) -> Result<Vec<StoredEvent>> {
    let end = offset.saturating_add(limit);
    let mut stmt = conn.prepare_cached(
        "SELECT first, events FROM event_chunks
         WHERE execution_id = ?1 AND first < ?3 AND first + count > ?2
           AND first >= coalesce((SELECT max(first) FROM event_chunks WHERE execution_id = ?1 AND first <= ?2), 0)
         ORDER BY first",
    )?;
    let mut rows = stmt.query(params![execution, offset, end])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let first: i64 = row.get(0)?;
        // Split the chunk, and decode only the items of the page.
        let items: Vec<&serde_json::value::RawValue> =
            serde_json::from_str(chunk_text(row, 1)?).map_err(|e| corrupt("event chunk", e))?;
        for (i, item) in items.into_iter().enumerate() {
            let index = first + i as i64;
            if index >= offset && index < end {
                let (timestamp_ms, kind, state, key, detail): (i64, String, Option<String>, String, Value) =
                    serde_json::from_str(item.get()).map_err(|e| corrupt("event", e))?;
                out.push(StoredEvent { seq: index + 1, timestamp_ms, kind, state, key, detail });
            }
        }
    }
    Ok(out)
}
