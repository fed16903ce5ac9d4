// 2fc controller backward, head part, one workgroup per block d: through the sigmoid
// (dz = dΔt·Δt(1−Δt)), fc_out (gradients of the block's fc_out.w, fc_out.b, overwritten) and the
// ReLU: da = (fc_outᵀ·dz) ⊙ [pre > 0], which is also d fc_in.b (overwritten). dz and da go to
// the scratch `s`; controller_conv_grad.wgsl takes da on to fc_in.w and the conv weights.
// Host side: trainer/src/gpu/controller.rs.
const WG: u32 = 64u;
@group(0) @binding(0) var<storage, read_write> s: array<f32>;
@group(0) @binding(1) var<storage, read> fc_out_w: array<f32>;
@group(0) @binding(2) var<storage, read_write> d_fc_out_w: array<f32>;
@group(0) @binding(3) var<storage, read_write> d_fc_out_b: array<f32>;
@group(0) @binding(4) var<storage, read_write> d_fc_in_b: array<f32>;
@group(0) @binding(5) var<uniform> p: P;

@compute @workgroup_size(64)
fn main(@builtin(local_invocation_index) t: u32) {
    let d = p.d;
    let h = p.h;
    for (var ch = t; ch < p.c; ch += WG) {
        let e = d * p.c + ch;
        let y = s[p.o_dt + e];
        let dz = s[p.o_ddt + e] * y * (1.0 - y);
        s[p.o_dz + e] = dz;
        d_fc_out_b[ch] = dz;
        for (var j = 0u; j < h; j++) { d_fc_out_w[ch * h + j] = dz * s[p.o_x + d * h + j]; }
    }
    storageBarrier();
    for (var j = t; j < h; j += WG) {
        var acc = 0.0;
        for (var ch = 0u; ch < p.c; ch++) { acc += s[p.o_dz + d * p.c + ch] * fc_out_w[ch * h + j]; }
        let da = select(0.0, acc, s[p.o_pre + d * h + j] > 0.0);
        s[p.o_da + d * h + j] = da;
        d_fc_in_b[j] = da;
    }
}
