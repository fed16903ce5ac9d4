// Plain matrix multiply C[M,N] = A[M,K] · B[K,N] (row-major), register-blocked, no shared
// memory and no barriers: each invocation owns TM rows × TN columns (TNV = TN / V VTs; VT is
// vec4 along N when N % 4 == 0). Lanes of a workgroup share the column tile
// (workgroup_id.y), so B's loads are uniform. Host side: trainer/src/gpu/gemm.rs.
// Used as the ceiling in `trainer bench kernels`. Template: TM, TNV, WG; prelude: VT, V.
struct P {
    m: u32, n: u32, k: u32, _p0: u32,
}
const TM: u32 = {{TM}}u;
const TNV: u32 = {{TNV}}u;
const WG: u32 = {{WG}}u;

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<VT>;
@group(0) @binding(2) var<storage, read_write> c: array<VT>;
@group(0) @binding(3) var<uniform> p: P;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let r0 = ((wid.x + wid.z * nwg.x) * WG + li) * TM;
    if (r0 >= p.m) { return; }
    let c0 = wid.y * TNV * V;
    let nv = p.n / V;
    var ra: array<u32, TM>;
    for (var i = 0u; i < TM; i++) {
        ra[i] = min(r0 + i, p.m - 1u) * p.k;
    }
    var cb: array<u32, TNV>;
    for (var j = 0u; j < TNV; j++) {
        cb[j] = min(c0 + j * V, p.n - V) / V;
    }
    var acc: array<VT, TM * TNV>;
    for (var k = 0u; k < p.k; k++) {
        var bv: array<VT, TNV>;
        for (var j = 0u; j < TNV; j++) {
            bv[j] = b[k * nv + cb[j]];
        }
        for (var i = 0u; i < TM; i++) {
            let av = VT(a[ra[i] + k]);
            for (var j = 0u; j < TNV; j++) {
                acc[i * TNV + j] = fma(av, bv[j], acc[i * TNV + j]);
            }
        }
    }
    for (var i = 0u; i < TM; i++) {
        let r = r0 + i;
        if (r >= p.m) { break; }
        for (var j = 0u; j < TNV; j++) {
            let col = c0 + j * V;
            if (col >= p.n) { break; }
            c[(r * p.n + col) / V] = acc[i * TNV + j];
        }
    }
}
