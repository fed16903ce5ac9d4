//! Fuzzes `Model::parse`: any input must give `Ok` or a typed `Err`, never a panic. Accepted
//! models (small ones) are also run through `infer`, and checkpoints through `fold`, whose
//! output must parse again.
//!
//! Seed corpus (from the repository root):
//! `cargo run -p tsc-core --features std --example write_seed_corpus -- core/fuzz/corpus/parse`
//! (or any model files written by the trainer).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tsc_core::{fold::fold_to_vec, infer, Model, ModelKind};

fuzz_target!(|data: &[u8]| {
    let Ok(m) = Model::parse(data) else { return };
    let a = *m.arch();
    if m.scratch_len() > 1 << 20 || a.input.len() > 1 << 16 {
        return;
    }
    let x = vec![0.5f32; a.input.len()];
    let mut scratch = vec![0.0f32; m.scratch_len()];
    let mut logits = vec![0.0f32; a.classes];
    let _ = infer(&m, &x, &mut scratch, &mut logits);
    if m.kind() == ModelKind::Checkpoint {
        if let Ok(f) = fold_to_vec(&m) {
            Model::parse(&f).expect("folding a valid checkpoint gives a valid model");
        }
    }
});
