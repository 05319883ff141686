// The per-pixel filters (brightness, contrast, saturation, hueRotate, gamma, grayscale, sepia,
// invert, colorMatrix, vignette) as the CPU compiles them (`PixelOp`), one function each on
// straight RGBA, each clamping what it writes. A chain's run of them is generated as
// straight-line calls with its constants inlined (crates/gpu/src/program.rs), so a fused run
// costs only its own arithmetic.

// `c * scale + offset` on R, G, B: brightness, invert.
fn affine(p: vec4<f32>, scale: f32, offset: f32) -> vec4<f32> {
    return vec4<f32>(unit(p.r * scale + offset), unit(p.g * scale + offset), unit(p.b * scale + offset), p.a);
}

fn contrast(p: vec4<f32>, k: f32) -> vec4<f32> {
    return vec4<f32>(unit((p.r - 0.5) * k + 0.5), unit((p.g - 0.5) * k + 0.5), unit((p.b - 0.5) * k + 0.5), p.a);
}

// `c ^ e` on R, G, B (gamma). pow(0, e) is undefined in WGSL; the CPU's powf gives 0 (e > 0).
fn power(p: vec4<f32>, e: f32) -> vec4<f32> {
    return vec4<f32>(
        select(unit(pow(p.r, e)), 0.0, p.r <= 0.0),
        select(unit(pow(p.g, e)), 0.0, p.g <= 0.0),
        select(unit(pow(p.b, e)), 0.0, p.b <= 0.0),
        p.a);
}

// `RGB' = M · RGB`, row-major 3x3, rows evaluated left to right.
fn matrix3(p: vec4<f32>, m0: vec3<f32>, m1: vec3<f32>, m2: vec3<f32>) -> vec4<f32> {
    return vec4<f32>(
        unit(m0.x * p.r + m0.y * p.g + m0.z * p.b),
        unit(m1.x * p.r + m1.y * p.g + m1.z * p.b),
        unit(m2.x * p.r + m2.y * p.g + m2.z * p.b),
        p.a);
}

// `RGBA' = M · [R G B A 1]`, row-major 4x5: each row's four weights and its offset.
fn matrix4x5(p: vec4<f32>, m0: vec4<f32>, m1: vec4<f32>, m2: vec4<f32>, m3: vec4<f32>, offsets: vec4<f32>) -> vec4<f32> {
    return vec4<f32>(
        unit(m0.x * p.r + m0.y * p.g + m0.z * p.b + m0.w * p.a + offsets.x),
        unit(m1.x * p.r + m1.y * p.g + m1.z * p.b + m1.w * p.a + offsets.y),
        unit(m2.x * p.r + m2.y * p.g + m2.z * p.b + m2.w * p.a + offsets.z),
        unit(m3.x * p.r + m3.y * p.g + m3.z * p.b + m3.w * p.a + offsets.w));
}

// `c * (1 - strength * smoothstep)` for the pixel at (x, y) of the whole image.
fn vignette(p: vec4<f32>, x: u32, y: u32, strength: f32, radius: f32) -> vec4<f32> {
    let cx = f32(params.full_width) / 2.0;
    let cy = f32(params.full_height) / 2.0;
    let dx = (f32(x) + 0.5 - cx) / cx;
    let dy = (f32(y) + 0.5 - cy) / cy;
    let d = sqrt((dx * dx + dy * dy) / 2.0);
    let t = clamp((d - radius) / (1.0 - radius), 0.0, 1.0);
    let f = 1.0 - strength * (t * t * (3.0 - 2.0 * t));
    return vec4<f32>(unit(p.r * f), unit(p.g * f), unit(p.b * f), p.a);
}
