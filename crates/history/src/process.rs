//! Process identity, for telling a live owner of a RUNNING execution from a dead one.
//!
//! A pid alone is not enough: pids are reused, and a new process that happens to get the old
//! pid would keep an orphan "alive" forever. So an owner is a pid plus the start time of that
//! process. On Linux the start time is field 22 of `/proc/<pid>/stat` (clock ticks since boot),
//! which any process can read for any other, so liveness is decided exactly. Elsewhere there is
//! no portable way to read another process's start time; there the identity's second half is
//! this process's own start wall-clock time (good enough to tell *ourselves* from an earlier
//! process with the same pid) and liveness of others falls back to the heartbeat.

use std::sync::OnceLock;

/// How long a heartbeat may be stale before its owner is presumed dead, where the owner cannot
/// be checked directly. Ten missed refreshes at [`HEARTBEAT_INTERVAL`].
pub const ORPHAN_AFTER_MS: i64 = 120_000;

/// How often the writer thread refreshes `heartbeat_at` of this process's RUNNING executions.
pub const HEARTBEAT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(20);

/// Who owns a RUNNING execution: a pid and an opaque start identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessIdentity {
    pub pid: u32,
    /// Linux: start time in clock ticks since boot. Elsewhere: this process's start in ms since
    /// the epoch (only comparable with itself).
    pub start: Option<i64>,
}

/// What can be said about an owner from the operating system alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Liveness {
    Alive,
    Dead,
    /// No `/proc`, or an owner recorded without a start time: decide by heartbeat.
    Unknown,
}

/// This process.
pub fn current() -> ProcessIdentity {
    static CURRENT: OnceLock<ProcessIdentity> = OnceLock::new();
    *CURRENT.get_or_init(|| {
        let pid = std::process::id();
        let start = proc_start_time(pid).or_else(|| Some(crate::now_ms()));
        ProcessIdentity { pid, start }
    })
}

/// Whether `/proc` can tell us about processes (Linux, and not a sandbox without procfs).
fn have_proc() -> bool {
    static HAVE: OnceLock<bool> = OnceLock::new();
    *HAVE.get_or_init(|| cfg!(target_os = "linux") && proc_start_time(std::process::id()).is_some())
}

/// The start time of `pid` from `/proc/<pid>/stat`, or `None` when it cannot be read.
pub(crate) fn proc_start_time(pid: u32) -> Option<i64> {
    proc_stat(pid).ok().flatten().map(|(_, start)| start)
}

/// (state, starttime) of a process. `Ok(None)` means the process does not exist.
fn proc_stat(pid: u32) -> std::io::Result<Option<(char, i64)>> {
    let text = match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    // Field 2 is the command name in parentheses and may itself contain spaces and ')', so
    // count fields from the last ')'. What follows starts at field 3 (state).
    let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, "unparsable /proc stat");
    let rest = text.rfind(')').map(|i| &text[i + 1..]).ok_or_else(bad)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let state = fields.first().and_then(|s| s.chars().next()).ok_or_else(bad)?;
    let start = fields.get(22 - 3).and_then(|s| s.parse::<i64>().ok()).ok_or_else(bad)?;
    Ok(Some((state, start)))
}

/// Whether the process recorded as (`pid`, `start`) still runs.
pub(crate) fn liveness(pid: u32, start: Option<i64>) -> Liveness {
    let Some(start) = start else { return Liveness::Unknown };
    if !have_proc() {
        return Liveness::Unknown;
    }
    match proc_stat(pid) {
        Ok(None) => Liveness::Dead,
        // A zombie has exited; it only waits for its parent to reap it.
        Ok(Some((state, _))) if state == 'Z' || state == 'X' => Liveness::Dead,
        // Same pid, different start: the pid was reused by an unrelated process.
        Ok(Some((_, actual))) if actual != start => Liveness::Dead,
        Ok(Some(_)) => Liveness::Alive,
        Err(_) => Liveness::Unknown,
    }
}

/// Whether a RUNNING execution with this owner and heartbeat has nobody running it.
pub(crate) fn is_orphaned(owner_pid: Option<i64>, owner_start: Option<i64>, heartbeat_at: Option<i64>, now_ms: i64) -> bool {
    let Some(pid) = owner_pid.and_then(|p| u32::try_from(p).ok()) else {
        // RUNNING without an owner cannot be running anywhere.
        return true;
    };
    let me = current();
    if pid == me.pid && owner_start == me.start {
        return false;
    }
    if pid == me.pid {
        // Our pid with another start identity: an earlier process whose pid we inherited.
        return true;
    }
    match liveness(pid, owner_start) {
        Liveness::Alive => false,
        Liveness::Dead => true,
        Liveness::Unknown => heartbeat_at.is_none_or(|h| now_ms - h > ORPHAN_AFTER_MS),
    }
}
