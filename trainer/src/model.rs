//! Host-side model state: the architecture (core's `Arch`), initialisation, and checkpoints
//! written with core's model format (atomically: temporary file, then rename).
//!
//! `HostModel` is the list of every tensor of the unfolded checkpoint in core's canonical
//! order, plus optional extra tensors (`opt.*` momentum, `meta.*` training position).

use crate::config::{parse_steps, TrainConfig};
use crate::gpu::conv::ConvShape;
use crate::rng::Rng;
use anyhow::{anyhow, bail, Context, Result};
use std::path::Path;
use tsc_core::arch::{
    Arch, BlockKind, BlockPart, BnField, CtlPart, ModelKind, SePart, Shape3, ShortcutKind,
    StepMode, TensorId,
};
use tsc_core::format::{self, Model};
use tsc_core::layers::Conv2d;

/// One named tensor on the host.
#[derive(Clone, Debug, PartialEq)]
pub struct HostTensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// Everything a checkpoint holds.
#[derive(Clone, Debug)]
pub struct HostModel {
    pub arch: Arch,
    pub class_names: Vec<String>,
    /// Canonical tensors of the unfolded network, in core's canonical order.
    pub tensors: Vec<HostTensor>,
    /// Extra tensors (`opt.*`, `meta.*`), written after the canonical ones.
    pub extras: Vec<HostTensor>,
}

/// The architecture a config describes for a dataset of `input` shape and `classes`.
pub fn arch_for(
    cfg: &TrainConfig,
    input: Shape3,
    classes: usize,
    mean: &[f32],
    std: &[f32],
) -> Result<Arch> {
    let shortcut = if cfg.shortcut.eq_ignore_ascii_case("B") {
        ShortcutKind::B
    } else {
        ShortcutKind::A
    };
    let step = parse_steps(&cfg.steps)?;
    let n = cfg.blocks_per_stage();
    let w0 = ((16.0 * cfg.width).round() as usize).max(1);
    let mut arch = match cfg.arch.as_str() {
        "cifar" => Arch::cifar(n, w0, step, shortcut),
        "cifar-bottleneck" => Arch::cifar_bottleneck(n, w0, step, shortcut),
        // Xie et al.'s CIFAR ResNeXt-29 8×16d at --width 4 (stem 64, stages 256/512/1024).
        "cifar-resnext" => resnext(Arch::cifar_bottleneck(n, w0, step, shortcut), 8, 16),
        name => {
            let (base, family) = match name {
                "resnext50_32x4d" => ("resnet50", Family::ResNeXt),
                "resnext101_32x4d" => ("resnet101", Family::ResNeXt),
                "se_resnet50" => ("resnet50", Family::Se),
                "se_resnet101" => ("resnet101", Family::Se),
                n => (n, Family::ResNet),
            };
            let depth = base
                .strip_prefix("resnet")
                .and_then(|d| d.parse().ok())
                .and_then(|d| Arch::resnet(d, step));
            let mut a = depth.ok_or_else(|| {
                anyhow!(
                    "--arch '{name}': expected one of {}",
                    crate::config::ARCHS.join(", ")
                )
            })?;
            a.shortcut = shortcut;
            match family {
                Family::ResNet => a,
                Family::ResNeXt => resnext(a, 32, 4),
                // Hu et al. 2018: reduction 16 on every block.
                Family::Se => Arch {
                    se_reduction: 16,
                    ..a
                },
            }
        }
    };
    if let BlockKind::Bottleneck {
        stride_on_3x3,
        base_width,
        ..
    } = &mut arch.block
    {
        *stride_on_3x3 = cfg.stride_on_3x3;
        if cfg.base_width != 0 {
            *base_width = cfg.base_width;
        }
    } else if cfg.base_width != 0 {
        bail!(
            "--base-width {}: only bottleneck families have a width per group",
            cfg.base_width
        );
    }
    if cfg.groups != 0 {
        arch.groups = cfg.groups;
    }
    if cfg.se_reduction != 0 {
        arch.se_reduction = cfg.se_reduction;
    }
    check_groups_and_se(&arch)?;
    arch.input = input;
    arch.classes = classes;
    if cfg.reduction != 0 {
        arch.reduction = cfg.reduction;
    }
    if mean.len() != input.c || std.len() != input.c {
        bail!(
            "normalisation has {} channels, the input {}",
            mean.len(),
            input.c
        );
    }
    arch.mean = [0.0; tsc_core::arch::MAX_INPUT_CHANNELS];
    arch.std = [1.0; tsc_core::arch::MAX_INPUT_CHANNELS];
    arch.mean[..input.c].copy_from_slice(mean);
    arch.std[..input.c].copy_from_slice(std);
    arch.validate().map_err(|e| {
        anyhow!(
            "invalid architecture for {}x{}x{} input: {e}",
            input.h,
            input.w,
            input.c
        )
    })?;
    Ok(arch)
}

