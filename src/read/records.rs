//! A fast reader for the delimited text almost every file holds: UTF-8, every quoted cell
//! closed by a quote that is followed by a delimiter or a line end. On such text it reads the
//! same cells and numbers the same rows as the full parser (`csv.rs`, on `csv_core`); on
//! anything else it stops and says where, and the full parser takes over from that record.
//! It works on any run of bytes that starts at a record, so the blocks of a file can be read
//! on every core at once, each checked afterwards against where the one before it ended.
//! `tests/properties.rs` and the `read_csv` fuzz target compare the two readers.

use super::{Row, Span};

/// Where one record lies in the bytes, and whether they can be copied to a report as they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordInfo {
    /// The record's bytes, without its line end.
    pub start: usize,
    pub end: usize,
    /// Line breaks that end lines (not those inside quoted cells) before the record, counted
    /// from the start of the bytes: the record's distance in rows from the first one.
    pub rows_before: u64,
    /// Every cell's bytes are its value in the minimal spelling for this delimiter: no padding
    /// that trimming takes away, quoted exactly when it holds the delimiter, a quote or a line
    /// break (as `report::push_csv_field` writes a field in a report separated by the same
    /// delimiter, so that such a report can copy the record).
    pub canonical: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    Record(RecordInfo),
    /// The bytes are used up at the end of a record.
    End,
    /// The record that starts here is not one this reader takes (a stray quote, bytes that
    /// are not UTF-8) or is cut off by the end of the bytes: the full parser reads from here.
    Stop(usize),
}

/// Reads records from `bytes`, which must start where a record starts.
pub struct Records<'a> {
    bytes: &'a [u8],
    /// Whether the bytes run to the end of the file; if not, a record needs its line end.
    at_eof: bool,
    delimiter: u8,
    pos: usize,
    /// Bytes before this are valid UTF-8.
    utf8_up_to: usize,
    rows: u64,
    /// The current record's cells, and the text of those unquoted apart from it.
    spans: Vec<Span>,
    extra: String,
    /// What each byte means to the scan: [`ENDS_CELL`], [`QUOTE`], [`NEEDS_QUOTES`].
    class: [u8; 256],
}

/// A cell the reader took: where its text lies, whether it is spelled canonically (see
/// [`RecordInfo::canonical`]), and the byte after it.
struct Cell {
    span: Span,
    canonical: bool,
    end: usize,
}

/// The span of `value`, which starts at `at`, once trimmed.
#[inline(always)]
fn trimmed(value: &str, at: usize, in_extra: bool) -> Span {
    let t = crate::rules::trim(value);
    let start = at + (t.as_ptr() as usize - value.as_ptr() as usize);
    Span {
        start,
        end: start + t.len(),
        in_extra,
    }
}

const ENDS_CELL: u8 = 1;
const QUOTE: u8 = 2;
const NEEDS_QUOTES: u8 = 4;

impl<'a> Records<'a> {
    pub fn new(bytes: &'a [u8], delimiter: u8, at_eof: bool) -> Self {
        let utf8_up_to = match std::str::from_utf8(bytes) {
            Ok(_) => bytes.len(),
            Err(e) => e.valid_up_to(),
        };
        let mut class = [0u8; 256];
        class[usize::from(delimiter)] |= ENDS_CELL;
        class[usize::from(b'\n')] |= ENDS_CELL | NEEDS_QUOTES;
        class[usize::from(b'\r')] |= ENDS_CELL | NEEDS_QUOTES;
        class[usize::from(b'"')] |= QUOTE | NEEDS_QUOTES;
        // A cell holding the delimiter must be quoted; one holding a comma in a file separated
        // by something else need not be (nor is it, by a report in the same delimiter).
        class[usize::from(delimiter)] |= NEEDS_QUOTES;
        Records {
            bytes,
            at_eof,
            delimiter,
            pos: 0,
            utf8_up_to,
            rows: 0,
            spans: Vec::new(),
            extra: String::new(),
            class,
        }
    }

    /// Where the next record starts (or would).
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Line ends passed so far, not counting those inside quoted cells.
    pub fn rows_passed(&self) -> u64 {
        self.rows
    }

