//! Parity: every filter and several chains on the GPU against the CPU reference, on 8- and
//! 16-bit images of every channel layout and of odd sizes, whole and in forced small tiles.
//! They run on whatever adapter the machine has (lavapipe in CI, where
//! `PIXELFLOW_REQUIRE_GPU_ADAPTER=1` makes a missing adapter a failure instead of a skip).

use image::{DynamicImage, ImageBuffer, Rgba};
use pixelflow_imaging::{FilterChain, FilterOp};

use crate::context::GpuContext;
use crate::filter::{GpuFilter, GpuFilterOptions};
use crate::step::{DeviceChoice, DeviceFilter};
use pixelflow_imaging::filter::ChainDevice;
use std::path::Path;

use crate::program::{Program, Samples, LIBRARY};

/// The shared context, or `None` (the test is skipped) when the machine has no adapter.
fn gpu() -> Option<&'static GpuContext> {
    match GpuContext::shared() {
        Ok(ctx) => Some(ctx),
        Err(e) if std::env::var_os("PIXELFLOW_REQUIRE_GPU_ADAPTER").is_some_and(|v| v == "1") => {
            panic!("PIXELFLOW_REQUIRE_GPU_ADAPTER=1 but {e}")
        }
        Err(e) => {
            eprintln!("skipped: {e}");
            None
        }
    }
}

/// A deterministic test image: gradients, a hard edge and noise, with alpha from 0 to opaque
/// when it has alpha; converted to the colour type of `kind`.
fn image(width: u32, height: u32, kind: &str) -> DynamicImage {
    let mut state = 0x9e37_79b9u32 ^ (width * 31 + height);
    let mut noise = move || {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        (state >> 24) as u8
    };
    let rgba = ImageBuffer::from_fn(width, height, |x, y| {
        let edge = if x * 2 < width { 40 } else { 200 };
        let a = match (x + y) % 5 {
            0 => 0,
            1 => 255,
            _ => noise(),
        };
        Rgba([((x * 255) / width.max(1)) as u8, edge, noise(), a])
    });
    let rgba = DynamicImage::ImageRgba8(rgba);
    match kind {
        "rgb8" => DynamicImage::ImageRgb8(rgba.to_rgb8()),
        "rgba8" => rgba,
        "luma8" => DynamicImage::ImageLuma8(rgba.to_luma8()),
        "lumaa8" => DynamicImage::ImageLumaA8(rgba.to_luma_alpha8()),
        "rgb16" => DynamicImage::ImageRgb16(rgba.to_rgb16()),
        "rgba16" => {
            // Use the low bits too: 16-bit samples that are not multiples of 257.
            let mut i = rgba.to_rgba16();
            i.pixels_mut().for_each(|p| p.0.iter_mut().take(3).for_each(|c| *c = c.wrapping_add(u16::from(noise()))));
            DynamicImage::ImageRgba16(i)
        }
        other => unreachable!("{other}"),
    }
}

/// Samples as u16 (8-bit ones scaled by 257) with the channel count, and the tolerance: 1/255.
fn samples(image: &DynamicImage) -> (Vec<u16>, usize, u16) {
    let channels = image.color().channel_count() as usize;
    match image.color().bytes_per_pixel() as usize / channels {
        1 => (image.as_bytes().iter().map(|&v| u16::from(v)).collect(), channels, 1),
        _ => (image.as_bytes().chunks_exact(2).map(|b| u16::from_ne_bytes([b[0], b[1]])).collect(), channels, 257),
    }
}

