//! Entry functions of the fuzz targets (`core/fuzz`, run by `scripts/fuzz.sh`), also replayed
//! over the committed corpus as ordinary tests (`core/tests/fuzz_corpus.rs`). Each takes any
//! bytes and must return normally: a parse error is fine, a panic is a bug (an `assert!`
//! here states a property that must hold for every accepted file).
//!
//! - [`parse_raw`]: the bytes as they are. Random inputs rarely get past the CRC-32, so this
//!   mostly exercises the early checks.
//! - [`parse_fixed`]: first [`fix_up`] rewrites the length field and the CRC-32 so that the
//!   header, stage table, names, tensor records and validation are reached, then the same
//!   checks as [`parse_raw`].
//!
//! On an accepted model both run: the accessors, [`crate::infer`] (when the network is small
//! enough: see [`MAX_MACS`], [`MAX_SCRATCH`]), re-encoding with [`ModelWriter`] (a
//! version-2 file must come back byte for byte), and for a checkpoint [`fold_to_vec`],
//! whose output must parse, be folded, have the same architecture and class names, and be
//! exactly [`folded_len`] bytes.

use std::vec;
use std::vec::Vec;

use crate::crc32::crc32;
use crate::fold::{fold_to_vec, folded_len};
use crate::format::{FormatError, ModelWriter, VERSION};
use crate::{infer, Arch, Error, Model, ModelKind};

/// Inference is skipped above this many multiply-adds (about 10 ms), so that every input
/// runs quickly.
pub const MAX_MACS: u64 = 20_000_000;
/// Inference is skipped when it needs more scratch than this (f32; 16 MiB).
pub const MAX_SCRATCH: usize = 1 << 22;

/// Fuzz entry: parse the bytes unchanged.
pub fn parse_raw(data: &[u8]) {
    check_model(data);
}

/// Fuzz entry: [`fix_up`] the length and CRC-32, then as [`parse_raw`].
pub fn parse_fixed(data: &[u8]) {
    check_model(&fix_up(data));
}

/// A copy of `data` with bytes 8..12 (`total_len`) set to the input's length and the last 4
/// bytes set to the CRC-32 of everything before them (docs/FORMAT.md), so that a mutated
/// file passes the framing checks. Inputs shorter than 16 bytes only get the length (they
/// are shorter than any header anyway).
pub fn fix_up(data: &[u8]) -> Vec<u8> {
    let mut b = data.to_vec();
    let n = b.len();
    if n >= 12 {
        let len = u32::try_from(n).unwrap_or(u32::MAX);
        b[8..12].copy_from_slice(&len.to_le_bytes());
    }
    if n >= 16 {
        let c = crc32(&b[..n - 4]);
        b[n - 4..].copy_from_slice(&c.to_le_bytes());
    }
    b
}

/// Multiply-adds of one forward pass through the convolutions, stem pool and fc (the
/// controllers and SE units are smaller than the convs they read); `None` on overflow or a
/// conv whose output does not exist.
pub fn infer_macs(a: &Arch) -> Option<u64> {
    let conv = |c: crate::layers::Conv2d| -> Option<u64> {
        let o = c.output().ok()?;
        let per = (c.kh * c.kw) as u64 * (c.input.c / c.groups.max(1)) as u64;
        (o.len() as u64).checked_mul(per)
    };
    let mut total = conv(a.stem_conv())?;
    if let Some(p) = a.stem.pool {
        let pooled = a.stem_output().len() as u64;
        total = total.checked_add(pooled.checked_mul((p.kernel * p.kernel) as u64)?)?;
    }
    for (si, st) in a.stages().iter().enumerate() {
        for b in 0..st.blocks {
            for bc in a.branch(si, b).convs() {
                total = total.checked_add(conv(bc.conv)?)?;
            }
            if let Some(p) = a.projection(si, b) {
                total = total.checked_add(conv(p)?)?;
            }
            if total > MAX_MACS {
                // Early out: the caller only compares against MAX_MACS.
                return Some(total);
            }
        }
    }
    total.checked_add(a.classes as u64 * a.head_input().c as u64)
}

