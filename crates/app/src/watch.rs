//! The headless service (`pixelflow watch`): resumes executions left unfinished, then runs the
//! workflow on every file that lands in the watch folder.
//!
//! This is the first cut that the README's run command starts; the watch-folders issue turns it
//! into rules stored in the history, catch-up scans, exactly-once across crashes and
//! backpressure.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use notify_debouncer_full::notify::{EventKind, RecursiveMode};
use pixelflow_engine::CancelToken;
use serde_json::json;

use crate::error::{Error, Result};
use crate::execution::{self, Finished};
use crate::workflow::Workflow;
use crate::App;

/// How many discovered files may wait for processing before the watcher waits in turn.
const QUEUE_DEPTH: usize = 1024;

/// Runs until `cancel` fires.
pub fn run(app: &App, workflow: &Workflow, folder: &Path, out: &Path, cancel: &CancelToken) -> Result<()> {
    std::fs::create_dir_all(folder).map_err(|e| Error::io(folder, e))?;
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    for r in execution::resume_orphans(app, cancel)? {
        tracing::info!(execution = %r.id, finished = ?r.finished, "resumed");
    }

    let (tx, rx) = mpsc::sync_channel::<PathBuf>(QUEUE_DEPTH);
    let mut debouncer = notify_debouncer_full::new_debouncer(Duration::from_millis(500), None, move |res: notify_debouncer_full::DebounceEventResult| {
        match res {
            Ok(events) => {
                for ev in events {
                    if matches!(ev.kind, EventKind::Create(_) | EventKind::Modify(_)) {
                        for p in &ev.paths {
                            if is_candidate(p) {
                                let _ = tx.send(p.clone());
                            }
                        }
                    }
                }
            }
            Err(errors) => {
                for e in errors {
                    tracing::warn!(error = %e, "watch error");
                }
            }
        }
    })
    .map_err(|e| Error::invalid("", format!("cannot start watching: {e}")))?;
    debouncer
        .watch(folder, RecursiveMode::Recursive)
        .map_err(|e| Error::invalid("", format!("cannot watch {}: {e}", folder.display())))?;
    tracing::info!(folder = %folder.display(), out = %out.display(), workflow = %workflow.name, "watching; Ctrl-C stops");

    let mut last: Option<PathBuf> = None;
    while !cancel.is_cancelled() {
        let Ok(path) = rx.recv_timeout(Duration::from_millis(200)) else { continue };
        // A debounced create is often followed by a modify of the same file.
        if last.as_ref() == Some(&path) || !path.is_file() {
            continue;
        }
        last = Some(path.clone());
        let input = json!({ "path": path, "outputDir": out });
        let result = execution::start(app, workflow, input, None, cancel)?;
        match &result.finished {
            Finished::Succeeded(_) => tracing::info!(execution = %result.id, path = %path.display(), "done"),
            Finished::Failed(f) | Finished::TimedOut(f) => tracing::warn!(execution = %result.id, path = %path.display(), error = %f, "failed"),
            Finished::Interrupted => break,
        }
    }
    Ok(())
}

/// Hidden files, partial downloads and temporary files are never picked up.
fn is_candidate(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else { return false };
    !(name.starts_with('.') || name.ends_with(".part") || name.ends_with(".crdownload") || name.ends_with(".tmp") || name.ends_with('~'))
}
