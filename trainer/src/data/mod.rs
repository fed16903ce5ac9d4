//! Datasets: real file formats, the shipped digits set, download, and batching.
//!
//! * [`Dataset`]: a whole split in memory as `u8` pixels, NHWC, with labels and class names.
//! * Loaders: [`cifar`] (CIFAR-10/100 binary), [`mnist`] (IDX, gzip or plain), [`folder`]
//!   (one subfolder per class, PNG/JPEG), [`digits`] (scikit-learn digits, shipped in
//!   `data/digits/` and embedded in the binary).
//! * [`download`]: fetch CIFAR-10/100 from the official address into a cache, MD5 verified.
//! * [`batch`]: per-channel normalisation, the paper's augmentation, and the [`Loader`] that
//!   prepares batches on CPU threads, deterministic from the seed.
//!
//! The CLI's entry point is [`load`] with a [`DatasetSpec`].

pub mod batch;
pub mod cifar;
pub mod digits;
pub mod download;
pub mod folder;
pub mod mnist;

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{bail, Context, Result};

pub use batch::{augment_image, Batch, EpochIter, Loader, LoaderConfig, Normalization};

use crate::rng::Rng;

/// A labelled image set held in memory.
///
/// Pixels are `u8`, image `i` occupies `images[i*h*w*c .. (i+1)*h*w*c]` in HWC order (so the
/// whole set is NHWC, as everywhere in the project). Pixel value `v` stands for the intensity
/// `v as f32 * scale`, which lies in `[0, 1]` (digits: `scale = 1/16`; 8-bit images: `1/255`).
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    pub images: Vec<u8>,
    pub labels: Vec<u32>,
    /// `(height, width, channels)` of every image.
    pub shape: (usize, usize, usize),
    /// Number of classes; every label is `< classes`.
    pub classes: usize,
    /// `class_names.len() == classes`.
    pub class_names: Vec<String>,
    /// Factor from a stored `u8` to an intensity in `[0, 1]`.
    pub scale: f32,
}

impl Dataset {
    /// Builds a dataset, checking that sizes and labels agree.
    pub fn new(
        images: Vec<u8>,
        labels: Vec<u32>,
        shape: (usize, usize, usize),
        class_names: Vec<String>,
        scale: f32,
    ) -> Result<Self> {
        let per = shape.0 * shape.1 * shape.2;
        if per == 0 {
            bail!("image shape {shape:?} has no pixels");
        }
        if images.len() != labels.len() * per {
            bail!(
                "{} pixel bytes for {} labels of {per} bytes each",
                images.len(),
                labels.len()
            );
        }
        let classes = class_names.len();
        if let Some((i, &l)) = labels
            .iter()
            .enumerate()
            .find(|(_, &l)| l as usize >= classes)
        {
            bail!("label {l} of sample {i} out of range (classes: {classes})");
        }
        if !(scale > 0.0 && scale.is_finite()) {
            bail!("pixel scale {scale} must be positive");
        }
        Ok(Dataset {
            images,
            labels,
            shape,
            classes,
            class_names,
            scale,
        })
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Bytes per image: `h * w * c`.
    pub fn image_len(&self) -> usize {
        self.shape.0 * self.shape.1 * self.shape.2
    }

    /// Channels per pixel.
    pub fn channels(&self) -> usize {
        self.shape.2
    }

    /// The `u8` pixels of image `i`, HWC. Panics if `i >= len()`.
    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.image_len();
        &self.images[i * n..(i + 1) * n]
    }

    /// Image `i` as intensities in `[0, 1]` (HWC, not normalised).
    pub fn image_f32(&self, i: usize) -> Vec<f32> {
        self.image(i)
            .iter()
            .map(|&v| v as f32 * self.scale)
            .collect()
    }

