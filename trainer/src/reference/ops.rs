//! f64 references of the non-convolution kernels (`crate::gpu::{norm, elementwise, pool,
//! linear, loss, optim, reduce, se}`), forward next to backward. Activations are NHWC, viewed as
//! `[rows][c]` with `rows = N·H·W` where only the channel matters.

/// BatchNorm ε and momentum (docs/DESIGN.md).
pub const BN_EPS: f64 = 1e-5;
pub const BN_MOMENTUM: f64 = 0.1;

/// Per-channel batch statistics of `x` `[rows][c]`: (mean, biased variance).
pub fn bn_stats(x: &[f64], c: usize) -> (Vec<f64>, Vec<f64>) {
    let rows = x.len() / c;
    let mut mean = vec![0.0; c];
    for r in 0..rows {
        for j in 0..c {
            mean[j] += x[r * c + j];
        }
    }
    mean.iter_mut().for_each(|m| *m /= rows as f64);
    let mut var = vec![0.0; c];
    for r in 0..rows {
        for j in 0..c {
            let d = x[r * c + j] - mean[j];
            var[j] += d * d;
        }
    }
    var.iter_mut().for_each(|v| *v /= rows as f64);
    (mean, var)
}

/// What the training forward saves: `y`, batch mean, `invstd = 1/sqrt(var + ε)`, biased var.
pub struct BnTrainOut {
    pub y: Vec<f64>,
    pub mean: Vec<f64>,
    pub invstd: Vec<f64>,
    pub var: Vec<f64>,
}

/// Training-mode BatchNorm: `y = γ·(x − mean)·invstd + β` with the batch statistics.
pub fn bn_train_forward(x: &[f64], c: usize, gamma: &[f64], beta: &[f64]) -> BnTrainOut {
    let (mean, var) = bn_stats(x, c);
    let invstd: Vec<f64> = var.iter().map(|v| 1.0 / (v + BN_EPS).sqrt()).collect();
    let y = x
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let j = i % c;
            gamma[j] * (v - mean[j]) * invstd[j] + beta[j]
        })
        .collect();
    BnTrainOut {
        y,
        mean,
        invstd,
        var,
    }
}

/// Running-statistics update: `running = (1 − m)·running + m·batch`, unbiased variance.
pub fn bn_running_update(
    running_mean: &mut [f64],
    running_var: &mut [f64],
    mean: &[f64],
    var_biased: &[f64],
    rows: usize,
) {
    let n = rows as f64;
    for j in 0..mean.len() {
        let unbiased = var_biased[j] * n / (n - 1.0).max(1.0);
        running_mean[j] = (1.0 - BN_MOMENTUM) * running_mean[j] + BN_MOMENTUM * mean[j];
        running_var[j] = (1.0 - BN_MOMENTUM) * running_var[j] + BN_MOMENTUM * unbiased;
    }
}

/// Inference-mode BatchNorm with running statistics.
pub fn bn_infer_forward(
    x: &[f64],
    c: usize,
    gamma: &[f64],
    beta: &[f64],
    running_mean: &[f64],
    running_var: &[f64],
) -> Vec<f64> {
    x.iter()
        .enumerate()
        .map(|(i, &v)| {
            let j = i % c;
            gamma[j] * (v - running_mean[j]) / (running_var[j] + BN_EPS).sqrt() + beta[j]
        })
        .collect()
}

/// Backward of the training forward: `(dx, dγ, dβ)`.
pub fn bn_backward(
    dy: &[f64],
    x: &[f64],
    c: usize,
    gamma: &[f64],
    mean: &[f64],
    invstd: &[f64],
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let rows = x.len() / c;
    let n = rows as f64;
    let mut dgamma = vec![0.0; c];
    let mut dbeta = vec![0.0; c];
    for i in 0..x.len() {
        let j = i % c;
        let xhat = (x[i] - mean[j]) * invstd[j];
        dbeta[j] += dy[i];
        dgamma[j] += dy[i] * xhat;
    }
    let dx = (0..x.len())
        .map(|i| {
            let j = i % c;
            let xhat = (x[i] - mean[j]) * invstd[j];
            gamma[j] * invstd[j] / n * (n * dy[i] - dbeta[j] - xhat * dgamma[j])
        })
        .collect();
    (dx, dgamma, dbeta)
}

/// `max(x, 0)`.
pub fn relu_forward(x: &[f64]) -> Vec<f64> {
    x.iter().map(|&v| v.max(0.0)).collect()
}

/// `dy · [y > 0]`.
pub fn relu_backward(dy: &[f64], y: &[f64]) -> Vec<f64> {
    dy.iter()
        .zip(y)
        .map(|(&d, &v)| if v > 0.0 { d } else { 0.0 })
        .collect()
}