enum Family {
    ResNet,
    ResNeXt,
    Se,
}

/// A bottleneck net with its 3×3 convs in `groups` groups of `width` channels at the first
/// stage (torchvision's `groups` and `width_per_group`).
fn resnext(mut a: Arch, groups: usize, width: usize) -> Arch {
    a.groups = groups;
    if let BlockKind::Bottleneck { base_width, .. } = &mut a.block {
        *base_width = width;
    }
    a
}

/// `--groups` must divide every grouped conv's channels and `--se` may not exceed a stage's
/// width: say so in the flags' words before core's header-field message would.
fn check_groups_and_se(a: &Arch) -> Result<()> {
    if a.groups == 0 {
        bail!("--groups 0: must be at least 1");
    }
    for (s, st) in a.stages().iter().enumerate() {
        if a.se_reduction > st.width {
            bail!(
                "--se {}: larger than stage {s}'s width {} (the SE unit would have no hidden channel)",
                a.se_reduction,
                st.width
            );
        }
        if let BlockKind::Bottleneck {
            expansion,
            base_width,
            ..
        } = a.block
        {
            let wide = st.width / expansion.max(1) * base_width * a.groups;
            if !st.width.is_multiple_of(expansion.max(1)) || !wide.is_multiple_of(64) {
                bail!(
                    "--base-width {base_width} with --groups {}: stage {s}'s middle width {}/{expansion}·{base_width}/64·{} is not a whole number",
                    a.groups,
                    st.width,
                    a.groups
                );
            }
        }
        for b in 0..st.blocks.min(2) {
            for bc in a.branch(s, b).convs() {
                let c = bc.conv;
                if c.groups > 1
                    && (!c.input.c.is_multiple_of(c.groups) || !c.out_c.is_multiple_of(c.groups))
                {
                    bail!(
                        "--groups {}: does not divide the {}x{} conv's {} -> {} channels in stage {s}",
                        c.groups,
                        c.kh,
                        c.kw,
                        c.input.c,
                        c.out_c
                    );
                }
            }
        }
    }
    Ok(())
}

/// Initial value of one tensor: He (fan-out) normal for convolutions as in He et al. 2015 and
/// the paper; PyTorch's default uniform(±1/√fan_in) for fully connected layers and the LSTM;
/// BN γ = 1, β = 0, running mean 0, var 1; `indp` Δt = 0.5; SE fcs as the head's fc.
fn init_tensor(id: TensorId, shape: &[usize], rng: &mut Rng) -> Vec<f32> {
    let n: usize = shape.iter().product();
    let normal = |rng: &mut Rng, std: f32| (0..n).map(|_| rng.normal() * std).collect::<Vec<f32>>();
    let uniform =
        |rng: &mut Rng, bound: f32| (0..n).map(|_| rng.uniform_range(-bound, bound)).collect();
    let bn = |f: BnField| match f {
        BnField::Gamma | BnField::Var => vec![1.0; n],
        BnField::Beta | BnField::Mean => vec![0.0; n],
    };
    let conv = |rng: &mut Rng| {
        let fan_out = (shape[0] * shape[1] * shape[2]) as f32;
        normal(rng, (2.0 / fan_out).sqrt())
    };
    match id {
        TensorId::StemConvW => conv(rng),
        TensorId::StemBn(f) => bn(f),
        TensorId::FcW => uniform(rng, 1.0 / (shape[1] as f32).sqrt()),
        TensorId::FcB => vec![0.0; n],
        TensorId::Block { part, .. } => match part {
            BlockPart::ConvW(_) | BlockPart::ProjW => conv(rng),
            BlockPart::Bn(_, f) | BlockPart::ProjBn(f) => bn(f),
            BlockPart::Dt => vec![0.5; n],
            BlockPart::Ctl(p) => ctl_init(p, shape, rng),
            // As the head's fc: the gates start near sigmoid(0) = 1/2.
            BlockPart::Se(SePart::Fc1W | SePart::Fc2W) => {
                uniform(rng, 1.0 / (shape[1] as f32).sqrt())
            }
            BlockPart::Se(_) => vec![0.0; n],
            BlockPart::ConvB(_) | BlockPart::ProjB => vec![0.0; n],
        },
        TensorId::StageCtl { part, .. } => ctl_init(part, shape, rng),
        TensorId::StemConvB => vec![0.0; n],
    }
}

