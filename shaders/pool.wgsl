// Global average pooling over NHWC: y[n][c] = (1/HW) Σ_{h,w} x[n][h][w][c]; backward
// dx[n][h][w][c] = dy[n][c] / HW (MODE 1: added to dx, e.g. an SE unit's pooled-input gradient
// onto its branch's). Host side: trainer/src/gpu/pool.rs.
struct P {
    n: u32,
    hw: u32,
    C: u32,
    total: u32,
}
const WG: u32 = 64u;
const MODE: u32 = {{MODE}}u;

//#entry gap_fwd
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<uniform> p: P;
@compute @workgroup_size(64)
fn gap_fwd(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let i = g.x + g.y * nw.x * WG;
    if (i >= p.n * p.C) { return; }
    let c = i % p.C;
    let n = i / p.C;
    var acc = 0.0;
    for (var s = 0u; s < p.hw; s++) {
        acc += x[(n * p.hw + s) * p.C + c];
    }
    y[i] = acc / f32(p.hw);
}

//#entry gap_bwd
@group(0) @binding(0) var<storage, read> dy: array<f32>;
@group(0) @binding(1) var<storage, read_write> dx: array<f32>;
@group(0) @binding(2) var<uniform> p: P;
@compute @workgroup_size(64)
fn gap_bwd(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let i = g.x + g.y * nw.x * WG;
    if (i >= p.total) { return; }
    let c = i % p.C;
    let n = i / (p.hw * p.C);
    let v = dy[n * p.C + c] / f32(p.hw);
    if (MODE == 1u) {
        dx[i] += v;
    } else {
        dx[i] = v;
    }
}
