//! Training configuration: a TOML file (`--config`) that command-line flags override. The
//! config actually used is written to the run folder as `config.toml`.

use crate::data::{DatasetKind, DatasetSpec};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use tsc_core::arch::StepMode;

/// Everything that defines a training run. Field names are the TOML keys.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// `digits`, `cifar10`, `cifar100`, `mnist` or `folder`.
    pub dataset: String,
    /// Dataset location (file or folder); empty: the dataset's default (the shipped digits,
    /// `../shared/data/<name>`, or the download cache).
    pub data: String,
    /// Fetch CIFAR-10/100 into the cache folder when `data` is empty (checksum verified).
    pub download: bool,
    /// CIFAR-10: which training batches to use (1..=5).
    pub cifar_batches: Vec<usize>,
    /// Image-folder datasets: side of the square input the images are resized/cropped to.
    pub image_size: usize,
    /// Network family (see [`ARCHS`]): `cifar` (basic blocks, depth 6n + 2),
    /// `cifar-bottleneck` (depth 9n + 2), `cifar-resnext` (grouped bottlenecks, 9n + 2;
    /// `--width 4 --depth 29` is Xie et al.'s ResNeXt-29 8×16d), or an ImageNet net
    /// `resnet18`, `resnet34`, `resnet50`, `resnet101`, `resnext50_32x4d`,
    /// `resnext101_32x4d`, `se_resnet50`, `se_resnet101`.
    pub arch: String,
    /// CIFAR families: depth, 6n + 2 for `cifar` (8, 14, 20, 32, 44, 56, 110, ...), 9n + 2 for
    /// `cifar-bottleneck` (11, 20, 29, 56, 164, ...). ImageNet ResNets carry it in the name.
    pub depth: usize,
    /// CIFAR families: width multiplier: the stem is 16·width wide (rounded, at least 1), the
    /// stages 1, 2, 4 times that (times 4 for bottleneck outputs).
    pub width: f32,
    /// Bottlenecks: put the stride on the 3×3 (torchvision, "ResNet v1.5") instead of the
    /// first 1×1 (the original layout, which the paper's FLOP counts imply).
    pub stride_on_3x3: bool,
    /// Groups of the residual branch's 3×3 convs (ResNeXt cardinality; both 3×3s of a basic
    /// block). 0: the family's default (32 for `resnext*_32x4d`, 8 for `cifar-resnext`, else 1).
    pub groups: usize,
    /// Bottlenecks: width per group `d` (torchvision's `width_per_group`; middle width
    /// `C/4 · d/64 · groups`). 0: the family's default (4 for `resnext*_32x4d`, 16 for
    /// `cifar-resnext`, else 64).
    pub base_width: usize,
    /// Squeeze-excitation reduction r on every block (hidden width C/r). 0: the family's
    /// default (16 for `se_resnet*`, else no SE units).
    pub se_reduction: usize,
    /// Shortcut when shapes change: `A` (subsample + zero channels) or `B` (1×1 conv + BN).
    pub shortcut: String,
    /// Step-size mode: `fixed:C`, `indp`, `2fc` or `lstm`.
    pub steps: String,
    /// Controller reduction r (hidden size C / r); 0: the family's default (4 for basic
    /// blocks, 8 for bottlenecks, paper Table 6).
    pub reduction: usize,
    pub epochs: usize,
    pub batch: usize,
    pub lr: f32,
    pub momentum: f32,
    pub weight_decay: f32,
    /// `step` (divide by 10 at each milestone) or `cosine`.
    pub schedule: String,
    /// Fractions of the run at which the `step` schedule divides the learning rate by 10.
    pub milestones: Vec<f32>,
    /// Random crop (pad 4) and horizontal flip: `auto` (on for CIFAR and folders, off for
    /// digits and MNIST), `on`, `off`.
    pub augment: String,
    pub seed: u64,
    /// Stop each epoch after this many steps (0: the whole epoch). For smoke tests.
    pub max_steps: usize,
    /// CPU threads preparing batches.
    pub workers: usize,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            dataset: "digits".into(),
            data: String::new(),
            download: false,
            cifar_batches: vec![1, 2, 3, 4, 5],
            image_size: 32,
            arch: "cifar".into(),
            depth: 20,
            width: 1.0,
            stride_on_3x3: false,
            groups: 0,
            base_width: 0,
            se_reduction: 0,
            shortcut: "A".into(),
            steps: "lstm".into(),
            reduction: 0,
            epochs: 10,
            batch: 128,
            lr: 0.1,
            momentum: 0.9,
            weight_decay: 1e-4,
            schedule: "step".into(),
            milestones: vec![0.5, 0.75],
            augment: "auto".into(),
            seed: 0,
            max_steps: 0,
            workers: 2,
        }
    }
}

