// Convolution forward (stride S = 1 or 2) with vec4 input channels and fewer than 4 output
// channels, R output rows per invocation: the stride-1 dX of a 3-channel conv (the RGB stem's,
// a 16->3 conv over dy). Host side and selection (`run_rows`): trainer/src/gpu/conv.rs.
// Reference: trainer/src/reference/conv.rs.
//
// y[n,oy,ox,co] = bias[co] + Σ_{ky,kx,ci} x[n, oy·S−pad+ky, ox·S−pad+kx, g·Cg+ci] · w[co,ky,kx,ci]
// Like conv_fwd_runs.wgsl (a segment of TM pixels of an output row; each input fetch reused by
// all KW horizontal taps), but an invocation owns that segment in R consecutive output rows, and
// the (R − 1)·S + KH input rows they read are fetched once per 4 input channels for every output
// row and kernel row that uses them (with TN = 3 output channels, the one-row kernel spends a
// fetch on only TN·KW dot products; R = 4 measured 1.16–1.24x faster on the stem's dX). The
// kernel rows are written out (KH is a generation-time constant): the only loop is over input
// channels.
// Template: TM, TN, WG, R (KH, KW and S through the generated blocks); prelude (conv_vec4)
// defines VT, V, mac. Generated blocks: SETUP (runs' addresses and masks, weight rows,
// accumulators), BODY (fetches, then per output channel and kernel row every accumulator's KW
// taps in one expression), STORE.
struct P {
    n: u32, h: u32, w: u32, cin: u32,
    cout: u32, kh: u32, kw: u32, stride: u32,
    pad: u32, groups: u32, ho: u32, wo: u32,
    cg: u32, cog: u32, m: u32, ntile: u32,
    has_bias: u32, nseg: u32, hob: u32, _p0: u32,
}
const TM: u32 = {{TM}}u;
const TN: u32 = {{TN}}u;
const WG: u32 = {{WG}}u;
const R: u32 = {{R}}u;

// x, wt: storage arrays or texture mirrors (trainer/src/gpu/texture.rs), read with ld_x / ld_wt.
{{X_DECL}}
{{W_DECL}}
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<uniform> p: P;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    // Invocation q: segment q % nseg of block (q / nseg) % hob of R rows of image q / (nseg·hob).
    let q = (wid.x + wid.z * nwg.x) * WG + li;
    if (q >= p.n * p.hob * p.nseg) { return; }
    let g = wid.y / p.ntile;
    let co0 = (wid.y % p.ntile) * TN;
    let seg = q % p.nseg;
    let blk = q / p.nseg;
    let n = blk / p.hob;
    let oy0 = (blk % p.hob) * R;
    let ox0 = seg * TM;
    let ksz = p.kw * p.kh * p.cg;
    let cbase = g * p.cg;
    // Input row t is oy0·S − pad + t, column e of the run ox0·S − pad + e: xa{t}_{e} its offset
    // (0 outside the image), xm{t}_{e} 1 or 0. wb{j}: weight row of output channel co0 + j
    // (clamped). acc{i}_{k}_{j}: output row oy0 + i, pixel ox0 + k, channel co0 + j.
{{SETUP}}
    for (var c = 0u; c < p.cg; c += V) {
{{BODY}}
    }
{{STORE}}
}
