//! While `apply` runs, outcomes reach the disk as they happen: each is appended to the journal
//! and flushed, so a killed run loses nothing that had finished. The journal is the report file
//! itself (or, for an `.xlsx` report, a `.partial.csv` beside it), in the order rows finished.
//! At the end it is rewritten in input order from the lines this run wrote.
//!
//! `--resume` appends to an earlier run's journal. It knows a row that run finished by the
//! row's cells, not its position, so rows inserted, deleted or moved since do not shift which
//! are skipped, and a row edited since is sent again. Every row of the current file gets a
//! line in the resumed run (a finished one carries its earlier outcome over), so the final
//! report holds each current row once and nothing of rows no longer in the file.
//!
//! A write whose answer a killed run never saw may still have been made. So before each write
//! is sent, the line it would make true goes to a note beside the journal ([`Sending`]); a
//! resumed run that finds such a row's user already as the row wants it reports what the
//! earlier attempt did (`updated`, `created`, `deactivated`) rather than `unchanged`, and so
//! the undo file puts it back too.
//!
//! The journal is spelled as the report is (the input's delimiter, line ends and BOM): it is
//! the report a person opens while the run goes on or after it was killed. The notes, which
//! no person opens, are always plain CSV, so that a resumed run reads them whatever the input
//! is like now.

use std::collections::HashMap;

use rustc_hash::FxHashMap;
use std::fs::{File, OpenOptions};
use std::hash::{Hash, Hasher};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use super::{
    is_xlsx, push_csv_record, Columns, CsvDialect, ReportRow, ReportWriter, NO_ROW, REPORT_COLUMNS,
};
use crate::engine::{Outcome, Status};
use crate::read::Cells;
use crate::rules::FieldError;

pub struct Journal {
    pub path: PathBuf,
    /// `None` once a write failed: the journal takes nothing more.
    writer: Option<BufWriter<File>>,
    line: Vec<u8>,
    columns: Columns,
    /// Where this run's lines start: the final report is made of those alone.
    pub start: u64,
    /// The journal's length after the last flush that succeeded: a failed write is cut back
    /// to it, so the journal never keeps a torn line.
    durable: u64,
    /// Bytes handed to the writer since the last successful flush.
    pending: u64,
}

/// Where the journal of a report lives.
pub fn journal_path(report: &Path) -> PathBuf {
    if is_xlsx(report) {
        let name = report
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("report.xlsx");
        report.with_file_name(format!("{name}.partial.csv"))
    } else {
        report.to_path_buf()
    }
}

/// Where the notes of writes about to be sent live: `.users-report.csv.sending`.
pub fn sending_path(report: &Path) -> PathBuf {
    let name = report
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("report");
    report.with_file_name(format!(".{name}.sending"))
}

/// The note of each write about to be sent: the report line it would make true, appended
/// with one write from whichever worker sends it, so that a run killed with writes on the
/// wire leaves the lines they would have made.
pub struct Sending {
    file: File,
    columns: Columns,
    pub path: PathBuf,
}

impl Sending {
    /// Opens the notes of `report`: kept and appended to when resuming, else begun anew.
    pub fn open(report: &Path, columns: &Columns, resuming: bool) -> io::Result<Self> {
        let path = sending_path(report);
        let file = if resuming {
            OpenOptions::new().create(true).append(true).open(&path)?
        } else {
            let mut f = File::create(&path)?;
            f.flush()?;
            OpenOptions::new().append(true).open(&path)?
        };
        Ok(Sending {
            file,
            // Read back by `read_in_flight` as plain CSV.
            columns: Columns {
                csv: CsvDialect::PLAIN,
                ..columns.clone()
            },
            path,
        })
    }

    /// Notes the line a write about to be sent would make true.
    pub fn note(&self, row: &ReportRow) -> io::Result<()> {
        let mut line = Vec::with_capacity(256);
        self.columns.csv_line(row, &mut line);
        // One write of the whole line: notes from several workers never interleave.
        (&self.file).write_all(&line)
    }

