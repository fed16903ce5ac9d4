//! `trainer stability CHECKPOINT`: Proposition 1 of the paper (Eq. 7) beside a measurement.
//!
//! For residual block `j` with input `y_{j−1}` the paper's bound reads
//! `‖y_D^ε − y_D‖ ≤ Π_j (1 + ‖W_j‖₂·Δt_j) · ε`. For our post-activation block
//! `y = ReLU(S(x) + Δt ⊗ BN2(conv2(ReLU(BN1(conv1(x))))))` we define (ReLU is 1-Lipschitz,
//! biases and BN shifts cancel in differences):
//!
//! * `A1 = diag(γ1/√(var1+ε)) · conv1` and `A2 = diag(γ2/√(var2+ε)) · conv2`: the linear
//!   maps of conv+BN in inference form (BN folded into the conv, as at export), *without* Δt.
//! * `‖A‖op`: the spectral norm of that map as an operator on feature maps of the block's size
//!   (conv1 on the block's input `H×W×C_in` with its stride, conv2 on the output map), by power
//!   iteration on `AᵀA` with the adjoint (transposed) convolution. This is the norm the bound
//!   needs.
//! * `‖A‖mat`: the spectral norm of the reshaped weight matrix `[C_out, k·k·C_in]` (BN scale
//!   folded into the rows), the cheap proxy often quoted; it is not the operator norm
//!   (for a 3×3 conv with padding, `‖A‖op ≤ 3·‖A‖mat`).
//! * `‖W_j‖ = ‖A1‖op · ‖A2‖op`, and the block factor `L_j = ‖S_j‖ + ‖W_j‖ · max_c Δt_j,c`
//!   (max over channels, so the bound is sound for per-channel steps); `‖S_j‖ = 1` for the
//!   identity and option-A shortcuts, `‖P_j‖op` of the BN-folded projection for option B.
//! * `bound Π`: the running product of `L_j` (Prop. 1's `Π (1 + ‖W_j‖ Δt_j)`), and
//!   `tight Π`: the running product of `‖S_j‖ + ‖A1‖op · ‖diag(Δt) A2‖op`, also sound.
//!
//! The measurement: for `N` test images, the stem output `y_0` is perturbed by a random `δ`
//! with `‖δ‖ = eps · ‖y_0‖`, both go through the blocks (core's layers on the CPU, folded
//! model) and `‖y_j(y_0+δ) − y_j(y_0)‖ / ‖δ‖` is reported after every block (mean and max over
//! images); the last block's is the amplification at the final feature map, before pooling.
//! The summary adds the same from the normalised input image (bound: `‖stem‖op · bound Π`).

use super::table::{col, num, Cell, Table};
use crate::data::Dataset;
use crate::model::HostModel;
use crate::rng::Rng;
use anyhow::{anyhow, bail, Context, Result};
use std::path::Path;
use tsc_core::arch::{Arch, BlockKind, ModelKind, Shape3, TensorId, BN_EPS};
use tsc_core::layers::{conv2d, relu};
use tsc_core::Model;

/// A convolution without bias as a linear operator on one NHWC feature map (f64).
#[derive(Clone, Debug)]
pub struct ConvOp {
    pub input: Shape3,
    pub output: Shape3,
    pub k: usize,
    pub stride: usize,
    pub pad: usize,
    pub groups: usize,
    /// OHWI weights, `[C_out][k][k][C_in / groups]`.
    pub w: Vec<f64>,
}

impl ConvOp {
    pub fn new(
        input: Shape3,
        out_c: usize,
        k: usize,
        stride: usize,
        pad: usize,
        groups: usize,
        w: Vec<f64>,
    ) -> Result<ConvOp> {
        let g = groups.max(1);
        if !input.c.is_multiple_of(g)
            || !out_c.is_multiple_of(g)
            || w.len() != out_c * k * k * input.c / g
            || input.h + 2 * pad < k
            || input.w + 2 * pad < k
        {
            bail!("inconsistent convolution: input {input:?}, {out_c} outputs, k {k}, groups {g}, {} weights", w.len());
        }
        let output = Shape3::new(
            (input.h + 2 * pad - k) / stride + 1,
            (input.w + 2 * pad - k) / stride + 1,
            out_c,
        );
        Ok(ConvOp {
            input,
            output,
            k,
            stride,
            pad,
            groups: g,
            w,
        })
    }

