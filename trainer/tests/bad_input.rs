//! The bad-input table: every case runs the `trainer` binary on one bad model, image,
//! dataset, config, flag or run folder and asserts that it exits non-zero, that stderr is
//! one line starting `error: ` that names the problem (the case's needle), and that nothing
//! in a run folder that already holds a run changed (its files and their bytes).
//!
//! The inputs are made here (a checkpoint from `HostModel::init`, its folded export, broken
//! copies, image folders, CIFAR/MNIST files, configs); no case trains, and only a few open
//! the GPU.

use std::path::{Path, PathBuf};
use std::process::Command;
use tsc_trainer::config::TrainConfig;
use tsc_trainer::model::{arch_for, HostModel, HostTensor};

struct Fixture {
    dir: PathBuf,
}

impl Fixture {
    fn p(&self, name: &str) -> String {
        self.dir.join(name).to_str().unwrap().to_string()
    }
}

fn png(path: &Path, shade: u8) {
    image::GrayImage::from_pixel(8, 8, image::Luma([shade]))
        .save(path)
        .unwrap();
}

/// Every input the table refers to, in a fresh temporary folder.
fn fixture() -> Fixture {
    let dir = std::env::temp_dir().join(format!("tsc-bad-input-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let f = Fixture { dir: dir.clone() };
    let w = |name: &str, bytes: &[u8]| std::fs::write(dir.join(name), bytes).unwrap();

    // A run folder: config, a checkpoint of one finished epoch, its metrics row.
    let cfg = TrainConfig {
        depth: 8,
        width: 0.25,
        batch: 16,
        epochs: 1,
        ..Default::default()
    };
    let arch = arch_for(&cfg, tsc_core::Shape3::new(8, 8, 1), 10, &[0.3], &[0.4]).unwrap();
    let names = (0..10).map(|i| i.to_string()).collect();
    let mut host = HostModel::init(arch, names, 1).unwrap();
    host.extras.push(HostTensor {
        name: "meta.epoch".into(),
        shape: vec![1],
        data: vec![1.0],
    });
    let run = dir.join("run");
    std::fs::create_dir_all(&run).unwrap();
    std::fs::write(run.join("config.toml"), cfg.to_toml()).unwrap();
    host.save(&run.join("checkpoint.tscm")).unwrap();
    std::fs::write(
        run.join("metrics.csv"),
        "epoch,train_loss,train_err,test_loss,test_err,lr,images_per_s,seconds\n\
         1,2.0,0.8,2.1,0.8,0.1,100.0,1.0\n",
    )
    .unwrap();

    // Models: valid checkpoint, its folded export, and broken copies.
    let ck = host.encode().unwrap();
    w("ck.tscm", &ck);
    let folded = tsc_core::fold::fold_to_vec(&tsc_core::Model::parse(&ck).unwrap()).unwrap();
    w("folded.tscm", &folded);
    w("empty.tscm", b"");
    w("text.tscm", b"this is not a model\n");
    w("truncated.tscm", &ck[..100]);
    let mut flipped = ck.clone();
    flipped[ck.len() / 2] ^= 0x10;
    w("flipped.tscm", &flipped);
    let mut version = ck.clone();
    version[4] = 9;
    w("version.tscm", &version);

    // Images.
    png(&dir.join("ok.png"), 100);
    w("corrupt.png", b"\x89PNG\r\n\x1a\nnot really");
    w("notes.txt", b"hello");

    // Image folders: two classes; one with an empty class; one with no class folders.
    for (name, classes) in [
        ("fruit", &["apple", "banana"][..]),
        ("pets", &["cat", "dog"]),
    ] {
        for (k, c) in classes.iter().enumerate() {
            std::fs::create_dir_all(dir.join(name).join(c)).unwrap();
            for i in 0..4 {
                png(
                    &dir.join(name).join(c).join(format!("{i}.png")),
                    (60 * k + 9 * i) as u8,
                );
            }
        }
    }
    std::fs::create_dir_all(dir.join("pets/emu")).unwrap();
    std::fs::create_dir_all(dir.join("flat")).unwrap();
    png(&dir.join("flat/a.png"), 3);

    // CIFAR-10: a folder without files, and one with a truncated batch.
    std::fs::create_dir_all(dir.join("cifar-none")).unwrap();
    std::fs::create_dir_all(dir.join("cifar-trunc")).unwrap();
    w("cifar-trunc/data_batch_1.bin", &[1u8; 3073 + 100]);
    w("cifar-trunc/test_batch.bin", &[1u8; 3073]);
    std::fs::create_dir_all(dir.join("mnist-none")).unwrap();

    // Configs.
    w("unknown-key.toml", b"lr = 0.1\nlearning_rate = 0.2\n");
    w("bad-value.toml", b"lr = -1.0\n");
    w("not-toml.toml", b"this is = = not toml\n");
    f
}

/// Files and bytes of every run folder in the fixture.
fn snapshot(f: &Fixture) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(f.dir.join("run"))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn bad_inputs_fail_with_one_line_naming_the_problem() {
    let f = fixture();
    let p = |n: &str| f.p(n);
    let (ck, folded, run) = (p("ck.tscm"), p("folded.tscm"), p("run"));
    let train = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = ["train", "--max-steps", "1"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        v.extend(extra.iter().map(|s| s.to_string()));
        v.push("--out".into());
        v.push(p("never"));
        v
    };
    let cmd = |args: &[&str]| -> Vec<String> { args.iter().map(|s| s.to_string()).collect() };
    let cases: Vec<(&str, Vec<String>, String)> = vec![
        // Models.
        (
            "missing model",
            cmd(&["info", &p("nope.tscm")]),
            "nope.tscm".into(),
        ),
        (
            "empty model",
            cmd(&["info", &p("empty.tscm")]),
            "truncated".into(),
        ),
        (
            "text as model",
            cmd(&["info", &p("text.tscm")]),
            "bad magic".into(),
        ),
        (
            "truncated model",
            cmd(&["info", &p("truncated.tscm")]),
            "truncated".into(),
        ),
        (
            "flipped byte",
            cmd(&["info", &p("flipped.tscm")]),
            "CRC-32".into(),
        ),
        (
            "future version",
            cmd(&["info", &p("version.tscm")]),
            "version 9".into(),
        ),
        (
            "predict corrupt model",
            cmd(&["predict", &p("flipped.tscm"), &p("ok.png")]),
            "CRC-32".into(),
        ),
        (
            "predict corrupt image",
            cmd(&["predict", &ck, &p("corrupt.png")]),
            "corrupt.png".into(),
        ),
        (
            "predict missing image",
            cmd(&["predict", &ck, &p("gone.png")]),
            "gone.png".into(),
        ),
        (
            "predict text as image",
            cmd(&["predict", &ck, &p("notes.txt")]),
            "notes.txt".into(),
        ),
        (
            "export a folded model",
            cmd(&["export", &folded, "--out", &p("x.tscm")]),
            "folded".into(),
        ),
        (
            "export over its input",
            cmd(&["export", &ck, "--out", &ck]),
            "is the checkpoint itself".into(),
        ),
        (
            "export into a folder",
            cmd(&["export", &ck, "--out", &run]),
            "is a folder".into(),
        ),
        (
            "export over the run's checkpoint",
            cmd(&[
                "export",
                &format!("{run}/checkpoint.tscm"),
                "--out",
                &format!("{run}/./checkpoint.tscm"),
            ]),
            "is the checkpoint itself".into(),
        ),
        (
            "stability of a folded model",
            cmd(&["stability", &folded]),
            "folded".into(),
        ),
        (
            "grad of a folded model",
            cmd(&["grad", &folded, "--out", &p("g.tscm")]),
            "folded".into(),
        ),
        // Datasets and images.
        (
            "eval on another dataset's classes",
            cmd(&[
                "eval",
                &ck,
                "--cpu",
                "--dataset",
                "folder",
                "--data",
                &p("fruit"),
            ]),
            "classes".into(),
        ),
        (
            "eval on missing CIFAR",
            cmd(&[
                "eval",
                &ck,
                "--cpu",
                "--dataset",
                "cifar10",
                "--data",
                &p("cifar-none"),
            ]),
            "test_batch.bin".into(),
        ),
        (
            "empty class folder",
            train(&["--dataset", "folder", "--data", &p("pets")]),
            "\"emu\" has no PNG or JPEG images".into(),
        ),
        (
            "folder that is not there",
            train(&["--dataset", "folder", "--data", &p("nowhere")]),
            "not a folder".into(),
        ),
        (
            "folder without class folders",
            train(&["--dataset", "folder", "--data", &p("flat")]),
            "no class subfolders".into(),
        ),
        (
            "CIFAR without files",
            train(&["--dataset", "cifar10", "--data", &p("cifar-none")]),
            "data_batch_1.bin".into(),
        ),
        (
            "truncated CIFAR batch",
            train(&[
                "--dataset",
                "cifar10",
                "--data",
                &p("cifar-trunc"),
                "--cifar-batches",
                "1",
            ]),
            "not a whole number".into(),
        ),
        (
            "MNIST without files",
            train(&["--dataset", "mnist", "--data", &p("mnist-none")]),
            "train-images".into(),
        ),
        (
            "digits file missing",
            train(&["--data", &p("bogus.bin")]),
            "bogus.bin".into(),
        ),
        (
            "CIFAR batch 6",
            train(&["--dataset", "cifar10", "--cifar-batches", "6"]),
            "--cifar-batches".into(),
        ),
        (
            "unknown dataset",
            train(&["--dataset", "imagenet21k"]),
            "--dataset".into(),
        ),
        // Configs.
        (
            "missing config",
            train(&["--config", &p("none.toml")]),
            "none.toml".into(),
        ),
        (
            "config with an unknown key",
            train(&["--config", &p("unknown-key.toml")]),
            "learning_rate".into(),
        ),
        (
            "config with a bad value",
            train(&["--config", &p("bad-value.toml")]),
            "--lr".into(),
        ),
        (
            "config that is not TOML",
            train(&["--config", &p("not-toml.toml")]),
            "not-toml.toml".into(),
        ),
        // Flags.
        ("negative lr", train(&["--lr", "-1"]), "--lr -1".into()),
        (
            "momentum 1.5",
            train(&["--momentum", "1.5"]),
            "--momentum".into(),
        ),
        (
            "negative weight decay",
            train(&["--weight-decay", "-0.1"]),
            "--weight-decay".into(),
        ),
        ("batch 0", train(&["--batch", "0"]), "--batch 0".into()),
        (
            "batch 5000",
            train(&["--batch", "5000"]),
            "--batch 5000".into(),
        ),
        ("depth 21", train(&["--depth", "21"]), "--depth 21".into()),
        ("width 0", train(&["--width", "0"]), "--width".into()),
        (
            "fixed step 0",
            train(&["--steps", "fixed:0"]),
            "--steps".into(),
        ),
        (
            "unknown step mode",
            train(&["--steps", "rk4"]),
            "--steps 'rk4'".into(),
        ),
        (
            "unknown schedule",
            train(&["--schedule", "linear"]),
            "--schedule".into(),
        ),
        (
            "unknown augment",
            train(&["--augment", "maybe"]),
            "--augment".into(),
        ),
        (
            "shortcut C",
            train(&["--shortcut", "C"]),
            "--shortcut".into(),
        ),
        ("epochs 0", train(&["--epochs", "0"]), "--epochs".into()),
        (
            "image size 0",
            train(&["--image-size", "0"]),
            "--image-size".into(),
        ),
        ("workers 0", train(&["--workers", "0"]), "--workers".into()),
        (
            "unknown arch",
            train(&["--arch", "vgg16"]),
            "--arch 'vgg16'".into(),
        ),
        (
            "milestone past the end",
            train(&["--milestones", "1.5"]),
            "--milestones".into(),
        ),
        ("SE reduction 0", train(&["--se", "0"]), "--se 0".into()),
        (
            "groups not dividing",
            train(&["--groups", "3"]),
            "--groups 3".into(),
        ),
        (
            "depth on an ImageNet net",
            cmd(&["info", "--arch", "resnet50", "--depth", "20"]),
            "--depth".into(),
        ),
        (
            "stability iters 0",
            cmd(&["stability", &ck, "--iters", "0"]),
            "--iters 0".into(),
        ),
        // Run folders (their files must not change).
        (
            "new run over an existing one",
            cmd(&["train", "--dataset", "digits", "--out", &run]),
            "already holds a run".into(),
        ),
        (
            "resume with a changed flag",
            cmd(&["train", "--resume", &run, "--lr", "0.5"]),
            "lr".into(),
        ),
        (
            "resume with a config",
            cmd(&["train", "--resume", &run, "--config", &p("bad-value.toml")]),
            "--config".into(),
        ),
        (
            "resume and overwrite",
            cmd(&["train", "--resume", &run, "--overwrite"]),
            "--overwrite".into(),
        ),
        (
            "resume a folder without a run",
            cmd(&["train", "--resume", &p("fruit")]),
            "not a run folder".into(),
        ),
        (
            "resume with save-init",
            cmd(&["train", "--resume", &run, "--save-init"]),
            "--save-init".into(),
        ),
    ];
    assert!(cases.len() >= 40, "{} cases", cases.len());
    let before = snapshot(&f);
    let mut failures = Vec::new();
    for (what, args, needle) in &cases {
        let out = Command::new(env!("CARGO_BIN_EXE_trainer"))
            .args(args)
            .output()
            .expect("run the trainer binary");
        let err = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = err.lines().collect();
        let verdict = if out.status.success() {
            Some("succeeded".to_string())
        } else if out.status.code() != Some(1) {
            Some(format!(
                "exit status {:?} (a panic or a signal?)",
                out.status
            ))
        } else if lines.len() != 1 {
            Some(format!("{} lines on stderr", lines.len()))
        } else if !(lines[0].starts_with("error: ") && lines[0].contains(needle.as_str())) {
            Some(format!("does not name {needle:?}"))
        } else {
            None
        };
        println!("{:<36} {}", what, lines.first().unwrap_or(&""));
        if let Some(v) = verdict {
            failures.push(format!("{what}: {v}\n    {args:?}\n    stderr: {err}"));
        }
        if snapshot(&f) != before {
            failures.push(format!("{what}: the run folder changed"));
            break;
        }
    }
    assert!(
        !f.dir.join("never").exists(),
        "a refused run created its folder"
    );
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    println!("{} bad inputs, each refused in one line", cases.len());
    let _ = std::fs::remove_dir_all(&f.dir);
}
