//! `--download`: fetch CIFAR-10/100 (binary version) from the official address into a cache
//! folder, verify the archive's MD5, unpack it.
//!
//! Every write goes to a temporary name first and is renamed into place, so an interrupted
//! download or unpack never leaves something that looks complete. The network part
//! ([`fetch`]) is kept apart from [`verify_and_unpack`], which the tests exercise on a small
//! archive built in the test.

use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use flate2::read::GzDecoder;

use super::DatasetKind;

/// A downloadable dataset archive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Archive {
    pub url: &'static str,
    /// File name of the archive in the cache.
    pub file_name: &'static str,
    /// Published MD5 of the archive, lowercase hex.
    pub md5: &'static str,
    /// The folder the archive unpacks to.
    pub dir_name: &'static str,
}

pub const CIFAR10: Archive = Archive {
    url: "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
    file_name: "cifar-10-binary.tar.gz",
    md5: "c32a1d4ab5d03f1284b67883e8d87530",
    dir_name: "cifar-10-batches-bin",
};

pub const CIFAR100: Archive = Archive {
    url: "https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz",
    file_name: "cifar-100-binary.tar.gz",
    md5: "03b5dce01913d631647c71ecec9e9cb8",
    dir_name: "cifar-100-binary",
};

/// The archive for a kind, or an error for kinds that cannot be downloaded.
pub fn archive_for(kind: DatasetKind) -> Result<Archive> {
    match kind {
        DatasetKind::Cifar10 => Ok(CIFAR10),
        DatasetKind::Cifar100 => Ok(CIFAR100),
        DatasetKind::Digits => bail!("digits needs no download: it ships with the trainer"),
        k => bail!("--download supports cifar10 and cifar100, not {k}"),
    }
}

/// `$XDG_CACHE_HOME/tsc-trainer`, else `$HOME/.cache/tsc-trainer`, else `./.cache/tsc-trainer`.
pub fn default_cache_dir() -> PathBuf {
    if let Some(x) = std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(x).join("tsc-trainer");
    }
    if let Some(h) = std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(h).join(".cache").join("tsc-trainer");
    }
    PathBuf::from(".cache").join("tsc-trainer")
}

/// Makes sure the dataset of `kind` is unpacked in `cache_dir` and returns its folder (to be
/// used as [`super::DatasetSpec::path`]). Downloads only what is missing: an unpacked folder
/// is used as is, a complete archive already in the cache is verified and unpacked.
pub fn ensure(kind: DatasetKind, cache_dir: &Path) -> Result<PathBuf> {
    let a = archive_for(kind)?;
    let target = cache_dir.join(a.dir_name);
    if target.is_dir() {
        return Ok(target);
    }
    fs::create_dir_all(cache_dir)
        .with_context(|| format!("cannot create the cache folder {}", cache_dir.display()))?;
    let archive = cache_dir.join(a.file_name);
    if !archive.is_file() {
        eprintln!("downloading {} to {}", a.url, archive.display());
        fetch(a.url, &archive)?;
    }
    if let Err(e) = verify_and_unpack(&archive, a.md5, cache_dir) {
        if e.to_string().contains("checksum mismatch") {
            // A corrupt archive would fail the same way forever: remove it so that the next
            // run downloads it again.
            let _ = fs::remove_file(&archive);
            return Err(e.context(format!(
                "removed {}; run again to download it anew",
                archive.display()
            )));
        }
        return Err(e);
    }
    if !target.is_dir() {
        bail!(
            "{} did not contain the folder {}",
            archive.display(),
            a.dir_name
        );
    }
    Ok(target)
}

/// A name beside `path` for writing before the rename into place.
fn temp_name(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".part{}", std::process::id()));
    path.with_file_name(name)
}

/// Downloads `url` to `dest` (written to a temporary name, then renamed).
pub fn fetch(url: &str, dest: &Path) -> Result<()> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_recv_body(Some(Duration::from_secs(120)))
        .build()
        .into();
    let resp = agent
        .get(url)
        .call()
        .with_context(|| format!("cannot download {url}"))?;
    let tmp = temp_name(dest);
    let result = (|| -> Result<u64> {
        let mut out = BufWriter::new(
            File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?,
        );
        let n = io::copy(&mut resp.into_body().into_reader(), &mut out)
            .with_context(|| format!("download of {url} failed"))?;
        out.into_inner()
            .map_err(|e| e.into_error())
            .and_then(|f| f.sync_all())
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        Ok(n)
    })();
    match result {
        Ok(n) => {
            fs::rename(&tmp, dest).with_context(|| {
                format!("cannot rename {} to {}", tmp.display(), dest.display())
            })?;
            eprintln!("downloaded {n} bytes to {}", dest.display());
            Ok(())
        }
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// MD5 of a file, lowercase hex.
pub fn md5_file(path: &Path) -> Result<String> {
    let mut f = BufReader::new(
        File::open(path).with_context(|| format!("cannot open {}", path.display()))?,
    );
    let mut ctx = md5::Context::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f
            .read(&mut buf)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if n == 0 {
            break;
        }
        ctx.consume(&buf[..n]);
    }
    Ok(format!("{:x}", ctx.compute()))
}

/// Checks that `archive` (a `.tar.gz`) has MD5 `expected_md5`, then unpacks it into
/// `dest_dir`: first into a temporary folder inside `dest_dir`, then each top-level entry is
/// renamed into place (replacing an older entry of the same name). Returns the top-level names.
/// Entries that would land outside the folder (`..`, absolute paths) are refused by `tar`.
pub fn verify_and_unpack(
    archive: &Path,
    expected_md5: &str,
    dest_dir: &Path,
) -> Result<Vec<String>> {
    let got = md5_file(archive)?;
    if !got.eq_ignore_ascii_case(expected_md5.trim()) {
        bail!(
            "{}: checksum mismatch: MD5 is {got}, expected {expected_md5}",
            archive.display()
        );
    }
    fs::create_dir_all(dest_dir)
        .with_context(|| format!("cannot create {}", dest_dir.display()))?;
    let tmp = dest_dir.join(format!(
        ".unpack-{}-{}",
        archive
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        std::process::id()
    ));
    if tmp.exists() {
        fs::remove_dir_all(&tmp).with_context(|| format!("cannot remove {}", tmp.display()))?;
    }
    fs::create_dir_all(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    let result = (|| -> Result<Vec<String>> {
        let f =
            File::open(archive).with_context(|| format!("cannot open {}", archive.display()))?;
        let mut ar = tar::Archive::new(GzDecoder::new(BufReader::new(f)));
        ar.unpack(&tmp)
            .with_context(|| format!("{}: cannot unpack (corrupt archive?)", archive.display()))?;
        let mut names = Vec::new();
        let mut entries: Vec<PathBuf> = fs::read_dir(&tmp)?
            .map(|e| e.map(|e| e.path()))
            .collect::<io::Result<_>>()?;
        entries.sort();
        for src in entries {
            let name = src.file_name().unwrap_or_default().to_os_string();
            let dst = dest_dir.join(&name);
            if dst.is_dir() {
                fs::remove_dir_all(&dst)
                    .with_context(|| format!("cannot replace {}", dst.display()))?;
            } else if dst.exists() {
                fs::remove_file(&dst)
                    .with_context(|| format!("cannot replace {}", dst.display()))?;
            }
            fs::rename(&src, &dst)
                .with_context(|| format!("cannot move {} to {}", src.display(), dst.display()))?;
            names.push(name.to_string_lossy().into_owned());
        }
        Ok(names)
    })();
    let _ = fs::remove_dir_all(&tmp);
    result
}
