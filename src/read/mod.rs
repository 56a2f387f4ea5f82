//! Turns any supported spreadsheet into a stream of [`Row`]s numbered as Excel shows them.
//! Format detection (by content, not by name), encodings, delimiters and the header row live
//! here and nowhere else.

mod csv;
mod excel;
mod hidden;
pub mod records;

use std::fmt;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::error::Error;

/// One data row as the user sees it in Excel.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Row {
    /// The row number Excel shows (the header of a file that starts with it is row 1).
    pub line: u64,
    pub cells: Cells,
    /// Cells that could not be read as text (a formula error, bytes in no known encoding),
    /// with the reason; the row is reported invalid rather than sent.
    pub bad_cells: Vec<(usize, String)>,
}

/// The cells of a row as one string and where each cell lies in it: two allocations a row
/// rather than one per cell, which at a million rows is most of what reading costs. Cells
/// pushed one by one follow each other; the fast reader copies a record whole and points into
/// it, with the delimiters and quotes left between the cells.
#[derive(Clone, Default)]
pub struct Cells {
    text: String,
    spans: Vec<(usize, usize)>,
}

/// A cell the fast reader found: where it lies in the record's text, or, for a quoted cell
/// with a doubled quote in it, in the text it unquoted into `extra`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Span {
    pub start: usize,
    pub end: usize,
    pub in_extra: bool,
}

impl Cells {
    pub fn with_capacity(cells: usize, bytes: usize) -> Self {
        Cells {
            text: String::with_capacity(bytes),
            spans: Vec::with_capacity(cells),
        }
    }

    pub fn push(&mut self, cell: &str) {
        let start = self.text.len();
        self.text.push_str(cell);
        self.spans.push((start, self.text.len()));
    }

    pub fn clear(&mut self) {
        self.text.clear();
        self.spans.clear();
    }

    /// The cells of one record at once: its text copied whole (with `extra` after it), and
    /// each cell a span of it. Every span must start and end on a character boundary, as
    /// spans taken from `&str` slices of `record` and `extra` do.
    pub(crate) fn set_record(&mut self, record: &str, extra: &str, spans: &[Span]) {
        self.clear();
        self.text.push_str(record);
        self.text.push_str(extra);
        let shift = record.len();
        self.spans.extend(spans.iter().map(|s| {
            let at = if s.in_extra { shift } else { 0 };
            debug_assert!(self.text.is_char_boundary(s.start + at));
            debug_assert!(self.text.is_char_boundary(s.end + at));
            (s.start + at, s.end + at)
        }));
    }

    pub fn get(&self, i: usize) -> Option<&str> {
        let (start, end) = *self.spans.get(i)?;
        // Every cell is a whole `&str` pushed, or a span of one that `set_record` was promised
        // starts and ends on character boundaries; slicing the bytes skips re-checking that on
        // every look-up.
        let bytes = &self.text.as_bytes()[start..end];
        debug_assert!(std::str::from_utf8(bytes).is_ok());
        // SAFETY: see above.
        Some(unsafe { std::str::from_utf8_unchecked(bytes) })
    }

    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> + '_ {
        (0..self.len()).map(|i| self.get(i).unwrap_or(""))
    }

    pub fn to_vec(&self) -> Vec<String> {
        self.iter().map(str::to_string).collect()
    }
}

impl<S: AsRef<str>> From<Vec<S>> for Cells {
    fn from(cells: Vec<S>) -> Self {
        let mut out = Cells::with_capacity(cells.len(), 0);
        for c in &cells {
            out.push(c.as_ref());
        }
        out
    }
}

