//! validate's rows one at a time, as the full parser or a workbook gives them: for any file
//! the block reader does not take, the rest of one from where it stopped, and the pass that
//! marks duplicates (by row number, which rows read in order carry).

use rayon::prelude::*;

use crate::check::Duplicates;
use crate::commands::read_ahead;
use crate::read::{Row, Rows};
use crate::report::{Lines, ReportRow};

use super::{Checked, Failed, Job, Out};

/// Rows per piece of work: each core checks a run of rows and makes their report lines.
const PART: usize = 256;

/// A run of checked rows, with their report lines when the report is CSV.
struct Part {
    checked: Vec<Checked>,
    lines: Lines,
}

/// Rows in three overlapping stages: a thread reads, every core checks and makes report
/// lines, a thread writes.
pub(super) fn check_rows(
    job: &Job,
    rows: Rows,
    dups: &Duplicates,
    out: &mut Out,
) -> Result<(), Failed> {
    let (tx, rx) = crossbeam_channel::bounded::<(Vec<Row>, Vec<Part>)>(2);
    std::thread::scope(|scope| {
        let written = scope.spawn(move || write_parts(job, rx, out));
        let mut read_error = None;
        for chunk in read_ahead(rows) {
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => {
                    read_error = Some(e);
                    break;
                }
            };
            let parts: Vec<Part> = chunk
                .par_chunks(PART)
                .map(|rows| check_part(job, rows, dups))
                .collect();
            if tx.send((chunk, parts)).is_err() {
                break;
            }
        }
        drop(tx);
        written
            .join()
            .expect("the report writer does not panic")
            .map_err(Failed::Write)?;
        match read_error {
            Some(e) => Err(Failed::Read(e)),
            None => Ok(()),
        }
    })
}

/// One run of rows on one core: checked, and their lines made when the report is CSV.
fn check_part(job: &Job, rows: &[Row], dups: &Duplicates) -> Part {
    let mut part = Part {
        checked: Vec::with_capacity(rows.len()),
        lines: Lines::default(),
    };
    for row in rows {
        let checked = job.check(row, dups.get(row.line));
        if let Some(lines) = &job.lines {
            let report_row = ReportRow {
                line: row.line,
                outcome: &checked.outcome,
                cells: &row.cells,
                field_errors: &checked.errors,
            };
            lines.push(&report_row, None, &mut part.lines);
        }
        part.checked.push(checked);
    }
    part
}

/// The writer's side of [`check_rows`]: parts in order, counted and written.
fn write_parts(
    job: &Job,
    parts: crossbeam_channel::Receiver<(Vec<Row>, Vec<Part>)>,
    out: &mut Out,
) -> std::io::Result<()> {
    for (rows, parts) in parts {
        for (part, rows) in parts.iter().zip(rows.chunks(PART)) {
            for (c, row) in part.checked.iter().zip(rows) {
                if let (Some(h), Some(k)) = (c.key_hash, out.keys.as_deref_mut()) {
                    k.add_hash(h);
                }
                out.summary.add(&c.outcome, &c.errors);
                if job.lines.is_none() {
                    out.writer.write(&ReportRow {
                        line: row.line,
                        outcome: &c.outcome,
                        cells: &row.cells,
                        field_errors: &c.errors,
                    })?;
                }
            }
            if job.lines.is_some() {
                out.writer
                    .write_lines(&part.lines, rows.iter().map(|r| r.line))?;
            }
        }
    }
    Ok(())
}
