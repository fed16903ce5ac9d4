//! Model format: round trip, specific error variants, and a mutation test (bit flips,
//! truncations, splices, with and without a repaired length/CRC) where every input must give
//! `Ok` or a typed `Err`, never a panic; accepted mutants must also run through `infer` and
//! `fold` without panicking.
#![allow(clippy::needless_range_loop)]

mod common;

use common::Rng;
use tsc_core::arch::{BlockKind, TensorId};
use tsc_core::crc32::crc32;
use tsc_core::fold::fold_to_vec;
use tsc_core::format::{
    encoded_len, write_model, FormatError, ModelWriter, SliceSink, FIXED_HEADER_LEN,
};
use tsc_core::testutil::{encode, random_input, random_tensors, OwnedTensor};
use tsc_core::{infer, Arch, Model, ModelKind, ShortcutKind, StageSpec, StepMode};

fn small_arch(step: StepMode) -> Arch {
    let mut a = Arch::cifar(1, 4, step, ShortcutKind::B);
    a.input.h = 7;
    a.input.w = 5;
    a.classes = 3;
    a.stages[2] = StageSpec {
        blocks: 1,
        width: 8,
        stride: 1,
    };
    a
}

fn with_extras(arch: &Arch, seed: u64) -> (Vec<OwnedTensor>, Vec<u8>) {
    let mut t = random_tensors(arch, ModelKind::Checkpoint, seed);
    t.push(OwnedTensor {
        name: "opt.fc.w.m".into(),
        shape: vec![arch.classes, 16],
        data: vec![f32::NAN; arch.classes * 16],
    });
    t.push(OwnedTensor {
        name: "meta.epoch".into(),
        shape: vec![],
        data: vec![12.0],
    });
    t.swap(0, 5); // order does not matter
    let bytes = encode(arch, ModelKind::Checkpoint, &t);
    (t, bytes)
}

/// Sets total_len to the buffer length and recomputes the CRC (no-op if too short).
fn repair(b: &mut [u8]) {
    if b.len() < 12 {
        return;
    }
    let n = b.len();
    b[8..12].copy_from_slice(&(n as u32).to_le_bytes());
    let c = crc32(&b[..n - 4]);
    b[n - 4..].copy_from_slice(&c.to_le_bytes());
}

fn offset_of(file: &[u8], sub: &[u8]) -> usize {
    sub.as_ptr() as usize - file.as_ptr() as usize
}

#[test]
fn round_trip() {
    for mode in [
        StepMode::Fixed(0.5),
        StepMode::Indp,
        StepMode::TwoFc,
        StepMode::Lstm,
    ] {
        let arch = small_arch(mode);
        let (tensors, bytes) = with_extras(&arch, 3);
        let m = Model::parse(&bytes).unwrap();
        assert_eq!(m.arch(), &arch);
        assert_eq!(m.kind(), ModelKind::Checkpoint);
        assert_eq!(m.tensor_count(), tensors.len());
        assert_eq!(
            m.class_names().collect::<Vec<_>>(),
            ["class0", "class1", "class2"]
        );
        assert_eq!(m.class_name(1), Some("class1"));
        assert_eq!(m.class_name(3), None);
        for t in &tensors {
            let v = m.tensor(&t.name).unwrap();
            assert_eq!(v.dims(), &t.shape[..]);
            assert_eq!(v.len(), t.data.len());
            for (i, (a, b)) in v.iter().zip(&t.data).enumerate() {
                assert_eq!(a.to_bits(), b.to_bits());
                assert_eq!(v.get(i).unwrap().to_bits(), b.to_bits());
            }
            assert_eq!(v.get(v.len()), None);
        }
        assert!(m.tensor("nope").is_none());
        // Same bytes through a SliceSink sized by encoded_len, at an odd alignment.
        let items = || {
            tensors
                .iter()
                .map(|t| (t.name.as_str(), t.shape.as_slice(), t.data.as_slice()))
        };
        let names = ["class0", "class1", "class2"];
        let n = encoded_len(&arch, &names, items().map(|(a, b, _)| (a, b))).unwrap();
        assert_eq!(n, bytes.len());
        let mut buf = vec![0u8; n + 1];
        let mut sink = SliceSink::new(&mut buf[1..]);
        assert_eq!(
            write_model(&arch, ModelKind::Checkpoint, &names, items(), &mut sink).unwrap(),
            n
        );
        assert_eq!(&buf[1..], &bytes[..]);
        Model::parse(&buf[1..]).unwrap();
        // One byte short of room.
        let mut short = vec![0u8; n - 1];
        assert_eq!(
            write_model(
                &arch,
                ModelKind::Checkpoint,
                &names,
                items(),
                &mut SliceSink::new(&mut short)
            ),
            Err(FormatError::SinkFull)
        );
        // Unnamed classes.
        let mut v = Vec::new();
        write_model(&arch, ModelKind::Checkpoint, &[], items(), &mut v).unwrap();
        assert_eq!(Model::parse(&v).unwrap().class_name(2), Some(""));
    }
}

