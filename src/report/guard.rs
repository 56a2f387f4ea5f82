//! What keeps a report from being lost: no run writes over its own input, two runs never
//! write one report at once, a report that records writes to a server is kept aside rather
//! than replaced, and `--resume` only ever resumes the run its report belongs to.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{failures_path, journal::journal_path, undo_path};
use crate::engine::Status;
use crate::error::Error;

/// Refuses a report, failures file, undo file or journal that is the input itself: the run would
/// destroy what it reads (a failures file fed back in with `--report` naming its own report).
pub fn refuse_input_as_output(input: &Path, report: &Path) -> Result<(), Error> {
    let same = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    };
    let outputs = [
        ("report", report.to_path_buf()),
        ("failures file", failures_path(report)),
        ("undo file", undo_path(report)),
        ("journal", journal_path(report)),
    ];
    for (what, path) in outputs {
        if same(input, &path) {
            return Err(Error::usage(format!(
                "the {what} would be written to {}, which is the input: choose another --report",
                path.display()
            )));
        }
    }
    Ok(())
}

/// Held while a run writes a report; a second run on the same report is refused at once. The
/// operating system lets go of it when the process ends, however it ends.
pub struct ReportLock {
    file: File,
    path: PathBuf,
}

impl ReportLock {
    pub fn acquire(report: &Path) -> Result<ReportLock, Error> {
        let path = beside(report, "lock");
        // The report's folder may not exist yet: the run makes it, as it would for the report.
        if let Some(dir) = report.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::report(report, e))?;
        }
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| {
                Error::report(
                    report,
                    format!("cannot make the lock {}: {e}", path.display()),
                )
            })?;
        match file.try_lock() {
            Ok(()) => {
                // A run killed while writing leaves its temporary files, which hold user data;
                // with the lock held none of them is still being written.
                for dest in [
                    report.to_path_buf(),
                    failures_path(report),
                    journal_path(report),
                ] {
                    super::AtomicFile::remove_left_over(&dest);
                }
                let lock = ReportLock { file, path };
                can_write(report)?;
                Ok(lock)
            }
            Err(std::fs::TryLockError::WouldBlock) => Err(Error::usage(format!(
                "another bulkedit is writing {} right now; wait for it to finish, or give this \
                 run another --report",
                report.display()
            ))),
            Err(std::fs::TryLockError::Error(e)) => Err(Error::report(
                report,
                format!("cannot lock {}: {e}", path.display()),
            )),
        }
    }
}

impl Drop for ReportLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
        let _ = self.file.unlock();
    }
}

/// Proves, before anything is sent, that the report and its failures file can be written where
/// they go: an existing one can be opened for writing (not a folder, not held by Excel), and a
/// workbook can be saved beside it. A run must not send rows and only then find that it cannot
/// write what it did. The trial leaves nothing behind.
fn can_write(report: &Path) -> Result<(), Error> {
    for dest in [report.to_path_buf(), failures_path(report)] {
        let refuse = |e: &dyn std::fmt::Display| {
            Error::report(
                report,
                format!(
                    "cannot write {}: {e} (close it if another program has it open, or choose \
                     another --report); nothing was sent",
                    dest.display()
                ),
            )
        };
        if let Ok(meta) = std::fs::metadata(&dest) {
            if meta.is_dir() {
                return Err(refuse(&"it is a folder"));
            }
            OpenOptions::new()
                .append(true)
                .open(&dest)
                .map_err(|e| refuse(&e))?;
        }
        if super::is_xlsx(&dest) {
            let trial = super::AtomicFile::new(&dest);
            let saved = rust_xlsxwriter::Workbook::new().save(&trial.tmp);
            trial.abandon();
            saved.map_err(|e| refuse(&e))?;
        }
    }
    Ok(())
}

/// A hidden file beside the report: `.users-report.csv.lock`.
fn beside(report: &Path, suffix: &str) -> PathBuf {
    let name = report
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("report");
    report.with_file_name(format!(".{name}.{suffix}"))
}

