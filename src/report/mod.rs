//! The per-row report and its failures file: `row, status, error, changes, http_status,
//! attempts`, then
//! the input's own columns under the input's own headers, one line per input row. A report is
//! written to a temporary file and renamed into place, so nobody ever opens half a report.
//!
//! Everything about what a report line holds and how it is spelled lives here: which cells,
//! masked and defused ([`Columns`]), CSV fields in the input's own dialect ([`CsvDialect`]),
//! and lines made ahead on every core ([`CsvLines`], [`Lines`]) for
//! [`ReportWriter::write_lines`] to number and write in order.

pub mod guard;
pub mod journal;
pub mod summary;
mod xlsx;

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::engine::{FieldChange, Outcome};
use crate::read::{self, Cells};
use crate::rules::{needs_defusing, FieldError};

pub use crate::rules::REPORT_COLUMNS;
pub use xlsx::report_rows_sheet;

/// Report lines that stand for no input row (the users `--deactivate-missing` found missing
/// from the roster) are numbered from here, so that they sort after every input row; their
/// `row` cell is empty.
pub const NO_ROW: u64 = 1 << 62;

/// One line of a report.
pub struct ReportRow<'a> {
    pub line: u64,
    pub outcome: &'a Outcome,
    /// The input row's cells (all of them; the writer picks the output columns).
    pub cells: &'a Cells,
    /// For `invalid` rows: which cells are broken, to mark them in a workbook.
    pub field_errors: &'a [FieldError],
}

/// How a CSV file is spelled: what separates its cells, what ends its lines, and whether it
/// starts with UTF-8's byte order mark. Always UTF-8: every character of every input fits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CsvDialect {
    pub delimiter: u8,
    pub crlf: bool,
    pub bom: bool,
}

impl CsvDialect {
    /// Comma, LF, no BOM: what the `csv` crate writes, for files no person opens.
    pub const PLAIN: CsvDialect = CsvDialect {
        delimiter: b',',
        crlf: false,
        bom: false,
    };

    /// The CSV report of a workbook. Comma, the separator "CSV UTF-8" means to every Excel
    /// (there is no input delimiter to follow); CR LF, as Excel on Windows saves CSV; and a
    /// BOM, because a workbook's cells can hold any character and Excel reads UTF-8 without
    /// one as the machine's legacy code page.
    pub const WORKBOOK: CsvDialect = CsvDialect {
        delimiter: b',',
        crlf: true,
        bom: true,
    };

    /// The dialect of a CSV report on an input read in `input` (`None`: a workbook): the
    /// input's delimiter and line ends, so that Excel splits the report into columns as it
    /// split the input; and a BOM when the input had one or was not UTF-8, so that Excel,
    /// which reads UTF-8 without a BOM as the machine's legacy code page, shows every
    /// character where the input opened (a Windows-1252 input's report is UTF-8 all the same).
    pub fn following(input: Option<&read::Dialect>) -> CsvDialect {
        match input {
            Some(d) => CsvDialect {
                delimiter: d.delimiter,
                crlf: d.crlf,
                bom: d.bom || !d.utf8,
            },
            None => CsvDialect::WORKBOOK,
        }
    }

    /// Whether a file read in dialect `read` is spelled as this one writes.
    pub fn is(&self, read: &read::Dialect) -> bool {
        read.utf8
            && read.delimiter == self.delimiter
            && read.crlf == self.crlf
            && read.bom == self.bom
    }

    pub fn line_end(&self) -> &'static [u8] {
        if self.crlf {
            b"\r\n"
        } else {
            b"\n"
        }
    }

    /// What the file starts with: the BOM, or nothing.
    pub fn preamble(&self) -> &'static [u8] {
        if self.bom {
            "\u{feff}".as_bytes()
        } else {
            b""
        }
    }
}

