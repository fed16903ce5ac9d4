//! Replays the committed fuzz corpus (`trainer/fuzz/corpus/<target>/*`) through the fuzz
//! targets' entry functions ([`tsc_trainer::fuzzing`]) as an ordinary test, without a
//! sanitizer build: every file and a few hundred deterministic mutants of it
//! ([`tsc_core::fuzzing::mutations`]) through its target's entry, and every file of every
//! target through every entry. Any panic is a failure. Files named `seed-*` must still be
//! accepted by the parser they seed, so the corpus keeps reaching past the first checks.
//!
//! The seeds are written by the ignored test `write_seed_corpus`:
//! `cargo test --release -p tsc-trainer --test fuzz_corpus -- --ignored write_seed_corpus`

use std::io::Write;
use std::path::{Path, PathBuf};

use tsc_core::arch::{Arch, ShortcutKind, StageSpec, StepMode};
use tsc_core::fuzzing::mutations;
use tsc_trainer::config::TrainConfig;
use tsc_trainer::data::{cifar, mnist};
use tsc_trainer::fuzzing;
use tsc_trainer::model::{HostModel, HostTensor};

/// Mutants per corpus file.
const MUTANTS: usize = 300;
/// The committed corpus must stay small (CI time, repository size): minimise it
/// (`cargo fuzz cmin`) before committing what a fuzz run added.
const MAX_CORPUS_BYTES: usize = 512 * 1024;

type Entry = fn(&[u8]);
/// Whether the parser a target seeds accepts an input.
type Accepts = fn(&[u8]) -> bool;

/// Every target: its name (= `trainer/fuzz/fuzz_targets/<name>.rs`), its entry, and whether
/// the parser it exercises accepts an input (for the `seed-*` check).
const TARGETS: &[(&str, Entry, Accepts)] = &[
    ("cifar10_records", fuzzing::cifar10_records, |b| {
        cifar::parse_cifar10(b, Path::new("x")).is_ok()
    }),
    ("cifar100_records", fuzzing::cifar100_records, |b| {
        cifar::parse_cifar100(b, Path::new("x")).is_ok()
    }),
    ("mnist_idx", fuzzing::mnist_idx, idx_ok),
    ("mnist_gz", fuzzing::mnist_gz, |b| {
        b.starts_with(&[0x1f, 0x8b])
            && mnist::decode_maybe_gz(b.to_vec(), Path::new("x"), 1 << 20).is_ok_and(|r| idx_ok(&r))
    }),
    ("image_decode", fuzzing::image_decode, |b| {
        image::load_from_memory(b).is_ok()
    }),
    ("config_toml", fuzzing::config_toml, |b| {
        std::str::from_utf8(b)
            .ok()
            .and_then(|t| TrainConfig::from_toml(t).ok())
            .is_some_and(|c| c.validate().is_ok())
    }),
    ("checkpoint_decode", fuzzing::checkpoint_decode, |b| {
        HostModel::decode(b).is_ok()
    }),
];

fn idx_ok(b: &[u8]) -> bool {
    let p = Path::new("x");
    mnist::parse_images(b, p).is_ok() || mnist::parse_labels(b, p).is_ok() || {
        // An image file followed by its label file.
        b.len() >= 16 && {
            let be = |at: usize| u32::from_be_bytes(b[at..at + 4].try_into().unwrap()) as usize;
            let need = be(4)
                .checked_mul(be(8))
                .and_then(|v| v.checked_mul(be(12)))
                .and_then(|v| v.checked_add(16))
                .unwrap_or(usize::MAX);
            need <= b.len() && mnist::parse_files(&b[..need], p, &b[need..], p).is_ok()
        }
    }
}

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target)
}

/// `(file name, bytes)` of one target's corpus, sorted by name.
fn files(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = corpus_dir(target);
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e} (the corpus is committed)", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            let b = std::fs::read(&p).unwrap();
            (p.file_name().unwrap().to_string_lossy().into_owned(), b)
        })
        .collect();
    v.sort();
    v
}

fn run(entry: Entry, target: &str, input: &[u8], what: &str) {
    if std::panic::catch_unwind(|| entry(input)).is_err() {
        let out = std::env::temp_dir().join(format!("tsc-fuzz-crash-{target}.bin"));
        std::fs::write(&out, input).unwrap();
        panic!(
            "{target} panicked on {what} (input saved as {})",
            out.display()
        );
    }
}

