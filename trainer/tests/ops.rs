//! The non-convolution kernels against their f64 references (`reference::ops`), and each
//! backward against central finite differences of the reference. Every run draws fresh inputs;
//! the seed is printed (set `OPS_SEED` to replay one).

use std::sync::OnceLock;
use tsc_trainer::gpu::norm::{self, BnGrad, BnShape, Epilogue};
use tsc_trainer::gpu::{elementwise as ew, linear, loss, optim, pool, reduce, se, Gpu, Tensor};
use tsc_trainer::reference::ops as r;
use tsc_trainer::rng::Rng;

fn gpu() -> &'static Gpu {
    static G: OnceLock<Gpu> = OnceLock::new();
    G.get_or_init(|| Gpu::new(None).expect("a GPU adapter (lavapipe in CI)"))
}

fn rng(test: &str) -> Rng {
    let seed = std::env::var("OPS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    println!("{test}: seed {seed} (OPS_SEED={seed} replays)");
    Rng::new(seed)
}

fn randn(rng: &mut Rng, n: usize, mean: f64, std: f64) -> Vec<f64> {
    (0..n).map(|_| mean + std * rng.normal() as f64).collect()
}
fn f32s(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}
/// The f32 values widened back, so references see exactly what the GPU sees.
fn rounded(v: &[f64]) -> Vec<f64> {
    v.iter().map(|&x| x as f32 as f64).collect()
}
fn up(v: &[f64], shape: &[usize]) -> Tensor {
    gpu().upload(&f32s(v), shape)
}
/// A NaN-poisoned output tensor.
fn out(shape: &[usize]) -> Tensor {
    let t = gpu().zeros(shape);
    gpu().fill(&t, f32::NAN);
    t
}
fn down(t: &Tensor) -> Vec<f32> {
    gpu().download(t).unwrap()
}

/// max |got − want| / max |want| (NaN counts as infinitely wrong).
fn rel_err(got: &[f32], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-12);
    got.iter().zip(want).fold(0.0f64, |m, (&g, &w)| {
        let d = (g as f64 - w).abs();
        if d.is_nan() {
            f64::INFINITY
        } else {
            m.max(d / scale)
        }
    })
}
fn rel_err64(got: &[f64], want: &[f64]) -> f64 {
    rel_err(&got.iter().map(|&v| v as f32).collect::<Vec<_>>(), want).max({
        let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-12);
        got.iter()
            .zip(want)
            .fold(0.0f64, |m, (g, w)| m.max((g - w).abs() / scale))
    })
}
fn check(name: &str, got: &[f32], want: &[f64], tol: f64) {
    let e = rel_err(got, want);
    println!("  {name}: rel err {e:.3e} (tol {tol:.0e})");
    assert!(e <= tol, "{name}: relative error {e:.3e} > {tol:.0e}");
}

/// Central finite differences of `f` at `x`.
fn fd(f: &dyn Fn(&[f64]) -> f64, x: &[f64]) -> Vec<f64> {
    let mut xp = x.to_vec();
    (0..x.len())
        .map(|i| {
            let h = 1e-6 * x[i].abs().max(1.0);
            xp[i] = x[i] + h;
            let a = f(&xp);
            xp[i] = x[i] - h;
            let b = f(&xp);
            xp[i] = x[i];
            (a - b) / (2.0 * h)
        })
        .collect()
}
fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}
/// Reference analytic gradient vs finite differences, and the GPU gradient vs both.
fn check_grad(name: &str, gpu_g: &[f32], analytic: &[f64], numeric: &[f64], tol_gpu: f64) {
    let e_fd = rel_err64(analytic, numeric);
    println!("  {name}: reference vs finite differences {e_fd:.3e}");
    assert!(
        e_fd <= 1e-6,
        "{name}: reference backward disagrees with finite differences: {e_fd:.3e}"
    );
    let e_gpu_fd = rel_err(gpu_g, numeric);
    println!("  {name}: GPU vs finite differences {e_gpu_fd:.3e}");
    assert!(
        e_gpu_fd <= tol_gpu + 1e-6,
        "{name}: GPU vs finite differences {e_gpu_fd:.3e}"
    );
    check(
        &format!("{name} GPU vs reference"),
        gpu_g,
        analytic,
        tol_gpu,
    );
}

/// Awkward channel counts, plus multiples of 4 (the vec4 texture-mirror BatchNorm on CPU
/// adapters), one of them over 4096 texels so the mirror spans several rows.
const SHAPES: &[(usize, usize, usize, usize)] = &[
    (1, 7, 7, 3),
    (3, 9, 9, 5),
    (3, 7, 9, 17),
    (1, 9, 7, 5),
    (2, 9, 7, 8),
    (3, 20, 20, 16),
];

#[test]
fn every_shader_compiles() {
    let g = gpu();
    let tables: &[&[reduce::KernelSpec]] = &[
        norm::KERNELS,
        ew::KERNELS,
        ew::STEP_KERNELS,
        ew::SHORTCUT_KERNELS,
        pool::KERNELS,
        tsc_trainer::gpu::space_to_depth::KERNELS,
        linear::KERNELS,
        loss::KERNELS,
        optim::KERNELS,
        reduce::KERNELS,
        se::KERNELS,
    ];
    let mut n = 0;
    for t in tables {
        for spec in *t {
            for &m in spec.modes {
                reduce::compile(g, spec, m)
                    .unwrap_or_else(|e| panic!("{}/{} mode {m}: {e:#}", spec.file, spec.entry));
                n += 1;
            }
        }
    }
    println!("{n} kernel variants compiled");
}

