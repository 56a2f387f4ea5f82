//! Opening an input for a platform: the file read up to its header, the platform named or
//! detected from that header, and the header mapped onto the platform's fields. A header that
//! cannot work (a misspelled column, no key column) stops here, before any row is read.

use std::path::Path;

use crate::error::Error;
use crate::platform::{self, Layout, Options, Platform};
use crate::read::{self, Sheet};
use crate::report::{Columns, CsvDialect};

/// An input file opened for one platform.
pub struct Input {
    pub sheet: Sheet,
    pub layout: Layout,
    pub platform: Box<dyn Platform>,
}

impl Input {
    /// What reading the file and mapping its header found worth a warning.
    pub fn warnings(&self) -> impl Iterator<Item = &String> {
        self.sheet
            .warnings
            .iter()
            .chain(self.layout.warnings.iter())
    }

    /// What a report of this input shows of it: its columns, under its headers, with the
    /// platform's secret fields masked.
    pub fn columns(&self) -> Columns {
        Columns {
            headers: self.layout.headers.clone(),
            input_cols: self.layout.output_cols.clone(),
            masked: self
                .platform
                .masked_fields()
                .iter()
                .filter_map(|&f| self.layout.field_col[f])
                .collect(),
            defuse_input: self.sheet.cells_are_text,
            csv: CsvDialect::following(self.sheet.dialect.as_ref()),
        }
    }
}

/// Opens `path` and maps its header onto the platform (named, or detected from the header).
pub fn open_input(
    path: &Path,
    platform_name: Option<&str>,
    sheet: Option<&str>,
    options: &Options,
) -> Result<Input, Error> {
    let opened = read::open(path, sheet)?;
    let platform = match platform_name {
        Some(name) => platform::by_name(name, options).ok_or_else(|| {
            Error::usage(format!(
                "unknown platform '{name}' (use {})",
                platform::NAMES.join(", ")
            ))
        })?,
        None => platform::detect(&opened.headers, options).map_err(|m| {
            let shown: Vec<String> = opened
                .headers
                .iter()
                .take(4)
                .map(|h| format!("'{h}'"))
                .collect();
            Error::input(
                path,
                format!(
                    "{m} (row {}, the first non-empty row, is the header: {})",
                    opened.header_line,
                    shown.join(", ")
                ),
            )
        })?,
    };
    let layout = platform::columns::map_headers(&opened.headers, platform.fields());
    let errors = header_errors(platform.as_ref(), &layout, opened.header_line);
    if !errors.is_empty() {
        return Err(Error::input(path, errors.join("; ")));
    }
    Ok(Input {
        sheet: opened,
        layout,
        platform,
    })
}

/// What is wrong with a header for a platform: the mapping's own errors, the platform's, and
/// no column that says which user a row is about.
fn header_errors(platform: &dyn Platform, layout: &Layout, header_line: u64) -> Vec<String> {
    let mut errors = layout.errors.clone();
    errors.extend(platform.check_layout(layout));
    if !platform.key_fields().iter().any(|&k| layout.has(k)) {
        let keys: Vec<&str> = platform
            .key_fields()
            .iter()
            .map(|&k| platform.fields()[k].name)
            .collect();
        errors.push(format!(
            "the header (row {header_line}) has no {} column, so no row says which user it is about; \
             the {} header needs {}",
            keys.join(" or "),
            platform.name(),
            keys.join(" or ")
        ));
    }
    errors
}
