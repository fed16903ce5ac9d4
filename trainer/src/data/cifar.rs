//! CIFAR-10 and CIFAR-100, "binary version" (the official file layouts).
//!
//! * CIFAR-10 (`cifar-10-batches-bin/`): `data_batch_1.bin` .. `data_batch_5.bin`,
//!   `test_batch.bin`, `batches.meta.txt`. A record is 3073 bytes: the label (0..9), then 3072
//!   pixels as three 32x32 row-major planes, red, green, blue.
//! * CIFAR-100 (`cifar-100-binary/`): `train.bin`, `test.bin`, `fine_label_names.txt`. A record
//!   is 3074 bytes: coarse label (0..19), fine label (0..99), then the 3072 pixels. The fine
//!   label is the one used.
//!
//! Pixels are converted from planar to HWC. Files carry no header, so a truncated file is found
//! by its length not being a multiple of the record size.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

use super::{read_file, read_names, Dataset, Split};

pub const SIDE: usize = 32;
pub const PIXELS: usize = SIDE * SIDE * 3;

/// CIFAR-10's class names, used when `batches.meta.txt` is absent.
pub const CIFAR10_CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

/// If `dir` holds the unpacked archive's folder (`sub`), descend into it.
fn resolve(dir: &Path, sub: &str, marker: &str) -> PathBuf {
    if !dir.join(marker).exists() && dir.join(sub).join(marker).exists() {
        dir.join(sub)
    } else {
        dir.to_path_buf()
    }
}

/// The folder that holds the CIFAR-10 files, given it or its parent.
pub fn resolve_cifar10(dir: &Path) -> PathBuf {
    resolve(dir, "cifar-10-batches-bin", "test_batch.bin")
}

/// The folder that holds the CIFAR-100 files, given it or its parent.
pub fn resolve_cifar100(dir: &Path) -> PathBuf {
    resolve(dir, "cifar-100-binary", "test.bin")
}

/// Parses the records of one binary file. `label_offset` is the position of the used label in
/// the record (0 for CIFAR-10, 1 for CIFAR-100's fine label) and the pixels follow the labels.
/// `max_labels` holds the exclusive bound for each label byte of the record.
pub fn parse_records(
    bytes: &[u8],
    path: &Path,
    max_labels: &[u32],
    label_offset: usize,
) -> Result<(Vec<u8>, Vec<u32>)> {
    let header = max_labels.len();
    let rec = header + PIXELS;
    if bytes.is_empty() {
        bail!("{}: file is empty", path.display());
    }
    let incomplete = bytes.len() % rec;
    if incomplete != 0 {
        bail!(
            "{}: truncated or not a CIFAR file: {} bytes is not a whole number of {rec}-byte \
             records (record {} is incomplete)",
            path.display(),
            bytes.len(),
            bytes.len() / rec
        );
    }
    let n = bytes.len() / rec;
    let mut images = vec![0u8; n * PIXELS];
    let mut labels = Vec::with_capacity(n);
    const PLANE: usize = SIDE * SIDE;
    for (i, (r, out)) in bytes
        .chunks_exact(rec)
        .zip(images.chunks_exact_mut(PIXELS))
        .enumerate()
    {
        for (k, &bound) in max_labels.iter().enumerate() {
            if r[k] as u32 >= bound {
                bail!(
                    "{}: label {} of record {i} out of range (must be < {bound})",
                    path.display(),
                    r[k]
                );
            }
        }
        labels.push(r[label_offset] as u32);
        let px = &r[header..];
        for p in 0..PLANE {
            out[3 * p] = px[p];
            out[3 * p + 1] = px[PLANE + p];
            out[3 * p + 2] = px[2 * PLANE + p];
        }
    }
    Ok((images, labels))
}

/// Parses one CIFAR-10 binary file's bytes (3073-byte records, labels < 10): HWC pixels and
/// labels. `path` only names the file in errors.
pub fn parse_cifar10(bytes: &[u8], path: &Path) -> Result<(Vec<u8>, Vec<u32>)> {
    parse_records(bytes, path, &[10], 0)
}

/// Parses one CIFAR-100 binary file's bytes (3074-byte records, coarse label < 20, fine
/// label < 100): HWC pixels and the fine labels. `path` only names the file in errors.
pub fn parse_cifar100(bytes: &[u8], path: &Path) -> Result<(Vec<u8>, Vec<u32>)> {
    parse_records(bytes, path, &[20, 100], 1)
}

fn cifar10_names(dir: &Path) -> Result<Vec<String>> {
    let meta = dir.join("batches.meta.txt");
    if meta.exists() {
        read_names(&meta, 10)
    } else {
        Ok(CIFAR10_CLASSES.iter().map(|s| s.to_string()).collect())
    }
}

/// Loads CIFAR-10 binary files from `dir` (by name, e.g. `["data_batch_1.bin"]`).
pub fn load_cifar10_files(dir: &Path, files: &[&str]) -> Result<Dataset> {
    let dir = resolve_cifar10(dir);
    let names = cifar10_names(&dir)?;
    let mut images = Vec::new();
    let mut labels = Vec::new();
    for f in files {
        let path = dir.join(f);
        let bytes = read_file(&path)?;
        let (im, lb) = parse_cifar10(&bytes, &path)?;
        images.extend_from_slice(&im);
        labels.extend_from_slice(&lb);
    }
    Dataset::new(images, labels, (SIDE, SIDE, 3), names, 1.0 / 255.0)
}

/// CIFAR-10's training set from the given batches (1..=5; empty = all five, in order).
pub fn load_cifar10_train(dir: &Path, batches: &[usize]) -> Result<Dataset> {
    let batches: Vec<usize> = if batches.is_empty() {
        (1..=5).collect()
    } else {
        batches.to_vec()
    };
    if let Some(b) = batches.iter().find(|&&b| !(1..=5).contains(&b)) {
        bail!("CIFAR-10 has training batches 1 to 5, not {b}");
    }
    let files: Vec<String> = batches
        .iter()
        .map(|b| format!("data_batch_{b}.bin"))
        .collect();
    let refs: Vec<&str> = files.iter().map(String::as_str).collect();
    load_cifar10_files(dir, &refs)
}

/// CIFAR-10's test set (`test_batch.bin`).
pub fn load_cifar10_test(dir: &Path) -> Result<Dataset> {
    load_cifar10_files(dir, &["test_batch.bin"])
}

/// CIFAR-100 (fine labels). Class names come from `fine_label_names.txt`, or are `"0".."99"`
/// when it is absent.
pub fn load_cifar100(dir: &Path, split: Split) -> Result<Dataset> {
    let dir = resolve_cifar100(dir);
    let meta = dir.join("fine_label_names.txt");
    let names = if meta.exists() {
        read_names(&meta, 100)?
    } else {
        (0..100).map(|i| i.to_string()).collect()
    };
    let path = dir.join(match split {
        Split::Train => "train.bin",
        Split::Test => "test.bin",
    });
    let bytes = read_file(&path)?;
    let (images, labels) = parse_cifar100(&bytes, &path)?;
    Dataset::new(images, labels, (SIDE, SIDE, 3), names, 1.0 / 255.0)
}
