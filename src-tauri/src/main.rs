//! The `pixelflow-desktop` binary: the window; everything is in the library.

// No console window on Windows release builds.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

fn main() -> std::process::ExitCode {
    pixelflow_desktop::run()
}
