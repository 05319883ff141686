//! Model manifests: a JSON file next to a model that says how to feed it and read it, so adding
//! a segmentation model (U2-Net, IS-Net, BiRefNet, MODNet...) is a manifest, not code.
//!
//! ```json
//! { "name": "isnet-general-small", "file": "isnet-general-small.onnx",
//!   "sha256": "...", "bytes": 44342436,
//!   "input":  { "name": "input", "width": 1024, "height": 1024, "layout": "nchw",
//!               "mean": [128, 128, 128], "std": [256, 256, 256], "resize": "bilinear" },
//!   "output": { "name": "output", "activation": "none", "normalize": "none", "resize": "bilinear" },
//!   "minSize": 16, "optimization": "extended" }
//! ```
//!
//! The input is RGB, resized (stretched) to `width` x `height` with `resize`, each channel
//! normalised as `(px - mean) / std` with `px` in 0..=255 (ImageNet's form is
//! `mean = 255 * [0.485, 0.456, 0.406]`, `std = 255 * [0.229, 0.224, 0.225]`). The output is
//! a single-channel map of `width` x `height` (shape `[1,1,H,W]`, `[1,H,W]` or `[H,W]`):
//! `activation: "sigmoid"` for logits, `normalize: "minmax"` to stretch it to 0..1 (U2-Net's
//! published post-processing); it is then clamped to 0..1 and quantised to 8 bits.
//! `optimization` (`all` by default, `extended`, `basic`) is ONNX Runtime's graph optimisation
//! level for the model ([`Optimization`]).
//!
//! Where manifests and model files are looked for, in order: [`model_dirs`].

use std::path::{Path, PathBuf};

use pixelflow_imaging::resize::Filter;
use serde::Deserialize;

use crate::error::{Error, Result};

/// The environment variable naming extra model folders (`:`-separated), searched first.
pub const MODELS_DIR_ENV: &str = "PIXELFLOW_MODELS_DIR";

/// The model the step uses when a workflow names none.
pub const DEFAULT_MODEL: &str = "isnet-general-small";

/// The largest model input side we accept from a manifest (a 16k x 16k float tensor is 3 GB).
const MAX_INPUT_SIDE: u32 = 8192;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    Nchw,
    Nhwc,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    /// The model already outputs 0..1.
    #[default]
    None,
    Sigmoid,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Normalize {
    #[default]
    None,
    /// `(x - min) / (max - min)` over the whole map.
    Minmax,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InputSpec {
    pub name: String,
    pub width: u32,
    pub height: u32,
    pub layout: Layout,
    pub mean: [f32; 3],
    pub std: [f32; 3],
    #[serde(default = "bilinear")]
    pub resize: Filter,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OutputSpec {
    pub name: String,
    #[serde(default)]
    pub activation: Activation,
    #[serde(default)]
    pub normalize: Normalize,
    /// How the mask is resized back to the image.
    #[serde(default = "bilinear")]
    pub resize: Filter,
}

/// How much of ONNX Runtime's graph optimisation a model gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Optimization {
    /// Constant folding and redundant-node removal only.
    Basic,
    /// Also the fusions (ORT_ENABLE_EXTENDED), without the NCHWc layout pass. That pass speeds
    /// up float convolutions; on a model without them (a uint8-quantised one, all
    /// ConvInteger) it only wraps each MaxPool in two reorders.
    Extended,
    /// Everything ONNX Runtime has (ORT_ENABLE_ALL, Python's default).
    #[default]
    All,
}

fn bilinear() -> Filter {
    Filter::Bilinear
}

fn default_min_size() -> u32 {
    16
}

/// A model manifest as written in its JSON file.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Manifest {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// The `.onnx` file, relative to the manifest's folder (or found in another model folder).
    pub file: String,
    /// Checked when the model loads, if given.
    pub sha256: Option<String>,
    pub bytes: Option<u64>,
    /// Where the weights come from and under which terms (shown by `doctor`).
    #[serde(default)]
    pub license: String,
    pub input: InputSpec,
    pub output: OutputSpec,
    /// The smallest image side accepted, in pixels.
    #[serde(default = "default_min_size")]
    pub min_size: u32,
    /// ONNX Runtime's graph optimisation level for this model (default `all`).
    #[serde(default)]
    pub optimization: Optimization,
}

