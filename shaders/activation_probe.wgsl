// Test kernel (appended to activation.wgsl): out[i] = tanh_s(z[i]), out[n + i] = sigm(z[i]).
@group(0) @binding(0) var<storage, read> z: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let n = arrayLength(&z);
    let i = g.x + g.y * nw.x * 64u;
    if (i >= n) { return; }
    out[i] = tanh_s(z[i]);
    out[n + i] = sigm(z[i]);
}