    /// Visit every (output index, input index, weight index) tap.
    fn taps(&self, mut f: impl FnMut(usize, usize, usize)) {
        let (i, o) = (self.input, self.output);
        let cig = i.c / self.groups;
        let cog = o.c / self.groups;
        for oy in 0..o.h {
            for ky in 0..self.k {
                let iy = (oy * self.stride + ky) as isize - self.pad as isize;
                if iy < 0 || iy >= i.h as isize {
                    continue;
                }
                for ox in 0..o.w {
                    for kx in 0..self.k {
                        let ix = (ox * self.stride + kx) as isize - self.pad as isize;
                        if ix < 0 || ix >= i.w as isize {
                            continue;
                        }
                        let ib = (iy as usize * i.w + ix as usize) * i.c;
                        let ob = (oy * o.w + ox) * o.c;
                        for oc in 0..o.c {
                            let gi = oc / cog;
                            let wb = ((oc * self.k + ky) * self.k + kx) * cig;
                            for ci in 0..cig {
                                f(ob + oc, ib + gi * cig + ci, wb + ci);
                            }
                        }
                    }
                }
            }
        }
    }

    /// `A x`.
    pub fn apply(&self, x: &[f64]) -> Vec<f64> {
        let mut y = vec![0.0; self.output.len()];
        self.taps(|o, i, w| y[o] += self.w[w] * x[i]);
        y
    }

    /// `Aᵀ y` (the transposed convolution).
    pub fn adjoint(&self, y: &[f64]) -> Vec<f64> {
        let mut x = vec![0.0; self.input.len()];
        self.taps(|o, i, w| x[i] += self.w[w] * y[o]);
        x
    }

    /// Spectral norm of the operator on feature maps (power iteration).
    pub fn op_norm(&self, iters: usize, seed: u64) -> f64 {
        power_iteration(
            self.input.len(),
            |x| self.apply(x),
            |y| self.adjoint(y),
            iters,
            seed,
        )
    }

    /// Spectral norm of the reshaped weight matrix `[C_out, k·k·C_in/groups]`.
    pub fn matrix_norm(&self, iters: usize, seed: u64) -> f64 {
        let cols = self.w.len() / self.output.c;
        matrix_norm(self.output.c, cols, &self.w, iters, seed)
    }

    /// Multiply output channel `o`'s weights by `s[o]`.
    pub fn scale_rows(&mut self, s: &[f64]) {
        let per = self.w.len() / self.output.c;
        for (o, row) in self.w.chunks_mut(per).enumerate() {
            row.iter_mut().for_each(|v| *v *= s[o]);
        }
    }
}

fn norm(x: &[f64]) -> f64 {
    x.iter().map(|v| v * v).sum::<f64>().sqrt()
}

/// Largest singular value of a linear map `A: R^n → R^m` given `A x` and `Aᵀ y`: power
/// iteration on `AᵀA` from a seeded random start, until the estimate `‖A x‖` (which rises
/// towards σ_max) changes by less than 1e-7 relatively, or `iters` steps.
pub fn power_iteration(
    n: usize,
    apply: impl Fn(&[f64]) -> Vec<f64>,
    adjoint: impl Fn(&[f64]) -> Vec<f64>,
    iters: usize,
    seed: u64,
) -> f64 {
    let mut r = Rng::new(seed);
    let mut x: Vec<f64> = (0..n).map(|_| r.normal() as f64).collect();
    let nx = norm(&x).max(f64::MIN_POSITIVE);
    x.iter_mut().for_each(|v| *v /= nx);
    let mut est = 0.0;
    for _ in 0..iters.max(1) {
        let y = apply(&x);
        let s = norm(&y);
        let mut z = adjoint(&y);
        let nz = norm(&z);
        if nz == 0.0 {
            return s;
        }
        z.iter_mut().for_each(|v| *v /= nz);
        x = z;
        let done = (s - est).abs() <= 1e-7 * s;
        est = s;
        if done {
            break;
        }
    }
    norm(&apply(&x))
}

