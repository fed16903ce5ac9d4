// Vector-width prelude for the conv/GEMM templates: loads along the contiguous channel axis are
// vec4 (requires that axis, and every base offset along it, to be a multiple of 4).
// Host side: trainer/src/gpu/conv.rs (`prelude`). Prepended to conv_*.wgsl / gemm.wgsl.
alias VT = vec4<f32>;
const V: u32 = 4u;
// acc + a·b (4-term dot product as a chain of FMAs).
fn mac(acc: f32, a: VT, b: VT) -> f32 {
    return fma(a.w, b.w, fma(a.z, b.z, fma(a.y, b.y, fma(a.x, b.x, acc))));
}
