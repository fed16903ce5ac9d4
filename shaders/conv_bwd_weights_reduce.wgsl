// Second stage of the conv backward-to-weights: dw[e] = (accumulate ? dw[e] : 0) + Σ_c part[c][e],
// chunks summed in order (deterministic). Host side: trainer/src/gpu/conv.rs.
// One invocation per weight element, 1-D grid folded by grid_1d.
struct P {
    len: u32, nchunks: u32, accumulate: u32, _p0: u32,
}
@group(0) @binding(0) var<storage, read> part: array<f32>;
@group(0) @binding(1) var<storage, read_write> dw: array<f32>;
@group(0) @binding(2) var<uniform> p: P;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = gid.x + gid.y * nwg.x * 64u;
    if (e >= p.len) { return; }
    // chunks in blocks of 32 (error about (32 + nchunks/32)·u, not nchunks·u)
    var s = 0.0;
    for (var c0 = 0u; c0 < p.nchunks; c0 += 32u) {
        var b = 0.0;
        for (var c = c0; c < min(c0 + 32u, p.nchunks); c++) {
            b += part[c * p.len + e];
        }
        s += b;
    }
    if (p.accumulate != 0u) { s += dw[e]; }
    dw[e] = s;
}
