//! `firmware-model`: host-side files for the firmware demo (see `docs/FIRMWARE.md`).
//!
//! ```text
//! firmware-model images MODEL OUT_IMAGES [--count N] [--digits FILE] [--cifar FILE] [--random SEED]
//! firmware-model placeholder OUT_MODEL OUT_IMAGES [--count N] [--digits FILE] [--seed S]
//! ```
//! - `images`: writes the test-image file (format: `firmware-demo/src/images.rs`) for any
//!   model, real images chosen by the model's input shape: 8x8x1 → the last `N` records of
//!   the scikit-learn digits set (`data/digits/digits.bin`); 32x32x3 → the first `N` records
//!   of a CIFAR-10 binary batch (`--cifar test_batch.bin`). Any other shape needs
//!   `--random SEED` (seeded random pixels, labels `i mod classes`; not real images).
//! - `placeholder`: a random-weight TSC-ResNet for the digits set (ResNet-8, w0 = 16, LSTM
//!   step controller, option-A shortcuts, input 8x8x1 normalised with the digits set's
//!   mean/std, class names "0".."9"), folded with `tsc_core::fold`, plus its images. It
//!   stands in for the quickstart's trained model.

#[path = "../../src/images.rs"]
mod images;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use tsc_core::{format::write_model, testutil, Arch, Model, ModelKind, ShortcutKind, StepMode};

const DIGITS_RECORD: usize = 65;
const CIFAR_RECORD: usize = 1 + 3072;

fn default_digits() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/digits/digits.bin")
}

struct Opts {
    pos: Vec<String>,
    count: usize,
    digits: PathBuf,
    cifar: Option<PathBuf>,
    random: Option<u64>,
    seed: u64,
}

fn parse_args() -> Result<(String, Opts), String> {
    let mut args = std::env::args().skip(1);
    let cmd = args
        .next()
        .ok_or("missing command (images or placeholder)")?;
    let mut o = Opts {
        pos: Vec::new(),
        count: 10,
        digits: default_digits(),
        cifar: None,
        random: None,
        seed: 1,
    };
    while let Some(a) = args.next() {
        let mut val = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        let num = |name: &str, v: String| {
            v.parse::<u64>()
                .map_err(|_| format!("{name}: not a number: {v}"))
        };
        match a.as_str() {
            "--count" => o.count = num("--count", val("--count")?)? as usize,
            "--digits" => o.digits = PathBuf::from(val("--digits")?),
            "--cifar" => o.cifar = Some(PathBuf::from(val("--cifar")?)),
            "--random" => o.random = Some(num("--random", val("--random")?)?),
            "--seed" => o.seed = num("--seed", val("--seed")?)?,
            s if s.starts_with("--") => return Err(format!("unknown option {s}")),
            _ => o.pos.push(a),
        }
    }
    if o.count == 0 {
        return Err("--count must be at least 1".into());
    }
    Ok((cmd, o))
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// `(label, pixels in [0, 1], HWC)` for `count` images fitting `arch`.
fn pick_images(arch: &Arch, o: &Opts) -> Result<Vec<(u32, Vec<f32>)>, String> {
    let inp = arch.input;
    if let Some(seed) = o.random {
        let mut rng = testutil::Rng::new(seed);
        return Ok((0..o.count)
            .map(|i| ((i % arch.classes) as u32, rng.vec(inp.len(), 0.0, 1.0)))
            .collect());
    }
    match (inp.h, inp.w, inp.c) {
        (8, 8, 1) => {
            let b = read(&o.digits)?;
            if b.is_empty() || b.len() % DIGITS_RECORD != 0 {
                return Err(format!(
                    "{}: not a digits.bin (65-byte records)",
                    o.digits.display()
                ));
            }
            let n = b.len() / DIGITS_RECORD;
            let count = o.count.min(n);
            Ok(b.chunks_exact(DIGITS_RECORD)
                .skip(n - count)
                .map(|r| {
                    (
                        r[0] as u32,
                        r[1..].iter().map(|&v| v as f32 / 16.0).collect(),
                    )
                })
                .collect())
        }
        (32, 32, 3) => {
            let path = o.cifar.as_ref().ok_or(
                "a 32x32x3 model needs --cifar FILE (a CIFAR-10 binary batch, e.g. test_batch.bin) \
                 or --random SEED",
            )?;
            let b = read(path)?;
            if b.is_empty() || b.len() % CIFAR_RECORD != 0 {
                return Err(format!(
                    "{}: not a CIFAR-10 binary batch ({CIFAR_RECORD}-byte records)",
                    path.display()
                ));
            }
            Ok(b.chunks_exact(CIFAR_RECORD)
                .take(o.count)
                .map(|r| {
                    // CHW planes (R, G, B) → HWC.
                    let px = (0..1024)
                        .flat_map(|p| (0..3).map(move |c| r[1 + c * 1024 + p] as f32 / 255.0))
                        .collect();
                    (r[0] as u32, px)
                })
                .collect())
        }
        (h, w, c) => Err(format!(
            "no real image source for a {h}x{w}x{c} input (digits: 8x8x1, CIFAR-10: 32x32x3); \
             pass --random SEED for seeded random images"
        )),
    }
}

fn encode_images(arch: &Arch, imgs: &[(u32, Vec<f32>)]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&images::MAGIC);
    for v in [
        images::VERSION,
        imgs.len() as u32,
        arch.input.h as u32,
        arch.input.w as u32,
        arch.input.c as u32,
    ] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    for (label, px) in imgs {
        out.extend_from_slice(&label.to_le_bytes());
        for p in px {
            out.extend_from_slice(&p.to_le_bytes());
        }
    }
    images::Images::parse(&out).expect("encoded images must parse");
    out
}