/// Moves an earlier report that records writes to a server (and its failures and undo files) aside
/// under a timestamped name, rather than letting a new run replace it; says where it went.
pub fn keep_earlier(report: &Path) -> Result<Option<PathBuf>, Error> {
    if !records_writes(report) {
        return Ok(None);
    }
    // UTC, marked so: the name sorts by time and means the same to everyone reading it.
    let stamp = chrono::DateTime::<chrono::Utc>::from(std::time::SystemTime::now())
        .format("%Y%m%d-%H%M%SZ");
    let kept = stamped(report, &stamp.to_string());
    std::fs::rename(report, &kept)
        .map_err(|e| Error::report(report, format!("cannot keep the earlier report aside: {e}")))?;
    // Its failures and its undo file go with it: the undo puts back what that run did.
    for named in [failures_path, undo_path] {
        let file = named(report);
        if file.exists() {
            let _ = std::fs::rename(&file, named(&kept));
        }
    }
    Ok(Some(kept))
}

/// `users-report.csv` → `users-report-20261130-171200Z.csv`.
fn stamped(report: &Path, stamp: &str) -> PathBuf {
    let stem = report
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("report");
    let name = match report.extension().and_then(|e| e.to_str()) {
        Some(ext) => format!("{stem}-{stamp}.{ext}"),
        None => format!("{stem}-{stamp}"),
    };
    report.with_file_name(name)
}

/// Whether a report (or its journal) records a write made to a server.
fn records_writes(report: &Path) -> bool {
    let source = [journal_path(report), report.to_path_buf()]
        .into_iter()
        .find(|p| p.exists());
    let Some(source) = source else { return false };
    // Every re-run of validate passes here with the last report, which may be a million rows:
    // a CSV report none of whose lines holds a write status is settled by a byte search,
    // not a parse. Only a hit is confirmed by reading the status column.
    if !super::is_xlsx(&source) && !mentions_a_write(&source).unwrap_or(true) {
        return false;
    }
    if let Some(writes) = super::xlsx::summary_records_writes(&source) {
        return writes;
    }
    let Ok(sheet) = super::xlsx::open_rows(&source) else {
        // Not a report this run can read: keep it, to be safe.
        return true;
    };
    if sheet.headers.get(1).map(String::as_str) != Some("status") {
        return false;
    }
    sheet.rows.flatten().any(|row| {
        matches!(
            row.cells.get(1).and_then(Status::parse),
            Some(s) if s.is_write()
        )
    })
}

/// Whether `,updated,` (or another write status between delimiters, as a report line holds
/// it) occurs anywhere in the file, read in blocks so memory stays small. The delimiter is the
/// one after `row` at the start of the report's header (after its BOM, if any); a file that
/// does not start so may hold anything, and is said to.
fn mentions_a_write(path: &Path) -> std::io::Result<bool> {
    use std::io::Read;
    let mut file = File::open(path)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut filled = 0;
    // The start alone: the loop below searches from it with the rest of the first block.
    while filled < 8 {
        match file.read(&mut buf[filled..8])? {
            0 => break,
            n => filled += n,
        }
    }
    let header = buf[..filled]
        .strip_prefix("\u{feff}".as_bytes())
        .unwrap_or(&buf[..filled]);
    let Some(&delimiter) = header.strip_prefix(b"row").and_then(<[u8]>::first) else {
        return Ok(true);
    };
    let needles: Vec<Vec<u8>> = Status::ALL
        .iter()
        .filter(|s| s.is_write())
        .map(|s| {
            let mut needle = vec![delimiter];
            needle.extend_from_slice(s.as_str().as_bytes());
            needle.push(delimiter);
            needle
        })
        .collect();
    let keep = needles.iter().map(Vec::len).max().unwrap_or(1) - 1;
    loop {
        let n = file.read(&mut buf[filled..])?;
        let end = filled + n;
        if needles
            .iter()
            .any(|needle| memchr::memmem::find(&buf[..end], needle).is_some())
        {
            return Ok(true);
        }
        if n == 0 {
            return Ok(false);
        }
        // A needle cut by the block's end is found with the next block.
        let tail = keep.min(end);
        buf.copy_within(end - tail..end, 0);
        filled = tail;
    }
}

