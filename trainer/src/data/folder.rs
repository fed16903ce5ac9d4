//! Image folders: one subfolder per class, PNG or JPEG files inside.
//!
//! Layouts accepted (class names = subfolder names, sorted by byte order):
//! * `root/train/<class>/*` and `root/test/<class>/*` (`val` is accepted for `test`): the given
//!   split. Test classes must be among the training classes; every training class folder
//!   must hold at least one image (an empty one is refused, named), a test class may be
//!   empty or absent.
//! * `root/<class>/*`: a stratified held-out split is made
//!   ([`super::Dataset::stratified_split`] with the spec's fraction and seed). An empty class
//!   folder is refused, named.
//!
//! Files with the extensions png, jpg, jpeg (any case) are read, in sorted order; other files
//! and hidden files are ignored. Each image is converted to RGB (or grayscale), resized so its
//! shorter side fits the requested size (bilinear), then center-cropped to exactly that size.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use image::imageops::{self, FilterType};
use image::{DynamicImage, ImageReader};

use super::{Dataset, DatasetSpec};

const EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];

fn is_image(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .map(|e| EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
        .unwrap_or(false)
}

fn hidden(p: &Path) -> bool {
    p.file_name()
        .and_then(|n| n.to_str())
        .map(|n| n.starts_with('.'))
        .unwrap_or(false)
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir)
        .with_context(|| format!("cannot read the folder {}", dir.display()))?
    {
        let e = e.with_context(|| format!("cannot read the folder {}", dir.display()))?;
        let p = e.path();
        if !hidden(&p) {
            v.push(p);
        }
    }
    v.sort();
    Ok(v)
}

/// Sorted class subfolder names of `dir`.
pub fn class_names(dir: &Path) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for p in sorted_entries(dir)? {
        if p.is_dir() {
            let name = p
                .file_name()
                .and_then(|n| n.to_str())
                .with_context(|| format!("{}: class folder name is not UTF-8", p.display()))?;
            names.push(name.to_string());
        }
    }
    if names.is_empty() {
        bail!(
            "{}: no class subfolders (expected one folder of images per class)",
            dir.display()
        );
    }
    Ok(names)
}

/// Largest image side the loaders decode (a 16384² RGB image is 768 MiB): a bigger or
/// corrupt-header file is an error naming it, not an allocation that takes the machine down.
pub const MAX_IMAGE_SIDE: u32 = 16384;

/// Decodes an image file and brings it to `size = (height, width)` with `channels` 1 or 3:
/// converted, resized so that the shorter side fits, center-cropped. Returns HWC `u8` pixels.
pub fn load_image(path: &Path, size: (usize, usize), channels: usize) -> Result<Vec<u8>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    decode_image(&bytes, size, channels).with_context(|| format!("{}", path.display()))
}

/// [`load_image`] on the bytes of a PNG or JPEG file (format guessed from the content),
/// with the decoder's side and allocation limits set.
pub fn decode_image(bytes: &[u8], size: (usize, usize), channels: usize) -> Result<Vec<u8>> {
    let mut reader = ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .context("cannot read the image")?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_IMAGE_SIDE);
    limits.max_image_height = Some(MAX_IMAGE_SIDE);
    limits.max_alloc = Some(1 << 30);
    reader.limits(limits);
    let img = reader.decode().context("image will not decode")?;
    fit_image(img, size, channels).context("cannot convert the image")
}

/// Converts, resizes (shorter side) and center-crops a decoded image; see [`load_image`].
/// The crop is taken in the source first and only it is resized, so a long thin image never
/// becomes a huge intermediate (1×4000 at size 1024 would have been 4 G pixels).
pub fn fit_image(img: DynamicImage, size: (usize, usize), channels: usize) -> Result<Vec<u8>> {
    let (th, tw) = size;
    if th == 0 || tw == 0 {
        bail!("requested image size {th}x{tw} is empty");
    }
    let (w, h) = (img.width() as usize, img.height() as usize);
    if w == 0 || h == 0 {
        bail!("image is empty ({w}x{h})");
    }
    // The scale at which both sides cover the target; the source window that becomes the
    // target's middle.
    let s = (th as f64 / h as f64).max(tw as f64 / w as f64);
    let cw = ((tw as f64 / s).round() as usize).clamp(1, w);
    let ch = ((th as f64 / s).round() as usize).clamp(1, h);
    let (x0, y0) = (((w - cw) / 2) as u32, ((h - ch) / 2) as u32);
    let img = img.crop_imm(x0, y0, cw as u32, ch as u32);
    let fit = |cw: usize, ch: usize| (cw, ch) != (tw, th);
    match channels {
        3 => {
            let mut buf = img.into_rgb8();
            if fit(cw, ch) {
                buf = imageops::resize(&buf, tw as u32, th as u32, FilterType::Triangle);
            }
            Ok(buf.into_raw())
        }
        1 => {
            let mut buf = img.into_luma8();
            if fit(cw, ch) {
                buf = imageops::resize(&buf, tw as u32, th as u32, FilterType::Triangle);
            }
            Ok(buf.into_raw())
        }
        c => bail!("unsupported channel count {c} (1 or 3)"),
    }
}

