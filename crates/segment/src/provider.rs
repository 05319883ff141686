//! Execution providers: which ones the loaded ONNX Runtime offers, the step's `device` and
//! `provider` parameters, and which providers a session tries, in which order.
//!
//! - `device: "auto"` (default): the first accelerator the library offers, in the order of
//!   [`AUTO_ORDER`] (CUDA, ROCm, MIGraphX, DirectML, CoreML), else the CPU. An accelerator that
//!   is offered but cannot start (no driver, no device, a missing CUDA library) makes that model
//!   run on the CPU, with a warning: `auto` never fails an image for it.
//! - `device: "gpu"`: one of those accelerators, or an error ([`Error::ProviderUnavailable`]).
//! - `device: "cpu"`: the CPU.
//! - `provider: "cuda" | "tensorrt" | "rocm" | "migraphx" | "directml" | "coreml" | "openvino" |
//!   "cpu"` (or ONNX Runtime's own name, `CUDAExecutionProvider`): exactly that one, or an
//!   error. TensorRT (engines built when the session is created: minutes) and OpenVINO (its
//!   default device is the CPU) are used only when named.
//!
//! What a library offers is what it was built with (`GetAvailableProviders`): the `onnxruntime`
//! wheel offers `CPUExecutionProvider` (and `AzureExecutionProvider`, a remote-inference
//! provider of no use here), `onnxruntime-gpu` adds TensorRT and CUDA. Offered is not usable:
//! CUDA still needs the CUDA and cuDNN libraries and a device, which only creating a session
//! finds out ([`crate::runtime::model`]).

use std::fmt;

use crate::error::{Error, Result};

/// An execution provider the step knows how to register.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Provider {
    Cpu,
    Cuda,
    TensorRt,
    Rocm,
    MiGraphX,
    DirectMl,
    CoreMl,
    OpenVino,
}

/// The accelerators `auto` and `gpu` try, in this order, when the library offers them.
pub const AUTO_ORDER: [Provider; 5] = [Provider::Cuda, Provider::Rocm, Provider::MiGraphX, Provider::DirectMl, Provider::CoreMl];

impl Provider {
    pub const ALL: [Provider; 8] = [
        Provider::Cpu,
        Provider::Cuda,
        Provider::TensorRt,
        Provider::Rocm,
        Provider::MiGraphX,
        Provider::DirectMl,
        Provider::CoreMl,
        Provider::OpenVino,
    ];

    /// ONNX Runtime's name (what `GetAvailableProviders` lists and Python calls it).
    pub fn ort_name(self) -> &'static str {
        match self {
            Provider::Cpu => "CPUExecutionProvider",
            Provider::Cuda => "CUDAExecutionProvider",
            Provider::TensorRt => "TensorrtExecutionProvider",
            Provider::Rocm => "ROCMExecutionProvider",
            Provider::MiGraphX => "MIGraphXExecutionProvider",
            Provider::DirectMl => "DmlExecutionProvider",
            Provider::CoreMl => "CoreMLExecutionProvider",
            Provider::OpenVino => "OpenVINOExecutionProvider",
        }
    }

    /// The name a workflow gives in `provider`.
    pub fn short_name(self) -> &'static str {
        match self {
            Provider::Cpu => "cpu",
            Provider::Cuda => "cuda",
            Provider::TensorRt => "tensorrt",
            Provider::Rocm => "rocm",
            Provider::MiGraphX => "migraphx",
            Provider::DirectMl => "directml",
            Provider::CoreMl => "coreml",
            Provider::OpenVino => "openvino",
        }
    }

    /// A short name or ONNX Runtime's name, in any case.
    pub fn parse(name: &str) -> Result<Provider> {
        Provider::ALL.into_iter().find(|p| name.eq_ignore_ascii_case(p.short_name()) || name.eq_ignore_ascii_case(p.ort_name())).ok_or_else(|| {
            let names: Vec<&str> = Provider::ALL.iter().map(|p| p.short_name()).collect();
            Error::invalid(format!("segment: unknown provider \"{name}\" (known: {}, or ONNX Runtime's name such as CUDAExecutionProvider)", names.join(", ")))
        })
    }

    pub fn is_accelerator(self) -> bool {
        self != Provider::Cpu
    }

    /// Where to get an ONNX Runtime that offers this provider.
    pub fn install_hint(self) -> &'static str {
        match self {
            Provider::Cpu => "every ONNX Runtime build offers it",
            Provider::Cuda | Provider::TensorRt => {
                "install the `onnxruntime-gpu` wheel instead of `onnxruntime` (`pip uninstall onnxruntime && pip install onnxruntime-gpu` in the venv; \
                 found there as before) with the CUDA and cuDNN libraries it needs on the loader's path (TensorRT: TensorRT's too)"
            }
            Provider::Rocm | Provider::MiGraphX => "use an ONNX Runtime 1.31 or newer built with ROCm/MIGraphX (AMD publishes such builds) through ORT_DYLIB_PATH",
            Provider::DirectMl => "DirectML is Windows-only (the `onnxruntime-directml` build)",
            Provider::CoreMl => "CoreML is macOS-only (the `onnxruntime` build for macOS)",
            Provider::OpenVino => "use an ONNX Runtime 1.31 or newer built with OpenVINO through ORT_DYLIB_PATH",
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.ort_name())
    }
}