/// The GPU result against the CPU's: same layout, every sample within 1/255, except the colour
/// of pixels transparent in both (invisible: the CPU keeps their old colour where its alpha is
/// exactly 0, the GPU may find a tiny alpha there).
fn assert_parity(what: &str, cpu: &DynamicImage, gpu: &DynamicImage) {
    assert_eq!((cpu.color(), cpu.width(), cpu.height()), (gpu.color(), gpu.width(), gpu.height()), "{what}");
    let (c, channels, tolerance) = samples(cpu);
    let (g, _, _) = samples(gpu);
    let alpha = channels == 2 || channels == 4;
    let mut worst = (0u16, 0usize);
    for (i, (cp, gp)) in c.chunks_exact(channels).zip(g.chunks_exact(channels)).enumerate() {
        let invisible = alpha && cp[channels - 1] == 0 && gp[channels - 1] == 0;
        for k in 0..channels {
            if invisible && k < channels - 1 {
                continue;
            }
            let d = cp[k].abs_diff(gp[k]);
            if d > worst.0 {
                worst = (d, i);
            }
        }
    }
    let (d, i) = worst;
    let at = |s: &[u16]| s[i * channels..(i + 1) * channels].to_vec();
    assert!(d <= tolerance, "{what}: pixel {i} ({}, {}) differs by {d}: cpu {:?}, gpu {:?}", i as u32 % cpu.width(), i as u32 / cpu.width(), at(&c), at(&g));
}

fn run_both(ctx: &GpuContext, filters: &[FilterOp], input: &DynamicImage, options: GpuFilterOptions) -> (DynamicImage, DynamicImage, usize) {
    let chain = FilterChain::new(filters.to_vec()).unwrap();
    let mut cpu = input.clone();
    chain.apply(&mut cpu).unwrap();
    let (gpu, timings) = GpuFilter::new(ctx, options).apply(&chain, input, &|| false).unwrap();
    (cpu, gpu, timings.tiles)
}

fn every_filter() -> Vec<FilterOp> {
    vec![
        FilterOp::Brightness { amount: 1.7 },
        FilterOp::Contrast { amount: 2.5 },
        FilterOp::Saturation { amount: 1.8 },
        FilterOp::HueRotate { degrees: 137.0 },
        FilterOp::Gamma { value: 2.2 },
        FilterOp::Gamma { value: 0.4 },
        FilterOp::Grayscale { amount: 0.7 },
        FilterOp::Sepia { amount: 1.0 },
        FilterOp::Invert { amount: 0.3 },
        FilterOp::ColorMatrix { matrix: [0.9, 0.1, 0.0, 0.0, 0.05, 0.2, 0.7, 0.1, 0.0, 0.0, 0.0, 0.3, 0.6, 0.0, -0.02, 0.0, 0.0, 0.0, 0.8, 0.1] },
        FilterOp::Vignette { strength: 0.8, radius: 0.3 },
        FilterOp::Blur { sigma: 1.5 },
        FilterOp::Unsharp { sigma: 1.0, amount: 1.5, threshold: 0.0 },
        FilterOp::Unsharp { sigma: 0.8, amount: 0.7, threshold: 0.05 },
        FilterOp::Convolve { kernel: vec![0.0, -1.0, 0.0, -1.0, 5.0, -1.0, 0.0, -1.0, 0.0], divisor: None, bias: 0.0, preserve_alpha: false },
        FilterOp::Convolve { kernel: vec![-1.0, -1.0, -1.0, -1.0, 8.0, -1.0, -1.0, -1.0, -1.0], divisor: None, bias: 0.5, preserve_alpha: true },
        FilterOp::Convolve { kernel: (0..25).map(|i| f64::from(i % 7) - 1.0).collect(), divisor: Some(40.0), bias: -0.1, preserve_alpha: false },
    ]
}

#[test]
fn every_filter_matches_the_cpu_on_every_layout_and_odd_sizes() {
    let Some(ctx) = gpu() else { return };
    let kinds = ["rgb8", "rgba8", "luma8", "lumaa8", "rgb16", "rgba16"];
    for (i, filter) in every_filter().into_iter().enumerate() {
        for (k, kind) in kinds.iter().enumerate() {
            // Vary the size with the case, odd sizes and a single pixel among them.
            let (w, h) = [(1, 1), (7, 5), (33, 17), (20, 31)][(i + k) % 4];
            let input = image(w, h, kind);
            let (cpu, gpu, _) = run_both(ctx, std::slice::from_ref(&filter), &input, GpuFilterOptions::default());
            assert_parity(&format!("{} on {kind} {w}x{h}", filter.name()), &cpu, &gpu);
        }
    }
}