/// Controller init: uniform(±1/√fan_in) weights, zero biases, so Δt = sigmoid(≈0) ≈ 0.5 at
/// the start, the value the paper's shallow blocks keep (Table 4).
fn ctl_init(p: CtlPart, shape: &[usize], rng: &mut Rng) -> Vec<f32> {
    let n: usize = shape.iter().product();
    match p {
        CtlPart::FcInW | CtlPart::FcOutW | CtlPart::LstmW => {
            let bound = 1.0 / (shape[1] as f32).sqrt();
            (0..n).map(|_| rng.uniform_range(-bound, bound)).collect()
        }
        CtlPart::FcInB | CtlPart::FcOutB | CtlPart::LstmB => vec![0.0; n],
    }
}

impl HostModel {
    /// A freshly initialised model (deterministic in `seed`).
    pub fn init(arch: Arch, class_names: Vec<String>, seed: u64) -> Result<HostModel> {
        let mut rng = Rng::new(seed).fork(0x1a17);
        let mut tensors = Vec::new();
        arch.for_each_tensor::<()>(ModelKind::Checkpoint, |id, dims| {
            let shape = dims.as_slice().to_vec();
            let data = init_tensor(id, &shape, &mut rng);
            tensors.push(HostTensor {
                name: id.name().as_str().to_string(),
                shape,
                data,
            });
            Ok(())
        })
        .map_err(|_| anyhow!("architecture enumeration failed"))?;
        Ok(HostModel {
            arch,
            class_names,
            tensors,
            extras: Vec::new(),
        })
    }

    /// The canonical tensor called `name`.
    pub fn get(&self, name: &str) -> Option<&HostTensor> {
        self.tensors.iter().find(|t| t.name == name)
    }
    pub fn get_mut(&mut self, name: &str) -> Option<&mut HostTensor> {
        self.tensors.iter_mut().find(|t| t.name == name)
    }
    /// The extra tensor called `name`.
    pub fn extra(&self, name: &str) -> Option<&HostTensor> {
        self.extras.iter().find(|t| t.name == name)
    }

    /// Encode in core's format (unfolded checkpoint).
    pub fn encode(&self) -> Result<Vec<u8>> {
        let names: Vec<&str> = self.class_names.iter().map(String::as_str).collect();
        let all = self.tensors.iter().chain(self.extras.iter());
        let mut out = Vec::new();
        format::write_model(
            &self.arch,
            ModelKind::Checkpoint,
            &names,
            all.map(|t| (t.name.as_str(), t.shape.as_slice(), t.data.as_slice())),
            &mut out,
        )
        .map_err(|e| anyhow!("cannot encode checkpoint: {e}"))?;
        Ok(out)
    }

    /// Decode an unfolded checkpoint (validated by core).
    pub fn decode(bytes: &[u8]) -> Result<HostModel> {
        let m = Model::parse(bytes).map_err(|e| anyhow!("{e}"))?;
        if m.kind() != ModelKind::Checkpoint {
            bail!("this is a folded inference model, not a training checkpoint");
        }
        let mut tensors = Vec::new();
        let mut extras = Vec::new();
        for t in m.tensors() {
            let ht = HostTensor {
                name: t.name().to_string(),
                shape: t.dims().to_vec(),
                data: t.iter().collect(),
            };
            if TensorId::parse(t.name()).is_some() {
                tensors.push(ht);
            } else {
                extras.push(ht);
            }
        }
        // Canonical order, so GPU upload order matches `init`.
        let mut ordered = Vec::with_capacity(tensors.len());
        m.arch()
            .for_each_tensor::<()>(ModelKind::Checkpoint, |id, _| {
                let name = id.name();
                if let Some(i) = tensors
                    .iter()
                    .position(|t: &HostTensor| t.name == name.as_str())
                {
                    ordered.push(tensors.swap_remove(i));
                }
                Ok(())
            })
            .ok();
        Ok(HostModel {
            arch: *m.arch(),
            class_names: m.class_names().map(str::to_string).collect(),
            tensors: ordered,
            extras,
        })
    }

    /// Write atomically: a crash mid-write never leaves a truncated checkpoint behind.
    pub fn save(&self, path: &Path) -> Result<()> {
        write_atomic(path, &self.encode()?)
    }

    pub fn load(path: &Path) -> Result<HostModel> {
        let bytes = std::fs::read(path)
            .with_context(|| format!("cannot read checkpoint {}", path.display()))?;
        HostModel::decode(&bytes).with_context(|| format!("invalid checkpoint {}", path.display()))
    }
}

