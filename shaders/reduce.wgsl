// Per-column sums of a [rows][C] matrix (C = 1 sums a whole vector), two-stage and
// deterministic: `partial` gives one invocation per (row chunk, column), `finalize` adds the
// chunks of a column in order and writes out[c] = scale · Σ (MODE 1: out[c] += …).
// `partial` MODE 1 sums the product a · b instead of a. Host side: trainer/src/gpu/reduce.rs.
struct P {
    rows: u32,
    C: u32,
    chunk: u32,
    nchunks: u32,
    scale: f32,
    _a: u32,
    _b: u32,
    _c: u32,
}
const WG: u32 = 64u;
const MODE: u32 = {{MODE}}u;

//#entry partial
@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> part: array<f32>;
@group(0) @binding(3) var<uniform> p: P;
@compute @workgroup_size(64)
fn partial(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let i = g.x + g.y * nw.x * WG;
    if (i >= p.nchunks * p.C) { return; }
    let c = i % p.C;
    let k = i / p.C;
    let r0 = k * p.chunk;
    let r1 = min(r0 + p.chunk, p.rows);
    var acc = 0.0;
    for (var r = r0; r < r1; r++) {
        let j = r * p.C + c;
        if (MODE == 1u) {
            acc += a[j] * b[j];
        } else {
            acc += a[j];
        }
    }
    part[k * p.C + c] = acc;
}

//#entry finalize
@group(0) @binding(0) var<storage, read> part: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<uniform> p: P;
@compute @workgroup_size(64)
fn finalize(@builtin(global_invocation_id) g: vec3<u32>) {
    let c = g.x;
    if (c >= p.C) { return; }
    // chunks in blocks of 32 (error about (32 + nchunks/32)·u, not nchunks·u)
    var acc = 0.0;
    for (var k0 = 0u; k0 < p.nchunks; k0 += 32u) {
        var b = 0.0;
        for (var k = k0; k < min(k0 + 32u, p.nchunks); k++) {
            b += part[k * p.C + c];
        }
        acc += b;
    }
    if (MODE == 1u) {
        out[c] = out[c] + p.scale * acc;
    } else {
        out[c] = p.scale * acc;
    }
}
