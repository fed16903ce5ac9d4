// Fully connected layer y = x · Wᵀ + b with x [N][IN], W [OUT][IN] (row-major), b [OUT].
// Small (batch × 64 → 10): one invocation per output element, plain loops.
// Host side: trainer/src/gpu/linear.rs.
struct P {
    n: u32,
    fin: u32,
    fout: u32,
    _a: u32,
}
const WG: u32 = 64u;
const MODE: u32 = {{MODE}}u;

//#entry fwd
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<uniform> p: P;
@compute @workgroup_size(64)
fn fwd(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let i = g.x + g.y * nw.x * WG;
    if (i >= p.n * p.fout) { return; }
    let o = i % p.fout;
    let n = i / p.fout;
    var acc = b[o];
    for (var k = 0u; k < p.fin; k++) {
        acc += x[n * p.fin + k] * w[o * p.fin + k];
    }
    y[i] = acc;
}

//#entry bwd_x
// dx[n][k] = Σ_o dy[n][o] · W[o][k]
@group(0) @binding(0) var<storage, read> dy: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;
@group(0) @binding(3) var<uniform> p: P;
@compute @workgroup_size(64)
fn bwd_x(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let i = g.x + g.y * nw.x * WG;
    if (i >= p.n * p.fin) { return; }
    let k = i % p.fin;
    let n = i / p.fin;
    var acc = 0.0;
    for (var o = 0u; o < p.fout; o++) {
        acc += dy[n * p.fout + o] * w[o * p.fin + k];
    }
    dx[i] = acc;
}

//#entry bwd_w
// dW[o][k] = Σ_n dy[n][o] · x[n][k]; invocations k == 0 also write db[o] = Σ_n dy[n][o].
@group(0) @binding(0) var<storage, read> dy: array<f32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> dw: array<f32>;
@group(0) @binding(3) var<storage, read_write> db: array<f32>;
@group(0) @binding(4) var<uniform> p: P;
@compute @workgroup_size(64)
fn bwd_w(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let i = g.x + g.y * nw.x * WG;
    if (i >= p.fout * p.fin) { return; }
    let k = i % p.fin;
    let o = i / p.fin;
    var acc = 0.0;
    var accb = 0.0;
    for (var n = 0u; n < p.n; n++) {
        let d = dy[n * p.fout + o];
        acc += d * x[n * p.fin + k];
        accb += d;
    }
    dw[i] = acc;
    if (k == 0u) { db[o] = accb; }
}
