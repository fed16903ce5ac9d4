//! Seeded random models for tests, benchmarks and demos (feature `std`).
//!
//! ```
//! use tsc_core::{testutil, Arch, Model, ShortcutKind, StepMode};
//! let arch = Arch::cifar(1, 4, StepMode::Lstm, ShortcutKind::A);
//! let bytes = testutil::random_checkpoint(&arch, 42);
//! let model = Model::parse(&bytes).unwrap();
//! assert_eq!(model.arch(), &arch);
//! ```

use std::string::String;
use std::vec::Vec;

use crate::arch::{Arch, BlockPart, BnField, CtlPart, ModelKind, SePart, TensorId};
use crate::format::write_model;

/// SplitMix64: tiny, seedable, good enough for test data.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Uniform in `[lo, hi)`.
    pub fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        (lo as f64 + (hi as f64 - lo as f64) * self.unit()) as f32
    }
    /// Uniform integer in `0..n` (`n ≥ 1`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
    /// `n` values uniform in `[lo, hi)`.
    pub fn vec(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..n).map(|_| self.uniform(lo, hi)).collect()
    }
}

/// One tensor of a model being built in memory.
#[derive(Clone, Debug)]
pub struct OwnedTensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// Random values for every tensor of `arch` in `kind`'s canonical set, in canonical order.
///
/// Conv weights: uniform with variance `2 / fan_in` (He). BN: γ ∈ [0.5, 1.5),
/// β, μ ∈ [−0.2, 0.2), σ² ∈ [0.5, 1.5). Folded biases ∈ [−0.1, 0.1). `dt` ∈ [0.2, 1).
/// Controller weights uniform ±1/sqrt(fan_in) (biases likewise). fc ±1/sqrt(C). SE fc
/// weights ±2/sqrt(fan_in), biases ±0.5 (so the gates spread well away from 1/2).
pub fn random_tensors(arch: &Arch, kind: ModelKind, seed: u64) -> Vec<OwnedTensor> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::new();
    let _ = arch.for_each_tensor::<()>(kind, |id, dims| {
        let shape = dims.as_slice().to_vec();
        let n = dims.elems().unwrap_or(0);
        let fan_in: usize = shape.iter().skip(1).product::<usize>().max(1);
        let he = (6.0 / fan_in as f64).sqrt() as f32;
        let ctl = (1.0 / (fan_in as f64).sqrt()) as f32;
        let bn = |rng: &mut Rng, f: BnField| match f {
            BnField::Gamma => rng.vec(n, 0.5, 1.5),
            BnField::Beta | BnField::Mean => rng.vec(n, -0.2, 0.2),
            BnField::Var => rng.vec(n, 0.5, 1.5),
        };
        let ctl_part = |rng: &mut Rng, p: CtlPart, shape: &[usize]| match p {
            CtlPart::FcInW | CtlPart::LstmW | CtlPart::FcOutW => rng.vec(n, -ctl, ctl),
            // Biases: scale by the matching weight's fan-in is unknown here; keep small.
            _ => rng.vec(shape[0], -0.3, 0.3),
        };
        let data = match id {
            TensorId::StemConvW => rng.vec(n, -he, he),
            TensorId::StemConvB | TensorId::FcB => rng.vec(n, -0.1, 0.1),
            TensorId::StemBn(f) => bn(&mut rng, f),
            TensorId::FcW => rng.vec(n, -ctl, ctl),
            TensorId::StageCtl { part, .. } => ctl_part(&mut rng, part, &shape),
            TensorId::Block { part, .. } => match part {
                BlockPart::ConvW(_) | BlockPart::ProjW => rng.vec(n, -he, he),
                BlockPart::ConvB(_) | BlockPart::ProjB => rng.vec(n, -0.1, 0.1),
                BlockPart::Bn(_, f) | BlockPart::ProjBn(f) => bn(&mut rng, f),
                BlockPart::Dt => rng.vec(n, 0.2, 1.0),
                BlockPart::Ctl(p) => ctl_part(&mut rng, p, &shape),
                BlockPart::Se(SePart::Fc1W | SePart::Fc2W) => rng.vec(n, -2.0 * ctl, 2.0 * ctl),
                BlockPart::Se(_) => rng.vec(n, -0.5, 0.5),
            },
        };
        out.push(OwnedTensor {
            name: String::from(id.name().as_str()),
            shape,
            data,
        });
        Ok(())
    });
    out
}

/// Encodes `tensors` as a model file (class names `class0`, `class1`, ...).
pub fn encode(arch: &Arch, kind: ModelKind, tensors: &[OwnedTensor]) -> Vec<u8> {
    let names: Vec<String> = (0..arch.classes)
        .map(|i| std::format!("class{i}"))
        .collect();
    let names: Vec<&str> = names.iter().map(|s| s.as_str()).collect();
    let mut out = Vec::new();
    write_model(
        arch,
        kind,
        &names,
        tensors
            .iter()
            .map(|t| (t.name.as_str(), t.shape.as_slice(), t.data.as_slice())),
        &mut out,
    )
    .expect("random model must encode");
    out
}

/// A valid random checkpoint (unfolded) for `arch`, deterministic in `seed`.
/// Panics if `arch` is invalid.
pub fn random_checkpoint(arch: &Arch, seed: u64) -> Vec<u8> {
    encode(
        arch,
        ModelKind::Checkpoint,
        &random_tensors(arch, ModelKind::Checkpoint, seed),
    )
}

/// A valid random folded model for `arch` (independent random weights and biases).
pub fn random_folded(arch: &Arch, seed: u64) -> Vec<u8> {
    encode(
        arch,
        ModelKind::Folded,
        &random_tensors(arch, ModelKind::Folded, seed),
    )
}

/// A random input image in `[0, 1)` for `arch`.
pub fn random_input(arch: &Arch, seed: u64) -> Vec<f32> {
    Rng::new(seed ^ 0x5EED).vec(arch.input.len(), 0.0, 1.0)
}