/// A manifest with where it was found and where its model file is (if installed).
#[derive(Debug, Clone)]
pub struct Located {
    pub manifest: Manifest,
    pub manifest_path: PathBuf,
    /// `None` when the `.onnx` file is in none of the model folders.
    pub model_path: Option<PathBuf>,
}

/// The folders searched for manifests and model files, in order:
/// 1. each folder of `PIXELFLOW_MODELS_DIR` (`:`-separated);
/// 2. `$XDG_CACHE_HOME/pixelflow/models` (else `~/.cache/pixelflow/models`), where
///    `models/install.sh` puts the weights it assembles;
/// 3. `models/` next to the `pixelflow` executable (a bundle);
/// 4. `models/` of the source tree this build came from (a developer's checkout).
pub fn model_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(list) = std::env::var_os(MODELS_DIR_ENV) {
        dirs.extend(std::env::split_paths(&list).filter(|p| !p.as_os_str().is_empty()));
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")));
    if let Some(cache) = cache {
        dirs.push(cache.join("pixelflow").join("models"));
    }
    if let Some(exe_dir) = std::env::current_exe().ok().and_then(|e| e.parent().map(Path::to_path_buf)) {
        dirs.push(exe_dir.join("models"));
    }
    dirs.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models"));
    dirs
}

/// Finds a model by name (`isnet-general-small`: `<dir>/<name>.json` in [`model_dirs`]) or by
/// the path of its manifest (anything with a `/` or ending in `.json`).
pub fn locate(model: &str) -> Result<Located> {
    let by_path = model.contains('/') || model.ends_with(".json");
    let manifest_path = if by_path {
        let p = PathBuf::from(model);
        if !p.is_file() {
            return Err(Error::ModelNotFound { model: model.to_string(), message: "no such manifest file".to_string() });
        }
        p
    } else {
        check_name(model)?;
        let dirs = model_dirs();
        dirs.iter().map(|d| d.join(format!("{model}.json"))).find(|p| p.is_file()).ok_or_else(|| Error::ModelNotFound {
            model: model.to_string(),
            message: format!(
                "no manifest {model}.json in the model folders ({}); models/README.md says how to install models",
                dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", ")
            ),
        })?
    };
    let manifest = read(&manifest_path)?;
    let model_path = find_file(&manifest, &manifest_path);
    Ok(Located { manifest, manifest_path, model_path })
}

/// Every manifest in the model folders (the first of each name), for `doctor`.
pub fn available() -> Vec<Located> {
    let mut found: Vec<Located> = Vec::new();
    for dir in model_dirs() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|e| e == "json")).collect();
        paths.sort();
        for path in paths {
            let Ok(manifest) = read(&path) else { continue };
            if found.iter().any(|l| l.manifest.name == manifest.name) {
                continue;
            }
            let model_path = find_file(&manifest, &path);
            found.push(Located { manifest, manifest_path: path, model_path });
        }
    }
    found
}

/// Reads and checks a manifest.
pub fn read(path: &Path) -> Result<Manifest> {
    let bad = |message: String| Error::InvalidManifest { path: path.to_path_buf(), message };
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let m: Manifest = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let i = &m.input;
    if !(1..=MAX_INPUT_SIDE).contains(&i.width) || !(1..=MAX_INPUT_SIDE).contains(&i.height) {
        return Err(bad(format!("input.width and input.height must be 1 to {MAX_INPUT_SIDE}")));
    }
    if i.std.iter().any(|s| !s.is_finite() || *s == 0.0) || i.mean.iter().any(|v| !v.is_finite()) {
        return Err(bad("input.mean must be finite and input.std finite and non-zero".to_string()));
    }
    let file = Path::new(&m.file);
    if m.file.is_empty() || file.is_absolute() || file.components().any(|c| !matches!(c, std::path::Component::Normal(_))) {
        return Err(bad(format!("file '{}' must be a relative path inside the model folder", m.file)));
    }
    if let Some(h) = &m.sha256 {
        if h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad("sha256 must be 64 hex digits".to_string()));
        }
    }
    Ok(m)
}

