//! The process-wide GPU context: the chosen Vulkan adapter, its device and queue, each chain's
//! pipelines compiled once (cached by the chain's generated source), and the pool of buffers
//! the filter reuses. Everything is created
//! lazily, the first time an image asks for it; the adapter alone is enough for `auto` to
//! decide against a software one without creating a device.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use crate::error::{Error, Result};
use crate::filter::Pool;
use crate::program::Program;

/// Chains whose pipelines a context keeps; beyond that the cache starts again (a batch uses one
/// chain, so this only bounds a long session's memory).
const CACHED_PROGRAMS: usize = 32;

/// The adapter in use, as `pixelflow doctor` and the history report it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AdapterSummary {
    pub name: String,
    /// "vulkan".
    pub backend: String,
    /// "discrete GPU", "integrated GPU", "virtual GPU", "CPU" (software, such as lavapipe) or "other".
    pub device_type: String,
    /// A software rasteriser (lavapipe, SwiftShader): slower than the CPU path, so `auto`
    /// never picks it.
    pub software: bool,
}

impl AdapterSummary {
    fn new(info: &wgpu::AdapterInfo) -> AdapterSummary {
        let (device_type, software) = match info.device_type {
            wgpu::DeviceType::DiscreteGpu => ("discrete GPU", false),
            wgpu::DeviceType::IntegratedGpu => ("integrated GPU", false),
            wgpu::DeviceType::VirtualGpu => ("virtual GPU", false),
            wgpu::DeviceType::Cpu => ("CPU", true),
            wgpu::DeviceType::Other => ("other", true),
        };
        AdapterSummary { name: info.name.clone(), backend: info.backend.to_string(), device_type: device_type.into(), software }
    }
}

/// The adapter chosen for this process: hardware first (discrete, integrated, virtual), then
/// software.
struct Chosen {
    adapter: wgpu::Adapter,
    summary: AdapterSummary,
}

fn rank(t: wgpu::DeviceType) -> u8 {
    match t {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    }
}

fn choose() -> Result<Chosen> {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
    desc.backends = wgpu::Backends::VULKAN;
    let instance = wgpu::Instance::new(desc);
    let adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::VULKAN));
    let adapter = adapters
        .into_iter()
        .filter(|a| a.get_downlevel_capabilities().flags.contains(wgpu::DownlevelFlags::COMPUTE_SHADERS))
        .min_by_key(|a| rank(a.get_info().device_type))
        .ok_or_else(|| Error::NoAdapter("no Vulkan adapter with compute shaders (install a GPU driver, or mesa-vulkan-drivers for a software one)".into()))?;
    let summary = AdapterSummary::new(&adapter.get_info());
    Ok(Chosen { adapter, summary })
}

fn chosen() -> Result<&'static Chosen> {
    static CHOSEN: OnceLock<Result<Chosen>> = OnceLock::new();
    CHOSEN.get_or_init(choose).as_ref().map_err(Clone::clone)
}

/// The adapter this process would use, looked for once (without creating a device).
pub fn adapter() -> Result<AdapterSummary> {
    chosen().map(|c| c.summary.clone())
}

/// A device with the compiled chains and a buffer pool. Kernels take a context, so tests may
/// build their own ([`GpuContext::new`]); the `filter` step uses [`GpuContext::shared`].
pub struct GpuContext {
    pub(crate) device: wgpu::Device,
    pub(crate) queue: wgpu::Queue,
    pub(crate) layout: wgpu::BindGroupLayout,
    pipeline_layout: wgpu::PipelineLayout,
    /// Each chain's pipelines (one an entry point), by its generated source.
    programs: Mutex<HashMap<String, Arc<[wgpu::ComputePipeline]>>>,
    pub(crate) limits: wgpu::Limits,
    summary: AdapterSummary,
    /// Set by the device-lost callback: every later image goes to the CPU.
    lost: Arc<AtomicBool>,
    /// One image at a time on the device; the buffers grow to the largest tile seen.
    pub(crate) pool: Mutex<Pool>,
}

