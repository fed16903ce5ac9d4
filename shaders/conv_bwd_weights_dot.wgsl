// Convolution backward to the weights (dW) in dot-product form, for vec4 channel axes
// (Cg % 4 == 0 and Cog % 4 == 0). Host side and API: trainer/src/gpu/conv.rs. Reference:
// trainer/src/reference/conv.rs. Same split-K over output pixels, chunk layout and in-order
// reduction (conv_bwd_weights_reduce.wgsl) as conv_bwd_weights.wgsl.
//
// dw[g·Cog+co,ky,kx,ci] = Σ_{n,oy,ox} dy[n,oy,ox,g·Cog+co] · x[n, oy·s−pad+ky, ox·s−pad+kx, g·Cg+ci]
// Why a second form: the outer-product form adds a broadcast dy value times an x vec4 into a
// vec4 accumulator per pixel; on a CPU adapter the register tile spills, and every vec4 FMA
// costs a vec4 load and store of its accumulator. Here each iteration takes 4 pixels, loads
// their dy and x vec4s (along channels), transposes them in registers into vec4s along the 4
// pixels, and adds one 4-term dot product into each scalar accumulator: a quarter of the
// accumulator traffic per FMA, like the forward kernel.
// Template: TM output channels × TN input channels per invocation, WG. Generated blocks: SETUP
// (offsets, accumulators acc{m}_{n}), PIX (coordinates of the 4 pixels, advanced
// incrementally), BODY (loads, transposes, dots), STORE.
struct P {
    n: u32, h: u32, w: u32, cin: u32,
    cout: u32, kh: u32, kw: u32, stride: u32,
    pad: u32, groups: u32, ho: u32, wo: u32,
    cg: u32, cog: u32, ntile: u32, ctiles: u32,
    chunk: u32, nchunks: u32, pix: u32, _p0: u32,
}
const TM: u32 = {{TM}}u;
const TN: u32 = {{TN}}u;
const WG: u32 = {{WG}}u;

// x, dy: storage arrays or texture mirrors (trainer/src/gpu/texture.rs), vec4 along channels.
{{X_DECL}}
{{DY_DECL}}
@group(0) @binding(2) var<storage, read_write> part: array<vec4<f32>>;
@group(0) @binding(3) var<uniform> p: P;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let khw = p.kh * p.kw;
    let lin = (wid.x + wid.z * nwg.x) * WG + li;
    if (lin >= p.nchunks * khw * p.ctiles) { return; }
    let ct = lin % p.ctiles;
    let tap = (lin / p.ctiles) % khw;
    let chunk = lin / (p.ctiles * khw);
    let ky = tap / p.kw;
    let kx = tap % p.kw;
    let g = wid.y / p.ntile;
    let co0 = (wid.y % p.ntile) * TM;
    let ci0 = ct * TN;
    let cq = p.cout / 4u;
    // dyo{i}: vec4 index of output channels co0 + 4i.. (clamped), xo{j}: float offset of input
    // channels ci0 + 4j.. (clamped); acc{m}_{n}: the register tile.
{{SETUP}}
    let s = i32(p.stride);
    let hw = p.ho * p.wo;
    let p0 = chunk * p.chunk;
    let p1 = min(p0 + p.chunk, p.pix);
    // pixel coordinates advanced incrementally (integer division is slow on CPU SIMD)
    var n = p0 / hw;
    var oy = (p0 % hw) / p.wo;
    var ox = p0 % p.wo;
    for (var q = p0; q < p1; q += 4u) {
{{PIX}}
{{BODY}}
    }
{{STORE}}
}
