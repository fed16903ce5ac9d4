// BatchNorm over NHWC activations viewed as a [rows][C] matrix (rows = N·H·W).
// Host side and API: trainer/src/gpu/norm.rs. Reference: trainer/src/reference/ops.rs.
//
// Per-channel reductions are two-stage and deterministic: `*_partial` gives one invocation per
// (row chunk, channel) that sums its chunk sequentially (no barriers, lanes read consecutive
// channels), `*_finalize` sums the chunks of one channel in order.
// Training statistics: each chunk gives its own mean and M2 = Σ(x − mean_k)², from sums
// shifted by the chunk's first row (so Σ(x−K)² − (Σ(x−K))²/n cancels at most a few bits,
// even when |mean| ≫ std), and the finalize merges the chunks exactly (Chan et al.: M2 = Σ M2_k
// + Σ n_k (mean_k − mean)²). Every finalize sums its chunks in blocks of FB (error about
// (FB + nchunks/FB)·u instead of nchunks·u for one running sum); measured against f64 in
// trainer/tests/precision.rs.
//
// MODE (template constant):
//   apply:        0 = plain, 1 = ReLU, 2 = residual: ReLU(shortcut + dt[c] · bn(x))
//   bwd_partial / bwd_apply: 0 = plain, 1 = ReLU mask from y, 2 = residual (mask + dt)
//   bwd_finalize: 0 = plain, 2 = residual (dt scales, dΔt written)
struct P {
    rows: u32,
    C: u32,
    chunk: u32,
    nchunks: u32,
    eps: f32,
    momentum: f32,
    total: u32,
    _pad: u32,
}
const WG: u32 = 64u;
const MODE: u32 = {{MODE}}u;
const FB: u32 = 32u;  // chunks per block in the finalize sums

// Rows in chunk k (the last one may be short).
fn chunk_rows(k: u32) -> f32 {
    return f32(min(p.chunk, p.rows - k * p.chunk));
}
// tex4(t, i): texel i of a texture mirror, from texture.wgsl (prepended by the host); used by
// the vec4 entries at the end of the file.

//#entry stats_partial
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> part: array<f32>;
@group(0) @binding(2) var<uniform> p: P;
@compute @workgroup_size(64)
fn stats_partial(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let i = g.x + g.y * nw.x * WG;
    if (i >= p.nchunks * p.C) { return; }
    let c = i % p.C;
    let k = i / p.C;
    let r0 = k * p.chunk;
    let r1 = min(r0 + p.chunk, p.rows);
    let shift = x[r0 * p.C + c];
    var s1 = 0.0;
    var s2 = 0.0;
    for (var r = r0; r < r1; r++) {
        let d = x[r * p.C + c] - shift;
        s1 += d;
        s2 += d * d;
    }
    let m = s1 / f32(r1 - r0);
    part[k * 2u * p.C + c] = shift + m;
    part[k * 2u * p.C + p.C + c] = max(s2 - s1 * m, 0.0);
}

//#entry stats_finalize
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> part: array<f32>;
@group(0) @binding(2) var<storage, read> gamma: array<f32>;
@group(0) @binding(3) var<storage, read> beta: array<f32>;
@group(0) @binding(4) var<storage, read_write> running_mean: array<f32>;
@group(0) @binding(5) var<storage, read_write> running_var: array<f32>;
@group(0) @binding(6) var<storage, read_write> saved_mean: array<f32>;
@group(0) @binding(7) var<storage, read_write> saved_invstd: array<f32>;
@group(0) @binding(8) var<storage, read_write> affine: array<f32>;
@group(0) @binding(9) var<uniform> p: P;
@compute @workgroup_size(64)
fn stats_finalize(@builtin(global_invocation_id) g: vec3<u32>) {
    let c = g.x;
    if (c >= p.C) { return; }
    // mean = Σ n_k·mean_k / n, then M2 from the deviations of the chunk means from it
    var s1 = 0.0;
    for (var k0 = 0u; k0 < p.nchunks; k0 += FB) {
        var b = 0.0;
        for (var k = k0; k < min(k0 + FB, p.nchunks); k++) {
            b += chunk_rows(k) * part[k * 2u * p.C + c];
        }
        s1 += b;
    }
    let n = f32(p.rows);
    let mean = s1 / n;
    var m2 = 0.0;
    for (var k0 = 0u; k0 < p.nchunks; k0 += FB) {
        var b = 0.0;
        for (var k = k0; k < min(k0 + FB, p.nchunks); k++) {
            let d = part[k * 2u * p.C + c] - mean;
            b += part[k * 2u * p.C + p.C + c] + chunk_rows(k) * d * d;
        }
        m2 += b;
    }
    let v = m2 / n;
    let invstd = 1.0 / sqrt(v + p.eps);
    saved_mean[c] = mean;
    saved_invstd[c] = invstd;
    let unbiased = v * n / max(n - 1.0, 1.0);
    let m = p.momentum;
    running_mean[c] = (1.0 - m) * running_mean[c] + m * mean;
    running_var[c] = (1.0 - m) * running_var[c] + m * unbiased;
    let scale = gamma[c] * invstd;
    affine[c] = scale;
    affine[p.C + c] = beta[c] - mean * scale;
}