#[test]
fn batchnorm_forward_train_and_infer() {
    let mut rng = rng("batchnorm_forward");
    let g = gpu();
    for &(n, h, w, c) in SHAPES {
        let s = BnShape::nhwc(n, h, w, c);
        println!("shape n{n} h{h} w{w} c{c}");
        // A large common offset checks the statistics for cancellation.
        let x = rounded(&randn(&mut rng, s.len(), 3.0, 2.0));
        let gamma = rounded(&randn(&mut rng, c, 1.0, 0.3));
        let beta = rounded(&randn(&mut rng, c, 0.0, 0.5));
        let rm0 = rounded(&randn(&mut rng, c, 0.0, 1.0));
        let rv0: Vec<f64> = rounded(&randn(&mut rng, c, 0.0, 1.0))
            .iter()
            .map(|v| v.abs() + 0.5)
            .collect();
        let dt = rounded(&randn(&mut rng, c, 0.5, 0.2));
        let sc = rounded(&randn(&mut rng, s.len(), 0.0, 1.0));
        let shape = [n, h, w, c];
        let (tx, tg, tb, tdt, tsc) = (
            up(&x, &shape),
            up(&gamma, &[c]),
            up(&beta, &[c]),
            up(&dt, &[c]),
            up(&sc, &shape),
        );
        let bn = r::bn_train_forward(&x, c, &gamma, &beta);
        for (label, mode) in [("plain", 0), ("relu", 1), ("residual", 2)] {
            let (trm, trv) = (up(&rm0, &[c]), up(&rv0, &[c]));
            let (ty, tm, ti) = (out(&shape), out(&[c]), out(&[c]));
            let epi = match mode {
                0 => Epilogue::None,
                1 => Epilogue::Relu,
                _ => Epilogue::ResidualRelu {
                    dt: &tdt,
                    shortcut: &tsc,
                },
            };
            let op =
                norm::batchnorm_train_forward(g, &s, &tx, &tg, &tb, &trm, &trv, &ty, &tm, &ti, epi)
                    .unwrap();
            op.run(g);
            let want = match mode {
                0 => bn.y.clone(),
                1 => r::relu_forward(&bn.y),
                _ => r::residual_tail_forward(&x, &sc, &dt, &gamma, &beta).0,
            };
            check(&format!("bn train fwd {label} y"), &down(&ty), &want, 1e-4);
            check("bn saved mean", &down(&tm), &bn.mean, 1e-4);
            check("bn saved invstd", &down(&ti), &bn.invstd, 1e-4);
            let (mut rm, mut rv) = (rm0.clone(), rv0.clone());
            r::bn_running_update(&mut rm, &mut rv, &bn.mean, &bn.var, s.rows);
            check("bn running mean", &down(&trm), &rm, 1e-4);
            check("bn running var", &down(&trv), &rv, 1e-4);

            // Inference with the updated running statistics.
            let ty2 = out(&shape);
            let op =
                norm::batchnorm_infer_forward(g, &s, &tx, &tg, &tb, &trm, &trv, &ty2, epi).unwrap();
            op.run(g);
            let rm32 = rounded(&rm);
            let rv32 = rounded(&rv);
            let yi = r::bn_infer_forward(&x, c, &gamma, &beta, &rm32, &rv32);
            let want = match mode {
                0 => yi,
                1 => r::relu_forward(&yi),
                _ => r::relu_forward(&r::add(&sc, &r::step_scale_forward(&yi, &dt))),
            };
            check(&format!("bn infer fwd {label} y"), &down(&ty2), &want, 1e-4);
        }
    }
}

#[test]
fn batchnorm_backward_all_epilogues() {
    let mut rng = rng("batchnorm_backward");
    let g = gpu();
    for &(n, h, w, c) in SHAPES {
        let s = BnShape::nhwc(n, h, w, c);
        println!("shape n{n} h{h} w{w} c{c}");
        let shape = [n, h, w, c];
        let x = rounded(&randn(&mut rng, s.len(), 1.0, 2.0));
        let gamma = rounded(&randn(&mut rng, c, 1.0, 0.3));
        let beta = rounded(&randn(&mut rng, c, 0.0, 0.5));
        let dt = rounded(&randn(&mut rng, c, 0.5, 0.2));
        let sc = rounded(&randn(&mut rng, s.len(), 0.0, 1.0));
        let rr = rounded(&randn(&mut rng, s.len(), 0.0, 1.0)); // dL/dy for L = Σ r·y
        for mode in 0..3 {
            let label = ["plain", "relu", "residual"][mode];
            // The forward as a function of every input, for finite differences.
            let fwd = |x: &[f64], gm: &[f64], bt: &[f64], dt: &[f64], sc: &[f64]| -> Vec<f64> {
                let y = r::bn_train_forward(x, c, gm, bt).y;
                match mode {
                    0 => y,
                    1 => r::relu_forward(&y),
                    _ => r::relu_forward(&r::add(sc, &r::step_scale_forward(&y, dt))),
                }
            };
            let bn = r::bn_train_forward(&x, c, &gamma, &beta);
            let y = fwd(&x, &gamma, &beta, &dt, &sc);
            let (dx, dgm, dbt, ddt, dsc) = match mode {
                2 => {
                    let (dx, dg, db, ddt, dsc) =
                        r::residual_tail_backward(&rr, &y, &x, &bn.y, &dt, &gamma, &bn);
                    (dx, dg, db, Some(ddt), Some(dsc))
                }
                _ => {
                    let dz = if mode == 1 {
                        r::relu_backward(&rr, &y)
                    } else {
                        rr.clone()
                    };
                    let (dx, dg, db) = r::bn_backward(&dz, &x, c, &gamma, &bn.mean, &bn.invstd);
                    (dx, dg, db, None, None)
                }
            };
            // GPU backward from the reference's saved state.
            let (tdy, tx, tg, tb) = (
                up(&rr, &shape),
                up(&x, &shape),
                up(&gamma, &[c]),
                up(&beta, &[c]),
            );
            let (tm, ti, ty) = (up(&bn.mean, &[c]), up(&bn.invstd, &[c]), up(&y, &shape));
            let (tdt, tddt, tdsc) = (up(&dt, &[c]), out(&[c]), out(&shape));
            let (tdx, tdg, tdb) = (out(&shape), out(&[c]), out(&[c]));
            let grad = match mode {
                0 => BnGrad::None,
                1 => BnGrad::Relu { y: &ty },
                _ => BnGrad::ResidualRelu {
                    y: &ty,
                    dt: &tdt,
                    ddt: &tddt,
                    dshortcut: &tdsc,
                },
            };
            let op = norm::batchnorm_backward(
                g, &s, &tdy, &tx, &tg, &tb, &tm, &ti, &tdx, &tdg, &tdb, grad,
            )
            .unwrap();
            op.run(g);
            let lx = |v: &[f64]| dot(&rr, &fwd(v, &gamma, &beta, &dt, &sc));
            let lg = |v: &[f64]| dot(&rr, &fwd(&x, v, &beta, &dt, &sc));
            let lb = |v: &[f64]| dot(&rr, &fwd(&x, &gamma, v, &dt, &sc));
            let tol = 1e-4;
            check_grad(
                &format!("bn {label} dx"),
                &down(&tdx),
                &dx,
                &fd(&lx, &x),
                tol,
            );
            check_grad(
                &format!("bn {label} dgamma"),
                &down(&tdg),
                &dgm,
                &fd(&lg, &gamma),
                tol,
            );
            check_grad(
                &format!("bn {label} dbeta"),
                &down(&tdb),
                &dbt,
                &fd(&lb, &beta),
                tol,
            );
            if mode == 2 {
                let ld = |v: &[f64]| dot(&rr, &fwd(&x, &gamma, &beta, v, &sc));
                let ls = |v: &[f64]| dot(&rr, &fwd(&x, &gamma, &beta, &dt, v));
                check_grad(
                    "bn residual ddt",
                    &down(&tddt),
                    &ddt.unwrap(),
                    &fd(&ld, &dt),
                    tol,
                );
                check_grad(
                    "bn residual dshortcut",
                    &down(&tdsc),
                    &dsc.unwrap(),
                    &fd(&ls, &sc),
                    tol,
                );
            }
        }
    }
}