/// What a report shows of the input: which columns, under which names, and which to mask;
/// and how a CSV report spells them.
#[derive(Debug, Clone)]
pub struct Columns {
    pub headers: Vec<String>,
    /// Input column indexes, in output order.
    pub input_cols: Vec<usize>,
    /// Input columns whose non-empty values are shown as `***`.
    pub masked: Vec<usize>,
    /// Whether input cells are text whatever they start with (a workbook's string cells):
    /// a CSV report then defuses those Excel would read as formulas.
    pub defuse_input: bool,
    /// The dialect of a CSV report (and its failures file and journal).
    pub csv: CsvDialect,
}

impl Columns {
    pub fn header_row(&self) -> Vec<String> {
        REPORT_COLUMNS
            .iter()
            .map(|s| s.to_string())
            .chain(self.input_cols.iter().map(|&c| self.headers[c].clone()))
            .collect()
    }

    /// Hands each of a row's report cells to `f`, in order: the report's own columns, then the
    /// input's, masked and defused. The one place that decides what a report cell holds.
    pub fn each_cell<E>(
        &self,
        row: &ReportRow,
        f: impl FnMut(&str) -> Result<(), E>,
    ) -> Result<(), E> {
        self.each_cell_as(row, false, f)
    }

    /// [`Columns::each_cell`] for a CSV report, where a cell that was text in a workbook must
    /// not become a formula.
    fn each_csv_cell<E>(
        &self,
        row: &ReportRow,
        f: impl FnMut(&str) -> Result<(), E>,
    ) -> Result<(), E> {
        self.each_cell_as(row, self.defuse_input, f)
    }

    fn each_cell_as<E>(
        &self,
        row: &ReportRow,
        defuse_input: bool,
        mut f: impl FnMut(&str) -> Result<(), E>,
    ) -> Result<(), E> {
        match row.line {
            line if line >= NO_ROW => f("")?,
            line => f(itoa::Buffer::new().format(line))?,
        }
        outcome_cells(row.outcome, &mut f)?;
        for &c in &self.input_cols {
            let v = row.cells.get(c).unwrap_or("");
            if !v.is_empty() && self.masked.contains(&c) {
                f("***")?;
            } else if defuse_input && needs_defusing(v) {
                f(&defuse(v))?;
            } else {
                f(v)?;
            }
        }
        Ok(())
    }

    /// The report's cells for a row, as owned strings.
    pub fn cells(&self, row: &ReportRow) -> Vec<String> {
        let mut out = Vec::with_capacity(REPORT_COLUMNS.len() + self.input_cols.len());
        let _ = self.each_cell(row, |s| {
            out.push(s.to_string());
            Ok::<(), std::convert::Infallible>(())
        });
        out
    }

    /// Appends a row's report line as CSV, without building its cells first.
    pub fn csv_line(&self, row: &ReportRow, out: &mut Vec<u8>) {
        let _ = self.each_csv_cell(row, csv_fields(out, 0, self.csv.delimiter));
        out.extend_from_slice(self.csv.line_end());
    }

    /// [`Columns::csv_line`] without the row number, which [`ReportWriter::write_lines`] puts
    /// in front.
    fn csv_line_after_row(&self, row: &ReportRow, out: &mut Vec<u8>) {
        let _ = self.each_csv_cell(row, csv_fields(out, 1, self.csv.delimiter));
        out.extend_from_slice(self.csv.line_end());
    }

    /// Whether a record whose cells are spelled as [`push_csv_field`] spells them (in the
    /// report's delimiter) can be copied into a report line as it stands: the report shows
    /// every input column, in input order.
    fn copies_records(&self) -> bool {
        self.input_cols.iter().copied().eq(0..self.headers.len())
    }

    /// Whether a row's cells appear in its report line as they are: one per column, and no
    /// value that would be masked.
    fn shows_as_read(&self, cells: &Cells) -> bool {
        cells.len() == self.headers.len()
            && self
                .masked
                .iter()
                .all(|&c| cells.get(c).is_none_or(str::is_empty))
    }

    /// The report column a cell of input column `col` lands in.
    pub fn output_col(&self, col: usize) -> Option<usize> {
        self.input_cols
            .iter()
            .position(|&c| c == col)
            .map(|i| i + REPORT_COLUMNS.len())
    }
}