/// `a + b` (its backward passes `dy` to both inputs).
pub fn add(a: &[f64], b: &[f64]) -> Vec<f64> {
    a.iter().zip(b).map(|(x, y)| x + y).collect()
}

/// `y = F ⊗ Δt` per channel.
pub fn step_scale_forward(f: &[f64], dt: &[f64]) -> Vec<f64> {
    let c = dt.len();
    f.iter().enumerate().map(|(i, &v)| v * dt[i % c]).collect()
}

/// `(dF, dΔt)` with `dF = dy·Δt`, `dΔt[c] = Σ dy·F`.
pub fn step_scale_backward(dy: &[f64], f: &[f64], dt: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let c = dt.len();
    let mut ddt = vec![0.0; c];
    let df = (0..dy.len())
        .map(|i| {
            ddt[i % c] += dy[i] * f[i];
            dy[i] * dt[i % c]
        })
        .collect();
    (df, ddt)
}

/// Option-A shortcut at stride `s`: `x` `[n][h][w][cin]` → `[n][⌈h/s⌉][⌈w/s⌉][cout]`,
/// `y[b][yo][xo][c] = x[b][s·yo][s·xo][c]` for `c < cin`, else 0.
pub fn shortcut_a_forward(
    x: &[f64],
    n: usize,
    h: usize,
    w: usize,
    cin: usize,
    cout: usize,
    s: usize,
) -> Vec<f64> {
    let (ho, wo) = (h.div_ceil(s), w.div_ceil(s));
    let mut y = vec![0.0; n * ho * wo * cout];
    for b in 0..n {
        for yo in 0..ho {
            for xo in 0..wo {
                for c in 0..cin {
                    y[((b * ho + yo) * wo + xo) * cout + c] =
                        x[((b * h + s * yo) * w + s * xo) * cin + c];
                }
            }
        }
    }
    y
}

/// Backward of [`shortcut_a_forward`]: `dx` shaped like `x`.
pub fn shortcut_a_backward(
    dy: &[f64],
    n: usize,
    h: usize,
    w: usize,
    cin: usize,
    cout: usize,
    s: usize,
) -> Vec<f64> {
    let (ho, wo) = (h.div_ceil(s), w.div_ceil(s));
    let mut dx = vec![0.0; n * h * w * cin];
    for b in 0..n {
        for yo in 0..ho {
            for xo in 0..wo {
                for c in 0..cin {
                    dx[((b * h + s * yo) * w + s * xo) * cin + c] +=
                        dy[((b * ho + yo) * wo + xo) * cout + c];
                }
            }
        }
    }
    dx
}

/// Block tail `ReLU(shortcut + Δt ⊗ BN(x))` (what `norm::Epilogue::ResidualRelu` fuses),
/// composed from the references above. Returns `(y, bn output F, BN saved state)`.
pub fn residual_tail_forward(
    x: &[f64],
    shortcut: &[f64],
    dt: &[f64],
    gamma: &[f64],
    beta: &[f64],
) -> (Vec<f64>, Vec<f64>, BnTrainOut) {
    let c = dt.len();
    let bn = bn_train_forward(x, c, gamma, beta);
    let f = bn.y.clone();
    let y = relu_forward(&add(shortcut, &step_scale_forward(&f, dt)));
    (y, f, bn)
}

/// Backward of [`residual_tail_forward`]: `(dx, dγ, dβ, dΔt, dshortcut)`.
#[allow(clippy::type_complexity)]
pub fn residual_tail_backward(
    dy: &[f64],
    y: &[f64],
    x: &[f64],
    f: &[f64],
    dt: &[f64],
    gamma: &[f64],
    bn: &BnTrainOut,
) -> (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>) {
    let c = dt.len();
    let g = relu_backward(dy, y);
    let (df, ddt) = step_scale_backward(&g, f, dt);
    let (dx, dgamma, dbeta) = bn_backward(&df, x, c, gamma, &bn.mean, &bn.invstd);
    (dx, dgamma, dbeta, ddt, g)
}

/// `σ(a) = 1 / (1 + e^−a)` elementwise (`gpu::se::se_gate_forward`).
pub fn sigmoid(a: &[f64]) -> Vec<f64> {
    a.iter().map(|&v| 1.0 / (1.0 + (-v).exp())).collect()
}

