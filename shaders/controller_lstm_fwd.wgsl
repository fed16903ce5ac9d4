// LSTM controller forward for a whole stage, one workgroup, sequential over the blocks:
// z = W·[h_{d-1}, x_d] + b (gate rows i, f, g, o), c_d = f⊙c_{d-1} + i⊙g, h_d = o⊙tanh(c_d),
// state zero before block 0; then Δt_d = σ(fc_out · h_d + b_out) for every block.
// Reads x_d from the scratch `s` (controller_summary.wgsl), saves gates, c, h and Δt there.
// Host side: trainer/src/gpu/controller.rs.
const WG: u32 = 64u;
@group(0) @binding(0) var<storage, read> lw: array<f32>;
@group(0) @binding(1) var<storage, read> lb: array<f32>;
@group(0) @binding(2) var<storage, read> fc_out_w: array<f32>;
@group(0) @binding(3) var<storage, read> fc_out_b: array<f32>;
@group(0) @binding(4) var<storage, read_write> s: array<f32>;
@group(0) @binding(5) var<uniform> p: P;

@compute @workgroup_size(64)
fn main(@builtin(local_invocation_index) t: u32) {
    let h = p.h;
    for (var d = 0u; d < p.nblk; d++) {
        let g = p.o_gates + d * 4u * h;
        for (var r = t; r < 4u * h; r += WG) {
            var z = lb[r];
            let row = r * 2u * h;
            if (d > 0u) {
                for (var j = 0u; j < h; j++) { z += lw[row + j] * s[p.o_h + (d - 1u) * h + j]; }
            }
            for (var j = 0u; j < h; j++) { z += lw[row + h + j] * s[p.o_x + d * h + j]; }
            s[g + r] = select(sigm(z), tanh_s(z), r / h == 2u);
        }
        storageBarrier();
        for (var u = t; u < h; u += WG) {
            var cp = 0.0;
            if (d > 0u) { cp = s[p.o_c + (d - 1u) * h + u]; }
            let c = s[g + h + u] * cp + s[g + u] * s[g + 2u * h + u];
            s[p.o_c + d * h + u] = c;
            s[p.o_h + d * h + u] = s[g + 3u * h + u] * tanh_s(c);
        }
        storageBarrier();
    }
    for (var e = t; e < p.nblk * p.c; e += WG) {
        let d = e / p.c;
        let ch = e % p.c;
        var acc = fc_out_b[ch];
        for (var j = 0u; j < h; j++) { acc += fc_out_w[ch * h + j] * s[p.o_h + d * h + j]; }
        s[p.o_dt + e] = sigm(acc);
    }
}
