//! A chain's compiled passes (from the CPU reference, matrices and weights already in `f32`)
//! turned into WGSL written for that chain: one entry point a dispatch, each straight-line
//! calls into the shader library (`shaders/*.wgsl`) with the chain's constants inlined (exact
//! `f32` bits), so a dispatch pays only for its own filters' arithmetic. The generated source
//! is also the chain's signature: the context compiles it once and caches the pipelines.
//!
//! Dispatches: per-pixel runs are never dispatches of their own except the chain's leading run
//! (applied while loading the samples) or a chain of per-pixel filters only (load, filters,
//! store in one dispatch). The run after a neighbourhood pass is applied in that pass's last
//! dispatch, which also stores the samples when it ends the chain. A blur (or unsharp) is two
//! dispatches (rows, columns), a convolution one.

use std::fmt::Write;

use pixelflow_imaging::filter::{Neighbourhood, Pass, PixelOp};

/// The shader library every generated module starts with.
pub(crate) const LIBRARY: [(&str, &str); 4] = [
    ("common.wgsl", include_str!("../../../shaders/common.wgsl")),
    ("pixel.wgsl", include_str!("../../../shaders/pixel.wgsl")),
    ("blur.wgsl", include_str!("../../../shaders/blur.wgsl")),
    ("convolve.wgsl", include_str!("../../../shaders/convolve.wgsl")),
];

/// Invocations a workgroup side (`@workgroup_size(16, 16, 1)` in every entry point).
pub(crate) const WORKGROUP: u32 = 16;

/// Taps up to which a gaussian's sum is unrolled; a longer one loops over its weights.
const UNROLL_TAPS: usize = 25;

/// Pixels an invocation of an unrolled blur pass or a convolution produces, along the pass
/// (a row for a convolution): they share all but one of their taps, loaded once.
/// (On lavapipe 4 used half the CPU time of 1 for a blur; 8 was no better than 4.)
const BLOCK: u32 = 4;

/// Where a dispatch reads or writes the image: the packed samples (`raw_in` to read,
/// `raw_out` to write) or a working image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Loc {
    Raw,
    Work(u8),
}

impl Loc {
    /// The other working image (the first one when this is the samples).
    fn other(self) -> Loc {
        match self {
            Loc::Raw => Loc::Work(0),
            Loc::Work(k) => Loc::Work(1 - k),
        }
    }
}

/// What a tile's uploaded samples (`raw_in`) hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Samples {
    /// 8-bit samples as the image stores them, this many a pixel (1 to 4).
    Bytes(usize),
    /// 16-bit samples packed as RGBA by the CPU, two `u32` a pixel.
    Rgba16,
}

/// One dispatch: its entry point in the generated source and what it does (for profiles).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stage {
    pub entry: String,
    pub label: &'static str,
    /// Pixels an invocation produces: (columns, rows).
    pub block: (u32, u32),
}

/// A chain as WGSL and the dispatches of one tile.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Program {
    /// The whole module (library and generated entry points): the pipeline cache's key.
    pub source: String,
    pub stages: Vec<Stage>,
    /// Pixels a tile needs around it so that its own pixels come out as for the whole image:
    /// the sum of the neighbourhood passes' radii.
    pub halo: u32,
    /// Whether the chain needs the working images (any neighbourhood pass).
    pub needs_working: bool,
}

/// An `f32` constant, exactly (no decimal round trip).
fn lit(v: f32) -> String {
    if v == 0.0 && v.is_sign_positive() {
        "0.0".into()
    } else {
        format!("bitcast<f32>({:#010x}u)", v.to_bits())
    }
}

fn vec(values: &[f32]) -> String {
    let parts: Vec<String> = values.iter().map(|&v| lit(v)).collect();
    format!("vec{}<f32>({})", values.len(), parts.join(", "))
}