#[test]
fn relu_add_forward_backward() {
    let mut rng = rng("relu_add");
    let g = gpu();
    for &(n, h, w, c) in SHAPES {
        let shape = [n, h, w, c];
        let len = n * h * w * c;
        // Kept at least 1e-3 from 0: a finite-difference step (1e-6) across ReLU's kink would
        // make the quotient meaningless (the test failed for about 1 seed in 6 before).
        let x: Vec<f64> = rounded(&randn(&mut rng, len, 0.0, 1.0))
            .into_iter()
            .map(|v| {
                if v.abs() < 1e-3 {
                    v.signum() * 1e-3 + v
                } else {
                    v
                }
            })
            .collect();
        let x = rounded(&x);
        let b = rounded(&randn(&mut rng, len, 0.0, 1.0));
        let rr = rounded(&randn(&mut rng, len, 0.0, 1.0));
        let (tx, tb) = (up(&x, &shape), up(&b, &shape));
        let ty = out(&shape);
        ew::relu_forward(g, &tx, &ty).unwrap().run(g);
        let y = r::relu_forward(&x);
        check("relu fwd", &down(&ty), &y, 1e-4);
        let tdx = out(&shape);
        ew::relu_backward(g, &up(&rr, &shape), &up(&y, &shape), &tdx)
            .unwrap()
            .run(g);
        let lx = |v: &[f64]| dot(&rr, &r::relu_forward(v));
        check_grad(
            "relu bwd",
            &down(&tdx),
            &r::relu_backward(&rr, &y),
            &fd(&lx, &x),
            1e-6,
        );
        let tz = out(&shape);
        ew::add(g, &tx, &tb, &tz).unwrap().run(g);
        check("add", &down(&tz), &r::add(&x, &b), 1e-6);
        ew::add_inplace(g, &tx, &tb).unwrap().run(g);
        check("add_inplace", &down(&tx), &r::add(&x, &b), 1e-6);
    }
}

#[test]
fn step_scale_forward_backward() {
    let mut rng = rng("step_scale");
    let g = gpu();
    for &(n, h, w, c) in SHAPES {
        let shape = [n, h, w, c];
        let len = n * h * w * c;
        let f = rounded(&randn(&mut rng, len, 0.0, 1.0));
        let dt = rounded(&randn(&mut rng, c, 0.5, 0.2));
        let rr = rounded(&randn(&mut rng, len, 0.0, 1.0));
        let (tf, tdt) = (up(&f, &shape), up(&dt, &[c]));
        let ty = out(&shape);
        ew::step_scale_forward(g, &tf, &tdt, &ty).unwrap().run(g);
        check(
            "step_scale fwd",
            &down(&ty),
            &r::step_scale_forward(&f, &dt),
            1e-6,
        );
        let (tdf, tddt) = (out(&shape), out(&[c]));
        ew::step_scale_backward(g, &up(&rr, &shape), &tf, &tdt, &tdf, &tddt)
            .unwrap()
            .run(g);
        let (df, ddt) = r::step_scale_backward(&rr, &f, &dt);
        let lf = |v: &[f64]| dot(&rr, &r::step_scale_forward(v, &dt));
        let ld = |v: &[f64]| dot(&rr, &r::step_scale_forward(&f, v));
        check_grad("step_scale dF", &down(&tdf), &df, &fd(&lf, &f), 1e-6);
        check_grad("step_scale ddt", &down(&tddt), &ddt, &fd(&ld, &dt), 1e-4);
    }
}

#[test]
fn shortcut_option_a() {
    let mut rng = rng("shortcut");
    let g = gpu();
    for &(n, h, w, cin, cout, st) in &[
        (1, 7, 7, 3, 5, 2),
        (3, 9, 7, 5, 10, 2),
        (2, 8, 8, 16, 32, 2),
        (1, 9, 9, 17, 17, 2),
        // vec4 entries on CPU adapters: odd spatial sizes, Cin = Cout
        (3, 5, 7, 4, 8, 2),
        (1, 7, 9, 8, 8, 2),
        // stride 1 (a channel-only pad) and 3 (sizes not multiples of 3), scalar and vec4
        (2, 5, 6, 3, 7, 1),
        (1, 4, 5, 5, 5, 1),
        (2, 6, 5, 8, 12, 1),
        (2, 7, 8, 3, 6, 3),
        (1, 9, 10, 5, 5, 3),
        (2, 7, 5, 4, 8, 3),
        (1, 8, 7, 12, 12, 3),
    ] {
        println!("shape n{n} h{h} w{w} cin{cin} cout{cout} stride {st}");
        let x = rounded(&randn(&mut rng, n * h * w * cin, 0.0, 1.0));
        let (ho, wo) = (h.div_ceil(st), w.div_ceil(st));
        let yshape = [n, ho, wo, cout];
        let xshape = [n, h, w, cin];
        let rr = rounded(&randn(&mut rng, n * ho * wo * cout, 0.0, 1.0));
        let ty = out(&yshape);
        ew::shortcut_a_forward(g, &up(&x, &xshape), &ty, st)
            .unwrap()
            .run(g);
        check(
            "shortcut fwd",
            &down(&ty),
            &r::shortcut_a_forward(&x, n, h, w, cin, cout, st),
            0.0,
        );
        let tdx = out(&xshape);
        ew::shortcut_a_backward(g, &up(&rr, &yshape), &tdx, st, false)
            .unwrap()
            .run(g);
        let dx = r::shortcut_a_backward(&rr, n, h, w, cin, cout, st);
        let lx = |v: &[f64]| dot(&rr, &r::shortcut_a_forward(v, n, h, w, cin, cout, st));
        check_grad("shortcut bwd", &down(&tdx), &dx, &fd(&lx, &x), 1e-6);
        // Accumulating mode adds onto what is there.
        let base = rounded(&randn(&mut rng, x.len(), 0.0, 1.0));
        let tacc = up(&base, &xshape);
        ew::shortcut_a_backward(g, &up(&rr, &yshape), &tacc, st, true)
            .unwrap()
            .run(g);
        check(
            "shortcut bwd accumulate",
            &down(&tacc),
            &r::add(&base, &dx),
            1e-6,
        );
    }
    // Shapes that do not fit the stride are refused, as is stride 0.
    let tx = g.zeros(&[1, 7, 7, 3]);
    assert!(ew::shortcut_a_forward(g, &tx, &g.zeros(&[1, 4, 4, 3]), 3).is_err());
    assert!(ew::shortcut_a_forward(g, &tx, &g.zeros(&[1, 7, 7, 3]), 0).is_err());
    assert!(ew::shortcut_a_backward(g, &g.zeros(&[1, 3, 3, 3]), &tx, 2, false).is_err());
}

