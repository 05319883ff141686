//! The facade of Pixelflow: the only functions the CLI, the desktop shell and the integration
//! tests call. It wires the engine to the SQLite history, the step registry and the clock.

pub mod batch;
pub mod desktop;
pub mod doctor;
pub mod error;
pub mod execution;
pub mod export;
pub mod hashing;
pub mod paths;
pub mod profiles;
pub mod steps;
pub mod watch;
pub mod workflow;

use std::sync::Arc;

use pixelflow_engine::{Clock, Journal, StepRegistry, SystemClock};
use pixelflow_history::History;

pub use error::{Error, Result};
pub use paths::DataDir;
pub use workflow::Workflow;

/// An opened data directory: the history database, the steps and the clock.
#[derive(Clone)]
pub struct App {
    data: DataDir,
    history: History,
    steps: StepRegistry,
    clock: Arc<dyn Clock>,
}

impl App {
    /// Opens (creating if needed) the data directory and its history database.
    pub fn open(data: DataDir) -> Result<App> {
        App::open_with_clock(data, Arc::new(SystemClock))
    }

    /// Like [`App::open`] with another clock (tests use a manual one).
    pub fn open_with_clock(data: DataDir, clock: Arc<dyn Clock>) -> Result<App> {
        data.ensure().map_err(|e| Error::io(data.root(), e))?;
        let history = History::open(&data.database())?;
        let mut steps = steps::registry();
        // The sync step records every confirmed upload in this history.
        export::register_sync(&mut steps, &history);
        Ok(App { data, history, steps, clock })
    }

    pub fn data(&self) -> &DataDir {
        &self.data
    }

    pub fn history(&self) -> &History {
        &self.history
    }

    pub fn steps(&self) -> &StepRegistry {
        &self.steps
    }

    /// Replaces the step registry (tests add their own steps).
    pub fn with_steps(mut self, steps: StepRegistry) -> Self {
        self.steps = steps;
        self
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    pub fn journal(&self) -> Arc<dyn Journal> {
        Arc::new(self.history.clone())
    }
}
