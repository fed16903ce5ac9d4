// LSTM controller parameter gradients (overwritten), summed over the stage's blocks, one
// invocation per gradient element, from the scratch `s` written by controller_lstm_bwd.wgsl:
// d fc_in.w [H][K] = Σ_d da_d ⊗ w̄_d, d fc_in.b = Σ_d da_d,
// d lstm.w [4H][2H] = Σ_d dgate_d ⊗ [h_{d-1}, x_d], d lstm.b = Σ_d dgate_d,
// d fc_out.w [C][H] = Σ_d dz_d ⊗ h_d, d fc_out.b = Σ_d dz_d.
// Host side: trainer/src/gpu/controller.rs.
const WG: u32 = 64u;
@group(0) @binding(0) var<storage, read> s: array<f32>;
@group(0) @binding(1) var<storage, read_write> d_fc_in_w: array<f32>;
@group(0) @binding(2) var<storage, read_write> d_fc_in_b: array<f32>;
@group(0) @binding(3) var<storage, read_write> d_lw: array<f32>;
@group(0) @binding(4) var<storage, read_write> d_lb: array<f32>;
@group(0) @binding(5) var<storage, read_write> d_fc_out_w: array<f32>;
@group(0) @binding(6) var<storage, read_write> d_fc_out_b: array<f32>;
@group(0) @binding(7) var<uniform> p: P;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    var e = gid.x + gid.y * nw.x * WG;
    let h = p.h;
    let nb = p.nblk;
    let n_fiw = h * p.k;
    if (e < n_fiw) {
        let j = e / p.k;
        let k = e % p.k;
        var acc = 0.0;
        for (var d = 0u; d < nb; d++) { acc += s[p.o_da + d * h + j] * s[p.o_wbar + d * p.k + k]; }
        d_fc_in_w[e] = acc;
        return;
    }
    e -= n_fiw;
    if (e < h) {
        var acc = 0.0;
        for (var d = 0u; d < nb; d++) { acc += s[p.o_da + d * h + e]; }
        d_fc_in_b[e] = acc;
        return;
    }
    e -= h;
    if (e < 8u * h * h) {
        let r = e / (2u * h);
        let m = e % (2u * h);
        var acc = 0.0;
        for (var d = 0u; d < nb; d++) {
            var z = 0.0;
            if (m >= h) {
                z = s[p.o_x + d * h + m - h];
            } else if (d > 0u) {
                z = s[p.o_h + (d - 1u) * h + m];
            }
            acc += s[p.o_dgate + d * 4u * h + r] * z;
        }
        d_lw[e] = acc;
        return;
    }
    e -= 8u * h * h;
    if (e < 4u * h) {
        var acc = 0.0;
        for (var d = 0u; d < nb; d++) { acc += s[p.o_dgate + d * 4u * h + e]; }
        d_lb[e] = acc;
        return;
    }
    e -= 4u * h;
    if (e < p.c * h) {
        let ch = e / h;
        let j = e % h;
        var acc = 0.0;
        for (var d = 0u; d < nb; d++) { acc += s[p.o_dz + d * p.c + ch] * s[p.o_h + d * h + j]; }
        d_fc_out_w[e] = acc;
        return;
    }
    e -= p.c * h;
    if (e < p.c) {
        var acc = 0.0;
        for (var d = 0u; d < nb; d++) { acc += s[p.o_dz + d * p.c + e]; }
        d_fc_out_b[e] = acc;
    }
}
