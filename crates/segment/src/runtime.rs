//! ONNX Runtime: finding the shared library, loading it once (ort's `load-dynamic`), and one
//! session per model for the whole process.
//!
//! The library is looked for in this order ([`library_candidates`]):
//! 1. `ORT_DYLIB_PATH` (the file itself);
//! 2. next to the `pixelflow` executable (`libonnxruntime.so*`, also in `lib/`);
//! 3. an installed `onnxruntime` Python wheel, which ships the library as
//!    `onnxruntime/capi/libonnxruntime.so.<version>`: in `$VIRTUAL_ENV`, Pixelflow's venvs
//!    (`~/.cache/pixelflow/venv`, `~/.cache/pixelflow/test-venv`), the user's and the system's
//!    site-packages.
//!
//! Nothing is downloaded at build or run time. A library that is found but cannot be loaded
//! (too old: ort needs 1.31 or newer) is reported with the others in the
//! `Pixelflow.OnnxRuntimeMissing` message, which says how to install one.
//!
//! Sessions are cached per model file and execution provider; which provider a model gets is
//! the step's `device`/`provider` choice against what the library offers ([`crate::provider`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use ort::environment::Environment;
use ort::session::builder::{AutoDevicePolicy, GraphOptimizationLevel};
use ort::session::{OutputSelector, RunOptions, Session};
use ort::value::{TensorRef, ValueType};

use crate::error::{Error, Result};
use crate::manifest::{Layout, Located, Manifest, Optimization};
use crate::provider::{self, Provider, Selection};

/// How to install ONNX Runtime, for error messages and `doctor`.
pub const INSTALL_HINT: &str = "install it with `python3 -m venv ~/.cache/pixelflow/venv && ~/.cache/pixelflow/venv/bin/pip install onnxruntime` \
(found there automatically), or set ORT_DYLIB_PATH to a libonnxruntime.so of version 1.31 or newer";

/// The loaded ONNX Runtime.
pub struct Runtime {
    pub library: PathBuf,
    pub version: String,
    environment: Environment,
}

static RUNTIME: Mutex<Option<Arc<Runtime>>> = Mutex::new(None);

/// The ONNX Runtime of this process, loaded on first use. A failure is not remembered: a later
/// call looks again (so a long-running service picks up a runtime installed meanwhile).
pub fn runtime() -> Result<Arc<Runtime>> {
    let mut slot = RUNTIME.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(rt) = slot.as_ref() {
        return Ok(Arc::clone(rt));
    }
    let candidates = library_candidates();
    let mut tried = Vec::new();
    for path in &candidates {
        match ort::init_from(path) {
            Ok(builder) => {
                let environment = builder
                    .with_name("pixelflow")
                    .build()
                    .map_err(|e| Error::OnnxRuntimeMissing(format!("ONNX Runtime at {} failed to start: {e}", path.display())))?;
                let version = version_of(path);
                tracing::debug!(library = %path.display(), %version, "ONNX Runtime loaded");
                let rt = Arc::new(Runtime { library: path.clone(), version, environment });
                *slot = Some(Arc::clone(&rt));
                return Ok(rt);
            }
            Err(e) => tried.push(format!("{}: {e}", path.display())),
        }
    }
    let looked = if tried.is_empty() { "no libonnxruntime.so was found".to_string() } else { format!("none could be loaded ({})", tried.join("; ")) };
    Err(Error::OnnxRuntimeMissing(format!("ONNX Runtime is not installed: {looked}; {INSTALL_HINT}")))
}

/// The version, from the build info (`git-branch=rel-1.32.0`) or the file name.
fn version_of(path: &Path) -> String {
    let info = ort::info();
    if let Some(v) = info.split("rel-").nth(1).map(|s| s.split([',', ' ']).next().unwrap_or("")).filter(|v| !v.is_empty()) {
        return v.to_string();
    }
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    name.split(".so.").nth(1).map(str::to_string).unwrap_or_else(|| "unknown".to_string())
}

