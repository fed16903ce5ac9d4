//! The GPU runtime itself: device, upload/download, a trivial kernel, the pool.

use tsc_trainer::gpu::{grid_1d, BufferPool, Gpu, Kernel, Slot};

mod common;
use common::SAXPY;

#[test]
fn saxpy_roundtrip_and_pool() {
    let gpu = Gpu::new(None).expect("a GPU adapter (lavapipe in CI)");
    println!("adapter: {}", gpu.describe());
    let n = 1000;
    let x: Vec<f32> = (0..n).map(|i| i as f32 * 0.5).collect();
    let y: Vec<f32> = (0..n).map(|i| 1.0 - i as f32).collect();
    let tx = gpu.upload(&x, &[n]);
    let ty = gpu.upload(&y, &[n]);
    let slots = [Slot::Read, Slot::ReadWrite, Slot::Uniform];
    let k = Kernel::new(&gpu, "saxpy", SAXPY, "main", &slots).unwrap();
    let params = gpu.uniform(&[n as u32, 2.0f32.to_bits(), 0, 0]);
    let bg = k.bind(&gpu, &[&tx.buf, &ty.buf, &params]).unwrap();
    let mut rec = gpu.recorder();
    rec.dispatch(&k, &bg, grid_1d(n, 64));
    rec.submit();
    let out = gpu.download(&ty).unwrap();
    for i in 0..n {
        assert_eq!(out[i], 2.0 * x[i] + y[i], "element {i}");
    }
    assert!(
        k.bind(&gpu, &[&tx.buf]).is_err(),
        "wrong binding count must be an error"
    );

    let mut pool = BufferPool::default();
    for _ in 0..3 {
        let a = pool.acquire(&gpu, &[7, 9]);
        let b = pool.acquire(&gpu, &[3]);
        pool.release(a);
        pool.release(b);
    }
    assert_eq!(pool.created, 2, "the pool must reuse released buffers");
}

#[test]
fn grid_folds_large_dispatches() {
    assert_eq!(grid_1d(10, 64), [1, 1, 1]);
    let g = grid_1d(64 * 70000, 64);
    assert!(g[0] <= 65535 && g[1] > 1);
    assert!((g[0] as u64) * (g[1] as u64) * 64 >= 64 * 70000);
}

#[test]
fn bad_shader_is_an_error_not_a_panic() {
    let gpu = Gpu::new(None).unwrap();
    let r = Kernel::new(&gpu, "broken", "fn main( {", "main", &[]);
    assert!(r.is_err());
    let r = Kernel::new(&gpu, "template", "const T: u32 = {{TM}};", "main", &[]);
    assert!(r.err().unwrap().to_string().contains("TM"));
}

/// Equal kernels are one pipeline: graphs of other batch sizes (a run's evaluation graphs, the
/// partial last batch) declare nothing new, the training graph's forward kernels serve the
/// evaluation graphs, and no two declared kernels hold the same WGSL under different keys.
/// (Declaring compiles nothing, so this test costs no JIT.)
#[test]
fn graphs_share_their_kernels() {
    use tsc_core::arch::Shape3;
    use tsc_trainer::config::TrainConfig;
    use tsc_trainer::model::{arch_for, HostModel};
    use tsc_trainer::net::{GpuModel, Graph, Mode};
    let gpu = Gpu::new(None).unwrap();
    gpu.set_expected_images(10_000);
    let cfg = TrainConfig {
        depth: 8,
        width: 0.5,
        steps: "lstm".into(),
        ..Default::default()
    };
    let arch = arch_for(&cfg, Shape3::new(16, 16, 3), 10, &[0.0; 3], &[1.0; 3]).unwrap();
    let host = HostModel::init(arch, vec![], 5).unwrap();
    let m = GpuModel::new(&gpu, &host, 0.9, 0.0).unwrap();
    let names = |g: &Gpu| -> Vec<String> { g.kernels().iter().map(|k| k.name.clone()).collect() };
    let _train = Graph::new(&gpu, &m, 32, Mode::Train).unwrap();
    let after_train = names(&gpu);
    let _eval = Graph::new(&gpu, &m, 32, Mode::Eval).unwrap();
    let after_eval = names(&gpu);
    let new_for_eval: Vec<&String> = after_eval
        .iter()
        .filter(|n| !after_train.contains(n))
        .collect();
    println!(
        "{} kernels for training; new for evaluation: {new_for_eval:?}",
        after_train.len()
    );
    assert!(
        new_for_eval.iter().all(|n| n.starts_with("batchnorm/")),
        "evaluation should only add BatchNorm's inference form: {new_for_eval:?}"
    );
    for batch in [7, 1, 32] {
        let _g = Graph::new(&gpu, &m, batch, Mode::Eval).unwrap();
        let _t = Graph::new(&gpu, &m, batch, Mode::Train).unwrap();
        assert_eq!(
            names(&gpu),
            after_eval,
            "batch {batch} declared new kernels"
        );
    }
    let ks = gpu.kernels();
    for (i, a) in ks.iter().enumerate() {
        for b in &ks[i + 1..] {
            assert!(
                a.source != b.source || a.entry != b.entry,
                "{} and {} are the same kernel under two keys",
                a.name,
                b.name
            );
        }
    }
    assert!(
        ks.iter().all(|k| !k.is_compiled()),
        "declaring compiled something"
    );
}
