//! The report as a workbook a person reads, prints and pastes into a change ticket: a first
//! sheet that sums the run up, then the rows, each broken cell filled red with its reason
//! attached as a note, statuses coloured, columns as wide as what they hold, and pages that
//! print across one sheet of paper. A failures file is the rows alone, on a sheet named for
//! them: it is fixed and run again, and a run reads a workbook's first sheet.
//!
//! The rows go to a temporary file as they are written (the writer's constant-memory mode),
//! so memory stays flat however many rows a report has; column widths are measured
//! as each cell goes by and set at the end, which that mode allows (they are written before
//! the rows only when the file is put together).

use std::io;
use std::path::Path;
use std::time::UNIX_EPOCH;

use rust_xlsxwriter::{
    Color, ExcelDateTime, Format, FormatAlign, FormatBorder, Note, Workbook, Worksheet, XlsxError,
};
use unicode_width::UnicodeWidthStr;

use super::summary::RunFacts;
use super::{AtomicFile, Columns, ReportRow, Sink};
use crate::engine::Status;

/// The sheet a report's rows are on.
const REPORT_SHEET: &str = "Report";
/// The sheet a failures file's rows are on.
const FAILURES_SHEET: &str = "Failures";
/// A report's first sheet.
const SUMMARY_SHEET: &str = "Summary";
/// The heading of its table of rows per status.
const STATUS_TABLE: &str = "Rows per status";

/// The most characters an Excel cell holds.
const EXCEL_CELL_CHARS: usize = 32_767;

/// The report's own columns, by position: see [`super::REPORT_COLUMNS`].
const ROW: u16 = 0;
const STATUS: u16 = 1;
const ERROR: u16 = 2;
const CHANGES: u16 = 3;
const HTTP_STATUS: u16 = 4;
const ATTEMPTS: u16 = 5;

/// Widest a column gets, in characters: a longer cell wraps onto more lines. `error` and
/// `changes` wrap alike whatever they hold; other columns are as wide as their widest cell up
/// to [`INPUT_WIDTH`] (an id or an e-mail address on one line). Narrow enough that a sheet
/// printed one page wide keeps a readable size.
const WRAP_WIDTH: usize = 45;
const INPUT_WIDTH: usize = 40;
/// The height of one line of text in the default font (Calibri 11), in points.
const LINE_HEIGHT: f64 = 15.0;
/// The tallest row Excel allows, in points.
const MAX_ROW_HEIGHT: f64 = 409.0;
/// Notes a sheet carries at most. Each costs the writer kilobytes until the file is saved, and
/// nobody reads a million of them: past this many, a broken cell is still red and its row's
/// `error` column still says why, without a note.
const MAX_NOTES: usize = 10_000;

/// Room around a cell's text, and for the filter button in the header.
const PADDING: f64 = 2.0;
const FILTER_BUTTON: usize = 2;

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

/// Opens a report a run left, CSV or workbook, at its rows: a workbook report's rows are on
/// its [`REPORT_SHEET`], after the summary (a workbook without one, read at its first sheet,
/// is one an earlier bulkedit wrote, or not a report at all).
pub(super) fn open_rows(path: &Path) -> Result<crate::read::Sheet, crate::error::Error> {
    if super::is_xlsx(path) {
        if let Ok(sheet) = crate::read::open(path, Some(REPORT_SHEET)) {
            return Ok(sheet);
        }
    }
    crate::read::open(path, None)
}

/// Whether a workbook report records writes made to a server, as its summary's counts per
/// status say: read from the small first sheet rather than the rows. `None` when it has no
/// summary to tell (a workbook an earlier bulkedit wrote, or not a report).
pub(super) fn summary_records_writes(path: &Path) -> Option<bool> {
    if !super::is_xlsx(path) {
        return None;
    }
    let mut book: calamine::Xlsx<_> = calamine::open_workbook(path).ok()?;
    let range = calamine::Reader::worksheet_range(&mut book, SUMMARY_SHEET).ok()?;
    let mut rows = range
        .rows()
        .skip_while(|r| !matches!(r.first(), Some(calamine::Data::String(s)) if s == STATUS_TABLE));
    rows.next()?;
    let mut writes = false;
    for row in rows.skip(1) {
        let Some(calamine::Data::String(name)) = row.first() else {
            break;
        };
        let Some(status) = Status::parse(name) else {
            break;
        };
        let n = match row.get(1) {
            Some(calamine::Data::Float(n)) => *n,
            _ => 0.0,
        };
        writes |= status.is_write() && n > 0.0;
    }
    Some(writes)
}