#[test]
fn global_average_pool() {
    let mut rng = rng("gap");
    let g = gpu();
    for &(n, h, w, c) in SHAPES {
        let x = rounded(&randn(&mut rng, n * h * w * c, 0.5, 1.0));
        let rr = rounded(&randn(&mut rng, n * c, 0.0, 1.0));
        let ty = out(&[n, c]);
        pool::gap_forward(g, &up(&x, &[n, h, w, c]), &ty)
            .unwrap()
            .run(g);
        check(
            "gap fwd",
            &down(&ty),
            &r::gap_forward(&x, n, h * w, c),
            1e-4,
        );
        let tdx = out(&[n, h, w, c]);
        pool::gap_backward(g, &up(&rr, &[n, c]), &tdx, false)
            .unwrap()
            .run(g);
        let lx = |v: &[f64]| dot(&rr, &r::gap_forward(v, n, h * w, c));
        check_grad(
            "gap bwd",
            &down(&tdx),
            &r::gap_backward(&rr, n, h * w, c),
            &fd(&lx, &x),
            1e-5,
        );
        // Accumulating mode (an SE unit's pooled-input gradient onto its branch's) adds onto
        // what is there.
        let base = rounded(&randn(&mut rng, x.len(), 0.0, 1.0));
        let tacc = up(&base, &[n, h, w, c]);
        pool::gap_backward(g, &up(&rr, &[n, c]), &tacc, true)
            .unwrap()
            .run(g);
        check(
            "gap bwd accumulate",
            &down(&tacc),
            &r::add(&base, &r::gap_backward(&rr, n, h * w, c)),
            1e-6,
        );
    }
}

/// Squeeze-excitation tail shapes `(n, h, w, c, finite differences)`: odd sizes, 1×1 pixels
/// (one pixel chunk), C a multiple of 4, few columns over many pixels (the backward's partial
/// sums span several chunks, more than 32 at P = 3136) and N·C large enough for a single
/// chunk of 9 pixels. The two large ones skip finite differences (quadratic in the size).
const SE_SHAPES: &[(usize, usize, usize, usize, bool)] = &[
    (3, 5, 7, 6, true),
    (2, 1, 1, 5, true),
    (2, 4, 6, 8, true),
    (1, 12, 12, 3, true),
    (1, 56, 56, 4, false),
    (5, 3, 3, 2048, false),
];

#[test]
fn squeeze_excite_forward_backward() {
    let mut rng = rng("squeeze_excite");
    let g = gpu();
    for &(n, h, w, c, with_fd) in SE_SHAPES {
        println!("shape n{n} h{h} w{w} c{c}");
        let shape = [n, h, w, c];
        let len = n * h * w * c;
        let z = rounded(&randn(&mut rng, len, 0.0, 1.0));
        let a = rounded(&randn(&mut rng, n * c, 0.0, 1.5));
        let dt = rounded(&randn(&mut rng, c, 0.5, 0.2));
        let rr = rounded(&randn(&mut rng, len, 0.0, 1.0)); // dL/dy for L = Σ r·y
        let gate = r::sigmoid(&a);
        // The shortcut keeps every pre-activation at least 1e-3 from ReLU's kink, so neither a
        // finite-difference step (≤ 1e-6 · |Δt·z|) nor f32 rounding crosses it.
        let mut sc = rounded(&randn(&mut rng, len, 0.0, 1.0));
        for i in 0..len {
            let t = dt[i % c] * z[i] * gate[(i / (h * w * c)) * c + i % c];
            let pre = sc[i] + t;
            if pre.abs() < 1e-3 {
                sc[i] += if pre < 0.0 { -2e-3 } else { 2e-3 };
            }
        }
        let sc = rounded(&sc);

        // Gate: the GPU's sigmoid against f64.
        let (ta, tg) = (up(&a, &[n, c]), out(&[n, c]));
        se::se_gate_forward(g, &ta, &tg).unwrap().run(g);
        check("se gate σ(a)", &down(&tg), &gate, 1e-6);

        // The tail forward, fed the f32 gate so the reference sees what the GPU sees.
        let g32 = rounded(&gate);
        let (tz, tg32, tdt, tsc) = (
            up(&z, &shape),
            up(&g32, &[n, c]),
            up(&dt, &[c]),
            up(&sc, &shape),
        );
        let ty = out(&shape);
        se::se_residual_forward(g, &tz, &tg32, &tdt, &tsc, &ty)
            .unwrap()
            .run(g);
        let y32 = r::se_residual_forward(&z, &g32, &dt, &sc);
        check("se fwd y", &down(&ty), &y32, 1e-6);

        // Backward from the GPU forward's y.
        let (tdsc, tdz, tda, tddt) = (out(&shape), out(&shape), out(&[n, c]), out(&[c]));
        se::se_residual_backward(
            g,
            &up(&rr, &shape),
            &ty,
            &tz,
            &tg32,
            &tdt,
            &tdsc,
            &tdz,
            &tda,
            &tddt,
        )
        .unwrap()
        .run(g);
        let (dsc, dz, da, ddt) = (down(&tdsc), down(&tdz), down(&tda), down(&tddt));
        if !with_fd {
            let want = r::se_residual_backward(&rr, &y32, &z, &g32, &dt);
            check("se bwd dsc", &dsc, &want.dsc, 0.0);
            check("se bwd dz", &dz, &want.dz, 1e-6);
            check("se bwd da", &da, &want.da, 1e-5);
            check("se bwd ddt", &ddt, &want.ddt, 1e-5);
            continue;
        }
        // The analytic backward at g = σ(a) exactly, against central differences of
        // L = Σ r·y in each input (a through the sigmoid).
        let y = r::se_residual_forward(&z, &gate, &dt, &sc);
        let want = r::se_residual_backward(&rr, &y, &z, &gate, &dt);
        let lz = |v: &[f64]| dot(&rr, &r::se_residual_forward(v, &gate, &dt, &sc));
        let la = |v: &[f64]| dot(&rr, &r::se_residual_forward(&z, &r::sigmoid(v), &dt, &sc));
        let ld = |v: &[f64]| dot(&rr, &r::se_residual_forward(&z, &gate, v, &sc));
        let ls = |v: &[f64]| dot(&rr, &r::se_residual_forward(&z, &gate, &dt, v));
        check_grad("se bwd dsc", &dsc, &want.dsc, &fd(&ls, &sc), 1e-6);
        check_grad("se bwd dz", &dz, &want.dz, &fd(&lz, &z), 1e-6);
        check_grad("se bwd da", &da, &want.da, &fd(&la, &a), 1e-5);
        check_grad("se bwd ddt", &ddt, &want.ddt, &fd(&ld, &dt), 1e-5);
    }
    // Mismatched shapes are refused with an error, not a panic or a bad dispatch.
    let (z, y) = (g.zeros(&[2, 3, 3, 4]), g.zeros(&[2, 3, 3, 4]));
    let (gt, dt) = (g.zeros(&[2, 4]), g.zeros(&[4]));
    assert!(se::se_residual_forward(g, &z, &gt, &dt, &z, &y).is_ok());
    assert!(se::se_residual_forward(g, &z, &g.zeros(&[4, 2]), &dt, &z, &y).is_err());
    assert!(se::se_residual_forward(g, &z, &gt, &g.zeros(&[3]), &z, &y).is_err());
    assert!(se::se_residual_forward(g, &z, &gt, &dt, &z, &g.zeros(&[2, 3, 4, 3])).is_err());
    assert!(se::se_residual_forward(g, &g.zeros(&[18, 4]), &gt, &dt, &z, &y).is_err());
    assert!(se::se_gate_forward(g, &gt, &g.zeros(&[4, 2])).is_err());
    let (dsc, dz, da, ddt) = (
        g.zeros(&[2, 3, 3, 4]),
        g.zeros(&[2, 3, 3, 4]),
        g.zeros(&[2, 4]),
        g.zeros(&[4]),
    );
    assert!(se::se_residual_backward(g, &y, &y, &z, &gt, &dt, &dsc, &dz, &da, &ddt).is_ok());
    assert!(se::se_residual_backward(g, &y, &y, &z, &gt, &dt, &dsc, &dz, &dt, &ddt).is_err());
    assert!(se::se_residual_backward(g, &y, &y, &z, &gt, &dt, &dsc, &dz, &da, &da).is_err());
    assert!(se::se_residual_backward(g, &gt, &y, &z, &gt, &dt, &dsc, &dz, &da, &ddt).is_err());
}

