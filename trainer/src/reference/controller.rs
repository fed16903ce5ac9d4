//! f64 reference of the step-size controllers `2fc` and `lstm` of one stage (docs/DESIGN.md,
//! "Step-size modes"; paper Eqs. 10–13): forward, and the backward pass by hand (BPTT through
//! the LSTM across the stage's blocks, then through ReLU, `fc_in` and the weight summary into the
//! conv weights). `crate::gpu::controller` is tested against these.
//!
//! Shapes: `C` output channels (every block of a stage), `H` hidden units, `K = K1 + K2` summary
//! length (`K1 = len(conv1) / cin1`, `K2 = len(conv2) / cin2`; `18·C` for 3×3 basic blocks).
//! Parameters ([`Params`]) are one set per block for `2fc` and one set for the stage for `lstm`.

// Index loops on purpose: they read like the equations.
#![allow(clippy::needless_range_loop)]

/// Which controller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Per block: `Δt = σ(fc_out · ReLU(fc_in · w̄ + b_in) + b_out)`.
    TwoFc,
    /// Per stage: `x_d = ReLU(fc_in · w̄_d + b_in)`, LSTM, `Δt_d = σ(fc_out · h_d + b_out)`.
    Lstm,
}

/// One block's conv weights (OHWI) and their input-channel counts.
#[derive(Clone, Debug)]
pub struct Block {
    pub conv1: Vec<f64>,
    pub cin1: usize,
    pub conv2: Vec<f64>,
    pub cin2: usize,
}

/// Controller parameters (or their gradients). `lstm_w` `[4H][2H]` acting on `[h, x]`,
/// `lstm_b` `[4H]` (gate rows `i, f, g, o`) are empty for `2fc`.
#[derive(Clone, Debug, Default)]
pub struct Params {
    pub fc_in_w: Vec<f64>,
    pub fc_in_b: Vec<f64>,
    pub lstm_w: Vec<f64>,
    pub lstm_b: Vec<f64>,
    pub fc_out_w: Vec<f64>,
    pub fc_out_b: Vec<f64>,
}

impl Params {
    /// Zeros shaped like `p`.
    pub fn zeros_like(p: &Params) -> Params {
        let z = |v: &Vec<f64>| vec![0.0; v.len()];
        Params {
            fc_in_w: z(&p.fc_in_w),
            fc_in_b: z(&p.fc_in_b),
            lstm_w: z(&p.lstm_w),
            lstm_b: z(&p.lstm_b),
            fc_out_w: z(&p.fc_out_w),
            fc_out_b: z(&p.fc_out_b),
        }
    }
}

/// Everything the forward pass computes, per block `d` (what the backward pass needs).
#[derive(Clone, Debug, Default)]
pub struct Saved {
    /// `w̄_d` `[K]`.
    pub wbar: Vec<Vec<f64>>,
    /// `fc_in · w̄_d + b_in` `[H]`.
    pub pre: Vec<Vec<f64>>,
    /// `x_d = ReLU(pre)` `[H]`.
    pub x: Vec<Vec<f64>>,
    /// Activated gates `i, f, g, o` `[4H]` (lstm only).
    pub gates: Vec<Vec<f64>>,
    /// Cell state `c_d` `[H]` (lstm only).
    pub c: Vec<Vec<f64>>,
    /// Hidden state `h_d` `[H]` (lstm only).
    pub h: Vec<Vec<f64>>,
    /// `Δt_d` `[C]`.
    pub dt: Vec<Vec<f64>>,
}

