//! The report as a workbook: the same rows, each broken cell filled red with its reason
//! attached as a note, so a person can fix the sheet in Excel and run it again.

use std::io;
use std::path::Path;

use rust_xlsxwriter::{Color, Format, Note, Workbook, XlsxError};

use super::{AtomicFile, Columns, ReportRow, Sink};

pub(super) struct XlsxSink {
    file: AtomicFile,
    workbook: Workbook,
    columns: Columns,
    next_row: u32,
    broken: Format,
    result: Result<(), XlsxError>,
}

/// The most characters an Excel cell holds.
const EXCEL_CELL_CHARS: usize = 32_767;

/// `text`, cut to the first [`EXCEL_CELL_CHARS`] characters.
fn cut(text: &str) -> &str {
    match text.char_indices().nth(EXCEL_CELL_CHARS) {
        Some((at, _)) => &text[..at],
        None => text,
    }
}

fn io_error(e: XlsxError) -> io::Error {
    io::Error::other(e.to_string())
}

impl XlsxSink {
    pub(super) fn create(path: &Path, columns: &Columns) -> Self {
        let mut workbook = Workbook::new();
        let bold = Format::new().set_bold();
        let sheet = workbook.add_worksheet();
        let mut result = sheet.set_name("Report").map(|_| ());
        for (c, h) in columns.header_row().iter().enumerate() {
            if result.is_ok() {
                result = sheet
                    .write_string_with_format(0, c as u16, h, &bold)
                    .map(|_| ());
            }
        }
        let _ = sheet.set_freeze_panes(1, 0);
        XlsxSink {
            file: AtomicFile::new(path),
            workbook,
            columns: columns.clone(),
            next_row: 1,
            broken: Format::new().set_background_color(Color::RGB(0xFFC7CE)),
            result,
        }
    }

    fn write_row(&mut self, row: &ReportRow) -> Result<(), XlsxError> {
        let r = self.next_row;
        self.next_row += 1;
        let cells = self.columns.cells(row);
        let sheet = self.workbook.worksheet_from_index(0)?;
        let mut marked: Vec<(u16, String)> = Vec::new();
        for e in row.field_errors {
            let col = e.col.and_then(|c| self.columns.output_col(c)).unwrap_or(2) as u16;
            match marked.iter_mut().find(|(c, _)| *c == col) {
                Some((_, text)) => {
                    text.push('\n');
                    text.push_str(&e.message);
                }
                None => marked.push((col, e.message.clone())),
            }
        }
        if row.field_errors.is_empty()
            && row.outcome.status.needs_attention()
            && !row.outcome.error.is_empty()
        {
            marked.push((2, row.outcome.error.clone()));
        }
        // A cell past Excel's limit is cut there, and a note says so.
        let cut_cells: Vec<(u16, String)> = cells
            .iter()
            .enumerate()
            .filter_map(|(c, text)| {
                let n = text.chars().count();
                (n > EXCEL_CELL_CHARS).then(|| {
                    (
                        c as u16,
                        format!(
                            "this cell holds {n} characters; Excel keeps at most \
                             {EXCEL_CELL_CHARS}, so only the first {EXCEL_CELL_CHARS} are \
                             shown (the input has them all)"
                        ),
                    )
                })
            })
            .collect();
        for (c, note) in cut_cells {
            match marked.iter_mut().find(|(m, _)| *m == c) {
                Some((_, text)) => {
                    text.push('\n');
                    text.push_str(&note);
                }
                None => marked.push((c, note)),
            }
        }
        for (c, text) in cells.iter().enumerate() {
            let c = c as u16;
            let text = cut(text);
            // Row numbers, HTTP statuses and attempts are numbers in Excel too.
            let numeric = matches!(c, 0 | 4 | 5) && !text.is_empty();
            match (marked.iter().any(|(m, _)| *m == c), numeric) {
                (true, _) => sheet
                    .write_string_with_format(r, c, text, &self.broken)
                    .map(|_| ())?,
                (false, true) => match text.parse::<f64>() {
                    Ok(n) => sheet.write_number(r, c, n).map(|_| ())?,
                    Err(_) => sheet.write_string(r, c, text).map(|_| ())?,
                },
                (false, false) if text.is_empty() => {}
                (false, false) => sheet.write_string(r, c, text).map(|_| ())?,
            }
        }
        for (c, text) in marked {
            let text = cut(&text);
            sheet.insert_note(r, c, &Note::new(text).set_author("bulkedit"))?;
        }
        Ok(())
    }
}

impl Sink for XlsxSink {
    fn write_lines(&mut self, _lines: &[u8]) -> io::Result<()> {
        Err(io::Error::other(
            "a workbook report is written row by row, not as CSV lines",
        ))
    }
    fn write(&mut self, row: &ReportRow) -> io::Result<()> {
        if self.result.is_ok() {
            self.result = self.write_row(row);
        }
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> io::Result<()> {
        std::mem::replace(&mut self.result, Ok(())).map_err(io_error)?;
        let sheet = self.workbook.worksheet_from_index(0).map_err(io_error)?;
        let width = self.columns.header_row().len() as u16;
        if self.next_row > 1 {
            sheet
                .autofilter(0, 0, self.next_row - 1, width.saturating_sub(1))
                .map_err(io_error)?;
        }
        self.workbook.save(&self.file.tmp).map_err(io_error)?;
        self.file.commit()
    }

    fn abandon(self: Box<Self>) {
        self.file.abandon();
    }
}
