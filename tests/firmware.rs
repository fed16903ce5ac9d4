//! The firmware demo (`firmware-demo/`, issue 6) in QEMU against `tsc-core` on the host.
//!
//! Builds the firmware for `thumbv7em-none-eabihf` (its own cargo invocation, target dir
//! `target/firmware` so that it does not wait on this build's lock), runs it under
//! `qemu-system-arm` with a timeout, and checks every image's label, prediction and logits
//! (to the 6 printed decimals) against `tsc_core::infer` on the host for the same model and
//! images (`TSC_MODEL` / `TSC_IMAGES` as for the firmware build; default: the committed
//! placeholder). Also reports flash and RAM use from the ELF's section headers.
//!
//! Without `qemu-system-arm` or the Cortex-M target it prints why and passes, unless
//! `TSC_FIRMWARE_REQUIRE=1` (set by `scripts/firmware-test.sh`, which CI runs).

#[path = "../firmware-demo/src/images.rs"]
mod images;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tsc_core::{layers::argmax, Model};

const QEMU_TIMEOUT: Duration = Duration::from_secs(60);
const TARGET: &str = "thumbv7em-none-eabihf";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Why the test cannot run here, if it cannot.
fn missing_tools() -> Option<String> {
    if Command::new("qemu-system-arm")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| !s.success())
        .unwrap_or(true)
    {
        return Some("qemu-system-arm is not installed (scripts/setup.sh installs it)".into());
    }
    let sysroot = Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into()))
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    let has_target = sysroot
        .map(|s| Path::new(&s).join("lib/rustlib").join(TARGET).exists())
        .unwrap_or(false);
    if !has_target {
        return Some(format!(
            "the Rust target {TARGET} is not installed (rustup target add {TARGET})"
        ));
    }
    None
}

/// The same resolution as `firmware-demo/build.rs`.
fn model_and_images() -> (PathBuf, PathBuf) {
    let fw = repo().join("firmware-demo");
    let from_env = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(|v| fw.join(PathBuf::from(v)))
    };
    let model = from_env("TSC_MODEL").unwrap_or_else(|| fw.join("models/default.tscm"));
    let images = from_env("TSC_IMAGES").unwrap_or_else(|| {
        let s = model.to_string_lossy();
        PathBuf::from(match s.strip_suffix(".tscm") {
            Some(stem) => format!("{stem}-images.bin"),
            None => format!("{s}-images.bin"),
        })
    });
    (model, images)
}

/// Builds the firmware into `target/<dir>` with `env` (e.g. `TSC_MODEL`) set.
fn build_firmware(dir: &str, env: &[(&str, &Path)]) -> PathBuf {
    let target_dir = repo().join("target").join(dir);
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(repo().join("firmware-demo"))
        .args(["build", "--release", "--target", TARGET])
        .env("CARGO_TARGET_DIR", &target_dir);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("spawn cargo");
    assert!(
        out.status.success(),
        "building the firmware failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    target_dir
        .join(TARGET)
        .join("release")
        .join("firmware-demo")
}

/// Runs the ELF in QEMU; returns (exit success, stdout).
fn run_qemu(elf: &Path) -> (bool, String) {
    let mut child = Command::new("qemu-system-arm")
        .args([
            "-cpu",
            "cortex-m4",
            "-machine",
            "mps2-an386",
            "-nographic",
            "-semihosting-config",
            "enable=on,target=native",
            "-kernel",
        ])
        .arg(elf)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn qemu-system-arm");
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait for qemu") {
            break st;
        }
        if start.elapsed() > QEMU_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the firmware did not finish within {QEMU_TIMEOUT:?} in QEMU; output so far:\n{}",
                reader.join().unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    let _ = child.stderr.take().unwrap().read_to_string(&mut err);
    let out = reader.join().unwrap();
    if !err.trim().is_empty() {
        eprintln!("qemu stderr:\n{err}");
    }
    (status.success(), out)
}

struct FwImage {
    index: usize,
    label: usize,
    pred: usize,
    logits: Vec<String>,
}

