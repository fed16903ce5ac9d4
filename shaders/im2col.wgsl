// Convolutions with few input channels and a large kernel or stride (the ImageNet 7×7
// stride-2 stem on RGB) as a 1×1 convolution over the patch matrix: the direct kernels
// gather 3-channel pixels lane by lane, the 1×1 path reads whole vec4s.
// Patch matrix `col` [N·Ho·Wo][KP]: row (n, oy, ox), column k = (ky·kw + kx)·cin + ci holds
// x[n][oy·s − pad + ky][ox·s − pad + kx][ci] (0 in the padding and for k ≥ K = kh·kw·cin, the
// zero columns that round KP up to a multiple of 4). Weights [Cout][K] get the same zero
// columns ([Cout][KP]). Host side: trainer/src/gpu/im2col.rs.
struct P {
    n: u32,
    h: u32,
    w: u32,
    cin: u32,
    ho: u32,
    wo: u32,
    kh: u32,
    kw: u32,
    stride: u32,
    pad: u32,
    k: u32,
    kp: u32,
    rows: u32,
    total: u32,
    _a: u32,
    _b: u32,
}
const WG: u32 = 64u;
const MODE: u32 = {{MODE}}u;

fn index(g: vec3<u32>, nw: vec3<u32>) -> u32 {
    return g.x + g.y * nw.x * WG;
}

//#entry im2col
// One invocation per (patch row r, kernel row ky): the kw·cin contiguous values of that
// kernel row (index arithmetic once per invocation: integer division is slow on CPUs); the
// ky = kh − 1 invocation also writes the zero columns K..KP.
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> col: array<f32>;
@group(0) @binding(2) var<uniform> p: P;
@compute @workgroup_size(64)
fn im2col(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let i = index(g, nw);
    if (i >= p.total) { return; }
    let ky = i % p.kh;
    let r = i / p.kh;
    let ox = r % p.wo;
    let t = r / p.wo;
    let oy = t % p.ho;
    let n = t / p.ho;
    let iy = i32(oy * p.stride + ky) - i32(p.pad);
    let row_ok = iy >= 0 && iy < i32(p.h);
    let out0 = r * p.kp + ky * p.kw * p.cin;
    let x0 = i32(ox * p.stride) - i32(p.pad);
    var o = out0;
    for (var kx = 0u; kx < p.kw; kx++) {
        let ix = x0 + i32(kx);
        let ok = row_ok && ix >= 0 && ix < i32(p.w);
        var src = 0u;
        if (ok) { src = ((n * p.h + u32(iy)) * p.w + u32(ix)) * p.cin; }
        for (var ci = 0u; ci < p.cin; ci++) {
            var v = 0.0;
            if (ok) { v = x[src + ci]; }
            col[o] = v;
            o++;
        }
    }
    if (ky == p.kh - 1u) {
        for (var k = p.k; k < p.kp; k++) { col[r * p.kp + k] = 0.0; }
    }
}

//#entry col2im
// The adjoint of im2col: dx[n][y][x][ci] = Σ over the patches that read it (a gather, so no
// two invocations write the same element: deterministic). One invocation per input pixel;
// only the kernel rows/columns congruent to y + pad (x + pad) modulo the stride are visited.
// Overwrites dx.
@group(0) @binding(0) var<storage, read> dcol: array<f32>;
@group(0) @binding(1) var<storage, read_write> dx: array<f32>;
@group(0) @binding(2) var<uniform> p: P;
@compute @workgroup_size(64)
fn col2im(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let i = index(g, nw);
    if (i >= p.total) { return; }
    let xx = i % p.w;
    let t = i / p.w;
    let yy = t % p.h;
    let n = t / p.h;
    // cin ≤ 3 (`im2col::applies`): scalar accumulators (a dynamically indexed private
    // array spills to memory on CPU drivers).
    var a0 = 0.0;
    var a1 = 0.0;
    var a2 = 0.0;
    let ty0 = yy + p.pad;
    let tx0 = xx + p.pad;
    for (var ky = ty0 % p.stride; ky < p.kh && ky <= ty0; ky += p.stride) {
        let oy = (ty0 - ky) / p.stride;
        if (oy >= p.ho) { continue; }
        for (var kx = tx0 % p.stride; kx < p.kw && kx <= tx0; kx += p.stride) {
            let ox = (tx0 - kx) / p.stride;
            if (ox >= p.wo) { continue; }
            let base = ((n * p.ho + oy) * p.wo + ox) * p.kp + (ky * p.kw + kx) * p.cin;
            a0 += dcol[base];
            if (p.cin > 1u) { a1 += dcol[base + 1u]; }
            if (p.cin > 2u) { a2 += dcol[base + 2u]; }
        }
    }
    dx[i * p.cin] = a0;
    if (p.cin > 1u) { dx[i * p.cin + 1u] = a1; }
    if (p.cin > 2u) { dx[i * p.cin + 2u] = a2; }
}

//#entry pad_rows
// wp[o][k] = w[o][k] for k < K, 0 for K ≤ k < KP (rows = Cout).
@group(0) @binding(0) var<storage, read> w: array<f32>;
@group(0) @binding(1) var<storage, read_write> wp: array<f32>;
@group(0) @binding(2) var<uniform> p: P;
@compute @workgroup_size(64)
fn pad_rows(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let i = index(g, nw);
    if (i >= p.rows * p.kp) { return; }
    let k = i % p.kp;
    let o = i / p.kp;
    var v = 0.0;
    if (k < p.k) { v = w[o * p.k + k]; }
    wp[i] = v;
}

//#entry unpad_rows
// dw[o][k] = gp[o][k] for k < K (MODE 1: +=), dropping the zero columns' gradients.
@group(0) @binding(0) var<storage, read> gp: array<f32>;
@group(0) @binding(1) var<storage, read_write> dw: array<f32>;
@group(0) @binding(2) var<uniform> p: P;
@compute @workgroup_size(64)
fn unpad_rows(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let i = index(g, nw);
    if (i >= p.rows * p.k) { return; }
    let k = i % p.k;
    let o = i / p.k;
    let v = gp[o * p.kp + k];
    if (MODE == 1u) {
        dw[i] = dw[i] + v;
    } else {
        dw[i] = v;
    }
}