    /// Reads the next record's cells into `row`, trimmed as the full parser trims them.
    pub fn next_into(&mut self, row: &mut Row) -> Next {
        let b = self.bytes;
        self.pos += skip_empty_lines(&b[self.pos..], &mut self.rows);
        let start = self.pos;
        if start == b.len() {
            return Next::End;
        }
        let rows_before = self.rows;
        self.spans.clear();
        self.extra.clear();
        let mut canonical = true;
        let mut p = start;
        let end = loop {
            // One cell, starting at `p`; afterwards `p` is at the byte that ended it.
            let cell = if b[p] == b'"' {
                self.quoted_cell(start, p)
            } else {
                self.unquoted_cell(start, p)
            };
            let Some(cell) = cell else {
                return Next::Stop(start);
            };
            canonical &= cell.canonical;
            self.spans.push(cell.span);
            p = cell.end;
            match b.get(p) {
                Some(&c) if c == self.delimiter => {
                    p += 1;
                    if p == b.len() {
                        if !self.at_eof {
                            return Next::Stop(start);
                        }
                        // `a,` at the end of the file: the last cell is empty.
                        self.spans.push(Span {
                            start: p - start,
                            end: p - start,
                            in_extra: false,
                        });
                        break p;
                    }
                }
                _ => break p,
            }
        };
        let Some(record) = self.text(start, end) else {
            return Next::Stop(start);
        };
        row.cells.set_record(record, &self.extra, &self.spans);
        row.bad_cells.clear();
        self.pos = end;
        self.pass_line_end();
        Next::Record(RecordInfo {
            start,
            end,
            rows_before,
            canonical,
        })
    }