/// Every `--arch`.
pub const ARCHS: &[&str] = &[
    "cifar",
    "cifar-bottleneck",
    "cifar-resnext",
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnext50_32x4d",
    "resnext101_32x4d",
    "se_resnet50",
    "se_resnet101",
];

/// Parse `fixed:C | indp | 2fc | lstm`.
pub fn parse_steps(s: &str) -> Result<StepMode> {
    Ok(match s {
        "indp" => StepMode::Indp,
        "2fc" => StepMode::TwoFc,
        "lstm" => StepMode::Lstm,
        _ => {
            let Some(c) = s.strip_prefix("fixed:") else {
                bail!("--steps '{s}': expected fixed:C, indp, 2fc or lstm");
            };
            let c: f32 = c
                .parse()
                .with_context(|| format!("--steps '{s}': C is not a number"))?;
            if !(c.is_finite() && c > 0.0) {
                bail!("--steps '{s}': the fixed step must be a positive number");
            }
            StepMode::Fixed(c)
        }
    })
}

/// Inverse of `parse_steps`.
pub fn steps_name(m: StepMode) -> String {
    match m {
        StepMode::Fixed(c) => format!("fixed:{c}"),
        StepMode::Indp => "indp".into(),
        StepMode::TwoFc => "2fc".into(),
        StepMode::Lstm => "lstm".into(),
    }
}