    /// The run ended with every outcome in the report: the notes are not needed any more.
    pub fn remove(self) {
        drop(self.file);
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Rows an earlier run finished: what `--resume` does not send again.
pub struct Earlier {
    /// Finished outcomes by the row's cells as the report shows them (see [`content_key`]).
    pub done: HashMap<u64, Outcome>,
    /// The users those finished rows named (their key cells, normalised), to tell a row
    /// edited since from a new one.
    done_users: std::collections::HashSet<String>,
    /// The input columns that name a user, first first.
    key_cols: Vec<usize>,
    /// Report lines to carry into a fresh journal (when the earlier report was a workbook).
    carry: Vec<Cells>,
    /// The journal already exists with these columns and is appended to.
    append: bool,
    /// Writes an earlier attempt sent whose outcome it never journaled, by the row's cells:
    /// the line each would have made true (see [`Sending`]).
    in_flight: HashMap<u64, Outcome>,
    /// The same for users it was deactivating as missing from the roster, with their cells.
    pub leavers_in_flight: Vec<(Cells, Outcome)>,
}

impl Earlier {
    pub fn none() -> Self {
        Earlier {
            done: HashMap::new(),
            done_users: Default::default(),
            key_cols: Vec::new(),
            carry: Vec::new(),
            append: false,
            in_flight: HashMap::new(),
            leavers_in_flight: Vec::new(),
        }
    }

    /// What an earlier attempt was writing for a row with these cells when it stopped
    /// without seeing the answer: the line that write would have made true.
    pub fn in_flight(&self, columns: &Columns, line: u64, cells: &Cells) -> Option<&Outcome> {
        if self.in_flight.is_empty() {
            return None;
        }
        self.in_flight.get(&shown_key(columns, line, cells))
    }

    /// What an earlier run did with a row that has these cells now: its outcome when it
    /// finished a row with the same cells; `Changed` when it finished this row number with
    /// other cells (the row was edited since, and is sent again); else `New`.
    pub fn look_up(&self, columns: &Columns, line: u64, cells: &crate::read::Cells) -> Resumed<'_> {
        if self.done.is_empty() {
            return Resumed::New;
        }
        let key = shown_key(columns, line, cells);
        match self.done.get(&key) {
            Some(o) => Resumed::Done(o),
            None if user_of(&self.key_cols, |c| cells.get(c))
                .is_some_and(|u| self.done_users.contains(&u)) =>
            {
                Resumed::Changed
            }
            None => Resumed::New,
        }
    }
}

/// A row's cells as its report line shows them, as [`content_key`] takes them.
fn shown_key(columns: &Columns, line: u64, cells: &Cells) -> u64 {
    let shown = columns.cells(&ReportRow {
        line,
        outcome: &Outcome::new(Status::Skipped),
        cells,
        field_errors: &[],
    });
    content_key(shown[REPORT_COLUMNS.len()..].iter().map(String::as_str))
}

/// A row of the current file, seen against an earlier run.
#[derive(Debug, PartialEq, Eq)]
pub enum Resumed<'a> {
    Done(&'a Outcome),
    Changed,
    New,
}

/// The user a row names: its first non-empty key cell, compared as keys are.
fn user_of<'a>(key_cols: &[usize], cell: impl Fn(usize) -> Option<&'a str>) -> Option<String> {
    key_cols
        .iter()
        .filter_map(|&c| cell(c))
        .find(|v| !v.trim().is_empty())
        .map(crate::rules::normalize_key)
}

/// A row's identity for `--resume`: its cells as the report shows them (passwords masked).
fn content_key<'a>(cells: impl Iterator<Item = &'a str>) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for c in cells {
        c.hash(&mut h);
    }
    h.finish()
}