fn write(path: &str, bytes: &[u8]) -> Result<(), String> {
    std::fs::write(path, bytes).map_err(|e| format!("{path}: {e}"))?;
    eprintln!("wrote {path} ({} bytes)", bytes.len());
    Ok(())
}

fn cmd_images(o: &Opts) -> Result<(), String> {
    let [model, out] = o.pos.as_slice() else {
        return Err("usage: firmware-model images MODEL OUT_IMAGES [options]".into());
    };
    let bytes = read(Path::new(model))?;
    let m = Model::parse(&bytes).map_err(|e| format!("{model}: not a valid model: {e}"))?;
    let imgs = pick_images(m.arch(), o)?;
    write(out, &encode_images(m.arch(), &imgs))
}

/// The digits set's pixel mean and standard deviation (intensities `v / 16`).
fn digits_stats(path: &Path) -> Result<(f32, f32), String> {
    let b = read(path)?;
    let px: Vec<f64> = b
        .chunks_exact(DIGITS_RECORD)
        .flat_map(|r| r[1..].iter().map(|&v| v as f64 / 16.0))
        .collect();
    if px.is_empty() {
        return Err(format!("{}: empty", path.display()));
    }
    let mean = px.iter().sum::<f64>() / px.len() as f64;
    let var = px.iter().map(|p| (p - mean) * (p - mean)).sum::<f64>() / px.len() as f64;
    Ok((mean as f32, var.sqrt() as f32))
}

fn cmd_placeholder(o: &Opts) -> Result<(), String> {
    let [model_out, images_out] = o.pos.as_slice() else {
        return Err("usage: firmware-model placeholder OUT_MODEL OUT_IMAGES [options]".into());
    };
    let mut arch = Arch::cifar(1, 16, StepMode::Lstm, ShortcutKind::A);
    arch.input = tsc_core::Shape3::new(8, 8, 1);
    let (mean, std) = digits_stats(&o.digits)?;
    arch.mean = [mean, 0.0, 0.0, 0.0];
    arch.std = [std, 1.0, 1.0, 1.0];
    let tensors = testutil::random_tensors(&arch, ModelKind::Checkpoint, o.seed);
    let names: Vec<String> = (0..arch.classes).map(|i| i.to_string()).collect();
    let names: Vec<&str> = names.iter().map(|s| s.as_str()).collect();
    let mut ck = Vec::new();
    write_model(
        &arch,
        ModelKind::Checkpoint,
        &names,
        tensors
            .iter()
            .map(|t| (t.name.as_str(), t.shape.as_slice(), t.data.as_slice())),
        &mut ck,
    )
    .map_err(|e| format!("encoding the checkpoint: {e}"))?;
    let ck = Model::parse(&ck).map_err(|e| format!("parsing the checkpoint: {e}"))?;
    let folded = tsc_core::fold::fold_to_vec(&ck).map_err(|e| format!("folding: {e}"))?;
    let m = Model::parse(&folded).map_err(|e| format!("parsing the folded model: {e}"))?;
    let imgs = pick_images(m.arch(), o)?;
    write(model_out, &folded)?;
    write(images_out, &encode_images(m.arch(), &imgs))
}

fn main() -> ExitCode {
    let r = parse_args().and_then(|(cmd, o)| match cmd.as_str() {
        "images" => cmd_images(&o),
        "placeholder" => cmd_placeholder(&o),
        c => Err(format!("unknown command {c} (images or placeholder)")),
    });
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("firmware-model: {e}");
            ExitCode::FAILURE
        }
    }
}