impl TrainConfig {
    /// Read a TOML file; unknown keys are errors (a typo must not be silently ignored).
    pub fn load(path: &Path) -> Result<TrainConfig> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        TrainConfig::from_toml(&text)
            .with_context(|| format!("invalid config file {}", path.display()))
    }

    /// Parse a config file's text (not validated: see [`TrainConfig::validate`]).
    /// A TOML error is one line, `line L, column C: message` (toml's own display spans
    /// several lines with a source excerpt).
    pub fn from_toml(text: &str) -> Result<TrainConfig> {
        toml::from_str(text).map_err(|e| {
            let msg = e.message().replace('\n', " ");
            match e.span() {
                Some(sp) => {
                    let before = &text[..sp.start.min(text.len())];
                    let line = before.matches('\n').count() + 1;
                    let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
                    anyhow::anyhow!("line {line}, column {col}: {msg}")
                }
                None => anyhow::anyhow!("{msg}"),
            }
        })
    }

    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("config serialises")
    }

    /// Blocks per stage of the CIFAR families for the configured depth (0 below depth 2:
    /// the ImageNet families ignore `depth`, so any value passes `validate` there).
    pub fn blocks_per_stage(&self) -> usize {
        match self.arch.as_str() {
            "cifar-bottleneck" | "cifar-resnext" => self.depth.saturating_sub(2) / 9,
            _ => self.depth.saturating_sub(2) / 6,
        }
    }

    /// Whether `arch` is one of the CIFAR families (which take `depth` and `width`).
    pub fn is_cifar_arch(&self) -> bool {
        matches!(
            self.arch.as_str(),
            "cifar" | "cifar-bottleneck" | "cifar-resnext"
        )
    }

    /// Stem width w0 = round(16·width).
    pub fn stem_width(&self) -> usize {
        ((16.0 * self.width).round() as usize).max(1)
    }

    /// Whether augmentation is on for this dataset.
    pub fn augment_on(&self) -> bool {
        match self.augment.as_str() {
            "on" => true,
            "off" => false,
            _ => matches!(self.dataset.as_str(), "cifar10" | "cifar100" | "folder"),
        }
    }

    /// Check every field's range; the message names the flag.
    pub fn validate(&self) -> Result<()> {
        if !matches!(
            self.dataset.as_str(),
            "digits" | "cifar10" | "cifar100" | "mnist" | "folder"
        ) {
            bail!(
                "--dataset '{}': expected digits, cifar10, cifar100, mnist or folder",
                self.dataset
            );
        }
        if !ARCHS.contains(&self.arch.as_str()) {
            bail!(
                "--arch '{}': expected one of {}",
                self.arch,
                ARCHS.join(", ")
            );
        }
        match self.arch.as_str() {
            "cifar" if self.depth < 8 || !(self.depth - 2).is_multiple_of(6) => bail!(
                "--depth {}: the cifar family needs 6n + 2 with n >= 1 (8, 14, 20, 32, 44, 56, 110, ...)",
                self.depth
            ),
            a @ ("cifar-bottleneck" | "cifar-resnext")
                if self.depth < 11 || !(self.depth - 2).is_multiple_of(9) =>
            {
                bail!(
                "--depth {}: the {a} family needs 9n + 2 with n >= 1 (11, 20, 29, 56, 164, ...)",
                self.depth
            )
            }
            _ => {}
        }
        if !self.is_cifar_arch() && self.width != 1.0 {
            bail!(
                "--width {}: only the CIFAR families take a width multiplier",
                self.width
            );
        }
        if !(self.width.is_finite() && self.width > 0.0 && self.width <= 64.0) {
            bail!("--width {}: must be in (0, 64]", self.width);
        }
        if !matches!(self.shortcut.as_str(), "A" | "B" | "a" | "b") {
            bail!("--shortcut '{}': expected A or B", self.shortcut);
        }
        parse_steps(&self.steps)?;
        if self.reduction > 65_535 {
            bail!(
                "--reduction {}: at most 65535 (0: the family's default)",
                self.reduction
            );
        }
        if self.epochs == 0 {
            bail!("--epochs must be at least 1");
        }
        if self.batch == 0 || self.batch > 4096 {
            bail!("--batch {}: must be in 1..=4096", self.batch);
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            bail!("--lr {}: must be a positive number", self.lr);
        }
        if !(0.0..1.0).contains(&self.momentum) {
            bail!("--momentum {}: must be in [0, 1)", self.momentum);
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            bail!("--weight-decay {}: must be >= 0", self.weight_decay);
        }
        if !matches!(self.schedule.as_str(), "step" | "cosine") {
            bail!("--schedule '{}': expected step or cosine", self.schedule);
        }
        if self.milestones.iter().any(|m| !(0.0..=1.0).contains(m)) {
            bail!("--milestones: each must be a fraction of the run in [0, 1]");
        }
        if !matches!(self.augment.as_str(), "auto" | "on" | "off") {
            bail!("--augment '{}': expected auto, on or off", self.augment);
        }
        if self.cifar_batches.is_empty() || self.cifar_batches.iter().any(|b| !(1..=5).contains(b))
        {
            bail!("--cifar-batches: each must be in 1..=5");
        }
        if self.image_size == 0 || self.image_size > 1024 {
            bail!("--image-size {}: must be in 1..=1024", self.image_size);
        }
        if self.workers == 0 || self.workers > 64 {
            bail!("--workers {}: must be in 1..=64", self.workers);
        }
        Ok(())
    }

    /// Learning rate at (fractional) epoch `t` in `[0, epochs)`.
    pub fn lr_at(&self, t: f32) -> f32 {
        let frac = t / self.epochs as f32;
        match self.schedule.as_str() {
            "cosine" => 0.5 * self.lr * (1.0 + (std::f32::consts::PI * frac).cos()),
            _ => {
                let drops = self.milestones.iter().filter(|&&m| frac >= m).count() as i32;
                self.lr * 0.1f32.powi(drops)
            }
        }
    }

    /// The dataset to load: kind, location (`None`: the digits copy built into the binary;
    /// other kinds then need `data` or `download`), CIFAR-10 batches, folder image size.
    pub fn dataset_spec(&self) -> Result<DatasetSpec> {
        let kind: DatasetKind = self.dataset.parse()?;
        let mut path = (!self.data.is_empty()).then(|| PathBuf::from(&self.data));
        if self.download && path.is_none() {
            path = Some(crate::data::download::ensure(
                kind,
                &crate::data::download::default_cache_dir(),
            )?);
        }
        let mut spec = DatasetSpec::new(kind, path);
        spec.cifar10_train_batches = self.cifar_batches.clone();
        spec.image_size = (self.image_size, self.image_size);
        Ok(spec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_roundtrip() {
        let c = TrainConfig::default();
        c.validate().unwrap();
        let back: TrainConfig = toml::from_str(&c.to_toml()).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn bad_values_name_the_flag() {
        let mut c = TrainConfig {
            depth: 21,
            ..Default::default()
        };
        assert!(c.validate().unwrap_err().to_string().contains("--depth"));
        c.depth = 20;
        c.steps = "fixed:-1".into();
        assert!(c.validate().unwrap_err().to_string().contains("--steps"));
        c.steps = "lstm".into();
        c.lr = f32::NAN;
        assert!(c.validate().unwrap_err().to_string().contains("--lr"));
        assert!(
            toml::from_str::<TrainConfig>("depht = 20").is_err(),
            "unknown keys are errors"
        );
    }

    /// `depth` is unused by the ImageNet families, so `validate` accepts any value there;
    /// `blocks_per_stage` (called by `model::arch_for` for every family) must not underflow.
    #[test]
    fn imagenet_family_with_a_tiny_depth() {
        let c = TrainConfig::from_toml("arch = \"resnet18\"\ndepth = 0\n").unwrap();
        c.validate().unwrap();
        assert_eq!(c.blocks_per_stage(), 0);
    }

    #[test]
    fn step_schedule() {
        let c = TrainConfig {
            epochs: 4,
            lr: 0.1,
            ..Default::default()
        };
        assert_eq!(c.lr_at(0.0), 0.1);
        assert!((c.lr_at(2.0) - 0.01).abs() < 1e-7);
        assert!((c.lr_at(3.5) - 0.001).abs() < 1e-8);
    }
}
