// The separable gaussian (blur, and the blur inside unsharp) on premultiplied RGBA with
// clamp-to-edge borders: `rows` blurs `image` along rows into `scratch`, `columns` blurs
// `scratch` along columns back into `image` (turned back into straight colour, or, for
// unsharp, `p + amount * (p - blurred)` first). Taps are summed in kernel order from 0.

@compute @workgroup_size(16, 16, 1)
fn rows(@builtin(global_invocation_id) id: vec3<u32>) {
    if id.x >= params.width || id.y >= params.height {
        return;
    }
    let r = i32(params.radius);
    var acc = vec4<f32>(0.0);
    for (var j = 0; j <= 2 * r; j++) {
        let w = data[params.weights_start + u32(j)];
        acc += w * premultiplied(image[clamped_index(i32(id.x) + j - r, i32(id.y))]);
    }
    scratch[id.y * params.width + id.x] = acc;
}

@compute @workgroup_size(16, 16, 1)
fn columns(@builtin(global_invocation_id) id: vec3<u32>) {
    if id.x >= params.width || id.y >= params.height {
        return;
    }
    let r = i32(params.radius);
    var acc = vec4<f32>(0.0);
    for (var j = 0; j <= 2 * r; j++) {
        let w = data[params.weights_start + u32(j)];
        acc += w * scratch[clamped_index(i32(id.x), i32(id.y) + j - r)];
    }
    let i = id.y * params.width + id.x;
    let old = image[i];
    if params.mode == 1u {
        // Unsharp: per channel (alpha included), differences below the threshold are 0.
        let p = premultiplied(old);
        var q = p;
        for (var c = 0u; c < 4u; c++) {
            var d = p[c] - acc[c];
            if abs(d) < params.threshold {
                d = 0.0;
            }
            q[c] = p[c] + params.amount * d;
        }
        image[i] = unpremultiplied(q, old, 0.0);
    } else {
        image[i] = unpremultiplied(acc, old, 0.0);
    }
}
