// Controller backward into the conv weights of block d, one invocation per element: with
// dw̄ = fc_inᵀ·da_d (da from the scratch `s`), dW[o][ky][kx][i] += dw̄[o·9 + ky·3 + kx] / C_in
// for conv1 then conv2 (ACCUMULATES onto the conv backward's gradient). MODE 1 (2fc, the
// block's own fc_in) also overwrites d fc_in.w [H][K] = da_d ⊗ w̄_d.
// Host side: trainer/src/gpu/controller.rs.
const MODE: u32 = {{MODE}}u;
const WG: u32 = 64u;
@group(0) @binding(0) var<storage, read> s: array<f32>;
@group(0) @binding(1) var<storage, read> fc_in_w: array<f32>;
@group(0) @binding(2) var<storage, read_write> conv1_dw: array<f32>;
@group(0) @binding(3) var<storage, read_write> conv2_dw: array<f32>;
@group(0) @binding(4) var<storage, read_write> d_fc_in_w: array<f32>;
@group(0) @binding(5) var<uniform> p: P;

fn dwbar(k: u32) -> f32 {
    var acc = 0.0;
    for (var j = 0u; j < p.h; j++) { acc += s[p.o_da + p.d * p.h + j] * fc_in_w[j * p.k + k]; }
    return acc;
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    var e = gid.x + gid.y * nw.x * WG;
    if (e < p.n1) {
        conv1_dw[e] += dwbar(e / p.cin1) / f32(p.cin1);
        return;
    }
    e -= p.n1;
    if (e < p.n2) {
        conv2_dw[e] += dwbar(p.k1 + e / p.cin2) / f32(p.cin2);
        return;
    }
    e -= p.n2;
    if (MODE == 1u && e < p.h * p.k) {
        let j = e / p.k;
        let k = e % p.k;
        d_fc_in_w[e] = s[p.o_da + p.d * p.h + j] * s[p.o_wbar + p.d * p.k + k];
    }
}