/// Cells are equal when their texts are, however they are held.
impl PartialEq for Cells {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for Cells {}

impl fmt::Debug for Cells {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl Row {
    /// Empty rows, including rows of only whitespace, are skipped and not reported.
    pub fn is_blank(&self) -> bool {
        self.bad_cells.is_empty() && self.cells.iter().all(|c| crate::rules::trim(c).is_empty())
    }
}

pub type Rows = Box<dyn Iterator<Item = Result<Row, Error>> + Send>;

/// An opened sheet: its header row and the data rows after it.
pub struct Sheet {
    pub path: PathBuf,
    /// What was read, for messages: "CSV (UTF-8, ';')" or "XLSX sheet 'Users'".
    pub description: String,
    pub headers: Vec<String>,
    pub header_line: u64,
    pub rows: Rows,
    /// Things worth telling the user that do not stop the run.
    pub warnings: Vec<String>,
    /// For UTF-8 delimited text: where its rows lie, to read them in blocks on every core.
    pub text: Option<TextBody>,
    /// Whether a cell is text whatever it starts with (a workbook's string cell), so that a
    /// CSV report must keep Excel from reading `=…` in it as a formula.
    pub cells_are_text: bool,
    /// How delimited text is written; `None` for a workbook, which has no such thing.
    pub dialect: Option<Dialect>,
    /// How the header row was told: by a column naming a user, or (none did) as the first
    /// non-empty row.
    pub header_found: HeaderFound,
    /// A workbook's other sheets, for a message about a header that was not found.
    pub other_sheets: Vec<String>,
}

/// How the header row of a sheet was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderFound {
    /// A row naming a user key column, exactly (or a report's own header).
    Named,
    /// A row with a column within a typo of a user key column (`Emial`).
    NearlyNamed,
    /// No row within the first [`HEADER_SEARCH`] non-empty ones names a user key column: the
    /// first of them is taken.
    FirstRow,
}

impl Sheet {
    /// What a message about this sheet's header adds: where it looked, and where else to look.
    pub fn header_hint(&self, marks: &HeaderMarks) -> String {
        let mut hint = String::new();
        if self.header_found == HeaderFound::FirstRow && !marks.names.is_empty() {
            hint.push_str(&format!(
                "; no row among the first {HEADER_SEARCH} non-empty ones names a user key column \
                 (looked for {})",
                marks.shown
            ));
        }
        if !self.other_sheets.is_empty() {
            hint.push_str(&format!(
                "; this is {}; the workbook's other sheets are {}: name the one to read with \
                 --sheet NAME",
                self.description,
                quoted_list(&self.other_sheets)
            ));
        }
        hint
    }
}

/// How many non-empty rows at the top of a sheet are looked at for the header: a title, a
/// blank line and a note or two above it are common; a header further down is not.
pub const HEADER_SEARCH: usize = 10;

/// What tells the header row from a title above it: the header is the first row naming a
/// user key column. The reader knows no platform; the caller lists those names. With none,
/// the first non-empty row is the header (a report's, written by bulkedit itself).
#[derive(Debug, Clone, Default)]
pub struct HeaderMarks {
    /// The names, as [`crate::rules::normalize_header`] leaves them.
    names: Vec<String>,
    /// The names for a message: `user_email, email, userId, id or username`.
    pub shown: String,
}

impl HeaderMarks {
    pub fn new<'a>(names: impl IntoIterator<Item = &'a str>, shown: impl Into<String>) -> Self {
        let mut normalized: Vec<String> = names
            .into_iter()
            .map(crate::rules::normalize_header)
            .collect();
        normalized.sort_unstable();
        normalized.dedup();
        HeaderMarks {
            names: normalized,
            shown: shown.into(),
        }
    }

    /// Whether a row names a user key column: exactly, within a typo, or not at all.
    fn find(&self, row: &Row) -> Option<HeaderFound> {
        let cells: Vec<String> = row
            .cells
            .iter()
            .map(crate::rules::normalize_header)
            .collect();
        if crate::rules::is_report_header(&row.cells.to_vec())
            || cells.iter().any(|c| self.names.contains(c))
        {
            return Some(HeaderFound::Named);
        }
        cells
            .iter()
            .filter(|c| !c.is_empty())
            .any(|c| self.names.iter().any(|n| crate::rules::within_a_typo(c, n)))
            .then_some(HeaderFound::NearlyNamed)
    }
}

/// `'a', 'b' and 'c'`.
pub fn quoted_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("'{s}'")).collect();
    match quoted.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
    }
}

