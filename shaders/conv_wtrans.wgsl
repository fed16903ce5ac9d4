// Weight re-layouts for the conv backward-to-input: OHWI w [Cout][kh][kw][Cg] becomes
// flip = 0: wt [G][kh][kw][Cg][Cog], contiguous along the output channels that dX reduces over;
// flip = 1 (G = 1): the OHWI weights [Cg][kh][kw][Cog] of the stride-1 forward conv over dy
//   that computes dX, with the taps mirrored (ky, kx → kh−1−ky, kw−1−kx).
// Host side: trainer/src/gpu/conv.rs. One invocation per element, 1-D grid folded by grid_1d.
struct P {
    total: u32, khw: u32, cg: u32, cog: u32,
    flip: u32, _p0: u32, _p1: u32, _p2: u32,
}
@group(0) @binding(0) var<storage, read> w: array<f32>;
@group(0) @binding(1) var<storage, read_write> wt: array<f32>;
@group(0) @binding(2) var<uniform> p: P;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = gid.x + gid.y * nwg.x * 64u;
    if (e >= p.total) { return; }
    // e indexes w: ((g·Cog + co)·khw + t)·Cg + ci
    let ci = e % p.cg;
    let t = (e / p.cg) % p.khw;
    let oc = e / (p.cg * p.khw);
    let g = oc / p.cog;
    let co = oc % p.cog;
    if (p.flip == 1u) {
        wt[(ci * p.khw + p.khw - 1u - t) * p.cog + co] = w[e];
    } else {
        wt[((g * p.khw + t) * p.cg + ci) * p.cog + co] = w[e];
    }
}