#[test]
fn corpus_and_mutants_never_panic() {
    let mut total = 0;
    for (i, &(target, entry, _)) in TARGETS.iter().enumerate() {
        let fs = files(target);
        assert!(!fs.is_empty(), "{target}: empty corpus");
        for (k, (name, b)) in fs.iter().enumerate() {
            total += b.len();
            run(entry, target, b, name);
            for (j, m) in mutations(b, MUTANTS, (i * 1000 + k) as u64).enumerate() {
                run(entry, target, &m, &format!("mutant {j} of {name}"));
            }
        }
    }
    assert!(
        total <= MAX_CORPUS_BYTES,
        "the committed trainer corpus is {total} bytes (at most {MAX_CORPUS_BYTES}): minimise it"
    );
}

#[test]
fn every_file_through_every_entry() {
    for &(source, _, _) in TARGETS {
        for (name, b) in files(source) {
            for &(target, entry, _) in TARGETS {
                run(entry, target, &b, &format!("{source}/{name}"));
            }
        }
    }
}

#[test]
fn seeds_are_accepted() {
    for &(target, _, accepts) in TARGETS {
        let fs = files(target);
        let seeds: Vec<_> = fs.iter().filter(|(n, _)| n.starts_with("seed-")).collect();
        assert!(!seeds.is_empty(), "{target}: no seed-* files");
        for (name, b) in seeds {
            assert!(accepts(b), "{target}/{name} is no longer accepted");
        }
    }
}

// ---------------------------------------------------------------------------------------
// Seed corpus generator

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = corpus_dir(target);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), bytes).unwrap();
}

/// Deterministic pseudo-random bytes.
fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 24) as u8
        })
        .collect()
}

fn cifar_records(labels: &[&[u8]], seed: u64) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, l) in labels.iter().enumerate() {
        out.extend_from_slice(l);
        out.extend_from_slice(&noise(cifar::PIXELS, seed + i as u64));
    }
    out
}

fn idx_images(n: u32, rows: u32, cols: u32, seed: u64) -> Vec<u8> {
    let mut b = Vec::new();
    for v in [mnist::IMAGES_MAGIC, n, rows, cols] {
        b.extend_from_slice(&v.to_be_bytes());
    }
    b.extend_from_slice(&noise((n * rows * cols) as usize, seed));
    b
}

fn idx_labels(labels: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    for v in [mnist::LABELS_MAGIC, labels.len() as u32] {
        b.extend_from_slice(&v.to_be_bytes());
    }
    b.extend_from_slice(labels);
    b
}

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

fn encode_image(img: image::DynamicImage, format: image::ImageFormat) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, format).unwrap();
    out.into_inner()
}

fn tiny_arch(step: StepMode, sc: ShortcutKind) -> Arch {
    let mut a = Arch::cifar(1, 2, step, sc);
    a.input.h = 5;
    a.input.w = 5;
    a.classes = 2;
    a.stages[2] = StageSpec {
        blocks: 1,
        width: 4,
        stride: 1,
    };
    a
}