/// The run's filters as statements on `p`, in order.
fn ops_code(ops: &[PixelOp]) -> String {
    let mut s = String::new();
    for op in ops {
        let call = match op {
            PixelOp::Affine { scale, offset } => format!("affine(p, {}, {})", lit(*scale), lit(*offset)),
            PixelOp::Contrast(k) => format!("contrast(p, {})", lit(*k)),
            PixelOp::Power(e) => format!("power(p, {})", lit(*e)),
            PixelOp::Matrix3(m) => format!("matrix3(p, {}, {}, {})", vec(&m[0..3]), vec(&m[3..6]), vec(&m[6..9])),
            PixelOp::Matrix4x5(m) => {
                let rows: Vec<String> = (0..4).map(|r| vec(&m[r * 5..r * 5 + 4])).collect();
                let offsets = vec(&[m[4], m[9], m[14], m[19]]);
                format!("matrix4x5(p, {}, {offsets})", rows.join(", "))
            }
            PixelOp::Vignette { strength, radius } => {
                format!("vignette(p, params.origin_x + u32(px), params.origin_y + u32(py), {}, {})", lit(*strength), lit(*radius))
            }
        };
        let _ = writeln!(s, "        p = {call};");
    }
    s
}

struct Generator {
    /// The function reading a pixel of the uploaded samples.
    load: &'static str,
    /// `8` or `16`: the stored samples' bits.
    bits: u32,
    source: String,
    stages: Vec<Stage>,
}

/// Reads pixel `index` of `loc`, as straight RGBA `f32` (the samples through `load`).
fn read(load: &str, loc: Loc, index: &str) -> String {
    match loc {
        Loc::Raw => format!("{load}({index})"),
        Loc::Work(k) => format!("work{k}[{index}]"),
    }
}

impl Generator {
    fn read(&self, loc: Loc, index: &str) -> String {
        read(self.load, loc, index)
    }

    /// Stores `value` at the invocation's own pixel.
    fn write(&self, loc: Loc, value: &str) -> String {
        match loc {
            Loc::Raw => format!("        store{}(i, {value});\n", self.bits),
            Loc::Work(k) => format!("        work{k}[i] = {value};\n"),
        }
    }

    /// Appends an entry point whose invocations each produce a `block` (columns, rows) of
    /// pixels from (`x`, `y`), running `body` (built with [`at_pixel`]).
    fn entry(&mut self, label: &'static str, block: (u32, u32), body: &str) {
        let entry = format!("s{}", self.stages.len());
        let (bx, by) = block;
        let _ = write!(
            self.source,
            "\n@compute @workgroup_size({WORKGROUP}, {WORKGROUP}, 1)\nfn {entry}(@builtin(global_invocation_id) id: vec3<u32>) {{\n    \
             let x = i32(id.x * {bx}u);\n    let y = i32(id.y * {by}u);\n    \
             if x >= i32(params.width) || y >= i32(params.height) {{\n        return;\n    }}\n{body}}}\n"
        );
        self.stages.push(Stage { entry, label, block });
    }

    /// The long-kernel form of a gaussian pass, one pixel an invocation: `acc` summed over
    /// `weights[j] * tap(j - radius)` in a loop over a constant array of the weights.
    fn gaussian_loop(&mut self, weights: &[f32], tap: &str) -> String {
        let name = format!("weights{}", self.stages.len());
        // The weights' bits: a bitcast is not a constant expression in naga.
        let values: Vec<String> = weights.iter().map(|&w| format!("{:#010x}u", w.to_bits())).collect();
        let n = weights.len();
        let _ = writeln!(self.source, "\nconst {name} = array<u32, {n}>({});", values.join(", "));
        format!("        var acc = vec4<f32>(0.0);\n        for (var j = 0; j < {n}; j++) {{\n            acc += bitcast<f32>({name}[j]) * {tap};\n        }}\n")
    }

    /// Per-pixel filters only: samples in, filters, samples out.
    fn pixel(&mut self, ops: &[PixelOp], src: Loc, dst: Loc) {
        let inner = format!("        var p = {};\n{}{}", self.read(src, "i"), ops_code(ops), self.write(dst, "p"));
        self.entry("per-pixel filters", (1, 1), &at_pixel(0, 0, &inner));
    }