/// The outcome a report line records; `field(i)` is the line's `i`th cell.
fn outcome_of<'a>(field: impl Fn(usize) -> Option<&'a str>) -> Option<(u64, Outcome)> {
    let line = match field(0)?.trim() {
        "" => NO_ROW,
        row => row.parse::<f64>().ok()? as u64,
    };
    let status = Status::parse(field(1)?.trim())?;
    let mut o = Outcome::with_error(status, field(2).unwrap_or_default());
    // Text that is not a list of changes (a hand-edited cell) is dropped rather than guessed.
    o.changes = super::parse_changes(field(3).unwrap_or_default()).unwrap_or_default();
    o.http_status = field(4)
        .and_then(|s| s.trim().parse::<f64>().ok())
        .map(|n| n as u16);
    o.attempts = field(5)
        .and_then(|s| s.trim().parse::<f64>().ok())
        .map_or(0, |n| n as u32);
    Some((line, o))
}

/// Reads what an earlier run left at `report` (its journal first, else the report itself).
pub fn read_earlier(
    report: &Path,
    columns: &Columns,
    key_cols: &[usize],
) -> Result<Earlier, String> {
    let journal = journal_path(report);
    let source = if journal.exists() {
        journal.clone()
    } else {
        report.to_path_buf()
    };
    if !source.exists() {
        // A run killed before its first outcome sent nothing: there is nothing to skip.
        return Ok(Earlier::none());
    }
    let sheet = super::xlsx::open_rows(&source).map_err(|e| format!("--resume: {e}"))?;
    let expected = columns.header_row();
    let without_changes = |h: &[String]| -> Vec<String> {
        h.iter()
            .filter(|c| c.as_str() != "changes")
            .cloned()
            .collect()
    };
    if sheet.headers != expected && without_changes(&sheet.headers) == without_changes(&expected) {
        // Its outcomes would be read into the wrong columns; what it records stays as it is.
        return Err(format!(
            "--resume: the report {} has other columns than this input would give: an earlier \
             bulkedit wrote it, before reports had a changes column; choose another --report \
             and leave this one as the record of that run",
            source.display()
        ));
    }
    if sheet.headers != expected {
        return Err(format!(
            "--resume: the report {} has other columns than this input would give; \
             resume with the same input file, or choose another --report",
            source.display()
        ));
    }
    let mut earlier = Earlier::none();
    // Appended to only when spelled as this run writes (the input may have been saved in
    // another dialect since): otherwise its lines are carried into a journal begun anew.
    earlier.append = source == journal && sheet.dialect.is_some_and(|d| columns.csv.is(&d));
    earlier.key_cols = key_cols.to_vec();
    // Every row and leaver the earlier attempts journaled, finished or not.
    let mut journaled = std::collections::HashSet::new();
    for row in sheet.rows {
        let row = row.map_err(|e| format!("--resume: {e}"))?;
        if row.is_blank() {
            continue;
        }
        if let Some((line, outcome)) = outcome_of(|i| row.cells.get(i)) {
            let width = columns.input_cols.len();
            let key = content_key(
                (REPORT_COLUMNS.len()..REPORT_COLUMNS.len() + width)
                    .map(|i| row.cells.get(i).unwrap_or("")),
            );
            journaled.insert((line >= NO_ROW, key));
            // Lines of no input row (users deactivated as missing from the roster) stand for
            // no row to skip: a resumed run finds those users inactive and leaves them alone,
            // and the lines themselves are kept (see `finalize`).
            if outcome.status.is_done() && line < NO_ROW {
                earlier.done.insert(key, outcome);
                let cell = |c: usize| columns.output_col(c).and_then(|i| row.cells.get(i));
                if let Some(user) = user_of(key_cols, cell) {
                    earlier.done_users.insert(user);
                }
            }
            if !earlier.append {
                earlier.carry.push(row.cells);
            }
        }
    }
    read_in_flight(report, columns, &journaled, &mut earlier)?;
    Ok(earlier)
}