/// Largest singular value of a row-major `rows × cols` matrix (power iteration).
pub fn matrix_norm(rows: usize, cols: usize, a: &[f64], iters: usize, seed: u64) -> f64 {
    let apply = |x: &[f64]| {
        (0..rows)
            .map(|i| (0..cols).map(|j| a[i * cols + j] * x[j]).sum())
            .collect::<Vec<f64>>()
    };
    let adjoint = |y: &[f64]| {
        (0..cols)
            .map(|j| (0..rows).map(|i| a[i * cols + j] * y[i]).sum())
            .collect::<Vec<f64>>()
    };
    power_iteration(cols, apply, adjoint, iters, seed)
}

/// Eigenvalues of a symmetric `n × n` matrix (cyclic Jacobi), ascending. Exact reference for
/// the power iteration in tests.
pub fn sym_eigenvalues(mut a: Vec<f64>, n: usize) -> Vec<f64> {
    for _ in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i * n + j].powi(2))
            .sum();
        if off < 1e-22 {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = a[p * n + q];
                if apq.abs() < 1e-300 {
                    continue;
                }
                let theta = (a[q * n + q] - a[p * n + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let (akp, akq) = (a[k * n + p], a[k * n + q]);
                    a[k * n + p] = c * akp - s * akq;
                    a[k * n + q] = s * akp + c * akq;
                }
                for k in 0..n {
                    let (apk, aqk) = (a[p * n + k], a[q * n + k]);
                    a[p * n + k] = c * apk - s * aqk;
                    a[q * n + k] = s * apk + c * aqk;
                }
            }
        }
    }
    let mut e: Vec<f64> = (0..n).map(|i| a[i * n + i]).collect();
    e.sort_by(|x, y| x.total_cmp(y));
    e
}

/// `γ/√(var+ε)` of a checkpoint's BN `prefix`.
fn bn_scale(m: &HostModel, prefix: &str) -> Result<Vec<f64>> {
    let get = |f: &str| {
        m.get(&format!("{prefix}.{f}"))
            .map(|t| t.data.clone())
            .ok_or_else(|| anyhow!("checkpoint lacks {prefix}.{f}"))
    };
    let (g, v) = (get("gamma")?, get("var")?);
    Ok(g.iter()
        .zip(&v)
        .map(|(&g, &v)| g as f64 / (v as f64 + BN_EPS as f64).sqrt())
        .collect())
}

/// A checkpoint conv (`name`) with its BN (`bn`) folded in, as an operator on `input`.
fn conv_bn(
    m: &HostModel,
    name: &str,
    bn: &str,
    input: Shape3,
    k: usize,
    stride: usize,
    pad: usize,
) -> Result<ConvOp> {
    let w = m
        .get(name)
        .ok_or_else(|| anyhow!("checkpoint lacks {name}"))?;
    let out_c = w.shape[0];
    let groups = m.arch.groups.max(1);
    let mut op = ConvOp::new(
        input,
        out_c,
        k,
        stride,
        pad,
        if k == 1 { 1 } else { groups },
        w.data.iter().map(|&v| v as f64).collect(),
    )?;
    op.scale_rows(&bn_scale(m, bn)?);
    Ok(op)
}

