// Convolution backward to the input (dX) as an implicit GEMM with register blocking.
// Host side and API: trainer/src/gpu/conv.rs. Reference: trainer/src/reference/conv.rs.
//
// dx[n,iy,ix,g·Cg+ci] = Σ_{ky,kx,co} dy[n,oy,ox,g·Cog+co] · w[g·Cog+co,ky,kx,ci]
//   over the taps with iy = oy·s − pad + ky (and the same for x) for some in-range oy, ox.
// Weights come re-laid out as wt [G][kh][kw][Cg][Cog] (conv_wtrans.wgsl), so both operands are
// contiguous along Cog: VT loads (vec4 when Cog % 4 == 0), dot products.
//
// Strided convs: input pixels are split into s² phases (iy mod s, ix mod s); within a phase the
// contributing taps are the same for every pixel (ky ≡ iy + pad mod s), so no work is wasted on
// taps that do not hit an output pixel. workgroup_id.y = (phase · G + g) · ntile + tile, so all
// lanes of a workgroup share phase, group and channel tile (uniform loops, uniform weight loads).
// Each invocation owns TM pixels of one phase × TN input channels. Template: TM, TN, WG.
// The register tile is written out by the host as named scalars (PIXELS, SETUP, TAP, BODY,
// STORE blocks): lavapipe lowers dynamically indexed private arrays to compare-and-select chains.
struct P {
    n: u32, h: u32, w: u32, cin: u32,
    cout: u32, kh: u32, kw: u32, stride: u32,
    pad: u32, groups: u32, ho: u32, wo: u32,
    cg: u32, cog: u32, ntile: u32, _p0: u32,
    hp: u32, wp: u32, mp: u32, _p1: u32,   // phase grid: ceil(H/s), ceil(W/s), N·hp·wp
}
const TM: u32 = {{TM}}u;
const TN: u32 = {{TN}}u;
const WG: u32 = {{WG}}u;

// dy, wt: storage arrays or texture mirrors (trainer/src/gpu/texture.rs), read with ld_dy / ld_wt.
{{DY_DECL}}
{{W_DECL}}
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;
@group(0) @binding(3) var<uniform> p: P;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let m0 = ((wid.x + wid.z * nwg.x) * WG + li) * TM;
    if (m0 >= p.mp) { return; }
    let tile = wid.y % p.ntile;
    let g = (wid.y / p.ntile) % p.groups;
    let phase = wid.y / (p.ntile * p.groups);
    let s = p.stride;
    let py = phase / s;
    let px = phase % s;
    let ci0 = tile * TN;
    let hwp = p.hp * p.wp;
    // Per pixel i of this phase (generated, see the note above): pn{i} image, ty{i}/tx{i}
    // phase-grid coordinates, piy{i}/pix{i} input coordinates (piy < 0 for pixels past the end).
{{PIXELS}}
    let khw = p.kh * p.kw;
    let cbase = g * p.cog;
    // wb{j}: row of input channel ci0 + j in wt (clamped); acc{i}_{j}: the register tile.
{{SETUP}}
    for (var ky = (py + p.pad) % s; ky < p.kh; ky += s) {
        for (var kx = (px + p.pad) % s; kx < p.kw; kx += s) {
            // Output pixel read at this tap: oy = (iy + pad − ky) / s = ty + offy, exact since
            // iy + pad − ky ≡ 0 (mod s) in this phase (one division per tap, not per pixel).
            // da{i}: dy offset of the output pixel pixel i reads (0 if none), dm{i}: 1 or 0.
            let offy = (i32(py + p.pad) - i32(ky)) / i32(s);
            let offx = (i32(px + p.pad) - i32(kx)) / i32(s);
{{TAP}}
            let wo = ((g * khw + ky * p.kw + kx) * p.cg) * p.cog;
            for (var c = 0u; c < p.cog; c += V) {
{{BODY}}
            }
        }
    }
{{STORE}}
}
