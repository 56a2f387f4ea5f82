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

/// Opens the sheet of an input file: its header is the first row naming a user key column of
/// any platform, so a title above it is passed over. Every reading of an input goes through
/// here, so each finds the same sheet and header.
pub fn open_sheet(path: &Path, sheet: Option<&str>) -> Result<Sheet, Error> {
    // A workbook report fed back in (a plan) is read at its rows, past its summary.
    let sheet = sheet.or_else(|| crate::report::report_rows_sheet(path));
    read::open_with(path, sheet, &HEADER_MARKS)
}

static HEADER_MARKS: std::sync::LazyLock<read::HeaderMarks> =
    std::sync::LazyLock::new(platform::header_marks);

/// Opens `path` and maps its header onto the platform: the one named (by `--platform` or a
/// profile), else the one `--url` is the service root of, else the one the header fits. A
/// platform named or told by the URL that the header or the URL contradicts stops here.
pub fn open_input(
    path: &Path,
    platform_name: Option<&str>,
    url: Option<&str>,
    sheet: Option<&str>,
    options: &Options,
) -> Result<Input, Error> {
    let named = platform::named(platform_name, url, options)?;
    let opened = open_sheet(path, sheet)?;
    let platform = match named {
        platform::Named::Given(p) => p,
        platform::Named::ByUrl(p, sign, u) => {
            agrees_with_url(path, &opened, p, &sign, &u, options)?
        }
        platform::Named::Unknown => platform::detect(&opened.headers, options)
            .map_err(|m| undetected(path, &opened, m, options))?,
    };
    let layout = platform::columns::map_headers(&opened.headers, platform.fields());
    let errors = header_errors(platform.as_ref(), &layout, opened.header_line);
    if !errors.is_empty() {
        return Err(Error::input(
            path,
            format!("{}{}", errors.join("; "), opened.header_hint(&HEADER_MARKS)),
        ));
    }
    Ok(Input {
        sheet: opened,
        layout,
        platform,
    })
}

/// The platform `--url` names, unless the header belongs to another: it has no key column of
/// the URL's platform but one of another's, or more columns that are another platform's own.
/// A header that fits none is left to the URL's platform, whose own messages say what is wrong.
fn agrees_with_url(
    path: &Path,
    opened: &Sheet,
    claimed: Box<dyn Platform>,
    sign: &str,
    url: &url::Url,
    options: &Options,
) -> Result<Box<dyn Platform>, Error> {
    let fits = platform::fits(&opened.headers, options);
    let mine = fits
        .iter()
        .find(|(_, p)| p.name() == claimed.name())
        .map(|(f, _)| *f);
    let Some((best, other)) = fits.first() else {
        return Ok(claimed);
    };
    let conflict = match mine {
        None => true,
        Some(mine) => other.name() != claimed.name() && best.own > mine.own,
    };
    if !conflict {
        return Ok(claimed);
    }
    let layout = platform::columns::map_headers(&opened.headers, other.fields());
    let own: Vec<String> = layout
        .own_columns()
        .into_iter()
        .take(4)
        .map(str::to_string)
        .collect();
    Err(Error::usage(format!(
        "{}: the header (row {}) is {}'s (its columns {} are {}'s), but --url {url} is {}'s: \
         {sign}. Check that the file and the URL are the ones meant, or give --platform",
        path.display(),
        opened.header_line,
        other.name(),
        crate::read::quoted_list(&own),
        other.name(),
        claimed.name(),
    )))
}

/// Why no platform could be told from the header: a column within a typo of a field of any
/// platform is named with the field it resembles and whose that is; else `why`.
fn undetected(path: &Path, opened: &Sheet, why: String, options: &Options) -> Error {
    // For each misspelled column, the field names it resembles and the platforms they are of.
    type Resembles = Vec<(String, Vec<&'static str>)>;
    let mut near: Vec<(usize, Resembles)> = Vec::new();
    for name in platform::NAMES {
        let Some(p) = platform::by_name(name, options) else {
            continue;
        };
        let layout = platform::columns::map_headers(&opened.headers, p.fields());
        for (col, field) in layout.near_misses {
            let at = match near.iter().position(|(c, _)| *c == col) {
                Some(at) => at,
                None => {
                    near.push((col, Vec::new()));
                    near.len() - 1
                }
            };
            let fields = &mut near[at].1;
            match fields.iter_mut().find(|(f, _)| *f == field) {
                Some((_, platforms)) => platforms.push(name),
                None => fields.push((field, vec![name])),
            }
        }
    }
    let message = if near.is_empty() {
        let shown: Vec<String> = opened
            .headers
            .iter()
            .take(4)
            .map(|h| format!("'{h}'"))
            .collect();
        let which = match opened.header_found {
            read::HeaderFound::FirstRow => ", the first non-empty row,",
            _ => "",
        };
        format!(
            "{why} (row {}{which} is the header: {})",
            opened.header_line,
            shown.join(", ")
        )
    } else {
        near.sort_by_key(|(col, _)| *col);
        let each: Vec<String> = near
            .iter()
            .map(|(col, fields)| {
                let like: Vec<String> = fields
                    .iter()
                    .map(|(f, platforms)| format!("'{f}' ({})", platforms.join(", ")))
                    .collect();
                format!(
                    "column '{}' is not a known column but looks like {}",
                    opened.headers[*col],
                    like.join(" or ")
                )
            })
            .collect();
        format!(
            "{} (row {} is the header): rename it to the field meant; a misspelled column \
             would be ignored silently",
            each.join("; "),
            opened.header_line
        )
    };
    Error::input(
        path,
        format!("{message}{}", opened.header_hint(&HEADER_MARKS)),
    )
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