/// Which providers a workflow allows: the step's `device` and `provider` parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Selection {
    /// The first offered accelerator of [`AUTO_ORDER`] that starts, else the CPU.
    #[default]
    Auto,
    /// An offered accelerator of [`AUTO_ORDER`] that starts, else an error.
    Gpu,
    /// Exactly this provider, else an error.
    Only(Provider),
}

impl Selection {
    /// From the step's `device` (`auto`, `gpu`, `cpu`) and `provider` parameters.
    pub fn parse(device: Option<&str>, provider: Option<&str>) -> Result<Selection> {
        let device = match device {
            None | Some("auto") => Selection::Auto,
            Some("gpu") => Selection::Gpu,
            Some("cpu") => Selection::Only(Provider::Cpu),
            Some(other) => {
                let hint = match Provider::parse(other) {
                    Ok(p) => format!(" (to ask for {}, give provider: \"{}\")", p.ort_name(), p.short_name()),
                    Err(_) => String::new(),
                };
                return Err(Error::invalid(format!("segment: device must be \"auto\", \"gpu\" or \"cpu\", got \"{other}\"{hint}")));
            }
        };
        let Some(name) = provider else { return Ok(device) };
        let provider = Provider::parse(name)?;
        match (device, provider.is_accelerator()) {
            (Selection::Only(Provider::Cpu), true) | (Selection::Gpu, false) => Err(Error::invalid(format!(
                "segment: provider \"{name}\" contradicts device \"{}\"",
                if provider.is_accelerator() { "cpu" } else { "gpu" }
            ))),
            _ => Ok(Selection::Only(provider)),
        }
    }

    /// The providers to try, in order, given what the library offers (ONNX Runtime's names).
    /// `auto` always ends with the CPU. An explicit choice the library does not offer is an
    /// error naming the library, what it offers and how to get the provider.
    pub fn candidates(self, offered: &[String], library: &std::path::Path) -> Result<Vec<Provider>> {
        let offers = |p: Provider| p == Provider::Cpu || offered.iter().any(|o| o == p.ort_name());
        let accelerators = AUTO_ORDER.into_iter().filter(|p| offers(*p));
        let not_offered = |asked: String, lacks: String, hint: &str| Error::ProviderUnavailable {
            provider: asked,
            message: format!(
                "the ONNX Runtime at {} {lacks} (it offers {}); {hint}",
                library.display(),
                if offered.is_empty() { "none".to_string() } else { offered.join(", ") }
            ),
        };
        match self {
            Selection::Auto => Ok(accelerators.chain([Provider::Cpu]).collect()),
            Selection::Gpu => {
                let found: Vec<Provider> = accelerators.collect();
                if found.is_empty() {
                    let known: Vec<&str> = AUTO_ORDER.iter().map(|p| p.ort_name()).collect();
                    return Err(not_offered(
                        "device gpu".to_string(),
                        format!("offers none of {}", known.join(", ")),
                        &format!("for CUDA, {}; or use device: auto, which runs on the CPU then", Provider::Cuda.install_hint()),
                    ));
                }
                Ok(found)
            }
            Selection::Only(p) if offers(p) => Ok(vec![p]),
            Selection::Only(p) => Err(not_offered(format!("execution provider {}", p.ort_name()), "does not offer it".to_string(), p.install_hint())),
        }
    }
}

