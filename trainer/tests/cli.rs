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
    for cmd in [
        &["info", "--arch"][..],
        &["train", "--max-steps", "1", "--arch"][..],
    ] {
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

/// A batch whose largest tensor exceeds the adapter's storage-buffer limit panicked inside
/// wgpu's validation; it is now one line naming --batch and the largest batch that fits.
/// (lavapipe: 128 MiB per binding; other adapters give other numbers, so only the shape of
/// the message is asserted, and only where the batch is over the limit.)
#[test]
fn a_batch_over_the_binding_limit_names_the_largest_that_fits() {
    let out = trainer(&["devices"], &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    if !text.contains("binding 128 MiB") && !text.contains("128 MiB") {
        eprintln!("SKIPPED: the limits of this adapter are not lavapipe's:\n{text}");
        return;
    }
    let dir = scratch("binding");
    let run = dir.join("run");
    fails_naming(
        &[
            "train",
            "--dataset",
            "digits",
            "--width",
            "24",
            "--batch",
            "1438",
            "--max-steps",
            "1",
            "--epochs",
            "1",
            "--out",
            run.to_str().unwrap(),
        ],
        "the largest --batch that fits is 1365",
    );
    assert!(!run.exists(), "the refused run created its folder");
    let _ = std::fs::remove_dir_all(&dir);
    fails_naming(
        &["bench", "kernels", "--batch", "4096", "--reps", "1"],
        "the largest --batch that fits is",
    );
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

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("tsc-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The command of a tiny digits run into `out` (extra flags appended).
fn tiny_cmd(out: &std::path::Path, extra: &[&str], env: &[(&str, &str)]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_trainer"));
    c.args([
        "train",
        "--dataset",
        "digits",
        "--depth",
        "8",
        "--width",
        "0.25",
        "--batch",
        "16",
        "--max-steps",
        "2",
        "--out",
        out.to_str().unwrap(),
    ])
    .args(extra);
    for (k, v) in env {
        c.env(k, v);
    }
    c
}

/// A tiny digits run into `out` (extra flags appended).
fn tiny_run(out: &std::path::Path, extra: &[&str], env: &[(&str, &str)]) -> Output {
    tiny_cmd(out, extra, env)
        .output()
        .expect("run the trainer binary")
}

fn ok(out: &Output) {
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn files(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let bytes = std::fs::read(e.path()).unwrap_or_default();
            (e.file_name().to_string_lossy().into_owned(), bytes)
        })
        .collect();
    v.sort();
    v
}

/// A second `train --out` on a run refuses and changes nothing; `--overwrite` replaces it;
/// `--overwrite` with `--resume` is a contradiction.
#[test]
fn an_existing_run_folder_is_not_overwritten() {
    let dir = scratch("overwrite");
    ok(&tiny_run(&dir, &["--epochs", "1"], &[]));
    let before = files(&dir);
    let again = tiny_run(&dir, &["--epochs", "1"], &[]);
    assert!(!again.status.success());
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(
        err.lines().count() == 1 && err.contains("already holds a run") && err.contains("--resume"),
        "{err}"
    );
    assert_eq!(files(&dir), before, "the refused run touched the folder");
    ok(&tiny_run(&dir, &["--epochs", "1", "--overwrite"], &[]));
    let d = dir.to_str().unwrap();
    fails_naming(&["train", "--resume", d, "--overwrite"], "--overwrite");
    // --resume keeps the run's config: a changed flag is refused by name (it was applied
    // silently and config.toml rewritten), an unchanged one is accepted.
    fails_naming(&["train", "--resume", d, "--batch", "32"], "batch 16 -> 32");
    fails_naming(
        &["train", "--resume", d, "--se", "2"],
        "se_reduction 0 -> 2",
    );
    let config = std::fs::read(dir.join("config.toml")).unwrap();
    ok(&trainer(
        &["train", "--resume", d, "--batch", "16", "--epochs", "2"],
        &[],
    ));
    let after = std::fs::read_to_string(dir.join("config.toml")).unwrap();
    let before = String::from_utf8(config).unwrap();
    assert_eq!(
        before.replace("epochs = 1", "epochs = 2"),
        after,
        "config.toml changed beyond epochs"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A kill between an epoch's metrics row and its checkpoint (injected abort) leaves metrics
/// one row ahead; the resumed run drops that row and re-runs the epoch, so metrics.csv ends
/// with one row per epoch, in order. A stale temporary file of a killed write is removed.
#[test]
fn metrics_and_checkpoint_stay_consistent_across_a_kill() {
    let dir = scratch("fault");
    let killed = tiny_run(
        &dir,
        &["--epochs", "3"],
        &[("TSC_INJECT_FAULT", "after-metrics:2")],
    );
    assert!(!killed.status.success(), "the injected fault did not fire");
    let rows = |dir: &std::path::Path| -> Vec<String> {
        std::fs::read_to_string(dir.join("metrics.csv"))
            .unwrap()
            .lines()
            .skip(1)
            .map(|l| l.split(',').next().unwrap().to_string())
            .collect()
    };
    assert_eq!(rows(&dir), ["1", "2"], "row 2 written before the kill");
    let stale = dir.join(".checkpoint.tscm.tmp99999-0");
    std::fs::write(&stale, b"half a checkpoint").unwrap();
    ok(&trainer(&["train", "--resume", dir.to_str().unwrap()], &[]));
    assert_eq!(rows(&dir), ["1", "2", "3"]);
    assert!(!stale.exists(), "stale temporary file left behind");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `train … | head -1` and `info … | head -0`: the pipe closes; a reader exits without a
/// panic message, training finishes and writes its checkpoint.
#[test]
fn a_closed_stdout_neither_panics_nor_stops_training() {
    use std::process::Stdio;
    let spawn = |mut c: Command| {
        let mut child = c
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take()); // the reader of the pipe goes away at once
        child.wait_with_output().unwrap()
    };
    let mut info = Command::new(env!("CARGO_BIN_EXE_trainer"));
    info.args(["info", "--arch", "resnet50", "--steps", "lstm"]);
    let out = spawn(info);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !err.contains("panicked") && !err.contains("Broken pipe"),
        "{err}"
    );
    let dir = scratch("pipe");
    let out = spawn(tiny_cmd(&dir, &["--epochs", "2"], &[]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "training stopped: {err}");
    let metrics = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    assert_eq!(metrics.lines().count(), 3, "{metrics}");
    assert!(dir.join("checkpoint.tscm").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

/// A checkpoint whose optimizer state holds a NaN is refused on --resume, naming the tensor
/// (it used to surface steps later as "training diverged").
#[test]
fn a_nan_in_the_optimizer_state_is_refused_on_resume() {
    let dir = scratch("nan-opt");
    ok(&tiny_run(&dir, &["--epochs", "1"], &[]));
    let ck = dir.join("checkpoint.tscm");
    let mut host = tsc_trainer::model::HostModel::load(&ck).unwrap();
    let t = host
        .extras
        .iter_mut()
        .find(|t| t.name.starts_with("opt.") && t.name.ends_with("conv1.w"))
        .expect("momentum of a conv");
    t.data[3] = f32::NAN;
    let name = t.name.clone();
    host.save(&ck).unwrap();
    fails_naming(
        &["train", "--resume", dir.to_str().unwrap(), "--epochs", "2"],
        &name,
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn png(path: &std::path::Path, shade: u8) {
    let img = image::RgbImage::from_pixel(8, 8, image::Rgb([shade, 255 - shade, shade / 2]));
    img.save(path).unwrap();
}

/// Image folders: `eval` compares class names (a cat/dog model scored 0% error on an
/// apple/banana folder), and an empty class folder is refused by name.
#[test]
fn image_folder_classes_are_checked_by_name() {
    let root = scratch("classes");
    let make = |name: &str, classes: &[&str], per: usize| {
        let dir = root.join(name);
        for (k, c) in classes.iter().enumerate() {
            std::fs::create_dir_all(dir.join(c)).unwrap();
            for i in 0..per {
                png(
                    &dir.join(c).join(format!("{i}.png")),
                    (40 * k + 7 * i) as u8,
                );
            }
        }
        dir
    };
    let pets = make("pets", &["cat", "dog"], 6);
    let fruit = make("fruit", &["apple", "banana"], 6);
    let run = root.join("run");
    let p = pets.to_str().unwrap();
    let common = [
        "--dataset",
        "folder",
        "--image-size",
        "8",
        "--depth",
        "8",
        "--width",
        "0.25",
        "--batch",
        "4",
        "--epochs",
        "1",
        "--max-steps",
        "1",
    ];
    let mut args = vec!["train", "--data", p, "--out", run.to_str().unwrap()];
    args.extend_from_slice(&common);
    ok(&trainer(&args, &[]));
    let ck = run.join("checkpoint.tscm");
    let ck = ck.to_str().unwrap();
    let f = fruit.to_str().unwrap();
    fails_naming(
        &["eval", ck, "--dataset", "folder", "--data", f],
        "\"cat\" vs \"apple\"",
    );
    ok(&trainer(
        &["eval", ck, "--dataset", "folder", "--data", p],
        &[],
    ));
    // An empty class folder among the training classes.
    std::fs::create_dir_all(pets.join("emu")).unwrap();
    let run2 = root.join("run2");
    let mut args = vec!["train", "--data", p, "--out", run2.to_str().unwrap()];
    args.extend_from_slice(&common);
    fails_naming(&args, "\"emu\" has no PNG or JPEG images");
    let _ = std::fs::remove_dir_all(&root);
}

/// `eval --dataset cifar10` needs only test_batch.bin (it demanded the training batches).
#[test]
fn cifar_eval_needs_only_the_test_batch() {
    let dir = scratch("cifar-test-only");
    let mut rng = tsc_trainer::rng::Rng::new(5);
    let mut bytes = Vec::new();
    for i in 0..12u8 {
        bytes.push(i % 10);
        bytes.extend((0..3072).map(|_| rng.below_usize(256) as u8));
    }
    std::fs::write(dir.join("test_batch.bin"), bytes).unwrap();
    let cfg = tsc_trainer::config::TrainConfig {
        depth: 8,
        width: 0.25,
        steps: "fixed:1".into(),
        ..Default::default()
    };
    let a = tsc_trainer::model::arch_for(
        &cfg,
        tsc_core::Shape3::new(32, 32, 3),
        10,
        &tsc_core::arch::CIFAR10_MEAN,
        &tsc_core::arch::CIFAR10_STD,
    )
    .unwrap();
    let names = tsc_trainer::data::cifar::CIFAR10_CLASSES
        .iter()
        .map(|s| s.to_string())
        .collect();
    let host = tsc_trainer::model::HostModel::init(a, names, 1).unwrap();
    let ck = dir.join("ck.tscm");
    host.save(&ck).unwrap();
    let out = trainer(
        &[
            "eval",
            ck.to_str().unwrap(),
            "--cpu",
            "--dataset",
            "cifar10",
            "--data",
            dir.to_str().unwrap(),
        ],
        &[],
    );
    ok(&out);
    assert!(String::from_utf8_lossy(&out.stdout).contains("12"));
    let _ = std::fs::remove_dir_all(&dir);
}