/// The per-image lines: `image I: label L "name", predicted P "name" (...)` followed by
/// `  logits: v0 v1 ...`.
fn parse_output(out: &str) -> Vec<FwImage> {
    let mut res = Vec::new();
    let mut lines = out.lines();
    while let Some(line) = lines.next() {
        let Some(rest) = line.strip_prefix("image ") else {
            continue;
        };
        assert!(!rest.contains("error"), "firmware reported: {line}");
        let tokens: Vec<&str> = rest.split_whitespace().collect();
        let after = |key: &str| -> usize {
            let i = tokens
                .iter()
                .position(|t| *t == key)
                .unwrap_or_else(|| panic!("no `{key}` in {line:?}"));
            tokens[i + 1].trim_end_matches(',').parse().unwrap()
        };
        let index = tokens[0].trim_end_matches(':').parse().unwrap();
        let (label, pred) = (after("label"), after("predicted"));
        let l = lines.next().expect("logits line");
        let logits = l
            .trim()
            .strip_prefix("logits:")
            .unwrap_or_else(|| panic!("expected a logits line, got {l:?}"))
            .split_whitespace()
            .map(String::from)
            .collect();
        res.push(FwImage {
            index,
            label,
            pred,
            logits,
        });
    }
    res
}

/// (flash, RAM) bytes from an ELF32's section headers: flash = allocated sections with file
/// contents (code, rodata, the vector table, .data's load image); RAM = allocated sections at
/// RAM addresses (.data, .bss, .uninit), the stack not included.
fn elf_sizes(elf: &[u8]) -> (usize, usize) {
    let u16_at = |o: usize| u16::from_le_bytes([elf[o], elf[o + 1]]) as usize;
    let u32_at = |o: usize| u32::from_le_bytes(elf[o..o + 4].try_into().unwrap()) as usize;
    assert_eq!(&elf[..5], b"\x7fELF\x01", "not an ELF32");
    let (shoff, shentsize, shnum) = (u32_at(0x20), u16_at(0x2E), u16_at(0x30));
    let (mut flash, mut ram) = (0, 0);
    for i in 0..shnum {
        let h = shoff + i * shentsize;
        let (ty, flags, addr, size) =
            (u32_at(h + 4), u32_at(h + 8), u32_at(h + 12), u32_at(h + 20));
        const SHF_ALLOC: usize = 2;
        const SHT_NOBITS: usize = 8;
        if flags & SHF_ALLOC == 0 {
            continue;
        }
        if ty != SHT_NOBITS {
            flash += size;
        }
        if addr >= 0x2000_0000 {
            ram += size;
        }
    }
    (flash, ram)
}

/// Skips (or, with `TSC_FIRMWARE_REQUIRE=1`, fails) when QEMU or the target is missing.
fn tools_or_skip(test: &str) -> bool {
    if let Some(why) = missing_tools() {
        if std::env::var("TSC_FIRMWARE_REQUIRE").as_deref() == Ok("1") {
            panic!("TSC_FIRMWARE_REQUIRE=1 but {why}");
        }
        eprintln!("SKIPPED {test}: {why}");
        return false;
    }
    true
}

#[test]
fn firmware_in_qemu_matches_host() {
    if !tools_or_skip("firmware_in_qemu_matches_host") {
        return;
    }
    let (model_path, images_path) = model_and_images();
    let elf = build_firmware("firmware", &[]);
    compare_with_host(&elf, &model_path, &images_path);
}

