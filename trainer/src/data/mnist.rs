//! MNIST's IDX files (also Fashion-MNIST, same layout), gzip-compressed or plain.
//!
//! Images: big-endian u32 magic `0x00000803`, count, rows, cols, then `count*rows*cols` bytes.
//! Labels: magic `0x00000801`, count, then `count` bytes. The two counts must match and every
//! label must be `< 10`.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use flate2::read::GzDecoder;

use super::{read_file, Dataset, Split};

pub const IMAGES_MAGIC: u32 = 0x0803;
pub const LABELS_MAGIC: u32 = 0x0801;
pub const CLASSES: usize = 10;

/// Reads a file, gunzipping it when it starts with the gzip magic bytes.
pub fn read_maybe_gz(path: &Path) -> Result<Vec<u8>> {
    decode_maybe_gz(read_file(path)?, path, u64::MAX)
}

/// Gunzips `raw` when it starts with the gzip magic bytes (else returns it unchanged),
/// refusing to produce more than `limit` bytes. `path` only names the file in errors.
pub fn decode_maybe_gz(raw: Vec<u8>, path: &Path, limit: u64) -> Result<Vec<u8>> {
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        GzDecoder::new(&raw[..])
            .take(limit.saturating_add(1))
            .read_to_end(&mut out)
            .with_context(|| format!("{}: corrupt or truncated gzip data", path.display()))?;
        if out.len() as u64 > limit {
            bail!(
                "{}: gzip data expands to more than {limit} bytes",
                path.display()
            );
        }
        Ok(out)
    } else {
        Ok(raw)
    }
}

fn be_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Parses an IDX image file: returns `(pixels, count, rows, cols)`.
pub fn parse_images(b: &[u8], path: &Path) -> Result<(Vec<u8>, usize, usize, usize)> {
    if b.len() >= 4 {
        let magic = be_u32(b, 0);
        if magic != IMAGES_MAGIC {
            bail!(
                "{}: bad magic 0x{magic:08x} for an IDX image file (expected 0x{IMAGES_MAGIC:08x})",
                path.display()
            );
        }
    }
    if b.len() < 16 {
        bail!(
            "{}: truncated IDX image file ({} bytes, header needs 16)",
            path.display(),
            b.len()
        );
    }
    let (n, rows, cols) = (
        be_u32(b, 4) as usize,
        be_u32(b, 8) as usize,
        be_u32(b, 12) as usize,
    );
    let need = n
        .checked_mul(rows)
        .and_then(|v| v.checked_mul(cols))
        .and_then(|v| v.checked_add(16))
        .with_context(|| format!("{}: absurd IDX dimensions", path.display()))?;
    if b.len() < need {
        bail!(
            "{}: truncated: header announces {n} images of {rows}x{cols} ({need} bytes), file \
             has {} bytes",
            path.display(),
            b.len()
        );
    }
    if b.len() > need {
        bail!(
            "{}: {} bytes of trailing data after {n} images of {rows}x{cols}",
            path.display(),
            b.len() - need
        );
    }
    if rows == 0 || cols == 0 {
        bail!("{}: images of size {rows}x{cols}", path.display());
    }
    Ok((b[16..].to_vec(), n, rows, cols))
}

/// Parses an IDX label file.
pub fn parse_labels(b: &[u8], path: &Path) -> Result<Vec<u32>> {
    if b.len() >= 4 {
        let magic = be_u32(b, 0);
        if magic != LABELS_MAGIC {
            bail!(
                "{}: bad magic 0x{magic:08x} for an IDX label file (expected 0x{LABELS_MAGIC:08x})",
                path.display()
            );
        }
    }
    if b.len() < 8 {
        bail!(
            "{}: truncated IDX label file ({} bytes, header needs 8)",
            path.display(),
            b.len()
        );
    }
    let n = be_u32(b, 4) as usize;
    if b.len() - 8 != n {
        bail!(
            "{}: {} announces {n} labels but holds {}",
            path.display(),
            if b.len() - 8 < n {
                "truncated:"
            } else {
                "trailing data:"
            },
            b.len() - 8
        );
    }
    let labels: Vec<u32> = b[8..].iter().map(|&v| v as u32).collect();
    if let Some((i, l)) = labels
        .iter()
        .enumerate()
        .find(|(_, &l)| l as usize >= CLASSES)
    {
        bail!(
            "{}: label {l} of item {i} out of range (must be < {CLASSES})",
            path.display()
        );
    }
    Ok(labels)
}

/// Finds `stem` or `stem.gz` in `dir` (also the `stem` with its last `-` as `.`, as some
/// mirrors name them, e.g. `train-images.idx3-ubyte`).
fn find(dir: &Path, stem: &str) -> Result<PathBuf> {
    let alt = stem.replacen("-idx", ".idx", 1);
    for name in [
        stem.to_string(),
        format!("{stem}.gz"),
        alt.clone(),
        format!("{alt}.gz"),
    ] {
        let p = dir.join(&name);
        if p.is_file() {
            return Ok(p);
        }
    }
    bail!(
        "{}: file not found (also looked for {stem}.gz)",
        dir.join(stem).display()
    )
}

/// Loads an image file and a label file as one dataset.
pub fn load_files(images: &Path, labels: &Path) -> Result<Dataset> {
    parse_files(
        &read_maybe_gz(images)?,
        images,
        &read_maybe_gz(labels)?,
        labels,
    )
}

/// An image file's and a label file's (uncompressed) bytes as one dataset; the paths only
/// name the files in errors.
pub fn parse_files(
    images: &[u8],
    images_path: &Path,
    labels: &[u8],
    labels_path: &Path,
) -> Result<Dataset> {
    let (px, n, rows, cols) = parse_images(images, images_path)?;
    let lb = parse_labels(labels, labels_path)?;
    if lb.len() != n {
        bail!(
            "{} holds {n} images but {} holds {} labels",
            images_path.display(),
            labels_path.display(),
            lb.len()
        );
    }
    let names = (0..CLASSES).map(|i| i.to_string()).collect();
    Dataset::new(px, lb, (rows, cols, 1), names, 1.0 / 255.0)
}

/// Loads the train (`train-*`) or test (`t10k-*`) split from `dir`.
pub fn load_split(dir: &Path, split: Split) -> Result<Dataset> {
    let prefix = match split {
        Split::Train => "train",
        Split::Test => "t10k",
    };
    let images = find(dir, &format!("{prefix}-images-idx3-ubyte"))?;
    let labels = find(dir, &format!("{prefix}-labels-idx1-ubyte"))?;
    load_files(&images, &labels)
}