/// `(N, P, C)` of a squeeze-excitation tail from the lengths of `z` `[N][P][C]`, `g` `[N][C]`
/// and `dt` `[C]`.
fn se_dims(z: &[f64], g: &[f64], dt: &[f64]) -> (usize, usize, usize) {
    let c = dt.len();
    let n = g.len() / c;
    assert!(c > 0 && n * c == g.len(), "se: g is not [N][{c}]");
    let hw = z.len() / g.len();
    assert_eq!(hw * g.len(), z.len(), "se: z is not [{n}][P][{c}]");
    (n, hw, c)
}

/// Squeeze-excitation block tail (`gpu::se::se_residual_forward`), `z`, `sc` `[N][P][C]`,
/// gate `g` `[N][C]`: `y[n,p,c] = max(0, sc + Δt[c] · z · g[n,c])`.
pub fn se_residual_forward(z: &[f64], g: &[f64], dt: &[f64], sc: &[f64]) -> Vec<f64> {
    let (n, hw, c) = se_dims(z, g, dt);
    let mut y = vec![0.0; z.len()];
    for b in 0..n {
        for s in 0..hw {
            for j in 0..c {
                let i = (b * hw + s) * c + j;
                y[i] = (sc[i] + dt[j] * z[i] * g[b * c + j]).max(0.0);
            }
        }
    }
    y
}

/// Gradients of [`se_residual_forward`]; `da` is w.r.t. the gate's pre-activation `a`
/// (`g = σ(a)`).
pub struct SeGrads {
    pub dsc: Vec<f64>,
    pub dz: Vec<f64>,
    pub da: Vec<f64>,
    pub ddt: Vec<f64>,
}

/// Analytic backward of [`se_residual_forward`] with `g = σ(a)`: with `m = dy · [y > 0]`,
/// `dsc = m`, `dz = m · Δt · g`, `q[n,c] = Σ_p m · z`, `da = Δt · q · g · (1 − g)`,
/// `dΔt[c] = Σ_n g · q`.
pub fn se_residual_backward(dy: &[f64], y: &[f64], z: &[f64], g: &[f64], dt: &[f64]) -> SeGrads {
    let (n, hw, c) = se_dims(z, g, dt);
    let m = relu_backward(dy, y);
    let mut dz = vec![0.0; z.len()];
    let mut q = vec![0.0; n * c];
    for b in 0..n {
        for s in 0..hw {
            for j in 0..c {
                let i = (b * hw + s) * c + j;
                dz[i] = m[i] * dt[j] * g[b * c + j];
                q[b * c + j] += m[i] * z[i];
            }
        }
    }
    let mut da = vec![0.0; n * c];
    let mut ddt = vec![0.0; c];
    for b in 0..n {
        for j in 0..c {
            let (gi, qi) = (g[b * c + j], q[b * c + j]);
            da[b * c + j] = dt[j] * qi * gi * (1.0 - gi);
            ddt[j] += gi * qi;
        }
    }
    SeGrads {
        dsc: m,
        dz,
        da,
        ddt,
    }
}

/// Global average pool `[n][hw][c]` → `[n][c]`.
pub fn gap_forward(x: &[f64], n: usize, hw: usize, c: usize) -> Vec<f64> {
    let mut y = vec![0.0; n * c];
    for b in 0..n {
        for s in 0..hw {
            for j in 0..c {
                y[b * c + j] += x[(b * hw + s) * c + j] / hw as f64;
            }
        }
    }
    y
}

/// Backward of [`gap_forward`].
pub fn gap_backward(dy: &[f64], n: usize, hw: usize, c: usize) -> Vec<f64> {
    let mut dx = vec![0.0; n * hw * c];
    for b in 0..n {
        for s in 0..hw {
            for j in 0..c {
                dx[(b * hw + s) * c + j] = dy[b * c + j] / hw as f64;
            }
        }
    }
    dx
}

/// Max pooling of `x` `[n][h][w][c]` (`shape`) with a `k`×`k` window, stride `s`, padding
/// `pad` (padded positions never win): `(y, argmax, [n, ho, wo, c])` with `ho = (h + 2·pad −
/// k)/s + 1`, `argmax[o]` the flat index into `x` of output `o`'s winner (ties: the first in
/// row-major window order). Panics on a window with no input element.
pub fn maxpool_forward(
    x: &[f64],
    shape: [usize; 4],
    k: usize,
    s: usize,
    pad: usize,
) -> (Vec<f64>, Vec<usize>, [usize; 4]) {
    let [n, h, w, c] = shape;
    assert_eq!(x.len(), n * h * w * c);
    let ho = (h + 2 * pad - k) / s + 1;
    let wo = (w + 2 * pad - k) / s + 1;
    let mut y = Vec::with_capacity(n * ho * wo * c);
    let mut argmax = Vec::with_capacity(n * ho * wo * c);
    for b in 0..n {
        for yo in 0..ho {
            for xo in 0..wo {
                for j in 0..c {
                    let mut best: Option<(f64, usize)> = None;
                    for ky in 0..k {
                        for kx in 0..k {
                            // Position in the input; padding lies outside [0, h) × [0, w).
                            let iy = (yo * s + ky) as isize - pad as isize;
                            let ix = (xo * s + kx) as isize - pad as isize;
                            if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                                continue;
                            }
                            let at = ((b * h + iy as usize) * w + ix as usize) * c + j;
                            if best.is_none_or(|(v, _)| x[at] > v) {
                                best = Some((x[at], at));
                            }
                        }
                    }
                    let (v, at) = best.expect("max pool: a window entirely in padding");
                    y.push(v);
                    argmax.push(at);
                }
            }
        }
    }
    (y, argmax, [n, ho, wo, c])
}