/// Reads `dir/<class>/*` for the given class names (a missing class folder is allowed: it
/// then has no images here). Errors when no image at all is found.
pub fn load_classes(
    dir: &Path,
    names: &[String],
    size: (usize, usize),
    channels: usize,
) -> Result<Dataset> {
    let mut files: Vec<(PathBuf, u32)> = Vec::new();
    for (label, name) in names.iter().enumerate() {
        let cdir = dir.join(name);
        if !cdir.is_dir() {
            continue;
        }
        for p in sorted_entries(&cdir)? {
            if p.is_file() && is_image(&p) {
                files.push((p, label as u32));
            }
        }
    }
    if files.is_empty() {
        bail!(
            "{}: no PNG or JPEG images in the class folders",
            dir.display()
        );
    }
    let per = size.0 * size.1 * channels;
    let mut images = vec![0u8; files.len() * per];
    // Decode in parallel; results land at fixed positions, so the order does not depend on
    // thread timing. The first error in file order is reported.
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 8);
    let chunk = files.len().div_ceil(threads);
    let results: Vec<Result<()>> = std::thread::scope(|s| {
        let handles: Vec<_> = files
            .chunks(chunk)
            .zip(images.chunks_mut(chunk * per))
            .map(|(fs, out)| {
                s.spawn(move || -> Result<()> {
                    for ((path, _), dst) in fs.iter().zip(out.chunks_exact_mut(per)) {
                        dst.copy_from_slice(&load_image(path, size, channels)?);
                    }
                    Ok(())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("image decoding thread panicked")))
            })
            .collect()
    });
    for r in results {
        r?;
    }
    let labels = files.iter().map(|(_, l)| *l).collect();
    Dataset::new(
        images,
        labels,
        (size.0, size.1, channels),
        names.to_vec(),
        1.0 / 255.0,
    )
}

/// A class with no image in the split a model learns from would become a class the model
/// can never be taught (and, held out, one it is never scored on): refuse it, naming it.
fn require_every_class(ds: &Dataset, dir: &Path) -> Result<()> {
    let mut count = vec![0usize; ds.classes];
    for &l in &ds.labels {
        count[l as usize] += 1;
    }
    let empty: Vec<&str> = count
        .iter()
        .zip(&ds.class_names)
        .filter(|(c, _)| **c == 0)
        .map(|(_, n)| n.as_str())
        .collect();
    if !empty.is_empty() {
        bail!(
            "{}: class folder{} {} ha{} no PNG or JPEG images (add images or remove the folder)",
            dir.display(),
            if empty.len() > 1 { "s" } else { "" },
            empty
                .iter()
                .map(|n| format!("{n:?}"))
                .collect::<Vec<_>>()
                .join(", "),
            if empty.len() > 1 { "ve" } else { "s" }
        );
    }
    Ok(())
}

/// Loads an image folder as described in the module documentation.
pub fn load(root: &Path, spec: &DatasetSpec) -> Result<(Dataset, Dataset)> {
    if !root.is_dir() {
        bail!("{}: not a folder", root.display());
    }
    let channels = if spec.grayscale { 1 } else { 3 };
    let train_dir = root.join("train");
    let test_dir = ["test", "val"]
        .iter()
        .map(|n| root.join(n))
        .find(|p| p.is_dir());
    if let (true, Some(test_dir)) = (train_dir.is_dir(), test_dir) {
        let names = class_names(&train_dir)?;
        for t in class_names(&test_dir)? {
            if !names.contains(&t) {
                bail!(
                    "{}: class {t:?} has no folder in {}",
                    test_dir.display(),
                    train_dir.display()
                );
            }
        }
        let train = load_classes(&train_dir, &names, spec.image_size, channels)?;
        require_every_class(&train, &train_dir)?;
        // A class may be absent from (or empty in) the held-out folder.
        let test = load_classes(&test_dir, &names, spec.image_size, channels)?;
        Ok((train, test))
    } else {
        let names = class_names(root)?;
        let all = load_classes(root, &names, spec.image_size, channels)?;
        require_every_class(&all, root)?;
        all.stratified_split(spec.test_fraction, spec.split_seed)
    }
}
