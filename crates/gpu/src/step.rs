//! The device-aware `filter` step: imaging's step (its parameters, decoding, encoding and
//! atomic writes) with the chain applied on the device that the `device` parameter picks, and
//! the device used reported in the step's result (so in the execution's history).

use std::sync::{Arc, Mutex};

use image::DynamicImage;
use pixelflow_engine::{StepRegistry, TaskContext};
use pixelflow_imaging::filter::{self, ChainDevice};
use pixelflow_imaging::{Error as ImagingError, FilterChain};
use serde_json::{json, Value};

use crate::context::{self, GpuContext};
use crate::error::Error;
use crate::filter::{GpuFilter, GpuFilterOptions};

/// Under `auto`, images smaller than this stay on the CPU: uploading and reading back costs
/// more than the GPU saves on a few megapixels (a guess until measured on a real GPU).
pub const AUTO_MIN_PIXELS: u64 = 2_000_000;

/// The `device` parameter of the `filter` step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceChoice {
    /// The GPU when a hardware adapter exists and the image has at least [`AUTO_MIN_PIXELS`];
    /// else the CPU (a software adapter is slower than the CPU path).
    #[default]
    Auto,
    /// The GPU on any adapter, software ones included; the CPU when there is none.
    Gpu,
    Cpu,
}

impl DeviceChoice {
    pub fn parse(value: &Value) -> Result<DeviceChoice, ImagingError> {
        match value.as_str() {
            Some("auto") => Ok(DeviceChoice::Auto),
            Some("gpu") => Ok(DeviceChoice::Gpu),
            Some("cpu") => Ok(DeviceChoice::Cpu),
            _ => Err(ImagingError::InvalidParameters(format!("device must be \"auto\", \"gpu\" or \"cpu\", got {value}"))),
        }
    }
}

/// What ran an image: the step reports it as `device`, `adapter` and `fallback`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeviceReport {
    /// "gpu" or "cpu".
    pub device: &'static str,
    pub adapter: Option<String>,
    /// Why the CPU ran an image the GPU was asked for.
    pub fallback: Option<String>,
}

/// Applies chains on the device a [`DeviceChoice`] picks, falling back to the CPU path for an
/// image the GPU cannot take (no adapter, a lost device, a failed allocation), with a warning.
pub struct DeviceFilter {
    choice: DeviceChoice,
    options: GpuFilterOptions,
    report: Mutex<DeviceReport>,
}

impl DeviceFilter {
    pub fn new(choice: DeviceChoice, options: GpuFilterOptions) -> DeviceFilter {
        DeviceFilter { choice, options, report: Mutex::new(DeviceReport { device: "cpu", ..DeviceReport::default() }) }
    }

    /// What ran the last image.
    pub fn report(&self) -> DeviceReport {
        self.report.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The context to use for an image of `pixels`, or `None` for the CPU (with the reason
    /// when the GPU was wanted and cannot be had).
    fn context(&self, pixels: u64) -> (Option<&'static GpuContext>, Option<String>) {
        match self.choice {
            // Small images never look for an adapter (loading Vulkan costs tens of milliseconds).
            DeviceChoice::Cpu => (None, None),
            DeviceChoice::Auto if pixels < AUTO_MIN_PIXELS => (None, None),
            DeviceChoice::Auto => match context::adapter() {
                Ok(a) if !a.software => match GpuContext::shared() {
                    Ok(ctx) => (Some(ctx), None),
                    Err(e) => (None, Some(e.to_string())),
                },
                _ => (None, None),
            },
            DeviceChoice::Gpu => match GpuContext::shared() {
                Ok(ctx) => (Some(ctx), None),
                Err(e) => (None, Some(e.to_string())),
            },
        }
    }
}

impl ChainDevice for DeviceFilter {
    fn apply(&self, chain: &FilterChain, image: &mut DynamicImage, should_stop: &dyn Fn() -> bool) -> pixelflow_imaging::Result<()> {
        let pixels = u64::from(image.width()) * u64::from(image.height());
        let (ctx, mut fallback) = self.context(pixels);
        let mut report = DeviceReport { device: "cpu", adapter: ctx.map(|c| c.adapter().name.clone()), fallback: None };
        if let Some(ctx) = ctx {
            // A panic inside wgpu must not fail the image either: it becomes a fallback.
            let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| GpuFilter::new(ctx, self.options.clone()).apply(chain, image, should_stop)));
            match run {
                Ok(Ok((filtered, timings))) => {
                    tracing::debug!(adapter = %ctx.adapter().name, tiles = timings.tiles, ?timings, "filter: ran on the GPU");
                    *image = filtered;
                    report.device = "gpu";
                }
                Ok(Err(Error::Cancelled)) => return Err(ImagingError::Cancelled),
                Ok(Err(e)) => fallback = Some(e.to_string()),
                Err(_) => fallback = Some("the GPU path panicked".into()),
            }
        }
        if report.device == "cpu" {
            if let Some(why) = &fallback {
                tracing::warn!(reason = %why, "filter: the GPU could not take this image; running it on the CPU");
            }
            report.fallback = fallback;
            chain.apply_with(image, should_stop)?;
        }
        *self.report.lock().unwrap_or_else(|p| p.into_inner()) = report;
        Ok(())
    }
}

/// Registers the device-aware `filter`, replacing imaging's.
pub fn register(steps: &mut StepRegistry) {
    steps.register("filter", |input: Value, ctx: &TaskContext| {
        run_filter(input, &|| {
            ctx.heartbeat();
            ctx.is_cancelled()
        })
        .map_err(pixelflow_imaging::steps::failure)
    });
}

/// `pixelflow:filter` with `device?: "auto" | "gpu" | "cpu"` (default `auto`) beside imaging's
/// parameters; answers imaging's result plus `device` ("gpu" or "cpu"), `adapter` (when one
/// was used or tried) and `fallback` (why the CPU ran an image meant for the GPU).
pub fn run_filter(mut input: Value, should_stop: &dyn Fn() -> bool) -> pixelflow_imaging::Result<Value> {
    let choice = match input.as_object_mut().and_then(|o| o.remove("device")) {
        None | Some(Value::Null) => DeviceChoice::default(),
        Some(v) => DeviceChoice::parse(&v)?,
    };
    let device = Arc::new(DeviceFilter::new(choice, GpuFilterOptions::default()));
    let mut out = filter::with_device(device.clone(), || pixelflow_imaging::steps::run_filter(input, should_stop))?;
    let report = device.report();
    if let Some(obj) = out.as_object_mut() {
        obj.insert("device".into(), json!(report.device));
        if let Some(adapter) = report.adapter {
            obj.insert("adapter".into(), json!(adapter));
        }
        if let Some(fallback) = report.fallback {
            obj.insert("fallback".into(), json!(fallback));
        }
    }
    Ok(out)
}
