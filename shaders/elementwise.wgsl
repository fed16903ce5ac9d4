// Elementwise kernels over flat f32 tensors: ReLU forward/backward, add, in-place accumulate.
// Host side: trainer/src/gpu/elementwise.rs. The flat tensor is viewed as rows of WG elements;
// workgroup k (folded 1-D grid: k = wg.x + wg.y · nwg.x) loops over rows k·chunk .. (k+1)·chunk,
// lane l taking element row·WG + l: consecutive lanes touch consecutive elements and each
// invocation does `chunk` elements, which amortises invocation overhead on CPU adapters.
struct P {
    total: u32,
    chunk: u32,
    _a: u32,
    _b: u32,
}
const WG: u32 = 64u;
const MODE: u32 = {{MODE}}u;

//#entry relu_fwd
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<uniform> p: P;
@compute @workgroup_size(64)
fn relu_fwd(@builtin(local_invocation_id) l: vec3<u32>, @builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let r0 = (wg.x + wg.y * nw.x) * p.chunk;
    for (var r = r0; r < r0 + p.chunk; r++) {
        let i = r * WG + l.x;
        if (i >= p.total) { return; }
        y[i] = max(x[i], 0.0);
    }
}

//#entry relu_bwd
// dx = dy · [y > 0], with y the forward output.
@group(0) @binding(0) var<storage, read> dy: array<f32>;
@group(0) @binding(1) var<storage, read> y: array<f32>;
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;
@group(0) @binding(3) var<uniform> p: P;
@compute @workgroup_size(64)
fn relu_bwd(@builtin(local_invocation_id) l: vec3<u32>, @builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let r0 = (wg.x + wg.y * nw.x) * p.chunk;
    for (var r = r0; r < r0 + p.chunk; r++) {
        let i = r * WG + l.x;
        if (i >= p.total) { return; }
        dx[i] = select(0.0, dy[i], y[i] > 0.0);
    }
}

//#entry add
@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> z: array<f32>;
@group(0) @binding(3) var<uniform> p: P;
@compute @workgroup_size(64)
fn add(@builtin(local_invocation_id) l: vec3<u32>, @builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let r0 = (wg.x + wg.y * nw.x) * p.chunk;
    for (var r = r0; r < r0 + p.chunk; r++) {
        let i = r * WG + l.x;
        if (i >= p.total) { return; }
        z[i] = a[i] + b[i];
    }
}

//#entry add_inplace
@group(0) @binding(0) var<storage, read> b: array<f32>;
@group(0) @binding(1) var<storage, read_write> acc: array<f32>;
@group(0) @binding(2) var<uniform> p: P;
@compute @workgroup_size(64)
fn add_inplace(@builtin(local_invocation_id) l: vec3<u32>, @builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let r0 = (wg.x + wg.y * nw.x) * p.chunk;
    for (var r = r0; r < r0 + p.chunk; r++) {
        let i = r * WG + l.x;
        if (i >= p.total) { return; }
        acc[i] = acc[i] + b[i];
    }
}

// `add_inplace` over vec4s (tensor length a multiple of 4): a quarter of the loads and stores,
// each of which is a loop over the SIMD lanes on CPU adapters. `total` counts vec4s here.
//#entry add_inplace4
@group(0) @binding(0) var<storage, read> b: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> acc: array<vec4<f32>>;
@group(0) @binding(2) var<uniform> p: P;
@compute @workgroup_size(64)
fn add_inplace4(@builtin(local_invocation_id) l: vec3<u32>, @builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let r0 = (wg.x + wg.y * nw.x) * p.chunk;
    for (var r = r0; r < r0 + p.chunk; r++) {
        let i = r * WG + l.x;
        if (i >= p.total) { return; }
        acc[i] = acc[i] + b[i];
    }
}