#[test]
fn chains_match_the_cpu() {
    let Some(ctx) = gpu() else { return };
    let all = every_filter();
    let chains: Vec<Vec<FilterOp>> = vec![
        // Per-pixel only: one fused dispatch from samples to samples.
        all[..11].to_vec(),
        // Neighbourhood passes between per-pixel runs, ping-pong buffers after a convolve.
        vec![all[1].clone(), all[11].clone(), all[3].clone(), all[14].clone(), all[9].clone(), all[12].clone(), all[10].clone()],
        // Starts and ends with neighbourhood passes; the chain can change alpha.
        vec![all[16].clone(), all[4].clone(), all[11].clone()],
        vec![all[15].clone(), all[14].clone()],
        // A blur long enough to loop over its weights, then a per-pixel run stored with it.
        vec![FilterOp::Blur { sigma: 9.0 }, all[7].clone(), all[10].clone()],
    ];
    for (i, chain) in chains.iter().enumerate() {
        for kind in ["rgb8", "rgba8", "lumaa8", "rgba16"] {
            let input = image(45, 27, kind);
            let (cpu, gpu, _) = run_both(ctx, chain, &input, GpuFilterOptions::default());
            assert_parity(&format!("chain {i} on {kind}"), &cpu, &gpu);
        }
    }
}

#[test]
fn tiles_with_the_halo_give_the_whole_image_result() {
    let Some(ctx) = gpu() else { return };
    let chain = vec![
        FilterOp::Vignette { strength: 0.6, radius: 0.2 },
        FilterOp::Blur { sigma: 2.0 },
        FilterOp::Convolve { kernel: (0..25).map(|i| f64::from(i % 3)).collect(), divisor: None, bias: 0.0, preserve_alpha: false },
        FilterOp::Unsharp { sigma: 1.0, amount: 1.0, threshold: 0.0 },
        FilterOp::Contrast { amount: 1.3 },
    ];
    // Halo 6 + 2 + 3 = 11: tiles of 40x40 read at most 40x40 and write 18x18 of their own.
    for kind in ["rgb8", "rgb16"] {
        let input = image(131, 77, kind);
        let (cpu, gpu, tiles) = run_both(ctx, &chain, &input, GpuFilterOptions { max_tile_pixels: Some(40 * 40), profile: kind == "rgb16" });
        assert!(tiles > 20, "{tiles} tiles");
        assert_parity(&format!("tiled {kind}"), &cpu, &gpu);
    }
    // Full-width bands: halo 6, 25 rows read of which 13 are the band's own.
    let input = image(131, 77, "rgba8");
    let (cpu, gpu, tiles) = run_both(ctx, &chain[1..2], &input, GpuFilterOptions { max_tile_pixels: Some(131 * 25), ..GpuFilterOptions::default() });
    assert_eq!(tiles, 6);
    assert_parity("banded blur", &cpu, &gpu);
    let input = image(131, 77, "rgb8");
    let (cpu, gpu, tiles) = run_both(ctx, &chain[..1], &input, GpuFilterOptions { max_tile_pixels: Some(1000), ..GpuFilterOptions::default() });
    assert!(tiles > 1);
    assert_parity("tiled per-pixel", &cpu, &gpu);
}

