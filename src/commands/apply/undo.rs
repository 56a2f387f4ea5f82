//! The undo file: an input sheet that, applied, puts back what a run changed. Built from the
//! final report's lines, so that a resumed run's file undoes its earlier attempts too.

use std::collections::BTreeMap;
use std::path::Path;

use crate::engine::Outcome;
use crate::error::Error;
use crate::platform::{Layout, Platform, Template};
use crate::read::Cells;
use crate::report::CsvDialect;

pub struct UndoFile<'a> {
    platform: &'a dyn Platform,
    /// The input columns that name a user, by field name: the undo finds users as the run did.
    keys: Vec<(&'static str, usize)>,
    rows: Vec<Vec<(&'static str, String)>>,
    /// Fields no undo can put back, with how many lines changed them.
    lost: BTreeMap<String, u64>,
    /// Lines that changed something but name no user in a key column.
    unnamed: u64,
}

/// What the summary says of an undo file.
pub struct Written {
    pub rows: usize,
    pub lost: BTreeMap<String, u64>,
    pub unnamed: u64,
}

impl<'a> UndoFile<'a> {
    pub fn new(platform: &'a dyn Platform, layout: &Layout) -> Self {
        let fields = platform.fields();
        let keys = platform
            .key_fields()
            .iter()
            .filter_map(|&f| Some((fields[f].name, layout.field_col[f]?)))
            .collect();
        UndoFile {
            platform,
            keys,
            rows: Vec::new(),
            lost: BTreeMap::new(),
            unnamed: 0,
        }
    }

    /// Takes one final report line: a write gets its way back.
    pub fn add(&mut self, outcome: &Outcome, cells: &Cells) {
        if !outcome.status.is_write() {
            return;
        }
        let undo = self.platform.undo(outcome.status, &outcome.changes);
        for field in undo.lost {
            *self.lost.entry(field).or_default() += 1;
        }
        if undo.cells.is_empty() {
            return;
        }
        let mut row: Vec<(&'static str, String)> = self
            .keys
            .iter()
            .filter_map(|&(name, col)| {
                let v = cells.get(col)?.trim();
                (!v.is_empty()).then(|| (name, v.to_string()))
            })
            .collect();
        if row.is_empty() {
            self.unnamed += 1;
            return;
        }
        // A key the row changed (an e-mail, when the row named its user by id) goes back
        // to its value before; the other key still finds the user.
        for (name, value) in undo.cells {
            match row.iter_mut().find(|(n, _)| *n == name) {
                Some(cell) => cell.1 = value,
                None => row.push((name, value)),
            }
        }
        self.rows.push(row);
    }

    /// Whether no line gives the file a row to put back.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Writes the file when any line changed something, as a workbook or else CSV in
    /// `dialect`; says what it holds.
    pub fn write(self, path: &Path, csv: Option<CsvDialect>) -> Result<Option<Written>, Error> {
        if self.rows.is_empty() && self.lost.is_empty() && self.unnamed == 0 {
            return Ok(None);
        }
        let template = self.template();
        let rows: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|row| {
                template
                    .headers
                    .iter()
                    .map(|h| {
                        row.iter()
                            .find(|(name, _)| name == h)
                            .map(|(_, v)| v.clone())
                            .unwrap_or_default()
                    })
                    .collect()
            })
            .collect();
        if !rows.is_empty() {
            super::super::template::write_file(path, &template, &rows, csv, "undo file")?;
        }
        Ok(Some(Written {
            rows: rows.len(),
            lost: self.lost,
            unnamed: self.unnamed,
        }))
    }

    /// The template's columns that some line puts back, in the template's order (keys
    /// first), with its drop-downs.
    fn template(&self) -> Template {
        let full = self.platform.template();
        let used = |h: &str| self.rows.iter().any(|r| r.iter().any(|(n, _)| *n == h));
        let mut headers: Vec<&'static str> =
            full.headers.iter().copied().filter(|h| used(h)).collect();
        // Fields a template does not show (none today) still get their column.
        for row in &self.rows {
            for (name, _) in row {
                if !headers.contains(name) {
                    headers.push(name);
                }
            }
        }
        Template {
            choices: full
                .choices
                .into_iter()
                .filter(|(h, _)| headers.contains(h))
                .collect(),
            example: Vec::new(),
            headers,
        }
    }
}

/// The summary's lines on the undo file: where it is, and what it cannot put back.
pub fn describe(written: &Written, path: &Path) -> String {
    let mut out = String::new();
    if written.rows > 0 {
        out.push_str(&format!(
            "undo: {} ({}; apply it to put back what this run changed)\n",
            path.display(),
            crate::report::summary::counted(written.rows as u64, "user")
        ));
    }
    if !written.lost.is_empty() {
        let fields: Vec<String> = written
            .lost
            .iter()
            .map(|(field, n)| format!("{field} on {}", crate::report::summary::counted(*n, "user")))
            .collect();
        out.push_str(&format!(
            "the undo file cannot put back: {} (a password is never read back, and only a text \
             field can be emptied again)\n",
            fields.join(", ")
        ));
    }
    if written.unnamed > 0 {
        out.push_str(&format!(
            "the undo file leaves out {} whose line names no user in a key column\n",
            crate::report::summary::counted(written.unnamed, "change")
        ));
    }
    out
}
