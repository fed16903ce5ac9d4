//! Writes the seed corpus of the core fuzz targets: small valid model files (checkpoints of
//! every step mode and shortcut kind and their folded forms; bottleneck, grouped, SE,
//! pooled-stem, one-channel and version-1 files; `meta.*`/`opt.*` extras) and a few
//! near-valid ones (a bad CRC, a record cut short), into `<dir>/parse` and
//! `<dir>/parse_fixed` (the same seeds; the corpora grow apart when fuzzed).
//!
//! `cargo run -p tsc-core --features std --example write_seed_corpus -- core/fuzz/corpus`

use tsc_core::arch::{BlockKind, Pool2d, StemSpec};
use tsc_core::crc32::crc32;
use tsc_core::fold::fold_to_vec;
use tsc_core::format::{write_model, FIXED_HEADER_LEN, FIXED_HEADER_LEN_V1};
use tsc_core::testutil::{random_checkpoint, random_tensors};
use tsc_core::{Arch, Model, ModelKind, ShortcutKind, StageSpec, StepMode};

/// A CIFAR-style net shrunk to a 5×5 input, 2 classes, widths 2/4/4.
fn tiny(step: StepMode, sc: ShortcutKind) -> Arch {
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

fn with_crc(mut b: Vec<u8>) -> Vec<u8> {
    let n = b.len();
    let len = (n as u32).to_le_bytes();
    b[8..12].copy_from_slice(&len);
    let c = crc32(&b[..n - 4]);
    b[n - 4..].copy_from_slice(&c.to_le_bytes());
    b
}

/// The same model as a version-1 file (only for a CIFAR stem and basic blocks, no SE):
/// the v2 header fields dropped, version 1, length and CRC updated.
fn to_v1(v2: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(v2.len());
    b.extend_from_slice(&v2[..FIXED_HEADER_LEN_V1]);
    b.extend_from_slice(&v2[FIXED_HEADER_LEN..]);
    b[4..8].copy_from_slice(&1u32.to_le_bytes());
    with_crc(b)
}

/// A checkpoint of `a` with a `meta.epoch` scalar and an `opt.` momentum tensor.
fn with_extras(a: &Arch, seed: u64) -> Vec<u8> {
    let ts = random_tensors(a, ModelKind::Checkpoint, seed);
    let first = &ts[0];
    let opt_name = format!("opt.{}", first.name);
    let epoch = [3.0f32];
    let mut all: Vec<(&str, &[usize], &[f32])> = ts
        .iter()
        .map(|t| (t.name.as_str(), t.shape.as_slice(), t.data.as_slice()))
        .collect();
    all.push(("meta.epoch", &[1], &epoch));
    all.push((opt_name.as_str(), &first.shape, &first.data));
    let names = ["zero", "one"];
    let mut out = Vec::new();
    write_model(a, ModelKind::Checkpoint, &names, all, &mut out).expect("encode");
    out
}

fn main() {
    let root = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "core/fuzz/corpus".into());
    let mut seeds: Vec<(String, Vec<u8>)> = Vec::new();
    // A checkpoint and (unless `folded` is false) its folded form.
    let add = |name: &str, ck: Vec<u8>, folded: bool, seeds: &mut Vec<(String, Vec<u8>)>| {
        let f = fold_to_vec(&Model::parse(&ck).expect("seed parses")).expect("seed folds");
        seeds.push((format!("{name}-ck"), ck));
        if folded {
            seeds.push((format!("{name}-folded"), f));
        }
    };
    for (i, step) in [
        StepMode::Fixed(1.0),
        StepMode::Indp,
        StepMode::TwoFc,
        StepMode::Lstm,
    ]
    .into_iter()
    .enumerate()
    {
        for sc in [ShortcutKind::A, ShortcutKind::B] {
            let a = tiny(step, sc);
            let name = format!("basic-{}-{sc:?}", ["fixed", "indp", "2fc", "lstm"][i]);
            // Folded files differ only in the step-mode field: two modes suffice.
            let folded = matches!(step, StepMode::Fixed(_) | StepMode::Lstm);
            add(&name, random_checkpoint(&a, i as u64), folded, &mut seeds);
        }
    }
    // Bottleneck with grouped 3x3s (ResNeXt-like) and SE units.
    let mut a = tiny(StepMode::Lstm, ShortcutKind::B);
    a.reduction = 8;
    for (s, w) in a.stages.iter_mut().zip([4, 8, 8]) {
        s.width = w;
    }
    a.groups = 2;
    a.block = BlockKind::Bottleneck {
        expansion: 4,
        base_width: 64,
        stride_on_3x3: true,
    };
    a.se_reduction = 4;
    add(
        "bottleneck-grouped-se",
        random_checkpoint(&a, 11),
        true,
        &mut seeds,
    );
    // ImageNet-style stem with a max pool, one input channel, two stages.
    let mut a = tiny(StepMode::TwoFc, ShortcutKind::B);
    a.input.h = 9;
    a.input.w = 9;
    a.input.c = 1;
    a.stem = StemSpec {
        kernel: 3,
        stride: 2,
        pad: 1,
        pool: Some(Pool2d {
            kernel: 3,
            stride: 2,
            pad: 1,
        }),
    };
    a.num_stages = 2;
    a.stages[2] = StageSpec::default();
    add(
        "pool-stem-gray",
        random_checkpoint(&a, 12),
        true,
        &mut seeds,
    );
    // Extras and class names; a version-1 file.
    let a = tiny(StepMode::Lstm, ShortcutKind::A);
    let ext = with_extras(&a, 13);
    seeds.push(("extras-ck".into(), ext.clone()));
    let v1 = to_v1(&random_checkpoint(
        &tiny(StepMode::Indp, ShortcutKind::B),
        14,
    ));
    Model::parse(&v1).expect("v1 seed parses");
    seeds.push(("v1-ck".into(), v1));
    // Near-valid: a wrong CRC; a record cut short (framing repaired).
    let mut bad = ext.clone();
    let n = bad.len();
    bad[n - 1] ^= 0x5a;
    seeds.push(("near-bad-crc".into(), bad));
    let mut cut = ext[..ext.len() / 2].to_vec();
    cut.extend_from_slice(&ext[ext.len() / 2 + 37..]);
    seeds.push(("near-cut-record".into(), with_crc(cut)));

    let mut bytes = 0;
    for target in ["parse", "parse_fixed"] {
        let dir = format!("{root}/{target}");
        std::fs::create_dir_all(&dir).expect("create corpus dir");
        for (name, b) in &seeds {
            std::fs::write(format!("{dir}/seed-{name}.tscm"), b).expect("write");
            bytes += b.len();
        }
    }
    println!(
        "wrote {} files ({bytes} bytes) to {root}/{{parse,parse_fixed}}",
        2 * seeds.len()
    );
}
