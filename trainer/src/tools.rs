//! Commands that need no GPU: they run `core` on the CPU (`export`, `predict`, `info`,
//! `steps`), so a user can check an export on any machine.

use crate::model::{check_out, describe_arch, write_atomic};
use crate::report::{csv_field, json_nums, json_str, softmax_f64, Format};
use anyhow::{anyhow, bail, Context, Result};
use std::path::{Path, PathBuf};
use tsc_core::arch::{Arch, BlockPart, BnField, ModelKind, StepMode, TensorId};
use tsc_core::layers::Conv2d;
use tsc_core::Model;

/// Read and validate a model file (checkpoint or folded).
pub fn read_model(path: &Path) -> Result<Vec<u8>> {
    let bytes =
        std::fs::read(path).with_context(|| format!("cannot read model {}", path.display()))?;
    Model::parse(&bytes).map_err(|e| anyhow!("{}: {e}", path.display()))?;
    Ok(bytes)
}

fn parse(bytes: &[u8]) -> Model<'_> {
    Model::parse(bytes).expect("validated by read_model")
}

/// `trainer export CHECKPOINT --out MODEL`: fold BN and Δt into a plain ResNet.
pub fn export(checkpoint: &Path, out: &Path) -> Result<()> {
    check_out(checkpoint, out)?;
    let bytes = read_model(checkpoint)?;
    let ck = parse(&bytes);
    if ck.kind() != ModelKind::Checkpoint {
        bail!(
            "{} is already a folded inference model",
            checkpoint.display()
        );
    }
    let folded = tsc_core::fold::fold_to_vec(&ck).map_err(|e| anyhow!("folding failed: {e:?}"))?;
    write_atomic(out, &folded)?;
    let m = parse(&folded);
    let counts = count(m.arch());
    println!(
        "exported {} -> {} ({} bytes, {} parameters, {:.2} MFLOPs/image, scratch {} f32)",
        checkpoint.display(),
        out.display(),
        folded.len(),
        counts.infer_params,
        counts.infer_macs as f64 * 2e-6,
        m.scratch_len()
    );
    Ok(())
}

/// Softmax of logits (for reporting only).
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let m = logits.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    let e: Vec<f32> = logits.iter().map(|&v| (v - m).exp()).collect();
    let s: f32 = e.iter().sum();
    e.into_iter().map(|v| v / s).collect()
}

/// Every class's logit for each image file, through core on the CPU. Images are resized and
/// center-cropped to the model's input like an image-folder dataset.
pub fn classify_logits(model_bytes: &[u8], images: &[PathBuf]) -> Result<Vec<Vec<f32>>> {
    let m = Model::parse(model_bytes).map_err(|e| anyhow!("{e}"))?;
    let a = *m.arch();
    let mut scratch = vec![0.0f32; m.scratch_len()];
    let mut logits = vec![0.0f32; a.classes];
    let mut out = Vec::with_capacity(images.len());
    for path in images {
        let pixels = crate::data::folder::load_image(path, (a.input.h, a.input.w), a.input.c)
            .with_context(|| format!("cannot use image {}", path.display()))?;
        let input: Vec<f32> = pixels.iter().map(|&v| v as f32 / 255.0).collect();
        tsc_core::infer(&m, &input, &mut scratch, &mut logits)
            .map_err(|e| anyhow!("inference failed on {}: {e:?}", path.display()))?;
        out.push(logits.clone());
    }
    Ok(out)
}

/// Classify image files with core on the CPU: `(class, probability)` per file.
pub fn classify(model_bytes: &[u8], images: &[PathBuf]) -> Result<Vec<(usize, f32)>> {
    Ok(classify_logits(model_bytes, images)?
        .iter()
        .map(|l| {
            let best = tsc_core::layers::argmax(l).unwrap_or(0);
            (best, softmax(l)[best])
        })
        .collect())
}

/// The class names of a model, the index where a class has none.
fn class_names(m: &Model) -> Vec<String> {
    (0..m.arch().classes)
        .map(|c| {
            m.class_name(c)
                .filter(|s| !s.is_empty())
                .map_or(c.to_string(), str::to_string)
        })
        .collect()
}

/// What `predict` prints: the model, its class names and each file's logits.
pub struct Predictions {
    pub model: PathBuf,
    pub classes: Vec<String>,
    pub images: Vec<(PathBuf, Vec<f32>)>,
}