/// Max-pool geometries `(n, h, w, c, k, stride, pad)`: the ImageNet stem pool (k3 s2 p1) on odd
/// sizes, k2 s2 p0 on odd sizes (trailing rows/columns dropped), overlapping k3 s1 p1, windows
/// mostly in padding (k3 p2), gaps between windows (s > k), 1×1 and 1×N inputs, C not a
/// multiple of 4, and one shape spanning many workgroups.
const MAXPOOLS: &[(usize, usize, usize, usize, usize, usize, usize)] = &[
    (2, 7, 9, 5, 3, 2, 1),
    (1, 7, 7, 3, 2, 2, 0),
    (2, 9, 5, 6, 2, 2, 0),
    (2, 6, 7, 5, 3, 1, 1),
    (1, 7, 8, 3, 3, 2, 2),
    (1, 8, 7, 2, 2, 3, 0),
    (1, 1, 1, 5, 1, 1, 0),
    (2, 1, 1, 3, 3, 2, 1),
    (1, 1, 6, 4, 3, 2, 1),
    (2, 16, 15, 16, 3, 2, 1),
];

/// `len` distinct values in random order, spread over [−2, 2) at least 4/len apart: a finite
/// difference step (1e-6) never changes which element wins a window.
fn distinct(rng: &mut Rng, len: usize) -> Vec<f64> {
    let perm = rng.permutation(len);
    rounded(
        &perm
            .iter()
            .map(|&i| 4.0 * i as f64 / len as f64 - 2.0)
            .collect::<Vec<_>>(),
    )
}

fn maxpool_out(shape: [usize; 4], k: usize, s: usize, p: usize) -> [usize; 4] {
    let [n, h, w, c] = shape;
    [n, (h + 2 * p - k) / s + 1, (w + 2 * p - k) / s + 1, c]
}

/// Runs the GPU max pool forward; `(y, argmax)`.
fn gpu_maxpool(x: &[f64], shape: [usize; 4], pool: pool::Pool2d) -> (Vec<f32>, Vec<u32>) {
    let g = gpu();
    let oshape = maxpool_out(shape, pool.k, pool.stride, pool.pad);
    let (ty, targ) = (
        out(&oshape),
        g.upload_u32(&vec![u32::MAX; numel(oshape)], &oshape),
    );
    pool::maxpool_forward(g, &up(x, &shape), &ty, &targ, pool)
        .unwrap()
        .run(g);
    (down(&ty), g.download_u32(&targ).unwrap())
}
fn numel(s: [usize; 4]) -> usize {
    s.iter().product()
}

#[test]
fn max_pool_forward() {
    let mut rng = rng("maxpool_forward");
    for &(n, h, w, c, k, s, p) in MAXPOOLS {
        println!("shape n{n} h{h} w{w} c{c} k{k} s{s} p{p}");
        let shape = [n, h, w, c];
        let pool = pool::Pool2d::new(k, s, p);
        assert_eq!(pool.out_shape(&shape).unwrap(), maxpool_out(shape, k, s, p));
        // Random values (no ties), then few distinct values (many ties: the first wins).
        for ties in [false, true] {
            let x: Vec<f64> = if ties {
                (0..numel(shape))
                    .map(|_| (rng.normal() as f64 * 1.5).round().clamp(-2.0, 2.0))
                    .collect()
            } else {
                rounded(&randn(&mut rng, numel(shape), 0.0, 1.0))
            };
            let (want, want_arg, _) = r::maxpool_forward(&x, shape, k, s, p);
            let (got, got_arg) = gpu_maxpool(&x, shape, pool);
            check(
                if ties {
                    "maxpool fwd ties"
                } else {
                    "maxpool fwd"
                },
                &got,
                &want,
                0.0,
            );
            let want_arg: Vec<u32> = want_arg.iter().map(|&a| a as u32).collect();
            assert_eq!(got_arg, want_arg, "maxpool argmax (ties: {ties})");
        }
    }
}