/// One block's numbers.
#[derive(Clone, Debug)]
pub struct BlockStability {
    pub name: String,
    pub input: Shape3,
    pub a1_op: f64,
    pub a2_op: f64,
    pub a1_mat: f64,
    pub a2_mat: f64,
    /// `‖S_j‖` (1 unless a projection shortcut).
    pub shortcut: f64,
    /// `‖W_j‖ = ‖A1‖op·‖A2‖op`.
    pub w_norm: f64,
    pub dt_mean: f64,
    pub dt_max: f64,
    /// `‖S_j‖ + ‖W_j‖·max Δt`.
    pub factor: f64,
    /// Running product of `factor` up to this block.
    pub bound: f64,
    /// Running product of `‖S_j‖ + ‖A1‖op·‖diag(Δt)A2‖op`.
    pub tight_bound: f64,
    /// Measured `‖y_j(y_0+δ) − y_j(y_0)‖ / ‖δ‖`: mean and max over images.
    pub measured_mean: f64,
    pub measured_max: f64,
}

#[derive(Clone, Debug)]
pub struct Stability {
    pub label: String,
    pub blocks: Vec<BlockStability>,
    pub stem_op: f64,
    /// Amplification from the normalised input to the final feature map: mean, max.
    pub input_measured: (f64, f64),
    pub images: usize,
    pub eps: f64,
}

#[derive(Clone, Debug)]
pub struct StabilityOptions {
    pub images: usize,
    pub eps: f64,
    pub iters: usize,
    pub seed: u64,
}

impl Default for StabilityOptions {
    fn default() -> Self {
        StabilityOptions {
            images: 32,
            eps: 1e-3,
            iters: 200,
            seed: 0,
        }
    }
}

fn core_err<E: core::fmt::Debug>(what: &'static str) -> impl Fn(E) -> anyhow::Error {
    move |e| anyhow!("{what}: {e:?}")
}

/// Stem of a folded model on a normalised image: `ReLU(conv(x) + b)` (the analysis covers
/// stems without a pool; see [`analyse`]).
pub fn stem_forward(m: &Model<'_>, x: &[f32]) -> Result<Vec<f32>> {
    let a = m.arch();
    let mut y = vec![0.0; a.stem_conv_output().len()];
    conv2d(
        &a.stem_conv(),
        x,
        &m.tensor_by_id(TensorId::StemConvW)
            .map_err(core_err("stem"))?,
        Some(
            &m.tensor_by_id(TensorId::StemConvB)
                .map_err(core_err("stem"))?,
        ),
        &mut y,
    )
    .map_err(core_err("stem"))?;
    relu(&mut y);
    Ok(y)
}

/// Every residual block's output of a folded model, from the stem output `y0` (core's
/// [`tsc_core::block_forward`], the code the firmware runs).
pub fn blocks_forward(m: &Model<'_>, y0: &[f32]) -> Result<Vec<Vec<f32>>> {
    let a = *m.arch();
    let mut cur = y0.to_vec();
    let mut outs = Vec::new();
    for (stage, st) in a.stages().iter().enumerate() {
        for block in 0..st.blocks {
            let g = a.block_geom(stage, block);
            let mut mid = vec![0.0; a.block_middle_len(stage, block)];
            let mut out = vec![0.0; g.output.len()];
            tsc_core::block_forward(m, stage, block, &cur, &mut mid, &mut out, None)
                .map_err(core_err("block"))?;
            outs.push(out.clone());
            cur = out;
        }
    }
    Ok(outs)
}

/// Pool and classifier of a folded model on the last feature map.
pub fn head_forward(m: &Model<'_>, y: &[f32]) -> Result<Vec<f32>> {
    let a = m.arch();
    let h = a.head_input();
    let mut pooled = vec![0.0; h.c];
    tsc_core::layers::global_avg_pool(h, y, &mut pooled).map_err(core_err("pool"))?;
    let mut logits = vec![0.0; a.classes];
    tsc_core::layers::fc(
        &pooled,
        &m.tensor_by_id(TensorId::FcW).map_err(core_err("fc"))?,
        Some(&m.tensor_by_id(TensorId::FcB).map_err(core_err("fc"))?),
        &mut logits,
    )
    .map_err(core_err("fc"))?;
    Ok(logits)
}

/// The normalised test image `i` for `arch`.
pub fn normalised(arch: &Arch, ds: &Dataset, i: usize) -> Vec<f32> {
    let c = arch.input.c;
    ds.image_f32(i)
        .iter()
        .enumerate()
        .map(|(k, &v)| (v - arch.mean[k % c]) / arch.std[k % c])
        .collect()
}