impl Predictions {
    /// The output in `format`; `logits` adds every class's logit and probability to the text
    /// form (JSON and CSV always carry them).
    pub fn render(&self, format: Format, logits: bool) -> String {
        match format {
            Format::Text => self.text(logits),
            Format::Json => self.json(),
            Format::Csv => self.csv(),
        }
    }

    fn best(l: &[f32]) -> usize {
        tsc_core::layers::argmax(l).unwrap_or(0)
    }

    fn text(&self, logits: bool) -> String {
        let mut out = String::new();
        for (path, l) in &self.images {
            let best = Self::best(l);
            let p = softmax(l)[best];
            out += &format!(
                "{}: {} ({:.1}%)\n",
                path.display(),
                self.classes[best],
                100.0 * p
            );
            if logits {
                for (c, (z, p)) in l.iter().zip(softmax_f64(l)).enumerate() {
                    out += &format!("  {}: logit {z} probability {p}\n", self.classes[c]);
                }
            }
        }
        out
    }

    fn json(&self) -> String {
        let names: Vec<String> = self.classes.iter().map(|s| json_str(s)).collect();
        let images: Vec<String> = self
            .images
            .iter()
            .map(|(path, l)| {
                let best = Self::best(l);
                format!(
                    "    {{\"file\": {}, \"predicted\": {best}, \"name\": {}, \"logits\": {}, \"probabilities\": {}}}",
                    json_str(&path.to_string_lossy()),
                    json_str(&self.classes[best]),
                    json_nums(l),
                    json_nums(&softmax_f64(l))
                )
            })
            .collect();
        format!(
            "{{\n  \"model\": {},\n  \"classes\": [{}],\n  \"images\": [\n{}\n  ]\n}}\n",
            json_str(&self.model.to_string_lossy()),
            names.join(", "),
            images.join(",\n")
        )
    }

    /// Long form, one row per (file, class): what a data frame reads without reshaping.
    fn csv(&self) -> String {
        let mut out = String::from("file,predicted,class,name,logit,probability\n");
        for (path, l) in &self.images {
            let (file, best) = (csv_field(&path.to_string_lossy()), Self::best(l));
            for (c, (z, p)) in l.iter().zip(softmax_f64(l)).enumerate() {
                let name = csv_field(&self.classes[c]);
                out += &format!("{file},{best},{c},{name},{z},{p}\n");
            }
        }
        out
    }
}

/// `trainer predict MODEL IMAGE... [--logits] [--format text|json|csv]`: classify image files
/// with core on the CPU.
pub fn predict(model_path: &Path, images: &[PathBuf], format: Format, logits: bool) -> Result<()> {
    if images.is_empty() {
        bail!("no image given: trainer predict MODEL IMAGE...");
    }
    let bytes = read_model(model_path)?;
    let p = Predictions {
        model: model_path.to_path_buf(),
        classes: class_names(&parse(&bytes)),
        images: images
            .iter()
            .cloned()
            .zip(classify_logits(&bytes, images)?)
            .collect(),
    };
    print!("{}", p.render(format, logits));
    Ok(())
}

/// Parameter and multiply-add counts (the paper's Tables 2 and 3), all walked from core's
/// description of the network (`Arch::for_each_tensor`, `Arch::branch`).
///
/// Conventions: parameters as torchvision counts them (conv and fc weights, fc bias, BN
/// γ and β; running statistics are buffers). "GFLOPs" are multiply-adds of the convs and
/// the fc layer for one image, as in the paper and torchvision (BN, ReLU, pooling and the
/// residual additions are not counted); SE units add their two fcs' weights and biases to
/// the parameters, and their fcs plus one operation per element for the pool and for the
/// scale to the GFLOPs (the convention that gives SENet's published figures).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Counts {
    /// The network without step sizes: the baseline ResNet's parameters.
    pub params: usize,
    /// Trainable parameters while training: `params` plus Δt (`indp`) or the controller.
    pub train_params: usize,
    /// Parameters for inference as the paper counts them: `params` plus one Δt vector per
    /// block (the step sizes kept after training; none for `fixed`).
    pub infer_params: usize,
    /// Numbers in the folded model file: BN folded into conv biases, Δt into the last conv.
    pub folded_params: usize,
    /// Controller parameters alone (Table 1).
    pub controller_params: usize,
    /// Multiply-adds of one inference (equal for the checkpoint and the folded model).
    pub infer_macs: usize,
    /// `infer_macs` plus the controller's work for one step: the weight summary (one add per
    /// summarised weight) and its fc/LSTM multiply-adds. The controller runs once per step,
    /// not per image; counted here per image as if the batch were 1 (an upper bound).
    pub train_macs: usize,
}

