//! Bare ONNX Runtime inference under different session options, in alternating rounds, to find
//! what makes a session faster or slower, next to `tests/reference/segment_reference.py infer`
//! (Python's session on the same tensor); see BENCHMARKS.md, "Segment".
//!
//!     ORT_DYLIB_PATH=... cargo run --release -p pixelflow-segment --example ort_options -- \
//!         MODEL.onnx INPUT.f32 ROUNDS VARIANT [VARIANT ...]
//!
//! INPUT.f32 is the model's input tensor as raw little-endian float32 (1x3x1024x1024, what
//! `segment_reference.py tensor` writes). A VARIANT is `+`-joined knobs: `base` (Python's options:
//! ORT_ENABLE_ALL, spinning threads; the step uses `extended+nospin`), `policy` (ort's default device-selection policy left in place), `cpu` (the CPU
//! execution provider appended explicitly, arena on), `nospin` (intra-op threads do not spin),
//! `ftz` (denormals flushed to zero), `dbb4` (dynamic block base 4), `nomempat`, `basic`/`extended` (optimisation level),
//! `t1`/`t3` (intra-op threads), `prof` (ORT profiling to /tmp/ort_options_<variant>*.json).
//! Prints one JSON line per variant: median and min seconds per run, the median CPU seconds per
//! run (all threads; unlike wall time, barely moved by other processes when nothing spins) and a
//! checksum of the output's bits (equal checksums: the variant computes exactly the same).

use std::time::Instant;

use ort::session::builder::{AutoDevicePolicy, GraphOptimizationLevel, SessionBuilder};
use ort::session::{OutputSelector, RunOptions, Session};
use ort::value::TensorRef;

fn builder(env: &ort::environment::Environment, variant: &str) -> ort::Result<SessionBuilder> {
    let knobs: Vec<&str> = variant.split('+').collect();
    let has = |k: &str| knobs.contains(&k);
    let level = if has("basic") {
        GraphOptimizationLevel::Level1
    } else if has("extended") {
        GraphOptimizationLevel::Level2
    } else {
        GraphOptimizationLevel::All
    };
    let threads = if has("t1") {
        1
    } else if has("t3") {
        3
    } else {
        std::thread::available_parallelism().map_or(1, usize::from)
    };
    let mut b = Session::builder(env)?;
    if !has("policy") {
        b = b.with_auto_device(AutoDevicePolicy::Default)?;
    }
    b = b.with_optimization_level(level)?.with_intra_threads(threads)?.with_inter_threads(1)?;
    if has("cpu") {
        b = b.with_execution_providers([ort::ep::CPU::default().with_arena_allocator(true).build()])?;
    }
    if has("nospin") {
        b = b.with_intra_op_spinning(false)?;
    }
    if has("ftz") {
        b = b.with_flush_to_zero()?;
    }
    if has("dbb4") {
        b = b.with_dynamic_block_base(4)?;
    }
    if has("nomempat") {
        b = b.with_memory_pattern(false)?;
    }
    if has("prof") {
        b = b.with_profiling(format!("/tmp/ort_options_{}", variant.replace('+', "_")))?;
    }
    Ok(b)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 4 {
        return Err("usage: ort_options MODEL.onnx INPUT.f32 ROUNDS VARIANT [VARIANT ...]".into());
    }
    let (model, input, rounds, variants) = (&args[0], &args[1], args[2].parse::<usize>()?.max(1), &args[3..]);
    let bytes = std::fs::read(input)?;
    let tensor: Vec<f32> = bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    if tensor.len() != 3 * 1024 * 1024 {
        return Err(format!("{input}: {} floats, not 3x1024x1024", tensor.len()).into());
    }
    let lib = std::env::var("ORT_DYLIB_PATH").map_err(|_| "set ORT_DYLIB_PATH")?;
    let env = ort::init_from(&lib)?.with_name("ort_options").build()?;
    let mut sessions = Vec::new();
    for v in variants {
        let mut s = builder(&env, v).map_err(|e| e.to_string())?.commit_from_file(model)?;
        // Warm-up: the first run sizes the arena.
        let checksum = run(&mut s, &tensor)?;
        sessions.push((v.clone(), s, Vec::new(), checksum));
    }
    for _ in 0..rounds {
        for (_, s, times, _) in sessions.iter_mut() {
            let (t, c) = (Instant::now(), cpu_seconds());
            run(s, &tensor)?;
            times.push((t.elapsed().as_secs_f64(), cpu_seconds() - c));
        }
    }
    for (v, mut s, times, checksum) in sessions {
        let profile = if v.split('+').any(|k| k == "prof") { s.end_profiling()? } else { String::new() };
        let (mut wall, mut cpu): (Vec<f64>, Vec<f64>) = times.into_iter().unzip();
        wall.sort_by(f64::total_cmp);
        cpu.sort_by(f64::total_cmp);
        println!(
            "{{\"variant\": \"{v}\", \"median\": {:.4}, \"min\": {:.4}, \"cpu\": {:.3}, \"runs\": {}, \"output\": \"{checksum:016x}\", \"profile\": \"{profile}\"}}",
            wall[wall.len() / 2],
            wall[0],
            cpu[cpu.len() / 2],
            wall.len()
        );
    }
    Ok(())
}

/// User and system CPU time of this process so far, in seconds (from /proc/self/stat, so 10 ms
/// steps; 0 where there is no /proc).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command name (which may hold spaces) in parentheses.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let ticks: u64 = rest.split_whitespace().skip(11).take(2).filter_map(|f| f.parse::<u64>().ok()).sum();
    ticks as f64 / 100.0
}

/// Runs the model; answers a checksum of the output's bits (FNV-1a), the same for every variant
/// that computes exactly what the default does.
fn run(session: &mut Session, tensor: &[f32]) -> ort::Result<u64> {
    let input = TensorRef::from_array_view(([1usize, 3, 1024, 1024], tensor))?;
    let options = RunOptions::new()?.with_outputs(OutputSelector::no_default().with("output"));
    let outputs = session.run_with_options(ort::inputs![input], &options)?;
    let (_, data) = outputs["output"].try_extract_tensor::<f32>()?;
    Ok(data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, v| (h ^ u64::from(v.to_bits())).wrapping_mul(0x0100_0000_01b3)))
}
