//! The `pixelflow-desktop` binary: the window; everything is in the library.

// No console window on Windows release builds.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

/// The allocator the `pixelflow` CLI uses (see crates/cli/main.rs): the app runs the same engine.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    pixelflow_desktop::run()
}