#[test]
fn header_errors_have_specific_variants() {
    let arch = small_arch(StepMode::Lstm);
    let (_, good) = with_extras(&arch, 4);
    Model::parse(&good).unwrap();
    // Truncated anywhere.
    for cut in [0, 3, 4, 7, 8, 11, 12, 40, good.len() / 2, good.len() - 1] {
        assert!(
            matches!(
                Model::parse(&good[..cut]),
                Err(FormatError::Truncated { .. })
            ),
            "cut {cut}: {:?}",
            Model::parse(&good[..cut])
        );
    }
    let mut b = good.clone();
    b[0] = b'X';
    assert_eq!(Model::parse(&b).unwrap_err(), FormatError::BadMagic);
    let mut b = good.clone();
    b[4] = 3;
    assert_eq!(
        Model::parse(&b).unwrap_err(),
        FormatError::UnsupportedVersion(3)
    );
    let mut b = good.clone();
    let last = b.len() - 10;
    b[last] ^= 0x40;
    assert!(matches!(
        Model::parse(&b),
        Err(FormatError::BadChecksum { .. })
    ));
    let mut b = good.clone();
    b.push(0);
    assert!(matches!(
        Model::parse(&b),
        Err(FormatError::LengthMismatch { .. })
    ));
    // Header fields (CRC repaired so that the field check is what fails).
    let field = |off: usize, v: u32| {
        let mut b = good.clone();
        b[off..off + 4].copy_from_slice(&v.to_le_bytes());
        repair(&mut b);
        Model::parse(&b)
            .err()
            .unwrap_or_else(|| panic!("field at {off} = {v} accepted"))
    };
    assert_eq!(field(12, 7), FormatError::InvalidHeader("kind"));
    assert_eq!(field(16, 0), FormatError::InvalidHeader("input_h/input_w"));
    assert_eq!(field(24, 9), FormatError::InvalidHeader("input_c"));
    // A bottleneck needs its expansion and base width (0 in this basic-block file).
    assert!(matches!(
        field(36, 1),
        FormatError::InvalidHeader(w) if w.contains("expansion")
    ));
    assert_eq!(field(36, 2), FormatError::InvalidHeader("block_kind"));
    assert_eq!(field(40, 2), FormatError::InvalidHeader("shortcut"));
    assert_eq!(field(44, 9), FormatError::InvalidHeader("step_mode"));
    assert!(matches!(
        field(48, 1.0f32.to_bits()),
        FormatError::InvalidHeader(_)
    ));
    assert_eq!(field(52, 0), FormatError::InvalidHeader("reduction"));
    assert!(matches!(field(56, 3), FormatError::InvalidHeader(w) if w.starts_with("groups")));
    assert_eq!(field(60, 5), FormatError::InvalidHeader("num_stages"));
    // Version-2 fields: stem kernel/stride/pad, pool kernel/stride/pad, bottleneck fields,
    // SE reduction.
    let v2 = |off: usize, v: u32| match field(off, v) {
        FormatError::InvalidHeader(w) => w,
        e => panic!("field at {off} = {v}: {e:?}"),
    };
    assert!(v2(68, 0).starts_with("stem kernel"));
    assert!(v2(72, 0).starts_with("stem kernel"));
    assert!(v2(76, 3).starts_with("stem kernel")); // pad ≥ kernel
    assert!(v2(68, 15).starts_with("stem kernel larger")); // 15×15 on 9×7
    assert!(v2(84, 2).starts_with("pool_stride")); // stride without a pool
    assert!(v2(80, 16).starts_with("pool kernel"));
    assert!(v2(92, 4).starts_with("expansion/base_width")); // on a basic block
    assert!(v2(100, 1).starts_with("expansion/base_width"));
    // SE reduction: larger than a stage's width (4) is invalid; a valid one asks for the
    // SE tensors this file lacks.
    assert!(v2(104, 5).starts_with("se_reduction"));
    assert!(v2(104, u32::MAX).starts_with("se_reduction"));
    assert_eq!(
        field(104, 2),
        FormatError::MissingTensor(TensorId::parse("s0.b0.se.fc1.w").unwrap().name())
    );
    // std[0] = 0 (stage table is 3 × 12 bytes, then mean[0], std[0]).
    assert_eq!(
        field(FIXED_HEADER_LEN + 36 + 4, 0),
        FormatError::InvalidHeader("std")
    );
    assert_eq!(
        field(FIXED_HEADER_LEN + 36, f32::NAN.to_bits()),
        FormatError::InvalidHeader("mean")
    );
    // Class name not UTF-8: first name byte (after its u16 length).
    let mut b = good.clone();
    b[FIXED_HEADER_LEN + 36 + 24 + 2] = 0xFF;
    repair(&mut b);
    assert_eq!(
        Model::parse(&b).unwrap_err(),
        FormatError::InvalidClassName(0)
    );
    // Zero-length file with correct magic etc. but a total_len below the minimum.
    let mut b = good.clone();
    b[8..12].copy_from_slice(&10u32.to_le_bytes());
    assert!(matches!(
        Model::parse(&b),
        Err(FormatError::LengthMismatch { declared: 10, .. })
    ));
    let _ = BlockKind::Basic;
}