/// Makes CSV report lines ahead of writing, on any core: each row's line without its row
/// number, which only the rows before it decide (see [`Lines`]).
#[derive(Debug, Clone)]
pub struct CsvLines {
    columns: Columns,
    /// What the line of a valid row holds between the row number and the first input cell,
    /// made once: the same for almost every row `validate` reports.
    valid_then: Vec<u8>,
    /// Whether records offered to [`CsvLines::push`] may be copied (see
    /// [`CsvLines::copying_records`]).
    copies: bool,
}

impl CsvLines {
    fn new(columns: &Columns) -> Self {
        let delimiter = columns.csv.delimiter;
        let mut valid_then = Vec::new();
        let _ = outcome_cells(&Self::valid(), csv_fields(&mut valid_then, 0, delimiter));
        valid_then.push(delimiter);
        CsvLines {
            columns: columns.clone(),
            valid_then,
            copies: false,
        }
    }

    /// The outcome `valid_then` spells. Made where it is compared, so that the comparison
    /// compiles to a few tests of the row's own outcome (against a stored one it called
    /// `memcmp` on every row: 12% of validate's time).
    #[inline(always)]
    fn valid() -> Outcome {
        Outcome::new(crate::engine::Status::Valid)
    }

    /// The same, for rows that come with their records as read from text separated by
    /// `delimiter`: a valid row whose record is already spelled as this report spells it is
    /// copied into its line as it stands, rather than written again cell by cell. A report
    /// follows its input's delimiter, so this holds for every input it can.
    pub fn copying_records(&self, delimiter: u8) -> Self {
        CsvLines {
            copies: self.columns.copies_records() && delimiter == self.columns.csv.delimiter,
            ..self.clone()
        }
    }

    /// Appends a row's line to `lines`, and to their failures-file lines when the row needs
    /// attention. `record`: the row's bytes as read, without the line end, when every cell in
    /// them is spelled as [`push_csv_field`] spells it
    /// ([`crate::read::records::RecordInfo::canonical`]).
    #[inline]
    pub fn push(&self, row: &ReportRow, record: Option<&[u8]>, lines: &mut Lines) {
        match record {
            Some(bytes)
                if self.copies
                    && *row.outcome == Self::valid()
                    && self.columns.shows_as_read(row.cells) =>
            {
                lines.report.extend_from_slice(&self.valid_then);
                lines.report.extend_from_slice(bytes);
                lines.report.extend_from_slice(self.columns.csv.line_end());
            }
            _ => self.columns.csv_line_after_row(row, &mut lines.report),
        }
        if row.outcome.status.needs_attention() {
            self.columns.csv_line_after_row(row, &mut lines.failures);
        }
        lines.ends.push((lines.report.len(), lines.failures.len()));
    }
}

/// Report lines made ahead for a run of rows, in order, each without its row number; and the
/// failures-file lines of those rows that need attention.
#[derive(Debug, Default)]
pub struct Lines {
    report: Vec<u8>,
    failures: Vec<u8>,
    /// Where each row's lines end in `report` and `failures`.
    ends: Vec<(usize, usize)>,
}

impl Lines {
    /// Lines for about `rows` rows, made in `buffer` (emptied first): buffers can go round.
    pub fn new(mut buffer: Vec<u8>, rows: usize) -> Self {
        buffer.clear();
        Lines {
            report: buffer,
            failures: Vec::new(),
            ends: Vec::with_capacity(rows),
        }
    }

    /// The buffer the report lines were made in, to be used again.
    pub fn into_buffer(self) -> Vec<u8> {
        self.report
    }
}

/// Writes the cells handed to it as CSV fields with `delimiter` between, leaving out the
/// first `skip` of them.
fn csv_fields(
    out: &mut Vec<u8>,
    skip: usize,
    delimiter: u8,
) -> impl FnMut(&str) -> Result<(), std::convert::Infallible> + '_ {
    let mut i = 0;
    move |s| {
        if i > skip {
            out.push(delimiter);
        }
        if i >= skip {
            push_csv_field(out, s, delimiter);
        }
        i += 1;
        Ok(())
    }
}