/// An SE-ResNeXt (bottleneck blocks 1×1–3×3–1×1 with the 3×3 in 4 groups, w̄ = [conv1,
/// conv3], a squeeze-excitation unit on every block whose fc1 folding rescaled by 1/Δt),
/// briefly trained on the shipped digits and folded, runs in QEMU with the same results as
/// core on the host. One firmware build covers bottlenecks, groups and SE.
#[test]
fn se_resnext_firmware_in_qemu_matches_host() {
    if !tools_or_skip("se_resnext_firmware_in_qemu_matches_host") {
        return;
    }
    let dir = tsc_tests::scratch_dir("firmware_bottleneck");
    let gpu = tsc_trainer::gpu::Gpu::new(None).unwrap();
    let mut cfg = tsc_tests::tiny_digits("lstm");
    cfg.arch = "cifar-resnext".into();
    cfg.depth = 11;
    cfg.groups = 4;
    cfg.se_reduction = 4;
    cfg.epochs = 1;
    tsc_tests::train_into(&gpu, &cfg, &dir, false, None);
    let ck_bytes = std::fs::read(dir.join("checkpoint.tscm")).unwrap();
    let ck = Model::parse(&ck_bytes).unwrap();
    assert!(matches!(
        ck.arch().block,
        tsc_core::BlockKind::Bottleneck { .. }
    ));
    assert_eq!((ck.arch().groups, ck.arch().se_reduction), (4, 4));
    let model_path = dir.join("bottleneck.tscm");
    std::fs::write(&model_path, tsc_core::fold::fold_to_vec(&ck).unwrap()).unwrap();
    // The last 8 held-out digits, in the firmware's image format (images.rs).
    let (_, test) = tsc_trainer::data::load(&cfg.dataset_spec().unwrap()).unwrap();
    let a = ck.arch();
    let count = 8usize;
    let mut img = Vec::new();
    img.extend_from_slice(&images::MAGIC);
    for v in [
        images::VERSION,
        count as u32,
        a.input.h as u32,
        a.input.w as u32,
        a.input.c as u32,
    ] {
        img.extend_from_slice(&v.to_le_bytes());
    }
    for i in test.len() - count..test.len() {
        img.extend_from_slice(&test.labels[i].to_le_bytes());
        for &p in test.image(i) {
            img.extend_from_slice(&(p as f32 * test.scale).to_le_bytes());
        }
    }
    let images_path = dir.join("bottleneck-images.bin");
    std::fs::write(&images_path, img).unwrap();
    let elf = build_firmware(
        "firmware-bottleneck",
        &[("TSC_MODEL", &model_path), ("TSC_IMAGES", &images_path)],
    );
    compare_with_host(&elf, &model_path, &images_path);
}

/// Runs `elf` in QEMU and checks every image against `tsc_core::infer` on the host.
fn compare_with_host(elf: &Path, model_path: &Path, images_path: &Path) {
    let (flash, ram) = elf_sizes(&std::fs::read(elf).unwrap());
    let (ok, out) = run_qemu(elf);
    println!("--- firmware output (QEMU mps2-an386) ---\n{out}---");
    println!("firmware ELF: flash {flash} bytes, RAM (static) {ram} bytes");
    assert!(ok, "the firmware exited with failure");
    assert!(out.lines().any(|l| l == "done"), "no `done` line");
    assert!(out.contains("FPU: enabled"), "FPU not enabled at reset");

    let model_bytes = std::fs::read(model_path).unwrap();
    let model = Model::parse(&model_bytes).unwrap();
    let image_bytes = std::fs::read(images_path).unwrap();
    let imgs = images::Images::parse(&image_bytes).unwrap();
    let fw = parse_output(&out);
    assert_eq!(fw.len(), imgs.count, "firmware printed {} images", fw.len());

    let mut scratch = vec![0.0f32; model.scratch_len()];
    let mut input = vec![0.0f32; imgs.pixel_count()];
    let mut logits = vec![0.0f32; model.arch().classes];
    let (mut exact, mut total, mut correct) = (0usize, 0usize, 0usize);
    for (i, f) in fw.iter().enumerate() {
        assert_eq!(f.index, i);
        imgs.read(i, &mut input);
        tsc_core::infer(&model, &input, &mut scratch, &mut logits).unwrap();
        let pred = argmax(&logits).unwrap();
        assert_eq!(f.label, imgs.label(i) as usize, "image {i}: label");
        assert_eq!(
            f.pred, pred,
            "image {i}: firmware predicted {}, host {pred}",
            f.pred
        );
        correct += (pred == f.label) as usize;
        assert_eq!(f.logits.len(), logits.len(), "image {i}: number of logits");
        for (c, (fs, &h)) in f.logits.iter().zip(&logits).enumerate() {
            let hs = format!("{h:.6}");
            total += 1;
            if *fs == hs {
                exact += 1;
                continue;
            }
            // Rounding at the 6th decimal may differ by one unit if the two sides differ in
            // the last bits; more than that is a real difference.
            let fv: f64 = fs.parse().unwrap();
            assert!(
                (fv - h as f64).abs() <= 1.5e-6,
                "image {i} class {c}: firmware logit {fs}, host {hs}"
            );
        }
    }
    println!(
        "host comparison: {} images, predictions identical, {exact}/{total} logits identical \
         to 6 decimals (the rest within 1e-6); accuracy {correct}/{}",
        fw.len(),
        fw.len()
    );
}
