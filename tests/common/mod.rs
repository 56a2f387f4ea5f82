//! Helpers shared by the end-to-end tests: the real binary, real files, a real sandbox.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use assert_cmd::Command;

pub mod peak;

/// The `bulkedit` binary with no `BULKEDIT_*` variables from the environment leaking in.
pub fn bulkedit() -> Command {
    let mut cmd = Command::cargo_bin("bulkedit").expect("the binary is built");
    for (k, _) in std::env::vars() {
        if k.starts_with("BULKEDIT_") {
            cmd.env_remove(k);
        }
    }
    cmd.timeout(std::time::Duration::from_secs(300));
    cmd
}

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn sample(name: &str) -> PathBuf {
    root().join("samples").join(name)
}

/// The corpus of files written by other people, with their sources and licences
/// (tests/data/README.md).
pub fn corpus(path: &str) -> PathBuf {
    root().join("tests/data/corpus").join(path)
}

/// The captured vendor pages whose requests and responses the sandbox must match.
pub fn seed(name: &str) -> PathBuf {
    root().join("tests/data/seeds").join(name)
}

pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("a temporary directory")
}

pub fn write(dir: &Path, name: &str, content: impl AsRef<[u8]>) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, content).expect("writable");
    p
}

/// A report (or failures file) as rows of `column -> value`, in file order.
pub fn read_report(path: &Path) -> Vec<BTreeMap<String, String>> {
    let mut r = csv::Reader::from_path(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let headers: Vec<String> = r
        .headers()
        .expect("a header")
        .iter()
        .map(str::to_string)
        .collect();
    r.records()
        .map(|rec| {
            let rec = rec.expect("a record");
            headers
                .iter()
                .cloned()
                .zip(rec.iter().map(str::to_string))
                .collect()
        })
        .collect()
}

pub fn report_header(path: &Path) -> Vec<String> {
    let mut r = csv::Reader::from_path(path).expect("a report");
    r.headers()
        .expect("a header")
        .iter()
        .map(str::to_string)
        .collect()
}

/// `(row, status)` of every line, for compact assertions.
pub fn statuses(rows: &[BTreeMap<String, String>]) -> Vec<(String, String)> {
    rows.iter()
        .map(|r| (r["row"].clone(), r["status"].clone()))
        .collect()
}

pub fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

/// Runs `bulkedit rows FILE` and returns each JSON line.
pub fn rows_of(file: &Path) -> Vec<serde_json::Value> {
    let out = bulkedit().arg("rows").arg(file).output().expect("runs");
    assert!(
        out.status.success(),
        "rows failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

pub fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A reqwest client builder for tests that talk to the sandbox directly. bulkedit builds
/// reqwest without a TLS provider of its own and installs rustls's ring; so do the tests.
pub fn http_client() -> reqwest::blocking::ClientBuilder {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::blocking::Client::builder()
}