/// Count parameters and multiply-adds of an architecture.
pub fn count(a: &Arch) -> Counts {
    let (mut params, mut controller_params, mut dt_params) = (0, 0, 0);
    a.for_each_tensor::<()>(ModelKind::Checkpoint, |id, d| {
        let n = d.elems().unwrap_or(0);
        match id {
            TensorId::StemBn(BnField::Mean | BnField::Var) => {}
            TensorId::Block { part, .. } => match part {
                BlockPart::Bn(_, BnField::Mean | BnField::Var)
                | BlockPart::ProjBn(BnField::Mean | BnField::Var) => {}
                BlockPart::Dt => dt_params += n,
                BlockPart::Ctl(_) => controller_params += n,
                _ => params += n,
            },
            TensorId::StageCtl { .. } => controller_params += n,
            _ => params += n,
        }
        Ok(())
    })
    .ok();
    let mut folded_params = 0;
    a.for_each_tensor::<()>(ModelKind::Folded, |_, d| {
        folded_params += d.elems().unwrap_or(0);
        Ok(())
    })
    .ok();
    let conv_macs = |c: &Conv2d| {
        let o = c.output().unwrap_or_default();
        o.len() * c.kh * c.kw * (c.input.c / c.groups.max(1))
    };
    let mut macs = conv_macs(&a.stem_conv());
    let (mut ctl, mut steps) = (0, 0);
    for (s, st) in a.stages().iter().enumerate() {
        let (c, h, kk) = (st.width, a.hidden(s), a.summary_len(s));
        for b in 0..st.blocks {
            let br = a.branch(s, b);
            for bc in br.convs() {
                macs += conv_macs(&bc.conv);
            }
            if let Some(p) = a.projection(s, b) {
                macs += conv_macs(&p);
            }
            // The SE unit: its pool (an add per element), two fcs and channel-wise scale (a
            // multiply per element); this reproduces Hu et al.'s 3.87 / 7.60 GFLOPs.
            if a.se_reduction != 0 {
                macs += 2 * a.block_geom(s, b).output.len() + 2 * c * a.se_hidden(c);
            }
            let summary: usize = br
                .convs()
                .iter()
                .filter(|bc| bc.summary)
                .map(|bc| bc.conv.weight_len().unwrap_or(0))
                .sum();
            ctl += match a.step {
                StepMode::TwoFc => summary + h * kk + c * h,
                StepMode::Lstm => summary + h * kk + 4 * h * 2 * h + c * h,
                _ => 0,
            };
            steps += c;
        }
    }
    macs += a.classes * a.head_input().c;
    let kept_steps = if matches!(a.step, StepMode::Fixed(_)) {
        0
    } else {
        steps
    };
    Counts {
        params,
        train_params: params + controller_params + dt_params,
        infer_params: params + kept_steps,
        folded_params,
        controller_params: controller_params + dt_params,
        infer_macs: macs,
        train_macs: macs + ctl,
    }
}

/// Prints the counts table of `info`.
fn print_counts(c: &Counts) {
    println!("{:<10} {:>14} {:>10}", "", "params (M)", "GFLOPs");
    println!(
        "{:<10} {:>14.4} {:>10.4}",
        "training",
        1e-6 * c.train_params as f64,
        1e-9 * c.train_macs as f64
    );
    println!(
        "{:<10} {:>14.4} {:>10.4}",
        "inference",
        1e-6 * c.infer_params as f64,
        1e-9 * c.infer_macs as f64
    );
    println!(
        "baseline network: {:.4} M parameters; folded model file: {} numbers; controller: {} \
         parameters (dropped at export)",
        1e-6 * c.params as f64,
        c.folded_params,
        c.controller_params
    );
    println!("GFLOPs = multiply-adds of the convs and fc for one image (paper, torchvision); training adds the controller's work once per step");
}