/// Registers `provider` on a session builder, failing when ONNX Runtime refuses it (not built
/// with it, its shared library or its dependencies missing). The CPU needs nothing: ONNX Runtime
/// adds it to every session, and appending it explicitly would change its options (its arena).
pub(crate) fn register(provider: Provider, builder: &mut ort::session::builder::SessionBuilder) -> ort::Result<()> {
    use ort::ep::{self, ExecutionProvider};
    match provider {
        Provider::Cpu => Ok(()),
        Provider::Cuda => ep::CUDA::default().register(builder),
        Provider::TensorRt => ep::TensorRT::default().register(builder),
        Provider::Rocm => ep::ROCm::default().register(builder),
        Provider::MiGraphX => ep::MIGraphX::default().register(builder),
        Provider::DirectMl => ep::DirectML::default().register(builder),
        Provider::CoreMl => ep::CoreML::default().register(builder),
        Provider::OpenVino => ep::OpenVINO::default().register(builder),
    }
}

/// ONNX Runtime's names of the providers the library was built with, in its order (most
/// preferred first, `CPUExecutionProvider` last). The library must be loaded
/// ([`crate::runtime::available_providers`] loads it first).
pub(crate) fn offered_by_loaded_library() -> ort::Result<Vec<String>> {
    let api = ort::api();
    let mut list: *mut *mut std::ffi::c_char = std::ptr::null_mut();
    let mut len: std::ffi::c_int = 0;
    // SAFETY: GetAvailableProviders writes an array of `len` NUL-terminated strings that it
    // owns; they are copied before ReleaseAvailableProviders frees them, exactly once.
    unsafe {
        ort::Error::result_from_status((api.GetAvailableProviders)(&mut list, &mut len))?;
        if list.is_null() {
            return Ok(Vec::new());
        }
        let names = (0..usize::try_from(len).unwrap_or(0))
            .map(|i| *list.add(i))
            .filter(|p| !p.is_null())
            .map(|p| std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned())
            .collect();
        ort::Error::result_from_status((api.ReleaseAvailableProviders)(list, len))?;
        Ok(names)
    }
}

/// Providers that failed to open, each with its error, in the order they were tried.
pub(crate) type Failures<E> = Vec<(Provider, E)>;

