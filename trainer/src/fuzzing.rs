//! Entry functions of the trainer's fuzz targets (`trainer/fuzz`, run by `scripts/fuzz.sh`),
//! one per parser of outside bytes, also replayed over the committed corpus as an ordinary
//! test (`trainer/tests/fuzz_corpus.rs`). Each takes any bytes and must return normally: an
//! error is the expected answer to bad input, a panic is a bug (an `assert!` here states a
//! property every accepted input must have). Allocation is bounded ([`MAX_BYTES`]) so that
//! a fuzzer never runs out of memory on a size claim.
//!
//! | entry | code under test |
//! |---|---|
//! | [`cifar10_records`], [`cifar100_records`] | `data::cifar::parse_cifar10/100` (+ `Dataset::new`) |
//! | [`mnist_idx`] | `data::mnist::parse_images`, `parse_labels`, `parse_files` |
//! | [`mnist_gz`] | `data::mnist::decode_maybe_gz`, then as `mnist_idx` |
//! | [`image_decode`] | `data::folder::decode_image` (decode with limits, `fit_image`) |
//! | [`config_toml`] | `TrainConfig::from_toml`, `validate`, `to_toml`, `model::arch_for` |
//! | [`checkpoint_decode`] | `HostModel::decode` (what `--resume` loads), `encode` |

use std::path::Path;

use tsc_core::arch::Shape3;

use crate::config::TrainConfig;
use crate::data::{cifar, folder, mnist, Dataset};
use crate::model::{arch_for, arch_name, describe_arch, HostModel, HostTensor};

/// The most bytes an entry lets a decoder produce (decompressed data, decoded pixels).
pub const MAX_BYTES: u64 = 64 << 20;

fn path() -> &'static Path {
    Path::new("fuzz-input")
}

/// Fuzz entry: a CIFAR-10 binary file (3073-byte records).
pub fn cifar10_records(data: &[u8]) {
    let Ok((images, labels)) = cifar::parse_cifar10(data, path()) else {
        return;
    };
    check_cifar(data, &images, &labels, 1, 0);
    let names = cifar::CIFAR10_CLASSES
        .iter()
        .map(|s| s.to_string())
        .collect();
    Dataset::new(
        images,
        labels,
        (cifar::SIDE, cifar::SIDE, 3),
        names,
        1.0 / 255.0,
    )
    .expect("parsed CIFAR-10 records form a dataset");
}

/// Fuzz entry: a CIFAR-100 binary file (3074-byte records, the fine label used).
pub fn cifar100_records(data: &[u8]) {
    let Ok((images, labels)) = cifar::parse_cifar100(data, path()) else {
        return;
    };
    check_cifar(data, &images, &labels, 2, 1);
    let names = (0..100).map(|i| i.to_string()).collect();
    Dataset::new(
        images,
        labels,
        (cifar::SIDE, cifar::SIDE, 3),
        names,
        1.0 / 255.0,
    )
    .expect("parsed CIFAR-100 records form a dataset");
}

/// Every record's label and planar pixels come back from the HWC output.
fn check_cifar(data: &[u8], images: &[u8], labels: &[u32], header: usize, label_at: usize) {
    let rec = header + cifar::PIXELS;
    assert_eq!(labels.len(), data.len() / rec);
    assert_eq!(images.len(), labels.len() * cifar::PIXELS);
    const PLANE: usize = cifar::SIDE * cifar::SIDE;
    for ((r, img), &l) in data
        .chunks_exact(rec)
        .zip(images.chunks_exact(cifar::PIXELS))
        .zip(labels)
    {
        assert_eq!(r[label_at] as u32, l);
        let px = &r[header..];
        for p in 0..PLANE {
            for c in 0..3 {
                assert_eq!(img[3 * p + c], px[c * PLANE + p]);
            }
        }
    }
}

/// Fuzz entry: IDX bytes, as an image file, as a label file, and (when it starts with an
/// image file) as an image file followed by its label file.
pub fn mnist_idx(data: &[u8]) {
    let images = mnist::parse_images(data, path());
    let _ = mnist::parse_labels(data, path());
    if let Ok((px, n, rows, cols)) = &images {
        assert_eq!(px.len(), n * rows * cols);
        assert_eq!(&data[16..], &px[..]);
    }
    // An image file announces its own length: split there, the rest is the label file.
    if data.len() >= 16 {
        let be =
            |at: usize| u32::from_be_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]]);
        let need = (be(4) as u64)
            .checked_mul(be(8) as u64)
            .and_then(|v| v.checked_mul(be(12) as u64))
            .and_then(|v| v.checked_add(16));
        if let Some(need) = need.filter(|&v| v <= data.len() as u64) {
            let (im, lb) = data.split_at(need as usize);
            if let Ok(ds) = mnist::parse_files(im, path(), lb, path()) {
                assert_eq!(ds.len() * ds.image_len(), ds.images.len());
                assert_eq!(ds.classes, mnist::CLASSES);
                assert!(ds.labels.iter().all(|&l| (l as usize) < mnist::CLASSES));
            }
        }
    }
}

