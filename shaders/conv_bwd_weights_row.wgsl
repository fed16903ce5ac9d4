// Convolution backward to the weights for few input channels (the RGB stem), stride 1, no
// groups; split-K over output rows, deterministic. Host side and selection (`row_kernel`):
// trainer/src/gpu/conv.rs. Reference: trainer/src/reference/conv.rs.
//
// dw[co,ky,kx,ci] = Σ_{n,oy,ox} dy[n,oy,ox,co] · x[n, oy−pad+ky, ox−pad+kx, ci]
// Each invocation owns one kernel row ky and TM output channels (all KW·CIN taps × channels
// of that row: KW·CIN·TM/4 vec4 accumulators) over a chunk of `rpc` output rows. Per segment
// of TP output pixels of a row, the input run they touch ((TP + KW − 1)·CIN contiguous NHWC
// floats) is loaded once as vec4s and reused by all KW taps; per pixel, dy is TM/4 vec4 loads
// feeding KW·CIN·TM FMAs (the general kernel: per tap and pixel, one scalar x load per input
// channel and TM/4 dy loads for TM·4 FMAs). Writes part[chunk][Cout][kh][kw][Cin]; the chunks
// are summed in order by conv_bwd_weights_reduce.wgsl.
// Index: x-linear = chunk · kh + ky; workgroup_id.y = output-channel tile.
// Generation-time constants: TM, TP, WG, CIN, KW, PAD. Register tile and run written out by
// the host as named variables (SETUP, LOAD, BODY, STORE blocks).
struct P {
    n: u32, h: u32, w: u32, cin: u32,
    cout: u32, kh: u32, kw: u32, stride: u32,
    pad: u32, groups: u32, ho: u32, wo: u32,
    nseg: u32, ntile: u32, rpc: u32, nchunks: u32,
    rows: u32, _p0: u32, _p1: u32, _p2: u32,
}
const TM: u32 = {{TM}}u;
const TP: u32 = {{TP}}u;
const WG: u32 = {{WG}}u;
const CIN: u32 = {{CIN}}u;

// x, dy: storage arrays or texture mirrors (trainer/src/gpu/texture.rs), read with ld_x / ld_dy.
{{X_DECL}}
{{DY_DECL}}
@group(0) @binding(2) var<storage, read_write> part: array<f32>;
@group(0) @binding(3) var<uniform> p: P;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let lin = (wid.x + wid.z * nwg.x) * WG + li;
    if (lin >= p.nchunks * p.kh) { return; }
    let ky = lin % p.kh;
    let chunk = lin / p.kh;
    let co0 = wid.y * TM;
    let cq = p.cout / 4u;
    let last = i32(p.n * p.h * p.w * CIN / 4u) - 1; // x's last vec4
    // dq{q}: clamped vec4 index of output channels co0 + 4q..; acc{kx}_{ci}_{q}: the tile.
{{SETUP}}
    let r0 = chunk * p.rpc;
    let r1 = min(r0 + p.rpc, p.rows);
    // output row coordinates advanced incrementally (integer division is slow on CPU SIMD)
    var n = r0 / p.ho;
    var oy = r0 % p.ho;
    for (var r = r0; r < r1; r++) {
        let iy = i32(oy) + i32(ky) - i32(p.pad);
        if (iy >= 0 && iy < i32(p.h)) {
            let rb = (n * p.h + u32(iy)) * p.w * CIN / 4u;
            for (var seg = 0u; seg < p.nseg; seg++) {
                let ox0 = seg * TP;
                let base = i32(rb + ox0 * CIN / 4u);
                let db = (r * p.wo + ox0) * cq;
{{LOAD}}
{{BODY}}
            }
        }
        oy += 1u;
        let wrap = oy == p.ho;
        oy = select(oy, 0u, wrap);
        n = select(n, n + 1u, wrap);
    }
{{STORE}}
}
