// Plain matrix multiply C[M,N] = A[M,K] · B[K,N] (row-major), register-blocked, no shared
// memory and no barriers: each invocation owns TM rows × TN columns (TNV = TN / V VTs; VT is
// vec4 along N when N % 4 == 0). Lanes of a workgroup share the column tile
// (workgroup_id.y), so B's loads are uniform. Host side: trainer/src/gpu/gemm.rs.
// Used as the ceiling in `trainer bench kernels`. Template: TM, TNV, WG, KV (A's vector width along K); prelude: VT, V.
//
// The register tile is written out as named scalars by the host (the SETUP, BODY and STORE code blocks):
// lavapipe lowers a dynamically indexed private array to compare-and-select chains, so array
// accumulators must not depend on the driver unrolling loops.
struct P {
    m: u32, n: u32, k: u32, _p0: u32,
}
const TM: u32 = {{TM}}u;
const TNV: u32 = {{TNV}}u;
const WG: u32 = {{WG}}u;
const KV: u32 = {{KV}}u;

@group(0) @binding(0) var<storage, read> a: array<{{AT}}>; // vec4 along K when K % 4 == 0 (KV = 4)
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
    // ra_i = row offset of A (clamped), cb_j = column VT index of B (clamped), acc_i_j
{{SETUP}}
    for (var k = 0u; k < p.k; k += KV) {
{{BODY}}
    }
{{STORE}}
}