/// How a delimited text file is written, as found on reading it: what a file written for the
/// same person (opening it in the same program) would follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dialect {
    pub delimiter: u8,
    /// Whether its first line ends in CR LF (or a bare CR), as Windows programs end lines,
    /// rather than LF.
    pub crlf: bool,
    /// Whether it starts with a byte order mark (UTF-8's, or UTF-16's).
    pub bom: bool,
    /// Whether it is UTF-8 (rather than UTF-16 or a legacy code page such as Windows-1252).
    pub utf8: bool,
}

/// The rows of a UTF-8 delimited text file after its header, as bytes: read in blocks of
/// whole lines by [`TextBody::blocks`], parsed by [`records::Records`], and by the full
/// parser again ([`TextBody::rows_from`]) from any record the fast one does not take.
#[derive(Debug, Clone)]
pub struct TextBody {
    /// Where the bytes are read from: the file, or its spooled copy.
    pub path: PathBuf,
    /// The input as the user named it, for messages.
    pub name: PathBuf,
    pub delimiter: u8,
    /// Where the first row after the header starts, in bytes from the start of the file.
    pub data_start: u64,
    /// Row numbering at `data_start`.
    pub numbering: records::Numbering,
    /// The header's cells, to name the column of a reading error.
    pub headers: Vec<String>,
}

/// Whole lines of a text file, and where they start in it.
pub struct Block {
    pub start: u64,
    pub bytes: Vec<u8>,
    /// Whether the block runs to the end of the file (and so may end without a line end).
    pub at_eof: bool,
}

impl TextBody {
    /// The bytes after the header in blocks of about `size` bytes, each cut after a line end,
    /// each in a buffer from `buffer` (so that buffers can be used again).
    /// A cut can fall inside a quoted cell; [`records::Records`] stops there and says so.
    pub fn blocks(
        &self,
        size: usize,
        mut buffer: impl FnMut() -> Vec<u8>,
    ) -> io::Result<impl Iterator<Item = io::Result<Block>>> {
        let mut file = File::open(&self.path)?;
        file.seek(SeekFrom::Start(self.data_start))?;
        let mut start = self.data_start;
        let mut carry: Vec<u8> = Vec::new();
        let mut done = false;
        Ok(std::iter::from_fn(move || {
            if done {
                return None;
            }
            let mut bytes = buffer();
            bytes.clear();
            bytes.append(&mut carry);
            loop {
                let filled = bytes.len();
                bytes.resize(filled + size, 0);
                let n = match read_up_to(&mut file, &mut bytes[filled..]) {
                    Ok(n) => n,
                    Err(e) => {
                        done = true;
                        return Some(Err(e));
                    }
                };
                bytes.truncate(filled + n);
                if n < size {
                    done = true;
                    return Some(Ok(Block {
                        start,
                        bytes,
                        at_eof: true,
                    }));
                }
                // A line longer than a block: read on until one ends.
                if let Some(cut) = memchr::memrchr(b'\n', &bytes[filled..]).map(|i| filled + i + 1)
                {
                    carry.extend_from_slice(&bytes[cut..]);
                    bytes.truncate(cut);
                    let block = Block {
                        start,
                        bytes,
                        at_eof: false,
                    };
                    start += block.bytes.len() as u64;
                    return Some(Ok(block));
                }
            }
        }))
    }

    /// The rows from byte `offset` (where a record starts) to the end, read by the full parser.
    pub fn rows_from(&self, offset: u64, numbering: records::Numbering) -> io::Result<Rows> {
        let mut file = File::open(&self.path)?;
        file.seek(SeekFrom::Start(offset))?;
        Ok(csv::with_headers(
            csv::rows_from_reader(&self.name, Box::new(file), self.delimiter, numbering),
            self.headers.clone(),
        ))
    }
}

/// What a file really is, decided from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Xlsx,
    Xlsb,
    Ods,
    /// An OLE compound file: a legacy .xls, or an encrypted (password-protected) OOXML file.
    Ole,
}

const ZIP_MAGIC: &[u8] = b"PK\x03\x04";
const OLE_MAGIC: &[u8] = &[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1];

