//! The GPU runtime itself: device, upload/download, a trivial kernel, the pool.

use tsc_trainer::gpu::{grid_1d, BufferPool, Gpu, Kernel, Slot};

const SAXPY: &str = r#"
struct P { n: u32, a: f32 }
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<uniform> p: P;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let i = g.x + g.y * nw.x * 64u;
    if (i < p.n) { y[i] = p.a * x[i] + y[i]; }
}
"#;

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