#[test]
fn tensor_errors_have_specific_variants() {
    let arch = small_arch(StepMode::TwoFc);
    let (tensors, good) = with_extras(&arch, 5);
    let m = Model::parse(&good).unwrap();
    let data_off = |name: &str| offset_of(&good, m.tensor(name).unwrap().bytes());
    let patch = |off: usize, bytes: &[u8]| {
        let mut b = good.clone();
        b[off..off + bytes.len()].copy_from_slice(bytes);
        repair(&mut b);
        Model::parse(&b).unwrap_err()
    };
    // Rename fc.b → fc.x (name bytes sit before ndim (1 byte) and one u32 dim).
    let fcb = data_off("fc.b") - 4 - 1 - 4;
    assert_eq!(
        patch(fcb, b"fc.x"),
        FormatError::UnexpectedTensor("fc.x".try_into().unwrap())
    );
    assert_eq!(
        patch(fcb, b"fc.w"),
        FormatError::DuplicateTensor("fc.w".try_into().unwrap())
    );
    assert_eq!(patch(fcb, b"fc\x01b"), FormatError::InvalidTensorName);
    // Swap the names of two adjacent records: canonical order violated.
    let beta = data_off("s0.b0.bn1.beta") - 4 - 1 - 4;
    let mean = data_off("s0.b0.bn1.mean") - 4 - 1 - 4;
    let mut b = good.clone();
    b[beta..beta + 4].copy_from_slice(b"mean");
    b[mean..mean + 4].copy_from_slice(b"beta");
    repair(&mut b);
    assert_eq!(
        Model::parse(&b).unwrap_err(),
        FormatError::TensorOrder("s0.b0.bn1.beta".try_into().unwrap())
    );
    // Stem conv weight [4][3][3][3] → [3][3][3][4]: same size, wrong shape.
    let stem = data_off("stem.conv.w") - 16;
    let mut dims = Vec::new();
    for d in [3u32, 3, 3, 4] {
        dims.extend_from_slice(&d.to_le_bytes());
    }
    assert_eq!(
        patch(stem, &dims),
        FormatError::ShapeMismatch("stem.conv.w".try_into().unwrap())
    );
    // ndim 5.
    assert_eq!(
        patch(stem - 1, &[5]),
        FormatError::Malformed("tensor ndim > 4")
    );
    // A dim so large that the data would run past the end.
    assert!(matches!(
        patch(stem, &u32::MAX.to_le_bytes()),
        FormatError::Malformed(_)
    ));
    // NaN in a required tensor; negative BN variance.
    let w = data_off("s1.b0.conv2.w");
    assert_eq!(
        patch(w + 8, &f32::NAN.to_le_bytes()),
        FormatError::NonFinite("s1.b0.conv2.w".try_into().unwrap())
    );
    let v = data_off("s0.b0.bn2.var");
    assert_eq!(
        patch(v + 4, &(-0.5f32).to_le_bytes()),
        FormatError::InvalidValue("s0.b0.bn2.var".try_into().unwrap())
    );
    // tensor_count one too high / low.
    let count = u32::from_le_bytes(good[64..68].try_into().unwrap());
    assert!(matches!(
        patch(64, &(count + 1).to_le_bytes()),
        FormatError::Malformed(_)
    ));
    assert!(matches!(
        patch(64, &(count - 1).to_le_bytes()),
        FormatError::Malformed(_)
    ));

    // Writer-side checks.
    let write = |t: &[OwnedTensor]| {
        write_model(
            &arch,
            ModelKind::Checkpoint,
            &[],
            t.iter()
                .map(|t| (t.name.as_str(), t.shape.as_slice(), t.data.as_slice())),
            &mut Vec::new(),
        )
    };
    let mut t2 = tensors.clone();
    t2.retain(|t| t.name != "s2.b0.ctl.fc_out.b");
    assert_eq!(
        write(&t2).unwrap_err(),
        FormatError::MissingTensor("s2.b0.ctl.fc_out.b".try_into().unwrap())
    );
    // The streaming writer does not notice a missing tensor; the parser does.
    let canon = random_tensors(&arch, ModelKind::Checkpoint, 9);
    let kept: Vec<&OwnedTensor> = canon.iter().filter(|t| t.name != "s1.b0.proj.w").collect();
    let total = encoded_len(
        &arch,
        &[],
        kept.iter().map(|t| (t.name.as_str(), t.shape.as_slice())),
    )
    .unwrap();
    let mut b = Vec::new();
    let mut w =
        ModelWriter::begin(&mut b, &arch, ModelKind::Checkpoint, &[], kept.len(), total).unwrap();
    for t in &kept {
        w.begin_tensor(&t.name, &t.shape).unwrap();
        w.write_values(&t.data).unwrap();
    }
    w.finish().unwrap();
    assert_eq!(
        Model::parse(&b).unwrap_err(),
        FormatError::MissingTensor("s1.b0.proj.w".try_into().unwrap())
    );
    // Streaming writer order and duplicate checks.
    let mut b = Vec::new();
    let mut w = ModelWriter::begin(&mut b, &arch, ModelKind::Checkpoint, &[], 3, total).unwrap();
    w.begin_tensor(&canon[1].name, &canon[1].shape).unwrap();
    w.write_values(&canon[1].data).unwrap();
    assert!(matches!(
        w.begin_tensor(&canon[1].name, &canon[1].shape),
        Err(FormatError::DuplicateTensor(_))
    ));
    assert!(matches!(
        w.begin_tensor(&canon[0].name, &canon[0].shape),
        Err(FormatError::TensorOrder(_))
    ));
    let mut t7 = tensors.clone();
    t7.push(t7[3].clone());
    assert!(matches!(write(&t7), Err(FormatError::DuplicateTensor(_))));
    let mut t8 = tensors.clone();
    t8.push(OwnedTensor {
        name: "meta.epoch".into(),
        shape: vec![],
        data: vec![1.0],
    });
    assert!(matches!(write(&t8), Err(FormatError::DuplicateTensor(_))));
    let mut t3 = tensors.clone();
    t3[0].data[0] = f32::INFINITY;
    assert!(matches!(write(&t3), Err(FormatError::NonFinite(_))));
    let mut t4 = tensors.clone();
    t4.push(OwnedTensor {
        name: "s0.b0.dt".into(),
        shape: vec![4],
        data: vec![0.5; 4],
    });
    assert!(matches!(write(&t4), Err(FormatError::UnexpectedTensor(_))));
    let mut t5 = tensors.clone();
    t5[1].data.pop();
    assert!(matches!(
        write(&t5),
        Err(FormatError::TooLarge(_) | FormatError::WriterState(_))
    ));
    let mut t6 = tensors.clone();
    t6[2].shape.reverse();
    t6[2].shape.push(1);
    assert!(write(&t6).is_err());
    // A folded model may not contain BN tensors.
    let folded_with_bn = write_model(
        &arch,
        ModelKind::Folded,
        &[],
        tensors
            .iter()
            .map(|t| (t.name.as_str(), t.shape.as_slice(), t.data.as_slice())),
        &mut Vec::new(),
    );
    assert!(matches!(
        folded_with_bn,
        Err(FormatError::UnexpectedTensor(_))
    ));
    let _ = TensorId::FcW;
}

