// Option-A shortcut (docs/DESIGN.md): y[n, yo, xo, c] = x[n, s·yo, s·xo, c] for c < C_in, else 0,
// stride s ≥ 1 (2 in the CIFAR ResNets). Input [N][H][W][C_in], output [N][Ho][Wo][C_out] with
// Ho = ⌈H/s⌉, Wo = ⌈W/s⌉, C_out ≥ C_in. Backward scatters dy back onto the rows/columns that are
// multiples of s; MODE 1 accumulates into dx (the block input's gradient already holds conv1's
// contribution), MODE 0 overwrites.
// Host side: trainer/src/gpu/elementwise.rs.
struct P {
    n: u32,
    h: u32,
    w: u32,
    cin: u32,
    ho: u32,
    wo: u32,
    cout: u32,
    s: u32,
}
const WG: u32 = 64u;
const MODE: u32 = {{MODE}}u;
// The vec4 entries `fwd4` / `bwd4` at the end: channel counts that are multiples of 4 on CPU
// adapters, one invocation per 4 channels, operands read through texture mirrors with tex4
// (texture.wgsl, prepended by the host; on lavapipe a storage-buffer gather goes lane by lane,
// a texel fetch is vectorised).

//#entry fwd
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<uniform> p: P;
@compute @workgroup_size(64)
fn fwd(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let i = g.x + g.y * nw.x * WG;
    if (i >= p.n * p.ho * p.wo * p.cout) { return; }
    let c = i % p.cout;
    var t = i / p.cout;
    let xo = t % p.wo;
    t = t / p.wo;
    let yo = t % p.ho;
    let n = t / p.ho;
    var v = 0.0;
    if (c < p.cin) {
        v = x[((n * p.h + p.s * yo) * p.w + p.s * xo) * p.cin + c];
    }
    y[i] = v;
}

//#entry bwd
@group(0) @binding(0) var<storage, read> dy: array<f32>;
@group(0) @binding(1) var<storage, read_write> dx: array<f32>;
@group(0) @binding(2) var<uniform> p: P;
@compute @workgroup_size(64)
fn bwd(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    // One invocation per input element.
    let i = g.x + g.y * nw.x * WG;
    let total_in = p.n * p.h * p.w * p.cin;
    if (i >= total_in) { return; }
    let c = i % p.cin;
    var t = i / p.cin;
    let xi = t % p.w;
    t = t / p.w;
    let yi = t % p.h;
    let n = t / p.h;
    // One division per coordinate (integer division by a uniform is not vectorised on CPU).
    let qx = xi / p.s;
    let qy = yi / p.s;
    var v = 0.0;
    if (qx * p.s == xi && qy * p.s == yi) {
        v = dy[((n * p.ho + qy) * p.wo + qx) * p.cout + c];
    }
    if (MODE == 1u) {
        dx[i] = dx[i] + v;
    } else {
        dx[i] = v;
    }
}


//#entry fwd4
@group(0) @binding(0) var x: texture_2d<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<vec4<f32>>;
@group(0) @binding(2) var<uniform> p: P;
@compute @workgroup_size(64)
fn fwd4(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let i = g.x + g.y * nw.x * WG;
    let co4 = p.cout / 4u;
    if (i >= p.n * p.ho * p.wo * co4) { return; }
    let c = i % co4;
    var t = i / co4;
    let xo = t % p.wo;
    t = t / p.wo;
    let yo = t % p.ho;
    let n = t / p.ho;
    let ci4 = p.cin / 4u;
    let inside = c < ci4;
    let at = ((n * p.h + p.s * yo) * p.w + p.s * xo) * ci4 + c;
    y[i] = select(vec4<f32>(), tex4(x, select(0u, at, inside)), inside);
}

//#entry bwd4
// dx_old: a mirror of dx taken before the dispatch (read only in MODE 1).
@group(0) @binding(0) var dy: texture_2d<f32>;
@group(0) @binding(1) var<storage, read_write> dx: array<vec4<f32>>;
@group(0) @binding(2) var<uniform> p: P;
@group(0) @binding(3) var dx_old: texture_2d<f32>;
@compute @workgroup_size(64)
fn bwd4(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    // One invocation per 4 input channels of one input pixel.
    let i = g.x + g.y * nw.x * WG;
    let ci4 = p.cin / 4u;
    if (i >= p.n * p.h * p.w * ci4) { return; }
    let c = i % ci4;
    var t = i / ci4;
    let xi = t % p.w;
    t = t / p.w;
    let yi = t % p.h;
    let n = t / p.h;
    let qx = xi / p.s;
    let qy = yi / p.s;
    let hit = qx * p.s == xi && qy * p.s == yi;
    let at = ((n * p.ho + qy) * p.wo + qx) * (p.cout / 4u) + c;
    var v = select(vec4<f32>(), tex4(dy, select(0u, at, hit)), hit);
    if (MODE == 1u) {
        v = v + tex4(dx_old, i);
    }
    dx[i] = v;
}