    /// Number of images of each class.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut c = vec![0; self.classes];
        for &l in &self.labels {
            c[l as usize] += 1;
        }
        c
    }

    /// The images at `indices`, in that order, as a new dataset with the same classes.
    pub fn subset(&self, indices: &[usize]) -> Dataset {
        let n = self.image_len();
        let mut images = Vec::with_capacity(indices.len() * n);
        let mut labels = Vec::with_capacity(indices.len());
        for &i in indices {
            images.extend_from_slice(self.image(i));
            labels.push(self.labels[i]);
        }
        Dataset {
            images,
            labels,
            shape: self.shape,
            classes: self.classes,
            class_names: self.class_names.clone(),
            scale: self.scale,
        }
    }

    /// Appends `other` (same shape and classes) to this dataset.
    pub fn append(&mut self, other: Dataset) -> Result<()> {
        if other.shape != self.shape || other.class_names != self.class_names {
            bail!(
                "cannot join datasets of shape {:?} / {} classes and {:?} / {} classes",
                self.shape,
                self.classes,
                other.shape,
                other.classes
            );
        }
        self.images.extend_from_slice(&other.images);
        self.labels.extend_from_slice(&other.labels);
        Ok(())
    }

    /// A stratified held-out split: from each class, `round(n_class * test_fraction)` images
    /// chosen by a shuffle seeded with `seed` go to the test set, the rest to the training set.
    /// Both keep the original file order. Deterministic for a given `(dataset, fraction, seed)`.
    pub fn stratified_split(&self, test_fraction: f64, seed: u64) -> Result<(Dataset, Dataset)> {
        if !(0.0..1.0).contains(&test_fraction) {
            bail!("test fraction {test_fraction} must be in [0, 1)");
        }
        let mut is_test = vec![false; self.len()];
        for class in 0..self.classes {
            let mut members: Vec<usize> = (0..self.len())
                .filter(|&i| self.labels[i] as usize == class)
                .collect();
            let k = (members.len() as f64 * test_fraction).round() as usize;
            let mut rng = Rng::from_parts(seed, &[0x5EED_5B17, class as u64]);
            rng.shuffle(&mut members);
            for &i in &members[..k] {
                is_test[i] = true;
            }
        }
        let train: Vec<usize> = (0..self.len()).filter(|&i| !is_test[i]).collect();
        let test: Vec<usize> = (0..self.len()).filter(|&i| is_test[i]).collect();
        Ok((self.subset(&train), self.subset(&test)))
    }
}

/// The dataset formats the CLI knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DatasetKind {
    /// scikit-learn digits, 8x8x1, 10 classes; shipped with the repository.
    Digits,
    /// CIFAR-10 binary version, 32x32x3, 10 classes.
    Cifar10,
    /// CIFAR-100 binary version, 32x32x3, 100 fine classes.
    Cifar100,
    /// MNIST (or Fashion-MNIST) IDX files, 28x28x1, 10 classes.
    Mnist,
    /// A folder with one subfolder of PNG/JPEG images per class.
    Folder,
}

impl DatasetKind {
    pub const ALL: [DatasetKind; 5] = [
        DatasetKind::Digits,
        DatasetKind::Cifar10,
        DatasetKind::Cifar100,
        DatasetKind::Mnist,
        DatasetKind::Folder,
    ];

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            DatasetKind::Digits => "digits",
            DatasetKind::Cifar10 => "cifar10",
            DatasetKind::Cifar100 => "cifar100",
            DatasetKind::Mnist => "mnist",
            DatasetKind::Folder => "folder",
        }
    }

    /// Whether the paper's augmentation (pad 4, random crop, horizontal flip) suits this kind:
    /// on for CIFAR and image folders, off for digits and MNIST (flipping digits changes them).
    pub fn default_augment(self) -> bool {
        matches!(
            self,
            DatasetKind::Cifar10 | DatasetKind::Cifar100 | DatasetKind::Folder
        )
    }
}

impl fmt::Display for DatasetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for DatasetKind {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "digits" => DatasetKind::Digits,
            "cifar10" | "cifar-10" => DatasetKind::Cifar10,
            "cifar100" | "cifar-100" => DatasetKind::Cifar100,
            "mnist" => DatasetKind::Mnist,
            "folder" => DatasetKind::Folder,
            _ => bail!(
                "unknown dataset kind {s:?} (expected digits, cifar10, cifar100, mnist or folder)"
            ),
        })
    }
}

/// Which half of a dataset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    Train,
    Test,
}

/// What to load. Build it with [`DatasetSpec::new`] and adjust the public fields.
#[derive(Clone, Debug, PartialEq)]
pub struct DatasetSpec {
    pub kind: DatasetKind,
    /// Where the files are:
    /// * digits: `digits.bin` or a folder holding it; `None` uses the copy embedded in the
    ///   binary (the repository's `data/digits/digits.bin`).
    /// * cifar10: the folder with `data_batch_*.bin` (or one holding `cifar-10-batches-bin/`).
    /// * cifar100: the folder with `train.bin`/`test.bin` (or one holding `cifar-100-binary/`).
    /// * mnist: the folder with `train-images-idx3-ubyte[.gz]` etc.
    /// * folder: the root; either `root/train/<class>/` + `root/test/<class>/` (`val` is
    ///   accepted for `test`), or `root/<class>/` with a held-out split made here.
    pub path: Option<PathBuf>,
    /// CIFAR-10 only: which training batches (1..=5) to use; empty means all five.
    pub cifar10_train_batches: Vec<usize>,
    /// Folder only: the size `(height, width)` images are resized (shorter side) and
    /// center-cropped to.
    pub image_size: (usize, usize),
    /// Folder only: convert to 1-channel grayscale instead of 3-channel RGB.
    pub grayscale: bool,
    /// Digits, and folders without train/test subfolders: fraction held out for testing.
    pub test_fraction: f64,
    /// Seed of that held-out split. Fixed by default (not the training `--seed`) so the test set
    /// stays the same across runs.
    pub split_seed: u64,
}