/// The library files that exist, in the documented search order (see the module documentation).
pub fn library_candidates() -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH").filter(|v| !v.is_empty()) {
        out.push(PathBuf::from(p));
    }
    if let Some(exe_dir) = std::env::current_exe().ok().and_then(|e| e.parent().map(Path::to_path_buf)) {
        out.extend(libraries_in(&exe_dir));
        out.extend(libraries_in(&exe_dir.join("lib")));
    }
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let mut prefixes: Vec<PathBuf> = Vec::new();
    if let Some(v) = std::env::var_os("VIRTUAL_ENV").filter(|v| !v.is_empty()) {
        prefixes.push(PathBuf::from(v));
    }
    if let Some(h) = &home {
        prefixes.push(h.join(".cache/pixelflow/venv"));
        prefixes.push(h.join(".cache/pixelflow/test-venv"));
        prefixes.push(h.join(".local"));
    }
    prefixes.push(PathBuf::from("/usr/local"));
    prefixes.push(PathBuf::from("/usr"));
    for prefix in prefixes {
        for site in site_packages(&prefix) {
            out.extend(libraries_in(&site.join("onnxruntime/capi")));
        }
    }
    out.dedup();
    out
}

/// `<prefix>/lib/python3*/{site,dist}-packages` and Debian's `<prefix>/lib/python3/dist-packages`.
fn site_packages(prefix: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(prefix.join("lib")) else { return out };
    let mut pythons: Vec<PathBuf> =
        entries.flatten().filter(|e| e.file_name().to_string_lossy().starts_with("python3")).map(|e| e.path()).collect();
    pythons.sort();
    for py in pythons.into_iter().rev() {
        for sub in ["site-packages", "dist-packages"] {
            let p = py.join(sub);
            if p.is_dir() {
                out.push(p);
            }
        }
    }
    out
}

/// `libonnxruntime.so` and its versioned names in `dir`, newest version first (the wheel ships
/// only `libonnxruntime.so.1.x.y`).
fn libraries_in(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut libs: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            (name == "libonnxruntime.so" || name.starts_with("libonnxruntime.so.")) && p.is_file()
        })
        .collect();
    libs.sort_by_key(|p| std::cmp::Reverse(version_key(p)));
    libs
}

fn version_key(p: &Path) -> Vec<u32> {
    let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    name.split(".so").nth(1).unwrap_or("").split('.').filter_map(|s| s.parse().ok()).collect()
}

/// ONNX Runtime's names of the execution providers the loaded library offers (loading it
/// first), most preferred first: `["AzureExecutionProvider", "CPUExecutionProvider"]` for the
/// `onnxruntime` wheel, TensorRT and CUDA added by `onnxruntime-gpu`. Offered is not usable: a
/// GPU provider still needs its driver and libraries, which creating a session finds out.
pub fn available_providers() -> Result<Vec<String>> {
    let rt = runtime()?;
    provider::offered_by_loaded_library()
        .map_err(|e| Error::OnnxRuntimeMissing(format!("ONNX Runtime at {} cannot list its execution providers: {e}", rt.library.display())))
}

/// A loaded model: its manifest, the execution provider its session runs on, and the session.
/// Shared by every task that uses it with that provider.
pub struct Model {
    pub manifest: Manifest,
    pub path: PathBuf,
    pub provider: Provider,
    session: Mutex<Session>,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model").field("name", &self.manifest.name).field("path", &self.path).field("provider", &self.provider).finish_non_exhaustive()
    }
}

/// A model as a step asked for it.
#[derive(Debug)]
pub struct Loaded {
    pub model: Arc<Model>,
    /// Why `auto` (or `gpu`) runs the model on another provider than the first it tried (an
    /// offered provider that failed to start, with ONNX Runtime's reason).
    pub fallback: Option<String>,
}

#[derive(Default)]
struct Cache {
    /// One session per model (its manifest, canonical path) and provider.
    sessions: HashMap<(PathBuf, Provider), Arc<Model>>,
    /// The provider each model got for each choice, with the fallback reason: decided once per
    /// process, so a provider that cannot start is not tried again for every image.
    chosen: HashMap<(PathBuf, Selection), (Provider, Option<String>)>,
}

static MODELS: OnceLock<Mutex<Cache>> = OnceLock::new();

/// The model of this manifest on the execution provider `selection` picks among those the
/// library offers, loaded (and checked) once per process and provider; later calls get the
/// same session. A model that fails to load is not remembered, so fixing the file and retrying
/// works. Under `auto`, an offered accelerator that fails to start leaves the model on the next
/// one, at last the CPU, with a warning; asked for explicitly, it is
/// [`Error::ProviderUnavailable`].
pub fn model(located: &Located, selection: Selection) -> Result<Loaded> {
    load(located, selection, None)
}

