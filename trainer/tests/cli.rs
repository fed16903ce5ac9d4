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