fn diff_norm(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| ((x - y) as f64).powi(2))
        .sum::<f64>()
        .sqrt()
}

/// Random perturbation of `x` with `‖δ‖ = eps·‖x‖` (or `eps` if `x = 0`); returns `(x+δ, ‖δ‖)`.
fn perturb(x: &[f32], eps: f64, r: &mut Rng) -> (Vec<f32>, f64) {
    let d: Vec<f64> = x.iter().map(|_| r.normal() as f64).collect();
    let nx = x.iter().map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt();
    let target = if nx > 0.0 { eps * nx } else { eps };
    let s = target / norm(&d).max(f64::MIN_POSITIVE);
    let xp: Vec<f32> = x
        .iter()
        .zip(&d)
        .map(|(&v, &e)| (v as f64 + s * e) as f32)
        .collect();
    // The perturbation actually applied after rounding to f32.
    let applied = diff_norm(&xp, x);
    (xp, applied)
}

/// All numbers of the command for one checkpoint (`bytes`) on the first images of `test`.
pub fn analyse(
    bytes: &[u8],
    label: &str,
    test: &Dataset,
    opts: &StabilityOptions,
) -> Result<Stability> {
    let ck = Model::parse(bytes).map_err(|e| anyhow!("{e}"))?;
    if ck.kind() != ModelKind::Checkpoint {
        bail!("the stability analysis needs the training checkpoint (BN and Δt separate), not a folded model");
    }
    let names: Vec<String> = ck.class_names().map(str::to_string).collect();
    crate::train::check_fits(ck.arch(), &names, test, "the checkpoint")?;
    if !(opts.eps > 0.0 && opts.eps.is_finite()) {
        bail!("--eps must be a positive number");
    }
    let host = HostModel::decode(bytes)?;
    let a = host.arch;
    // Proposition 1 is stated for a block of two conv+BN maps; this analysis bounds exactly
    // that and a stem without pooling.
    if a.block != BlockKind::Basic || a.stem.pool.is_some() {
        bail!(
            "the stability analysis covers basic-block ResNets with a pool-free stem (as in \
             the paper's CIFAR experiments); this checkpoint is a {}",
            crate::model::describe_arch(&a)
        );
    }
    let steps = crate::tools::block_steps(bytes)?;
    let folded = tsc_core::fold::fold_to_vec(&ck).map_err(|e| anyhow!("folding failed: {e:?}"))?;
    let fm = Model::parse(&folded).map_err(|e| anyhow!("{e}"))?;

    let sc = a.stem_conv();
    let stem = conv_bn(
        &host,
        "stem.conv.w",
        "stem.bn",
        a.input,
        sc.kh,
        sc.stride,
        sc.pad,
    )?;
    let stem_op = stem.op_norm(opts.iters, opts.seed);

    let mut blocks = Vec::new();
    let (mut bound, mut tight) = (1.0f64, 1.0f64);
    for (j, (s, b, dt)) in steps.iter().enumerate() {
        let g = a.block_geom(*s, *b);
        let p = format!("s{s}.b{b}");
        let seed = opts.seed.wrapping_add(j as u64 + 1);
        let br = a.branch(*s, *b);
        let op = |i: usize| {
            let c = br.convs()[i].conv;
            conv_bn(
                &host,
                &format!("{p}.conv{}.w", i + 1),
                &format!("{p}.bn{}", i + 1),
                c.input,
                c.kh,
                c.stride,
                c.pad,
            )
        };
        let (a1, mut a2) = (op(0)?, op(1)?);
        let (a1_op, a2_op) = (a1.op_norm(opts.iters, seed), a2.op_norm(opts.iters, seed));
        let (a1_mat, a2_mat) = (
            a1.matrix_norm(opts.iters, seed),
            a2.matrix_norm(opts.iters, seed),
        );
        let shortcut = if g.has_proj {
            conv_bn(
                &host,
                &format!("{p}.proj.w"),
                &format!("{p}.projbn"),
                g.input,
                1,
                g.stride,
                0,
            )?
            .op_norm(opts.iters, seed)
        } else {
            1.0
        };
        a2.scale_rows(&dt.iter().map(|&d| d as f64).collect::<Vec<_>>());
        let a2_dt = a2.op_norm(opts.iters, seed);
        let dt_mean = dt.iter().map(|&d| d as f64).sum::<f64>() / dt.len().max(1) as f64;
        let dt_max = dt.iter().map(|&d| d.abs() as f64).fold(0.0, f64::max);
        let w_norm = a1_op * a2_op;
        let factor = shortcut + w_norm * dt_max;
        bound *= factor;
        tight *= shortcut + a1_op * a2_dt;
        blocks.push(BlockStability {
            name: p,
            input: g.input,
            a1_op,
            a2_op,
            a1_mat,
            a2_mat,
            shortcut,
            w_norm,
            dt_mean,
            dt_max,
            factor,
            bound,
            tight_bound: tight,
            measured_mean: 0.0,
            measured_max: 0.0,
        });
    }

    let n = opts.images.min(test.len());
    if n == 0 {
        bail!("no test image to measure with (--images must be at least 1)");
    }
    let mut sums = vec![0.0f64; blocks.len()];
    let mut maxs = vec![0.0f64; blocks.len()];
    let (mut in_sum, mut in_max) = (0.0f64, 0.0f64);
    for i in 0..n {
        let mut r = Rng::from_parts(opts.seed, &[0x57ab, i as u64]);
        let x = normalised(&a, test, i);
        let y0 = stem_forward(&fm, &x)?;
        let ys = blocks_forward(&fm, &y0)?;
        let (y0p, d) = perturb(&y0, opts.eps, &mut r);
        let ysp = blocks_forward(&fm, &y0p)?;
        for (j, (u, v)) in ys.iter().zip(&ysp).enumerate() {
            let ratio = diff_norm(u, v) / d;
            sums[j] += ratio;
            maxs[j] = maxs[j].max(ratio);
        }
        let (xp, dx) = perturb(&x, opts.eps, &mut r);
        let yxp = blocks_forward(&fm, &stem_forward(&fm, &xp)?)?;
        let ratio = diff_norm(ys.last().map_or(&y0, |v| v), yxp.last().map_or(&y0, |v| v)) / dx;
        in_sum += ratio;
        in_max = in_max.max(ratio);
    }
    for (j, b) in blocks.iter_mut().enumerate() {
        b.measured_mean = sums[j] / n as f64;
        b.measured_max = maxs[j];
    }
    Ok(Stability {
        label: label.into(),
        blocks,
        stem_op,
        input_measured: (in_sum / n as f64, in_max),
        images: n,
        eps: opts.eps,
    })
}

