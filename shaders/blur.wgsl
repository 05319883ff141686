// The separable gaussian (blur, and the blur inside unsharp) on premultiplied RGBA with
// clamp-to-edge borders. Generated per chain (crates/gpu/src/program.rs): a rows entry point
// sums the taps along the row, premultiplying each, into a working image; a columns entry
// point sums that along the column (weights inlined, taps in kernel order from 0) and ends
// with `blurred` or `unsharpened` below, then the per-pixel filters that follow in the chain.

// The blur's result `acc` (premultiplied) back to straight colour; `old` the pixel before it.
fn blurred(acc: vec4<f32>, old: vec4<f32>) -> vec4<f32> {
    return unpremultiplied(acc, old, 0.0);
}

// Unsharp: with `p` the premultiplied pixel and `b` its blur, per channel (alpha included)
// `d = p - b`, 0 below the threshold, `q = p + amount * d`.
fn unsharpened(acc: vec4<f32>, old: vec4<f32>, amount: f32, threshold: f32) -> vec4<f32> {
    let p = premultiplied(old);
    let d = p - acc;
    let kept = select(d, vec4<f32>(0.0), abs(d) < vec4<f32>(threshold));
    return unpremultiplied(p + amount * kept, old, 0.0);
}
