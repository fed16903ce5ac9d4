// Max pooling over NHWC (the ImageNet ResNets' 3×3 stride-2 pad-1 pool after the stem), any
// kernel k, stride s, padding pad. Padded positions never win (as if -inf); the host refuses
// shapes where a window lies entirely in padding, so every window holds an input element.
// Output [N][Ho][Wo][C], Ho = (H + 2·pad - k)/s + 1 (Wo alike).
// Forward: y = the window's max, arg = the flat index into x of the element that won (ties: the
// first in row-major window order). Backward is a gather, not a scatter (windows overlap when
// s < k): each dx element sums dy over the windows that can hold it and whose arg names it, in
// a fixed order, so it is deterministic and race-free. MODE 1 adds to dx, MODE 0 overwrites.
// Host side: trainer/src/gpu/pool.rs.
struct P {
    n: u32,
    h: u32,
    w: u32,
    C: u32,
    ho: u32,
    wo: u32,
    k: u32,
    s: u32,
    pad: u32,
    total_out: u32,
    total_in: u32,
    _unused: u32,
}
const WG: u32 = 64u;
const MODE: u32 = {{MODE}}u;

//#entry max_fwd
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<storage, read_write> arg: array<u32>;
@group(0) @binding(3) var<uniform> p: P;
@compute @workgroup_size(64)
fn max_fwd(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    // One invocation per output element.
    let i = g.x + g.y * nw.x * WG;
    if (i >= p.total_out) { return; }
    let c = i % p.C;
    var t = i / p.C;
    let xo = t % p.wo;
    t = t / p.wo;
    let yo = t % p.ho;
    let n = t / p.ho;
    // The window covers padded rows [yo·s, yo·s + k), i.e. input rows [yo·s - pad, …), clipped
    // to the input (unsigned: shift by pad before subtracting it).
    let ylo = max(yo * p.s, p.pad) - p.pad;
    let yhi = min(yo * p.s + p.k, p.h + p.pad) - p.pad;
    let xlo = max(xo * p.s, p.pad) - p.pad;
    let xhi = min(xo * p.s + p.k, p.w + p.pad) - p.pad;
    var at = ((n * p.h + ylo) * p.w + xlo) * p.C + c;
    var best = x[at];
    for (var iy = ylo; iy < yhi; iy++) {
        for (var ix = xlo; ix < xhi; ix++) {
            let j = ((n * p.h + iy) * p.w + ix) * p.C + c;
            let v = x[j];
            if (v > best) {
                best = v;
                at = j;
            }
        }
    }
    y[i] = best;
    arg[i] = at;
}

//#entry max_bwd
@group(0) @binding(0) var<storage, read> dy: array<f32>;
@group(0) @binding(1) var<storage, read> arg: array<u32>;
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;
@group(0) @binding(3) var<uniform> p: P;
@compute @workgroup_size(64)
fn max_bwd(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    // One invocation per input element.
    let i = g.x + g.y * nw.x * WG;
    if (i >= p.total_in) { return; }
    let c = i % p.C;
    var t = i / p.C;
    let ix = t % p.w;
    t = t / p.w;
    let iy = t % p.h;
    let n = t / p.h;
    // Output rows whose window holds padded row ty = iy + pad: yo·s ≤ ty < yo·s + k, i.e.
    // ⌈(ty + 1 - k)/s⌉ ≤ yo ≤ ⌊ty/s⌋ (and yo < Ho); columns alike.
    let ty = iy + p.pad;
    let tx = ix + p.pad;
    let ylo = select(0u, (ty + 1u - p.k + p.s - 1u) / p.s, ty + 1u > p.k);
    let yhi = min(ty / p.s + 1u, p.ho);
    let xlo = select(0u, (tx + 1u - p.k + p.s - 1u) / p.s, tx + 1u > p.k);
    let xhi = min(tx / p.s + 1u, p.wo);
    var v = 0.0;
    for (var yo = ylo; yo < yhi; yo++) {
        for (var xo = xlo; xo < xhi; xo++) {
            let o = ((n * p.ho + yo) * p.wo + xo) * p.C + c;
            if (arg[o] == i) {
                v += dy[o];
            }
        }
    }
    if (MODE == 1u) {
        dx[i] = dx[i] + v;
    } else {
        dx[i] = v;
    }
}
