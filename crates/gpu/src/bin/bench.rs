//! The GPU filter benchmark (bench/gpu.sh): a 24 MP image through a five-filter chain on the
//! CPU path (rayon) and on the GPU path, side by side in one run (the two alternate, run by
//! run, so a change in the machine's load hits both), medians reported; then one profiled GPU
//! run that says where its time goes (the upload, each dispatch, the readback). Prints
//! markdown tables; `--runs N` (default 3) timed runs each, after one warm-up. Besides wall
//! time it reports the CPU time the process used, which a loaded machine disturbs less.

use std::time::{Duration, Instant};

use image::{DynamicImage, RgbImage};
use pixelflow_gpu::{GpuContext, GpuFilter, GpuFilterOptions};
use pixelflow_imaging::{FilterChain, FilterOp};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// CPU time this process has used (all its threads, lavapipe's included), from
/// `/proc/self/stat`: less sensitive than wall time to other work on a loaded machine.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command name (which ends at the last ')'), from the state: utime
    // and stime are the 12th and 13th, in clock ticks (100 a second on Linux).
    let fields: Vec<&str> = stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    let tick = |n: usize| fields.get(n).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    let ticks = tick(11) + tick(12);
    Duration::from_millis(ticks * 10)
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    let runs: usize = std::env::args().skip_while(|a| a != "--runs").nth(1).and_then(|n| n.parse().ok()).unwrap_or(3).max(1);
    // `--gpu-only`: skip the CPU path (to compare GPU variants quickly).
    let gpu_only = std::env::args().any(|a| a == "--gpu-only");
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
    println!("{w}x{h} RGB 8-bit ({:.0} MP), {} run(s) each after a warm-up, CPU and GPU alternating, median; CPU: rayon on {} threads; GPU: {} ({}, {})\n", f64::from(w * h) / 1e6, runs, rayon_threads(), a.name, a.backend, a.device_type);
    println!("Wall time, and in parentheses the CPU time the process used (all threads, lavapipe's too).\n");
    println!("| chain | CPU path | GPU filter work | GPU end to end | tiles | end-to-end speed-up | max diff |");
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    let mut profiles = Vec::new();
    for (name, filters) in chains {
        let chain = FilterChain::new(filters).expect("a valid chain");
        let gpu = GpuFilter::new(ctx, GpuFilterOptions::default());
        let (mut cpu_times, mut total) = (Vec::new(), Vec::new());
        let (mut cpu_cpu, mut gpu_cpu) = (Vec::new(), Vec::new());
        let (mut cpu_out, mut gpu_out, mut tiles) = (image.clone(), image.clone(), 0);
        for i in 0..=runs {
            let mut img = image.clone();
            let (start, used) = (Instant::now(), cpu_time());
            if !gpu_only {
                chain.apply(&mut img).expect("the CPU path runs");
            }
            let (cpu, cpu_used) = (start.elapsed(), cpu_time().saturating_sub(used));
            cpu_out = img;
            let (start, used) = (Instant::now(), cpu_time());
            let (out, t) = gpu.apply(&chain, &image, &|| false).expect("the GPU path runs");
            let (gpu, gpu_used) = (start.elapsed(), cpu_time().saturating_sub(used));
            gpu_out = out;
            tiles = t.tiles;
            if i > 0 {
                cpu_times.push(cpu);
                total.push(gpu);
                cpu_cpu.push(cpu_used);
                gpu_cpu.push(gpu_used);
            }
        }
        // Where the GPU's time goes: one run waiting after each step (nothing overlaps).
        let profiler = GpuFilter::new(ctx, GpuFilterOptions { profile: true, ..GpuFilterOptions::default() });
        let (_, profile) = profiler.apply(&chain, &image, &|| false).expect("the GPU path runs");
        let diff = cpu_out.as_bytes().iter().zip(gpu_out.as_bytes()).map(|(a, b)| a.abs_diff(*b)).max().unwrap_or(0);
        let (cpu, total, cpu_used, gpu_used) = (median(cpu_times), median(total), median(cpu_cpu), median(gpu_cpu));
        println!(
            "| {name} | {} ({} CPU) | {} | {} ({} CPU) | {tiles} | {:.2}x | {diff}/255 |",
            ms(cpu),
            ms(cpu_used),
            ms(profile.compute),
            ms(total),
            ms(gpu_used),
            cpu.as_secs_f64() / total.as_secs_f64()
        );
        profiles.push((name, profile));
    }
    println!("\nOne profiled GPU run of each chain (a wait after each step; summed over the tiles):\n");
    println!("| chain | pack + unpack (CPU) | upload | dispatches | readback |");
    println!("| --- | --- | --- | --- | --- |");
    for (name, p) in &profiles {
        let stages: Vec<String> = p.stages.iter().map(|(label, d)| format!("{label} {}", ms(*d))).collect();
        println!("| {name} | {} | {} | {} | {} |", ms(p.pack), ms(p.upload), stages.join(", "), ms(p.readback));
    }
}

fn rayon_threads() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}