fn check_model(data: &[u8]) {
    let Ok(m) = Model::parse(data) else { return };
    let a = *m.arch();
    assert_eq!(m.bytes().len(), data.len());
    let names: Vec<&str> = m.class_names().collect();
    assert_eq!(
        names.len(),
        a.classes,
        "every class has a (possibly empty) name"
    );
    assert_eq!(m.tensors().count(), m.tensor_count());
    for t in m.tensors() {
        assert_eq!(t.len(), t.dims().iter().product::<usize>());
        assert!(m.tensor(t.name()).is_some());
    }

    run_infer(&m);
    if le_u32(data, 4) == VERSION {
        let again = reencode(&m).expect("an accepted model re-encodes");
        assert!(
            again == data,
            "re-encoding an accepted model changes its bytes"
        );
    }

    match m.kind() {
        ModelKind::Checkpoint => {
            let Ok(f) = fold_to_vec(&m) else { return };
            let fm = Model::parse(&f).expect("folding a valid checkpoint gives a valid model");
            assert_eq!(fm.kind(), ModelKind::Folded);
            assert_eq!(*fm.arch(), a, "folding keeps the architecture");
            assert!(fm.class_names().eq(names.iter().copied()));
            assert_eq!(Some(f.len()), folded_len(&m).ok());
            run_infer(&fm);
        }
        ModelKind::Folded => {
            assert!(matches!(fold_to_vec(&m), Err(Error::WrongKind)));
        }
    }
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Runs one image through the model when it is small enough; errors are fine.
fn run_infer(m: &Model<'_>) {
    let a = m.arch();
    if m.scratch_len() > MAX_SCRATCH || a.input.len() > MAX_SCRATCH {
        return;
    }
    if infer_macs(a).is_none_or(|n| n > MAX_MACS) {
        return;
    }
    let x: Vec<f32> = (0..a.input.len()).map(|i| (i % 7) as f32 / 6.0).collect();
    let mut scratch = vec![0.0f32; m.scratch_len()];
    let mut logits = vec![0.0f32; a.classes];
    let _ = infer(m, &x, &mut scratch, &mut logits);
}

/// The model written again with [`ModelWriter`], every record in file order.
fn reencode(m: &Model<'_>) -> Result<Vec<u8>, FormatError> {
    let mut out = Vec::with_capacity(m.bytes().len());
    let mut w = ModelWriter::begin_with_names(
        &mut out,
        m.arch(),
        m.kind(),
        m.class_names(),
        m.tensor_count(),
        m.bytes().len(),
    )?;
    let mut vals = Vec::new();
    for t in m.tensors() {
        w.begin_tensor(t.name(), t.dims())?;
        vals.clear();
        vals.extend(t.iter());
        w.write_values(&vals)?;
    }
    w.finish()?;
    Ok(out)
}

/// `count` deterministic mutants of `input` (bit flips, interesting bytes and 32-bit words,
/// truncations, deleted, duplicated or overwritten ranges), for replaying a corpus through
/// an entry function's error paths without a fuzzer. Same `(input, count, seed)`, same
/// mutants.
pub fn mutations(input: &[u8], count: usize, seed: u64) -> impl Iterator<Item = Vec<u8>> + '_ {
    let mut s = seed ^ 0x9E37_79B9_7F4A_7C15 ^ (input.len() as u64).rotate_left(17);
    let mut next = move || {
        // splitmix64
        s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    (0..count).map(move |_| {
        let mut b = input.to_vec();
        let below = |r: u64, n: usize| if n == 0 { 0 } else { (r % n as u64) as usize };
        const BYTES: [u8; 6] = [0, 1, 0x7f, 0x80, 0xfe, 0xff];
        const WORDS: [u32; 10] = [
            0,
            1,
            2,
            3,
            4,
            0xffff,
            0x1_0000,
            0x7fff_ffff,
            0x8000_0000,
            0xffff_ffff,
        ];
        let n = b.len();
        match next() % 8 {
            0 if n > 0 => {
                let i = below(next(), n);
                b[i] ^= 1 << (next() % 8);
            }
            1 if n > 0 => {
                let i = below(next(), n);
                b[i] = BYTES[below(next(), BYTES.len())];
            }
            2 if n >= 4 => {
                // Header words are where most fields live: favour the first 128 bytes.
                let lim = if next() % 2 == 0 { n.min(128) } else { n };
                let i = below(next(), lim - 3);
                let w = WORDS[below(next(), WORDS.len())];
                b[i..i + 4].copy_from_slice(&w.to_le_bytes());
            }
            3 => b.truncate(below(next(), n + 1)),
            4 if n > 0 => {
                let i = below(next(), n);
                let len = 1 + below(next(), (n - i).min(64));
                b.drain(i..i + len);
            }
            5 if n > 0 => {
                let i = below(next(), n);
                let len = 1 + below(next(), (n - i).min(64));
                let copy = b[i..i + len].to_vec();
                let at = below(next(), n + 1);
                b.splice(at..at, copy);
            }
            6 if n > 0 => {
                for _ in 0..2 + next() % 7 {
                    let i = below(next(), n);
                    b[i] ^= 1 << (next() % 8);
                }
            }
            _ if n > 0 => {
                let i = below(next(), n);
                let len = 1 + below(next(), (n - i).min(16));
                for v in &mut b[i..i + len] {
                    *v = next() as u8;
                }
            }
            _ => b.push(next() as u8),
        }
        b
    })
}