#[test]
fn mutation_test_never_panics() {
    let mut rng = Rng::new(0xF00D);
    let sources: Vec<Vec<u8>> = [
        StepMode::Lstm,
        StepMode::TwoFc,
        StepMode::Indp,
        StepMode::Fixed(1.0),
    ]
    .iter()
    .enumerate()
    .flat_map(|(i, &m)| {
        let arch = small_arch(m);
        let ck = with_extras(&arch, i as u64).1;
        let f = fold_to_vec(&Model::parse(&ck).unwrap()).unwrap();
        [ck, f]
    })
    .collect();
    let (mut ok, mut err, mut inferred) = (0usize, 0usize, 0usize);
    let mut kinds = std::collections::BTreeMap::<String, usize>::new();
    for iter in 0..6000 {
        let src = &sources[iter % sources.len()];
        let mut b = src.clone();
        match rng.below(6) {
            0 => {
                for _ in 0..1 + rng.below(8) {
                    let i = rng.below(b.len());
                    b[i] ^= 1 << rng.below(8);
                }
            }
            1 => b.truncate(rng.below(b.len())),
            2 => {
                // Splice: copy a chunk from another position (or another file) over a range.
                let other = &sources[rng.below(sources.len())];
                let len = 1 + rng.below(64);
                let from = rng.below(other.len().saturating_sub(len).max(1));
                let to = rng.below(b.len().saturating_sub(len).max(1));
                let end = (to + len).min(b.len());
                let chunk = &other[from..(from + end - to).min(other.len())];
                b[to..to + chunk.len()].copy_from_slice(chunk);
            }
            3 => {
                // Delete or insert a range.
                let at = rng.below(b.len());
                if rng.below(2) == 0 {
                    let n = (1 + rng.below(16)).min(b.len() - at);
                    b.drain(at..at + n);
                } else {
                    let n = 1 + rng.below(16);
                    let ins: Vec<u8> = (0..n).map(|_| rng.below(256) as u8).collect();
                    b.splice(at..at, ins);
                }
            }
            4 => {
                // Overwrite a header/table-region u32 with an interesting value.
                let vals = [
                    0u32,
                    1,
                    2,
                    3,
                    4,
                    5,
                    0xFF,
                    0xFFFF,
                    0x7FFF_FFFF,
                    u32::MAX,
                    0x8000_0000,
                ];
                let lim = b.len().min(400).saturating_sub(4).max(1);
                let i = rng.below(lim);
                let v = vals[rng.below(vals.len())];
                let end = (i + 4).min(b.len());
                b[i..end].copy_from_slice(&v.to_le_bytes()[..end - i]);
            }
            _ => {
                let i = rng.below(b.len());
                b[i] = rng.below(256) as u8;
            }
        }
        // Half of the mutants get a repaired length and CRC so that the structural checks
        // (not just the checksum) are exercised.
        if iter % 2 == 0 {
            repair(&mut b);
        }
        // Parse at an odd offset to exercise unaligned access.
        let mut shifted = vec![0u8; b.len() + 1];
        shifted[1..].copy_from_slice(&b);
        match Model::parse(&shifted[1..]) {
            Ok(m) => {
                ok += 1;
                let a = m.arch();
                // Keep the work bounded: only run small accepted models.
                if m.scratch_len() < 1 << 20 {
                    let x = random_input(a, iter as u64);
                    let mut s = vec![0.0f32; m.scratch_len()];
                    let mut l = vec![0.0f32; a.classes];
                    let _ = infer(&m, &x, &mut s, &mut l);
                    if m.kind() == ModelKind::Checkpoint {
                        if let Ok(f) = fold_to_vec(&m) {
                            Model::parse(&f).expect("fold of a valid checkpoint must parse");
                        }
                    }
                    inferred += 1;
                }
            }
            Err(e) => {
                err += 1;
                let k = format!("{e:?}");
                let k = k
                    .split(|c: char| !c.is_alphanumeric())
                    .next()
                    .unwrap()
                    .to_string();
                *kinds.entry(k).or_default() += 1;
            }
        }
    }
    println!("mutants: {ok} accepted ({inferred} run), {err} rejected: {kinds:?}");
    assert!(err > 4000);
    assert!(
        ok > 0,
        "some repaired mutants (e.g. flipped weight bits) should still be valid"
    );
    // Beyond the checksum: structural checks must fire too.
    assert!(kinds.len() >= 8, "{kinds:?}");
}