/// The report's cells after the row number: status, error, changes, http_status, attempts.
fn outcome_cells<E>(o: &Outcome, mut f: impl FnMut(&str) -> Result<(), E>) -> Result<(), E> {
    let mut num = itoa::Buffer::new();
    f(o.status.as_str())?;
    if needs_defusing(&o.error) {
        f(&defuse(&o.error))?;
    } else {
        f(&o.error)?;
    }
    if o.changes.is_empty() {
        f("")?;
    } else {
        // A field name never starts a formula: the text starts with one.
        f(&render_changes(&o.changes))?;
    }
    match o.http_status {
        Some(s) => f(num.format(s))?,
        None => f("")?,
    }
    f(num.format(o.attempts))
}

/// Between two fields in the `changes` column.
const CHANGE_SEPARATOR: &str = "; ";
/// Between a field's value before and after.
const ARROW: &str = " → ";
/// What a value that changes but is never shown (a password) reads as.
const NOT_SHOWN: &str = "changed (not shown)";

/// The `changes` column: `Field: before → after`, fields separated by `; `. A value is
/// `(empty)` when empty, bare when it is a whole number or `true`/`false`, and otherwise
/// quoted in `'`, a `'` inside it doubled: so no value can be mistaken for a separator,
/// and [`parse_changes`] reads the column back exactly.
pub fn render_changes(changes: &[FieldChange]) -> String {
    let mut out = String::new();
    for (i, c) in changes.iter().enumerate() {
        if i > 0 {
            out.push_str(CHANGE_SEPARATOR);
        }
        out.push_str(&c.field);
        out.push_str(": ");
        if c.hidden {
            out.push_str(NOT_SHOWN);
            continue;
        }
        push_change_value(&mut out, &c.before);
        out.push_str(ARROW);
        push_change_value(&mut out, &c.after);
    }
    out
}

fn push_change_value(out: &mut String, value: &str) {
    let bare = value == "true"
        || value == "false"
        || (!value.is_empty()
            && value
                .strip_prefix('-')
                .unwrap_or(value)
                .bytes()
                .all(|b| b.is_ascii_digit())
            && value != "-");
    if value.is_empty() {
        out.push_str("(empty)");
    } else if bare {
        out.push_str(value);
    } else {
        out.push('\'');
        out.push_str(&value.replace('\'', "''"));
        out.push('\'');
    }
}

/// Reads a `changes` cell as [`render_changes`] writes it; `None` when it is not one.
pub fn parse_changes(text: &str) -> Option<Vec<FieldChange>> {
    let mut rest = text;
    let mut out = Vec::new();
    while !rest.is_empty() {
        let colon = rest.find(": ")?;
        let field = rest[..colon].to_string();
        rest = &rest[colon + 2..];
        if let Some(after) = rest.strip_prefix(NOT_SHOWN) {
            out.push(FieldChange {
                field,
                before: String::new(),
                after: String::new(),
                hidden: true,
            });
            rest = after;
        } else {
            let (before, after_before) = parse_change_value(rest)?;
            let after_arrow = after_before.strip_prefix(ARROW)?;
            let (after, tail) = parse_change_value(after_arrow)?;
            out.push(FieldChange {
                field,
                before,
                after,
                hidden: false,
            });
            rest = tail;
        }
        if !rest.is_empty() {
            rest = rest.strip_prefix(CHANGE_SEPARATOR)?;
        }
    }
    Some(out)
}

