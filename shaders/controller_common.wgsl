// Shared by every controller_*.wgsl (prepended by trainer/src/gpu/controller.rs): the
// parameter block of one stage's controller.
// The scratch buffer `s` of a stage holds, at the offsets below (all in f32 elements), per block d:
// w̄ [B][K], pre [B][H] (fc_in output), x [B][H] (ReLU), gates [B][4H] (activated i,f,g,o),
// c [B][H], h [B][H], Δt [B][C], dΔt [B][C], dz [B][C] (grad of the sigmoid input),
// dh [B][H] (grad of the fc_out input), dgate [B][4H] (grad of the gate pre-activations),
// da [B][H] (grad of fc_in's output, ReLU mask applied), dh_rec [H], dc_rec [H] (BPTT carries).
struct P {
    nblk: u32,  // blocks in the stage
    k: u32,     // summary length K = k1 + K2
    k1: u32,    // conv1's part of the summary (len(conv1) / cin1)
    cin1: u32,
    cin2: u32,
    h: u32,     // hidden size H
    c: u32,     // output channels C
    d: u32,     // this dispatch's block (per-block kernels)
    o_wbar: u32,
    o_pre: u32,
    o_x: u32,
    o_gates: u32,
    o_c: u32,
    o_h: u32,
    o_dt: u32,
    o_ddt: u32,
    o_dz: u32,
    o_dh: u32,
    o_dgate: u32,
    o_da: u32,
    o_dhrec: u32,
    o_dcrec: u32,
    n1: u32,    // elements of conv1.w
    n2: u32,    // elements of conv2.w
}
// sigm and tanh_s: activation.wgsl (prepended before this file).
