//! Workbooks through calamine: XLSX, XLSM, XLSB, XLS and ODS. Cells are turned into the text
//! Excel shows, so `6.0` is `6` and a date is `2021-01-01`, whatever the file format.

use std::io::Cursor;
use std::path::Path;

use calamine::{
    open_workbook_from_rs, Data, Ods, Range, Reader, SheetType, SheetVisible, Xls, Xlsb, Xlsx,
};
use chrono::Timelike;

use super::{
    above_header_warning, quoted_list, split_header, Cells, Format, HeaderFound, HeaderMarks, Row,
    Sheet,
};
use crate::error::Error;

/// An OLE container holding an `EncryptionInfo` stream is a password-protected OOXML file.
fn is_encrypted(bytes: &[u8]) -> bool {
    let needle: Vec<u8> = "EncryptionInfo"
        .encode_utf16()
        .flat_map(|u| u.to_le_bytes())
        .collect();
    bytes.windows(needle.len()).any(|w| w == needle.as_slice())
}

pub(super) fn open(
    path: &Path,
    format: Format,
    sheet: Option<&str>,
    warnings: Vec<String>,
    marks: &HeaderMarks,
) -> Result<Sheet, Error> {
    let bytes = std::fs::read(path).map_err(|e| Error::input(path, format!("cannot read: {e}")))?;
    if format == Format::Ole && is_encrypted(&bytes) {
        return Err(Error::input(
            path,
            "is password-protected; open it in Excel, remove the password \
             (File > Info > Protect Workbook) and save it again",
        ));
    }
    // calamine can panic on a damaged file (seen with a malformed .xls found by fuzzing); a
    // damaged file is an error to report, never a crash.
    let read = || -> Result<Chosen, Error> {
        let cursor = Cursor::new(bytes.as_slice());
        match format {
            Format::Xlsx => choose::<Xlsx<_>>(cursor, path, sheet, marks, "an XLSX workbook"),
            Format::Xlsb => choose::<Xlsb<_>>(cursor, path, sheet, marks, "an XLSB workbook"),
            Format::Ods => choose::<Ods<_>>(cursor, path, sheet, marks, "an ODS workbook"),
            Format::Ole => choose::<Xls<_>>(
                cursor,
                path,
                sheet,
                marks,
                "an Excel 97-2003 (.xls) workbook",
            ),
            Format::Text => unreachable!("text is read by the CSV reader"),
        }
    };
    let chosen = crate::crash::quietly(read).unwrap_or_else(|_| {
        Err(Error::input(
            path,
            "cannot be read as a workbook: the file is damaged (the reader gave up on it); \
             open it in Excel and save it again",
        ))
    })?;
    let kind = match format {
        Format::Xlsx => "XLSX",
        Format::Xlsb => "XLSB",
        Format::Ods => "ODS",
        _ => "XLS",
    };
    let (range, sheet_name) = (chosen.range, chosen.name);
    // calamine reads hidden rows like the others without saying which they are; an XLSX (or
    // XLSM) or ODS sheet's own XML is read for them. XLS and XLSB rows are read alike, uncounted.
    let last = range.end().map_or(0, |(r, _)| u64::from(r) + 1);
    let hidden = match format {
        Format::Xlsx => super::hidden::xlsx_hidden_rows(&bytes, &sheet_name),
        Format::Ods => super::hidden::ods_hidden_rows(&bytes, &sheet_name, last),
        _ => Vec::new(),
    };
    let hidden = rows_with_data(&range, hidden);
    let rows = rows_of(range);
    let split = split_header(path, rows, &format!("sheet '{sheet_name}'"), marks)?;
    let (header, rows) = (split.header, split.rows);
    let mut warnings = warnings;
    warnings.extend(chosen.note);
    warnings.extend(above_header_warning(&split.above, header.line));
    let hidden: Vec<u64> = hidden.into_iter().filter(|&r| r > header.line).collect();
    if let Some(w) = hidden_rows_warning(&hidden) {
        warnings.push(w);
    }
    Ok(Sheet {
        path: path.to_path_buf(),
        description: format!("{kind} workbook, sheet '{sheet_name}'"),
        headers: header.cells.to_vec(),
        header_line: header.line,
        rows,
        warnings,
        text: None,
        cells_are_text: true,
        dialect: None,
        header_found: split.found,
        other_sheets: chosen.others,
    })
}

