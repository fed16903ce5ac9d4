// LSTM controller backward for a whole stage, one workgroup: through the sigmoid
// (dz = dΔt·Δt(1−Δt)) and fc_out (dh = fc_outᵀ·dz), BPTT from the last block to the first
// (dgate = gradients of the gate pre-activations), and through the input half of W and the
// ReLU (da = gradient of fc_in's output). Reads dΔt, Δt and the saved forward state from the
// scratch `s`, writes dz, dh, dgate and da there; the parameter gradients are summed over the
// blocks by controller_lstm_param_grad.wgsl. Host side: trainer/src/gpu/controller.rs.
const WG: u32 = 256u;
@group(0) @binding(0) var<storage, read> lw: array<f32>;
@group(0) @binding(1) var<storage, read> fc_out_w: array<f32>;
@group(0) @binding(2) var<storage, read_write> s: array<f32>;
@group(0) @binding(3) var<uniform> p: P;

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) t: u32) {
    let h = p.h;
    let nb = p.nblk;
    for (var e = t; e < nb * p.c; e += WG) {
        let y = s[p.o_dt + e];
        s[p.o_dz + e] = s[p.o_ddt + e] * y * (1.0 - y);
    }
    storageBarrier();
    for (var e = t; e < nb * h; e += WG) {
        let d = e / h;
        let j = e % h;
        var acc = 0.0;
        for (var ch = 0u; ch < p.c; ch++) { acc += s[p.o_dz + d * p.c + ch] * fc_out_w[ch * h + j]; }
        s[p.o_dh + e] = acc;
    }
    storageBarrier();
    for (var step = 0u; step < nb; step++) {
        let d = nb - 1u - step;
        let g = p.o_gates + d * 4u * h;
        let dg = p.o_dgate + d * 4u * h;
        for (var u = t; u < h; u += WG) {
            var dh = s[p.o_dh + d * h + u];
            var dc = 0.0;
            if (step > 0u) {
                dh += s[p.o_dhrec + u];
                dc = s[p.o_dcrec + u];
            }
            let gi = s[g + u];
            let gf = s[g + h + u];
            let gg = s[g + 2u * h + u];
            let go = s[g + 3u * h + u];
            let tc = tanh_s(s[p.o_c + d * h + u]);
            var cprev = 0.0;
            if (d > 0u) { cprev = s[p.o_c + (d - 1u) * h + u]; }
            dc += dh * go * (1.0 - tc * tc);
            s[dg + u] = dc * gg * gi * (1.0 - gi);
            s[dg + h + u] = dc * cprev * gf * (1.0 - gf);
            s[dg + 2u * h + u] = dc * gi * (1.0 - gg * gg);
            s[dg + 3u * h + u] = dh * tc * go * (1.0 - go);
            s[p.o_dcrec + u] = dc * gf;
        }
        storageBarrier();
        for (var m = t; m < 2u * h; m += WG) {
            var acc = 0.0;
            for (var r = 0u; r < 4u * h; r++) { acc += lw[r * 2u * h + m] * s[dg + r]; }
            if (m < h) {
                s[p.o_dhrec + m] = acc;
            } else {
                let j = m - h;
                s[p.o_da + d * h + j] = select(0.0, acc, s[p.o_pre + d * h + j] > 0.0);
            }
        }
        storageBarrier();
    }
}