/// [`model`], with `offered` standing for what the library offers when given (tests make an
/// accelerator look offered, to see it fail to start).
pub(crate) fn load(located: &Located, selection: Selection, offered: Option<Vec<String>>) -> Result<Loaded> {
    let manifest = &located.manifest;
    let path = located.model_path.clone().ok_or_else(|| Error::ModelNotFound {
        model: manifest.name.clone(),
        message: format!(
            "its file {} is not installed (looked beside {} and in the model folders); `bash models/install.sh` installs the IS-Net models",
            manifest.file,
            located.manifest_path.display()
        ),
    })?;
    let key = std::fs::canonicalize(&located.manifest_path).unwrap_or_else(|_| located.manifest_path.clone());
    let models = MODELS.get_or_init(Default::default);
    // Loading under the lock: two tasks wanting the same model wait for one load.
    let mut cache = models.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((provider, fallback)) = cache.chosen.get(&(key.clone(), selection)) {
        if let Some(m) = cache.sessions.get(&(key.clone(), *provider)) {
            return Ok(Loaded { model: Arc::clone(m), fallback: fallback.clone() });
        }
    }
    let rt = runtime()?;
    let offered = match offered {
        Some(o) => o,
        None => available_providers()?,
    };
    let candidates = selection.candidates(&offered, &rt.library)?;
    verify_file(manifest, &path)?;
    let mismatch = |message: String| Error::ModelMismatch { model: manifest.name.clone(), path: path.clone(), message };
    // A provider that fails to start is `Err` (the next one is tried); a model that is not what
    // its manifest says is `Ok(Err)`, which no other provider changes.
    let opened = provider::first_that_opens(&candidates, |p| {
        if let Some(m) = cache.sessions.get(&(key.clone(), p)) {
            return Ok(Ok(Arc::clone(m)));
        }
        let session = open_session(&rt, manifest, &path, p)?;
        if let Err(message) = check_signature(manifest, &session) {
            return Ok(Err(mismatch(message)));
        }
        tracing::info!(model = %manifest.name, path = %path.display(), provider = %p, optimization = ?manifest.optimization, "segmentation model loaded");
        let model = Arc::new(Model { manifest: manifest.clone(), path: path.clone(), provider: p, session: Mutex::new(session) });
        cache.sessions.insert((key.clone(), p), Arc::clone(&model));
        Ok(Ok(model))
    });
    let failed = |failures: &[(Provider, String)]| failures.iter().map(|(p, e)| format!("{p} failed to start: {e}")).collect::<Vec<_>>().join("; ");
    match opened {
        Ok((p, Ok(model), failures)) => {
            let fallback = (!failures.is_empty()).then(|| failed(&failures));
            if let Some(why) = &fallback {
                tracing::warn!(model = %manifest.name, provider = %p, reason = %why, "segment: an offered execution provider could not start; the model runs on {p}");
            }
            cache.chosen.insert((key, selection), (p, fallback.clone()));
            Ok(Loaded { model, fallback })
        }
        Ok((_, Err(e), _)) => Err(e),
        // The CPU's failure is the model's own.
        Err(failures) if candidates.contains(&Provider::Cpu) => {
            let cpu = failures.iter().find(|(p, _)| *p == Provider::Cpu).map_or_else(String::new, |(_, e)| e.clone());
            Err(mismatch(format!("ONNX Runtime cannot load it: {cpu}")))
        }
        // An accelerator asked for explicitly: its failure, unless the model fails on the CPU too.
        Err(failures) => match open_session(&rt, manifest, &path, Provider::Cpu) {
            Err(e) => Err(mismatch(format!("ONNX Runtime cannot load it: {e}"))),
            Ok(_) => Err(Error::ProviderUnavailable {
                provider: match selection {
                    Selection::Only(p) => format!("execution provider {p}"),
                    _ => "device gpu".to_string(),
                },
                message: format!(
                    "the ONNX Runtime at {} offers it, but {} (the model itself loads on the CPU); check the device's driver and libraries, or use device: auto to run on the CPU when it cannot start",
                    rt.library.display(),
                    failed(&failures)
                ),
            }),
        },
    }
}

