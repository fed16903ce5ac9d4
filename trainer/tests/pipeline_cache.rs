//! The on-disk pipeline cache (`tsc_trainer::gpu::compile::DiskPipelineCache`): a truncated,
//! corrupt or foreign cache file never crashes a run or changes its results, and is rewritten.
//! One test in its own binary: it points `XDG_CACHE_HOME` at a scratch folder.

use tsc_trainer::gpu::compile::{
    cache_key, pipeline_cache_dir, unwrap_cache_file, wrap_cache_file,
};
use tsc_trainer::gpu::{grid_1d, Gpu, Slot};

mod common;
use common::SAXPY;

/// Open a device, declare, prepare (which saves the cache) and run one kernel.
fn saxpy() -> Vec<f32> {
    let gpu = Gpu::new(None).expect("a GPU adapter (lavapipe in CI)");
    let n = 777;
    let x: Vec<f32> = (0..n).map(|i| i as f32 * 0.25 - 3.0).collect();
    let y: Vec<f32> = (0..n).map(|i| 1.0 - i as f32).collect();
    let (tx, ty) = (gpu.upload(&x, &[n]), gpu.upload(&y, &[n]));
    let k = gpu
        .kernel("test/saxpy", || {
            (
                SAXPY.to_string(),
                "main",
                vec![Slot::Read, Slot::ReadWrite, Slot::Uniform],
            )
        })
        .unwrap();
    gpu.prepare_with(false).unwrap();
    let params = gpu.uniform(&[n as u32, 1.5f32.to_bits(), 0, 0]);
    let bg = k.bind(&gpu, &[&tx.buf, &ty.buf, &params]).unwrap();
    let mut rec = gpu.recorder();
    rec.dispatch(&k, &bg, grid_1d(n, 64));
    rec.submit();
    let out = gpu.download(&ty).unwrap();
    for i in 0..n {
        assert_eq!(out[i], 1.5 * x[i] + y[i], "element {i}");
    }
    out
}

#[test]
fn corrupt_or_foreign_pipeline_cache_is_ignored_and_rewritten() {
    let home = std::env::temp_dir().join(format!("tsc-pipeline-cache-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&home);
    std::fs::create_dir_all(&home).unwrap();
    // Before any device exists (the only test of this binary).
    std::env::set_var("XDG_CACHE_HOME", &home);
    std::env::remove_var(tsc_trainer::gpu::compile::PIPELINE_CACHE_ENV);
    let want = saxpy();
    let info = Gpu::new(None).unwrap().info.clone();
    let Some(key) = cache_key(&info) else {
        println!(
            "skipped: the {:?} backend has no pipeline cache",
            info.backend
        );
        return;
    };
    let dir = pipeline_cache_dir();
    let files: Vec<_> = std::fs::read_dir(&dir)
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    if files.is_empty() {
        println!(
            "skipped: adapter '{}' offers no PIPELINE_CACHE, so nothing was saved",
            info.name
        );
        return;
    }
    assert_eq!(files.len(), 1, "one cache file per adapter: {files:?}");
    let path = &files[0];
    let good = std::fs::read(path).unwrap();
    let blob = unwrap_cache_file(&good, &key)
        .expect("the saved file is valid")
        .to_vec();
    println!("{}: {} bytes of driver data", path.display(), blob.len());
    let mut flipped = good.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 0x55;
    let variants: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("truncated", good[..good.len() / 2].to_vec()),
        ("flipped byte", flipped),
        (
            "garbage",
            (0..4096u32).map(|i| (i * 31 % 256) as u8).collect(),
        ),
        (
            "foreign key",
            wrap_cache_file(&blob, "another adapter and driver"),
        ),
        (
            "driver garbage under a valid header",
            wrap_cache_file(&[0xAB; 512], &key),
        ),
    ];
    for (what, bytes) in variants {
        std::fs::write(path, &bytes).unwrap();
        assert_eq!(saxpy(), want, "{what}: results changed");
        // Refused (by the checks here, or by wgpu and the driver), so rewritten from the
        // driver's fresh cache.
        let now = std::fs::read(path).unwrap();
        assert!(
            unwrap_cache_file(&now, &key).is_ok(),
            "{what}: the cache file was not rewritten"
        );
        println!("{what}: ignored, results unchanged");
    }
    let _ = std::fs::remove_dir_all(&home);
}
