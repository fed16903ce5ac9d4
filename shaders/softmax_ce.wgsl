// Softmax cross-entropy with integer labels over logits [N][K].
// `per_sample`: one invocation per sample: loss_n = logsumexp(z_n) − z_n[label],
// dlogits[n][k] = (softmax(z_n)[k] − [k == label]) / N (gradient of the mean loss),
// correct_n = [argmax z_n == label] with ties going to the lowest index.
// `finish`: one invocation sums the samples in order: loss[0] = mean loss, correct[0] = count;
// MODE 1 also accumulates into metrics = [Σ loss_n, Σ correct, Σ samples, Σ batches] so the
// training loop reads back once per epoch. Host side: trainer/src/gpu/loss.rs.
struct P {
    n: u32,
    k: u32,
    _a: u32,
    _b: u32,
}
const WG: u32 = 64u;
const MODE: u32 = {{MODE}}u;

//#entry per_sample
@group(0) @binding(0) var<storage, read> logits: array<f32>;
@group(0) @binding(1) var<storage, read> labels: array<u32>;
@group(0) @binding(2) var<storage, read_write> dlogits: array<f32>;
@group(0) @binding(3) var<storage, read_write> stats: array<f32>;
@group(0) @binding(4) var<uniform> p: P;
@compute @workgroup_size(64)
fn per_sample(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let n = g.x + g.y * nw.x * WG;
    if (n >= p.n) { return; }
    let base = n * p.k;
    var best = logits[base];
    var arg = 0u;
    for (var j = 1u; j < p.k; j++) {
        let z = logits[base + j];
        if (z > best) { best = z; arg = j; }
    }
    var s = 0.0;
    for (var j = 0u; j < p.k; j++) {
        s += exp(logits[base + j] - best);
    }
    let label = labels[n];
    let inv_n = 1.0 / f32(p.n);
    for (var j = 0u; j < p.k; j++) {
        var d = exp(logits[base + j] - best) / s;
        if (j == label) { d -= 1.0; }
        dlogits[base + j] = d * inv_n;
    }
    let zl = logits[base + min(label, p.k - 1u)];
    stats[2u * n] = log(s) + best - zl;
    stats[2u * n + 1u] = select(0.0, 1.0, arg == label);
}

//#entry finish
@group(0) @binding(0) var<storage, read> stats: array<f32>;
@group(0) @binding(1) var<storage, read_write> loss: array<f32>;
@group(0) @binding(2) var<storage, read_write> correct: array<u32>;
@group(0) @binding(3) var<storage, read_write> metrics: array<f32>;
@group(0) @binding(4) var<uniform> p: P;
@compute @workgroup_size(1)
fn finish() {
    var l = 0.0;
    var c = 0u;
    for (var n = 0u; n < p.n; n++) {
        l += stats[2u * n];
        c += u32(stats[2u * n + 1u]);
    }
    loss[0] = l / f32(p.n);
    correct[0] = c;
    if (MODE == 1u) {
        metrics[0] = metrics[0] + l;
        metrics[1] = metrics[1] + f32(c);
        metrics[2] = metrics[2] + f32(p.n);
        metrics[3] = metrics[3] + 1.0;
    }
}
