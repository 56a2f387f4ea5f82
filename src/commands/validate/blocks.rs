//! validate's fast path, for UTF-8 text and a CSV report: one thread reads blocks of whole
//! lines, every core reads the rows of a block with the fast reader, checks them and makes
//! their report lines, and one thread numbers the rows and writes the lines in order.
//!
//! A block is read as if it began a record; that holds when the block before it ended at the
//! end of a record, and the writer checks it before taking a block. From a block (or the
//! block after one) that does not end cleanly, the rest of the file is read row by row.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};

use crossbeam_channel::{Receiver, Sender};

use crate::read::records::{Next, Numbering, Records};
use crate::read::{Block, Row, Rows, TextBody};
use crate::report::summary::Summary;
use crate::report::{CsvLines, Lines, ReportRow};

use super::{cannot_read, Failed, Job, Out};

/// Bytes read per block, and blocks in flight at once between reading and writing: memory
/// stays at a few megabytes whatever the file's length. Blocks are small because mimalloc
/// keeps buffers over 128 KB in memory of their own, which cost 30 MB more at the peak.
const BLOCK: usize = 64 * 1024;
const IN_FLIGHT: usize = 16;

/// A block's rows checked, with their report lines made but for the row numbers, which
/// depend on every block before it.
struct CheckedBlock {
    start: u64,
    /// The block's own bytes, to be used again.
    input: Vec<u8>,
    lines: Lines,
    /// For each row: the line ends in the block before it, outside quoted cells.
    rows_before: Vec<u64>,
    summary: Summary,
    keys: Vec<u64>,
    /// Line ends in the block outside quoted cells, up to `stop` when it stopped.
    rows_passed: u64,
    /// Where in the block the fast reader stopped, when it did.
    stop: Option<usize>,
}

/// The rows of `body` in blocks, checked and reported. When the fast reader stops, returns
/// the rest of the file, read by the full parser.
pub(super) fn check_blocks(
    job: &Job,
    body: &TextBody,
    out: &mut Out,
) -> Result<Option<Rows>, Failed> {
    let lines = job
        .lines
        .as_ref()
        .expect("blocks are read only for a CSV report")
        .copying_records(body.delimiter);
    // Buffers go round: blocks and report lines are made in them and written from them, and
    // they come back to be filled again. Memory stays flat, and pages are not zeroed anew.
    let (spare_tx, spare_rx) = crossbeam_channel::unbounded::<Vec<u8>>();
    let spare = || spare_rx.try_recv().unwrap_or_default();
    let blocks = body
        .blocks(BLOCK, spare)
        .map_err(|e| Failed::Read(cannot_read(&body.path, e)))?;
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let stop = AtomicBool::new(false);
    let (work_tx, work_rx) = crossbeam_channel::bounded::<(usize, Block)>(IN_FLIGHT);
    let (done_tx, done_rx) =
        crossbeam_channel::bounded::<(usize, std::io::Result<CheckedBlock>)>(IN_FLIGHT);
    // A block is read only when one is written: at most IN_FLIGHT are held at once.
    let (token_tx, token_rx) = crossbeam_channel::bounded::<()>(IN_FLIGHT);
    for _ in 0..IN_FLIGHT {
        let _ = token_tx.send(());
    }
    let rest = std::thread::scope(|scope| {
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
            let lines = &lines;
            scope.spawn(move || {
                for (i, block) in work_rx {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let checked = check_block(job, lines, body.delimiter, block, spare);
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
    })?;
    match rest {
        None => Ok(None),
        Some((offset, numbering)) => body
            .rows_from(offset, numbering)
            .map(Some)
            .map_err(|e| Failed::Read(cannot_read(&body.path, e))),
    }
}

/// The writer's side of [`check_blocks`]: blocks in order, numbered and written, until the
/// end or the first block that does not end cleanly; then where the rest starts, and the
/// numbering there.
fn write_blocks(
    body: &TextBody,
    done: &Receiver<(usize, std::io::Result<CheckedBlock>)>,
    tokens: &Sender<()>,
    spare: &Sender<Vec<u8>>,
    out: &mut Out,
) -> Result<Option<(u64, Numbering)>, Failed> {
    let mut numbering = body.numbering;
    let mut waiting = BTreeMap::new();
    let mut next = 0;
    for (i, block) in done.iter() {
        waiting.insert(i, block);
        while let Some(block) = waiting.remove(&next) {
            next += 1;
            let block: CheckedBlock =
                block.map_err(|e| Failed::Read(cannot_read(&body.path, e)))?;
            let numbers = block.rows_before.iter().map(|&r| numbering.line(r));
            out.writer
                .write_lines(&block.lines, numbers)
                .map_err(Failed::Write)?;
            out.summary.merge(&block.summary);
            if let Some(keys) = out.keys.as_deref_mut() {
                for &h in &block.keys {
                    keys.add_hash(h);
                }
            }
            numbering.pass(block.rows_passed);
            for buffer in [block.input, block.lines.into_buffer()] {
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
    lines: &CsvLines,
    delimiter: u8,
    block: Block,
    buffer: impl Fn() -> Vec<u8>,
) -> CheckedBlock {
    // Sized for rows of 64 bytes or more, so that they rarely grow.
    let rows = block.bytes.len() / 64 + 1;
    let mut out = CheckedBlock {
        start: block.start,
        input: Vec::new(),
        lines: Lines::new(buffer(), rows),
        rows_before: Vec::with_capacity(rows),
        summary: Summary::default(),
        keys: Vec::with_capacity(rows),
        rows_passed: 0,
        stop: None,
    };
    let mut records = Records::new(&block.bytes, delimiter, block.at_eof);
    let mut row = Row::default();
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
        let record = info.canonical.then(|| &block.bytes[info.start..info.end]);
        lines.push(&report_row, record, &mut out.lines);
        out.rows_before.push(info.rows_before);
    }
    out.rows_passed = records.rows_passed();
    out.input = block.bytes;
    out
}
