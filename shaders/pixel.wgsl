// The per-pixel filters of one fused run (brightness, contrast, saturation, hueRotate, gamma,
// grayscale, sepia, invert, colorMatrix, vignette), interpreted from `data` in chain order in
// one dispatch, each clamping what it writes. Also loads raw samples into the working image
// and stores it back (`params.mode`).

// Op kinds, as crates/gpu/src/program.rs writes them.
const AFFINE: u32 = 0u;
const CONTRAST: u32 = 1u;
const POWER: u32 = 2u;
const MATRIX3: u32 = 3u;
const MATRIX4X5: u32 = 4u;
const VIGNETTE: u32 = 5u;
const OP_FLOATS: u32 = 24u;

fn apply_ops(input: vec4<f32>, x: u32, y: u32) -> vec4<f32> {
    var p = input;
    for (var i = 0u; i < params.ops_count; i++) {
        let o = params.ops_start + i * OP_FLOATS;
        let kind = u32(data[o]);
        switch kind {
            case AFFINE: {
                let scale = data[o + 1u];
                let offset = data[o + 2u];
                p = vec4<f32>(unit(p.r * scale + offset), unit(p.g * scale + offset), unit(p.b * scale + offset), p.a);
            }
            case CONTRAST: {
                let k = data[o + 1u];
                p = vec4<f32>(unit((p.r - 0.5) * k + 0.5), unit((p.g - 0.5) * k + 0.5), unit((p.b - 0.5) * k + 0.5), p.a);
            }
            case POWER: {
                let e = data[o + 1u];
                // pow(0, e) is undefined in WGSL; the CPU's powf gives 0 (e > 0 always).
                p = vec4<f32>(
                    select(unit(pow(p.r, e)), 0.0, p.r <= 0.0),
                    select(unit(pow(p.g, e)), 0.0, p.g <= 0.0),
                    select(unit(pow(p.b, e)), 0.0, p.b <= 0.0),
                    p.a);
            }
            case MATRIX3: {
                var q = p;
                for (var r = 0u; r < 3u; r++) {
                    let m = o + 1u + r * 3u;
                    q[r] = unit(data[m] * p.r + data[m + 1u] * p.g + data[m + 2u] * p.b);
                }
                p = q;
            }
            case MATRIX4X5: {
                var q = p;
                for (var r = 0u; r < 4u; r++) {
                    let m = o + 1u + r * 5u;
                    q[r] = unit(data[m] * p.r + data[m + 1u] * p.g + data[m + 2u] * p.b + data[m + 3u] * p.a + data[m + 4u]);
                }
                p = q;
            }
            case VIGNETTE: {
                let strength = data[o + 1u];
                let radius = data[o + 2u];
                let cx = f32(params.full_width) / 2.0;
                let cy = f32(params.full_height) / 2.0;
                let dx = (f32(x) + 0.5 - cx) / cx;
                let dy = (f32(y) + 0.5 - cy) / cy;
                let d = sqrt((dx * dx + dy * dy) / 2.0);
                let t = clamp((d - radius) / (1.0 - radius), 0.0, 1.0);
                let f = 1.0 - strength * (t * t * (3.0 - 2.0 * t));
                p = vec4<f32>(unit(p.r * f), unit(p.g * f), unit(p.b * f), p.a);
            }
            default: {}
        }
    }
    return p;
}

@compute @workgroup_size(16, 16, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    if id.x >= params.width || id.y >= params.height {
        return;
    }
    let i = id.y * params.width + id.x;
    let x = params.origin_x + id.x;
    let y = params.origin_y + id.y;
    switch params.mode {
        case 1u: {
            image[i] = apply_ops(load_raw(i), x, y);
        }
        case 2u: {
            store_raw(i, apply_ops(image[i], x, y));
        }
        case 3u: {
            store_raw(i, apply_ops(load_raw(i), x, y));
        }
        default: {
            image[i] = apply_ops(image[i], x, y);
        }
    }
}
