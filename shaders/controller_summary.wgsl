// Controller forward, one workgroup per block d (both modes): the weight summary
// w̄_d[k] = mean_i conv[k][i] (conv1 then conv2, OHWI seen as [K][cin]), then
// pre = fc_in · w̄_d + b_in and x_d = ReLU(pre). MODE 1 (2fc) also applies the block's own
// fc_out and sigmoid: Δt_d = σ(fc_out · x_d + b_out). Everything goes to the scratch `s`.
// Host side: trainer/src/gpu/controller.rs.
const MODE: u32 = {{MODE}}u;
const WG: u32 = 256u;
@group(0) @binding(0) var<storage, read> conv1: array<f32>;
@group(0) @binding(1) var<storage, read> conv2: array<f32>;
@group(0) @binding(2) var<storage, read> fc_in_w: array<f32>;
@group(0) @binding(3) var<storage, read> fc_in_b: array<f32>;
@group(0) @binding(4) var<storage, read> fc_out_w: array<f32>;
@group(0) @binding(5) var<storage, read> fc_out_b: array<f32>;
@group(0) @binding(6) var<storage, read_write> s: array<f32>;
@group(0) @binding(7) var<uniform> p: P;

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) t: u32) {
    let d = p.d;
    let wb = p.o_wbar + d * p.k;
    for (var k = t; k < p.k; k += WG) {
        var acc = 0.0;
        if (k < p.k1) {
            let base = k * p.cin1;
            for (var i = 0u; i < p.cin1; i++) { acc += conv1[base + i]; }
            acc = acc / f32(p.cin1);
        } else {
            let base = (k - p.k1) * p.cin2;
            for (var i = 0u; i < p.cin2; i++) { acc += conv2[base + i]; }
            acc = acc / f32(p.cin2);
        }
        s[wb + k] = acc;
    }
    storageBarrier();
    for (var j = t; j < p.h; j += WG) {
        var acc = fc_in_b[j];
        let row = j * p.k;
        for (var k = 0u; k < p.k; k++) { acc += fc_in_w[row + k] * s[wb + k]; }
        s[p.o_pre + d * p.h + j] = acc;
        s[p.o_x + d * p.h + j] = max(acc, 0.0);
    }
    if (MODE == 1u) {
        storageBarrier();
        for (var ch = t; ch < p.c; ch += WG) {
            var acc = fc_out_b[ch];
            for (var j = 0u; j < p.h; j++) { acc += fc_out_w[ch * p.h + j] * s[p.o_x + d * p.h + j]; }
            s[p.o_dt + d * p.c + ch] = sigm(acc);
        }
    }
}