/// Refuse an `--out` that is the input file itself, a folder, or in a folder that cannot be
/// written, before any work (`grad`, `export`): a command never overwrites its input.
pub fn check_out(checkpoint: &Path, out: &Path) -> Result<()> {
    let same = match (
        std::fs::canonicalize(checkpoint),
        std::fs::canonicalize(out),
    ) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if same {
        bail!(
            "--out {} is the checkpoint itself: give another file (the checkpoint is never overwritten)",
            out.display()
        );
    }
    if out.is_dir() {
        bail!("--out {} is a folder: give a file name", out.display());
    }
    let dir = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)
        .with_context(|| format!("--out {}: cannot create its folder", out.display()))?;
    // A probe in the folder the atomic write will use, so a read-only folder fails now and
    // not after the GPU work.
    let probe = dir.join(format!(".tsc-grad-probe-{}", std::process::id()));
    std::fs::File::create(&probe)
        .with_context(|| format!("--out {}: cannot write in {}", out.display(), dir.display()))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// Write `bytes` to `path` through a temporary file in the same folder and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    // Unique per process and call: two threads writing the same file must not share a temp.
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let tmp = dir.join(format!(
        ".{}.tmp{}-{}",
        path.file_name().and_then(|s| s.to_str()).unwrap_or("out"),
        std::process::id(),
        SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let written = (|| -> Result<()> {
        let mut f = std::fs::File::create(&tmp)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        f.write_all(bytes)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        f.sync_all().ok();
        drop(f);
        std::fs::rename(&tmp, path)
            .with_context(|| format!("cannot rename {} to {}", tmp.display(), path.display()))
    })();
    if written.is_err() {
        // A full disk or a failed rename leaves no partial temporary file behind.
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// The family's name: `ResNet-20`, `bottleneck ResNet-29`, `ResNet-50 (ImageNet stem)`,
/// `ResNeXt-50 32x4d (ImageNet stem)`, `SE-ResNet-50 (ImageNet stem) r16`.
pub fn arch_name(a: &Arch) -> String {
    let stem = if a.stem.pool.is_some() {
        " (ImageNet stem)"
    } else {
        ""
    };
    let se = if a.se_reduction != 0 { "SE-" } else { "" };
    let r = if a.se_reduction != 0 {
        format!(" SE r{}", a.se_reduction)
    } else {
        String::new()
    };
    let d = a.depth();
    match a.block {
        // Xie et al.'s `G×d`: d is the first stage's channels per group.
        BlockKind::Bottleneck { .. } if a.groups > 1 => {
            let d_first = a.mid_width(a.stages[0].width) / a.groups;
            format!("{se}ResNeXt-{d} {}x{d_first}d{stem}{r}", a.groups)
        }
        _ => {
            let kind = match a.block {
                BlockKind::Bottleneck { .. } if a.stem.pool.is_none() => "bottleneck ",
                _ => "",
            };
            let grouped = if a.groups > 1 {
                format!(" groups {}", a.groups)
            } else {
                String::new()
            };
            format!("{kind}{se}ResNet-{d}{stem}{grouped}{r}")
        }
    }
}

/// Step-size description for logs.
pub fn describe_arch(a: &Arch) -> String {
    let widths: Vec<String> = a.stages().iter().map(|s| s.width.to_string()).collect();
    let steps = crate::config::steps_name(a.step);
    let r = if matches!(a.step, StepMode::TwoFc | StepMode::Lstm) {
        format!(" r={}", a.reduction)
    } else {
        String::new()
    };
    format!(
        "{} widths {} shortcut {:?} steps {steps}{r}, input {}x{}x{}, {} classes",
        arch_name(a),
        widths.join("/"),
        a.shortcut,
        a.input.h,
        a.input.w,
        a.input.c,
        a.classes
    )
}

/// A core convolution (one image) at batch `n`.
pub fn conv_shape(c: &Conv2d, n: usize) -> ConvShape {
    ConvShape {
        n,
        h: c.input.h,
        w: c.input.w,
        cin: c.input.c,
        cout: c.out_c,
        kh: c.kh,
        kw: c.kw,
        stride: c.stride,
        pad: c.pad,
        groups: c.groups,
    }
}

/// The stem convolution at batch `n`.
pub fn stem_conv(a: &Arch, n: usize) -> ConvShape {
    conv_shape(&a.stem_conv(), n)
}

/// The convolutions of one residual block at batch `n`: core's description
/// ([`Arch::branch`]), one definition for the GPU graph and the f64 reference.
pub struct BlockConvs {
    /// The residual branch in order (conv1, conv2[, conv3]).
    pub branch: Vec<ConvShape>,
    /// 1×1 projection with the block's stride: option B blocks that change shape.
    pub proj: Option<ConvShape>,
}

/// Shapes of block (stage, block)'s convolutions.
pub fn block_convs(a: &Arch, stage: usize, block: usize, n: usize) -> BlockConvs {
    BlockConvs {
        branch: a
            .branch(stage, block)
            .convs()
            .iter()
            .map(|b| conv_shape(&b.conv, n))
            .collect(),
        proj: a.projection(stage, block).map(|c| conv_shape(&c, n)),
    }
}