/// Backward of [`maxpool_forward`]: `dx` (`x_len` elements) gets each `dy[o]` added at
/// `argmax[o]`.
pub fn maxpool_backward(dy: &[f64], argmax: &[usize], x_len: usize) -> Vec<f64> {
    assert_eq!(dy.len(), argmax.len());
    let mut dx = vec![0.0; x_len];
    for (&d, &at) in dy.iter().zip(argmax) {
        dx[at] += d;
    }
    dx
}

/// `y = x · Wᵀ + b`, x `[n][fin]`, W `[fout][fin]`.
pub fn linear_forward(
    x: &[f64],
    w: &[f64],
    b: &[f64],
    n: usize,
    fin: usize,
    fout: usize,
) -> Vec<f64> {
    let mut y = vec![0.0; n * fout];
    for i in 0..n {
        for o in 0..fout {
            y[i * fout + o] = b[o]
                + (0..fin)
                    .map(|k| x[i * fin + k] * w[o * fin + k])
                    .sum::<f64>();
        }
    }
    y
}

/// Backward of [`linear_forward`]: `(dx, dW, db)`.
pub fn linear_backward(
    dy: &[f64],
    x: &[f64],
    w: &[f64],
    n: usize,
    fin: usize,
    fout: usize,
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let mut dx = vec![0.0; n * fin];
    let mut dw = vec![0.0; fout * fin];
    let mut db = vec![0.0; fout];
    for i in 0..n {
        for o in 0..fout {
            let d = dy[i * fout + o];
            db[o] += d;
            for k in 0..fin {
                dx[i * fin + k] += d * w[o * fin + k];
                dw[o * fin + k] += d * x[i * fin + k];
            }
        }
    }
    (dx, dw, db)
}

/// Softmax cross-entropy of logits `[n][k]`: `(mean loss, dlogits of the mean loss, #correct)`;
/// top-1 ties go to the lowest index.
pub fn softmax_ce(logits: &[f64], labels: &[u32], k: usize) -> (f64, Vec<f64>, u32) {
    let n = labels.len();
    let mut loss = 0.0;
    let mut correct = 0;
    let mut d = vec![0.0; n * k];
    for i in 0..n {
        let z = &logits[i * k..(i + 1) * k];
        let mut arg = 0;
        for j in 1..k {
            if z[j] > z[arg] {
                arg = j;
            }
        }
        let m = z[arg];
        let s: f64 = z.iter().map(|v| (v - m).exp()).sum();
        let l = labels[i] as usize;
        loss += s.ln() + m - z[l];
        if arg == l {
            correct += 1;
        }
        for j in 0..k {
            let p = (z[j] - m).exp() / s;
            d[i * k + j] = (p - if j == l { 1.0 } else { 0.0 }) / n as f64;
        }
    }
    (loss / n as f64, d, correct)
}

/// One SGD step in place (PyTorch): `g = grad + wd·w; v = μ·v + g;
/// w -= lr·(g + μ·v)` (Nesterov) or `w -= lr·v`.
pub fn sgd_step(
    w: &mut [f64],
    grad: &[f64],
    v: &mut [f64],
    lr: f64,
    mu: f64,
    wd: f64,
    nesterov: bool,
) {
    for i in 0..w.len() {
        let g = grad[i] + wd * w[i];
        v[i] = mu * v[i] + g;
        w[i] -= lr * if nesterov { g + mu * v[i] } else { v[i] };
    }
}

/// Per-column sums of `[rows][c]`, optionally of the product with `b`.
pub fn column_sum(a: &[f64], b: Option<&[f64]>, c: usize) -> Vec<f64> {
    let mut out = vec![0.0; c];
    for i in 0..a.len() {
        out[i % c] += a[i] * b.map_or(1.0, |b| b[i]);
    }
    out
}
