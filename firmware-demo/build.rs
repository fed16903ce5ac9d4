//! Reads the model and test images the firmware embeds, checks that they fit the target, and
//! emits the constants that size the static buffers (`$OUT_DIR/model_consts.rs`) and the
//! linker's `memory.x`.
//!
//! Environment (all optional):
//! - `TSC_MODEL`: model file (`.tscm`, folded or checkpoint). Default
//!   `firmware-demo/models/default.tscm`. Relative paths are relative to `firmware-demo/`.
//! - `TSC_IMAGES`: test images (format in `src/images.rs`). Default: the model's path with
//!   `.tscm` replaced by `-images.bin`.
//! - `TSC_FLASH_KIB`, `TSC_RAM_KIB`: memory of the target (default 4096 each: QEMU's
//!   mps2-an386). Set them to a real MCU's sizes to check that a model fits it.
//!
//! A model that does not parse, images that do not match it, or a model that does not fit
//! the memory is a build error (a panic here) with a message saying why.

#[path = "src/images.rs"]
mod images;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use tsc_core::{Model, ModelKind};

/// RAM kept free for the stack (the firmware's own frames are small: logits, formatting)
/// and the few other statics.
const STACK_RESERVE: usize = 16 * 1024;
/// Flash kept for the code (about 72 KiB in release: core, float formatting, semihosting).
const CODE_RESERVE: usize = 96 * 1024;

fn fail(msg: String) -> ! {
    panic!("\n\nfirmware-demo build error: {msg}\n\n");
}

fn env_path(name: &str, default: PathBuf, base: &Path) -> PathBuf {
    println!("cargo:rerun-if-env-changed={name}");
    match std::env::var_os(name) {
        Some(v) if !v.is_empty() => {
            let p = PathBuf::from(v);
            if p.is_absolute() {
                p
            } else {
                base.join(p)
            }
        }
        _ => default,
    }
}

