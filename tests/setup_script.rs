//! `scripts/setup.sh`'s decisions (which apt packages and Rust targets it would install)
//! against temporary ICD folders and a faked PATH, in its dry-run mode, plus its real mode
//! with fake `apt-get`, `sudo` and `rustup` that only record their arguments. Needs neither
//! root nor network.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// A fresh temporary folder for one case.
fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir()
        .join(format!("tsc-setup-test-{}", std::process::id()))
        .join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn write_exe(path: &Path, script: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, script).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// One machine state: ICD folders `a` and `b` (created or not, with or without a manifest),
/// a PATH for the qemu lookup, the installed Rust targets.
struct Case {
    dir: PathBuf,
    icd_a: PathBuf,
    icd_b: PathBuf,
    qemu_path: PathBuf,
    targets: &'static str,
    env: Vec<(&'static str, String)>,
}

impl Case {
    /// Both ICD folders exist and are empty, no qemu, the Cortex-M target installed.
    fn new(name: &str) -> Case {
        let dir = tmp(name);
        let (icd_a, icd_b, qemu_path) = (dir.join("icd-a"), dir.join("icd-b"), dir.join("bin"));
        for d in [&icd_a, &icd_b, &qemu_path] {
            std::fs::create_dir_all(d).unwrap();
        }
        Case {
            dir,
            icd_a,
            icd_b,
            qemu_path,
            targets: "x86_64-unknown-linux-gnu thumbv7em-none-eabihf",
            env: Vec::new(),
        }
    }
    fn with_qemu(self) -> Case {
        write_exe(
            &self.qemu_path.join("qemu-system-arm"),
            "#!/bin/sh\nexit 0\n",
        );
        self
    }
    fn command(&self) -> Command {
        let mut c = Command::new("bash");
        c.current_dir(repo_root())
            .env(
                "TSC_SETUP_ICD_DIRS",
                format!("{}:{}", self.icd_a.display(), self.icd_b.display()),
            )
            .env("TSC_SETUP_PATH", &self.qemu_path)
            .env("TSC_SETUP_RUST_TARGETS", self.targets)
            .env("XDG_RUNTIME_DIR", self.dir.join("xdg"))
            .env_remove("VK_ICD_FILENAMES")
            .env_remove("VK_DRIVER_FILES")
            .env_remove("TSC_SKIP_QEMU")
            .env_remove("TSC_SETUP_DRY_RUN");
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }
    /// `scripts/setup.sh --dry-run`: (apt packages, rust targets) it would install.
    fn dry_run(&self) -> (String, String) {
        let out = self
            .command()
            .args(["scripts/setup.sh", "--dry-run"])
            .output()
            .unwrap();
        parse_dry_run(&out)
    }
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn parse_dry_run(out: &Output) -> (String, String) {
    assert!(out.status.success(), "dry run failed: {}", text(out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let field = |key: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .unwrap_or_else(|| panic!("no line {key:?} in: {}", text(out)))
            .trim()
            .to_string()
    };
    (
        field("setup: dry run: apt packages:"),
        field("setup: dry run: rust targets:"),
    )
}

const MESA: &str = "mesa-vulkan-drivers";
const QEMU: &str = "qemu-system-arm";

#[test]
fn both_icd_folders_empty_installs_mesa() {
    let c = Case::new("empty").with_qemu();
    assert_eq!(c.dry_run(), (MESA.into(), "none".into()));
}

#[test]
fn manifest_in_either_folder_is_a_driver() {
    let c = Case::new("first").with_qemu();
    std::fs::write(c.icd_a.join("lvp_icd.x86_64.json"), "{}").unwrap();
    assert_eq!(c.dry_run().0, "none", "manifest only in the first folder");

    // The bug this guards against: `ls A/*.json B/*.json` fails when A is empty.
    let c = Case::new("second").with_qemu();
    std::fs::write(c.icd_b.join("lvp_icd.x86_64.json"), "{}").unwrap();
    assert_eq!(c.dry_run().0, "none", "manifest only in the second folder");
}

#[test]
fn missing_folder_is_no_error() {
    let c = Case::new("missing-second").with_qemu();
    std::fs::remove_dir_all(&c.icd_b).unwrap();
    assert_eq!(c.dry_run().0, MESA, "first empty, second missing");
    std::fs::write(c.icd_a.join("radeon_icd.json"), "{}").unwrap();
    assert_eq!(
        c.dry_run().0,
        "none",
        "manifest in the first, second missing"
    );

    let c = Case::new("missing-first").with_qemu();
    std::fs::remove_dir_all(&c.icd_a).unwrap();
    std::fs::write(c.icd_b.join("radeon_icd.json"), "{}").unwrap();
    assert_eq!(
        c.dry_run().0,
        "none",
        "first missing, manifest in the second"
    );
}

#[test]
fn other_files_are_not_manifests() {
    let c = Case::new("not-json").with_qemu();
    std::fs::write(c.icd_a.join("README"), "").unwrap();
    std::fs::create_dir(c.icd_b.join("sub.d")).unwrap();
    std::fs::write(c.icd_b.join("sub.d").join("x.json"), "{}").unwrap();
    assert_eq!(c.dry_run().0, MESA);
}

#[test]
fn loader_variables_name_a_driver() {
    for var in ["VK_ICD_FILENAMES", "VK_DRIVER_FILES"] {
        let mut c = Case::new(&format!("{var}-file")).with_qemu();
        let icd = c.dir.join("my_icd.json");
        std::fs::write(&icd, "{}").unwrap();
        c.env.push((
            var,
            format!("{}:{}", c.dir.join("absent.json").display(), icd.display()),
        ));
        assert_eq!(c.dry_run().0, "none", "{var} names an existing file");

        let mut c = Case::new(&format!("{var}-absent")).with_qemu();
        c.env
            .push((var, c.dir.join("absent.json").display().to_string()));
        assert_eq!(c.dry_run().0, MESA, "{var} names no existing file");
    }
    // VK_DRIVER_FILES may also name a folder of manifests.
    let mut c = Case::new("driver-files-dir").with_qemu();
    let d = c.dir.join("drivers");
    std::fs::create_dir(&d).unwrap();
    std::fs::write(d.join("a.json"), "{}").unwrap();
    c.env.push(("VK_DRIVER_FILES", d.display().to_string()));
    assert_eq!(c.dry_run().0, "none");
}

#[test]
fn qemu_present_or_absent() {
    let c = Case::new("no-qemu");
    assert_eq!(c.dry_run().0, format!("{MESA} {QEMU}"));
    std::fs::write(c.icd_a.join("lvp.json"), "{}").unwrap();
    assert_eq!(c.dry_run().0, QEMU);
    let mut c = c.with_qemu();
    assert_eq!(c.dry_run().0, "none");
    // TSC_SKIP_QEMU=1 (the quickstart) does not ask for it at all.
    std::fs::remove_file(c.qemu_path.join("qemu-system-arm")).unwrap();
    c.env.push(("TSC_SKIP_QEMU", "1".into()));
    assert_eq!(c.dry_run().0, "none");
}

#[test]
fn rust_target_missing() {
    let mut c = Case::new("targets").with_qemu();
    std::fs::write(c.icd_a.join("lvp.json"), "{}").unwrap();
    c.targets = "x86_64-unknown-linux-gnu\nthumbv7em-none-eabi";
    assert_eq!(c.dry_run(), ("none".into(), "thumbv7em-none-eabihf".into()));
}

#[test]
fn dry_run_from_the_environment_and_when_sourced() {
    let mut c = Case::new("sourced");
    c.env.push(("TSC_SETUP_DRY_RUN", "1".into()));
    let out = c.command().args(["scripts/setup.sh"]).output().unwrap();
    assert_eq!(parse_dry_run(&out).0, format!("{MESA} {QEMU}"));
    // scripts/test.sh sources it: the caller keeps running, and its own arguments are not
    // taken for setup.sh's.
    let out = c
        .command()
        .args([
            "-c",
            "set -euo pipefail; source scripts/setup.sh; echo caller-continues",
            "bash",
            "--some-caller-flag",
        ])
        .output()
        .unwrap();
    assert_eq!(parse_dry_run(&out).0, format!("{MESA} {QEMU}"));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("caller-continues"),
        "{}",
        text(&out)
    );
    let out = c
        .command()
        .args(["scripts/setup.sh", "--bogus"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}

/// The real (non-dry) mode with `sudo`, `apt-get` and `rustup` replaced by scripts that log
/// their arguments: nothing is run when nothing is missing (the issue: apt-get ran on every
/// call), and the right packages when something is.
#[test]
fn real_mode_runs_apt_and_rustup_only_when_needed() {
    let c = Case::new("real").with_qemu();
    let fake = c.dir.join("fake-bin");
    std::fs::create_dir(&fake).unwrap();
    let log = c.dir.join("calls.log");
    for name in ["apt-get", "rustup"] {
        write_exe(
            &fake.join(name),
            &format!("#!/bin/sh\necho \"{name} $*\" >> '{}'\n", log.display()),
        );
    }
    write_exe(&fake.join("sudo"), "#!/bin/sh\nexec \"$@\"\n");
    let path = format!("{}:{}", fake.display(), std::env::var("PATH").unwrap());
    let run = |c: &Case| {
        let out = c
            .command()
            .env("PATH", &path)
            .arg("scripts/setup.sh")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        let calls = std::fs::read_to_string(&log).unwrap_or_default();
        let _ = std::fs::remove_file(&log);
        calls
    };

    std::fs::write(c.icd_b.join("lvp.json"), "{}").unwrap();
    assert_eq!(run(&c), "", "nothing missing: no apt-get, no rustup");
    assert!(c.dir.join("xdg").is_dir(), "XDG_RUNTIME_DIR is created");

    std::fs::remove_file(c.icd_b.join("lvp.json")).unwrap();
    std::fs::remove_file(c.qemu_path.join("qemu-system-arm")).unwrap();
    let mut c = c;
    c.targets = "x86_64-unknown-linux-gnu";
    assert_eq!(
        run(&c),
        "apt-get update -q\n\
         apt-get install -y -q --no-install-recommends mesa-vulkan-drivers qemu-system-arm\n\
         rustup target add thumbv7em-none-eabihf\n"
    );
}