/// One value and what follows it.
fn parse_change_value(text: &str) -> Option<(String, &str)> {
    if let Some(rest) = text.strip_prefix("(empty)") {
        return Some((String::new(), rest));
    }
    if let Some(quoted) = text.strip_prefix('\'') {
        let mut value = String::new();
        let mut chars = quoted.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            if c == '\'' {
                if let Some((_, '\'')) = chars.peek() {
                    chars.next();
                    value.push('\'');
                } else {
                    return Some((value, &quoted[i + 1..]));
                }
            } else {
                value.push(c);
            }
        }
        return None;
    }
    let end = [text.find(ARROW), text.find(CHANGE_SEPARATOR)]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(text.len());
    Some((text[..end].to_string(), &text[end..]))
}

/// Appends one CSV field, quoted only when it holds the delimiter, a quote or a line break
/// (as the `csv` crate writes it, and as [`crate::read::records::RecordInfo::canonical`] finds
/// a record's cells already spelled).
pub fn push_csv_field(out: &mut Vec<u8>, field: &str, delimiter: u8) {
    let bytes = field.as_bytes();
    if bytes
        .iter()
        .any(|&b| b == delimiter || matches!(b, b'"' | b'\n' | b'\r'))
    {
        out.push(b'"');
        for &b in bytes {
            if b == b'"' {
                out.push(b'"');
            }
            out.push(b);
        }
        out.push(b'"');
    } else {
        out.extend_from_slice(bytes);
    }
}

/// Appends a whole CSV record and its line end, in `dialect`.
pub fn push_csv_record<'a>(
    out: &mut Vec<u8>,
    fields: impl IntoIterator<Item = &'a str>,
    dialect: &CsvDialect,
) {
    for (i, f) in fields.into_iter().enumerate() {
        if i > 0 {
            out.push(dialect.delimiter);
        }
        push_csv_field(out, f, dialect.delimiter);
    }
    out.extend_from_slice(dialect.line_end());
}

/// Text from a server must not become a formula when the report is opened in Excel.
pub fn defuse(text: &str) -> String {
    if needs_defusing(text) {
        format!("'{text}")
    } else {
        text.to_string()
    }
}

/// `<input name>-report.csv` beside the input.
pub fn default_path(input: &Path) -> PathBuf {
    let stem = input
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("input");
    input.with_file_name(format!("{stem}-report.csv"))
}

/// `out/report.csv` → `out/report-failures.csv`.
pub fn failures_path(report: &Path) -> PathBuf {
    beside(report, "failures")
}

/// Where a run's undo file goes: `out/report.csv` → `out/report-undo.csv`.
pub fn undo_path(report: &Path) -> PathBuf {
    beside(report, "undo")
}

fn beside(report: &Path, what: &str) -> PathBuf {
    let stem = report
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("report");
    let ext = report.extension().and_then(|s| s.to_str()).unwrap_or("csv");
    report.with_file_name(format!("{stem}-{what}.{ext}"))
}

pub fn is_xlsx(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("xlsx"))
}

/// A file written beside its destination and renamed over it when complete.
pub struct AtomicFile {
    pub tmp: PathBuf,
    pub dest: PathBuf,
}