/// Fuzz entry: a gzip-compressed (or plain) IDX file, decompressed as the MNIST loader does
/// (at most [`MAX_BYTES`]), then as [`mnist_idx`].
pub fn mnist_gz(data: &[u8]) {
    let Ok(raw) = mnist::decode_maybe_gz(data.to_vec(), path(), MAX_BYTES) else {
        return;
    };
    assert!(raw.len() as u64 <= MAX_BYTES);
    if !data.starts_with(&[0x1f, 0x8b]) {
        assert_eq!(raw, data, "plain data passes through unchanged");
    }
    mnist_idx(&raw);
}

/// Fuzz entry: a PNG or JPEG file through `folder::decode_image` (what `folder::load_image`
/// and `predict` run: format guessed from the content, decoder limits), brought to 32×32
/// RGB and 7×5 grayscale.
pub fn image_decode(data: &[u8]) {
    for (size, channels) in [((32, 32), 3), ((7, 5), 1)] {
        if let Ok(px) = folder::decode_image(data, size, channels) {
            assert_eq!(px.len(), size.0 * size.1 * channels);
        }
    }
}

/// Fuzz entry: a `config.toml` (`--config`, and the run's own on `--resume`): parsed; when
/// valid, it must survive `to_toml` unchanged, and `model::arch_for` turns it into an
/// architecture (or an error) for a CIFAR-shaped and an MNIST-shaped dataset.
pub fn config_toml(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(cfg) = TrainConfig::from_toml(text) else {
        return;
    };
    if cfg.validate().is_err() {
        return;
    }
    let again = TrainConfig::from_toml(&cfg.to_toml()).expect("a written config parses");
    assert_eq!(again, cfg, "a valid config survives to_toml");
    let _ = cfg.augment_on();
    let _ = cfg.lr_at(0.5 * cfg.epochs as f32);
    for (input, classes, mean, std) in [
        (
            Shape3::new(32, 32, 3),
            10,
            &[0.5f32, 0.5, 0.5][..],
            &[0.25f32, 0.25, 0.25][..],
        ),
        (Shape3::new(28, 28, 1), 10, &[0.13][..], &[0.31][..]),
    ] {
        if let Ok(a) = arch_for(&cfg, input, classes, mean, std) {
            assert_eq!(a.input, input);
            assert_eq!(a.classes, classes);
            let _ = (arch_name(&a), describe_arch(&a));
        }
    }
}

/// Fuzz entry: a training checkpoint as `--resume` loads it (`HostModel::decode`), both as
/// given and with its length and CRC-32 repaired (`tsc_core::fuzzing::fix_up`) so the
/// decoder is reached. A decoded model must encode, and decode again to the same model.
pub fn checkpoint_decode(data: &[u8]) {
    for bytes in [data.to_vec(), tsc_core::fuzzing::fix_up(data)] {
        let Ok(h) = HostModel::decode(&bytes) else {
            continue;
        };
        // What `train` reads back from a resumed checkpoint.
        let _ = h
            .extra("meta.epoch")
            .and_then(|t| t.data.first())
            .map_or(0, |&e| e as usize);
        assert_eq!(h.class_names.len(), h.arch.classes);
        let enc = h.encode().expect("a decoded checkpoint encodes");
        let back = HostModel::decode(&enc).expect("an encoded checkpoint decodes");
        assert_eq!(back.arch, h.arch);
        assert_eq!(back.class_names, h.class_names);
        assert!(same_tensors(&back.tensors, &h.tensors));
        // Extras may hold NaN (only canonical tensors must be finite): compare bits.
        assert!(same_tensors(&back.extras, &h.extras));
    }
}

fn same_tensors(a: &[HostTensor], b: &[HostTensor]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            x.name == y.name
                && x.shape == y.shape
                && x.data.len() == y.data.len()
                && x.data
                    .iter()
                    .zip(&y.data)
                    .all(|(u, v)| u.to_bits() == v.to_bits())
        })
}