pub fn sniff(head: &[u8]) -> Format {
    if head.starts_with(ZIP_MAGIC) {
        // The zip's first entries name the kind: ODS puts `mimetype` first, XLSB has a .bin workbook.
        if contains(head, b"mimetypeapplication/vnd.oasis.opendocument") {
            Format::Ods
        } else if contains(head, b"xl/workbook.bin") {
            Format::Xlsb
        } else {
            Format::Xlsx
        }
    } else if head.starts_with(OLE_MAGIC) {
        Format::Ole
    } else {
        Format::Text
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn extension(path: &Path) -> String {
    path.extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase()
}

/// Opens a spreadsheet whose header is its first non-empty row (a report bulkedit wrote) and
/// returns the rows after it.
pub fn open(path: &Path, sheet: Option<&str>) -> Result<Sheet, Error> {
    open_with(path, sheet, &HeaderMarks::default())
}

/// Opens a spreadsheet, finds its header row (the first naming a user key column, see
/// [`HeaderMarks`]) and returns the rows after it.
pub fn open_with(path: &Path, sheet: Option<&str>, marks: &HeaderMarks) -> Result<Sheet, Error> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if let Some(workbook) = name.strip_prefix("~$") {
        // What a file dialog or a shell's completion offers beside an open workbook.
        return Err(Error::input(
            path,
            format!(
                "this is Excel's lock file, kept while someone has {workbook} open, not a sheet: \
                 give {workbook} itself"
            ),
        ));
    }
    // Looked at without opening it: a second opening of a FIFO would wait for a writer that
    // is gone.
    let regular = std::fs::metadata(path).map(|m| m.is_file()).unwrap_or(true);
    if regular {
        let file = File::open(path).map_err(|e| Error::input(path, format!("cannot open: {e}")))?;
        return open_file(path, path, file, sheet, marks);
    }
    let source = spool(path)?;
    let file = File::open(&source).map_err(|e| Error::input(path, format!("cannot read: {e}")))?;
    open_file(path, &source, file, sheet, marks)
}

/// Input that is not a regular file (a FIFO, `/dev/stdin`) can be read only once: it is read
/// whole, the first time it is opened, into an unnamed temporary file that the process keeps
/// open and that vanishes with it; every opening of the input (a command reads its rows more
/// than once, and in blocks) reads that copy, through `/proc/self/fd`.
#[cfg(target_os = "linux")]
fn spool(path: &Path) -> Result<PathBuf, Error> {
    use std::collections::HashMap;
    use std::os::fd::AsRawFd;
    use std::sync::Mutex;
    static SPOOLS: Mutex<Option<HashMap<PathBuf, File>>> = Mutex::new(None);
    let cannot = |e: io::Error| Error::input(path, format!("cannot read: {e}"));
    let mut spools = SPOOLS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let spools = spools.get_or_insert_with(HashMap::new);
    if !spools.contains_key(path) {
        let mut input =
            File::open(path).map_err(|e| Error::input(path, format!("cannot open: {e}")))?;
        let mut copy = tempfile::tempfile().map_err(cannot)?;
        io::copy(&mut input, &mut copy).map_err(cannot)?;
        spools.insert(path.to_path_buf(), copy);
    }
    let fd = spools[path].as_raw_fd();
    Ok(PathBuf::from(format!("/proc/self/fd/{fd}")))
}

#[cfg(not(target_os = "linux"))]
fn spool(path: &Path) -> Result<PathBuf, Error> {
    Err(Error::input(
        path,
        "is not a regular file (a pipe or a device), which bulkedit reads only on Linux: \
         save it to a file and give that",
    ))
}

/// Opens the spreadsheet named `path` whose bytes are in `source` (the same file, or the
/// spooled copy of one that could be read only once).
fn open_file(
    path: &Path,
    source: &Path,
    mut file: File,
    sheet: Option<&str>,
    marks: &HeaderMarks,
) -> Result<Sheet, Error> {
    let mut head = vec![0u8; 64 * 1024];
    let n = read_up_to(&mut file, &mut head)
        .map_err(|e| Error::input(path, format!("cannot read: {e}")))?;
    head.truncate(n);
    let format = sniff(&head);
    let ext = extension(path);
    let mut warnings = Vec::new();
    let workbook_ext = matches!(ext.as_str(), "xlsx" | "xlsm" | "xlsb" | "xls" | "ods");
    match format {
        Format::Text => {
            if workbook_ext {
                warnings.push(format!(
                    "{} is named .{ext} but holds text; reading it as delimited text",
                    path.display()
                ));
            }
            if sheet.is_some() {
                warnings.push("--sheet is ignored for a text file".into());
            }
            csv::open(path, source, file, head, warnings, marks)
        }
        _ => {
            if !workbook_ext {
                warnings.push(format!(
                    "{} is named .{ext} but is a {} workbook; reading it as one",
                    path.display(),
                    match format {
                        Format::Ods => "ODS",
                        Format::Xlsb => "XLSB",
                        Format::Ole => "legacy Excel (.xls)",
                        _ => "XLSX",
                    }
                ));
            }
            drop(file);
            let mut opened = excel::open(source, format, sheet, warnings, marks)?;
            opened.path = path.to_path_buf();
            Ok(opened)
        }
    }
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

/// The header row and the rows after it: the first row among the first [`HEADER_SEARCH`]
/// non-empty ones that names a user key column (else the first that nearly does, else the
/// first non-empty row), blank rows skipped. Rows above the header (a title, a note) are
/// returned apart, to be named in a warning: nothing is dropped silently.
pub(crate) struct Split {
    pub header: Row,
    pub rows: Rows,
    pub above: Vec<Row>,
    pub found: HeaderFound,
}

fn split_header(
    path: &Path,
    mut rows: Rows,
    what: &str,
    marks: &HeaderMarks,
) -> Result<Split, Error> {
    let mut looked: Vec<Row> = Vec::new();
    let mut failed: Option<Error> = None;
    while looked.len() < HEADER_SEARCH.max(1) {
        match rows.next() {
            None => break,
            Some(Err(e)) => {
                failed = Some(e);
                break;
            }
            Some(Ok(row)) if row.is_blank() => continue,
            Some(Ok(row)) => {
                let named = marks.names.is_empty() || marks.find(&row) == Some(HeaderFound::Named);
                looked.push(row);
                if named {
                    break;
                }
            }
        }
    }
    if looked.is_empty() {
        return Err(failed.unwrap_or_else(|| {
            Error::input(path, format!("{what} is empty: there is no header row"))
        }));
    }
    let named = looked
        .iter()
        .position(|r| marks.names.is_empty() || marks.find(r) == Some(HeaderFound::Named));
    // A typo of a key column marks the header only below nothing but title lines (one cell
    // each): in the rows of a header that names no key, a first name such as `Logan` is a
    // typo of `login` too.
    let titles = looked
        .iter()
        .take_while(|r| r.cells.iter().filter(|c| !c.trim().is_empty()).count() <= 1)
        .count();
    let nearly = looked
        .iter()
        .take(titles + 1)
        .position(|r| marks.find(r) == Some(HeaderFound::NearlyNamed));
    let (at, found) = match (named, nearly) {
        (Some(at), _) => (at, HeaderFound::Named),
        (None, Some(at)) => (at, HeaderFound::NearlyNamed),
        (None, None) => (0, HeaderFound::FirstRow),
    };
    let mut looked = looked.into_iter();
    let above: Vec<Row> = looked.by_ref().take(at).collect();
    let header = looked
        .next()
        .expect("the header is among the rows looked at");
    // The rows looked at past the header, and a reading error met while looking, come first.
    let ahead: Vec<Result<Row, Error>> = looked.map(Ok).chain(failed.map(Err)).collect();
    Ok(Split {
        header,
        rows: Box::new(ahead.into_iter().chain(rows)),
        above,
        found,
    })
}

/// The warning for rows above the header, taken for a title and not read as users.
fn above_header_warning(above: &[Row], header_line: u64) -> Option<String> {
    let first = above.first()?;
    let text = |r: &Row| -> String {
        let cells: Vec<&str> = r
            .cells
            .iter()
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .collect();
        let joined = cells.join(" ");
        if joined.chars().count() > 60 {
            format!("{}…", joined.chars().take(60).collect::<String>())
        } else {
            joined
        }
    };
    let which = if above.len() == 1 {
        format!("row {} ('{}') is", first.line, text(first))
    } else {
        format!(
            "rows {} to {} ('{}', …) are",
            first.line,
            above[above.len() - 1].line,
            text(first)
        )
    };
    Some(format!(
        "{which} above the header (row {header_line}) and taken for a title: not read as users"
    ))
}

/// Parses delimited text held in memory, as the CSV reader does with a file (no encoding or
/// delimiter detection): for conformance tests and fuzzing.
pub fn parse_text(bytes: &[u8], delimiter: u8) -> Vec<Result<Row, Error>> {
    let reader: Box<dyn Read + Send> = Box::new(std::io::Cursor::new(bytes.to_vec()));
    csv::rows_from_reader(
        Path::new("<memory>"),
        reader,
        delimiter,
        records::Numbering::default(),
    )
    .map(|r| r.map_err(|e| csv::name_column(e, &[])))
    .collect()
}

/// The delimiter the reader would pick for a file starting with `sample`.
pub fn detect_delimiter(sample: &str) -> u8 {
    csv::detect_delimiter(sample)
}

/// Parses delimited text held in memory the way `validate` reads a UTF-8 file: in blocks cut
/// after the first line end at or after each of `cuts`, each block read by the fast reader,
/// and everything from the first record it does not take read by the full parser. For tests
/// and fuzzing, which hold it to [`parse_text`].
pub fn parse_text_in_blocks(
    bytes: &[u8],
    delimiter: u8,
    cuts: &[usize],
) -> Vec<Result<Row, Error>> {
    let mut blocks = Vec::new();
    let mut from = 0;
    for &cut in cuts {
        let Some(nl) = bytes
            .get(cut.max(from)..)
            .and_then(|b| memchr::memchr(b'\n', b))
        else {
            break;
        };
        let to = cut.max(from) + nl + 1;
        if to < bytes.len() {
            blocks.push(from..to);
            from = to;
        }
    }
    blocks.push(from..bytes.len());
    let last = blocks.len() - 1;
    let mut numbering = records::Numbering::default();
    let mut out = Vec::new();
    for (i, block) in blocks.into_iter().enumerate() {
        let mut records = records::Records::new(&bytes[block.clone()], delimiter, i == last);
        let mut row = Row::default();
        loop {
            match records.next_into(&mut row) {
                records::Next::Record(info) => {
                    row.line = numbering.line(info.rows_before);
                    out.push(Ok(row.clone()));
                }
                records::Next::End => {
                    numbering.pass(records.rows_passed());
                    break;
                }
                records::Next::Stop(at) => {
                    numbering.pass(records.rows_passed());
                    let rest = bytes[block.start + at..].to_vec();
                    out.extend(
                        csv::rows_from_reader(
                            Path::new("<memory>"),
                            Box::new(std::io::Cursor::new(rest)),
                            delimiter,
                            numbering,
                        )
                        .map(|r| r.map_err(|e| csv::name_column(e, &[]))),
                    );
                    return out;
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_whole_lines_that_join_up_to_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.csv");
        let long = "x".repeat(5000);
        let text = format!("email,name\na@b.cc,{long}\nc@d.ee,short\n\"q\nr\",s\nlast,no line end");
        std::fs::write(&path, &text).unwrap();
        let sheet = open(&path, None).unwrap();
        let body = sheet.text.expect("UTF-8 text is read in blocks");
        assert_eq!(body.data_start, "email,name\n".len() as u64);
        let blocks: Vec<Block> = body
            .blocks(1000, Vec::new)
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let mut joined = Vec::new();
        for (i, block) in blocks.iter().enumerate() {
            assert_eq!(block.start, body.data_start + joined.len() as u64);
            let last = i == blocks.len() - 1;
            assert_eq!(block.at_eof, last);
            if !last {
                // A line longer than a block makes a longer block, never a cut inside it.
                assert_eq!(block.bytes.last(), Some(&b'\n'));
            }
            joined.extend_from_slice(&block.bytes);
        }
        assert_eq!(joined, text.as_bytes()[body.data_start as usize..]);
        assert!(blocks.iter().any(|b| b.bytes.len() > 5000));
    }
}