//#entry infer_affine
@group(0) @binding(0) var<storage, read> gamma: array<f32>;
@group(0) @binding(1) var<storage, read> beta: array<f32>;
@group(0) @binding(2) var<storage, read> running_mean: array<f32>;
@group(0) @binding(3) var<storage, read> running_var: array<f32>;
@group(0) @binding(4) var<storage, read_write> affine: array<f32>;
@group(0) @binding(5) var<uniform> p: P;
@compute @workgroup_size(64)
fn infer_affine(@builtin(global_invocation_id) g: vec3<u32>) {
    let c = g.x;
    if (c >= p.C) { return; }
    let scale = gamma[c] / sqrt(running_var[c] + p.eps);
    affine[c] = scale;
    affine[p.C + c] = beta[c] - running_mean[c] * scale;
}

//#entry apply
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> affine: array<f32>;
@group(0) @binding(2) var<storage, read> dt: array<f32>;
@group(0) @binding(3) var<storage, read> shortcut: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@group(0) @binding(5) var<uniform> p: P;
@compute @workgroup_size(64)
fn apply(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    // One invocation per (row chunk, channel), like the reductions: no per-element modulo,
    // per-channel constants loaded once, lanes on consecutive channels.
    let i = g.x + g.y * nw.x * WG;
    if (i >= p.nchunks * p.C) { return; }
    let c = i % p.C;
    let k = i / p.C;
    let scale = affine[c];
    let shift = affine[p.C + c];
    var d = 1.0;
    if (MODE == 2u) { d = dt[c]; }
    let r0 = k * p.chunk;
    let r1 = min(r0 + p.chunk, p.rows);
    for (var r = r0; r < r1; r++) {
        let j = r * p.C + c;
        var v = x[j] * scale + shift;
        if (MODE == 2u) {
            v = shortcut[j] + d * v;
        }
        if (MODE >= 1u) {
            v = max(v, 0.0);
        }
        y[j] = v;
    }
}

//#entry bwd_partial
@group(0) @binding(0) var<storage, read> dy: array<f32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> saved_mean: array<f32>;
@group(0) @binding(3) var<storage, read> saved_invstd: array<f32>;
@group(0) @binding(4) var<storage, read> ymask: array<f32>;
@group(0) @binding(5) var<storage, read_write> part: array<f32>;
@group(0) @binding(6) var<uniform> p: P;
@compute @workgroup_size(64)
fn bwd_partial(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let i = g.x + g.y * nw.x * WG;
    if (i >= p.nchunks * p.C) { return; }
    let c = i % p.C;
    let k = i / p.C;
    let mean = saved_mean[c];
    let inv = saved_invstd[c];
    let r0 = k * p.chunk;
    let r1 = min(r0 + p.chunk, p.rows);
    var s1 = 0.0;
    var s2 = 0.0;
    for (var r = r0; r < r1; r++) {
        let j = r * p.C + c;
        var gv = dy[j];
        if (MODE >= 1u && ymask[j] <= 0.0) { gv = 0.0; }
        s1 += gv;
        s2 += gv * (x[j] - mean) * inv;
    }
    part[k * 2u * p.C + c] = s1;
    part[k * 2u * p.C + p.C + c] = s2;
}

