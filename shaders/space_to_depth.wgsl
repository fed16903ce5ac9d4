// Strided convolutions with few input channels (the ImageNet 7×7 stride-2 stem on RGB) as a
// stride-1 convolution over a space-to-depth copy of the input: every s×s block of pixels
// becomes one pixel of s²·cin channels, so the conv kernels read whole vec4s, and the data
// grows by about 1× (a patch matrix would grow it kh·kw/s² times: 12× for the stem).
//
// For a k×k stride-s pad-p conv, let e = (s − p mod s) mod s (taps prepended so that p + e
// = s·m) and A = ceil((k + e) / s). Then
//   xs[n][Y][X][(by·s + bx)·cin + ci] = x[n][s(Y − m) + by][s(X − m) + bx][ci]   (0 outside),
//   ws[o][ay][ax][(by·s + bx)·cin + ci] = w[o][s·ay + by − e][s·ax + bx − e][ci] (0 outside),
// with Y < Ho + Ay − 1, X < Wo + Ax − 1 and the channel axis zero-padded to CP (a multiple of
// 4), and y = conv_{A×A, stride 1, pad 0}(xs, ws). Every x and w element lands in exactly one
// place, so both adjoints are gathers of one element (deterministic, nothing summed).
// Host side and derivation: trainer/src/gpu/space_to_depth.rs.
struct P {
    n: u32,
    h: u32,
    w: u32,
    cin: u32,
    hs: u32,     // rows of xs: Ho + Ay − 1
    ws: u32,     // columns of xs: Wo + Ax − 1
    cp: u32,     // channels of xs (s²·cin rounded up to a multiple of 4)
    s: u32,      // stride (block size)
    m: u32,      // (p + e) / s: xs row Y starts at x row s(Y − m)
    e: u32,      // taps prepended to the kernel
    ay: u32,     // kernel rows of ws
    ax: u32,     // kernel columns of ws
    kh: u32,
    kw: u32,
    cout: u32,
    total: u32,  // invocations (the 1-D kernels)
}
const WG: u32 = 64u;
const MODE: u32 = {{MODE}}u;

fn index(g: vec3<u32>, nw: vec3<u32>) -> u32 {
    return g.x + g.y * nw.x * WG;
}

//#entry input
// xs from x. One invocation per xs pixel, grid (X, Y, n); it writes the pixel's CP channels
// as vec4s, visiting the s×s block of x row by row (no division inside the loops).
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> xs: array<vec4<f32>>;
@group(0) @binding(2) var<uniform> p: P;
@compute @workgroup_size(64)
fn input(@builtin(global_invocation_id) g: vec3<u32>) {
    let xx = g.x;
    if (xx >= p.ws) { return; }
    let yy = g.y;
    let n = g.z;
    let o = ((n * p.hs + yy) * p.ws + xx) * (p.cp / 4u);
    var buf = vec4<f32>(0.0);
    var c = 0u;
    for (var by = 0u; by < p.s; by++) {
        let iy = i32(p.s * yy + by) - i32(p.s * p.m);
        let row_ok = iy >= 0 && iy < i32(p.h);
        for (var bx = 0u; bx < p.s; bx++) {
            let ix = i32(p.s * xx + bx) - i32(p.s * p.m);
            let ok = row_ok && ix >= 0 && ix < i32(p.w);
            var src = 0u;
            if (ok) { src = ((n * p.h + u32(iy)) * p.w + u32(ix)) * p.cin; }
            for (var ci = 0u; ci < p.cin; ci++) {
                var v = 0.0;
                if (ok) { v = x[src + ci]; }
                buf[c % 4u] = v;
                c++;
                if (c % 4u == 0u) {
                    xs[o + c / 4u - 1u] = buf;
                    buf = vec4<f32>(0.0);
                }
            }
        }
    }
    // CP rounds s²·cin up to a multiple of 4: at most one partly filled vec4 remains
    if (c % 4u != 0u) {
        xs[o + c / 4u] = buf;
    }
}

//#entry input_adjoint
// dx from dxs: dx[n][u][v][ci] = dxs[n][u/s + m][v/s + m][((u mod s)·s + v mod s)·cin + ci]
// (0 for the trailing rows/columns no output reads). One invocation per x pixel, grid
// (v, u, n). Overwrites dx.
@group(0) @binding(0) var<storage, read> dxs: array<f32>;
@group(0) @binding(1) var<storage, read_write> dx: array<f32>;
@group(0) @binding(2) var<uniform> p: P;
@compute @workgroup_size(64)
fn input_adjoint(@builtin(global_invocation_id) g: vec3<u32>) {
    let v = g.x;
    if (v >= p.w) { return; }
    let u = g.y;
    let n = g.z;
    let yy = u / p.s + p.m;
    let xx = v / p.s + p.m;
    let ok = yy < p.hs && xx < p.ws;
    let src = ((n * p.hs + yy) * p.ws + xx) * p.cp + ((u % p.s) * p.s + v % p.s) * p.cin;
    let dst = ((n * p.h + u) * p.w + v) * p.cin;
    for (var ci = 0u; ci < p.cin; ci++) {
        var d = 0.0;
        if (ok) { d = dxs[src + ci]; }
        dx[dst + ci] = d;
    }
}

//#entry weights
// ws from w, one invocation per ws element (total = cout·Ay·Ax·CP).
@group(0) @binding(0) var<storage, read> w: array<f32>;
@group(0) @binding(1) var<storage, read_write> wsp: array<f32>;
@group(0) @binding(2) var<uniform> p: P;
@compute @workgroup_size(64)
fn weights(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let i = index(g, nw);
    if (i >= p.total) { return; }
    let c = i % p.cp;
    let t = i / p.cp;
    let ax = t % p.ax;
    let t2 = t / p.ax;
    let ay = t2 % p.ay;
    let o = t2 / p.ay;
    let ci = c % p.cin;
    let b = c / p.cin;
    // b ≥ s² (the zero channels) makes by ≥ s, so ky falls outside or is caught below
    let by = b / p.s;
    let bx = b % p.s;
    let ky = i32(p.s * ay + by) - i32(p.e);
    let kx = i32(p.s * ax + bx) - i32(p.e);
    var v = 0.0;
    if (by < p.s && ky >= 0 && ky < i32(p.kh) && kx >= 0 && kx < i32(p.kw)) {
        v = w[((o * p.kh + u32(ky)) * p.kw + u32(kx)) * p.cin + ci];
    }
    wsp[i] = v;
}

//#entry weights_adjoint
// dw (MODE 1: +=) from dws: dw[o][ky][kx][ci] = dws[o][(ky+e)/s][(kx+e)/s][(((ky+e) mod s)·s
// + (kx+e) mod s)·cin + ci]; one invocation per dw element (total = cout·kh·kw·cin).
@group(0) @binding(0) var<storage, read> dws: array<f32>;
@group(0) @binding(1) var<storage, read_write> dw: array<f32>;
@group(0) @binding(2) var<uniform> p: P;
@compute @workgroup_size(64)
fn weights_adjoint(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let i = index(g, nw);
    if (i >= p.total) { return; }
    let ci = i % p.cin;
    let t = i / p.cin;
    let kx = t % p.kw + p.e;
    let t2 = t / p.kw;
    let ky = t2 % p.kh + p.e;
    let o = t2 / p.kh;
    let c = ((ky % p.s) * p.s + kx % p.s) * p.cin + ci;
    let v = dws[((o * p.ay + ky / p.s) * p.ax + kx / p.s) * p.cp + c];
    if (MODE == 1u) {
        dw[i] = dw[i] + v;
    } else {
        dw[i] = v;
    }
}