/// Default seed of the held-out splits of digits and of image folders.
pub const DEFAULT_SPLIT_SEED: u64 = 0;
/// Default held-out fraction.
pub const DEFAULT_TEST_FRACTION: f64 = 0.2;

impl DatasetSpec {
    pub fn new(kind: DatasetKind, path: Option<PathBuf>) -> Self {
        DatasetSpec {
            kind,
            path,
            cifar10_train_batches: Vec::new(),
            image_size: (32, 32),
            grayscale: false,
            test_fraction: DEFAULT_TEST_FRACTION,
            split_seed: DEFAULT_SPLIT_SEED,
        }
    }

    fn require_path(&self) -> Result<&Path> {
        self.path.as_deref().with_context(|| {
            format!(
                "dataset {} needs a path to its files{}",
                self.kind,
                if matches!(self.kind, DatasetKind::Cifar10 | DatasetKind::Cifar100) {
                    " (or --download to fetch it)"
                } else {
                    ""
                }
            )
        })
    }
}

/// Loads the training and test splits described by `spec`.
pub fn load(spec: &DatasetSpec) -> Result<(Dataset, Dataset)> {
    let r = match spec.kind {
        DatasetKind::Digits => {
            let all = match &spec.path {
                None => digits::parse(digits::EMBEDDED, Path::new("<embedded digits.bin>"))?,
                Some(p) => digits::load_file(&digits::resolve(p))?,
            };
            all.stratified_split(spec.test_fraction, spec.split_seed)?
        }
        DatasetKind::Cifar10 => {
            let dir = spec.require_path()?;
            (
                cifar::load_cifar10_train(dir, &spec.cifar10_train_batches)?,
                cifar::load_cifar10_test(dir)?,
            )
        }
        DatasetKind::Cifar100 => {
            let dir = spec.require_path()?;
            (
                cifar::load_cifar100(dir, Split::Train)?,
                cifar::load_cifar100(dir, Split::Test)?,
            )
        }
        DatasetKind::Mnist => {
            let dir = spec.require_path()?;
            (
                mnist::load_split(dir, Split::Train)?,
                mnist::load_split(dir, Split::Test)?,
            )
        }
        DatasetKind::Folder => folder::load(spec.require_path()?, spec)?,
    };
    if r.0.is_empty() {
        bail!("dataset {}: the training split is empty", spec.kind);
    }
    Ok(r)
}

/// Loads one split only (cheaper than [`load`] for CIFAR and MNIST, e.g. for `trainer eval`).
pub fn load_split(spec: &DatasetSpec, split: Split) -> Result<Dataset> {
    match spec.kind {
        DatasetKind::Cifar10 => {
            let dir = spec.require_path()?;
            match split {
                Split::Train => cifar::load_cifar10_train(dir, &spec.cifar10_train_batches),
                Split::Test => cifar::load_cifar10_test(dir),
            }
        }
        DatasetKind::Cifar100 => cifar::load_cifar100(spec.require_path()?, split),
        DatasetKind::Mnist => mnist::load_split(spec.require_path()?, split),
        DatasetKind::Digits | DatasetKind::Folder => {
            let (train, test) = load(spec)?;
            Ok(match split {
                Split::Train => train,
                Split::Test => test,
            })
        }
    }
}

/// Reads a whole file, with an error naming it.
pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>> {
    match std::fs::read(path) {
        Ok(b) => Ok(b),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!("{}: file not found", path.display())
        }
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Class names from a text file with one name per line; blank lines are ignored.
pub(crate) fn read_names(path: &Path, expected: usize) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read class names from {}", path.display()))?;
    let names: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    if names.len() != expected {
        bail!(
            "{}: expected {expected} class names, found {}",
            path.display(),
            names.len()
        );
    }
    Ok(names)
}