/// Tries `candidates` in order with `open` until one opens: that one, its value and the
/// failures of those before it; or every failure when none opens.
pub(crate) fn first_that_opens<T, E>(candidates: &[Provider], mut open: impl FnMut(Provider) -> Result<T, E>) -> Result<(Provider, T, Failures<E>), Failures<E>> {
    let mut failures = Vec::new();
    for &p in candidates {
        match open(p) {
            Ok(value) => return Ok((p, value, failures)),
            Err(e) => failures.push((p, e)),
        }
    }
    Err(failures)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn offered(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parameters_parse_and_unknown_names_are_refused_clearly() {
        assert_eq!(Selection::parse(None, None).unwrap(), Selection::Auto);
        assert_eq!(Selection::parse(Some("auto"), None).unwrap(), Selection::Auto);
        assert_eq!(Selection::parse(Some("gpu"), None).unwrap(), Selection::Gpu);
        assert_eq!(Selection::parse(Some("cpu"), None).unwrap(), Selection::Only(Provider::Cpu));
        assert_eq!(Selection::parse(None, Some("cuda")).unwrap(), Selection::Only(Provider::Cuda));
        assert_eq!(Selection::parse(Some("gpu"), Some("TensorRT")).unwrap(), Selection::Only(Provider::TensorRt));
        assert_eq!(Selection::parse(None, Some("CUDAExecutionProvider")).unwrap(), Selection::Only(Provider::Cuda));
        assert_eq!(Selection::parse(Some("cpu"), Some("cpu")).unwrap(), Selection::Only(Provider::Cpu));
        for p in Provider::ALL {
            assert_eq!(Provider::parse(p.short_name()).unwrap(), p);
            assert_eq!(Provider::parse(p.ort_name()).unwrap(), p);
        }

        let message = |device: Option<&str>, provider: Option<&str>| {
            let e = Selection::parse(device, provider).unwrap_err();
            assert_eq!(e.asl_name(), "Pixelflow.InvalidParameters");
            e.to_string()
        };
        let m = message(None, Some("vulkan"));
        assert!(m.contains("unknown provider \"vulkan\"") && m.contains("cuda, tensorrt, rocm"), "{m}");
        let m = message(Some("npu"), None);
        assert!(m.contains("device must be \"auto\", \"gpu\" or \"cpu\", got \"npu\""), "{m}");
        let m = message(Some("cuda"), None);
        assert!(m.contains("give provider: \"cuda\""), "{m}");
        let m = message(Some("cpu"), Some("cuda"));
        assert!(m.contains("contradicts device \"cpu\""), "{m}");
        let m = message(Some("gpu"), Some("cpu"));
        assert!(m.contains("contradicts device \"gpu\""), "{m}");
    }

    #[test]
    fn candidates_follow_what_the_library_offers() {
        let lib = Path::new("/opt/ort/libonnxruntime.so.1.32.0");
        let cpu_wheel = offered(&["AzureExecutionProvider", "CPUExecutionProvider"]);
        let gpu_wheel = offered(&["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]);

        assert_eq!(Selection::Auto.candidates(&cpu_wheel, lib).unwrap(), [Provider::Cpu]);
        // TensorRT only when named: CUDA, then the CPU.
        assert_eq!(Selection::Auto.candidates(&gpu_wheel, lib).unwrap(), [Provider::Cuda, Provider::Cpu]);
        assert_eq!(Selection::Gpu.candidates(&gpu_wheel, lib).unwrap(), [Provider::Cuda]);
        assert_eq!(Selection::Only(Provider::TensorRt).candidates(&gpu_wheel, lib).unwrap(), [Provider::TensorRt]);
        assert_eq!(Selection::Only(Provider::Cpu).candidates(&gpu_wheel, lib).unwrap(), [Provider::Cpu]);
        // The CPU even where a (broken) list does not name it.
        assert_eq!(Selection::Only(Provider::Cpu).candidates(&[], lib).unwrap(), [Provider::Cpu]);
        let amd = offered(&["MIGraphXExecutionProvider", "ROCMExecutionProvider", "CPUExecutionProvider"]);
        assert_eq!(Selection::Auto.candidates(&amd, lib).unwrap(), [Provider::Rocm, Provider::MiGraphX, Provider::Cpu]);

        let e = Selection::Only(Provider::Cuda).candidates(&cpu_wheel, lib).unwrap_err();
        assert_eq!(e.asl_name(), "Pixelflow.ProviderUnavailable");
        let m = e.to_string();
        for says in ["CUDAExecutionProvider", "/opt/ort/libonnxruntime.so.1.32.0", "it offers AzureExecutionProvider, CPUExecutionProvider", "onnxruntime-gpu"] {
            assert!(m.contains(says), "{says}: {m}");
        }
        let m = Selection::Gpu.candidates(&cpu_wheel, lib).unwrap_err().to_string();
        assert!(m.starts_with("device gpu: ") && m.contains("offers none of CUDAExecutionProvider") && m.contains("onnxruntime-gpu") && m.contains("device: auto"), "{m}");
        let m = Selection::Only(Provider::OpenVino).candidates(&gpu_wheel, lib).unwrap_err().to_string();
        assert!(m.contains("OpenVINOExecutionProvider") && m.contains("built with OpenVINO"), "{m}");
    }

    #[test]
    fn the_first_candidate_that_opens_wins_and_earlier_failures_are_kept() {
        let mut tried = Vec::new();
        let got = first_that_opens(&[Provider::Cuda, Provider::Rocm, Provider::Cpu], |p| {
            tried.push(p);
            if p == Provider::Cpu { Ok("session") } else { Err(format!("{p} has no device")) }
        });
        let (p, value, failures) = got.unwrap();
        assert_eq!((p, value), (Provider::Cpu, "session"));
        assert_eq!(tried, [Provider::Cuda, Provider::Rocm, Provider::Cpu]);
        assert_eq!(failures, [(Provider::Cuda, "CUDAExecutionProvider has no device".to_string()), (Provider::Rocm, "ROCMExecutionProvider has no device".to_string())]);

        let first = first_that_opens(&[Provider::Cuda, Provider::Cpu], Ok::<_, ()>).unwrap();
        assert_eq!((first.0, first.2.len()), (Provider::Cuda, 0), "no later candidate is tried once one opens");
        let none = first_that_opens(&[Provider::Cuda], |_| Err::<(), _>("no driver")).unwrap_err();
        assert_eq!(none, [(Provider::Cuda, "no driver")]);
    }
}
