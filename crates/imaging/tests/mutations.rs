//! Hostile input: valid files of every decoded format with bytes flipped, cut or spliced, fed to
//! validate (with a full decode) and resize. Each must answer or fail with an error; none may
//! panic or hang. Deterministic (a fixed xorshift seed) and small enough to run in a second;
//! `PIXELFLOW_MUTATIONS=20000` runs longer (per sample file).

use image::{DynamicImage, RgbaImage};
use pixelflow_imaging::encode::{self, EncodeOptions};
use pixelflow_imaging::geometry::{Fit, Target};
use pixelflow_imaging::{validate_bytes, OutputFormat, ResizeOptions, Resizer, ValidateOptions, Variant};

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn samples() -> Vec<Vec<u8>> {
    let img = DynamicImage::ImageRgba8(RgbaImage::from_fn(40, 24, |x, y| image::Rgba([(x * 6) as u8, (y * 10) as u8, (x ^ y) as u8, if x < 5 { 0 } else { 255 }])));
    let mut out: Vec<Vec<u8>> = [OutputFormat::Jpeg, OutputFormat::Png, OutputFormat::Webp]
        .into_iter()
        .map(|f| encode::encode(&img, &EncodeOptions::new(f)).unwrap())
        .collect();
    let mut progressive = EncodeOptions::new(OutputFormat::Jpeg);
    progressive.effort = pixelflow_imaging::Effort::Balanced;
    out.push(encode::encode(&img, &progressive).unwrap());
    let mut gif = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut gif), image::ImageFormat::Gif).unwrap();
    out.push(gif);
    let mut bmp = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut bmp), image::ImageFormat::Bmp).unwrap();
    out.push(bmp);
    for tiff_img in [img.clone(), DynamicImage::ImageRgb16(img.to_rgb16())] {
        let mut tiff = Vec::new();
        tiff_img.write_to(&mut std::io::Cursor::new(&mut tiff), image::ImageFormat::Tiff).unwrap();
        out.push(tiff);
    }
    out
}

fn mutate(rng: &mut XorShift, data: &[u8]) -> Vec<u8> {
    let mut d = data.to_vec();
    match rng.below(4) {
        0 => {
            for _ in 0..1 + rng.below(8) {
                let i = rng.below(d.len());
                d[i] = rng.next() as u8;
            }
        }
        1 => d.truncate(rng.below(d.len())),
        2 => {
            // Header fields are where sizes live: hit the first 64 bytes.
            let i = rng.below(d.len().min(64));
            d[i] = [0x00, 0xFF, 0x7F, 0x80][rng.below(4)];
        }
        _ => {
            let (a, b) = (rng.below(d.len()), rng.below(d.len()));
            let chunk: Vec<u8> = d[a.min(b)..a.max(b)].to_vec();
            let at = rng.below(d.len());
            d.splice(at..at, chunk);
        }
    }
    d
}

#[test]
fn mutated_files_never_panic() {
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let options = ValidateOptions { decode: true, ..ValidateOptions::default() };
    let resize = ResizeOptions::new(vec![Variant::new("v", Target { width: Some(16), height: Some(16), fit: Fit::Cover, ..Target::default() })]).unwrap();
    let mut resizer = Resizer::new();
    let (mut valid, mut invalid) = (0, 0);
    let rounds = std::env::var("PIXELFLOW_MUTATIONS").ok().and_then(|n| n.parse().ok()).unwrap_or(150);
    for sample in samples() {
        for _ in 0..rounds {
            let bytes = mutate(&mut rng, &sample);
            let v = validate_bytes(&bytes, None, &options);
            if v.is_valid {
                valid += 1;
            } else {
                invalid += 1;
                assert!(v.reason.is_some());
            }
            let _ = resizer.resize(&bytes, &resize);
        }
    }
    assert!(valid > 0 && invalid > 0, "the mutations exercised both paths ({valid} valid, {invalid} invalid)");
}
