//! Writes a few small valid model files (checkpoints of every step mode and shortcut kind,
//! and their folded forms) into a directory, as a seed corpus for the fuzz target.
//!
//! `cargo run -p tsc-core --features std --example write_seed_corpus -- core/fuzz/corpus/parse`

use tsc_core::fold::fold_to_vec;
use tsc_core::testutil::random_checkpoint;
use tsc_core::{Arch, Model, ShortcutKind, StageSpec, StepMode};

fn main() {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "corpus/parse".into());
    std::fs::create_dir_all(&dir).expect("create corpus dir");
    let mut n = 0;
    for (i, step) in [
        StepMode::Fixed(1.0),
        StepMode::Indp,
        StepMode::TwoFc,
        StepMode::Lstm,
    ]
    .into_iter()
    .enumerate()
    {
        for sc in [ShortcutKind::A, ShortcutKind::B] {
            let mut a = Arch::cifar(1, 2, step, sc);
            a.input.h = 5;
            a.input.w = 5;
            a.classes = 2;
            a.stages[2] = StageSpec {
                blocks: 1,
                width: 4,
                stride: 1,
            };
            let ck = random_checkpoint(&a, i as u64);
            let f = fold_to_vec(&Model::parse(&ck).unwrap()).unwrap();
            for bytes in [ck, f] {
                std::fs::write(format!("{dir}/seed{n:02}.tscm"), bytes).expect("write");
                n += 1;
            }
        }
    }
    println!("wrote {n} files to {dir}");
}
