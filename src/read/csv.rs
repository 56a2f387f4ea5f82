//! Delimited text: encoding and delimiter detection, then a streaming parse that numbers
//! rows the way Excel would show them.

use std::fs::File;
use std::io::{Chain, Cursor, Read};
use std::path::Path;

use encoding_rs::{Encoding, UTF_16BE, UTF_16LE, WINDOWS_1252};
use encoding_rs_io::DecodeReaderBytesBuilder;

use super::records::{skip_empty_lines, Next, Numbering, Records};
use super::{
    above_header_warning, split_header, Cells, Dialect, HeaderMarks, Row, Rows, Sheet, TextBody,
};
use crate::error::Error;

const CANDIDATES: [u8; 4] = [b',', b';', b'\t', b'|'];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TextEncoding {
    Utf8,
    Utf16(&'static Encoding),
    /// A single-byte legacy code page: Windows-1252 for Western Excel.
    Legacy(&'static Encoding),
}

fn detect_encoding(path: &Path, head: &[u8]) -> Result<(TextEncoding, usize), Error> {
    if head.starts_with(&[0xEF, 0xBB, 0xBF]) {
        return Ok((TextEncoding::Utf8, 3));
    }
    if head.starts_with(&[0xFF, 0xFE, 0, 0]) || head.starts_with(&[0, 0, 0xFE, 0xFF]) {
        return Err(Error::input(
            path,
            "is UTF-32 text, which bulkedit does not read (save it as CSV UTF-8)",
        ));
    }
    if head.starts_with(&[0xFF, 0xFE]) {
        return Ok((TextEncoding::Utf16(UTF_16LE), 0));
    }
    if head.starts_with(&[0xFE, 0xFF]) {
        return Ok((TextEncoding::Utf16(UTF_16BE), 0));
    }
    if head.contains(&0) {
        return Err(Error::input(
            path,
            "is not a text file or spreadsheet bulkedit can read (it contains NUL bytes; \
             save it as CSV UTF-8 or .xlsx)",
        ));
    }
    match std::str::from_utf8(head) {
        Ok(_) => Ok((TextEncoding::Utf8, 0)),
        // A multi-byte character cut off at the end of the sample is still UTF-8.
        Err(e) if e.error_len().is_none() => Ok((TextEncoding::Utf8, 0)),
        // Not UTF-8: the whole file is in a legacy encoding, even where a pair of its bytes
        // happens to be valid UTF-8 (`Ã©` in Windows-1252 is the UTF-8 for `é`).
        Err(_) => Ok((TextEncoding::Legacy(legacy_encoding(head)), 0)),
    }
}

/// The legacy encoding of text that is not UTF-8: Windows-1252, Western Excel's, unless
/// `chardetng` finds it cannot be (a byte 1252 leaves undefined) or finds another script in it
/// (Cyrillic, Greek, Hebrew, Arabic, Thai, or a double-byte East Asian encoding). A guess of
/// another Latin code page from a few accented letters is not trusted over Western Excel's.
fn legacy_encoding(sample: &[u8]) -> &'static Encoding {
    let mut detector = chardetng::EncodingDetector::new(chardetng::Iso2022JpDetection::Deny);
    detector.feed(sample, true);
    let guess = detector.guess(None, chardetng::Utf8Detection::Deny);
    let latin = [
        "windows-1250",
        "windows-1252",
        "windows-1254",
        "windows-1257",
        "windows-1258",
        "ISO-8859-2",
        "ISO-8859-4",
        "ISO-8859-13",
        "ISO-8859-15",
    ];
    let other_script = guess.output_encoding() == guess
        && guess != encoding_rs::UTF_8
        && !latin.contains(&guess.name());
    // The five bytes Windows-1252 leaves undefined.
    let not_1252 = sample
        .iter()
        .any(|b| matches!(b, 0x81 | 0x8D | 0x8F | 0x90 | 0x9D));
    if other_script || not_1252 {
        guess
    } else {
        WINDOWS_1252
    }
}

/// Whether the rest of `file` after the first `head` bytes is UTF-8 too: `None` if so,
/// otherwise a sample of the text before the first byte that is not, for
/// [`legacy_encoding`]. The file is left where it was.
fn rest_is_not_utf8(file: &mut File, head: &[u8]) -> std::io::Result<Option<Vec<u8>>> {
    use std::io::{Seek, SeekFrom};
    let at = file.stream_position()?;
    let valid = match std::str::from_utf8(head) {
        Ok(_) => head.len(),
        Err(e) => e.valid_up_to(),
    };
    let mut buf = head[valid..].to_vec();
    let mut chunk = vec![0u8; 1 << 20];
    let mut found = None;
    loop {
        let n = match file.read(&mut chunk) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        buf.extend_from_slice(&chunk[..n]);
        match std::str::from_utf8(&buf) {
            Ok(_) => buf.clear(),
            Err(e) if e.error_len().is_none() && n > 0 => {
                buf.drain(..e.valid_up_to());
            }
            Err(e) => {
                let from = e.valid_up_to().saturating_sub(32 * 1024);
                found = Some(buf[from..].to_vec());
                break;
            }
        }
        if n == 0 {
            break;
        }
    }
    file.seek(SeekFrom::Start(at))?;
    Ok(found)
}

fn decode_sample(encoding: TextEncoding, head: &[u8]) -> String {
    match encoding {
        TextEncoding::Utf8 => String::from_utf8_lossy(head).into_owned(),
        TextEncoding::Utf16(enc) => enc.decode(head).0.into_owned(),
        TextEncoding::Legacy(enc) => enc.decode(head).0.into_owned(),
    }
}

/// The delimiter is the candidate that occurs most often outside quotes in the first
/// non-empty line, preferring the one that recurs as often in the next lines.
pub fn detect_delimiter(sample: &str) -> u8 {
    let lines: Vec<&str> = sample
        .lines()
        .filter(|l| !l.trim().is_empty())
        .take(6)
        .collect();
    let Some(first) = lines.first() else {
        return b',';
    };
    let counts = |line: &str, d: u8| -> usize {
        let mut quoted = false;
        line.bytes()
            .filter(|&b| {
                if b == b'"' {
                    quoted = !quoted;
                }
                !quoted && b == d
            })
            .count()
    };
    let mut best = (b',', 0usize, 0usize);
    for d in CANDIDATES {
        let n = counts(first, d);
        if n == 0 {
            continue;
        }
        let consistent = lines[1..].iter().filter(|l| counts(l, d) == n).count();
        if (consistent, n) > (best.2, best.1) {
            best = (d, n, consistent);
        }
    }
    best.0
}

fn describe(encoding: TextEncoding, bom: bool, delimiter: u8) -> String {
    let enc = match encoding {
        TextEncoding::Utf8 if bom => "UTF-8 with BOM",
        TextEncoding::Utf8 => "UTF-8",
        TextEncoding::Utf16(e) if e == UTF_16LE => "UTF-16LE",
        TextEncoding::Utf16(_) => "UTF-16BE",
        TextEncoding::Legacy(e) if e == WINDOWS_1252 => "Windows-1252",
        TextEncoding::Legacy(e) => e.name(),
    };
    let delim = match delimiter {
        b'\t' => "tab".to_string(),
        d => format!("'{}'", d as char),
    };
    format!("delimited text ({enc}, {delim}-separated)")
}

pub(super) fn open(
    path: &Path,
    source_path: &Path,
    mut file: File,
    head: Vec<u8>,
    mut warnings: Vec<String>,
    marks: &HeaderMarks,
) -> Result<Sheet, Error> {
    let (mut encoding, bom_len) = detect_encoding(path, &head)?;
    if encoding == TextEncoding::Utf8 {
        // UTF-8 only if all of it is: one byte that is not makes the whole file legacy text.
        let cannot = |e: std::io::Error| Error::input(path, format!("cannot read: {e}"));
        if let Some(sample) = rest_is_not_utf8(&mut file, &head[bom_len..]).map_err(cannot)? {
            if bom_len > 0 {
                return Err(Error::input(
                    path,
                    "starts with a UTF-8 byte order mark but holds bytes that are not UTF-8 \
                     (save it again as CSV UTF-8)",
                ));
            }
            encoding = TextEncoding::Legacy(legacy_encoding(&sample));
        }
    }
    let sample = decode_sample(encoding, &head[bom_len..]);
    let delimiter = detect_delimiter(&sample);
    let dialect = Dialect {
        delimiter,
        crlf: ends_lines_with_cr(&sample),
        // UTF-16's byte order mark is read as part of its encoding, not counted in `bom_len`.
        bom: bom_len > 0 || matches!(encoding, TextEncoding::Utf16(_)),
        utf8: encoding == TextEncoding::Utf8,
    };
    let description = describe(encoding, bom_len > 0, delimiter);
    let source: Chain<Cursor<Vec<u8>>, File> = Cursor::new(head[bom_len..].to_vec()).chain(file);
    let reader: Box<dyn Read + Send> = match encoding {
        TextEncoding::Utf8 => Box::new(source),
        TextEncoding::Utf16(enc) => Box::new(
            DecodeReaderBytesBuilder::new()
                .encoding(Some(enc))
                .bom_override(true)
                .build(source),
        ),
        TextEncoding::Legacy(enc) => Box::new(
            DecodeReaderBytesBuilder::new()
                .encoding(Some(enc))
                .build(source),
        ),
    };
    let rows = rows_from_reader(path, reader, delimiter, Numbering::default());
    let split = split_header(path, rows, "the file", marks).map_err(|e| name_column(e, &[]))?;
    let (header, rows) = (split.header, split.rows);
    warnings.extend(above_header_warning(&split.above, header.line));
    let headers = header.cells.to_vec();
    let rows = with_headers(rows, headers.clone());
    let report = crate::rules::is_report_header(&headers);
    let rows = if report { undefused(rows) } else { rows };
    let text = match encoding {
        // A report's cells may be defused, which the block reader does not undo.
        _ if report => None,
        TextEncoding::Utf8 => {
            body_after_header(path, source_path, &head, bom_len, delimiter, &header)
        }
        _ => None,
    };
    Ok(Sheet {
        text,
        path: path.to_path_buf(),
        description,
        headers,
        header_line: header.line,
        rows,
        warnings,
        // A report's cells were defused where they needed it, and so are again.
        cells_are_text: report,
        dialect: Some(dialect),
        header_found: split.found,
        other_sheets: Vec::new(),
    })
}

/// Whether the first line end outside quotes is CR LF (or a bare CR) rather than LF: a line
/// break inside a quoted cell is LF even in a file Excel saved with CR LF line ends. No line
/// end at all counts as LF.
fn ends_lines_with_cr(sample: &str) -> bool {
    let mut quoted = false;
    for b in sample.bytes() {
        match b {
            b'"' => quoted = !quoted,
            b'\r' if !quoted => return true,
            b'\n' if !quoted => return false,
            _ => {}
        }
    }
    false
}

/// Where the rows after the header start, found again with the fast reader, which must agree
/// with the full parser about the header. `None` when it cannot tell within the first bytes.
fn body_after_header(
    path: &Path,
    source: &Path,
    head: &[u8],
    bom_len: usize,
    delimiter: u8,
    header: &Row,
) -> Option<TextBody> {
    let file_len = std::fs::metadata(source).ok()?.len();
    let at_eof = head.len() as u64 == file_len;
    let mut records = Records::new(&head[bom_len..], delimiter, at_eof);
    let mut numbering = Numbering::default();
    let mut row = Row::default();
    loop {
        match records.next_into(&mut row) {
            Next::Record(info) => {
                let line = numbering.line(info.rows_before);
                // Blank rows, and a title above the header, come before it.
                if row.is_blank() || line < header.line {
                    continue;
                }
                if row.cells != header.cells || line != header.line {
                    return None;
                }
                numbering.pass(records.rows_passed());
                return Some(TextBody {
                    path: source.to_path_buf(),
                    name: path.to_path_buf(),
                    delimiter,
                    data_start: (bom_len + records.position()) as u64,
                    numbering,
                    headers: header.cells.to_vec(),
                });
            }
            Next::End | Next::Stop(_) => return None,
        }
    }
}

/// Parses delimited text into rows numbered as Excel numbers them (see [`Numbering`]), with
/// `csv_core` doing the parsing. Blank lines are skipped here rather than inside `csv_core`, so
/// that each record's first line is known and the blank lines before it are counted.
pub fn rows_from_reader(
    path: &Path,
    mut reader: Box<dyn Read + Send>,
    delimiter: u8,
    start: Numbering,
) -> Rows {
    let mut core = csv_core::ReaderBuilder::new().delimiter(delimiter).build();
    let path = path.to_path_buf();
    let mut input = Input {
        buf: vec![0; 256 * 1024],
        lo: 0,
        hi: 0,
        eof: false,
    };
    let mut out = vec![0u8; 4096];
    let mut ends = vec![0usize; 64];
    let mut numbering = start;
    let mut quotes = Quotes::default();
    // Line ends outside quoted cells since the reader's start.
    let mut rows: u64 = 0;
    let mut done = false;
    Box::new(std::iter::from_fn(move || {
        if done {
            return None;
        }
        let fail = |e: std::io::Error| Some(Err(Error::input(&path, format!("cannot read: {e}"))));
        loop {
            input.lo += skip_empty_lines(&input.buf[input.lo..input.hi], &mut rows);
            if input.lo < input.hi || input.eof {
                break;
            }
            if let Err(e) = input.refill(&mut reader) {
                done = true;
                return fail(e);
            }
        }
        if input.lo == input.hi {
            done = true;
            return None;
        }
        let rows_before = rows;
        let (mut nout, mut nend) = (0, 0);
        loop {
            let (result, nin, o, e) = core.read_record(
                &input.buf[input.lo..input.hi],
                &mut out[nout..],
                &mut ends[nend..],
            );
            quotes.scan(&input.buf[input.lo..input.lo + nin], delimiter);
            rows += memchr::memchr_iter(b'\n', &input.buf[input.lo..input.lo + nin]).count() as u64;
            rows -= memchr::memchr_iter(b'\n', &out[nout..nout + o]).count() as u64;
            input.lo += nin;
            nout += o;
            nend += e;
            match result {
                csv_core::ReadRecordResult::InputEmpty => {
                    if let Err(e) = input.refill(&mut reader) {
                        done = true;
                        return fail(e);
                    }
                }
                csv_core::ReadRecordResult::OutputFull => out.resize(out.len() * 2, 0),
                csv_core::ReadRecordResult::OutputEndsFull => ends.resize(ends.len() * 2, 0),
                csv_core::ReadRecordResult::Record => break,
                csv_core::ReadRecordResult::End => {
                    done = true;
                    if nend == 0 {
                        return None;
                    }
                    break;
                }
            }
        }
        let line = numbering.line(rows_before);
        if quotes.state == Quote::Quoted {
            // Only the end of the input ends a record inside a quoted cell.
            done = true;
            return Some(Err(unclosed_quote(&path, line, quotes.opened_cell)));
        }
        Some(Ok(make_row(line, &out[..nout], &ends[..nend])))
    }))
}

/// Where a record stands as `csv_core` reads it, followed byte by byte: enough to tell that
/// the input ended inside a quoted cell, and in which cell that quote opened.
#[derive(Default)]
struct Quotes {
    state: Quote,
    cell: usize,
    opened_cell: usize,
}

#[derive(Default, Clone, Copy, PartialEq, Eq)]
enum Quote {
    #[default]
    CellStart,
    Unquoted,
    Quoted,
    AfterQuoted,
}

impl Quotes {
    fn scan(&mut self, bytes: &[u8], delimiter: u8) {
        let mut i = 0;
        while i < bytes.len() {
            if self.state == Quote::Quoted {
                match memchr::memchr(b'"', &bytes[i..]) {
                    Some(q) => {
                        self.state = Quote::AfterQuoted;
                        i += q + 1;
                        continue;
                    }
                    None => return,
                }
            }
            let b = bytes[i];
            i += 1;
            let ends_record = b == b'\n' || b == b'\r';
            self.state = match self.state {
                _ if ends_record => {
                    self.cell = 0;
                    Quote::CellStart
                }
                Quote::CellStart | Quote::Unquoted | Quote::AfterQuoted if b == delimiter => {
                    self.cell += 1;
                    Quote::CellStart
                }
                Quote::CellStart if b == b'"' => {
                    self.opened_cell = self.cell;
                    Quote::Quoted
                }
                Quote::AfterQuoted if b == b'"' => Quote::Quoted,
                _ => Quote::Unquoted,
            };
        }
    }
}

/// Marks a column given as a letter by the reader, for [`name_column`] to name.
const LETTER_MARK: &str = "\u{0}";

/// The error for a quote opened in cell `cell` of row `line` and never closed. The column is
/// its letter until [`name_column`] puts its header in.
fn unclosed_quote(path: &Path, line: u64, cell: usize) -> Error {
    Error::Input {
        path: path.to_path_buf(),
        row: Some(line),
        column: Some(format!("{LETTER_MARK}{}", column_letter(cell))),
        message: "a quoted cell opens here and its quote is never closed, so the rest of the \
                  file would be read as this one cell; nothing was read as a value (close the \
                  quote, or write a quote meant as text as two: \"\")"
            .into(),
    }
}

/// The column letter Excel shows for the cell at `index` (0 is A, 26 is AA).
fn column_letter(mut index: usize) -> String {
    let mut letters = Vec::new();
    loop {
        letters.push(b'A' + (index % 26) as u8);
        if index < 26 {
            break;
        }
        index = index / 26 - 1;
    }
    letters.reverse();
    String::from_utf8(letters).expect("ASCII")
}

/// Names the column of a reader's error by its header, or by its letter when it has none.
pub(super) fn name_column(e: Error, headers: &[String]) -> Error {
    match e {
        Error::Input {
            path,
            row,
            column: Some(c),
            message,
        } if c.starts_with(LETTER_MARK) => {
            let letter = &c[LETTER_MARK.len()..];
            let index = letter
                .bytes()
                .fold(0usize, |n, b| n * 26 + usize::from(b - b'A') + 1)
                - 1;
            let column = match headers.get(index).filter(|h| !h.is_empty()) {
                Some(h) => h.clone(),
                None => letter.to_string(),
            };
            Error::Input {
                path,
                row,
                column: Some(column),
                message,
            }
        }
        e => e,
    }
}

/// A report's rows with each cell as the user gave it: the `'` a report puts before a cell
/// that Excel would read as a formula (see `crate::rules::needs_defusing`) is taken off again.
fn undefused(rows: Rows) -> Rows {
    Box::new(rows.map(|r| {
        r.map(|mut row| {
            let defused = |c: &str| c.starts_with('\'') && crate::rules::needs_defusing(&c[1..]);
            if row.cells.iter().any(defused) {
                let cells: Vec<String> = row
                    .cells
                    .iter()
                    .map(|c| {
                        if defused(c) {
                            c[1..].to_string()
                        } else {
                            c.to_string()
                        }
                    })
                    .collect();
                row.cells = Cells::from(cells);
            }
            row
        })
    }))
}

/// Rows whose errors name their column by header.
pub(super) fn with_headers(rows: Rows, headers: Vec<String>) -> Rows {
    Box::new(rows.map(move |r| r.map_err(|e| name_column(e, &headers))))
}

/// A reader's bytes not yet parsed: `buf[lo..hi]`.
struct Input {
    buf: Vec<u8>,
    lo: usize,
    hi: usize,
    eof: bool,
}

impl Input {
    /// Keeps the unparsed bytes and reads more after them; at the end of the input, `eof`.
    fn refill(&mut self, reader: &mut dyn Read) -> std::io::Result<()> {
        self.buf.copy_within(self.lo..self.hi, 0);
        self.hi -= self.lo;
        self.lo = 0;
        loop {
            match reader.read(&mut self.buf[self.hi..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(());
                }
                Ok(n) => {
                    self.hi += n;
                    return Ok(());
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

/// A row from a record's unquoted cell bytes and where each cell ends.
fn make_row(line: u64, bytes: &[u8], ends: &[usize]) -> Row {
    let mut row = Row {
        line,
        cells: Cells::with_capacity(ends.len(), bytes.len()),
        bad_cells: Vec::new(),
    };
    let range = |i: usize| (if i == 0 { 0 } else { ends[i - 1] })..ends[i];
    // Usually the whole record is valid UTF-8 at once and each cell a slice of it; cell by
    // cell only when it is not (or a cell would split a character).
    if let Ok(text) = std::str::from_utf8(bytes) {
        let whole_characters = (0..ends.len()).all(|i| {
            let r = range(i);
            text.is_char_boundary(r.start) && text.is_char_boundary(r.end)
        });
        if whole_characters {
            for i in 0..ends.len() {
                row.cells.push(crate::rules::trim(&text[range(i)]));
            }
            return row;
        }
    }
    for i in 0..ends.len() {
        let field = &bytes[range(i)];
        match std::str::from_utf8(field) {
            Ok(s) => row.cells.push(s.trim()),
            Err(_) => {
                row.cells.push(String::from_utf8_lossy(field).trim());
                row.bad_cells.push((
                    i,
                    "is not valid UTF-8 text (save the file as CSV UTF-8)".into(),
                ));
            }
        }
    }
    row
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_letters_are_excels() {
        for (i, l) in [
            (0, "A"),
            (25, "Z"),
            (26, "AA"),
            (27, "AB"),
            (701, "ZZ"),
            (702, "AAA"),
        ] {
            assert_eq!(column_letter(i), l);
            let e = name_column(unclosed_quote(Path::new("f"), 2, i), &[]);
            assert!(matches!(e, Error::Input { column: Some(c), .. } if c == l));
        }
    }

    #[test]
    fn line_ends_are_the_first_outside_quotes() {
        assert!(ends_lines_with_cr("a;b\r\n1;2\r\n"));
        assert!(!ends_lines_with_cr("a;b\n1;2\r\n"));
        assert!(ends_lines_with_cr("\"a\nb\";c\r\n"));
        assert!(ends_lines_with_cr("a\rb\r"));
        assert!(!ends_lines_with_cr("a,b"));
    }

    #[test]
    fn delimiter_is_the_most_frequent_consistent_candidate() {
        assert_eq!(detect_delimiter("a;b;c\n1;2;3\n"), b';');
        assert_eq!(detect_delimiter("a\tb\n1\t2\n"), b'\t');
        assert_eq!(detect_delimiter("a|b|c\n"), b'|');
        assert_eq!(detect_delimiter("\"a,b\";c\n1;2\n"), b';');
        assert_eq!(detect_delimiter("email\nx@y.z\n"), b',');
        assert_eq!(detect_delimiter("a,b;c\n1,2;3\n1,2;3\n"), b',');
    }
}
