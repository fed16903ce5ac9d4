//! The scikit-learn digits set (UCI optdigits test set), shipped in `data/digits/digits.bin`
//! and embedded in the binary so the quickstart needs no files.
//!
//! `digits.bin`: 1797 records of 65 bytes: the label (0..9), then 64 pixels (values 0..16) of an
//! 8x8 image, row-major. No header. Pixel scale `1/16`.
//!
//! It has no official train/test split; [`super::load`] holds out a stratified 20 % with a fixed
//! seed ([`super::Dataset::stratified_split`], [`super::DEFAULT_SPLIT_SEED`]): 1438 train and 359
//! test images.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

use super::{read_file, Dataset};

/// The repository's `data/digits/digits.bin`, compiled in.
pub static EMBEDDED: &[u8] = include_bytes!("../../../data/digits/digits.bin");

pub const RECORD: usize = 65;
pub const SIDE: usize = 8;
pub const MAX_PIXEL: u8 = 16;
pub const CLASSES: usize = 10;

/// `path` itself if it is a file, else `path/digits.bin`.
pub fn resolve(path: &Path) -> PathBuf {
    if path.is_dir() {
        path.join("digits.bin")
    } else {
        path.to_path_buf()
    }
}

/// Parses the bytes of a `digits.bin` (`path` is only used in error messages).
pub fn parse(bytes: &[u8], path: &Path) -> Result<Dataset> {
    if bytes.is_empty() {
        bail!("{}: file is empty", path.display());
    }
    let incomplete = bytes.len() % RECORD;
    if incomplete != 0 {
        bail!(
            "{}: truncated: {} bytes is not a whole number of {RECORD}-byte records (record {} \
             is incomplete)",
            path.display(),
            bytes.len(),
            bytes.len() / RECORD
        );
    }
    let n = bytes.len() / RECORD;
    let mut images = Vec::with_capacity(n * 64);
    let mut labels = Vec::with_capacity(n);
    for (i, r) in bytes.chunks_exact(RECORD).enumerate() {
        if r[0] as usize >= CLASSES {
            bail!(
                "{}: label {} of record {i} out of range (must be < {CLASSES})",
                path.display(),
                r[0]
            );
        }
        if let Some(&v) = r[1..].iter().find(|&&v| v > MAX_PIXEL) {
            bail!(
                "{}: pixel value {v} in record {i} out of range (digits pixels are 0..=16)",
                path.display()
            );
        }
        labels.push(r[0] as u32);
        images.extend_from_slice(&r[1..]);
    }
    let names = (0..CLASSES).map(|i| i.to_string()).collect();
    Dataset::new(
        images,
        labels,
        (SIDE, SIDE, 1),
        names,
        1.0 / MAX_PIXEL as f32,
    )
}

/// Loads a `digits.bin` file (all 1797 images, unsplit).
pub fn load_file(path: &Path) -> Result<Dataset> {
    parse(&read_file(path)?, path)
}

/// The embedded copy, all 1797 images, unsplit.
pub fn embedded() -> Result<Dataset> {
    parse(EMBEDDED, Path::new("<embedded digits.bin>"))
}