//#entry bwd_finalize
@group(0) @binding(0) var<storage, read> part: array<f32>;
@group(0) @binding(1) var<storage, read> gamma: array<f32>;
@group(0) @binding(2) var<storage, read> beta: array<f32>;
@group(0) @binding(3) var<storage, read> dt: array<f32>;
@group(0) @binding(4) var<storage, read> saved_invstd: array<f32>;
@group(0) @binding(5) var<storage, read_write> dgamma: array<f32>;
@group(0) @binding(6) var<storage, read_write> dbeta: array<f32>;
@group(0) @binding(7) var<storage, read_write> ddt: array<f32>;
@group(0) @binding(8) var<storage, read_write> coef: array<f32>;
@group(0) @binding(9) var<uniform> p: P;
@compute @workgroup_size(64)
fn bwd_finalize(@builtin(global_invocation_id) g: vec3<u32>) {
    let c = g.x;
    if (c >= p.C) { return; }
    var sg = 0.0;
    var sgx = 0.0;
    for (var k0 = 0u; k0 < p.nchunks; k0 += FB) {
        var bg = 0.0;
        var bgx = 0.0;
        for (var k = k0; k < min(k0 + FB, p.nchunks); k++) {
            bg += part[k * 2u * p.C + c];
            bgx += part[k * 2u * p.C + p.C + c];
        }
        sg += bg;
        sgx += bgx;
    }
    var d = 1.0;
    if (MODE == 2u) {
        d = dt[c];
        ddt[c] = gamma[c] * sgx + beta[c] * sg;
    }
    dbeta[c] = d * sg;
    dgamma[c] = d * sgx;
    let n = f32(p.rows);
    coef[c] = gamma[c] * saved_invstd[c] * d;
    coef[p.C + c] = sg / n;
    coef[2u * p.C + c] = sgx / n;
}

//#entry bwd_apply
@group(0) @binding(0) var<storage, read> dy: array<f32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> saved_mean: array<f32>;
@group(0) @binding(3) var<storage, read> saved_invstd: array<f32>;
@group(0) @binding(4) var<storage, read> ymask: array<f32>;
@group(0) @binding(5) var<storage, read> coef: array<f32>;
@group(0) @binding(6) var<storage, read_write> dx: array<f32>;
@group(0) @binding(7) var<storage, read_write> dres: array<f32>;
@group(0) @binding(8) var<uniform> p: P;
@compute @workgroup_size(64)
fn bwd_apply(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    // One invocation per (row chunk, channel), as in `apply`.
    let i = g.x + g.y * nw.x * WG;
    if (i >= p.nchunks * p.C) { return; }
    let c = i % p.C;
    let k = i / p.C;
    let mean = saved_mean[c];
    let inv = saved_invstd[c];
    let a = coef[c];
    let b = coef[p.C + c];
    let kk = coef[2u * p.C + c];
    let r0 = k * p.chunk;
    let r1 = min(r0 + p.chunk, p.rows);
    for (var r = r0; r < r1; r++) {
        let j = r * p.C + c;
        var gv = dy[j];
        if (MODE >= 1u && ymask[j] <= 0.0) { gv = 0.0; }
        if (MODE == 2u) { dres[j] = gv; }
        let xhat = (x[j] - mean) * inv;
        dx[j] = a * (gv - b - xhat * kk);
    }
}

// ---- vec4 variants (C % 4 == 0) for CPU adapters: the activations are read through rgba32float
// texture mirrors (trainer/src/gpu/texture.rs; a storage-buffer load with a per-lane address
// is a loop over the lanes on lavapipe), four channels per invocation, vec4 stores. Same math,
// same summation order per channel as the scalar entries above. Operands a mode does not use
// are bound to a texture that is read but ignored.

//#entry stats_partial4
@group(0) @binding(0) var x: texture_2d<f32>;
@group(0) @binding(1) var<storage, read_write> part: array<vec4<f32>>;
@group(0) @binding(2) var<uniform> p: P;
@compute @workgroup_size(64)
fn stats_partial4(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let c4 = p.C / 4u;
    let i = g.x + g.y * nw.x * WG;
    if (i >= p.nchunks * c4) { return; }
    let q = i % c4;
    let k = i / c4;
    let r0 = k * p.chunk;
    let r1 = min(r0 + p.chunk, p.rows);
    let shift = tex4(x, r0 * c4 + q);
    var s1 = vec4<f32>();
    var s2 = vec4<f32>();
    for (var r = r0; r < r1; r++) {
        let d = tex4(x, r * c4 + q) - shift;
        s1 += d;
        s2 += d * d;
    }
    let m = s1 / f32(r1 - r0);
    part[k * 2u * c4 + q] = shift + m;
    part[k * 2u * c4 + c4 + q] = max(s2 - s1 * m, vec4<f32>());
}

