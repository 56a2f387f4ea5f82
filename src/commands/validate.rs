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

/// One pass over the file in three overlapping stages: a thread reads, every core checks, a
/// thread writes. `Some(collector)` also gathers keys to find duplicates.
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
    let mut writer = ReportWriter::create(report_path, input.columns()).map_err(cannot_write)?;
    let platform = input.platform;
    let layout = input.layout;
    let collect_keys = keys.is_some();
    let (tx, rx) = crossbeam_channel::bounded::<(Vec<crate::read::Row>, Vec<Checked>)>(2);
    std::thread::scope(|scope| {
        let written = scope.spawn(move || -> std::io::Result<(ReportWriter, Summary)> {
            let mut summary = Summary::default();
            let mut keys = keys;
            for (rows, checked) in rx {
                for (row, c) in rows.iter().zip(&checked) {
                    if let (Some(h), Some(k)) = (c.key_hash, keys.as_deref_mut()) {
                        k.add_hash(h);
                    }
                    summary.add(&c.outcome, &c.errors);
                    writer.write(&ReportRow {
                        line: row.line,
                        outcome: &c.outcome,
                        cells: &row.cells,
                        field_errors: &c.errors,
                    })?;
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
            let checked: Vec<Checked> = chunk
                .par_iter()
                .with_min_len(256)
                .map(|row| {
                    let result = check::check_row(platform.as_ref(), &layout, row);
                    let (edit, outcome, errors) =
                        verdict(result, dups.get(row.line), Status::Valid);
                    let key_hash = edit
                        .ok()
                        .filter(|_| collect_keys)
                        .map(|e| check::key_hash(&e));
                    Checked {
                        outcome,
                        errors,
                        key_hash,
                    }
                })
                .collect();
            if tx.send((chunk, checked)).is_err() {
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