    /// The separable gaussian from `src` (rows into `scratch`, then columns) into `dst`,
    /// unsharp when `unsharp` is (amount, threshold), then `ops`. Each invocation of a short
    /// kernel produces [`BLOCK`] pixels along the pass, loading the taps they share once.
    fn blur(&mut self, weights: &[f32], unsharp: Option<(f32, f32)>, ops: &[PixelOp], src: Loc, scratch: Loc, dst: Loc) {
        let (taps, radius) = (weights.len(), (weights.len() / 2) as i64);
        let sum = |k: usize| {
            let mut s = String::from("        var acc = vec4<f32>(0.0);\n");
            for (j, &w) in weights.iter().enumerate() {
                let _ = writeln!(s, "        acc += {} * t{};", lit(w), k + j);
            }
            s
        };
        let label = if unsharp.is_some() { "unsharp rows" } else { "blur rows" };
        let store_scratch = self.write(scratch, "acc");
        if taps <= UNROLL_TAPS {
            let mut body = String::new();
            for c in 0..BLOCK as usize + taps - 1 {
                let _ = writeln!(body, "    let t{c} = premultiplied({});", self.read(src, &format!("clamped_index(x + {}, y)", c as i64 - radius)));
            }
            for k in 0..BLOCK {
                body += &at_pixel(k, 0, &format!("{}{store_scratch}", sum(k as usize)));
            }
            self.entry(label, (BLOCK, 1), &body);
        } else {
            let tap = format!("premultiplied({})", self.read(src, &format!("clamped_index(px + j - {radius}, py)")));
            let inner = self.gaussian_loop(weights, &tap) + &store_scratch;
            self.entry(label, (1, 1), &at_pixel(0, 0, &inner));
        }

        let mut end = format!("        let old = {};\n", self.read(src, "i"));
        match unsharp {
            None => end += "        var p = blurred(acc, old);\n",
            Some((amount, threshold)) => {
                let _ = writeln!(end, "        var p = unsharpened(acc, old, {}, {});", lit(amount), lit(threshold));
            }
        }
        end += &ops_code(ops);
        end += &self.write(dst, "p");
        let label = if unsharp.is_some() { "unsharp columns" } else { "blur columns" };
        if taps <= UNROLL_TAPS {
            let mut body = String::new();
            for c in 0..BLOCK as usize + taps - 1 {
                let _ = writeln!(body, "    let t{c} = {};", self.read(scratch, &format!("clamped_index(x, y + {})", c as i64 - radius)));
            }
            for k in 0..BLOCK {
                body += &at_pixel(0, k, &format!("{}{end}", sum(k as usize)));
            }
            self.entry(label, (1, BLOCK), &body);
        } else {
            let tap = self.read(scratch, &format!("clamped_index(px, py + j - {radius})"));
            let inner = self.gaussian_loop(weights, &tap) + &end;
            self.entry(label, (1, 1), &at_pixel(0, 0, &inner));
        }
    }

    /// A `size x size` convolution from `src` into `dst` (never the same image), then `ops`:
    /// [`BLOCK`] pixels of a row an invocation, sharing their taps. Taps with a zero weight
    /// are left out: they add an exact 0.
    #[allow(clippy::too_many_arguments)]
    fn convolve(&mut self, size: usize, weights: &[f32], bias: f32, preserve_alpha: bool, ops: &[PixelOp], src: Loc, dst: Loc) {
        let radius = (size / 2) as i64;
        let mut body = String::new();
        let used = |row: usize, c: usize| (0..BLOCK as usize).any(|k| c >= k && c - k < size && weights[row * size + c - k] != 0.0);
        for row in 0..size {
            for c in (0..BLOCK as usize + size - 1).filter(|&c| used(row, c)) {
                let tap = self.read(src, &format!("clamped_index(x + {}, y + {})", c as i64 - radius, row as i64 - radius));
                let tap = if preserve_alpha { tap } else { format!("premultiplied({tap})") };
                let _ = writeln!(body, "    let t{row}_{c} = {tap};");
            }
        }
        let finish = if preserve_alpha { "convolved_straight" } else { "convolved" };
        for k in 0..BLOCK as usize {
            let mut inner = String::from("        var acc = vec4<f32>(0.0);\n");
            for (n, &w) in weights.iter().enumerate().filter(|(_, &w)| w != 0.0) {
                let _ = writeln!(inner, "        acc += {} * t{}_{};", lit(w), n / size, n % size + k);
            }
            let _ = writeln!(inner, "        let old = {};", self.read(src, "i"));
            let _ = writeln!(inner, "        var p = {finish}(acc, old, {});", lit(bias));
            inner += &ops_code(ops);
            inner += &self.write(dst, "p");
            body += &at_pixel(k as u32, 0, &inner);
        }
        self.entry("convolve", (BLOCK, 1), &body);
    }
}