/// A session for the model on `provider`, with ONNX Runtime's message when it cannot be had.
fn open_session(rt: &Runtime, manifest: &Manifest, path: &Path, provider: Provider) -> std::result::Result<Session, String> {
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let level = match manifest.optimization {
        Optimization::Basic => GraphOptimizationLevel::Level1,
        Optimization::Extended => GraphOptimizationLevel::Level2,
        Optimization::All => GraphOptimizationLevel::All,
    };
    // Python's `InferenceSession` with the CPU provider, compared option by option in ORT's
    // verbose log (intra-op threads = cores, sequential execution, memory arena and patterns),
    // with three differences:
    // - no automatic device-selection policy: ort's builder asks for "max efficiency", which
    //   scans the PCI bus for accelerators at each session; Python sets none (a provider
    //   registered below takes precedence over any policy anyway);
    // - the manifest's optimisation level (`extended` for the quantised IS-Net: the same
    //   output, bit for bit, without the NCHWc reorders around each MaxPool);
    // - intra-op threads that wait without spinning: as fast here, and they leave the cores
    //   to another task's decoding and encoding (`--jobs 2`) and to the rest of the desktop
    //   instead of burning them between operators.
    let mut builder = Session::builder(&rt.environment)
        .and_then(|b| b.with_auto_device(AutoDevicePolicy::Default).map_err(Into::into))
        .and_then(|b| b.with_optimization_level(level).map_err(Into::into))
        .and_then(|b| b.with_intra_threads(threads).map_err(Into::into))
        .and_then(|b| b.with_inter_threads(1).map_err(Into::into))
        .and_then(|b| b.with_intra_op_spinning(false).map_err(Into::into))
        .map_err(|e| e.to_string())?;
    provider::register(provider, &mut builder).map_err(|e| e.to_string())?;
    builder.commit_from_file(path).map_err(|e| e.to_string())
}

/// The file is the one the manifest names: its size and sha256, when the manifest gives them.
fn verify_file(manifest: &Manifest, path: &Path) -> Result<()> {
    let mismatch = |message: String| Error::ModelMismatch { model: manifest.name.clone(), path: path.to_path_buf(), message };
    if let Some(bytes) = manifest.bytes {
        let len = std::fs::metadata(path).map_err(|e| mismatch(e.to_string()))?.len();
        if len != bytes {
            return Err(mismatch(format!("the file is {len} bytes, the manifest says {bytes} (an incomplete or different model)")));
        }
    }
    if let Some(expected) = &manifest.sha256 {
        use sha2::{Digest, Sha256};
        let mut file = std::fs::File::open(path).map_err(|e| mismatch(e.to_string()))?;
        let mut hasher = Sha256::new();
        std::io::copy(&mut file, &mut hasher).map_err(|e| mismatch(e.to_string()))?;
        let actual: String = hasher.finalize().iter().map(|b| format!("{b:02x}")).collect();
        if !actual.eq_ignore_ascii_case(expected) {
            return Err(mismatch(format!("its sha256 is {actual}, the manifest says {expected}")));
        }
    }
    Ok(())
}

