//! The integration tests: one binary, a module per area.

mod cli;
mod crash;
mod fidelity;
mod imaging;
mod util;
mod workflows;