/// `inner` for the block's pixel at (`x + dx`, `y + dy`) when it is in the tile, with `px`,
/// `py` (its place in the tile) and `i` (its index) defined.
fn at_pixel(dx: u32, dy: u32, inner: &str) -> String {
    // The block's first pixel is in the tile (the entry point returns otherwise).
    let test = match (dx, dy) {
        (0, 0) => String::new(),
        (dx, 0) => format!("if x + {dx} < i32(params.width) "),
        (0, dy) => format!("if y + {dy} < i32(params.height) "),
        (dx, dy) => format!("if x + {dx} < i32(params.width) && y + {dy} < i32(params.height) "),
    };
    format!("    {test}{{\n        let px = x + {dx};\n        let py = y + {dy};\n        let i = u32(py) * params.width + u32(px);\n{inner}    }}\n")
}

impl Program {
    /// The program of `passes` for tiles uploaded as `samples`.
    pub fn new(passes: &[Pass], samples: Samples) -> Program {
        let (load, bits) = match samples {
            Samples::Bytes(1) => ("load8_1", 8),
            Samples::Bytes(2) => ("load8_2", 8),
            Samples::Bytes(3) => ("load8_3", 8),
            Samples::Bytes(_) => ("load8_4", 8),
            Samples::Rgba16 => ("load16", 16),
        };
        let mut g = Generator { load, bits, source: String::new(), stages: Vec::new() };
        for (_, library) in LIBRARY {
            g.source += library;
            g.source.push('\n');
        }
        g.source += "\n// Generated for one chain by crates/gpu/src/program.rs.\n";

        // The chain as: a leading per-pixel run, then neighbourhood passes each with the
        // per-pixel run that follows it.
        let (lead, rest) = match passes.split_first() {
            Some((Pass::Pixel(lead), rest)) => (lead.as_slice(), rest),
            _ => (&[][..], passes),
        };
        let mut steps: Vec<(&Neighbourhood, Vec<PixelOp>)> = Vec::new();
        for pass in rest {
            match pass {
                Pass::Neighbourhood(n) => steps.push((n, Vec::new())),
                Pass::Pixel(ops) => match steps.last_mut() {
                    Some((_, after)) => after.extend_from_slice(ops),
                    None => unreachable!("a chain's per-pixel filters after the first pass follow a neighbourhood pass"),
                },
            }
        }
        if steps.is_empty() {
            g.pixel(lead, Loc::Raw, Loc::Raw);
            return Program { source: g.source, stages: g.stages, halo: 0, needs_working: false };
        }
        let mut at = Loc::Raw;
        if !lead.is_empty() {
            g.pixel(lead, Loc::Raw, Loc::Work(0));
            at = Loc::Work(0);
        }
        let mut halo = 0u32;
        let last = steps.len() - 1;
        for (n, (pass, ops)) in steps.iter().enumerate() {
            match pass {
                Neighbourhood::Blur(gaussian) | Neighbourhood::Unsharp { gaussian, .. } => {
                    let unsharp = match pass {
                        Neighbourhood::Unsharp { amount, threshold, .. } => Some((*amount, *threshold)),
                        _ => None,
                    };
                    // In place when the image is a working one (each pixel reads only itself
                    // there); from the samples into the second working image.
                    let scratch = at.other();
                    let dst = if n == last { Loc::Raw } else if at == Loc::Raw { scratch.other() } else { at };
                    g.blur(&gaussian.weights, unsharp, ops, at, scratch, dst);
                    at = dst;
                    halo = halo.saturating_add(gaussian.radius as u32);
                }
                Neighbourhood::Convolve { size, weights, bias, preserve_alpha } => {
                    let dst = if n == last { Loc::Raw } else { at.other() };
                    g.convolve(*size, weights, *bias, *preserve_alpha, ops, at, dst);
                    at = dst;
                    halo = halo.saturating_add((*size / 2) as u32);
                }
            }
        }
        Program { source: g.source, stages: g.stages, halo, needs_working: true }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pixelflow_imaging::filter::{FilterChain, FilterOp};

    fn program(filters: Vec<FilterOp>) -> Program {
        Program::new(FilterChain::new(filters).unwrap().compiled(), Samples::Bytes(4))
    }

    fn generated(p: &Program) -> &str {
        &p.source[p.source.find("// Generated").unwrap()..]
    }

    #[test]
    fn a_per_pixel_chain_is_one_straight_line_dispatch() {
        let p = program(vec![FilterOp::Brightness { amount: 1.2 }, FilterOp::Sepia { amount: 1.0 }]);
        assert_eq!(p.stages.iter().map(|s| s.label).collect::<Vec<_>>(), ["per-pixel filters"]);
        assert_eq!((p.halo, p.needs_working), (0, false));
        let code = generated(&p);
        assert!(code.contains(&format!("p = affine(p, bitcast<f32>({:#010x}u), 0.0);", 1.2f32.to_bits())), "{code}");
        assert!(code.contains("p = matrix3(p, vec3<f32>("), "{code}");
        assert!(code.contains("var p = load8_4(i);") && code.contains("store8(i, p);"), "{code}");
        assert!(!code.contains("switch") && !code.contains("for ("), "{code}");
        let invert = FilterChain::new(vec![FilterOp::Invert { amount: 1.0 }]).unwrap();
        assert!(generated(&Program::new(invert.compiled(), Samples::Rgba16)).contains("var p = load16(i);"));
        assert!(generated(&Program::new(invert.compiled(), Samples::Bytes(3))).contains("var p = load8_3(i);"));
    }

    #[test]
    fn runs_fuse_into_the_neighbourhood_passes_around_them() {
        let p = program(vec![
            FilterOp::Contrast { amount: 1.1 },
            FilterOp::Invert { amount: 1.0 },
            FilterOp::Blur { sigma: 1.0 },
            FilterOp::Gamma { value: 2.0 },
            FilterOp::Convolve { kernel: vec![0.0, -1.0, 0.0, -1.0, 5.0, -1.0, 0.0, -1.0, 0.0], divisor: None, bias: 0.0, preserve_alpha: false },
            FilterOp::Vignette { strength: 0.5, radius: 0.5 },
        ]);
        let labels: Vec<&str> = p.stages.iter().map(|s| s.label).collect();
        assert_eq!(labels, ["per-pixel filters", "blur rows", "blur columns", "convolve"]);
        assert_eq!((p.halo, p.needs_working), (3 + 1, true));
        let code = generated(&p);
        // Lead run into work0; blur in place through work1; gamma after the columns; the
        // convolution reads work0 and stores the samples with the vignette.
        let bodies: Vec<&str> = code.split("@compute").skip(1).collect();
        assert!(bodies[0].contains("var p = load8_4(i);") && bodies[0].contains("work0[i] = p;"), "{}", bodies[0]);
        assert!(bodies[1].contains("premultiplied(work0[clamped_index(x + -3, y)])") && bodies[1].contains("work1[i] = acc;"), "{}", bodies[1]);
        assert!(bodies[2].contains("work1[clamped_index(x, y + 3)]") && bodies[2].contains("p = power(p,") && bodies[2].contains("work0[i] = p;"), "{}", bodies[2]);
        // Five non-zero taps of nine, for each pixel of the block; the corners never loaded.
        assert!(!bodies[3].contains("let t0_0 ") && bodies[3].contains("let t0_1 "), "{}", bodies[3]);
        assert_eq!(bodies[3].matches("acc +=").count(), 5 * BLOCK as usize, "{}", bodies[3]);
        assert!(bodies[3].contains("p = vignette(p,") && bodies[3].contains("store8(i, p);"), "{}", bodies[3]);
    }

    #[test]
    fn a_chain_starting_with_a_neighbourhood_pass_reads_the_samples() {
        let p = program(vec![FilterOp::Blur { sigma: 20.0 }, FilterOp::Unsharp { sigma: 1.0, amount: 1.0, threshold: 0.1 }]);
        let code = generated(&p);
        let bodies: Vec<&str> = code.split("@compute").skip(1).collect();
        assert_eq!(bodies.len(), 4);
        // A 121-tap blur loops over its weights; the samples stay in raw_in, the blur goes to work1.
        assert!(code.contains("const weights0 = array<u32, 121>("), "{code}");
        assert!(bodies[0].contains("load8_4(clamped_index(px + j - 60, py))") && bodies[0].contains("work0[i] = acc;"));
        assert!(bodies[1].contains("let old = load8_4(i);") && bodies[1].contains("work1[i] = p;"));
        assert!(bodies[2].contains("work1[clamped_index(x + -3, y)]") && bodies[2].contains("work0[i] = acc;"));
        assert!(bodies[3].contains("unsharpened(acc, old,") && bodies[3].contains("store8(i, p);"));
        assert_eq!(p.halo, 60 + 3);
    }
}