#[test]
fn max_pool_backward() {
    let mut rng = rng("maxpool_backward");
    let g = gpu();
    for &(n, h, w, c, k, s, p) in MAXPOOLS {
        println!("shape n{n} h{h} w{w} c{c} k{k} s{s} p{p}");
        let shape = [n, h, w, c];
        let pool = pool::Pool2d::new(k, s, p);
        let oshape = maxpool_out(shape, k, s, p);
        let x = distinct(&mut rng, numel(shape));
        let rr = rounded(&randn(&mut rng, numel(oshape), 0.0, 1.0));
        // The argmax the GPU forward saved.
        let (_, arg) = gpu_maxpool(&x, shape, pool);
        let (_, want_arg, _) = r::maxpool_forward(&x, shape, k, s, p);
        assert!(arg.iter().zip(&want_arg).all(|(&a, &b)| a as usize == b));
        let targ = g.upload_u32(&arg, &oshape);
        let tdy = up(&rr, &oshape);
        let tdx = out(&shape);
        pool::maxpool_backward(g, &tdy, &targ, &tdx, pool, false)
            .unwrap()
            .run(g);
        let dx = r::maxpool_backward(&rr, &want_arg, x.len());
        let lx = |v: &[f64]| dot(&rr, &r::maxpool_forward(v, shape, k, s, p).0);
        let got = down(&tdx);
        check_grad("maxpool bwd", &got, &dx, &fd(&lx, &x), 1e-6);
        // Deterministic: a second run gives the same bits.
        g.fill(&tdx, f32::NAN);
        pool::maxpool_backward(g, &tdy, &targ, &tdx, pool, false)
            .unwrap()
            .run(g);
        assert!(
            down(&tdx)
                .iter()
                .zip(&got)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "maxpool bwd: a second run differs"
        );
        // Accumulating mode adds onto what is there.
        let base = rounded(&randn(&mut rng, x.len(), 0.0, 1.0));
        let tacc = up(&base, &shape);
        pool::maxpool_backward(g, &tdy, &targ, &tacc, pool, true)
            .unwrap()
            .run(g);
        check(
            "maxpool bwd accumulate",
            &down(&tacc),
            &r::add(&base, &dx),
            1e-6,
        );
    }
    // Ties (many equal values): the gradient goes to the first element of each window only.
    let shape = [2, 7, 9, 5];
    let (k, s, p) = (3, 1, 1);
    let pool = pool::Pool2d::new(k, s, p);
    let oshape = maxpool_out(shape, k, s, p);
    let x: Vec<f64> = (0..numel(shape))
        .map(|_| (rng.normal() as f64).round().clamp(-1.0, 1.0))
        .collect();
    let rr = rounded(&randn(&mut rng, numel(oshape), 0.0, 1.0));
    let (_, arg) = gpu_maxpool(&x, shape, pool);
    let (_, want_arg, _) = r::maxpool_forward(&x, shape, k, s, p);
    let tdx = out(&shape);
    pool::maxpool_backward(
        g,
        &up(&rr, &oshape),
        &g.upload_u32(&arg, &oshape),
        &tdx,
        pool,
        false,
    )
    .unwrap()
    .run(g);
    check(
        "maxpool bwd ties",
        &down(&tdx),
        &r::maxpool_backward(&rr, &want_arg, x.len()),
        1e-6,
    );
}

#[test]
fn max_pool_rejects_bad_geometry() {
    let g = gpu();
    let x = g.zeros(&[1, 5, 5, 3]);
    let any = |k, s, p, y: &[usize]| {
        let (ty, ta) = (g.zeros(y), g.zeros(y));
        pool::maxpool_forward(g, &x, &ty, &ta, pool::Pool2d::new(k, s, p))
            .err()
            .map(|e| format!("{e:#}"))
    };
    // Zero kernel or stride, padding ≥ kernel (windows in padding only), a window larger than
    // the padded input, and output shapes that do not match.
    for (k, s, p, y, what) in [
        (0, 1, 0, vec![1, 6, 6, 3], "kernel"),
        (2, 0, 0, vec![1, 4, 4, 3], "stride"),
        (2, 1, 2, vec![1, 8, 8, 3], "padding"),
        (3, 2, 3, vec![1, 5, 5, 3], "padding"),
        (8, 1, 1, vec![1, 1, 1, 3], "larger"),
        (3, 2, 1, vec![1, 2, 3, 3], "output shape"),
        (3, 2, 1, vec![1, 3, 3, 4], "output shape"),
    ] {
        let e = any(k, s, p, &y).unwrap_or_else(|| panic!("k{k} s{s} p{p} {y:?} accepted"));
        println!("k{k} s{s} p{p} {y:?}: {e}");
        assert!(
            e.contains(what),
            "k{k} s{s} p{p}: error {e:?} does not name {what:?}"
        );
    }
    assert!(any(3, 2, 1, &[1, 3, 3, 3]).is_none());
    // An argmax buffer of the wrong length, and a backward with mismatched shapes.
    let (ty, ta) = (g.zeros(&[1, 3, 3, 3]), g.zeros(&[1, 3, 3, 2]));
    let pool = pool::Pool2d::new(3, 2, 1);
    assert!(pool::maxpool_forward(g, &x, &ty, &ta, pool).is_err());
    assert!(pool::maxpool_backward(g, &ty, &ta, &x, pool, false).is_err());
    assert!(pool::maxpool_backward(g, &x, &ty, &ty, pool, true).is_err());
}

#[test]
fn fully_connected() {
    let mut rng = rng("linear");
    let g = gpu();
    for &(n, fin, fout) in &[(1, 5, 3), (3, 17, 10), (7, 64, 10)] {
        let x = rounded(&randn(&mut rng, n * fin, 0.0, 1.0));
        let wt = rounded(&randn(&mut rng, fout * fin, 0.0, 0.3));
        let b = rounded(&randn(&mut rng, fout, 0.0, 0.3));
        let rr = rounded(&randn(&mut rng, n * fout, 0.0, 1.0));
        let (tx, tw, tb) = (up(&x, &[n, fin]), up(&wt, &[fout, fin]), up(&b, &[fout]));
        let ty = out(&[n, fout]);
        linear::linear_forward(g, &tx, &tw, &tb, &ty)
            .unwrap()
            .run(g);
        check(
            "linear fwd",
            &down(&ty),
            &r::linear_forward(&x, &wt, &b, n, fin, fout),
            1e-4,
        );
        let (tdx, tdw, tdb) = (out(&[n, fin]), out(&[fout, fin]), out(&[fout]));
        linear::linear_backward(g, &up(&rr, &[n, fout]), &tx, &tw, Some(&tdx), &tdw, &tdb)
            .unwrap()
            .run(g);
        let (dx, dw, db) = r::linear_backward(&rr, &x, &wt, n, fin, fout);
        let lx = |v: &[f64]| dot(&rr, &r::linear_forward(v, &wt, &b, n, fin, fout));
        let lw = |v: &[f64]| dot(&rr, &r::linear_forward(&x, v, &b, n, fin, fout));
        let lb = |v: &[f64]| dot(&rr, &r::linear_forward(&x, &wt, v, n, fin, fout));
        check_grad("linear dx", &down(&tdx), &dx, &fd(&lx, &x), 1e-4);
        check_grad("linear dW", &down(&tdw), &dw, &fd(&lw, &wt), 1e-4);
        check_grad("linear db", &down(&tdb), &db, &fd(&lb, &b), 1e-4);
    }
}