#[test]
fn an_image_the_gpu_cannot_take_runs_on_the_cpu_with_the_reason() {
    let chain = FilterChain::new(vec![FilterOp::Invert { amount: 1.0 }]).unwrap();
    // Float samples: no decoder makes them, the kernels do not read them.
    let input = DynamicImage::ImageRgb32F(image(9, 4, "rgb8").to_rgb32f());
    let mut expected = input.clone();
    chain.apply(&mut expected).unwrap();
    for choice in [DeviceChoice::Gpu, DeviceChoice::Cpu, DeviceChoice::Auto] {
        let device = DeviceFilter::new(choice, GpuFilterOptions::default());
        let mut got = input.clone();
        device.apply(&chain, &mut got, &|| false).unwrap();
        assert_eq!(got, expected, "{choice:?}");
        let report = device.report();
        assert_eq!(report.device, "cpu");
        // Asked for the GPU: the reason it did not run is reported (the image, or no adapter).
        assert_eq!(report.fallback.is_some(), choice == DeviceChoice::Gpu, "{report:?}");
    }
}

#[test]
fn auto_never_picks_a_software_adapter_and_gpu_reports_the_adapter() {
    let Some(ctx) = gpu() else { return };
    let chain = FilterChain::new(vec![FilterOp::Sepia { amount: 1.0 }]).unwrap();
    let input = image(16, 16, "rgb8");
    let auto = DeviceFilter::new(DeviceChoice::Auto, GpuFilterOptions::default());
    auto.apply(&chain, &mut input.clone(), &|| false).unwrap();
    // 256 pixels are below the auto threshold on any adapter.
    assert_eq!(auto.report().device, "cpu");
    // A large image goes to the GPU only when the adapter is hardware (never to lavapipe).
    let large = DynamicImage::ImageLuma8(image::GrayImage::new(1500, 1400));
    auto.apply(&chain, &mut large.clone(), &|| false).unwrap();
    assert_eq!(auto.report().device, if ctx.adapter().software { "cpu" } else { "gpu" }, "{:?}", ctx.adapter());
    let gpu = DeviceFilter::new(DeviceChoice::Gpu, GpuFilterOptions::default());
    gpu.apply(&chain, &mut input.clone(), &|| false).unwrap();
    assert_eq!((gpu.report().device, gpu.report().adapter), ("gpu", Some(ctx.adapter().name.clone())));
}

#[test]
fn a_stop_between_tiles_cancels() {
    let Some(ctx) = gpu() else { return };
    let chain = FilterChain::new(vec![FilterOp::Blur { sigma: 1.0 }]).unwrap();
    let result = GpuFilter::new(ctx, GpuFilterOptions::default()).apply(&chain, &image(8, 8, "rgb8"), &|| true);
    assert!(matches!(result, Err(crate::Error::Cancelled)), "{result:?}");
}

/// CPU-only: the shader library, and the module generated for every filter alone and for each
/// chain of the parity tests (for every way samples are uploaded), parse and validate with naga, as wgpu compiles
/// them, with every stage's entry point present.
#[test]
fn every_generated_shader_validates() {
    let all = every_filter();
    let mut chains: Vec<Vec<FilterOp>> = all.iter().map(|f| vec![f.clone()]).collect();
    chains.push(all.clone());
    chains.push(vec![FilterOp::Blur { sigma: 30.0 }, FilterOp::Sepia { amount: 0.5 }]);
    for filters in chains {
        let chain = FilterChain::new(filters).unwrap();
        for samples in [Samples::Bytes(1), Samples::Bytes(2), Samples::Bytes(3), Samples::Bytes(4), Samples::Rgba16] {
            let program = Program::new(chain.compiled(), samples);
            let source = &program.source;
            let module = naga::front::wgsl::parse_str(source).unwrap_or_else(|e| panic!("{}", e.emit_to_string(source)));
            naga::valid::Validator::new(naga::valid::ValidationFlags::all(), naga::valid::Capabilities::empty())
                .validate(&module)
                .unwrap_or_else(|e| panic!("{e:?}\n{source}"));
            for stage in &program.stages {
                assert!(module.entry_points.iter().any(|e| e.name == stage.entry), "no {}", stage.entry);
            }
        }
    }
    for (name, _) in LIBRARY {
        assert!(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shaders").join(name).is_file(), "{name}");
    }
}
