//! The integration tests: one binary, a module per area.

mod batch;
mod cli;
mod crash;
mod fidelity;
mod imaging;
mod quality;
mod util;
mod watch;
mod workflows;