/// Writes the seed corpus: `seed-*` valid inputs, `near-*` inputs one defect away.
#[test]
#[ignore = "writes trainer/fuzz/corpus; run with --ignored to regenerate the seeds"]
fn write_seed_corpus() {
    // CIFAR-10: 3073-byte records (label < 10, 3 planes of 32x32).
    let t = "cifar10_records";
    write(t, "seed-two-records.bin", &cifar_records(&[&[3], &[9]], 1));
    write(t, "seed-one-record.bin", &cifar_records(&[&[0]], 2));
    write(t, "near-label-10.bin", &cifar_records(&[&[1], &[10]], 3));
    let r = cifar_records(&[&[4]], 4);
    write(t, "near-truncated.bin", &r[..r.len() - 1]);
    // CIFAR-100: coarse < 20, fine < 100.
    let t = "cifar100_records";
    write(
        t,
        "seed-two-records.bin",
        &cifar_records(&[&[19, 99], &[0, 7]], 5),
    );
    write(t, "near-coarse-20.bin", &cifar_records(&[&[20, 1]], 6));
    write(t, "near-fine-100.bin", &cifar_records(&[&[2, 100]], 7));
    // MNIST IDX: 3 images of 4x4 and their labels.
    let (im, lb) = (idx_images(3, 4, 4, 8), idx_labels(&[0, 9, 5]));
    let pair = [im.clone(), lb.clone()].concat();
    let near_label = [im.clone(), idx_labels(&[0, 10, 5])].concat();
    let near_count = [im.clone(), idx_labels(&[0, 9])].concat();
    let mut near_dims = im.clone();
    near_dims[8..12].copy_from_slice(&5u32.to_be_bytes());
    for (t, f) in [
        ("mnist_idx", (|b: &[u8]| b.to_vec()) as fn(&[u8]) -> Vec<u8>),
        ("mnist_gz", gzip),
    ] {
        write(t, "seed-images.idx", &f(&im));
        write(t, "seed-labels.idx", &f(&lb));
        write(t, "seed-images-then-labels.idx", &f(&pair));
        write(t, "seed-one-image-28x28.idx", &f(&idx_images(1, 28, 28, 9)));
        write(t, "near-label-10.idx", &f(&near_label));
        write(t, "near-count-mismatch.idx", &f(&near_count));
        write(t, "near-dims.idx", &f(&near_dims));
    }
    let mut g = gzip(&pair);
    let n = g.len();
    g[n - 5] ^= 1; // the gzip trailer's CRC
    write("mnist_gz", "near-bad-gzip-crc.gz", &g);
    // Images: 4x4 PNG (RGB, gray, RGBA, 16-bit) and JPEG (RGB, gray); a 1x9 strip.
    let t = "image_decode";
    let rgb = image::RgbImage::from_fn(4, 4, |x, y| {
        image::Rgb([(x * 60) as u8, (y * 60) as u8, 128])
    });
    let img = image::DynamicImage::ImageRgb8(rgb);
    use image::ImageFormat::{Jpeg, Png};
    write(t, "seed-rgb-4x4.png", &encode_image(img.clone(), Png));
    write(t, "seed-gray-4x4.png", &encode_image(img.grayscale(), Png));
    write(
        t,
        "seed-rgba-4x4.png",
        &encode_image(image::DynamicImage::ImageRgba8(img.to_rgba8()), Png),
    );
    write(
        t,
        "seed-rgb16-4x4.png",
        &encode_image(image::DynamicImage::ImageRgb16(img.to_rgb16()), Png),
    );
    write(t, "seed-rgb-4x4.jpg", &encode_image(img.clone(), Jpeg));
    write(t, "seed-gray-4x4.jpg", &encode_image(img.grayscale(), Jpeg));
    let strip = image::DynamicImage::ImageLuma8(image::GrayImage::from_fn(1, 9, |_, y| {
        image::Luma([(y * 28) as u8])
    }));
    write(t, "seed-strip-1x9.png", &encode_image(strip, Png));
    let png = encode_image(img, Png);
    write(t, "near-truncated.png", &png[..png.len() - 12]);
    // Configs: the default, an ImageNet family with overrides, a ResNeXt with SE; a typo.
    let t = "config_toml";
    write(
        t,
        "seed-default.toml",
        TrainConfig::default().to_toml().as_bytes(),
    );
    let c = TrainConfig {
        dataset: "folder".into(),
        data: "images/".into(),
        arch: "resnet18".into(),
        image_size: 64,
        steps: "fixed:0.5".into(),
        schedule: "cosine".into(),
        shortcut: "B".into(),
        augment: "off".into(),
        ..Default::default()
    };
    write(t, "seed-resnet18-folder.toml", c.to_toml().as_bytes());
    let c = TrainConfig {
        dataset: "cifar100".into(),
        arch: "cifar-resnext".into(),
        depth: 29,
        width: 0.5,
        groups: 4,
        base_width: 8,
        se_reduction: 4,
        steps: "2fc".into(),
        reduction: 2,
        milestones: vec![0.3, 0.6, 0.9],
        cifar_batches: vec![1, 3],
        stride_on_3x3: true,
        ..Default::default()
    };
    write(t, "seed-resnext-se.toml", c.to_toml().as_bytes());
    write(
        t,
        "seed-minimal.toml",
        b"dataset = \"mnist\"\nsteps = \"indp\"\ndepth = 8\n",
    );
    write(t, "near-typo.toml", b"dataset = \"mnist\"\ndepht = 8\n");
    write(t, "near-depth-21.toml", b"depth = 21\n");
    // Checkpoints: as `train` saves them (init, then meta.epoch and opt.* extras), another
    // step mode and shortcut; a folded model (refused by --resume).
    let t = "checkpoint_decode";
    let a = tiny_arch(StepMode::Lstm, ShortcutKind::A);
    let mut h = HostModel::init(a, vec!["zero".into(), "one".into()], 1).unwrap();
    let first = h.tensors[0].clone();
    h.extras.push(HostTensor {
        name: "meta.epoch".into(),
        shape: vec![1],
        data: vec![2.0],
    });
    h.extras.push(HostTensor {
        name: format!("opt.{}", first.name),
        data: vec![0.01; first.data.len()],
        ..first
    });
    let ck = h.encode().unwrap();
    write(t, "seed-lstm-extras.tscm", &ck);
    let a = tiny_arch(StepMode::TwoFc, ShortcutKind::B);
    let h2 = HostModel::init(a, vec![String::new(), "b".into()], 2).unwrap();
    write(t, "seed-2fc-B.tscm", &h2.encode().unwrap());
    let m = tsc_core::Model::parse(&ck).unwrap();
    write(
        t,
        "near-folded.tscm",
        &tsc_core::fold::fold_to_vec(&m).unwrap(),
    );
}
