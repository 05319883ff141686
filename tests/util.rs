//! Shared helpers of the integration tests: a throwaway data dir per test and a way to run the
//! real `pixelflow` binary the way users do.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

/// A test's own directory (removed when dropped) with a data dir inside.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
}

impl Sandbox {
    pub fn new() -> Sandbox {
        Sandbox { dir: tempfile::tempdir().expect("temp dir") }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Writes a JSON file into the sandbox and returns its path.
    pub fn json(&self, name: &str, value: &Value) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, serde_json::to_vec_pretty(value).expect("json")).expect("write");
        p
    }

    /// The `pixelflow` command on this sandbox's data dir, with the test-only steps enabled.
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_pixelflow"));
        c.arg("--data-dir")
            .arg(self.data_dir())
            .env("PIXELFLOW_TEST_STEPS", "1")
            .env("PIXELFLOW_LOG", "warn")
            .stdin(Stdio::null());
        c
    }

    /// Runs `pixelflow ARGS...` to its end.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().expect("run pixelflow")
    }
}

pub fn stdout_json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A child process that is killed when dropped, so a failing test never leaves a `pixelflow`
/// waiting forever behind it.
pub struct KillOnDrop(pub Option<std::process::Child>);

impl KillOnDrop {
    pub fn spawn(mut cmd: Command) -> KillOnDrop {
        KillOnDrop(Some(cmd.spawn().expect("spawn pixelflow")))
    }

    pub fn child(&mut self) -> &mut std::process::Child {
        self.0.as_mut().expect("child present")
    }

    /// Waits for the child and hands over its output.
    pub fn wait_with_output(mut self) -> Output {
        self.0.take().expect("child present").wait_with_output().expect("wait for pixelflow")
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
