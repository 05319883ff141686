// Shared by every filter kernel: the bindings of the one bind group layout, the tile's
// parameters, and the pixel helpers. crates/gpu (program.rs) generates each chain's entry
// points as straight-line calls into this library (pixel.wgsl, blur.wgsl, convolve.wgsl) with
// the chain's constants inlined, and compiles one pipeline per entry point once per chain.
// Mirrors the CPU reference in crates/imaging/src/filter (see its module documentation for
// the arithmetic).

// The tile being filtered: the same for every dispatch of the tile.
struct Params {
    // The tile in the buffers (its halo included), in pixels.
    width: u32,
    height: u32,
    // The whole image, and where the tile sits in it (the vignette needs both).
    full_width: u32,
    full_height: u32,
    origin_x: u32,
    origin_y: u32,
    _pad0: u32,
    _pad1: u32,
};

@group(0) @binding(0) var<uniform> params: Params;
// Stored samples in (8-bit as the image stores them, 16-bit as RGBA in two u32) and out
// (RGBA8 in one u32, or RGBA16 in two).
@group(0) @binding(1) var<storage, read> raw_in: array<u32>;
@group(0) @binding(2) var<storage, read_write> raw_out: array<u32>;
// Two working images (straight RGBA, or premultiplied between a blur's two passes), `f32` as
// the CPU keeps them: a chain never rounds between filters.
@group(0) @binding(3) var<storage, read_write> work0: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> work1: array<vec4<f32>>;

fn unit(v: f32) -> f32 {
    return clamp(v, 0.0, 1.0);
}

fn premultiplied(p: vec4<f32>) -> vec4<f32> {
    return vec4<f32>(p.rgb * p.a, p.a);
}

// A premultiplied result `q` back to straight colour: alpha clamped; where it is 0 the colour
// stays `old` (the pixel before the pass), as the CPU does.
fn unpremultiplied(q: vec4<f32>, old: vec4<f32>, bias: f32) -> vec4<f32> {
    let a = unit(q.a);
    if a > 0.0 {
        return vec4<f32>(unit(q.r / a + bias), unit(q.g / a + bias), unit(q.b / a + bias), a);
    }
    return vec4<f32>(old.rgb, a);
}

// Pixel `i` of the tile from `raw_in`, as straight RGBA: v / 255 (8-bit) or v / 65535
// (16-bit). 8-bit samples arrive as the image stores them (`load8_N`: N bytes a pixel, grey
// read as R = G = B, a missing alpha as 1); 16-bit ones packed as RGBA by the CPU.
fn load8_4(i: u32) -> vec4<f32> {
    let v = raw_in[i];
    return vec4<f32>(f32(v & 255u), f32((v >> 8u) & 255u), f32((v >> 16u) & 255u), f32(v >> 24u)) / 255.0;
}

// The four bytes of `raw_in` from byte `b` on, the first in the low bits (a pixel of one to
// three bytes may straddle two words; the buffer has a word to spare after the samples).
fn bytes_at(b: u32) -> u32 {
    let shift = (b & 3u) * 8u;
    let lo = raw_in[b >> 2u] >> shift;
    if shift == 0u {
        return lo;
    }
    return lo | (raw_in[(b >> 2u) + 1u] << (32u - shift));
}

fn load8_3(i: u32) -> vec4<f32> {
    let v = bytes_at(3u * i);
    return vec4<f32>(f32(v & 255u), f32((v >> 8u) & 255u), f32((v >> 16u) & 255u), 255.0) / 255.0;
}

fn load8_2(i: u32) -> vec4<f32> {
    let v = raw_in[i >> 1u] >> ((i & 1u) * 16u);
    let l = f32(v & 255u);
    return vec4<f32>(l, l, l, f32((v >> 8u) & 255u)) / 255.0;
}

fn load8_1(i: u32) -> vec4<f32> {
    let l = f32((raw_in[i >> 2u] >> ((i & 3u) * 8u)) & 255u);
    return vec4<f32>(l, l, l, 255.0) / 255.0;
}

fn load16(i: u32) -> vec4<f32> {
    let lo = raw_in[2u * i];
    let hi = raw_in[2u * i + 1u];
    return vec4<f32>(f32(lo & 65535u), f32(lo >> 16u), f32(hi & 65535u), f32(hi >> 16u)) / 65535.0;
}

// floor(clamp(c, 0, 1) * MAX + 0.5) for each channel, packed into `raw_out`.
fn store8(i: u32, p: vec4<f32>) {
    let v = vec4<u32>(floor(clamp(p, vec4<f32>(0.0), vec4<f32>(1.0)) * 255.0 + 0.5));
    raw_out[i] = v.r | (v.g << 8u) | (v.b << 16u) | (v.a << 24u);
}

fn store16(i: u32, p: vec4<f32>) {
    let v = vec4<u32>(floor(clamp(p, vec4<f32>(0.0), vec4<f32>(1.0)) * 65535.0 + 0.5));
    raw_out[2u * i] = v.r | (v.g << 16u);
    raw_out[2u * i + 1u] = v.b | (v.a << 16u);
}

// The tile index of (x, y), clamped to the tile's edges (clamp-to-edge borders: a tile's
// edges inside the image are covered by its halo).
fn clamped_index(x: i32, y: i32) -> u32 {
    let cx = clamp(x, 0, i32(params.width) - 1);
    let cy = clamp(y, 0, i32(params.height) - 1);
    return u32(cy) * params.width + u32(cx);
}
