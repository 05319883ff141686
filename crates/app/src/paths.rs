//! Where Pixelflow keeps its files: the SQLite history, the default watch and output folders,
//! and the bundled workflows. Everything lives under one data directory: `--data-dir`, else
//! `PIXELFLOW_DATA_DIR`, else the platform's user data dir (`~/.local/share/pixelflow` on Linux).

use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    /// The platform's default data directory.
    pub fn default_root() -> Option<PathBuf> {
        directories::ProjectDirs::from("", "", "pixelflow").map(|d| d.data_dir().to_path_buf())
    }

    pub fn new(root: impl Into<PathBuf>) -> Self {
        DataDir { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn database(&self) -> PathBuf {
        self.root.join("history.sqlite")
    }

    pub fn watch_dir(&self) -> PathBuf {
        self.root.join("watch")
    }

    pub fn output_dir(&self) -> PathBuf {
        self.root.join("output")
    }

    /// Creates the directory tree if missing.
    pub fn ensure(&self) -> std::io::Result<()> {
        for dir in [self.root.clone(), self.watch_dir(), self.output_dir()] {
            std::fs::create_dir_all(dir)?;
        }
        Ok(())
    }
}
