//! The GPU filter benchmark (bench/gpu.sh): a 24 MP image through a five-filter chain on the
//! CPU path (rayon) and on the GPU path, side by side in one run, with the GPU's filter work
//! (its dispatches) apart from the whole (packing, transfers and readback included). Prints a
//! markdown table; `--runs N` (default 3) timed runs each, after one warm-up, median reported.

use std::time::{Duration, Instant};

use image::{DynamicImage, RgbImage};
use pixelflow_gpu::{GpuContext, GpuFilter, GpuFilterOptions};
use pixelflow_imaging::{FilterChain, FilterOp};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    let runs: usize = std::env::args().skip_while(|a| a != "--runs").nth(1).and_then(|n| n.parse().ok()).unwrap_or(3).max(1);
    let (w, h) = (6000u32, 4000u32);
    // A photo-like test card: gradients and a little texture.
    let image = DynamicImage::ImageRgb8(RgbImage::from_fn(w, h, |x, y| {
        let t = ((x ^ y) & 15) as u8;
        image::Rgb([(x * 255 / w) as u8 ^ t, (y * 255 / h) as u8, ((x + y) / 40) as u8])
    }));
    let chains = [
        (
            "brightness, contrast, saturation, blur σ2, vignette",
            vec![
                FilterOp::Brightness { amount: 1.1 },
                FilterOp::Contrast { amount: 1.2 },
                FilterOp::Saturation { amount: 1.3 },
                FilterOp::Blur { sigma: 2.0 },
                FilterOp::Vignette { strength: 0.5, radius: 0.5 },
            ],
        ),
        ("per-pixel only: brightness, contrast, saturation, sepia, vignette", vec![
            FilterOp::Brightness { amount: 1.1 },
            FilterOp::Contrast { amount: 1.2 },
            FilterOp::Saturation { amount: 1.3 },
            FilterOp::Sepia { amount: 0.5 },
            FilterOp::Vignette { strength: 0.5, radius: 0.5 },
        ]),
    ];
    let ctx = match GpuContext::shared() {
        Ok(ctx) => ctx,
        Err(e) => {
            eprintln!("no GPU: {e}");
            std::process::exit(1);
        }
    };
    let a = ctx.adapter();
    println!("{w}x{h} RGB 8-bit ({:.0} MP), {} run(s) after a warm-up, median; CPU: rayon on {} threads; GPU: {} ({}, {})\n", f64::from(w * h) / 1e6, runs, rayon_threads(), a.name, a.backend, a.device_type);
    println!("| chain | CPU path | GPU filter work | GPU end to end | tiles | end-to-end speed-up | max diff |");
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for (name, filters) in chains {
        let chain = FilterChain::new(filters).expect("a valid chain");
        let gpu = GpuFilter::new(ctx, GpuFilterOptions::default());
        let mut cpu_times = Vec::new();
        let mut cpu_out = image.clone();
        for i in 0..=runs {
            let mut img = image.clone();
            let start = Instant::now();
            chain.apply(&mut img).expect("the CPU path runs");
            if i > 0 {
                cpu_times.push(start.elapsed());
            }
            cpu_out = img;
        }
        let (mut total, mut compute) = (Vec::new(), Vec::new());
        let mut gpu_out = image.clone();
        let mut tiles = 0;
        for i in 0..=runs {
            let start = Instant::now();
            let (out, t) = gpu.apply(&chain, &image, &|| false).expect("the GPU path runs");
            if i > 0 {
                total.push(start.elapsed());
                compute.push(t.compute);
            }
            tiles = t.tiles;
            gpu_out = out;
        }
        let diff = cpu_out.as_bytes().iter().zip(gpu_out.as_bytes()).map(|(a, b)| a.abs_diff(*b)).max().unwrap_or(0);
        let (cpu, total, compute) = (median(cpu_times), median(total), median(compute));
        println!(
            "| {name} | {} | {} | {} | {tiles} | {:.2}x | {diff}/255 |",
            ms(cpu),
            ms(compute),
            ms(total),
            cpu.as_secs_f64() / total.as_secs_f64()
        );
    }
}

fn rayon_threads() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}