impl GpuContext {
    /// The process-wide context on the chosen adapter, created on first use.
    pub fn shared() -> Result<&'static GpuContext> {
        static SHARED: OnceLock<Result<GpuContext>> = OnceLock::new();
        SHARED.get_or_init(|| GpuContext::new(&chosen()?.adapter)).as_ref().map_err(Clone::clone)
    }

    /// A device on `adapter` with the adapter's own limits (so large tiles fit). Chains are
    /// compiled on first use ([`GpuContext::pipelines`]).
    pub fn new(adapter: &wgpu::Adapter) -> Result<GpuContext> {
        let limits = adapter.limits();
        let desc = wgpu::DeviceDescriptor {
            label: Some("pixelflow-gpu"),
            required_features: wgpu::Features::empty(),
            required_limits: limits.clone(),
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        };
        let (device, queue) = pollster::block_on(adapter.request_device(&desc)).map_err(|e| Error::Device(e.to_string()))?;
        let lost = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&lost);
        device.set_device_lost_callback(move |reason, message| {
            tracing::warn!(?reason, message, "GPU device lost: filters run on the CPU from now on");
            flag.store(true, Ordering::SeqCst);
        });
        // Errors outside an error scope are logged, never a panic (the default handler panics).
        device.on_uncaptured_error(Arc::new(|error: wgpu::Error| tracing::warn!(%error, "GPU error")));

        let storage = |binding: u32, read_only: bool| wgpu::BindGroupLayoutEntry {
            binding,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer { ty: wgpu::BufferBindingType::Storage { read_only }, has_dynamic_offset: false, min_binding_size: None },
            count: None,
        };
        let params = wgpu::BindGroupLayoutEntry {
            binding: 0,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer { ty: wgpu::BufferBindingType::Uniform, has_dynamic_offset: false, min_binding_size: wgpu::BufferSize::new(32) },
            count: None,
        };
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("filter"),
            entries: &[params, storage(1, true), storage(2, false), storage(3, false), storage(4, false)],
        });
        let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("filter"),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let summary = AdapterSummary::new(&adapter.get_info());
        tracing::debug!(adapter = %summary.name, device_type = %summary.device_type, "GPU context ready");
        Ok(GpuContext {
            pool: Mutex::new(Pool::new(&device)),
            device,
            queue,
            layout,
            pipeline_layout,
            programs: Mutex::new(HashMap::new()),
            limits,
            summary,
            lost,
        })
    }

    pub fn adapter(&self) -> &AdapterSummary {
        &self.summary
    }

    /// The pipelines of `program`'s stages, compiled on its first use and cached.
    pub(crate) fn pipelines(&self, program: &Program) -> Result<Arc<[wgpu::ComputePipeline]>> {
        let mut programs = self.programs.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(pipelines) = programs.get(&program.source) {
            return Ok(Arc::clone(pipelines));
        }
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let module = self.device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("filter chain"),
            source: wgpu::ShaderSource::Wgsl(program.source.as_str().into()),
        });
        let pipelines: Arc<[wgpu::ComputePipeline]> = program
            .stages
            .iter()
            .map(|stage| {
                self.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some(stage.label),
                    layout: Some(&self.pipeline_layout),
                    module: &module,
                    entry_point: Some(&stage.entry),
                    compilation_options: Default::default(),
                    cache: None,
                })
            })
            .collect();
        if let Some(error) = pollster::block_on(scope.pop()) {
            return Err(Error::Run(format!("the chain's shader does not compile: {error}")));
        }
        if programs.len() >= CACHED_PROGRAMS {
            programs.clear();
        }
        programs.insert(program.source.clone(), Arc::clone(&pipelines));
        Ok(pipelines)
    }

    pub(crate) fn check_alive(&self) -> Result<()> {
        if self.lost.load(Ordering::SeqCst) {
            Err(Error::Device("the device was lost".into()))
        } else {
            Ok(())
        }
    }
}
