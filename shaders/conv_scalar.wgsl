// Vector-width prelude for the conv/GEMM templates: scalar loads, for channel counts that are
// not multiples of 4 (the RGB stem, odd test shapes). Host side: trainer/src/gpu/conv.rs.
alias VT = f32;
const V: u32 = 1u;
fn mac(acc: f32, a: VT, b: VT) -> f32 {
    return fma(a, b, acc);
}