/// `trainer info MODEL`: architecture, parameters and FLOPs for training and inference.
pub fn info(path: &Path) -> Result<()> {
    let bytes = read_model(path)?;
    let m = parse(&bytes);
    let a = m.arch();
    println!(
        "{}: {:?} model, {}",
        path.display(),
        m.kind(),
        describe_arch(a)
    );
    print_counts(&count(a));
    println!(
        "inference scratch: {} f32 ({} KiB)",
        m.scratch_len(),
        m.scratch_len() * 4 / 1024
    );
    Ok(())
}

/// `trainer info --arch NAME ...`: the counts of an architecture without a checkpoint.
pub fn info_arch(a: &Arch) -> Result<()> {
    println!("{}", describe_arch(a));
    print_counts(&count(a));
    println!(
        "inference scratch (folded, one image): {} f32 ({} KiB)",
        a.scratch_len(ModelKind::Folded),
        a.scratch_len(ModelKind::Folded) * 4 / 1024
    );
    Ok(())
}

/// Every block's Δt, recomputed by core from a checkpoint: `(stage, block, vector)`.
pub fn block_steps(bytes: &[u8]) -> Result<Vec<(usize, usize, Vec<f32>)>> {
    let m = Model::parse(bytes).map_err(|e| anyhow!("{e}"))?;
    if m.kind() != ModelKind::Checkpoint {
        bail!("step sizes are folded into the weights of an exported model: give a checkpoint");
    }
    let a = *m.arch();
    let mut scratch = vec![0.0f32; a.controller_scratch_len()];
    let mut out = Vec::new();
    for (s, st) in a.stages().iter().enumerate() {
        let mut dt = vec![0.0f32; st.blocks * st.width];
        tsc_core::controller::compute_steps(&m, s, &mut dt, &mut scratch)
            .map_err(|e| anyhow!("computing steps of stage {s}: {e:?}"))?;
        for b in 0..st.blocks {
            out.push((s, b, dt[b * st.width..(b + 1) * st.width].to_vec()));
        }
    }
    Ok(out)
}

/// `trainer steps CHECKPOINT... [--csv FILE] [--png FILE]`: per-block mean/min/max Δt (paper
/// Table 4) of each checkpoint; the full vectors as CSV (`stage,block,channel,dt` for one
/// checkpoint, with a leading `checkpoint` column for several) and the per-block mean with its
/// min–max band as a PNG.
pub fn steps(paths: &[PathBuf], csv: Option<&Path>, png: Option<&Path>) -> Result<()> {
    if paths.is_empty() {
        bail!("no checkpoint given: trainer steps CHECKPOINT...");
    }
    let many = paths.len() > 1;
    let mut all = Vec::new();
    let mut text = String::from(if many {
        "checkpoint,stage,block,channel,dt\n"
    } else {
        "stage,block,channel,dt\n"
    });
    for path in paths {
        let bytes = read_model(path)?;
        let steps = block_steps(&bytes).with_context(|| format!("{}", path.display()))?;
        let label = crate::analysis::checkpoint_label(path, parse(&bytes).arch());
        if many {
            println!("{label}: {}", path.display());
        }
        println!("{:<8} {:>8} {:>8} {:>8}", "block", "mean Δt", "min", "max");
        let prefix = if many {
            format!("{},", path.display().to_string().replace(',', "_"))
        } else {
            String::new()
        };
        for (s, b, v) in &steps {
            let mean = v.iter().sum::<f32>() / v.len() as f32;
            let min = v.iter().cloned().fold(f32::INFINITY, f32::min);
            let max = v.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
            println!(
                "{:<8} {:>8.4} {:>8.4} {:>8.4}",
                format!("s{s}.b{b}"),
                mean,
                min,
                max
            );
            for (c, x) in v.iter().enumerate() {
                text.push_str(&format!("{prefix}{s},{b},{c},{x}\n"));
            }
        }
        all.push((label, steps));
    }
    if let Some(csv) = csv {
        write_atomic(csv, text.as_bytes())?;
        println!("wrote {}", csv.display());
    }
    if let Some(png) = png {
        crate::analysis::steps_plot::plot(&all, png)?;
        println!("wrote {}", png.display());
    }
    Ok(())
}