/// The sheet to read of an input given without `--sheet`, when it is a workbook report
/// bulkedit wrote (a plan, or a report fed back in): its rows are on the sheet after the
/// summary. `None` for any other file, which is read at its first sheet.
pub fn report_rows_sheet(path: &Path) -> Option<&'static str> {
    // Only a file named as a workbook: a pipe must not be read here, ahead of its reader.
    if !super::is_xlsx(path) || !std::fs::metadata(path).is_ok_and(|m| m.is_file()) {
        return None;
    }
    let mut zip = zip::ZipArchive::new(std::fs::File::open(path).ok()?).ok()?;
    let part = zip.by_name("xl/workbook.xml").ok()?;
    let mut xml = quick_xml::Reader::from_reader(io::BufReader::new(part));
    let mut buf = Vec::new();
    let mut names = Vec::new();
    loop {
        match xml.read_event_into(&mut buf).ok()? {
            quick_xml::events::Event::Start(e) | quick_xml::events::Event::Empty(e)
                if e.local_name().into_inner() == "sheet" =>
            {
                let name = e
                    .attributes()
                    .flatten()
                    .find(|a| a.key.local_name().into_inner() == "name")?;
                names.push(
                    name.normalized_value(quick_xml::XmlVersion::Implicit1_0)
                        .ok()?
                        .into_owned(),
                );
            }
            quick_xml::events::Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    (names.first().map(String::as_str) == Some(SUMMARY_SHEET)
        && names.iter().any(|n| n == REPORT_SHEET))
    .then_some(REPORT_SHEET)
}

/// The fill and text colour a status shows in: green for what was done, grey for nothing to
/// do, blue for what a dry run would do, red for what went wrong, amber for what was not
/// done. Light fills under dark text, so that it reads printed in black and white too.
fn status_colours(status: Status) -> (u32, u32) {
    const GREEN: (u32, u32) = (0xC6EFCE, 0x006100);
    const GREY: (u32, u32) = (0xE7E6E6, 0x3A3838);
    const BLUE: (u32, u32) = (0xDDEBF7, 0x1F4E78);
    const RED: (u32, u32) = (0xFFC7CE, 0x9C0006);
    const AMBER: (u32, u32) = (0xFFEB9C, 0x7F4F00);
    match status {
        Status::Valid | Status::Updated | Status::Created | Status::Deactivated => GREEN,
        Status::Unchanged => GREY,
        Status::WouldUpdate | Status::WouldCreate | Status::WouldDeactivate => BLUE,
        Status::Invalid | Status::Failed | Status::Drifted => RED,
        Status::NotFound | Status::Skipped => AMBER,
    }
}

/// The formats cells are written in. Every cell sits at the top of its row, so that a row
/// made tall by a wrapped error still reads across.
struct Looks {
    header: Format,
    text: Format,
    wrapped: Format,
    number: Format,
    broken: Format,
    broken_wrapped: Format,
    /// By [`Status`] as an index.
    status: Vec<Format>,
}

impl Looks {
    fn new() -> Self {
        let top = Format::new().set_align(FormatAlign::Top);
        let (fill, ink) = status_colours(Status::Invalid);
        let broken = top
            .clone()
            .set_background_color(Color::RGB(fill))
            .set_font_color(Color::RGB(ink));
        Looks {
            header: Format::new()
                .set_bold()
                .set_align(FormatAlign::Top)
                .set_background_color(Color::RGB(0xD9D9D9))
                .set_border_bottom(FormatBorder::Thin),
            wrapped: top.clone().set_text_wrap(),
            number: top.clone().set_align(FormatAlign::Center),
            broken_wrapped: broken.clone().set_text_wrap(),
            broken,
            status: Status::ALL
                .iter()
                .map(|&s| {
                    let (fill, ink) = status_colours(s);
                    top.clone()
                        .set_background_color(Color::RGB(fill))
                        .set_font_color(Color::RGB(ink))
                })
                .collect(),
            text: top,
        }
    }
}

/// Whether a column of the report wraps every cell (others wrap only a cell too long for
/// them).
fn wraps(col: u16) -> bool {
    matches!(col, ERROR | CHANGES)
}

/// Whether a column of the report holds numbers.
fn numeric(col: u16) -> bool {
    matches!(col, ROW | HTTP_STATUS | ATTEMPTS)
}

/// How wide a column may grow.
fn widest(col: u16) -> usize {
    if wraps(col) {
        WRAP_WIDTH
    } else {
        INPUT_WIDTH
    }
}

/// How many characters wide `text` shows: its longest line, East Asian characters counting
/// double.
fn shown_width(text: &str) -> usize {
    if text.is_ascii() && !text.contains('\n') {
        return text.len();
    }
    text.lines().map(UnicodeWidthStr::width).max().unwrap_or(0)
}

/// How many lines `text` takes wrapped in a column `width` characters wide, to set the row's
/// height by ([`row_height`]): LibreOffice does not size a row to its wrapped text when it
/// opens a file, and the second line would hide under the next row.
fn lines_in(text: &str, width: usize) -> usize {
    // An average letter is narrower than the digit a column's width is counted in, and a
    // line breaks between words: a line holds about an eighth more characters than the
    // column is wide (measured in LibreOffice with Calibri's metrics).
    let room = (width + width / 8).max(1);
    text.split('\n')
        .map(|line| UnicodeWidthStr::width(line).div_ceil(room).max(1))
        .sum()
}

/// The height of a row that shows `lines` lines, in points.
fn row_height(lines: usize) -> f64 {
    (LINE_HEIGHT * lines as f64).min(MAX_ROW_HEIGHT)
}

pub(super) struct XlsxSink {
    file: AtomicFile,
    workbook: Workbook,
    /// The sheet the rows are on: after the summary in a report, alone in a failures file.
    rows_sheet: usize,
    summary_sheet: Option<usize>,
    columns: Columns,
    next_row: u32,
    looks: Looks,
    /// How wide each column is to be, in characters: its header's width, or its widest text
    /// so far up to what the column may show.
    widths: Vec<usize>,
    /// Broken cells so far, each with a note up to [`MAX_NOTES`].
    notes: usize,
    facts: Option<(RunFacts, Option<std::path::PathBuf>)>,
    result: Result<(), XlsxError>,
}

impl XlsxSink {
    pub(super) fn create(path: &Path, columns: &Columns, failures: bool) -> Self {
        let mut workbook = Workbook::new();
        let looks = Looks::new();
        let headers = columns.header_row();
        let mut summary_sheet = None;
        let result = (|| -> Result<(), XlsxError> {
            if !failures {
                workbook.add_worksheet().set_name(SUMMARY_SHEET)?;
                summary_sheet = Some(0);
            }
            let sheet = workbook.add_worksheet_with_constant_memory()?;
            sheet.set_name(if failures {
                FAILURES_SHEET
            } else {
                REPORT_SHEET
            })?;
            for (c, h) in headers.iter().enumerate() {
                sheet.write_string_with_format(0, c as u16, h, &looks.header)?;
            }
            // The header and the row number stay in sight while scrolling either way.
            sheet.set_freeze_panes(1, 1)?;
            print_across(sheet);
            sheet.set_print_gridlines(true);
            // Each printed page starts with the header.
            sheet.set_repeat_rows(0, 0)?;
            Ok(())
        })();
        let widths = headers
            .iter()
            .map(|h| shown_width(h) + FILTER_BUTTON)
            .collect();
        XlsxSink {
            file: AtomicFile::new(path),
            workbook,
            rows_sheet: usize::from(!failures),
            summary_sheet,
            columns: columns.clone(),
            next_row: 1,
            looks,
            widths,
            notes: 0,
            facts: None,
            result,
        }
    }

    fn write_row(&mut self, row: &ReportRow) -> Result<(), XlsxError> {
        let r = self.next_row;
        self.next_row += 1;
        let cells = self.columns.cells(row);
        let sheet = self.workbook.worksheet_from_index(self.rows_sheet)?;
        let mut marked: Vec<(u16, String)> = Vec::new();
        for e in row.field_errors {
            let col = e
                .col
                .and_then(|c| self.columns.output_col(c))
                .unwrap_or(ERROR as usize) as u16;
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
            marked.push((ERROR, row.outcome.error.clone()));
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
        let looks = &self.looks;
        let mut lines = 1;
        for (c, text) in cells.iter().enumerate() {
            let col = c as u16;
            let text = cut(text);
            if text.is_empty() {
                continue;
            }
            // Measured only while it could still widen the column, or might not fit in it: a
            // cell is never wider than its length in bytes.
            let cap = widest(col);
            let mut width = None;
            let mut shown = || *width.get_or_insert_with(|| shown_width(text));
            if self.widths[c] < cap && text.len() > self.widths[c] {
                self.widths[c] = self.widths[c].max(shown().min(cap));
            }
            // A cell wider than its column can grow, or of more than one line, wraps: the
            // column will be just that wide, so the row is made as tall as the text takes.
            let multiline = text.contains('\n');
            let long = multiline || (text.len() > cap && shown() > cap);
            if long {
                lines = lines.max(lines_in(text, cap));
            }
            let broken = marked.iter().any(|(m, _)| *m == col);
            // Row numbers, HTTP statuses and attempts are numbers in Excel too.
            if numeric(col) && !broken {
                if let Ok(n) = text.parse::<f64>() {
                    sheet.write_number_with_format(r, col, n, &looks.number)?;
                    continue;
                }
            }
            let format = match (broken, long || wraps(col)) {
                (true, true) => &looks.broken_wrapped,
                (true, false) => &looks.broken,
                (false, true) => &looks.wrapped,
                (false, false) if col == STATUS => &looks.status[row.outcome.status as usize],
                (false, false) => &looks.text,
            };
            sheet.write_string_with_format(r, col, text, format)?;
        }
        if lines > 1 {
            sheet.set_row_height(r, row_height(lines))?;
        }
        for (c, text) in marked {
            self.notes += 1;
            if self.notes > MAX_NOTES {
                continue;
            }
            let text = cut(&text);
            sheet.insert_note(r, c, &Note::new(text).set_author("bulkedit"))?;
        }
        Ok(())
    }

    /// The rows sheet's last touches: widths as measured, and the filter over every row.
    fn finish_rows(&mut self) -> Result<(), XlsxError> {
        let last = self.next_row - 1;
        let sheet = self.workbook.worksheet_from_index(self.rows_sheet)?;
        for (c, &w) in self.widths.iter().enumerate() {
            sheet.set_column_width(c as u16, w as f64 + PADDING)?;
        }
        let width = self.widths.len() as u16;
        sheet.autofilter(0, 0, last, width.saturating_sub(1))?;
        Ok(())
    }

    /// The first sheet of a report: what ran, where, when, how it ended, counts per status
    /// and the most common errors.
    fn write_summary(&mut self) -> Result<(), XlsxError> {
        let Some(index) = self.summary_sheet else {
            return Ok(());
        };
        let report = self.file.dest.display().to_string();
        let rows_sheet = self.workbook.worksheet_from_index(self.rows_sheet)?.name();
        let sheet = self.workbook.worksheet_from_index(index)?;
        let mut s = SummarySheet::new(sheet);
        match &self.facts {
            Some((facts, failures)) => s.facts(facts, &report, failures.as_deref())?,
            None => {
                s.pair("Report", &report)?;
            }
        }
        s.gap();
        let mut rows = format!(
            "on the sheet '{rows_sheet}': a broken cell is red, with the reason in a note on \
             it; the filter buttons in the header pick rows by status"
        );
        if self.notes > MAX_NOTES {
            rows.push_str(&format!(
                ". Only the first {MAX_NOTES} broken cells carry a note; every row's error \
                 column says what is wrong with it"
            ));
        }
        s.pair("The rows", &rows)?;
        s.finish();
        Ok(())
    }
}

/// Landscape, as many pages tall as it takes but one page wide.
fn print_across(sheet: &mut Worksheet) {
    sheet.set_landscape();
    sheet.set_print_fit_to_pages(1, 0);
    // Narrow margins: the more of the page the rows get, the larger they print.
    sheet.set_margins(0.3, 0.3, 0.5, 0.5, 0.2, 0.2);
    sheet.set_header("&L&F&R&A");
    sheet.set_footer("&CPage &P of &N");
}

/// How wide the summary's second column is, in characters.
const SUMMARY_WIDTH: usize = 80;

/// Writes the summary sheet from the top down: labels in the first column, values in the
/// second.
struct SummarySheet<'a> {
    sheet: &'a mut Worksheet,
    row: u32,
    label: Format,
    value: Format,
    number: Format,
    /// Seconds to the hundredth, and rates to the tenth.
    hundredths: Format,
    tenths: Format,
    time: Format,
    heading: Format,
}

impl<'a> SummarySheet<'a> {
    fn new(sheet: &'a mut Worksheet) -> Self {
        let top = Format::new().set_align(FormatAlign::Top);
        let left = top.clone().set_align(FormatAlign::Left);
        SummarySheet {
            sheet,
            row: 0,
            label: top.clone().set_bold(),
            value: top.clone().set_text_wrap(),
            number: left.clone(),
            hundredths: left.clone().set_num_format("0.00"),
            tenths: left.clone().set_num_format("0.0"),
            time: left.set_num_format("yyyy-mm-dd hh:mm:ss"),
            heading: top.set_bold().set_font_size(13),
        }
    }

    fn gap(&mut self) {
        self.row += 1;
    }

    fn heading(&mut self, text: &str) -> Result<(), XlsxError> {
        self.sheet
            .write_string_with_format(self.row, 0, text, &self.heading)?;
        self.row += 1;
        Ok(())
    }

    fn label(&mut self, label: &str) -> Result<(), XlsxError> {
        self.sheet
            .write_string_with_format(self.row, 0, label, &self.label)?;
        Ok(())
    }

    fn pair(&mut self, label: &str, value: &str) -> Result<(), XlsxError> {
        self.label(label)?;
        self.value(value)
    }

    /// Text in the second column, wrapped, its row as tall as it takes.
    fn value(&mut self, text: &str) -> Result<(), XlsxError> {
        let text = cut(text);
        self.sheet
            .write_string_with_format(self.row, 1, text, &self.value)?;
        let lines = lines_in(text, SUMMARY_WIDTH);
        if lines > 1 {
            self.sheet.set_row_height(self.row, row_height(lines))?;
        }
        self.row += 1;
        Ok(())
    }

    fn count(&mut self, label: &str, n: f64) -> Result<(), XlsxError> {
        self.label(label)?;
        self.sheet
            .write_number_with_format(self.row, 1, n, &self.number)?;
        self.row += 1;
        Ok(())
    }

    /// A number rounded to `places` (1 or 2) decimal places, shown so.
    fn decimal(&mut self, label: &str, n: f64, places: i32) -> Result<(), XlsxError> {
        self.label(label)?;
        let scale = 10f64.powi(places);
        let look = if places == 1 {
            &self.tenths
        } else {
            &self.hundredths
        };
        self.sheet
            .write_number_with_format(self.row, 1, (n * scale).round() / scale, look)?;
        self.row += 1;
        Ok(())
    }

    fn time(&mut self, label: &str, at: std::time::SystemTime) -> Result<(), XlsxError> {
        let secs = at
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        self.label(label)?;
        self.sheet.write_datetime_with_format(
            self.row,
            1,
            ExcelDateTime::from_timestamp(secs)?,
            &self.time,
        )?;
        self.row += 1;
        Ok(())
    }

    fn facts(
        &mut self,
        facts: &RunFacts,
        report: &str,
        failures: Option<&Path>,
    ) -> Result<(), XlsxError> {
        let what = match (facts.command, facts.dry_run) {
            ("apply", Some(true)) => "apply, dry run: nothing was written",
            ("apply", _) => "apply: changes were written",
            ("validate", _) => "validate: rows checked offline, nothing sent",
            (other, _) => other,
        };
        self.heading(&format!("bulkedit {}: run summary", facts.command))?;
        self.gap();
        self.pair("What", what)?;
        self.pair("Input", &facts.input.display().to_string())?;
        self.pair("Platform", &facts.platform)?;
        if let Some(target) = &facts.target {
            self.pair("Target", target)?;
        }
        if let Some(dry) = facts.dry_run {
            self.pair("Dry run", if dry { "yes" } else { "no" })?;
        }
        self.time("Started (UTC)", facts.started)?;
        self.time("Ended (UTC)", facts.started + facts.took)?;
        let secs = facts.took.as_secs_f64();
        self.decimal("Duration (s)", secs, 2)?;
        let total = facts.summary.total();
        self.count("Rows", total as f64)?;
        let rate = if secs > 0.0 { total as f64 / secs } else { 0.0 };
        self.decimal("Rows per second", rate, 1)?;
        if let Some(n) = facts.requests {
            self.count("Requests", n as f64)?;
        }
        self.count("Exit code", f64::from(facts.exit_code))?;
        self.pair("Result", result_of(facts.exit_code))?;
        self.pair("Report", report)?;
        let none = "none".to_string();
        let failures = failures.map_or(none.clone(), |p| p.display().to_string());
        self.pair("Failures", &failures)?;
        if facts.dry_run == Some(false) {
            let undo = facts
                .undo
                .as_ref()
                .map_or(none, |p| p.display().to_string());
            self.pair("Undo file", &undo)?;
        }

        self.gap();
        self.heading(STATUS_TABLE)?;
        self.table_header("Status", "Rows")?;
        for status in Status::ALL {
            let n = facts.summary.count(status);
            if n == 0 {
                continue;
            }
            let (fill, ink) = status_colours(status);
            let look = self
                .label
                .clone()
                .set_bold()
                .set_background_color(Color::RGB(fill))
                .set_font_color(Color::RGB(ink));
            self.sheet
                .write_string_with_format(self.row, 0, status.as_str(), &look)?;
            self.sheet
                .write_number_with_format(self.row, 1, n as f64, &self.number)?;
            self.row += 1;
        }
        self.count("total", total as f64)?;

        let top = facts.summary.top_errors(5);
        if !top.is_empty() {
            self.gap();
            self.heading("Most common errors")?;
            self.table_header("Rows", "Error")?;
            for (text, n) in top {
                self.sheet
                    .write_number_with_format(self.row, 0, n as f64, &self.number)?;
                self.value(text)?;
            }
        }
        Ok(())
    }

    fn table_header(&mut self, first: &str, second: &str) -> Result<(), XlsxError> {
        let look = Format::new()
            .set_bold()
            .set_border_bottom(FormatBorder::Thin)
            .set_align(FormatAlign::Left);
        self.sheet
            .write_string_with_format(self.row, 0, first, &look)?;
        self.sheet
            .write_string_with_format(self.row, 1, second, &look)?;
        self.row += 1;
        Ok(())
    }

    fn finish(self) {
        let _ = self.sheet.set_column_width(0, 18);
        let _ = self
            .sheet
            .set_column_width(1, SUMMARY_WIDTH as f64 + PADDING);
        self.sheet.set_print_fit_to_pages(1, 0);
        self.sheet.set_footer("&CPage &P of &N");
    }
}

/// What an exit code says of the run, in a person's words.
fn result_of(code: i32) -> &'static str {
    match code {
        0 => "finished: no row needs attention",
        1 => "finished: some rows need attention (see each one's status and error)",
        3 => "stopped early: the rows not sent are marked skipped; finish with --resume",
        130 => "interrupted: the rows not sent are marked skipped; finish with --resume",
        _ => "ended with an error",
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

    fn sum_up(&mut self, facts: RunFacts, failures: Option<&Path>) {
        self.facts = Some((facts, failures.map(Path::to_path_buf)));
    }

    fn finish(mut self: Box<Self>) -> io::Result<()> {
        std::mem::replace(&mut self.result, Ok(())).map_err(io_error)?;
        self.finish_rows().map_err(io_error)?;
        self.write_summary().map_err(io_error)?;
        self.workbook.save(&self.file.tmp).map_err(io_error)?;
        self.file.commit()
    }

    fn abandon(self: Box<Self>) {
        self.file.abandon();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_reason_makes_its_row_tall_but_never_past_excels_limit() {
        assert_eq!(lines_in("short", WRAP_WIDTH), 1);
        assert_eq!(lines_in("first\nsecond\n", WRAP_WIDTH), 3);
        let long = "word ".repeat(40);
        assert!(lines_in(&long, WRAP_WIDTH) >= 4, "200 characters in 45");
        assert_eq!(row_height(1), LINE_HEIGHT);
        assert_eq!(row_height(10_000), MAX_ROW_HEIGHT);
    }

    #[test]
    fn east_asian_text_takes_two_columns_a_character() {
        assert_eq!(shown_width("user00001@example.com"), 21);
        assert_eq!(shown_width("数据分析师"), 10);
        assert_eq!(shown_width("Müller\nab"), 6);
    }
}