impl AtomicFile {
    pub fn new(dest: &Path) -> Self {
        let name = dest
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("report");
        AtomicFile {
            tmp: dest.with_file_name(format!(".{name}.{}.tmp", std::process::id())),
            dest: dest.to_path_buf(),
        }
    }
    pub fn commit(&self) -> io::Result<()> {
        std::fs::rename(&self.tmp, &self.dest)
    }
    /// Removes what runs that were killed before renaming left beside `dest`: temporary files
    /// named after it by any process. Only for a caller that holds the report's lock, so that
    /// no live run is still writing one of them.
    pub fn remove_left_over(dest: &Path) {
        let (Some(dir), Some(name)) = (dest.parent(), dest.file_name().and_then(|n| n.to_str()))
        else {
            return;
        };
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        let prefix = format!(".{name}.");
        for entry in entries.flatten() {
            let file_name = entry.file_name();
            let Some(n) = file_name.to_str() else {
                continue;
            };
            let pid = n
                .strip_prefix(&prefix)
                .and_then(|rest| rest.strip_suffix(".tmp"));
            if pid.is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    pub fn abandon(&self) {
        let _ = std::fs::remove_file(&self.tmp);
    }
}

trait Sink: Send {
    fn write(&mut self, row: &ReportRow) -> io::Result<()>;
    /// Whole report lines, numbered (CSV sinks only).
    fn write_lines(&mut self, lines: &[u8]) -> io::Result<()>;
    /// Every row is written: what is left may start going to disk before [`Sink::finish`].
    fn rows_done(&mut self) -> io::Result<()> {
        Ok(())
    }
    /// What the run was, for a workbook's first sheet; `failures`: the failures file, when
    /// one is written. A CSV report has no room for it.
    fn sum_up(&mut self, _facts: summary::RunFacts, _failures: Option<&Path>) {}
    fn finish(self: Box<Self>) -> io::Result<()>;
    fn abandon(self: Box<Self>);
}

struct CsvSink {
    file: AtomicFile,
    writer: BufWriter<File>,
    columns: Columns,
    line: Vec<u8>,
    written: Writeback,
}

/// Makes the report durable as it grows: another thread `fdatasync`s it every few megabytes
/// while rows are still being checked, so the `fsync` at the end waits for the last few
/// megabytes rather than the whole file (0.16–0.23 s for a 130 MB report on this machine's
/// disk, where the kernel's own write-back does not make data durable sooner).
struct Writeback {
    written: u64,
    requested: u64,
    ask: Option<crossbeam_channel::Sender<()>>,
    syncer: Option<std::thread::JoinHandle<io::Result<()>>>,
}

impl Writeback {
    const STEP: u64 = 16 << 20;

    fn new(file: &File) -> io::Result<Self> {
        let file = file.try_clone()?;
        // One request waits at most: asking while a sync runs only asks for one more.
        let (ask, asked) = crossbeam_channel::bounded::<()>(1);
        let syncer = std::thread::Builder::new()
            .name("report-sync".into())
            .spawn(move || {
                // The first error is kept for `finish`: the same open file reports it only once.
                let mut result = Ok(());
                for () in asked {
                    if let Err(e) = file.sync_data() {
                        result = result.and(Err(e));
                    }
                }
                result
            })?;
        Ok(Writeback {
            written: 0,
            requested: 0,
            ask: Some(ask),
            syncer: Some(syncer),
        })
    }

    fn wrote(&mut self, n: usize, writer: &mut BufWriter<File>) -> io::Result<()> {
        self.written += n as u64;
        if self.written - self.requested >= Self::STEP {
            self.sync_rest(writer)?;
        }
        Ok(())
    }

    /// Asks for all that was written so far to be synced now, without waiting for it.
    fn sync_rest(&mut self, writer: &mut BufWriter<File>) -> io::Result<()> {
        writer.flush()?;
        if let Some(ask) = &self.ask {
            // When a request is already waiting, the sync it asks for comes after this flush.
            let _ = ask.try_send(());
        }
        self.requested = self.written;
        Ok(())
    }

    /// Waits for the sync in progress, and returns the first error any of them met.
    fn finish(&mut self) -> io::Result<()> {
        self.ask = None;
        match self.syncer.take().map(|t| t.join()) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(io::Error::other("the report's sync thread failed")),
            None => Ok(()),
        }
    }
}

impl Drop for Writeback {
    fn drop(&mut self) {
        let _ = self.finish();
    }
}

impl CsvSink {
    fn create(path: &Path, columns: &Columns) -> io::Result<Self> {
        let file = AtomicFile::new(path);
        let created = File::create(&file.tmp)?;
        let written = Writeback::new(&created)?;
        let mut writer = BufWriter::with_capacity(256 * 1024, created);
        let mut line = columns.csv.preamble().to_vec();
        push_csv_record(
            &mut line,
            columns.header_row().iter().map(String::as_str),
            &columns.csv,
        );
        writer.write_all(&line)?;
        Ok(CsvSink {
            file,
            writer,
            columns: columns.clone(),
            line,
            written,
        })
    }
}

impl Sink for CsvSink {
    fn write(&mut self, row: &ReportRow) -> io::Result<()> {
        self.line.clear();
        self.columns.csv_line(row, &mut self.line);
        self.writer.write_all(&self.line)?;
        self.written.wrote(self.line.len(), &mut self.writer)
    }
    fn write_lines(&mut self, lines: &[u8]) -> io::Result<()> {
        self.writer.write_all(lines)?;
        self.written.wrote(lines.len(), &mut self.writer)
    }
    fn rows_done(&mut self) -> io::Result<()> {
        self.written.sync_rest(&mut self.writer)
    }
    fn finish(mut self: Box<Self>) -> io::Result<()> {
        self.writer.flush()?;
        self.written.finish()?;
        self.writer.get_ref().sync_all()?;
        self.file.commit()
    }
    fn abandon(self: Box<Self>) {
        self.file.abandon();
    }
}

/// `failures`: the sink is the failures file, whose workbook holds its rows alone (it is
/// fixed and run again, and a run reads a workbook's first sheet).
fn create_sink(path: &Path, columns: &Columns, failures: bool) -> io::Result<Box<dyn Sink>> {
    if is_xlsx(path) {
        Ok(Box::new(xlsx::XlsxSink::create(path, columns, failures)))
    } else {
        Ok(Box::new(CsvSink::create(path, columns)?))
    }
}

/// Writes the report and, when any row needs attention, the failures file beside it.
pub struct ReportWriter {
    report: Option<Box<dyn Sink>>,
    failures: Option<Box<dyn Sink>>,
    pub report_path: PathBuf,
    pub failures_path: PathBuf,
    columns: Columns,
    /// Lines made ahead, with their row numbers put in front: for the report, for the
    /// failures file. Kept to be used again.
    numbered: (Vec<u8>, Vec<u8>),
}

impl ReportWriter {
    pub fn create(report_path: &Path, columns: Columns) -> io::Result<Self> {
        if let Some(dir) = report_path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        Ok(ReportWriter {
            report: Some(create_sink(report_path, &columns, false)?),
            failures: None,
            report_path: report_path.to_path_buf(),
            failures_path: failures_path(report_path),
            columns,
            numbered: Default::default(),
        })
    }