#[test]
fn softmax_cross_entropy() {
    let mut rng = rng("softmax_ce");
    let g = gpu();
    let metrics = gpu().zeros(&[4]);
    let (mut sum_loss, mut sum_correct, mut sum_n) = (0.0, 0u32, 0);
    for &(n, k) in &[(1, 10), (3, 10), (5, 3), (128, 10)] {
        let logits = rounded(&randn(&mut rng, n * k, 0.0, 3.0));
        let labels: Vec<u32> = (0..n).map(|_| rng.below(k as u64) as u32).collect();
        let (tl, tlab) = (up(&logits, &[n, k]), g.upload_u32(&labels, &[n]));
        let (td, tloss, tcor) = (out(&[n, k]), out(&[1]), g.zeros(&[1]));
        g.write(&tcor, &[f32::from_bits(u32::MAX)]);
        loss::softmax_ce(g, &tl, &tlab, &td, &tloss, &tcor, Some(&metrics))
            .unwrap()
            .run(g);
        let (l, d, cor) = r::softmax_ce(&logits, &labels, k);
        check("softmax_ce loss", &down(&tloss), &[l], 1e-5);
        assert_eq!(g.download_u32(&tcor).unwrap()[0], cor, "correct count");
        println!("  n{n} k{k}: loss {l:.4}, correct {cor}");
        let lz = |v: &[f64]| r::softmax_ce(v, &labels, k).0;
        check_grad(
            "softmax_ce dlogits",
            &down(&td),
            &d,
            &fd(&lz, &logits),
            1e-4,
        );
        sum_loss += l * n as f64;
        sum_correct += cor;
        sum_n += n;
    }
    let m = down(&metrics);
    println!("  metrics {m:?}");
    assert!(
        (m[0] as f64 - sum_loss).abs() <= 1e-4 * sum_loss.abs(),
        "metric loss sum {} vs {sum_loss}",
        m[0]
    );
    assert_eq!(m[1], sum_correct as f32);
    assert_eq!(m[2], sum_n as f32);
    assert_eq!(m[3], 4.0);

    // Ties: the lowest index wins. Sample 0: tie between 1 and 3, label 1 → correct;
    // sample 1: tie between 0 and 2, label 2 → wrong; sample 2: all equal, label 0 → correct.
    let logits = [0.0, 2.0, 1.0, 2.0, 5.0, -1.0, 5.0, 0.0, 1.0, 1.0, 1.0, 1.0];
    let labels = [1u32, 2, 0];
    let (tl, tlab) = (g.upload(&logits, &[3, 4]), g.upload_u32(&labels, &[3]));
    let (td, tloss, tcor) = (out(&[3, 4]), out(&[1]), g.zeros(&[1]));
    loss::softmax_ce(g, &tl, &tlab, &td, &tloss, &tcor, None)
        .unwrap()
        .run(g);
    let l64: Vec<f64> = logits.iter().map(|&v| v as f64).collect();
    let (l, _, cor) = r::softmax_ce(&l64, &labels, 4);
    assert_eq!(cor, 2, "reference tie rule");
    assert_eq!(g.download_u32(&tcor).unwrap()[0], 2, "GPU tie rule");
    check("softmax_ce ties loss", &down(&tloss), &[l], 1e-5);
}

#[test]
fn sgd_nesterov_weight_decay() {
    let g = gpu();
    // Hand-computed: w = 1, grad = 0.5 both steps, lr = 0.1, μ = 0.9, wd = 0.01.
    // step 1: g = 0.5 + 0.01 = 0.51; v = 0.51; w = 1 − 0.1·(0.51 + 0.9·0.51) = 0.9031
    // step 2: g = 0.5 + 0.009031 = 0.509031; v = 0.9·0.51 + 0.509031 = 0.968031;
    //         w = 0.9031 − 0.1·(0.509031 + 0.9·0.968031) = 0.9031 − 0.13802589 = 0.76507411
    let (tw, tg, tv, tlr) = (
        g.upload(&[1.0], &[1]),
        g.upload(&[0.5], &[1]),
        g.zeros(&[1]),
        g.upload(&[0.1], &[1]),
    );
    let op = optim::sgd_step(g, &tw, &tg, &tv, &tlr, 0.9, 0.01, true).unwrap();
    op.run(g);
    assert!(
        (down(&tw)[0] - 0.9031).abs() < 1e-6,
        "step 1: {}",
        down(&tw)[0]
    );
    op.run(g);
    assert!(
        (down(&tw)[0] - 0.765_074_1).abs() < 1e-6,
        "step 2: {}",
        down(&tw)[0]
    );
    assert!((down(&tv)[0] - 0.968_031).abs() < 1e-6);

    // Against the reference, with lr changed between steps through the buffer only.
    let mut rng = rng("sgd");
    for nesterov in [true, false] {
        let n = 1000;
        let mut w = rounded(&randn(&mut rng, n, 0.0, 1.0));
        let mut v = vec![0.0; n];
        let (tw, tv, tgr) = (up(&w, &[n]), g.zeros(&[n]), g.zeros(&[n]));
        let op = optim::sgd_step(g, &tw, &tgr, &tv, &tlr, 0.9, 5e-4, nesterov).unwrap();
        for (step, lr) in [0.1, 0.05, 0.01].into_iter().enumerate() {
            let grad = rounded(&randn(&mut rng, n, 0.0, 1.0));
            g.write(&tgr, &f32s(&grad));
            g.write(&tlr, &[lr as f32]);
            op.run(g);
            r::sgd_step(
                &mut w,
                &grad,
                &mut v,
                lr as f32 as f64,
                0.9f32 as f64,
                5e-4f32 as f64,
                nesterov,
            );
            check(
                &format!("sgd nesterov={nesterov} step {step} w"),
                &down(&tw),
                &w,
                1e-6,
            );
            check(
                &format!("sgd nesterov={nesterov} step {step} v"),
                &down(&tv),
                &v,
                1e-6,
            );
        }
    }
}

