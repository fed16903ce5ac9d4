// Convolution forward for few input channels (the RGB stem), stride 1, no groups: each
// invocation owns TM consecutive output pixels of one output row × TN output channels.
// Host side and selection (`row_kernel`): trainer/src/gpu/conv.rs. Reference:
// trainer/src/reference/conv.rs.
//
// Why a separate kernel: with Cin = 3 the general kernel loads one scalar per pixel per tap
// per channel (no vec4 along channels) and repeats the tap's address arithmetic for 3 channels.
// Here, per kernel row ky, the TM + KW − 1 input pixels the row segment touches are one
// contiguous NHWC run of (TM + KW − 1)·CIN floats, loaded once as vec4s (the run starts on a
// multiple of 4 since W·CIN and TM·CIN are) and reused by all KW horizontal taps. Weights come
// re-laid out as wt [kh][kw][Cin][Cout] (conv_wtrans.wgsl), so each (ky, kx, ci) is TN/4
// workgroup-uniform vec4 loads, and the accumulators are vec4 along output channels.
// Generation-time constants: TM, TN, WG, CIN, KH, KW, PAD (also in the pipeline key). The run,
// its column masks and the register tile are written out by the host as named variables
// (SETUP, ROWS, STORE blocks): lavapipe lowers dynamically indexed private arrays to
// compare-and-select chains.
struct P {
    n: u32, h: u32, w: u32, cin: u32,
    cout: u32, kh: u32, kw: u32, stride: u32,
    pad: u32, groups: u32, ho: u32, wo: u32,
    nseg: u32, ntile: u32, m: u32, has_bias: u32,
    _p0: u32, _p1: u32, _p2: u32, _p3: u32,
}
const TM: u32 = {{TM}}u;
const TN: u32 = {{TN}}u;
const WG: u32 = {{WG}}u;
const CIN: u32 = {{CIN}}u;

// x, wt: storage arrays or texture mirrors (trainer/src/gpu/texture.rs), read with ld_x / ld_wt.
{{X_DECL}}
{{W_DECL}}
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<vec4<f32>>;
@group(0) @binding(4) var<uniform> p: P;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let lin = (wid.x + wid.z * nwg.x) * WG + li;
    if (lin >= p.m) { return; }
    let co0 = wid.y * TN;
    let seg = lin % p.nseg;
    let r = lin / p.nseg; // output row n·Ho + oy
    let oy = r % p.ho;
    let n = r / p.ho;
    let ox0 = seg * TM;
    let cq = p.cout / 4u;
    let last = i32(p.n * p.h * p.w * CIN / 4u) - 1; // x's last vec4
    // colok{c}: input column ox0 − PAD + c inside the image; wq{q}: clamped vec4 index of
    // output channels co0 + 4q..; acc{i}_{q}: the register tile (vec4 along output channels).
{{SETUP}}
    // Written out by the host, no loop (a loop over ky carried the whole register tile from
    // iteration to iteration; straight code measured 1.2–1.3x faster on lavapipe). Per kernel
    // row ky: iy{ky} input row, r{ky}base vec4 index of input pixel (n, iy, ox0), r{ky}v{k}
    // the run's vec4s, r{ky}xs{c}_{ci} its floats (0 outside the image), b{ky}_{kx}_{ci}_{q}
    // the weights; then every accumulator's KH·KW·CIN terms one after the other.
{{ROWS}}
{{STORE}}
}
