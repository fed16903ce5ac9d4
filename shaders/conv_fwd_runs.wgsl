// Convolution forward (stride S = 1 or 2) with vec4 channels, reusing each input fetch across
// the kernel's horizontal taps. Host side and selection (`runs_ok`): trainer/src/gpu/conv.rs.
// Reference: trainer/src/reference/conv.rs.
//
// y[n,oy,ox,co] = bias[co] + Σ_{ky,kx,ci} x[n, oy·S−pad+ky, ox·S−pad+kx, g·Cg+ci] · w[co,ky,kx,ci]
// Same implicit GEMM and register tile as conv_fwd.wgsl (TM pixels × TN output channels of one
// group, dot products into scalar accumulators), but the TM pixels are consecutive pixels of
// one output row (Wo % TM == 0), and per kernel row ky and 4 input channels the tile fetches
// its (TM − 1)·S + KW input pixels once for all KW horizontal taps (pixel i, tap kx reads run
// element i·S + kx): about KW/S times fewer x fetches than one fetch per pixel and tap.
// Template: TM, TN, WG, KW, the stride S (generated into PIXELS and BODY); prelude (conv_vec4) defines VT, V, mac. Generated blocks: PIXELS
// (the segment), SETUP (weight rows, accumulators), ROW (addresses of the run for this ky),
// BODY (fetches, then per output channel all KW taps into each accumulator at once), STORE.
struct P {
    n: u32, h: u32, w: u32, cin: u32,
    cout: u32, kh: u32, kw: u32, stride: u32,
    pad: u32, groups: u32, ho: u32, wo: u32,
    cg: u32, cog: u32, m: u32, ntile: u32,
    has_bias: u32, _p0: u32, _p1: u32, _p2: u32,
}
const TM: u32 = {{TM}}u;
const TN: u32 = {{TN}}u;
const WG: u32 = {{WG}}u;
const KW: u32 = {{KW}}u;

// x, wt: storage arrays or texture mirrors (trainer/src/gpu/texture.rs), read with ld_x / ld_wt.
{{X_DECL}}
{{W_DECL}}
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<uniform> p: P;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let m0 = ((wid.x + wid.z * nwg.x) * WG + li) * TM;
    if (m0 >= p.m) { return; }
    let g = wid.y / p.ntile;
    let co0 = (wid.y % p.ntile) * TN;
    // The segment: nb = n·H, oy = output row · S, ox = its first column · S − pad; colok{e}: input column ox + e
    // inside the image. (M is a multiple of TM, so a started segment is whole.)
{{PIXELS}}
    let ksz = KW * p.kh * p.cg;
    // wb{j}: weight row of output channel co0 + j (clamped); acc{i}_{j}: the register tile.
{{SETUP}}
    let cbase = g * p.cg;
    for (var ky = 0u; ky < p.kh; ky++) {
        // xa{e}: input offset of run element e (0 outside the image), xm{e}: 1 or 0.
{{ROW}}
        let wrow = ky * KW * p.cg;
        for (var c = 0u; c < p.cg; c += V) {
{{BODY}}
        }
    }
{{STORE}}
}