#[test]
fn parse_is_linear_in_the_number_of_records() {
    // 200k extra scalar records (sorted names): a quadratic duplicate check would take
    // minutes; the order rule makes it one pass.
    let arch = small_arch(StepMode::Fixed(1.0));
    let canon = random_tensors(&arch, ModelKind::Checkpoint, 1);
    let n_extra = 200_000usize;
    let names: Vec<String> = (0..n_extra).map(|i| format!("meta.{i:07}")).collect();
    let mut items: Vec<(&str, &[usize])> = canon
        .iter()
        .map(|t| (t.name.as_str(), t.shape.as_slice()))
        .collect();
    items.extend(names.iter().map(|n| (n.as_str(), &[][..])));
    let total = encoded_len(&arch, &[], items.iter().copied()).unwrap();
    let mut b = Vec::new();
    let mut w = ModelWriter::begin(
        &mut b,
        &arch,
        ModelKind::Checkpoint,
        &[],
        items.len(),
        total,
    )
    .unwrap();
    for t in &canon {
        w.begin_tensor(&t.name, &t.shape).unwrap();
        w.write_values(&t.data).unwrap();
    }
    for n in &names {
        w.begin_tensor(n, &[]).unwrap();
        w.write_value(1.0).unwrap();
    }
    w.finish().unwrap();
    let t = std::time::Instant::now();
    let m = Model::parse(&b).unwrap();
    assert_eq!(m.tensor_count(), canon.len() + n_extra);
    assert!(
        t.elapsed().as_secs_f64() < 2.0,
        "parse took {:?}",
        t.elapsed()
    );
}