    /// What makes this report's lines ahead of writing, on any core, when it is CSV (a
    /// workbook is written row by row with [`ReportWriter::write`]).
    pub fn csv_lines(&self) -> Option<CsvLines> {
        (!is_xlsx(&self.report_path)).then(|| CsvLines::new(&self.columns))
    }

    /// Lines made ahead by [`ReportWriter::csv_lines`], numbered with `numbers` (one a row, in
    /// order) and written.
    pub fn write_lines(
        &mut self,
        lines: &Lines,
        numbers: impl IntoIterator<Item = u64>,
    ) -> io::Result<()> {
        let (report, failures) = &mut self.numbered;
        report.clear();
        failures.clear();
        let mut num = itoa::Buffer::new();
        let delimiter = self.columns.csv.delimiter;
        let (mut r, mut f) = (0, 0);
        for (&(report_end, failures_end), n) in lines.ends.iter().zip(numbers) {
            let n = num.format(n).as_bytes();
            report.extend_from_slice(n);
            report.push(delimiter);
            report.extend_from_slice(&lines.report[r..report_end]);
            r = report_end;
            if failures_end > f {
                failures.extend_from_slice(n);
                failures.push(delimiter);
                failures.extend_from_slice(&lines.failures[f..failures_end]);
                f = failures_end;
            }
        }
        if let Some(sink) = self.report.as_mut() {
            sink.write_lines(report)?;
        }
        if !failures.is_empty() {
            if self.failures.is_none() {
                self.failures = Some(create_sink(&self.failures_path, &self.columns, true)?);
            }
            if let Some(sink) = self.failures.as_mut() {
                sink.write_lines(failures)?;
            }
        }
        Ok(())
    }