/// The sheet to read, and what to say about the choice.
struct Chosen {
    range: Range<Data>,
    name: String,
    /// Why a sheet other than the first was read.
    note: Option<String>,
    /// The workbook's other sheets, for a message about a header that is not found.
    others: Vec<String>,
}

/// Opens a workbook of one format and reads the sheet to use: `--sheet NAME`; else the first
/// visible worksheet, unless no row at its top names a user key column (a cover or
/// instructions sheet) and exactly one other visible worksheet has such a header, which is
/// read instead, saying so. When several have one, the choice is the user's.
fn choose<'a, R>(
    cursor: Cursor<&'a [u8]>,
    path: &Path,
    sheet: Option<&str>,
    marks: &HeaderMarks,
    what: &str,
) -> Result<Chosen, Error>
where
    R: Reader<Cursor<&'a [u8]>>,
    R::Error: std::fmt::Display,
{
    let damaged = |e: &dyn std::fmt::Display| {
        Error::input(
            path,
            format!("cannot be read as {what} (the file may be truncated or damaged): {e}"),
        )
    };
    let mut wb: R = open_workbook_from_rs(cursor).map_err(|e| damaged(&e))?;
    let sheets = wb.sheets_metadata().to_vec();
    let name = pick_sheet(path, &sheets, sheet)?;
    let range = wb.worksheet_range(&name).map_err(|e| damaged(&e))?;
    let others: Vec<String> = sheets
        .iter()
        .filter(|s| s.name != name)
        .map(|s| s.name.clone())
        .collect();
    let chosen = |range, name, note| Chosen {
        range,
        name,
        note,
        others: others.clone(),
    };
    if sheet.is_some() || marks.shown.is_empty() || names_a_user(&range, marks) {
        return Ok(chosen(range, name, None));
    }
    let mut with_header = Vec::new();
    for other in sheets.iter().filter(|s| {
        s.name != name && s.visible == SheetVisible::Visible && s.typ == SheetType::WorkSheet
    }) {
        // A sheet that cannot be read is not the one with the users; the first is read as
        // before, and its own problem said.
        if let Ok(r) = wb.worksheet_range(&other.name) {
            if names_a_user(&r, marks) {
                with_header.push((other.name.clone(), r));
            }
        }
    }
    match with_header.len() {
        0 => Ok(chosen(range, name, None)),
        1 => {
            let (other, r) = with_header.remove(0);
            let note = format!(
                "the first sheet, '{name}', has no header naming a user key column; read sheet \
                 '{other}', the only one with one (name another with --sheet NAME)"
            );
            Ok(chosen(r, other, Some(note)))
        }
        _ => {
            let names: Vec<String> = with_header.into_iter().map(|(n, _)| n).collect();
            Err(Error::input(
                path,
                format!(
                    "the first sheet, '{name}', has no header naming a user key column (looked \
                     for {}); sheets {} each have one: name the one to read with --sheet NAME",
                    marks.shown,
                    quoted_list(&names)
                ),
            ))
        }
    }
}

/// Whether a row at the top of a sheet names a user key column. Only the top is read: a
/// sheet of a million rows is not copied to find out.
fn names_a_user(range: &Range<Data>, marks: &HeaderMarks) -> bool {
    let height = range.get_size().0;
    let top: Vec<Result<Row, Error>> = (0..height)
        .map(|i| Ok(row_at(range, i)))
        .take(1000)
        .collect();
    let rows: super::Rows = Box::new(top.into_iter());
    matches!(
        split_header(Path::new(""), rows, "", marks),
        Ok(split) if split.found == HeaderFound::Named
    )
}

