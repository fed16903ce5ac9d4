// Squeeze-excitation (SE) tail of a residual branch, NHWC [N][P = H·W][C], gate g [N][C]:
//   y[n,p,c] = max(0, sc[n,p,c] + Δt[c] · z[n,p,c] · g[n,c]),  g = σ(a).
// Entries (host side: trainer/src/gpu/se.rs; activation.wgsl's sigm is prepended):
// - `gate_fwd`: g = σ(a) elementwise over [N][C].
// - `fwd`: the tail above, one invocation per element of y.
// - `bwd_partial`: with m = dy · [y > 0], writes dsc = m and dz = m · Δt[c] · g[n,c], and the
//   partial sums Σ_{p in chunk} m · z for each (n, chunk, c) into `part` (one pass over dy, y
//   and z; one chunk, i.e. no partials at all, when N·C alone fills the device).
// - `bwd_finalize`: one invocation per channel: q[n,c] = Σ_chunks part (fixed order, blocks of
//   32), da[n,c] = Δt[c] · q · g · (1 − g), and ddt[c] = Σ_n g[n,c] · q[n,c] (overwritten).
// Every sum runs in a fixed order (no atomics), so results are deterministic.
struct P {
    n: u32,
    hw: u32,
    C: u32,
    chunk: u32,
    nchunks: u32,
    total: u32,
    _a: u32,
    _b: u32,
}
const WG: u32 = 64u;

//#entry gate_fwd
@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read_write> g: array<f32>;
@group(0) @binding(2) var<uniform> p: P;
@compute @workgroup_size(64)
fn gate_fwd(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let i = id.x + id.y * nw.x * WG;
    if (i >= p.n * p.C) { return; }
    g[i] = sigm(a[i]);
}

//#entry fwd
@group(0) @binding(0) var<storage, read> z: array<f32>;
@group(0) @binding(1) var<storage, read> g: array<f32>;
@group(0) @binding(2) var<storage, read> dt: array<f32>;
@group(0) @binding(3) var<storage, read> sc: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@group(0) @binding(5) var<uniform> p: P;
@compute @workgroup_size(64)
fn fwd(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let i = id.x + id.y * nw.x * WG;
    if (i >= p.total) { return; }
    let c = i % p.C;
    let n = i / (p.hw * p.C);
    y[i] = max(0.0, sc[i] + dt[c] * z[i] * g[n * p.C + c]);
}

//#entry bwd_partial
@group(0) @binding(0) var<storage, read> dy: array<f32>;
@group(0) @binding(1) var<storage, read> y: array<f32>;
@group(0) @binding(2) var<storage, read> z: array<f32>;
@group(0) @binding(3) var<storage, read> g: array<f32>;
@group(0) @binding(4) var<storage, read> dt: array<f32>;
@group(0) @binding(5) var<storage, read_write> dsc: array<f32>;
@group(0) @binding(6) var<storage, read_write> dz: array<f32>;
@group(0) @binding(7) var<storage, read_write> part: array<f32>;
@group(0) @binding(8) var<uniform> p: P;
@compute @workgroup_size(64)
fn bwd_partial(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let i = id.x + id.y * nw.x * WG;
    // i = (n·nchunks + k)·C + c: neighbouring invocations read neighbouring channels.
    if (i >= p.n * p.nchunks * p.C) { return; }
    let c = i % p.C;
    let nk = i / p.C;
    let k = nk % p.nchunks;
    let n = nk / p.nchunks;
    let s = dt[c] * g[n * p.C + c];
    let p0 = k * p.chunk;
    let p1 = min(p0 + p.chunk, p.hw);
    var acc = 0.0;
    for (var q = p0; q < p1; q++) {
        let j = (n * p.hw + q) * p.C + c;
        let m = select(0.0, dy[j], y[j] > 0.0);
        dsc[j] = m;
        dz[j] = m * s;
        acc += m * z[j];
    }
    part[i] = acc;
}

//#entry bwd_finalize
@group(0) @binding(0) var<storage, read> part: array<f32>;
@group(0) @binding(1) var<storage, read> g: array<f32>;
@group(0) @binding(2) var<storage, read> dt: array<f32>;
@group(0) @binding(3) var<storage, read_write> da: array<f32>;
@group(0) @binding(4) var<storage, read_write> ddt: array<f32>;
@group(0) @binding(5) var<uniform> p: P;
@compute @workgroup_size(64)
fn bwd_finalize(@builtin(global_invocation_id) id: vec3<u32>) {
    let c = id.x;
    if (c >= p.C) { return; }
    let s = dt[c];
    var acc = 0.0;
    for (var n = 0u; n < p.n; n++) {
        // chunks in blocks of 32 (error about (32 + nchunks/32)·u, not nchunks·u)
        var q = 0.0;
        for (var k0 = 0u; k0 < p.nchunks; k0 += 32u) {
            var b = 0.0;
            for (var k = k0; k < min(k0 + 32u, p.nchunks); k++) {
                b += part[(n * p.nchunks + k) * p.C + c];
            }
            q += b;
        }
        let gi = g[n * p.C + c];
        da[n * p.C + c] = s * q * gi * (1.0 - gi);
        acc += gi * q;
    }
    ddt[c] = acc;
}