/// The notes of writes an earlier attempt sent and never journaled an outcome for.
fn read_in_flight(
    report: &Path,
    columns: &Columns,
    journaled: &std::collections::HashSet<(bool, u64)>,
    earlier: &mut Earlier,
) -> Result<(), String> {
    let path = sending_path(report);
    let Ok(file) = File::open(&path) else {
        return Ok(());
    };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(io::BufReader::new(file));
    let width = columns.input_cols.len();
    for record in reader.records() {
        // A note cut short by the kill is the last one, of a write never sent.
        let Ok(record) = record else { break };
        let Some((line, outcome)) = outcome_of(|i| record.get(i)) else {
            continue;
        };
        let shown = (REPORT_COLUMNS.len()..REPORT_COLUMNS.len() + width)
            .map(|i| record.get(i).unwrap_or(""));
        let key = content_key(shown);
        let leaver = line >= NO_ROW;
        if journaled.contains(&(leaver, key)) {
            continue;
        }
        if leaver {
            let mut by_column = vec![String::new(); columns.headers.len()];
            for (i, &c) in columns.input_cols.iter().enumerate() {
                by_column[c] = record
                    .get(REPORT_COLUMNS.len() + i)
                    .unwrap_or("")
                    .to_string();
            }
            let cells = Cells::from(by_column);
            // A conflict re-read notes a write twice: the later note is the one sent last.
            earlier.leavers_in_flight.retain(|(c, _)| *c != cells);
            earlier.leavers_in_flight.push((cells, outcome));
        } else {
            earlier.in_flight.insert(key, outcome);
        }
    }
    Ok(())
}

impl Journal {
    /// Starts the journal of `report`: appended to when resuming into one, else new.
    pub fn open(report: &Path, columns: &Columns, earlier: &Earlier) -> io::Result<Self> {
        let path = journal_path(report);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let file = if earlier.append {
            OpenOptions::new().append(true).open(&path)?
        } else {
            // Built aside and renamed, so an earlier report is replaced only by a whole journal.
            let tmp = super::AtomicFile::new(&path);
            {
                let mut text = columns.csv.preamble().to_vec();
                push_csv_record(
                    &mut text,
                    columns.header_row().iter().map(String::as_str),
                    &columns.csv,
                );
                for line in &earlier.carry {
                    push_csv_record(&mut text, line.iter(), &columns.csv);
                }
                let mut f = File::create(&tmp.tmp)?;
                f.write_all(&text)?;
                f.sync_all()?;
            }
            tmp.commit()?;
            OpenOptions::new().append(true).open(&path)?
        };
        let start = file.metadata()?.len();
        let writer = BufWriter::with_capacity(64 * 1024, file);
        Ok(Journal {
            path,
            writer: Some(writer),
            line: Vec::new(),
            columns: columns.clone(),
            start,
            durable: start,
            pending: 0,
        })
    }

    /// Appends one outcome; it reaches the operating system at the next [`Journal::flush`].
    pub fn record(&mut self, row: &ReportRow) -> io::Result<()> {
        self.line.clear();
        self.columns.csv_line(row, &mut self.line);
        self.pending += self.line.len() as u64;
        let written = match self.writer.as_mut() {
            Some(w) => w.write_all(&self.line),
            None => return Err(broken()),
        };
        written.map_err(|e| self.cut_back(e))
    }

    /// Hands every outcome recorded so far to the operating system.
    pub fn flush(&mut self) -> io::Result<()> {
        let flushed = match self.writer.as_mut() {
            Some(w) => w.flush(),
            None => return Err(broken()),
        };
        match flushed {
            Ok(()) => {
                self.durable += std::mem::take(&mut self.pending);
                Ok(())
            }
            Err(e) => Err(self.cut_back(e)),
        }
    }

    /// After a failed write (a full disk): drops what did not reach the file whole and cuts
    /// the file back to its last complete line, so the next run never reads a torn line.
    fn cut_back(&mut self, e: io::Error) -> io::Error {
        // What is left in the buffer is dropped unwritten (`into_parts`: a BufWriter dropped
        // whole would try once more and could tear a line after all).
        if let Some(w) = self.writer.take() {
            let (file, _unwritten) = w.into_parts();
            let _ = file.set_len(self.durable);
        }
        self.pending = 0;
        e
    }

    pub fn close(mut self) -> io::Result<()> {
        self.flush()
    }
}

fn broken() -> io::Error {
    io::Error::other("an earlier write to the journal failed")
}

