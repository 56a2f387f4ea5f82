//! Helpers shared by the end-to-end tests: the real binary, real files, a real sandbox.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use assert_cmd::Command;

// peak.rs stays in tests/common/: benches/throughput.rs includes it from there.
// It reads a child's peak memory from /proc and its CPU time with wait4: Linux only.
#[cfg(unix)]
#[path = "../../common/peak.rs"]
pub mod peak;
pub mod rogue;

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

/// A CSV file the run wrote (a report, failures file or undo file) opened as Excel and
/// bulkedit open one: its delimiter detected as any input's is; a UTF-8 BOM taken off.
pub fn csv_reader(path: &Path) -> csv::Reader<std::fs::File> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let head = &bytes[..bytes.len().min(64 * 1024)];
    let delimiter = bulkedit::read::detect_delimiter(&String::from_utf8_lossy(head));
    csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .from_path(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A report (or failures file) as rows of `column -> value`, in file order.
pub fn read_report(path: &Path) -> Vec<BTreeMap<String, String>> {
    let mut r = csv_reader(path);
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
    let mut r = csv_reader(path);
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
    rows_of_sheet(file, None)
}

/// [`rows_of`] a workbook's sheet: a workbook report's rows are on its sheet `Report`.
pub fn rows_of_sheet(file: &Path, sheet: Option<&str>) -> Vec<serde_json::Value> {
    let mut cmd = bulkedit();
    cmd.arg("rows").arg(file);
    if let Some(sheet) = sheet {
        cmd.args(["--sheet", sheet]);
    }
    let out = cmd.output().expect("runs");
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

/// Held by the tests that load both cores for a long time (the scale tests: 20,000 rows
/// through 128 workers, 1,200,000 rows through validate). They ran in a binary of their own,
/// beside one another only, and still may: many can hold this at once.
static CORES: RwLock<()> = RwLock::new(());

/// For a test that keeps the machine busy for a long time; see `timed`.
pub fn heavy() -> RwLockReadGuard<'static, ()> {
    CORES.read().unwrap_or_else(PoisonError::into_inner)
}

/// For a test whose assertions hold only if it is not starved of CPU: a rate measured on the
/// server, a token that must still be valid a moment later, requests counted inside a
/// one-second window. It waits until no `heavy` test runs, and none starts until it ends.
/// A test that fails holding it poisons the lock; that is ignored, as the lock guards no data.
pub fn timed() -> RwLockWriteGuard<'static, ()> {
    CORES.write().unwrap_or_else(PoisonError::into_inner)
}
