// `convolve`: a 3x3 or 5x5 kernel laid over the neighbourhood as written (correlation), taps
// summed row by row from 0, clamp-to-edge borders. Reads `image`, writes `scratch` (the two
// buffers then swap roles). Premultiplied by default; `preserveAlpha` (mode 1) convolves the
// straight colour and leaves alpha as it was.

@compute @workgroup_size(16, 16, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    if id.x >= params.width || id.y >= params.height {
        return;
    }
    let r = i32(params.radius);
    let size = 2 * r + 1;
    let premultiply = params.mode == 0u;
    var acc = vec4<f32>(0.0);
    for (var j = 0; j < size; j++) {
        for (var k = 0; k < size; k++) {
            let w = data[params.weights_start + u32(j * size + k)];
            var v = image[clamped_index(i32(id.x) + k - r, i32(id.y) + j - r)];
            if premultiply {
                v = premultiplied(v);
            }
            acc += w * v;
        }
    }
    let i = id.y * params.width + id.x;
    let old = image[i];
    if premultiply {
        scratch[i] = unpremultiplied(acc, old, params.bias);
    } else {
        scratch[i] = vec4<f32>(unit(acc.r + params.bias), unit(acc.g + params.bias), unit(acc.b + params.bias), old.a);
    }
}