/// Which run a report belongs to, kept beside it so that `--resume` never finishes another
/// run's rows: the input, the platform and where it was sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRecord {
    pub input: PathBuf,
    pub platform: String,
    /// The service root, or `sandbox` (a new one each run, at a new address).
    pub target: String,
}

impl RunRecord {
    pub fn new(input: &Path, platform: &str, target: &str) -> RunRecord {
        RunRecord {
            input: input.canonicalize().unwrap_or_else(|_| input.to_path_buf()),
            platform: platform.to_string(),
            target: target.to_string(),
        }
    }

    /// Written when a run starts a new report.
    pub fn save(&self, report: &Path) -> Result<(), Error> {
        let text = serde_json::to_string_pretty(self).expect("a run record serializes");
        std::fs::write(beside(report, "run.json"), text).map_err(|e| Error::report(report, e))
    }

    /// Refuses to resume a report that another run wrote. A report with no record (written
    /// by hand, or by an older bulkedit) is resumed with a warning, returned.
    pub fn check_resume(&self, report: &Path) -> Result<Option<String>, Error> {
        let path = beside(report, "run.json");
        let Ok(text) = std::fs::read_to_string(&path) else {
            return Ok(Some(format!(
                "--resume: nothing says which run wrote {}; resuming it as this run's",
                report.display()
            )));
        };
        let earlier: RunRecord = serde_json::from_str(&text)
            .map_err(|e| Error::usage(format!("--resume: {} is damaged: {e}", path.display())))?;
        let differs = |what: &str, then: &str, now: &str| {
            Error::usage(format!(
                "--resume: {} belongs to a run with another {what} ({then}, not {now}); \
                 resume with the same {what}, or start afresh without --resume",
                report.display()
            ))
        };
        if earlier.input != self.input {
            return Err(differs(
                "input file",
                &earlier.input.display().to_string(),
                &self.input.display().to_string(),
            ));
        }
        if earlier.platform != self.platform {
            return Err(differs("platform", &earlier.platform, &self.platform));
        }
        if earlier.target != self.target {
            return Err(differs("target", &earlier.target, &self.target));
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamped_name_keeps_the_extension() {
        assert_eq!(
            stamped(Path::new("out/users-report.csv"), "20261130-171200Z"),
            Path::new("out/users-report-20261130-171200Z.csv")
        );
    }

    #[test]
    fn a_write_status_is_found_across_the_blocks_it_is_read_in_whatever_the_dialect() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.csv");
        for (bom, d, end) in [("", ',', "\n"), ("\u{feff}", ';', "\r\n"), ("", '\t', "\n")] {
            let header = format!(
                "{bom}row{d}status{d}error{d}changes{d}http_status{d}attempts{d}email{end}"
            );
            let filler = format!("2{d}valid{d}{d}{d}{d}0{d}x@example.com{end}").repeat(60_000);
            std::fs::write(&path, format!("{header}{filler}")).unwrap();
            assert!(!mentions_a_write(&path).unwrap());
            // Placed so that the block boundary (1 MiB) falls inside the status.
            let cut = (1 << 20) - 4;
            let text = format!(
                "{header}{}3{d}updated{d}{d}{d}201{d}1{d}y@example.com{end}{}",
                "a".repeat(cut - 2 - header.len()),
                &filler[..100]
            );
            std::fs::write(&path, text).unwrap();
            assert!(mentions_a_write(&path).unwrap());
        }
        // Not a report's header: it may hold anything.
        std::fs::write(&path, "email\nx@example.com\n").unwrap();
        assert!(mentions_a_write(&path).unwrap());
    }

    #[test]
    fn a_second_lock_on_one_report_is_refused_and_freed_with_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let report = dir.path().join("r.csv");
        let first = ReportLock::acquire(&report).unwrap();
        let second = ReportLock::acquire(&report).err().expect("refused");
        assert!(second.to_string().contains("another bulkedit"), "{second}");
        drop(first);
        ReportLock::acquire(&report).unwrap();
    }
}