    pub fn write(&mut self, row: &ReportRow) -> io::Result<()> {
        if let Some(r) = self.report.as_mut() {
            r.write(row)?;
        }
        if row.outcome.status.needs_attention() {
            if self.failures.is_none() {
                self.failures = Some(create_sink(&self.failures_path, &self.columns, true)?);
            }
            if let Some(f) = self.failures.as_mut() {
                f.write(row)?;
            }
        }
        Ok(())
    }

    /// What the run was, for a workbook report's first sheet (a CSV report has no room for
    /// it): given after the last row, before [`ReportWriter::finish`].
    pub fn sum_up(&mut self, facts: summary::RunFacts) {
        let failures = self
            .failures
            .is_some()
            .then_some(self.failures_path.as_path());
        if let Some(r) = self.report.as_mut() {
            r.sum_up(facts, failures);
        }
    }

    /// Every row is written: the rest of both files starts going to disk while the caller
    /// does its last work before [`ReportWriter::finish`] (on this machine's disk, syncing
    /// the last megabytes of a large report takes about as long as looking for duplicates).
    pub fn rows_done(&mut self) -> io::Result<()> {
        for sink in [self.report.as_mut(), self.failures.as_mut()]
            .into_iter()
            .flatten()
        {
            sink.rows_done()?;
        }
        Ok(())
    }

    /// Puts both files in place. A failures file left by an earlier run is removed when no
    /// row needs attention now, so it never describes a run it does not belong to.
    /// Returns whether a failures file was written.
    pub fn finish(mut self) -> io::Result<bool> {
        if let Some(r) = self.report.take() {
            r.finish()?;
        }
        match self.failures.take() {
            Some(f) => {
                f.finish()?;
                Ok(true)
            }
            None => {
                if self.failures_path.exists() {
                    std::fs::remove_file(&self.failures_path)?;
                }
                Ok(false)
            }
        }
    }
}

impl Drop for ReportWriter {
    fn drop(&mut self) {
        if let Some(r) = self.report.take() {
            r.abandon();
        }
        if let Some(f) = self.failures.take() {
            f.abandon();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_text_cannot_start_a_formula_in_excel() {
        for text in [
            "=cmd|' /C calc'!A0",
            "+1+1",
            "-2+3",
            "@SUM(A1)",
            "\tx",
            "\rx",
        ] {
            assert!(defuse(text).starts_with('\''), "{text}");
        }
        assert_eq!(defuse("HTTP 400: bad"), "HTTP 400: bad");
        assert_eq!(defuse(""), "");
    }

    #[test]
    fn changes_read_back_exactly_whatever_the_values_hold() {
        let change = |field: &str, before: &str, after: &str| FieldChange {
            field: field.into(),
            before: before.into(),
            after: after.into(),
            hidden: false,
        };
        let changes = vec![
            change("name", "O'Brien", "a; b → c"),
            change("isActive", "true", "false"),
            change("roles", "", "2; 4"),
            change("id", "-3", "(empty)"),
            FieldChange {
                hidden: true,
                ..change("password", "", "")
            },
        ];
        let text = render_changes(&changes);
        assert_eq!(
            text,
            "name: 'O''Brien' → 'a; b → c'; isActive: true → false; roles: (empty) → '2; 4'; \
             id: -3 → '(empty)'; password: changed (not shown)"
        );
        assert_eq!(parse_changes(&text), Some(changes));
        assert_eq!(parse_changes(""), Some(vec![]));
        assert_eq!(parse_changes("name: 'unclosed → 'x'"), None);
        assert_eq!(parse_changes("not a change"), None);
    }

    #[test]
    fn failures_files_sit_beside_their_report() {
        assert_eq!(
            failures_path(Path::new("out/report.csv")),
            Path::new("out/report-failures.csv")
        );
        assert_eq!(
            failures_path(Path::new("r.xlsx")),
            Path::new("r-failures.xlsx")
        );
        assert_eq!(
            default_path(Path::new("dir/users.xlsx")),
            Path::new("dir/users-report.csv")
        );
    }
}
