//! The `trainer` binary on flags that are out of range: a non-zero exit and one line on
//! stderr that names the flag, and no driver noise before it.

use std::process::{Command, Output};

fn trainer(args: &[&str], env_remove: &[&str]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_trainer"));
    c.args(args);
    for v in env_remove {
        c.env_remove(v);
    }
    c.output().expect("run the trainer binary")
}

/// A failure whose stderr is exactly one line, starting `error: ` and containing `needle`.
fn fails_naming(args: &[&str], needle: &str) {
    let out = trainer(args, &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{args:?} succeeded");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{args:?}: stderr is not one line:\n{err}");
    assert!(
        lines[0].starts_with("error: ") && lines[0].contains(needle),
        "{args:?}: {:?} does not name {needle:?}",
        lines[0]
    );
}

#[test]
fn negative_and_zero_values_get_the_flags_own_error() {
    // clap used to reject "-1" as an unknown argument before the flag's own check
    fails_naming(&["train", "--dataset", "digits", "--lr", "-1"], "--lr -1");
    fails_naming(
        &["train", "--dataset", "digits", "--momentum", "-0.5"],
        "--momentum",
    );
    // the bench commands printed an internal struct dump for zeros
    fails_naming(&["bench", "kernels", "--batch", "0"], "--batch 0");
    fails_naming(&["bench", "kernels", "--reps", "0"], "--reps 0");
    fails_naming(&["bench", "train", "--batch", "0"], "--batch 0");
    fails_naming(&["bench", "train", "--reps", "0"], "--reps 0");
    // one power-iteration step gave a bound 4× too low, silently
    fails_naming(&["stability", "no-such.tscm", "--iters", "0"], "--iters 0");
}

#[test]
fn family_flags_are_checked_in_their_own_words() {
    for cmd in [&["info", "--arch"][..], &["train", "--max-steps", "1", "--arch"][..]] {
        let with = |rest: &[&'static str]| [cmd, rest].concat();
        fails_naming(&with(&["cifar", "--se", "0"]), "--se 0");
        // ResNet-20's first stage is 16 wide: a 17-fold reduction leaves no hidden channel.
        fails_naming(&with(&["cifar", "--se", "17"]), "--se 17");
        fails_naming(&with(&["cifar", "--groups", "3"]), "--groups 3");
        fails_naming(&with(&["cifar", "--groups", "0"]), "--groups 0");
        fails_naming(&with(&["cifar", "--base-width", "8"]), "--base-width 8");
        // 8 groups of a middle width of 6 (16 · 3/64 · 8).
        fails_naming(
            &with(&["cifar-resnext", "--depth", "11", "--base-width", "3"]),
            "--groups 8",
        );
    }
}

#[test]
fn no_driver_noise_without_a_runtime_dir() {
    for unset in [true, false] {
        let mut c = Command::new(env!("CARGO_BIN_EXE_trainer"));
        c.arg("devices");
        if unset {
            c.env_remove("XDG_RUNTIME_DIR");
        } else {
            c.env("XDG_RUNTIME_DIR", "/nonexistent/runtime");
        }
        let out = c.output().expect("run the trainer binary");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "devices failed: {err}");
        assert!(
            !err.contains("XDG_RUNTIME_DIR"),
            "driver noise on stderr (unset: {unset}):\n{err}"
        );
    }
}

/// `export` never writes over its input: `--out` equal to the checkpoint (overwrote it with
/// the folded model) or a folder (a failed rename that left a temp file) is refused before
/// anything is written.
#[test]
fn export_refuses_to_overwrite_its_input() {
    let dir = std::env::temp_dir().join(format!("tsc-cli-export-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let d = dir.to_str().unwrap();
    let train = trainer(
        &[
            "train",
            "--dataset",
            "digits",
            "--depth",
            "8",
            "--epochs",
            "1",
            "--max-steps",
            "1",
            "--out",
            d,
        ],
        &[],
    );
    assert!(
        train.status.success(),
        "{}",
        String::from_utf8_lossy(&train.stderr)
    );
    let ck = dir.join("checkpoint.tscm");
    let before = std::fs::read(&ck).unwrap();
    let listing = || {
        let mut v: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        v.sort();
        v
    };
    let files = listing();
    let ck_s = ck.to_str().unwrap();
    let same = format!("{d}/./checkpoint.tscm");
    fails_naming(&["export", ck_s, "--out", ck_s], "is the checkpoint itself");
    fails_naming(
        &["export", ck_s, "--out", &same],
        "is the checkpoint itself",
    );
    fails_naming(&["export", ck_s, "--out", d], "is a folder");
    assert_eq!(
        std::fs::read(&ck).unwrap(),
        before,
        "the checkpoint changed"
    );
    assert_eq!(
        listing(),
        files,
        "files appeared or vanished in the run folder"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