//#entry apply4
@group(0) @binding(0) var x: texture_2d<f32>;
@group(0) @binding(1) var<storage, read> affine: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> dt: array<vec4<f32>>;
@group(0) @binding(3) var shortcut: texture_2d<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<vec4<f32>>;
@group(0) @binding(5) var<uniform> p: P;
@compute @workgroup_size(64)
fn apply4(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let c4 = p.C / 4u;
    let i = g.x + g.y * nw.x * WG;
    if (i >= p.nchunks * c4) { return; }
    let q = i % c4;
    let k = i / c4;
    let scale = affine[q];
    let shift = affine[c4 + q];
    var d = vec4<f32>(1.0);
    if (MODE == 2u) { d = dt[q]; }
    let r0 = k * p.chunk;
    let r1 = min(r0 + p.chunk, p.rows);
    for (var r = r0; r < r1; r++) {
        let j = r * c4 + q;
        var v = tex4(x, j) * scale + shift;
        if (MODE == 2u) {
            v = tex4(shortcut, j) + d * v;
        }
        if (MODE >= 1u) {
            v = max(v, vec4<f32>());
        }
        y[j] = v;
    }
}

//#entry bwd_partial4
@group(0) @binding(0) var dy: texture_2d<f32>;
@group(0) @binding(1) var x: texture_2d<f32>;
@group(0) @binding(2) var<storage, read> saved_mean: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> saved_invstd: array<vec4<f32>>;
@group(0) @binding(4) var ymask: texture_2d<f32>;
@group(0) @binding(5) var<storage, read_write> part: array<vec4<f32>>;
@group(0) @binding(6) var<uniform> p: P;
@compute @workgroup_size(64)
fn bwd_partial4(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let c4 = p.C / 4u;
    let i = g.x + g.y * nw.x * WG;
    if (i >= p.nchunks * c4) { return; }
    let q = i % c4;
    let k = i / c4;
    let mean = saved_mean[q];
    let inv = saved_invstd[q];
    let r0 = k * p.chunk;
    let r1 = min(r0 + p.chunk, p.rows);
    var s1 = vec4<f32>();
    var s2 = vec4<f32>();
    for (var r = r0; r < r1; r++) {
        let j = r * c4 + q;
        var gv = tex4(dy, j);
        if (MODE >= 1u) { gv = select(gv, vec4<f32>(), tex4(ymask, j) <= vec4<f32>()); }
        s1 += gv;
        s2 += gv * (tex4(x, j) - mean) * inv;
    }
    part[k * 2u * c4 + q] = s1;
    part[k * 2u * c4 + c4 + q] = s2;
}

//#entry bwd_apply4
@group(0) @binding(0) var dy: texture_2d<f32>;
@group(0) @binding(1) var x: texture_2d<f32>;
@group(0) @binding(2) var<storage, read> saved_mean: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> saved_invstd: array<vec4<f32>>;
@group(0) @binding(4) var ymask: texture_2d<f32>;
@group(0) @binding(5) var<storage, read> coef: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read_write> dx: array<vec4<f32>>;
@group(0) @binding(7) var<storage, read_write> dres: array<vec4<f32>>;
@group(0) @binding(8) var<uniform> p: P;
@compute @workgroup_size(64)
fn bwd_apply4(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let c4 = p.C / 4u;
    let i = g.x + g.y * nw.x * WG;
    if (i >= p.nchunks * c4) { return; }
    let q = i % c4;
    let k = i / c4;
    let mean = saved_mean[q];
    let inv = saved_invstd[q];
    let a = coef[q];
    let b = coef[c4 + q];
    let kk = coef[2u * c4 + q];
    let r0 = k * p.chunk;
    let r1 = min(r0 + p.chunk, p.rows);
    for (var r = r0; r < r1; r++) {
        let j = r * c4 + q;
        var gv = tex4(dy, j);
        if (MODE >= 1u) { gv = select(gv, vec4<f32>(), tex4(ymask, j) <= vec4<f32>()); }
        if (MODE == 2u) { dres[j] = gv; }
        let xhat = (tex4(x, j) - mean) * inv;
        dx[j] = a * (gv - b - xhat * kk);
    }
}
