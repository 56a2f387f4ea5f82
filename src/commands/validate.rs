//! `bulkedit validate`: every row checked offline, a report and a failures file, exit 0 or 1.

use std::path::PathBuf;
use std::time::Instant;

use crate::check::{self, Duplicates, Input, KeyCollector};
use crate::engine::{Outcome, StartError, Status};
use crate::platform::Options;
use crate::report::{self, summary::Summary, ReportRow, ReportWriter};
use crate::validate::FieldError;

use super::{read_ahead, Console};

pub struct ValidateArgs {
    pub file: PathBuf,
    pub platform: Option<String>,
    pub sheet: Option<String>,
    pub report: Option<PathBuf>,
    pub options: Options,
}

/// The outcome of one checked row, with the duplicate-key verdict folded in.
pub fn verdict(
    result: Result<crate::platform::Edit, Vec<FieldError>>,
    duplicate: Option<&FieldError>,
    valid: Status,
) -> (Result<crate::platform::Edit, ()>, Outcome, Vec<FieldError>) {
    match (result, duplicate) {
        (Ok(edit), None) => (Ok(edit), Outcome::new(valid), Vec::new()),
        (Ok(_), Some(dup)) => {
            let errors = vec![dup.clone()];
            let outcome =
                Outcome::with_error(Status::Invalid, crate::validate::join_errors(&errors));
            (Err(()), outcome, errors)
        }
        (Err(errors), _) => {
            let outcome =
                Outcome::with_error(Status::Invalid, crate::validate::join_errors(&errors));
            (Err(()), outcome, errors)
        }
    }
}

/// A checked row, ready for the report.
struct Checked {
    outcome: Outcome,
    errors: Vec<FieldError>,
    key_hash: Option<u64>,
}

/// A run of checked rows with their report lines already made, when the report is CSV.
#[derive(Default)]
struct Part {
    checked: Vec<Checked>,
    report: Vec<u8>,
    failures: Vec<u8>,
}

/// Rows per piece of work: each core checks a run of rows and makes their report lines.
const PART: usize = 256;

/// One pass over the file in three overlapping stages: a thread reads, every core checks and
/// makes report lines, a thread writes. `Some(collector)` also gathers keys to find duplicates.
fn pass(
    input: Input,
    report_path: &std::path::Path,
    dups: &Duplicates,
    keys: Option<&mut KeyCollector>,
) -> Result<(ReportWriter, Summary), StartError> {
    use rayon::prelude::*;
    let cannot_write = |e: std::io::Error| {
        StartError::usage(format!(
            "{}: cannot write the report: {e}",
            report_path.display()
        ))
    };
    let columns = input.columns();
    let mut writer = ReportWriter::create(report_path, columns.clone()).map_err(cannot_write)?;
    let lines = writer.takes_lines();
    let platform = input.platform;
    let layout = input.layout;
    let collect_keys = keys.is_some();
    let (tx, rx) = crossbeam_channel::bounded::<(Vec<crate::read::Row>, Vec<Part>)>(2);
    std::thread::scope(|scope| {
        let written = scope.spawn(move || -> std::io::Result<(ReportWriter, Summary)> {
            let mut summary = Summary::default();
            let mut keys = keys;
            for (rows, parts) in rx {
                let mut rows = rows.iter();
                for part in &parts {
                    // `checked` first: zip stops on it without taking a row from `rows`.
                    for (c, row) in part.checked.iter().zip(rows.by_ref()) {
                        if let (Some(h), Some(k)) = (c.key_hash, keys.as_deref_mut()) {
                            k.add_hash(h);
                        }
                        summary.add(&c.outcome, &c.errors);
                        if !lines {
                            writer.write(&ReportRow {
                                line: row.line,
                                outcome: &c.outcome,
                                cells: &row.cells,
                                field_errors: &c.errors,
                            })?;
                        }
                    }
                    if lines {
                        writer.write_lines(&part.report, &part.failures)?;
                    }
                }
            }
            Ok((writer, summary))
        });
        let mut read_error = None;
        for chunk in read_ahead(input.sheet.rows) {
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => {
                    read_error = Some(StartError::usage(e.to_string()));
                    break;
                }
            };
            let parts: Vec<Part> = chunk
                .par_chunks(PART)
                .map(|rows| {
                    let mut part = Part::default();
                    for row in rows {
                        let result = check::check_row_keeping(
                            platform.as_ref(),
                            &layout,
                            row,
                            crate::platform::Keep::VerdictOnly,
                        );
                        let (edit, outcome, errors) =
                            verdict(result, dups.get(row.line), Status::Valid);
                        let key_hash = edit
                            .ok()
                            .filter(|_| collect_keys)
                            .map(|e| check::key_hash(&e));
                        if lines {
                            let report_row = ReportRow {
                                line: row.line,
                                outcome: &outcome,
                                cells: &row.cells,
                                field_errors: &errors,
                            };
                            columns.csv_line(&report_row, &mut part.report);
                            if outcome.status.needs_attention() {
                                columns.csv_line(&report_row, &mut part.failures);
                            }
                        }
                        part.checked.push(Checked {
                            outcome,
                            errors,
                            key_hash,
                        });
                    }
                    part
                })
                .collect();
            if tx.send((chunk, parts)).is_err() {
                break;
            }
        }
        drop(tx);
        let (writer, summary) = written
            .join()
            .expect("the report writer does not panic")
            .map_err(cannot_write)?;
        if let Some(e) = read_error {
            return Err(e);
        }
        Ok((writer, summary))
    })
}

pub fn run(args: &ValidateArgs, console: &Console) -> Result<i32, StartError> {
    let started = Instant::now();
    let open = || {
        check::open_input(
            &args.file,
            args.platform.as_deref(),
            args.sheet.as_deref(),
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
    for w in input
        .sheet
        .warnings
        .iter()
        .chain(input.layout.warnings.iter())
    {
        console.warn(w);
    }
    let report_path = args
        .report
        .clone()
        .unwrap_or_else(|| report::default_path(&args.file));
    let mut keys = KeyCollector::default();
    let (mut writer, mut summary) =
        pass(input, &report_path, &Duplicates::default(), Some(&mut keys))?;
    let dups = keys.duplicates(|wanted| {
        check::reread_keys(
            &args.file,
            &platform_name,
            args.sheet.as_deref(),
            &args.options,
            wanted,
        )
    })?;
    if !dups.is_empty() {
        // Rare: rows that looked valid name the same user. Write the report again with them
        // marked, rather than holding every row back in case one turns out to repeat.
        drop(writer);
        (writer, summary) = pass(open()?, &report_path, &dups, None)?;
    }
    let failures_path = writer.failures_path.clone();
    let wrote_failures = writer.finish().map_err(|e| {
        StartError::usage(format!(
            "{}: cannot write the report: {e}",
            report_path.display()
        ))
    })?;
    console.summary(&summary.render(
        started.elapsed(),
        None,
        &report_path,
        wrote_failures.then_some(failures_path.as_path()),
    ));
    Ok(if summary.any_problem() { 1 } else { 0 })
}