/// Rewrites the journal as the final report (and failures file) in input order, from the lines
/// this run wrote (those from byte `from` on); a later line for the same row wins.
/// `field_errors` holds the broken cells of invalid rows by row number, to mark them in a
/// workbook. Each final line is also handed to `each` (the undo file is built from them).
/// The files are put in place by [`Finalized::finish`].
pub fn finalize(
    journal: &Path,
    from: u64,
    report: &Path,
    columns: &Columns,
    field_errors: &HashMap<u64, Vec<FieldError>>,
    mut each: impl FnMut(&Outcome, &Cells),
) -> io::Result<Finalized> {
    // Written in `columns.csv` (see `Journal::open`); the reader takes off a BOM and reads
    // either line end.
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .delimiter(columns.csv.delimiter)
        .from_path(journal)?;
    let mut index: Vec<(u64, u64, u64)> = Vec::new();
    let mut record = csv::StringRecord::new();
    let mut seq = 0u64;
    loop {
        let pos = reader.position().byte();
        if !reader.read_record(&mut record)? {
            break;
        }
        let start = record.position().map_or(pos, |p| p.byte());
        // Where the line ends tells whose it is: after CR LF line ends a record's start is the
        // LF of the line before (the reader ends a record at its CR), which for this run's
        // first line lies before `from`.
        let end = reader.position().byte();
        // An earlier run's lines of input rows are this run's again (carried or sent anew);
        // its lines of no input row (users it deactivated as missing from the roster) are
        // kept as they are, or a resumed run's report would lose them.
        if end <= from && record.get(0) != Some("") {
            continue;
        }
        // Lines of no input row keep their journal order, after every input row.
        let line = match record.get(0) {
            Some("") => Some(NO_ROW + seq),
            other => other.and_then(|s| s.parse::<u64>().ok()),
        };
        if let Some(line) = line {
            index.push((line, seq, start));
            seq += 1;
        }
    }
    index.sort_unstable();
    // Keep the last entry of each row.
    let mut keep: Vec<(u64, u64)> = Vec::with_capacity(index.len());
    for (line, _, offset) in index {
        match keep.last_mut() {
            Some(last) if last.0 == line => last.1 = offset,
            _ => keep.push((line, offset)),
        }
    }
    let mut writer = ReportWriter::create(report, columns.clone())?;
    let width = columns.headers.len();
    // The lines are read again in journal order, each held until its row's turn: outcomes
    // come nearly in row order (a worker finishes a few rows after the one before it), so
    // few wait, and a line read in its turn is written from the reader's own buffer. Seeking
    // to each line in row order instead cost a read of the file per line.
    let turn: FxHashMap<u64, usize> = keep
        .iter()
        .enumerate()
        .map(|(i, &(_, offset))| (offset, i))
        .collect();
    let mut waiting: FxHashMap<usize, csv::StringRecord> = FxHashMap::default();
    let mut emit = |line: u64, record: &csv::StringRecord| -> io::Result<()> {
        let Some((_, outcome)) = outcome_of(|i| record.get(i)) else {
            return Ok(());
        };
        let mut by_column = vec![""; width];
        for (i, &c) in columns.input_cols.iter().enumerate() {
            if let Some(v) = record.get(REPORT_COLUMNS.len() + i) {
                by_column[c] = v;
            }
        }
        let cells = Cells::from(by_column);
        let errors = match outcome.status {
            Status::Invalid => field_errors.get(&line).map_or(&[][..], Vec::as_slice),
            _ => &[],
        };
        writer.write(&ReportRow {
            line,
            outcome: &outcome,
            cells: &cells,
            field_errors: errors,
        })?;
        each(&outcome, &cells);
        Ok(())
    };
    let mut next = 0;
    let mut start = csv::Position::new();
    start.set_byte(0);
    reader.seek(start)?;
    loop {
        while let Some(held) = waiting.remove(&next) {
            emit(keep[next].0, &held)?;
            next += 1;
        }
        if next == keep.len() || !reader.read_record(&mut record)? {
            break;
        }
        match record.position().and_then(|p| turn.get(&p.byte())) {
            Some(&i) if i == next => {
                emit(keep[i].0, &record)?;
                next += 1;
            }
            Some(&i) => {
                waiting.insert(i, record.clone());
            }
            None => {}
        }
    }
    Ok(Finalized {
        writer,
        journal: journal.to_path_buf(),
        report: report.to_path_buf(),
    })
}

