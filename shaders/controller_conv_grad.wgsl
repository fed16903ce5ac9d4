// Controller backward into the conv weights of block d, one invocation per summary index k:
// dw̄[k] = Σ_j fc_in[j][k]·da_d[j] (da from the scratch `s`), then for every input channel i
// dW[k][i] += dw̄[k] / C_in, i.e. dW[o][ky][kx][i] += dw̄[o·9 + ky·3 + kx] / C_in, conv1 for
// k < k1, conv2 after (ACCUMULATES onto the conv backward's gradient). MODE 1 (2fc, the block's
// own fc_in) also overwrites d fc_in.w[j][k] = da_d[j]·w̄_d[k].
// Host side: trainer/src/gpu/controller.rs.
const MODE: u32 = {{MODE}}u;
const WG: u32 = 64u;
@group(0) @binding(0) var<storage, read> s: array<f32>;
@group(0) @binding(1) var<storage, read> fc_in_w: array<f32>;
@group(0) @binding(2) var<storage, read_write> conv1_dw: array<f32>;
@group(0) @binding(3) var<storage, read_write> conv2_dw: array<f32>;
@group(0) @binding(4) var<storage, read_write> d_fc_in_w: array<f32>;
@group(0) @binding(5) var<uniform> p: P;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let k = gid.x + gid.y * nw.x * WG;
    if (k >= p.k) { return; }
    let da = p.o_da + p.d * p.h;
    var acc = 0.0;
    for (var j = 0u; j < p.h; j++) { acc += s[da + j] * fc_in_w[j * p.k + k]; }
    if (k < p.k1) {
        let g = acc / f32(p.cin1);
        let base = k * p.cin1;
        for (var i = 0u; i < p.cin1; i++) { conv1_dw[base + i] += g; }
    } else {
        let g = acc / f32(p.cin2);
        let base = (k - p.k1) * p.cin2;
        for (var i = 0u; i < p.cin2; i++) { conv2_dw[base + i] += g; }
    }
    if (MODE == 1u) {
        let wb = s[p.o_wbar + p.d * p.k + k];
        for (var j = 0u; j < p.h; j++) { d_fc_in_w[j * p.k + k] = s[da + j] * wb; }
    }
}
