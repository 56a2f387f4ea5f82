//! `bulkedit validate`: every row checked offline, a report and a failures file, exit 0 or 1.
//!
//! One pass over the file checks every row, writes its report line and keeps its key's hash.
//! UTF-8 text is read in blocks on every core ([`blocks`]); anything else, and the rest of a
//! file from a record the fast reader does not take, row by row ([`rows`]). When rows that
//! looked valid turn out to name the same user, the report is written again in a second pass
//! with them marked (see [`run`]).

mod blocks;
mod rows;

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::check::{self, Duplicates, Input, KeyCollector};
use crate::engine::{Outcome, Status};
use crate::error::Error;
use crate::platform::{Keep, Layout, Options, Platform};
use crate::read::Row;
use crate::report::{self, summary::Summary, CsvLines, ReportWriter};
use crate::rules::FieldError;

use super::Console;

pub struct ValidateArgs {
    pub file: PathBuf,
    pub platform: Option<String>,
    pub sheet: Option<String>,
    pub report: Option<PathBuf>,
    pub options: Options,
    /// Every row must also give what creating its user needs.
    pub create: bool,
}

/// A checked row, ready for the report.
struct Checked {
    outcome: Outcome,
    errors: Vec<FieldError>,
    key_hash: Option<u64>,
}

/// What every core needs to check rows and make their report lines.
struct Job<'a> {
    platform: &'a dyn Platform,
    layout: &'a Layout,
    /// When the report is CSV: its lines are made ahead, on every core.
    lines: Option<CsvLines>,
    collect_keys: bool,
    /// `--create`: rows are checked as if their users were new.
    create: bool,
}

impl Job<'_> {
    #[inline]
    fn check(&self, row: &Row, duplicate: Option<FieldError>) -> Checked {
        let result = if self.create {
            let result = check::check_row_keeping(self.platform, self.layout, row, Keep::Changes);
            check::creatable(self.platform, result)
        } else {
            check::check_row_keeping(self.platform, self.layout, row, Keep::VerdictOnly)
        };
        let (_, outcome, errors) = check::verdict(result, duplicate, Status::Valid);
        // Every row's key, valid or not: an invalid row still marks the valid row that
        // shares its key.
        let key_hash = self
            .collect_keys
            .then(|| check::row_key(self.platform, self.layout, row))
            .flatten()
            .map(|k| k.hash());
        Checked {
            outcome,
            errors,
            key_hash,
        }
    }
}

/// Where the report goes and what it counts, kept across the ways a file is read.
struct Out<'a> {
    writer: ReportWriter,
    summary: Summary,
    keys: Option<&'a mut KeyCollector>,
}

/// Why a pass stopped: the input could not be read (already worded), or the report could not
/// be written (worded by [`pass`], which knows the report's path).
enum Failed {
    Read(Error),
    Write(std::io::Error),
}

fn cannot_read(path: &Path, e: std::io::Error) -> Error {
    Error::input(path, format!("cannot read: {e}"))
}

/// One pass over the file: every row checked and its report line written. `Some(collector)`
/// also gathers keys to find duplicates; `dups` are marked.
fn pass(
    input: Input,
    report_path: &Path,
    dups: &Duplicates,
    keys: Option<&mut KeyCollector>,
    create: bool,
) -> Result<(ReportWriter, Summary), Error> {
    let cannot_write = |e: std::io::Error| Error::report(report_path, e);
    let writer = ReportWriter::create(report_path, input.columns()).map_err(cannot_write)?;
    let job = Job {
        platform: input.platform.as_ref(),
        layout: &input.layout,
        lines: writer.csv_lines(),
        collect_keys: keys.is_some(),
        create,
    };
    let mut out = Out {
        writer,
        summary: Summary::default(),
        keys,
    };
    let failed = |e: Failed| match e {
        Failed::Read(e) => e,
        Failed::Write(e) => cannot_write(e),
    };
    // Duplicates are marked by row number, which only the sequential reading knows ahead.
    let body = input
        .sheet
        .text
        .as_ref()
        .filter(|_| job.lines.is_some() && dups.is_empty());
    let rest = match body {
        Some(body) => blocks::check_blocks(&job, body, &mut out).map_err(failed)?,
        None => Some(input.sheet.rows),
    };
    if let Some(rows) = rest {
        rows::check_rows(&job, rows, dups, &mut out).map_err(failed)?;
    }
    Ok((out.writer, out.summary))
}

/// The file is opened once for the report and, only when some keys' hashes repeat, once more
/// to compare those keys exactly; and only when rows turn out to name the same user, once more
/// to write the report with them marked. Rows are never held back in case one repeats: memory
/// stays flat, and a file without duplicates (the usual one) is read once.
pub fn run(args: &ValidateArgs, console: &Console) -> Result<i32, Error> {
    let started_at = std::time::SystemTime::now();
    let started = Instant::now();
    let sheet = args.sheet.as_deref();
    let open = || {
        check::open_input(
            &args.file,
            args.platform.as_deref(),
            None,
            sheet,
            &args.options,
        )
    };
    let input = open()?;
    let platform_name = input.platform.name().to_string();
    console.info(&format!(
        "{}: checking rows for {platform_name}, read as {}",
        args.file.display(),
        input.sheet.description
    ));
    for w in input.warnings() {
        console.warn(w);
    }
    let report_path = args
        .report
        .clone()
        .unwrap_or_else(|| report::default_path(&args.file));
    report::guard::refuse_input_as_output(&args.file, &report_path)?;
    let _lock = report::guard::ReportLock::acquire(&report_path)?;
    if let Some(kept) = report::guard::keep_earlier(&report_path)? {
        console.info(&format!(
            "the earlier report records writes to a server: kept it as {}",
            kept.display()
        ));
    }
    let cannot_write = |e: std::io::Error| Error::report(&report_path, e);
    let mut keys = KeyCollector::default();
    let (mut writer, mut summary) = pass(
        input,
        &report_path,
        &Duplicates::default(),
        Some(&mut keys),
        args.create,
    )?;
    writer.rows_done().map_err(cannot_write)?;
    let dups = keys.duplicates(|wanted| {
        check::reread_keys(&args.file, &platform_name, sheet, &args.options, wanted)
    })?;
    if !dups.is_empty() {
        // Rare: rows that looked valid name the same user. Write the report again with them
        // marked, rather than holding every row back in case one turns out to repeat.
        drop(writer);
        (writer, summary) = pass(open()?, &report_path, &dups, None, args.create)?;
    }
    let code = if summary.any_problem() { 1 } else { 0 };
    writer.sum_up(report::summary::RunFacts {
        command: "validate",
        input: args.file.clone(),
        platform: platform_name,
        target: None,
        dry_run: None,
        started: started_at,
        took: started.elapsed(),
        summary: summary.clone(),
        requests: None,
        undo: None,
        exit_code: code,
    });
    let failures_path = writer.failures_path.clone();
    let wrote_failures = writer.finish().map_err(cannot_write)?;
    console.summary(&summary.render(
        started.elapsed(),
        None,
        &report_path,
        wrote_failures.then_some((failures_path.as_path(), report::summary::FIX_AND_RUN_AGAIN)),
    ));
    Ok(code)
}