fn env_kib(name: &str, default: usize) -> usize {
    println!("cargo:rerun-if-env-changed={name}");
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => match v.trim().parse::<usize>() {
            Ok(k) if k > 0 => k * 1024,
            _ => fail(format!("{name}={v:?} is not a positive number of KiB")),
        },
        _ => default * 1024,
    }
}

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap());

    let model_path = env_path(
        "TSC_MODEL",
        manifest.join("models").join("default.tscm"),
        &manifest,
    );
    let default_images = {
        let s = model_path.to_string_lossy();
        PathBuf::from(match s.strip_suffix(".tscm") {
            Some(stem) => format!("{stem}-images.bin"),
            None => format!("{s}-images.bin"),
        })
    };
    let images_path = env_path("TSC_IMAGES", default_images, &manifest);
    let flash = env_kib("TSC_FLASH_KIB", 4096);
    let ram = env_kib("TSC_RAM_KIB", 4096);
    println!("cargo:rerun-if-changed={}", model_path.display());
    println!("cargo:rerun-if-changed={}", images_path.display());
    println!("cargo:rerun-if-changed=src/images.rs");

    let model_bytes = std::fs::read(&model_path).unwrap_or_else(|e| {
        fail(format!(
            "cannot read the model {} ({e}); set TSC_MODEL to a model file (.tscm)",
            model_path.display()
        ))
    });
    let model = Model::parse(&model_bytes).unwrap_or_else(|e| {
        fail(format!(
            "{} is not a valid model file: {e}",
            model_path.display()
        ))
    });
    let arch = *model.arch();
    if model.kind() == ModelKind::Checkpoint {
        println!(
            "cargo:warning={} is an unfolded checkpoint: it runs, but fold it \
             (`trainer export`) for less flash, scratch and time",
            model_path.display()
        );
    }
    let image_bytes = std::fs::read(&images_path).unwrap_or_else(|e| {
        fail(format!(
            "cannot read the test images {} ({e}); create them with \
             `scripts/firmware-model.sh MODEL IMAGES` or set TSC_IMAGES",
            images_path.display()
        ))
    });
    let imgs = images::Images::parse(&image_bytes).unwrap_or_else(|e| {
        fail(format!(
            "{} is not a valid test-image file: {e}",
            images_path.display()
        ))
    });
    let inp = arch.input;
    if (imgs.h, imgs.w, imgs.c) != (inp.h, inp.w, inp.c) {
        fail(format!(
            "the images in {} are {}x{}x{} but the model {} takes {}x{}x{}; \
             recreate them with `scripts/firmware-model.sh MODEL IMAGES`",
            images_path.display(),
            imgs.h,
            imgs.w,
            imgs.c,
            model_path.display(),
            inp.h,
            inp.w,
            inp.c
        ));
    }
    for i in 0..imgs.count {
        if imgs.label(i) as usize >= arch.classes {
            fail(format!(
                "image {i} of {} has label {} but the model has {} classes",
                images_path.display(),
                imgs.label(i),
                arch.classes
            ));
        }
    }

    let scratch_len = model.scratch_len();
    let input_len = inp.len();
    let ram_needed = 4 * (scratch_len + input_len) + STACK_RESERVE;
    if ram_needed > ram {
        fail(format!(
            "the model {} does not fit in RAM: inference needs a scratch buffer of {scratch_len} \
             f32 ({} bytes) plus the input image ({} bytes) plus {STACK_RESERVE} bytes of stack, \
             {ram_needed} bytes in all, but the RAM budget is {ram} bytes (TSC_RAM_KIB). \
             Use a smaller model (fewer channels, a smaller input) or a target with more RAM.",
            model_path.display(),
            4 * scratch_len,
            4 * input_len,
        ));
    }
    let flash_needed = model_bytes.len() + image_bytes.len() + CODE_RESERVE;
    if flash_needed > flash {
        fail(format!(
            "the model {} does not fit in flash: model {} bytes + test images {} bytes + \
             {CODE_RESERVE} bytes reserved for code = {flash_needed} bytes, but the flash \
             budget is {flash} bytes (TSC_FLASH_KIB). Fold the model, shrink it, or embed \
             fewer test images.",
            model_path.display(),
            model_bytes.len(),
            image_bytes.len(),
        ));
    }

    std::fs::write(out.join("model.tscm"), &model_bytes).unwrap();
    std::fs::write(out.join("images.bin"), &image_bytes).unwrap();
    let mut consts = String::new();
    let _ = writeln!(
        consts,
        "// Generated by build.rs from {}.",
        model_path.display()
    );
    let _ = writeln!(
        consts,
        "/// f32 scratch for one inference (`Model::scratch_len`).\n\
         pub const SCRATCH_LEN: usize = {scratch_len};\n\
         /// Number of classes (logits).\npub const CLASSES: usize = {};\n\
         /// f32 values of one input image (h·w·c).\npub const INPUT_LEN: usize = {input_len};\n\
         /// Number of embedded test images.\npub const IMAGE_COUNT: usize = {};\n\
         /// File name of the embedded model, for the banner.\n\
         pub const MODEL_NAME: &str = {:?};",
        arch.classes,
        imgs.count,
        model_path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    );
    std::fs::write(out.join("model_consts.rs"), consts).unwrap();

    std::fs::write(
        out.join("memory.x"),
        format!(
            "/* Generated by build.rs (TSC_FLASH_KIB / TSC_RAM_KIB); default: QEMU mps2-an386 */\n\
             MEMORY\n{{\n  FLASH : ORIGIN = 0x00000000, LENGTH = {flash}\n  \
             RAM : ORIGIN = 0x20000000, LENGTH = {ram}\n}}\n"
        ),
    )
    .unwrap();
    println!("cargo:rustc-link-search={}", out.display());
    // Here rather than in .cargo/config.toml so that builds through --manifest-path link too.
    println!("cargo:rustc-link-arg-bins=-Tlink.x");
    println!("cargo:rerun-if-changed=build.rs");
}