/// The session's inputs and outputs are what the manifest describes: one float tensor input of
/// the manifest's name and layout (fixed sizes equal to the manifest's, or dynamic), and a float
/// output of the manifest's name whose last two dimensions can be the mask.
fn check_signature(manifest: &Manifest, session: &Session) -> std::result::Result<(), String> {
    let spec = &manifest.input;
    let names = |outlets: &[ort::value::Outlet]| outlets.iter().map(|o| format!("'{}'", o.name())).collect::<Vec<_>>().join(", ");
    let inputs = session.inputs();
    let input = inputs
        .iter()
        .find(|i| i.name() == spec.name)
        .ok_or_else(|| format!("it has no input '{}' (its inputs: {})", spec.name, names(inputs)))?;
    if inputs.len() != 1 {
        return Err(format!("it takes {} inputs ({}); a segmentation model takes one image", inputs.len(), names(inputs)));
    }
    let (ty, shape) = match input.dtype() {
        ValueType::Tensor { ty, shape, .. } => (*ty, shape.to_vec()),
        other => return Err(format!("input '{}' is {other}, not a tensor", spec.name)),
    };
    if ty != ort::value::TensorElementType::Float32 {
        return Err(format!("input '{}' is a tensor of {ty}, the manifest feeds float32", spec.name));
    }
    let expected: [i64; 4] = match spec.layout {
        Layout::Nchw => [1, 3, i64::from(spec.height), i64::from(spec.width)],
        Layout::Nhwc => [1, i64::from(spec.height), i64::from(spec.width), 3],
    };
    let fits = shape.len() == 4 && shape.iter().zip(expected).all(|(&d, e)| d < 0 || d == e);
    if !fits {
        return Err(format!(
            "input '{}' has shape {} but the manifest describes {} ({:?} layout, {}x{})",
            spec.name,
            show_shape(&shape),
            show_shape(&expected),
            spec.layout,
            spec.width,
            spec.height
        ));
    }
    let outputs = session.outputs();
    let output = outputs
        .iter()
        .find(|o| o.name() == manifest.output.name)
        .ok_or_else(|| format!("it has no output '{}' (its outputs: {})", manifest.output.name, names(outputs)))?;
    match output.dtype() {
        ValueType::Tensor { ty: ort::value::TensorElementType::Float32, shape, .. } => {
            let known: Vec<i64> = shape.iter().copied().collect();
            let hw = known.len() >= 2 && {
                let (h, w) = (known[known.len() - 2], known[known.len() - 1]);
                (h < 0 || h == i64::from(spec.height)) && (w < 0 || w == i64::from(spec.width))
            };
            let single = known.iter().rev().skip(2).all(|&d| d <= 1);
            if !hw || !single {
                return Err(format!(
                    "output '{}' has shape {}, not one {}x{} map",
                    manifest.output.name,
                    show_shape(&known),
                    spec.width,
                    spec.height
                ));
            }
        }
        other => return Err(format!("output '{}' is {other}, not a float32 tensor", manifest.output.name)),
    }
    Ok(())
}

fn show_shape(shape: &[i64]) -> String {
    let dims: Vec<String> = shape.iter().map(|d| if *d < 0 { "?".to_string() } else { d.to_string() }).collect();
    format!("[{}]", dims.join(","))
}

impl Model {
    /// Runs the model on a prepared input tensor (the manifest's layout and size) and hands its
    /// output map, `height * width` floats as the model gave them, to `read`, in place: the
    /// input is given to ONNX Runtime without a copy and the output is read where ONNX
    /// Runtime wrote it (the session stays locked until `read` returns, so keep it short).
    pub fn infer<R>(&self, input: &[f32], read: impl FnOnce(&[f32]) -> R) -> Result<R> {
        let spec = &self.manifest.input;
        let (h, w) = (spec.height as usize, spec.width as usize);
        let shape = match spec.layout {
            Layout::Nchw => [1, 3, h, w],
            Layout::Nhwc => [1, h, w, 3],
        };
        let failed = |message: String| Error::Inference { model: self.manifest.name.clone(), message };
        let tensor = TensorRef::from_array_view((shape, input)).map_err(|e| failed(e.to_string()))?;
        // Only the mask: models such as IS-Net have side outputs we would copy for nothing.
        let options = RunOptions::new()
            .map_err(|e| failed(e.to_string()))?
            .with_outputs(OutputSelector::no_default().with(self.manifest.output.name.clone()));
        let mut session = self.session.lock().unwrap_or_else(|p| p.into_inner());
        let outputs = session.run_with_options(ort::inputs![tensor], &options).map_err(|e| failed(e.to_string()))?;
        let value = outputs.get(&self.manifest.output.name).ok_or_else(|| failed(format!("no output '{}'", self.manifest.output.name)))?;
        let (shape, data) = value.try_extract_tensor::<f32>().map_err(|e| failed(e.to_string()))?;
        if data.len() != h * w {
            return Err(failed(format!("output '{}' has shape {}, not one {w}x{h} map", self.manifest.output.name, show_shape(shape))));
        }
        Ok(read(data))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wheel_libraries_are_found_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let capi = dir.path().join("lib/python3.11/site-packages/onnxruntime/capi");
        std::fs::create_dir_all(&capi).unwrap();
        for name in ["libonnxruntime.so.1.9.0", "libonnxruntime.so.1.32.0", "libonnxruntime_providers_shared.so", "other.so"] {
            std::fs::write(capi.join(name), b"").unwrap();
        }
        let sites = site_packages(dir.path());
        assert_eq!(sites.len(), 1);
        let libs = libraries_in(&sites[0].join("onnxruntime/capi"));
        let names: Vec<_> = libs.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
        assert_eq!(names, ["libonnxruntime.so.1.32.0", "libonnxruntime.so.1.9.0"]);
    }
}
