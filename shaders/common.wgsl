// Shared by every filter kernel (crates/gpu prepends it to each shader): the bindings of the one
// bind group layout, the dispatch parameters, and the pixel helpers. Mirrors the CPU reference
// in crates/imaging/src/filter (see its module documentation for the arithmetic).

// One dispatch's parameters: a 256-byte slot of a uniform buffer, chosen by dynamic offset.
struct Params {
    // The tile in the working buffers (its halo included), in pixels.
    width: u32,
    height: u32,
    // The whole image, and where the tile sits in it (the vignette needs both).
    full_width: u32,
    full_height: u32,
    origin_x: u32,
    origin_y: u32,
    // Per-pixel ops: the first f32 of the first op in `data`, and how many (24 floats each).
    ops_start: u32,
    ops_count: u32,
    // pixel.wgsl: 0 apply (image to image), 1 load (raw to image), 2 store (image to raw),
    // 3 direct (raw to raw). blur.wgsl columns: 0 blur, 1 unsharp. convolve.wgsl: 0
    // premultiplied, 1 preserveAlpha.
    mode: u32,
    // 1 when the raw samples are 16-bit (two u32 a pixel), 0 for 8-bit (one u32 a pixel).
    wide: u32,
    // Weights in `data`: the first, and the kernel's radius (taps = 2 * radius + 1 a side).
    weights_start: u32,
    radius: u32,
    amount: f32,
    threshold: f32,
    bias: f32,
    _pad: u32,
};

@group(0) @binding(0) var<uniform> params: Params;
// Per-pixel ops and kernel weights, as the CPU computed them (rounded to f32 once).
@group(0) @binding(1) var<storage, read> data: array<f32>;
// Stored samples in and out, packed: RGBA8 in one u32, or RGBA16 in two.
@group(0) @binding(2) var<storage, read> raw_in: array<u32>;
@group(0) @binding(3) var<storage, read_write> raw_out: array<u32>;
// The working image (straight RGBA) and the scratch image; the two buffers swap roles.
@group(0) @binding(4) var<storage, read_write> image: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> scratch: array<vec4<f32>>;

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

// Sample `i` of the tile from `raw_in`: v / 255 or v / 65535.
fn load_raw(i: u32) -> vec4<f32> {
    if params.wide == 0u {
        let v = raw_in[i];
        return vec4<f32>(f32(v & 255u), f32((v >> 8u) & 255u), f32((v >> 16u) & 255u), f32(v >> 24u)) / 255.0;
    }
    let lo = raw_in[2u * i];
    let hi = raw_in[2u * i + 1u];
    return vec4<f32>(f32(lo & 65535u), f32(lo >> 16u), f32(hi & 65535u), f32(hi >> 16u)) / 65535.0;
}

// floor(clamp(c, 0, 1) * MAX + 0.5) for each channel, packed into `raw_out`.
fn store_raw(i: u32, p: vec4<f32>) {
    if params.wide == 0u {
        let v = vec4<u32>(floor(clamp(p, vec4<f32>(0.0), vec4<f32>(1.0)) * 255.0 + 0.5));
        raw_out[i] = v.r | (v.g << 8u) | (v.b << 16u) | (v.a << 24u);
        return;
    }
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