    /// The bytes `from..to` as text, when they lie in the valid UTF-8 prefix. Cells are cut at
    /// ASCII bytes, so a cell that ends before `utf8_up_to` is whole text.
    #[inline(always)]
    fn text(&self, from: usize, to: usize) -> Option<&'a str> {
        if to <= self.utf8_up_to {
            // SAFETY: `from..to` lies in the valid UTF-8 prefix and both ends sit at, or
            // just after, an ASCII byte (or the ends of the bytes): character boundaries.
            Some(unsafe { std::str::from_utf8_unchecked(&self.bytes[from..to]) })
        } else {
            None
        }
    }

    /// The quoted cell that opens at `p`, in the record that starts at `start`. `None` when
    /// this reader does not take it: its closing quote is followed by something other than a
    /// delimiter or a line end, or the bytes end first, or it is not UTF-8.
    #[inline(always)]
    fn quoted_cell(&mut self, start: usize, p: usize) -> Option<Cell> {
        let b = self.bytes;
        let mut from = p + 1;
        let mut needs_quotes = false;
        // Whether a doubled quote was met: the cell is then unquoted into `extra`.
        let mut unquoted: Option<usize> = None;
        loop {
            // Cells are short, so plain loops beat memchr's set-up here.
            let mut q = from;
            let mut seen = 0;
            while q < b.len() {
                let k = self.class[usize::from(b[q])];
                if k & QUOTE != 0 {
                    break;
                }
                seen |= k;
                q += 1;
            }
            needs_quotes |= seen & NEEDS_QUOTES != 0;
            if q == b.len() {
                return None;
            }
            let piece = self.text(from, q + 1)?;
            let closed = match b.get(q + 1) {
                Some(b'"') => false,
                Some(&c) if c == self.delimiter || c == b'\n' || c == b'\r' => true,
                None if self.at_eof => true,
                // `"a"b`, or a record cut off by the end of the bytes.
                _ => return None,
            };
            if !closed {
                // `""` inside quotes is one quote: keep the first, skip the second.
                unquoted.get_or_insert(self.extra.len());
                self.extra.push_str(piece);
                needs_quotes = true;
                from = q + 2;
                continue;
            }
            let piece = &piece[..piece.len() - 1];
            let (span, len) = match unquoted {
                None => (trimmed(piece, from - start, false), piece.len()),
                Some(begin) => {
                    self.extra.push_str(piece);
                    let value = &self.extra[begin..];
                    (trimmed(value, begin, true), value.len())
                }
            };
            return Some(Cell {
                canonical: needs_quotes && span.end - span.start == len,
                span,
                end: q + 1,
            });
        }
    }

    /// The unquoted cell that starts at `p`, in the record that starts at `start`. `None` when
    /// this reader does not take it: the bytes end first (and are not the end of the file), or
    /// it is not UTF-8.
    #[inline(always)]
    fn unquoted_cell(&self, start: usize, p: usize) -> Option<Cell> {
        let b = self.bytes;
        let mut q = p;
        let mut quote = false;
        loop {
            q = self.next_special(q);
            if q < b.len() && b[q] == b'"' {
                // A quote inside an unquoted cell is text (as the `csv` crate reads it).
                quote = true;
                q += 1;
            } else {
                break;
            }
        }
        if q == b.len() && !self.at_eof {
            return None;
        }
        let value = self.text(p, q)?;
        let span = trimmed(value, p - start, false);
        Some(Cell {
            canonical: !quote && span.end - span.start == value.len(),
            span,
            end: q,
        })
    }

    /// Moves past the line end at `pos`: `\r\n`, `\n` or a bare `\r`, as the `csv` crate takes
    /// them.
    fn pass_line_end(&mut self) {
        match self.bytes.get(self.pos) {
            Some(b'\r') => {
                self.pos += 1;
                if self.bytes.get(self.pos) == Some(&b'\n') {
                    self.pos += 1;
                    self.rows += 1;
                }
            }
            Some(b'\n') => {
                self.pos += 1;
                self.rows += 1;
            }
            _ => {}
        }
    }

    /// The first byte at or after `from` that ends an unquoted cell or is a quote (or the end of
    /// the bytes): eight bytes at a time, then byte by byte.
    fn next_special(&self, mut from: usize) -> usize {
        const ONES: u64 = 0x0101_0101_0101_0101;
        const HIGHS: u64 = 0x8080_8080_8080_8080;
        // High bit set in each byte of `x` equal to `byte` (and perhaps in bytes after the first
        // such one, which the caller does not look at).
        let equal = |x: u64, byte: u8| {
            let v = x ^ (ONES * u64::from(byte));
            v.wrapping_sub(ONES) & !v & HIGHS
        };
        let b = self.bytes;
        while from + 8 <= b.len() {
            let x = u64::from_le_bytes(b[from..from + 8].try_into().expect("eight bytes"));
            let hits =
                equal(x, self.delimiter) | equal(x, b'\n') | equal(x, b'\r') | equal(x, b'"');
            if hits != 0 {
                return from + (hits.trailing_zeros() / 8) as usize;
            }
            from += 8;
        }
        while from < b.len() && self.class[usize::from(b[from])] & (ENDS_CELL | QUOTE) == 0 {
            from += 1;
        }
        from
    }
}

/// Skips the line ends at the start of `bytes`: empty lines, which are not records (the
/// `csv` crate skips them too) but still count as rows, added to `rows`. Returns how many
/// bytes were skipped. The full parser skips them with this as well.
pub(super) fn skip_empty_lines(bytes: &[u8], rows: &mut u64) -> usize {
    let n = bytes
        .iter()
        .position(|&c| c != b'\n' && c != b'\r')
        .unwrap_or(bytes.len());
    *rows += bytes[..n].iter().filter(|&&c| c == b'\n').count() as u64;
    n
}

/// Row numbers as Excel shows them, carried from one run of bytes to the next: a record's
/// number is one more than the line ends before it outside quoted cells, and never less than
/// the previous row's number plus one (a file that ends lines with a bare CR counts none).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Numbering {
    /// Line ends outside quoted cells before the current run of bytes.
    pub rows_passed: u64,
    /// The number of the last record numbered.
    pub last_line: u64,
}

impl Numbering {
    /// The number of the record with `rows_before` line ends before it in the current run.
    pub fn line(&mut self, rows_before: u64) -> u64 {
        let line = (1 + self.rows_passed + rows_before).max(self.last_line + 1);
        self.last_line = line;
        line
    }

    /// Moves on to the next run of bytes, which starts `rows` line ends further on.
    pub fn pass(&mut self, rows: u64) {
        self.rows_passed += rows;
    }
}