#[test]
fn column_sums_and_totals() {
    let mut rng = rng("reduce");
    let g = gpu();
    for &(rows, c) in &[(1, 1), (147, 5), (5000, 17), (100_000, 1), (40_000, 16)] {
        let a = rounded(&randn(&mut rng, rows * c, 0.3, 1.0));
        let b = rounded(&randn(&mut rng, rows * c, 0.0, 1.0));
        let (ta, tb) = (up(&a, &[rows, c]), up(&b, &[rows, c]));
        let to = out(&[c]);
        reduce::column_sum(g, &ta, None, rows, c, &to, 1.0, false)
            .unwrap()
            .run(g);
        check(
            &format!("column_sum {rows}x{c}"),
            &down(&to),
            &r::column_sum(&a, None, c),
            1e-5,
        );
        let to = out(&[c]);
        reduce::column_sum(g, &ta, Some(&tb), rows, c, &to, 0.5, false)
            .unwrap()
            .run(g);
        let want: Vec<f64> = r::column_sum(&a, Some(&b), c)
            .iter()
            .map(|v| 0.5 * v)
            .collect();
        // A sum of products of zero-mean values cancels: bound the error by Σ|a·b| per column.
        let abs: Vec<f64> = a.iter().zip(&b).map(|(x, y)| (x * y).abs()).collect();
        let mag = r::column_sum(&abs, None, c);
        let got = down(&to);
        let e = (0..c)
            .map(|j| (got[j] as f64 - want[j]).abs() / (0.5 * mag[j]).max(1e-30))
            .fold(0.0, f64::max);
        println!(
            "  column_sum a·b {rows}x{c}: error / Σ|a·b| = {e:.3e}, rel err {:.3e}",
            rel_err(&got, &want)
        );
        assert!(e <= 1e-6, "column_sum a·b {rows}x{c}: {e:.3e}");
        let tot = g.upload(&[1.0], &[1]);
        reduce::sum_all(g, &ta, &tot, 1.0, true).unwrap().run(g);
        let s: f64 = a.iter().sum::<f64>() + 1.0;
        check(
            &format!("sum_all accumulate {rows}x{c}"),
            &down(&tot),
            &[s],
            1e-5,
        );
    }
}

/// Timings at ResNet-20's activation shapes (batch 128), and the ImageNet stem max pool (batch
/// 8): `cargo test -p tsc-trainer --release --test ops -- --ignored --nocapture bench`. Prints
/// ms per op and effective GB/s.
#[test]
#[ignore]
fn bench_memory_bound_ops() {
    let g = gpu();
    let time = |name: &str, op: &tsc_trainer::gpu::Op, bytes: f64| {
        op.run(g);
        g.wait().unwrap();
        let reps = 5;
        let t0 = std::time::Instant::now();
        let mut rec = g.recorder();
        for _ in 0..reps {
            op.record(&mut rec);
        }
        rec.submit();
        g.wait().unwrap();
        let ms = t0.elapsed().as_secs_f64() * 1e3 / reps as f64;
        println!("  {name:32} {ms:8.2} ms  {:6.2} GB/s", bytes / ms / 1e6);
    };
    for &(h, c) in &[(32usize, 16usize), (16, 32), (8, 64)] {
        let n = 128;
        let shape = [n, h, h, c];
        let s = BnShape::nhwc(n, h, h, c);
        let len = s.len();
        let b = 4.0 * len as f64;
        println!("[{n}, {h}, {h}, {c}] ({len} elements)");
        let x = g.upload(
            &(0..len)
                .map(|i| ((i * 7919) % 1000) as f32 * 1e-3)
                .collect::<Vec<_>>(),
            &shape,
        );
        let (y, y2, sc) = (g.zeros(&shape), g.zeros(&shape), g.zeros(&shape));
        let vc = || g.upload(&vec![1.0; c], &[c]);
        let (gm, bt, rm, rv, sm, si, dt, dg, db, ddt) =
            (vc(), vc(), vc(), vc(), vc(), vc(), vc(), vc(), vc(), vc());
        let op = norm::batchnorm_train_forward(
            g,
            &s,
            &x,
            &gm,
            &bt,
            &rm,
            &rv,
            &y,
            &sm,
            &si,
            Epilogue::Relu,
        )
        .unwrap();
        time("bn train fwd + relu", &op, 3.0 * b);
        let op = norm::batchnorm_train_forward(
            g,
            &s,
            &x,
            &gm,
            &bt,
            &rm,
            &rv,
            &y,
            &sm,
            &si,
            Epilogue::ResidualRelu {
                dt: &dt,
                shortcut: &sc,
            },
        )
        .unwrap();
        time("bn train fwd residual tail", &op, 4.0 * b);
        let op = norm::batchnorm_infer_forward(g, &s, &x, &gm, &bt, &rm, &rv, &y, Epilogue::Relu)
            .unwrap();
        time("bn infer fwd + relu", &op, 2.0 * b);
        let op = norm::batchnorm_backward(
            g,
            &s,
            &x,
            &x,
            &gm,
            &bt,
            &sm,
            &si,
            &y2,
            &dg,
            &db,
            BnGrad::Relu { y: &y },
        )
        .unwrap();
        time("bn bwd + relu mask", &op, 7.0 * b);
        let op = norm::batchnorm_backward(
            g,
            &s,
            &x,
            &x,
            &gm,
            &bt,
            &sm,
            &si,
            &y2,
            &dg,
            &db,
            BnGrad::ResidualRelu {
                y: &y,
                dt: &dt,
                ddt: &ddt,
                dshortcut: &sc,
            },
        )
        .unwrap();
        time("bn bwd residual tail", &op, 8.0 * b);
        time("relu fwd", &ew::relu_forward(g, &x, &y).unwrap(), 2.0 * b);
        time(
            "relu bwd",
            &ew::relu_backward(g, &x, &y, &y2).unwrap(),
            3.0 * b,
        );
        time(
            "add_inplace",
            &ew::add_inplace(g, &y2, &x).unwrap(),
            3.0 * b,
        );
        time(
            "step_scale bwd (dF + dΔt)",
            &ew::step_scale_backward(g, &x, &y, &dt, &y2, &ddt).unwrap(),
            3.0 * b,
        );
        let out_c = g.zeros(&[c]);
        time(
            "column_sum a·b",
            &reduce::column_sum(g, &x, Some(&y), s.rows, c, &out_c, 1.0, false).unwrap(),
            2.0 * b,
        );
    }
    // The ImageNet ResNets' stem max pool, batch 8: [8, 112, 112, 64] -> [8, 56, 56, 64].
    let (xs, ys) = ([8, 112, 112, 64], [8, 56, 56, 64]);
    let (lx, ly) = (4.0 * numel(xs) as f64, 4.0 * numel(ys) as f64);
    println!("max pool k3 s2 p1 {xs:?} -> {ys:?}");
    let x = g.upload(
        &(0..numel(xs))
            .map(|i| ((i * 7919) % 1000) as f32 * 1e-3)
            .collect::<Vec<_>>(),
        &xs,
    );
    let (y, arg, dx) = (g.zeros(&ys), g.zeros(&ys), g.zeros(&xs));
    let pl = pool::Pool2d::new(3, 2, 1);
    let op = pool::maxpool_forward(g, &x, &y, &arg, pl).unwrap();
    time("maxpool fwd", &op, lx + 2.0 * ly);
    let op = pool::maxpool_backward(g, &y, &arg, &dx, pl, false).unwrap();
    time("maxpool bwd", &op, lx + 2.0 * ly);
    let op = pool::maxpool_backward(g, &y, &arg, &dx, pl, true).unwrap();
    time("maxpool bwd accumulate", &op, 2.0 * lx + 2.0 * ly);
}
