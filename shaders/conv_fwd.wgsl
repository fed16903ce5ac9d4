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

@group(0) @binding(0) var<storage, read> x: array<VT>;
@group(0) @binding(1) var<storage, read> wt: array<VT>;
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
    // Per pixel: image row base and the top-left input coordinate (far out of range if the
    // pixel is past M, so every tap reads as padding).
    var nb: array<u32, TM>;
    var iy0: array<i32, TM>;
    var ix0: array<i32, TM>;
    for (var i = 0u; i < TM; i++) {
        let m = m0 + i;
        let mm = min(m, p.m - 1u);
        let r = mm % hw;
        nb[i] = (mm / hw) * p.h;
        iy0[i] = select(-1000000, i32(r / p.wo) * s - i32(p.pad), m < p.m);
        ix0[i] = i32(r % p.wo) * s - i32(p.pad);
    }
    let ksz = p.kh * p.kw * p.cg;
    var wb: array<u32, TN>;
    for (var j = 0u; j < TN; j++) {
        wb[j] = (g * p.cog + min(co0 + j, p.cog - 1u)) * ksz;
    }
    let cbase = g * p.cg;
    var acc: array<f32, TM * TN>;
    for (var ky = 0u; ky < p.kh; ky++) {
        for (var kx = 0u; kx < p.kw; kx++) {
            var xa: array<u32, TM>;
            var xm: array<f32, TM>;
            for (var i = 0u; i < TM; i++) {
                let iy = iy0[i] + i32(ky);
                let ix = ix0[i] + i32(kx);
                let ok = iy >= 0 && iy < i32(p.h) && ix >= 0 && ix < i32(p.w);
                xa[i] = select(0u, ((nb[i] + u32(iy)) * p.w + u32(ix)) * p.cin + cbase, ok);
                xm[i] = select(0.0, 1.0, ok);
            }
            let wo = (ky * p.kw + kx) * p.cg;
            for (var c = 0u; c < p.cg; c += V) {
                var a: array<VT, TM>;
                for (var i = 0u; i < TM; i++) {
                    a[i] = x[(xa[i] + c) / V] * xm[i];
                }
                for (var j = 0u; j < TN; j++) {
                    let b = wt[(wb[j] + wo + c) / V];
                    for (var i = 0u; i < TM; i++) {
                        acc[i * TN + j] = mac(acc[i * TN + j], a[i], b);
                    }
                }
            }
        }
    }
    for (var i = 0u; i < TM; i++) {
        let m = m0 + i;
        if (m >= p.m) { break; }
        for (var j = 0u; j < TN; j++) {
            let co = co0 + j;
            if (co >= p.cog) { break; }
            let oc = g * p.cog + co;
            var v = acc[i * TN + j];
            if (p.has_bias != 0u) { v += bias[oc]; }
            y[m * p.cout + oc] = v;
        }
    }
}
