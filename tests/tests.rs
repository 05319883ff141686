//! The integration tests: one binary, a module per area.

mod batch;
mod cli;
mod crash;
mod fidelity;
mod gpu;
mod imaging;
mod quality;
mod segment;
mod sync;
mod util;
mod watch;
mod workflows;