/// Gradients: one [`Params`] per parameter set, and each block's conv-weight gradients through
/// the weight summary.
#[derive(Clone, Debug)]
pub struct Grads {
    pub params: Vec<Params>,
    pub dconv1: Vec<Vec<f64>>,
    pub dconv2: Vec<Vec<f64>>,
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

/// Mean over the input-channel axis of an OHWI weight: `[C_out][kh][kw]`.
pub fn summary(w: &[f64], cin: usize) -> Vec<f64> {
    w.chunks(cin)
        .map(|ch| ch.iter().sum::<f64>() / cin as f64)
        .collect()
}

/// A block's `w̄`: conv1's summary then conv2's.
pub fn block_summary(b: &Block) -> Vec<f64> {
    let mut s = summary(&b.conv1, b.cin1);
    s.extend(summary(&b.conv2, b.cin2));
    s
}

/// `y = W x + b` with `W` `[out][in]`.
fn affine(w: &[f64], b: &[f64], x: &[f64]) -> Vec<f64> {
    let n = x.len();
    b.iter()
        .enumerate()
        .map(|(o, bo)| bo + (0..n).map(|i| w[o * n + i] * x[i]).sum::<f64>())
        .collect()
}

fn param_set(mode: Mode, params: &[Params], d: usize) -> &Params {
    match mode {
        Mode::TwoFc => &params[d],
        Mode::Lstm => &params[0],
    }
}

/// Forward pass of one stage's controller: `Δt_d` for every block (in `Saved::dt`).
pub fn forward(mode: Mode, blocks: &[Block], params: &[Params], h: usize) -> Saved {
    let mut s = Saved::default();
    let mut hp = vec![0.0; h];
    let mut cp = vec![0.0; h];
    for (d, b) in blocks.iter().enumerate() {
        let p = param_set(mode, params, d);
        let wbar = block_summary(b);
        let pre = affine(&p.fc_in_w, &p.fc_in_b, &wbar);
        let x: Vec<f64> = pre.iter().map(|v| v.max(0.0)).collect();
        let head_in = match mode {
            Mode::TwoFc => x.clone(),
            Mode::Lstm => {
                let z: Vec<f64> = hp.iter().chain(x.iter()).copied().collect();
                let a = affine(&p.lstm_w, &p.lstm_b, &z);
                let gates: Vec<f64> = a
                    .iter()
                    .enumerate()
                    .map(|(r, v)| if r / h == 2 { v.tanh() } else { sigmoid(*v) })
                    .collect();
                let c: Vec<f64> = (0..h)
                    .map(|u| gates[h + u] * cp[u] + gates[u] * gates[2 * h + u])
                    .collect();
                let hn: Vec<f64> = (0..h).map(|u| gates[3 * h + u] * c[u].tanh()).collect();
                s.gates.push(gates);
                s.c.push(c.clone());
                s.h.push(hn.clone());
                cp = c;
                hp = hn.clone();
                hn
            }
        };
        let dt = affine(&p.fc_out_w, &p.fc_out_b, &head_in)
            .into_iter()
            .map(sigmoid)
            .collect();
        s.wbar.push(wbar);
        s.pre.push(pre);
        s.x.push(x);
        s.dt.push(dt);
    }
    s
}

/// Backward pass given `dΔt_d` for every block: every parameter's gradient and the conv-weight
/// gradients through `w̄` (`∂w̄/∂W = 1/C_in`).
pub fn backward(
    mode: Mode,
    blocks: &[Block],
    params: &[Params],
    h: usize,
    s: &Saved,
    ddt: &[Vec<f64>],
) -> Grads {
    let nb = blocks.len();
    let mut g: Vec<Params> = params.iter().map(Params::zeros_like).collect();
    // dL/dx_d after the ReLU mask (i.e. w.r.t. `pre`), per block.
    let mut da: Vec<Vec<f64>> = vec![vec![0.0; h]; nb];
    // Sigmoid and fc_out: dz = dΔt·Δt(1−Δt); d(head input) = fc_outᵀ dz.
    let mut dhead: Vec<Vec<f64>> = Vec::with_capacity(nb);
    for d in 0..nb {
        let pi = if mode == Mode::TwoFc { d } else { 0 };
        let p = &params[pi];
        let head_in = if mode == Mode::TwoFc {
            &s.x[d]
        } else {
            &s.h[d]
        };
        let c = s.dt[d].len();
        let dz: Vec<f64> = (0..c)
            .map(|ch| ddt[d][ch] * s.dt[d][ch] * (1.0 - s.dt[d][ch]))
            .collect();
        let gp = &mut g[pi];
        let mut dh = vec![0.0; h];
        for ch in 0..c {
            gp.fc_out_b[ch] += dz[ch];
            for j in 0..h {
                gp.fc_out_w[ch * h + j] += dz[ch] * head_in[j];
                dh[j] += dz[ch] * p.fc_out_w[ch * h + j];
            }
        }
        dhead.push(dh);
    }
    match mode {
        Mode::TwoFc => {
            for d in 0..nb {
                for j in 0..h {
                    da[d][j] = if s.pre[d][j] > 0.0 { dhead[d][j] } else { 0.0 };
                }
            }
        }
        Mode::Lstm => {
            let p = &params[0];
            let gp = &mut g[0];
            let mut dh_rec = vec![0.0; h];
            let mut dc_rec = vec![0.0; h];
            for d in (0..nb).rev() {
                let gt = &s.gates[d];
                let mut dgate = vec![0.0; 4 * h];
                for u in 0..h {
                    let (i, f, gg, o) = (gt[u], gt[h + u], gt[2 * h + u], gt[3 * h + u]);
                    let dhu = dhead[d][u] + dh_rec[u];
                    let tc = s.c[d][u].tanh();
                    let cprev = if d > 0 { s.c[d - 1][u] } else { 0.0 };
                    let d_o = dhu * tc;
                    let dc = dhu * o * (1.0 - tc * tc) + dc_rec[u];
                    dgate[u] = dc * gg * i * (1.0 - i);
                    dgate[h + u] = dc * cprev * f * (1.0 - f);
                    dgate[2 * h + u] = dc * i * (1.0 - gg * gg);
                    dgate[3 * h + u] = d_o * o * (1.0 - o);
                    dc_rec[u] = dc * f;
                }
                // z = [h_{d-1}, x_d]
                let z: Vec<f64> = (0..2 * h)
                    .map(|m| {
                        if m < h {
                            if d > 0 {
                                s.h[d - 1][m]
                            } else {
                                0.0
                            }
                        } else {
                            s.x[d][m - h]
                        }
                    })
                    .collect();
                let mut dz = vec![0.0; 2 * h];
                for r in 0..4 * h {
                    gp.lstm_b[r] += dgate[r];
                    for m in 0..2 * h {
                        gp.lstm_w[r * 2 * h + m] += dgate[r] * z[m];
                        dz[m] += dgate[r] * p.lstm_w[r * 2 * h + m];
                    }
                }
                dh_rec.copy_from_slice(&dz[..h]);
                for j in 0..h {
                    da[d][j] = if s.pre[d][j] > 0.0 { dz[h + j] } else { 0.0 };
                }
            }
        }
    }
    // fc_in and the weight summary.
    let mut dconv1 = Vec::with_capacity(nb);
    let mut dconv2 = Vec::with_capacity(nb);
    for (d, b) in blocks.iter().enumerate() {
        let pi = if mode == Mode::TwoFc { d } else { 0 };
        let p = &params[pi];
        let k = s.wbar[d].len();
        let gp = &mut g[pi];
        let mut dwbar = vec![0.0; k];
        for j in 0..h {
            gp.fc_in_b[j] += da[d][j];
            for kk in 0..k {
                gp.fc_in_w[j * k + kk] += da[d][j] * s.wbar[d][kk];
                dwbar[kk] += da[d][j] * p.fc_in_w[j * k + kk];
            }
        }
        let k1 = b.conv1.len() / b.cin1;
        let d1: Vec<f64> = (0..b.conv1.len())
            .map(|e| dwbar[e / b.cin1] / b.cin1 as f64)
            .collect();
        let d2: Vec<f64> = (0..b.conv2.len())
            .map(|e| dwbar[k1 + e / b.cin2] / b.cin2 as f64)
            .collect();
        dconv1.push(d1);
        dconv2.push(d2);
    }
    Grads {
        params: g,
        dconv1,
        dconv2,
    }
}
