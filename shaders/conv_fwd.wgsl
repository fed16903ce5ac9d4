// Convolution forward as an implicit GEMM with register blocking (no shared memory, no
// barriers). Host side and API: trainer/src/gpu/conv.rs. Reference: trainer/src/reference/conv.rs.
//
// y[n,oy,ox,co] = bias[co] + Σ_{ky,kx,ci} x[n, oy·s−pad+ky, ox·s−pad+kx, g·Cg+ci] · w[co,ky,kx,ci]
// NHWC x [N,H,W,Cin], OHWI w [Cout,kh,kw,Cg], y [N,Ho,Wo,Cout]; Cg = Cin/G, Cog = Cout/G.
// GEMM view: M = N·Ho·Wo output pixels, N = Cog, K = kh·kw·Cg, both operands contiguous along
// K's channel part, so loads are VT (vec4 when Cg % 4 == 0) and the product is a dot.
//
// Each invocation owns TM pixels × TN output channels of one group. Lanes of a workgroup share
// the channel tile (workgroup_id.y = group · ntile + tile), so weight loads are uniform.
// Template: TM, TN, WG; prelude (conv_vec4 / conv_scalar) defines VT, V, mac.
// The register tile is written out by the host as named scalars (PIXELS, SETUP, TAP, BODY,
// STORE blocks): lavapipe lowers dynamically indexed private arrays to compare-and-select
// chains, which made an array-based version of this kernel 7x slower.
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
    let hw = p.ho * p.wo;
    let s = i32(p.stride);
    // Per pixel i (generated, see the note above): nb{i} image row base, iy{i}/ix{i}
    // top-left input coordinate (far out of range past M, so every tap reads as padding).
{{PIXELS}}
    let ksz = p.kh * p.kw * p.cg;
    // wb{j}: weight row of output channel co0 + j (clamped); acc{i}_{j}: the register tile.
{{SETUP}}
    let cbase = g * p.cg;
    for (var ky = 0u; ky < p.kh; ky++) {
        for (var kx = 0u; kx < p.kw; kx++) {
            // xa{i}: input offset of pixel i at this tap (0 in the padding), xm{i}: 1 or 0.
{{TAP}}
            let wo = (ky * p.kw + kx) * p.cg;
            for (var c = 0u; c < p.cg; c += V) {
{{BODY}}
            }
        }
    }
{{STORE}}
}