/// The final report with every row written, not yet in place: a workbook's summary sheet
/// needs what the run learned from the rows (how it ended, the undo file).
pub struct Finalized {
    writer: ReportWriter,
    journal: PathBuf,
    report: PathBuf,
}

impl Finalized {
    /// Puts the report and failures file in place, a workbook report summed up by `facts`,
    /// and removes the journal. Returns whether a failures file was written.
    pub fn finish(mut self, facts: Option<super::summary::RunFacts>) -> io::Result<bool> {
        if let Some(facts) = facts {
            self.writer.sum_up(facts);
        }
        let wrote_failures = self.writer.finish()?;
        if self.journal != self.report {
            std::fs::remove_file(&self.journal)?;
        }
        Ok(wrote_failures)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resumed_runs_report_keeps_the_earlier_runs_deactivations_after_the_rows() {
        let dir = tempfile::tempdir().unwrap();
        let journal = dir.path().join(".report.csv.journal");
        let columns = Columns {
            headers: vec!["username".into()],
            input_cols: vec![0],
            masked: Vec::new(),
            defuse_input: false,
            csv: CsvDialect::PLAIN,
        };
        let earlier = "row,status,error,changes,http_status,attempts,username\n\
                       2,updated,,,200,2,a\n\
                       ,deactivated,,,200,2,gone1\n";
        let now = "2,unchanged,,,,0,a\n\
                   3,updated,,,200,2,b\n\
                   ,deactivated,,,200,2,gone2\n";
        std::fs::write(&journal, format!("{earlier}{now}")).unwrap();
        let report = dir.path().join("report.csv");
        finalize(
            &journal,
            earlier.len() as u64,
            &report,
            &columns,
            &HashMap::new(),
            |_, _| {},
        )
        .unwrap()
        .finish(None)
        .unwrap();
        let text = std::fs::read_to_string(&report).unwrap();
        assert_eq!(
            text,
            "row,status,error,changes,http_status,attempts,username\n\
             2,unchanged,,,,0,a\n\
             3,updated,,,200,2,b\n\
             ,deactivated,,,200,2,gone1\n\
             ,deactivated,,,200,2,gone2\n"
        );
    }

    #[test]
    fn a_journal_in_the_inputs_dialect_is_read_back_in_it() {
        let dir = tempfile::tempdir().unwrap();
        let csv = CsvDialect {
            delimiter: b';',
            crlf: true,
            bom: true,
        };
        let columns = Columns {
            headers: vec!["username".into(), "department".into()],
            input_cols: vec![0, 1],
            masked: Vec::new(),
            defuse_input: false,
            csv,
        };
        let report = dir.path().join("report.csv");
        let mut journal = Journal::open(&report, &columns, &Earlier::none()).unwrap();
        let from = journal.start;
        for (line, name, department) in [(3, "Zoë", "R&D; Lab"), (2, "José", "a, b")] {
            let cells = Cells::from(vec![name, department]);
            journal
                .record(&ReportRow {
                    line,
                    outcome: &Outcome::new(Status::Updated),
                    cells: &cells,
                    field_errors: &[],
                })
                .unwrap();
        }
        journal.close().unwrap();
        let mut seen = Vec::new();
        finalize(&report, from, &report, &columns, &HashMap::new(), |_, c| {
            seen.push(c.to_vec())
        })
        .unwrap()
        .finish(None)
        .unwrap();
        assert_eq!(
            seen,
            [["José", "a, b"], ["Zoë", "R&D; Lab"]].map(|r| r.map(String::from).to_vec())
        );
        assert_eq!(
            std::fs::read_to_string(&report).unwrap(),
            "\u{feff}row;status;error;changes;http_status;attempts;username;department\r\n\
             2;updated;;;;0;José;a, b\r\n\
             3;updated;;;;0;Zoë;\"R&D; Lab\"\r\n"
        );
    }
}