/// One row per block.
pub fn table(s: &Stability) -> Table {
    let mut t = Table::new(vec![
        col("block", "block"),
        col("input", "input_hwc"),
        num("‖A1‖op", "conv1_bn_operator_norm", 3),
        num("‖A2‖op", "conv2_bn_operator_norm", 3),
        num("‖A1‖mat", "conv1_bn_matrix_norm", 3),
        num("‖A2‖mat", "conv2_bn_matrix_norm", 3),
        num("‖S‖", "shortcut_norm", 3),
        num("‖W‖=‖A1‖‖A2‖", "w_norm", 3),
        num("mean Δt", "dt_mean", 4),
        num("max Δt", "dt_max", 4),
        num("‖S‖+‖W‖maxΔt", "block_factor", 3),
        num("bound Π", "bound_product", 4),
        num("tight Π", "tight_bound_product", 4),
        num("measured mean", "measured_amplification_mean", 4),
        num("measured max", "measured_amplification_max", 4),
    ]);
    for b in &s.blocks {
        t.push(vec![
            Cell::from(b.name.clone()),
            Cell::from(format!("{}x{}x{}", b.input.h, b.input.w, b.input.c)),
            b.a1_op.into(),
            b.a2_op.into(),
            b.a1_mat.into(),
            b.a2_mat.into(),
            b.shortcut.into(),
            b.w_norm.into(),
            b.dt_mean.into(),
            b.dt_max.into(),
            b.factor.into(),
            b.bound.into(),
            b.tight_bound.into(),
            b.measured_mean.into(),
            b.measured_max.into(),
        ]);
    }
    t
}