/// A version-2 file rewritten as version 1 (the 40 bytes of version-2 fields dropped).
fn as_v1(v2: &[u8]) -> Vec<u8> {
    let mut b = v2[..68].to_vec();
    b.extend_from_slice(&v2[FIXED_HEADER_LEN..]);
    b[4..8].copy_from_slice(&1u32.to_le_bytes());
    repair(&mut b);
    b
}

#[test]
fn version_1_files_still_parse_and_run() {
    for step in [StepMode::Fixed(1.0), StepMode::Indp, StepMode::Lstm] {
        let arch = small_arch(step);
        let (_, v2) = with_extras(&arch, 9);
        let v1 = as_v1(&v2);
        let (m1, m2) = (Model::parse(&v1).unwrap(), Model::parse(&v2).unwrap());
        assert_eq!(m1.arch(), m2.arch());
        assert_eq!(m1.arch().stem, tsc_core::arch::StemSpec::CIFAR);
        assert_eq!(m1.tensor_count(), m2.tensor_count());
        for (a, b) in m1.tensors().zip(m2.tensors()) {
            assert_eq!((a.name(), a.bytes()), (b.name(), b.bytes()));
        }
        let x = random_input(&arch, 3);
        let run = |m: &Model<'_>| {
            let mut scratch = vec![f32::NAN; m.scratch_len()];
            let mut logits = vec![0.0; arch.classes];
            infer(m, &x, &mut scratch, &mut logits).unwrap();
            logits
        };
        assert_eq!(run(&m1), run(&m2));
        // Version 1 reserved the bottleneck value without specifying it.
        let mut b = v1.clone();
        b[36..40].copy_from_slice(&1u32.to_le_bytes());
        repair(&mut b);
        assert_eq!(
            Model::parse(&b).unwrap_err(),
            FormatError::Unsupported("bottleneck blocks in a version-1 file")
        );
    }
}

#[test]
fn committed_firmware_model_is_version_1_and_runs() {
    let bytes = include_bytes!("../../firmware-demo/models/default.tscm");
    assert_eq!(
        bytes[4..8],
        1u32.to_le_bytes(),
        "the committed model is a v1 file"
    );
    let m = Model::parse(bytes).unwrap();
    assert_eq!(m.arch().stem, tsc_core::arch::StemSpec::CIFAR);
    assert_eq!(m.arch().block, BlockKind::Basic);
    let mut scratch = vec![f32::NAN; m.scratch_len()];
    let mut logits = vec![f32::NAN; m.arch().classes];
    let x = vec![0.5; m.arch().input.len()];
    infer(&m, &x, &mut scratch, &mut logits).unwrap();
    assert!(logits.iter().all(|v| v.is_finite()));
}
