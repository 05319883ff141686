//! Times filter chains on a 4000x3000 image (the best of three runs), to see what the CPU
//! reference costs: `cargo run --release -p pixelflow-imaging --example filter_bench`.

use std::time::Instant;
use image::{DynamicImage, RgbImage, RgbaImage};
use pixelflow_imaging::FilterChain;
use serde_json::json;

fn main() {
    let (w, h) = (4000u32, 3000u32);
    let rgb = DynamicImage::ImageRgb8(RgbImage::from_fn(w, h, |x, y| image::Rgb([(x % 251) as u8, (y % 241) as u8, ((x ^ y) % 256) as u8])));
    let rgba = DynamicImage::ImageRgba8(RgbaImage::from_fn(w, h, |x, y| image::Rgba([(x % 251) as u8, (y % 241) as u8, ((x ^ y) % 256) as u8, 200])));
    let cases = [
        ("colour x5 (fused)", json!([{"type": "brightness", "amount": 1.1}, {"type": "contrast", "amount": 1.2}, {"type": "saturation", "amount": 1.3}, {"type": "hueRotate", "degrees": 20}, {"type": "vignette", "strength": 0.5}])),
        ("blur sigma 2", json!([{"type": "blur", "sigma": 2}])),
        ("blur sigma 10", json!([{"type": "blur", "sigma": 10}])),
        ("unsharp sigma 1", json!([{"type": "unsharp", "sigma": 1, "amount": 0.5}])),
        ("convolve 3x3", json!([{"type": "convolve", "kernel": [0, -1, 0, -1, 5, -1, 0, -1, 0]}])),
        ("convolve 5x5", json!([{"type": "convolve", "kernel": vec![1; 25]}])),
        ("pipeline contrast+unsharp", json!([{"type": "contrast", "amount": 1.1}, {"type": "unsharp", "sigma": 1.0, "amount": 0.5}])),
    ];
    println!("threads {}", rayon::current_num_threads());
    for (name, filters) in cases {
        let chain = FilterChain::parse(&filters).unwrap();
        for (kind, img) in [("rgb8", &rgb), ("rgba8", &rgba)] {
            let mut best = f64::MAX;
            for _ in 0..3 {
                let mut im = img.clone();
                let t = Instant::now();
                chain.apply(&mut im).unwrap();
                best = best.min(t.elapsed().as_secs_f64());
            }
            println!("{name:28} {kind:6} {:8.1} ms  {:6.1} MP/s", best * 1000.0, f64::from(w * h) / best / 1e6);
        }
    }
}