/// The legend printed under the table.
pub fn summary(s: &Stability) -> String {
    let last = s.blocks.last();
    format!(
        "{label}: A1 = BN1·conv1, A2 = BN2·conv2 (BN in inference form folded into the conv, Δt not included);\n\
         ‖·‖op = spectral norm of the conv as an operator on the block's feature maps (power iteration with the adjoint conv),\n\
         ‖·‖mat = spectral norm of the reshaped weight matrix [C_out, k·k·C_in]; ‖W_j‖ = ‖A1‖op·‖A2‖op; ‖S‖ = shortcut's norm.\n\
         bound Π = Π_j (‖S_j‖ + ‖W_j‖·max Δt_j) (Prop. 1, Eq. 7); tight Π = Π_j (‖S_j‖ + ‖A1‖op·‖diag(Δt_j)·A2‖op).\n\
         measured = ‖y_j(y_0+δ) − y_j(y_0)‖/‖δ‖ over {n} test images, ‖δ‖ = {eps:e}·‖y_0‖ at the stem output y_0.\n\
         at the final feature map: bound {b:.4}, tight {t:.4}, measured mean {mm:.4} max {mx:.4}\n\
         from the normalised input (through the stem, ‖stem‖op = {st:.3}): bound {ib:.4}, measured mean {im:.4} max {ix:.4}",
        label = s.label,
        n = s.images,
        eps = s.eps,
        b = last.map_or(1.0, |b| b.bound),
        t = last.map_or(1.0, |b| b.tight_bound),
        mm = last.map_or(0.0, |b| b.measured_mean),
        mx = last.map_or(0.0, |b| b.measured_max),
        st = s.stem_op,
        ib = s.stem_op * last.map_or(1.0, |b| b.bound),
        im = s.input_measured.0,
        ix = s.input_measured.1,
    )
}

/// Printed for models with squeeze-excitation units.
pub const SE_NOTE: &str =
    "note: this model has squeeze-excitation units. Proposition 1's bound does not cover them: \
the SE gate g(x) depends on the block's own features, so a perturbation also moves the gate \
and the block is no longer Δt times a fixed linear map. The bound columns treat each gate as 1 \
(the ‖A‖ norms are the convs' alone); the measured columns run the real SE blocks.";

/// The whole command: table and summary on the terminal, CSV to `csv`.
pub fn command(
    path: &Path,
    cfg: &crate::config::TrainConfig,
    opts: &StabilityOptions,
    csv: &Path,
) -> Result<Stability> {
    let bytes = crate::tools::read_model(path)?;
    let m = Model::parse(&bytes).map_err(|e| anyhow!("{e}"))?;
    if m.kind() != ModelKind::Checkpoint {
        bail!(
            "{} is a folded (exported) model: the stability analysis needs the training checkpoint",
            path.display()
        );
    }
    let label = super::checkpoint_label(path, m.arch());
    let test = crate::data::load_split(&cfg.dataset_spec()?, crate::data::Split::Test)?;
    let names: Vec<String> = m.class_names().map(str::to_string).collect();
    crate::train::check_fits(
        m.arch(),
        &names,
        &test,
        &format!("checkpoint {}", path.display()),
    )?;
    let s = analyse(&bytes, &label, &test, opts)
        .with_context(|| format!("stability of {}", path.display()))?;
    let t = table(&s);
    print!("{}", t.render());
    println!("{}", summary(&s));
    if m.arch().se_reduction != 0 {
        println!("{}", SE_NOTE);
    }
    t.write_csv(csv)?;
    println!("wrote {}", csv.display());
    Ok(s)
}
