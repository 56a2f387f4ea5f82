//! `bulkedit validate`: every row checked offline, a report and a failures file, exit 0 or 1.

use std::path::PathBuf;
use std::time::Instant;

use crate::check::{self, Duplicates, Input, KeyCollector};
use crate::engine::{Outcome, Status};
use crate::error::Error;
use crate::platform::Options;
use crate::report::{self, summary::Summary, ReportRow, ReportWriter};
use crate::rules::FieldError;

use super::{read_ahead, Console};

pub struct ValidateArgs {
    pub file: PathBuf,
    pub platform: Option<String>,
    pub sheet: Option<String>,
    pub report: Option<PathBuf>,
    pub options: Options,
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

/// What every core needs to check rows and make their report lines.
struct Job<'a> {
    platform: &'a dyn crate::platform::Platform,
    layout: &'a crate::platform::Layout,
    columns: &'a report::Columns,
    /// The report is CSV, so lines can be made ahead on every core.
    lines: bool,
    collect_keys: bool,
}

impl Job<'_> {
    fn check(&self, row: &crate::read::Row, duplicate: Option<&FieldError>) -> Checked {
        let result = check::check_row_keeping(
            self.platform,
            self.layout,
            row,
            crate::platform::Keep::VerdictOnly,
        );
        let (edit, outcome, errors) = check::verdict(result, duplicate, Status::Valid);
        let key_hash = edit
            .ok()
            .filter(|_| self.collect_keys)
            .map(|e| check::key_hash(&e));
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

/// One pass over the file. UTF-8 text is read in blocks on every core while it is plain
/// ([`check_blocks`]); anything else, and the rest of a file from a record the fast reader
/// does not take, row by row ([`check_rows`]). `Some(collector)` also gathers keys to find
/// duplicates.
fn pass(
    input: Input,
    report_path: &std::path::Path,
    dups: &Duplicates,
    keys: Option<&mut KeyCollector>,
) -> Result<(ReportWriter, Summary), Error> {
    let cannot_write = |e: std::io::Error| Error::report(report_path, e);
    let columns = input.columns();
    let writer = ReportWriter::create(report_path, columns.clone()).map_err(cannot_write)?;
    let job = Job {
        platform: input.platform.as_ref(),
        layout: &input.layout,
        columns: &columns,
        lines: writer.takes_lines(),
        collect_keys: keys.is_some(),
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
        .filter(|_| job.lines && dups.is_empty());
    let rows = match body {
        Some(body) => match check_blocks(&job, body, &mut out).map_err(failed)? {
            None => None,
            Some((offset, numbering)) => Some(
                body.rows_from(offset, numbering)
                    .map_err(|e| failed(Failed::Read(cannot_read(&body.path, e))))?,
            ),
        },
        None => Some(input.sheet.rows),
    };
    if let Some(rows) = rows {
        check_rows(&job, rows, dups, &mut out).map_err(failed)?;
    }
    Ok((out.writer, out.summary))
}

fn cannot_read(path: &std::path::Path, e: std::io::Error) -> Error {
    Error::input(path, format!("cannot read: {e}"))
}

/// Why a pass stopped: the input could not be read (already worded), or the report could not
/// be written (worded by [`pass`], which knows the report's path).
enum Failed {
    Read(Error),
    Write(std::io::Error),
}

/// Rows one at a time, in three overlapping stages: a thread reads, every core checks and
/// makes report lines, a thread writes.
fn check_rows(
    job: &Job,
    rows: crate::read::Rows,
    dups: &Duplicates,
    out: &mut Out,
) -> Result<(), Failed> {
    use rayon::prelude::*;
    let (tx, rx) = crossbeam_channel::bounded::<(Vec<crate::read::Row>, Vec<Part>)>(2);
    std::thread::scope(|scope| {
        let written = scope.spawn(move || -> std::io::Result<()> {
            for (rows, parts) in rx {
                let mut rows = rows.iter();
                for part in &parts {
                    // `checked` first: zip stops on it without taking a row from `rows`.
                    for (c, row) in part.checked.iter().zip(rows.by_ref()) {
                        if let (Some(h), Some(k)) = (c.key_hash, out.keys.as_deref_mut()) {
                            k.add_hash(h);
                        }
                        out.summary.add(&c.outcome, &c.errors);
                        if !job.lines {
                            out.writer.write(&ReportRow {
                                line: row.line,
                                outcome: &c.outcome,
                                cells: &row.cells,
                                field_errors: &c.errors,
                            })?;
                        }
                    }
                    if job.lines {
                        out.writer.write_lines(&part.report, &part.failures)?;
                    }
                }
            }
            Ok(())
        });
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
                .map(|rows| {
                    let mut part = Part::default();
                    for row in rows {
                        let checked = job.check(row, dups.get(row.line));
                        if job.lines {
                            let report_row = ReportRow {
                                line: row.line,
                                outcome: &checked.outcome,
                                cells: &row.cells,
                                field_errors: &checked.errors,
                            };
                            job.columns.csv_line(&report_row, &mut part.report);
                            if checked.outcome.status.needs_attention() {
                                job.columns.csv_line(&report_row, &mut part.failures);
                            }
                        }
                        part.checked.push(checked);
                    }
                    part
                })
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

/// Bytes read per block, and blocks in flight at once between reading and writing: memory
/// stays at a few megabytes whatever the file's length. Blocks are small because mimalloc
/// keeps buffers over 128 KB in memory of their own, which cost 30 MB more at the peak.
const BLOCK: usize = 64 * 1024;
const IN_FLIGHT: usize = 16;

/// A block's rows checked, with their report lines made but for the row numbers, which
/// depend on every block before it.
#[derive(Default)]
struct CheckedBlock {
    start: u64,
    /// The block's own bytes, to be used again.
    input: Vec<u8>,
    rows: Vec<LineEnds>,
    report: Vec<u8>,
    failures: Vec<u8>,
    summary: Summary,
    keys: Vec<u64>,
    /// Line ends in the block outside quoted cells, up to `stop` when it stopped.
    rows_passed: u64,
    /// Where in the block the fast reader stopped, when it did.
    stop: Option<usize>,
}

/// A reported row: line ends before it in its block, and where its lines end.
struct LineEnds {
    rows_before: u64,
    report: usize,
    failures: usize,
}

/// The rows of UTF-8 text in blocks: one thread reads blocks of whole lines, every core reads
/// the rows of a block with the fast reader, checks them and makes their report lines, and
/// this thread numbers the rows and writes the lines in order. A block is read as if it began
/// a record; that holds when the block before it ended at the end of a record, and the
/// writer checks it before taking a block. When a block (or the block before it) does not
/// end cleanly, the rest of the file is for [`check_rows`]: returns where, and the numbering
/// there.
fn check_blocks(
    job: &Job,
    body: &crate::read::TextBody,
    out: &mut Out,
) -> Result<Option<(u64, crate::read::records::Numbering)>, Failed> {
    use std::sync::atomic::{AtomicBool, Ordering};
    let cannot_read = |e| cannot_read(&body.path, e);
    // Buffers go round: blocks and report lines are made in them and written from them, and
    // they come back to be filled again. Memory stays flat, and pages are not zeroed anew.
    let (spare_tx, spare_rx) = crossbeam_channel::unbounded::<Vec<u8>>();
    let spare = || spare_rx.try_recv().unwrap_or_default();
    let blocks = body
        .blocks(BLOCK, spare)
        .map_err(|e| Failed::Read(cannot_read(e)))?;
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let stop = AtomicBool::new(false);
    let (work_tx, work_rx) = crossbeam_channel::bounded::<(usize, crate::read::Block)>(IN_FLIGHT);
    let (done_tx, done_rx) =
        crossbeam_channel::bounded::<(usize, std::io::Result<CheckedBlock>)>(IN_FLIGHT);
    // A block is read only when one is written: at most IN_FLIGHT are held at once.
    let (token_tx, token_rx) = crossbeam_channel::bounded::<()>(IN_FLIGHT);
    for _ in 0..IN_FLIGHT {
        let _ = token_tx.send(());
    }
    std::thread::scope(|scope| {
        let stop = &stop;
        let read_done = done_tx.clone();
        scope.spawn(move || {
            for (i, block) in blocks.enumerate() {
                if token_rx.recv().is_err() || stop.load(Ordering::Relaxed) {
                    break;
                }
                match block {
                    Ok(block) => {
                        if work_tx.send((i, block)).is_err() {
                            break;
                        }
                    }
                    Err(e) => {
                        let _ = read_done.send((i, Err(e)));
                        break;
                    }
                }
            }
        });
        for _ in 0..workers {
            let work_rx = work_rx.clone();
            let done_tx = done_tx.clone();
            scope.spawn(move || {
                for (i, block) in work_rx {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let checked = check_block(job, body.delimiter, block, spare);
                    if done_tx.send((i, Ok(checked))).is_err() {
                        break;
                    }
                }
            });
        }
        drop((work_rx, done_tx));
        let result = write_blocks(body, &done_rx, &token_tx, &spare_tx, out);
        // Whatever happened, let the other threads run out: no more blocks are read, and
        // those on their way are dropped.
        stop.store(true, Ordering::Relaxed);
        drop(token_tx);
        for _ in done_rx.iter() {}
        result
    })
}

/// The writer's side of [`check_blocks`]: blocks in order, numbered and written, until the
/// end or the first block that does not end cleanly.
fn write_blocks(
    body: &crate::read::TextBody,
    done: &crossbeam_channel::Receiver<(usize, std::io::Result<CheckedBlock>)>,
    tokens: &crossbeam_channel::Sender<()>,
    spare: &crossbeam_channel::Sender<Vec<u8>>,
    out: &mut Out,
) -> Result<Option<(u64, crate::read::records::Numbering)>, Failed> {
    let mut numbering = body.numbering;
    let mut waiting = std::collections::BTreeMap::new();
    let mut next = 0;
    let (mut report, mut failures) = (Vec::new(), Vec::new());
    let mut num = itoa::Buffer::new();
    for (i, block) in done.iter() {
        waiting.insert(i, block);
        while let Some(block) = waiting.remove(&next) {
            next += 1;
            let block = block.map_err(|e| Failed::Read(cannot_read(&body.path, e)))?;
            report.clear();
            failures.clear();
            let (mut r, mut f) = (0, 0);
            for row in &block.rows {
                let line = num.format(numbering.line(row.rows_before)).as_bytes();
                report.extend_from_slice(line);
                report.push(b',');
                report.extend_from_slice(&block.report[r..row.report]);
                r = row.report;
                if row.failures > f {
                    failures.extend_from_slice(line);
                    failures.push(b',');
                    failures.extend_from_slice(&block.failures[f..row.failures]);
                    f = row.failures;
                }
            }
            out.writer
                .write_lines(&report, &failures)
                .map_err(Failed::Write)?;
            out.summary.merge(&block.summary);
            if let Some(keys) = out.keys.as_deref_mut() {
                for &h in &block.keys {
                    keys.add_hash(h);
                }
            }
            numbering.pass(block.rows_passed);
            for buffer in [block.input, block.report] {
                let _ = spare.send(buffer);
            }
            if let Some(at) = block.stop {
                return Ok(Some((block.start + at as u64, numbering)));
            }
            let _ = tokens.send(());
        }
    }
    Ok(None)
}

/// One block on one core: its rows read, checked and turned into report lines, in buffers
/// from `buffer`.
fn check_block(
    job: &Job,
    delimiter: u8,
    block: crate::read::Block,
    buffer: impl Fn() -> Vec<u8>,
) -> CheckedBlock {
    use crate::read::records::{Next, Records};
    // Sized for rows of 64 bytes or more, so that they rarely grow.
    let rows = block.bytes.len() / 64 + 1;
    let mut out = CheckedBlock {
        start: block.start,
        report: buffer(),
        rows: Vec::with_capacity(rows),
        keys: Vec::with_capacity(rows),
        ..CheckedBlock::default()
    };
    out.report.clear();
    let copies = job.columns.copies_records() && delimiter == b',';
    let valid = Outcome::new(Status::Valid);
    let valid_then = report::Columns::csv_outcome_then_record(&valid);
    let mut records = Records::new(&block.bytes, delimiter, block.at_eof);
    let mut row = crate::read::Row::default();
    loop {
        let info = match records.next_into(&mut row) {
            Next::Record(info) => info,
            Next::End => break,
            Next::Stop(at) => {
                out.stop = Some(at);
                break;
            }
        };
        if row.is_blank() {
            continue;
        }
        let checked = job.check(&row, None);
        if let Some(h) = checked.key_hash {
            out.keys.push(h);
        }
        out.summary.add(&checked.outcome, &checked.errors);
        let report_row = ReportRow {
            line: 0,
            outcome: &checked.outcome,
            cells: &row.cells,
            field_errors: &checked.errors,
        };
        if copies
            && info.canonical
            && checked.outcome == valid
            && job.columns.shows_as_read(&row.cells)
        {
            out.report.extend_from_slice(&valid_then);
            out.report
                .extend_from_slice(&block.bytes[info.start..info.end]);
            out.report.push(b'\n');
        } else {
            job.columns.csv_line_after_row(&report_row, &mut out.report);
        }
        if checked.outcome.status.needs_attention() {
            job.columns
                .csv_line_after_row(&report_row, &mut out.failures);
        }
        out.rows.push(LineEnds {
            rows_before: info.rows_before,
            report: out.report.len(),
            failures: out.failures.len(),
        });
    }
    out.rows_passed = records.rows_passed();
    out.input = block.bytes;
    out
}

pub fn run(args: &ValidateArgs, console: &Console) -> Result<i32, Error> {
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
    let cannot_write = |e: std::io::Error| Error::report(&report_path, e);
    let mut keys = KeyCollector::default();
    let (mut writer, mut summary) =
        pass(input, &report_path, &Duplicates::default(), Some(&mut keys))?;
    writer.rows_done().map_err(cannot_write)?;
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
    let wrote_failures = writer.finish().map_err(cannot_write)?;
    console.summary(&summary.render(
        started.elapsed(),
        None,
        &report_path,
        wrote_failures.then_some(failures_path.as_path()),
    ));
    Ok(if summary.any_problem() { 1 } else { 0 })
}