/// `--sheet NAME` (exact, then case-insensitive), else the first visible worksheet.
fn pick_sheet(
    path: &Path,
    sheets: &[calamine::Sheet],
    wanted: Option<&str>,
) -> Result<String, Error> {
    let list = || {
        sheets
            .iter()
            .map(|s| match s.visible {
                SheetVisible::Visible => format!("'{}'", s.name),
                _ => format!("'{}' (hidden)", s.name),
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    match wanted {
        Some(name) => sheets
            .iter()
            .find(|s| s.name == name)
            .or_else(|| sheets.iter().find(|s| s.name.eq_ignore_ascii_case(name)))
            .map(|s| s.name.clone())
            .ok_or_else(|| {
                Error::input(
                    path,
                    format!("has no sheet named '{name}'; its sheets are {}", list()),
                )
            }),
        None => sheets
            .iter()
            .find(|s| s.visible == SheetVisible::Visible && s.typ == SheetType::WorkSheet)
            .map(|s| s.name.clone())
            .ok_or_else(|| {
                Error::input(
                    path,
                    format!(
                        "has no visible worksheet (its sheets are {}); name one with --sheet",
                        list()
                    ),
                )
            }),
    }
}

/// Of the rows `numbers` (as Excel numbers them), those with a cell that is not empty.
fn rows_with_data(range: &Range<Data>, numbers: Vec<u64>) -> Vec<u64> {
    let Some((first_row, _)) = range.start() else {
        return Vec::new();
    };
    let (height, width) = range.get_size();
    numbers
        .into_iter()
        .filter(|&n| {
            let Some(i) = n.checked_sub(u64::from(first_row) + 1) else {
                return false;
            };
            (i as usize) < height
                && (0..width).any(|c| {
                    range
                        .get((i as usize, c))
                        .is_some_and(|d| !cell_text(d).0.is_empty())
                })
        })
        .collect()
}

/// What the summary says of rows a workbook hides or filters out: how many, and which (the
/// first few, and how many more).
fn hidden_rows_warning(rows: &[u64]) -> Option<String> {
    let shown: Vec<String> = rows.iter().take(5).map(u64::to_string).collect();
    let more = rows.len().saturating_sub(5);
    let which = match (rows.len(), more) {
        (0, _) => return None,
        (1, _) => format!("row {}", shown[0]),
        (_, 0) => format!("rows {}", shown.join(", ")),
        _ => format!("rows {} and {more} more", shown.join(", ")),
    };
    Some(format!(
        "{} {} hidden or filtered out in the workbook, read like the others: {which} (check them \
         before applying)",
        rows.len(),
        if rows.len() == 1 {
            "row is"
        } else {
            "rows are"
        },
    ))
}

fn rows_of(range: Range<Data>) -> super::Rows {
    let height = range.get_size().0;
    let mut i = 0usize;
    Box::new(std::iter::from_fn(move || {
        if i >= height {
            return None;
        }
        i += 1;
        Some(Ok(row_at(&range, i - 1)))
    }))
}

/// The `i`th row of a range, numbered as Excel numbers it.
fn row_at(range: &Range<Data>, i: usize) -> Row {
    let (first_row, first_col) = range
        .start()
        .map_or((0, 0), |(r, c)| (r as u64, c as usize));
    let width = range.get_size().1;
    // Cells keep Excel's columns: a sheet whose data starts in column C has two empty
    // cells before it, as a person sees it.
    let mut row = Row {
        line: first_row + i as u64 + 1,
        cells: Cells::with_capacity(first_col + width, 0),
        bad_cells: Vec::new(),
    };
    for _ in 0..first_col {
        row.cells.push("");
    }
    for c in 0..width {
        let (text, problem) = cell_text(range.get((i, c)).unwrap_or(&Data::Empty));
        if let Some(problem) = problem {
            row.bad_cells.push((first_col + c, problem));
        }
        row.cells.push(&text);
    }
    row
}

/// The text Excel shows for a cell, trimmed; error cells carry a reason to refuse the row.
pub fn cell_text(cell: &Data) -> (String, Option<String>) {
    let text = match cell {
        Data::Empty => String::new(),
        Data::String(s) => s.trim().to_string(),
        Data::Int(i) => i.to_string(),
        Data::Float(f) => number_text(*f),
        Data::Bool(b) => if *b { "TRUE" } else { "FALSE" }.to_string(),
        Data::DateTimeIso(s) | Data::DurationIso(s) => s.clone(),
        Data::DateTime(dt) => {
            if dt.is_duration() {
                let secs = (dt.as_f64() * 86_400.0).round() as i64;
                format!("{}:{:02}:{:02}", secs / 3600, (secs / 60) % 60, secs % 60)
            } else if let Some(t) = dt.as_datetime() {
                if t.num_seconds_from_midnight() == 0 {
                    t.format("%Y-%m-%d").to_string()
                } else {
                    t.format("%Y-%m-%d %H:%M:%S").to_string()
                }
            } else {
                number_text(dt.as_f64())
            }
        }
        Data::Error(e) => {
            return (
                e.to_string(),
                Some(format!(
                    "holds the formula error {e} (fix the formula or type the value)"
                )),
            )
        }
    };
    (text, None)
}

/// Whole numbers without a fraction, others in the shortest form that reads back the same.
pub fn number_text(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e15 {
        format!("{}", f as i64)
    } else {
        format!("{f}")
    }
}
