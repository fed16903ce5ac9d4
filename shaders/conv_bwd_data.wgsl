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

@group(0) @binding(0) var<storage, read> dy: array<VT>;
@group(0) @binding(1) var<storage, read> wt: array<VT>;
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
    // Per pixel of this phase: image index and input coordinates (invalid pixels: far away).
    var pn: array<u32, TM>;
    var piy: array<i32, TM>;
    var pix: array<i32, TM>;
    for (var i = 0u; i < TM; i++) {
        let m = m0 + i;
        let mm = min(m, p.mp - 1u);
        let r = mm % hwp;
        pn[i] = mm / hwp;
        let iy = py + s * (r / p.wp);
        let ix = px + s * (r % p.wp);
        let ok = m < p.mp && iy < p.h && ix < p.w;
        piy[i] = select(-1000000, i32(iy), ok);
        pix[i] = i32(ix);
    }
    let khw = p.kh * p.kw;
    let cbase = g * p.cog;
    var wb: array<u32, TN>;
    for (var j = 0u; j < TN; j++) {
        wb[j] = min(ci0 + j, p.cg - 1u) * p.cog;
    }
    var acc: array<f32, TM * TN>;
    for (var ky = (py + p.pad) % s; ky < p.kh; ky += s) {
        for (var kx = (px + p.pad) % s; kx < p.kw; kx += s) {
            var da: array<u32, TM>;
            var dm: array<f32, TM>;
            for (var i = 0u; i < TM; i++) {
                // exact division: iy + pad − ky ≡ 0 (mod s) in this phase
                let ny = piy[i] + i32(p.pad) - i32(ky);
                let nx = pix[i] + i32(p.pad) - i32(kx);
                let oy = ny / i32(s);
                let ox = nx / i32(s);
                let ok = ny >= 0 && nx >= 0 && oy < i32(p.ho) && ox < i32(p.wo);
                da[i] = select(0u, ((pn[i] * p.ho + u32(oy)) * p.wo + u32(ox)) * p.cout + cbase, ok);
                dm[i] = select(0.0, 1.0, ok);
            }
            let wo = ((g * khw + ky * p.kw + kx) * p.cg) * p.cog;
            for (var c = 0u; c < p.cog; c += V) {
                var a: array<VT, TM>;
                for (var i = 0u; i < TM; i++) {
                    a[i] = dy[(da[i] + c) / V] * dm[i];
                }
                for (var j = 0u; j < TN; j++) {
                    let b = wt[(wo + wb[j] + c) / V];
                    for (var i = 0u; i < TM; i++) {
                        acc[i * TN + j] = mac(acc[i * TN + j], a[i], b);
                    }
                }
            }
        }
    }
    for (var i = 0u; i < TM; i++) {
        if (piy[i] < 0) { continue; }
        let base = ((pn[i] * p.h + u32(piy[i])) * p.w + u32(pix[i])) * p.cin + g * p.cg;
        for (var j = 0u; j < TN; j++) {
            let ci = ci0 + j;
            if (ci >= p.cg) { break; }
            dx[base + ci] = acc[i * TN + j];
        }
    }
}
