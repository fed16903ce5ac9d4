// Per-channel step scale of a residual branch: y = F ⊗ Δt over NHWC [rows][C].
// Backward: dF = dy · Δt[c] and dΔt[c] = Σ_rows dy · F (two-stage deterministic reduction:
// `bwd_partial` writes dF and per-(chunk, channel) partial sums in one pass over dy and F,
// `bwd_finalize` adds the chunks of a channel in order). Host side: trainer/src/gpu/elementwise.rs.
struct P {
    rows: u32,
    C: u32,
    chunk: u32,
    nchunks: u32,
    total: u32,
    _a: u32,
    _b: u32,
    _c: u32,
}
const WG: u32 = 64u;
const MODE: u32 = {{MODE}}u;

//#entry fwd
@group(0) @binding(0) var<storage, read> f: array<f32>;
@group(0) @binding(1) var<storage, read> dt: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<uniform> p: P;
@compute @workgroup_size(64)
fn fwd(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let i = g.x + g.y * nw.x * WG;
    if (i >= p.total) { return; }
    y[i] = f[i] * dt[i % p.C];
}

//#entry bwd_partial
@group(0) @binding(0) var<storage, read> dy: array<f32>;
@group(0) @binding(1) var<storage, read> f: array<f32>;
@group(0) @binding(2) var<storage, read> dt: array<f32>;
@group(0) @binding(3) var<storage, read_write> df: array<f32>;
@group(0) @binding(4) var<storage, read_write> part: array<f32>;
@group(0) @binding(5) var<uniform> p: P;
@compute @workgroup_size(64)
fn bwd_partial(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let i = g.x + g.y * nw.x * WG;
    if (i >= p.nchunks * p.C) { return; }
    let c = i % p.C;
    let k = i / p.C;
    let s = dt[c];
    let r0 = k * p.chunk;
    let r1 = min(r0 + p.chunk, p.rows);
    var acc = 0.0;
    for (var r = r0; r < r1; r++) {
        let j = r * p.C + c;
        let d = dy[j];
        df[j] = d * s;
        acc += d * f[j];
    }
    part[k * p.C + c] = acc;
}

//#entry bwd_finalize
@group(0) @binding(0) var<storage, read> part: array<f32>;
@group(0) @binding(1) var<storage, read_write> ddt: array<f32>;
@group(0) @binding(2) var<uniform> p: P;
@compute @workgroup_size(64)
fn bwd_finalize(@builtin(global_invocation_id) g: vec3<u32>) {
    let c = g.x;
    if (c >= p.C) { return; }
    // chunks in blocks of 32 (error about (32 + nchunks/32)·u, not nchunks·u)
    var acc = 0.0;
    for (var k0 = 0u; k0 < p.nchunks; k0 += 32u) {
        var b = 0.0;
        for (var k = k0; k < min(k0 + 32u, p.nchunks); k++) {
            b += part[k * p.C + c];
        }
        acc += b;
    }
    ddt[c] = acc;
}
