// Convolution backward to the weights (dW), split-K over output pixels, deterministic.
// Host side and API: trainer/src/gpu/conv.rs. Reference: trainer/src/reference/conv.rs.
//
// dw[g·Cog+co,ky,kx,ci] = Σ_{n,oy,ox} dy[n,oy,ox,g·Cog+co] · x[n, oy·s−pad+ky, ox·s−pad+kx, g·Cg+ci]
// The P = N·Ho·Wo pixels are cut into `nchunks` chunks of `chunk` pixels; each invocation sums
// one chunk sequentially for one tap (ky,kx), TM output channels × TN input channels (an outer
// product per pixel, VT = vec4 along Cg when Cg % 4 == 0) and writes
// part[chunk][Cout][kh·kw][Cg]; conv_bwd_weights_reduce.wgsl sums the chunks in order.
// Index: x-linear = (chunk · khw + tap) · ctiles + citile; workgroup_id.y = g · ntile + cotile.
// Template: TM, TNV = TN / V, WG. The register tile is written out by the host as named
// scalars (SETUP, BODY, STORE blocks): lavapipe lowers dynamically indexed private arrays to
// compare-and-select chains.
struct P {
    n: u32, h: u32, w: u32, cin: u32,
    cout: u32, kh: u32, kw: u32, stride: u32,
    pad: u32, groups: u32, ho: u32, wo: u32,
    cg: u32, cog: u32, ntile: u32, ctiles: u32,
    chunk: u32, nchunks: u32, pix: u32, _p0: u32,
}
const TM: u32 = {{TM}}u;
const TNV: u32 = {{TNV}}u;
const WG: u32 = {{WG}}u;

// x, dy: storage arrays or texture mirrors (trainer/src/gpu/texture.rs), read with ld_x / ld_dy;
// dy is vec4 along Cout when Cog % 4 == 0.
{{X_DECL}}
{{DY_DECL}}
@group(0) @binding(2) var<storage, read_write> part: array<VT>;
@group(0) @binding(3) var<uniform> p: P;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let khw = p.kh * p.kw;
    let lin = (wid.x + wid.z * nwg.x) * WG + li;
    if (lin >= p.nchunks * khw * p.ctiles) { return; }
    let ct = lin % p.ctiles;
    let tap = (lin / p.ctiles) % khw;
    let chunk = lin / (p.ctiles * khw);
    let ky = tap / p.kw;
    let kx = tap % p.kw;
    let g = wid.y / p.ntile;
    let co0 = (wid.y % p.ntile) * TM;
    let ci0 = ct * TNV * V;
    // dyo{i} / xo{j}: clamped channel offsets (out-of-range ones are computed, not stored);
    // acc{i}_{j}: the register tile (generated, see the note above).
{{SETUP}}
    let s = i32(p.stride);
    let hw = p.ho * p.wo;
    let p0 = chunk * p.chunk;
    let p1 = min(p0 + p.chunk, p.pix);
    // pixel coordinates advanced incrementally (integer division is slow on CPU SIMD)
    var n = p0 / hw;
    var oy = (p0 % hw) / p.wo;
    var ox = p0 % p.wo;
    for (var q = p0; q < p1; q++) {
        let iy = i32(oy) * s - i32(p.pad) + i32(ky);
        let ix = i32(ox) * s - i32(p.pad) + i32(kx);
        let ok = iy >= 0 && iy < i32(p.h) && ix >= 0 && ix < i32(p.w);
        let xb = select(0u, ((n * p.h + u32(iy)) * p.w + u32(ix)) * p.cin, ok);
        let xm = select(0.0, 1.0, ok);
        ox += 1u;
        let wrap = ox == p.wo;
        ox = select(ox, 0u, wrap);
        oy = select(oy, oy + 1u, wrap);
        let wrap2 = oy == p.ho;
        oy = select(oy, 0u, wrap2);
        n = select(n, n + 1u, wrap2);
{{BODY}}
    }
{{STORE}}
}
