// SGD with momentum and weight decay, PyTorch semantics:
//   g = grad + wd · w;  v = μ · v + g;  w -= lr · (g + μ · v)   (Nesterov, MODE 1)
//                                      w -= lr · v              (classic, MODE 0)
// lr is read from a one-element storage buffer so the schedule can change it every step
// without rebuilding dispatches. Host side: trainer/src/gpu/optim.rs.
struct P {
    total: u32,
    momentum: f32,
    weight_decay: f32,
    _a: u32,
}
const WG: u32 = 64u;
const MODE: u32 = {{MODE}}u;

//#entry step
@group(0) @binding(0) var<storage, read> grad: array<f32>;
@group(0) @binding(1) var<storage, read_write> w: array<f32>;
@group(0) @binding(2) var<storage, read_write> v: array<f32>;
@group(0) @binding(3) var<storage, read> lr: array<f32>;
@group(0) @binding(4) var<uniform> p: P;
@compute @workgroup_size(64)
fn step(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let i = gid.x + gid.y * nw.x * WG;
    if (i >= p.total) { return; }
    let wi = w[i];
    let g = grad[i] + p.weight_decay * wi;
    let vi = p.momentum * v[i] + g;
    v[i] = vi;
    if (MODE == 1u) {
        w[i] = wi - lr[0] * (g + p.momentum * vi);
    } else {
        w[i] = wi - lr[0] * vi;
    }
}