/// The model file: next to its manifest, else in another model folder.
fn find_file(manifest: &Manifest, manifest_path: &Path) -> Option<PathBuf> {
    let beside = manifest_path.parent().map(|d| d.join(&manifest.file));
    beside.into_iter().chain(model_dirs().into_iter().map(|d| d.join(&manifest.file))).find(|p| p.is_file())
}

fn check_name(model: &str) -> Result<()> {
    let ok = !model.is_empty()
        && model.len() <= 100
        && !model.starts_with('.')
        && model.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!("model '{model}' is neither a model name (letters, digits, '-', '_', '.') nor a path to a .json manifest")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo_models() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models")
    }

    #[test]
    fn the_committed_manifests_parse() {
        for name in ["isnet-general-small.json", "isnet-general-medium.json", "test/tiny-red.json", "test/tiny-nhwc.json"] {
            let m = read(&repo_models().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(m.input.layout, Layout::Nchw, "{name}");
        }
        let m = read(&repo_models().join("isnet-general-small.json")).unwrap();
        assert_eq!((m.input.width, m.input.height, m.input.mean, m.input.std), (1024, 1024, [128.0; 3], [256.0; 3]));
        assert_eq!((m.output.name.as_str(), m.output.activation, m.output.resize), ("output", Activation::None, Filter::Bilinear));
        assert_eq!(m.optimization, Optimization::Extended);
        assert_eq!(read(&repo_models().join("isnet-general-medium.json")).unwrap().optimization, Optimization::All);
    }

    #[test]
    fn locates_by_path_and_refuses_bad_names_and_manifests() {
        let tiny = repo_models().join("test/tiny-red.json");
        let l = locate(tiny.to_str().unwrap()).unwrap();
        assert_eq!(l.manifest.name, "tiny-red");
        assert!(l.model_path.unwrap().ends_with("tiny-red.onnx"));

        assert!(matches!(locate("../etc/passwd"), Err(Error::ModelNotFound { .. })));
        assert!(matches!(locate("a b"), Err(Error::InvalidParameters(_))));
        let e = locate("no-such-model").unwrap_err();
        assert!(matches!(e, Error::ModelNotFound { .. }) && e.to_string().contains("no-such-model.json"), "{e}");

        let dir = tempfile::tempdir().unwrap();
        let write = |text: &str| {
            let p = dir.path().join("m.json");
            std::fs::write(&p, text).unwrap();
            p
        };
        let good = r#"{"name":"m","file":"m.onnx","input":{"name":"input","width":8,"height":8,"layout":"nchw","mean":[0,0,0],"std":[1,1,1]},"output":{"name":"o"}}"#;
        assert!(read(&write(good)).is_ok());
        for (bad, says) in [
            (good.replace("m.onnx", "../m.onnx"), "relative path"),
            (good.replace(r#""std":[1,1,1]"#, r#""std":[1,0,1]"#), "non-zero"),
            (good.replace(r#""width":8"#, r#""width":0"#), "input.width"),
            (good.replace("nchw", "chw"), "unknown variant"),
            (good.replace(r#""name":"o""#, r#""name":"o","sigmoid":true"#), "unknown field"),
            (good.replace(r#""output":{"name":"o"}"#, r#""output":{"name":"o"},"optimization":"max""#), "unknown variant"),
        ] {
            let e = read(&write(&bad)).unwrap_err();
            assert!(matches!(e, Error::InvalidManifest { .. }) && e.to_string().contains(says), "{bad}: {e}");
        }
    }
}
