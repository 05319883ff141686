// `convolve`: a 3x3 or 5x5 kernel laid over the neighbourhood as written (correlation), taps
// summed row by row from 0, clamp-to-edge borders. Generated per chain
// (crates/gpu/src/program.rs): the taps with non-zero weights inlined (a zero weight adds an
// exact 0), then `convolved` or `convolved_straight` below, then the per-pixel filters that
// follow in the chain.

// Premultiplied (the default): `acc` summed over premultiplied neighbours.
fn convolved(acc: vec4<f32>, old: vec4<f32>, bias: f32) -> vec4<f32> {
    return unpremultiplied(acc, old, bias);
}

// `preserveAlpha`: `acc` summed over the straight colour; alpha stays as it was.
fn convolved_straight(acc: vec4<f32>, old: vec4<f32>, bias: f32) -> vec4<f32> {
    return vec4<f32>(unit(acc.r + bias), unit(acc.g + bias), unit(acc.b + bias), old.a);
}
