//! Replays the committed fuzz corpus (`core/fuzz/corpus/<target>/*`) through the fuzz
//! targets' entry functions ([`tsc_core::fuzzing`]) as an ordinary test, without a sanitizer
//! build: every file, and a few hundred deterministic mutants of each (bit flips, bad
//! words, truncations, cut or repeated ranges), through both `parse_raw` and `parse_fixed`.
//! Any panic is a failure. The valid seeds must still parse, so the corpus keeps reaching
//! past the header when the format changes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use tsc_core::fuzzing::{fix_up, mutations, parse_fixed, parse_raw};
use tsc_core::Model;

/// Mutants per corpus file and entry function.
const MUTANTS: usize = 300;
/// The committed corpus must stay small (CI time, repository size): minimise it
/// (`cargo fuzz cmin`) before committing what a fuzz run added.
const MAX_CORPUS_BYTES: usize = 512 * 1024;

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus")
}

/// Every corpus file of every target, deduplicated by content: bytes → name.
fn corpus() -> BTreeMap<Vec<u8>, String> {
    let mut files = BTreeMap::new();
    let mut total = 0;
    for target in ["parse", "parse_fixed"] {
        let dir = corpus_dir().join(target);
        let entries = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e} (the corpus is committed)", dir.display()));
        for e in entries {
            let p = e.unwrap().path();
            if p.is_file() {
                let b = std::fs::read(&p).unwrap();
                total += b.len();
                files.entry(b).or_insert_with(|| {
                    format!("{target}/{}", p.file_name().unwrap().to_string_lossy())
                });
            }
        }
    }
    assert!(
        total <= MAX_CORPUS_BYTES,
        "the committed core corpus is {total} bytes (at most {MAX_CORPUS_BYTES}): minimise it"
    );
    files
}

#[test]
fn valid_seeds_still_parse() {
    let files = corpus();
    let mut valid = 0;
    for (b, name) in &files {
        let seed = name.rsplit('/').next().unwrap();
        if seed.starts_with("seed-") && !seed.starts_with("seed-near-") {
            Model::parse(b).unwrap_or_else(|e| panic!("{name} no longer parses: {e}"));
            valid += 1;
        }
    }
    assert!(valid >= 10, "only {valid} valid seeds in the corpus");
}

#[test]
fn corpus_and_mutants_never_panic() {
    let files = corpus();
    for (i, (b, name)) in files.iter().enumerate() {
        for (entry, f) in [
            ("parse_raw", parse_raw as fn(&[u8])),
            ("parse_fixed", parse_fixed),
        ] {
            let run = |input: &[u8], what: &str| {
                if std::panic::catch_unwind(|| f(input)).is_err() {
                    let out = std::env::temp_dir().join(format!("tsc-fuzz-crash-{entry}.bin"));
                    std::fs::write(&out, input).unwrap();
                    panic!(
                        "{entry} panicked on {what} of {name} (input saved as {})",
                        out.display()
                    );
                }
            };
            run(b, "the file");
            for (k, m) in mutations(b, MUTANTS, i as u64).enumerate() {
                run(&m, &format!("mutant {k}"));
            }
        }
    }
}

#[test]
fn fix_up_repairs_the_framing() {
    let files = corpus();
    let (b, _) = files
        .iter()
        .find(|(_, n)| n.ends_with("seed-near-bad-crc.tscm"))
        .unwrap();
    assert!(Model::parse(b).is_err());
    Model::parse(&fix_up(b)).expect("the bad-CRC seed parses once repaired");
    assert_eq!(fix_up(b"short").as_slice(), b"short");
}
