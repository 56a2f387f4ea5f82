//! Matches a header row against a platform's field dictionary: names and aliases compare
//! case-insensitively ignoring spaces, `_` and `-`; a near miss of a known name is an error so a
//! misspelled column never silently does nothing. A report fed back in (its header starts with
//! `row`, `status`, `error`) has its report columns dropped; in any other file a `Status` or
//! `Error` column is the user's own.

use crate::platform::dictionary::SHARED_HEADERS;
use crate::platform::Field;
use crate::rules::{normalize_header, REPORT_COLUMNS};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnUse {
    /// The column holds this field (an index into the platform's field list).
    Field(usize),
    /// `role_id2`: the field, numbered.
    Numbered { field: usize, n: u32 },
    /// One of the report's own columns.
    Report,
    /// Not a field of this platform.
    Ignored,
}

/// How a file's header maps onto one platform's fields.
#[derive(Debug, Clone)]
pub struct Layout {
    pub headers: Vec<String>,
    pub uses: Vec<ColumnUse>,
    /// For each field of the platform, the column holding it.
    pub field_col: Vec<Option<usize>>,
    /// `(field, n, column)` for numbered columns, sorted by field and number.
    pub numbered: Vec<(usize, u32, usize)>,
    /// The input columns a report repeats, in the input's order: all but report columns.
    pub output_cols: Vec<usize>,
    pub warnings: Vec<String>,
    /// Header problems that stop the run: near misses and fields given twice.
    pub errors: Vec<String>,
    /// Columns that are not fields but within a typo of one: `(column, the field it resembles)`.
    pub near_misses: Vec<(usize, String)>,
    /// A report fed back in: its `status` and `changes` columns, which make its dry run's
    /// rows a plan.
    pub plan_cols: Option<(usize, usize)>,
    /// The file is a plan: some line of it is a dry run's `would-…`. Then a line its dry run
    /// did not mark to change (or one added since) was not approved to change anything.
    pub is_plan: bool,
}

/// How well a header fits a platform, to tell platforms apart: first the columns that are the
/// platform's own (a field's name or an alias that is not a common HR header), then every
/// column that matched. Two platforms that fit alike cannot be told apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Fit {
    pub own: usize,
    pub matched: usize,
}

impl Layout {
    /// How well the header fits the platform it was mapped onto.
    pub fn matched(&self) -> Fit {
        Fit {
            own: self.own_columns().len(),
            matched: self
                .uses
                .iter()
                .filter(|u| matches!(u, ColumnUse::Field(_) | ColumnUse::Numbered { .. }))
                .count(),
        }
    }

    /// The headers that are this platform's own: a field's name or alias that is not a
    /// common HR header.
    pub fn own_columns(&self) -> Vec<&str> {
        let shared: Vec<String> = SHARED_HEADERS.iter().map(|h| normalize_header(h)).collect();
        self.uses
            .iter()
            .zip(&self.headers)
            .filter(|(u, h)| {
                matches!(u, ColumnUse::Field(_) | ColumnUse::Numbered { .. })
                    && !shared.contains(&normalize_header(h))
            })
            .map(|(_, h)| h.as_str())
            .collect()
    }

    pub fn has(&self, field: usize) -> bool {
        self.field_col.get(field).is_some_and(Option::is_some)
    }
}

fn split_number(normalized: &str) -> Option<(&str, u32)> {
    let digits = normalized.len()
        - normalized
            .trim_end_matches(|c: char| c.is_ascii_digit())
            .len();
    if digits == 0 || digits == normalized.len() {
        return None;
    }
    let (base, num) = normalized.split_at(normalized.len() - digits);
    num.parse().ok().map(|n| (base, n))
}

/// Maps `headers` onto `fields`.
pub fn map_headers(headers: &[String], fields: &[Field]) -> Layout {
    let names: Vec<Vec<String>> = fields
        .iter()
        .map(|f| {
            std::iter::once(f.name)
                .chain(f.aliases.iter().copied())
                .map(normalize_header)
                .collect()
        })
        .collect();
    let report: Vec<String> = REPORT_COLUMNS.iter().map(|c| normalize_header(c)).collect();
    // A report's own columns lead it; whatever follows is the user's, `Status` included.
    let report_cols = if crate::rules::is_report_header(headers) {
        headers
            .iter()
            .take_while(|h| report.contains(&normalize_header(h)))
            .count()
    } else {
        0
    };
    let mut layout = Layout {
        headers: headers.to_vec(),
        uses: Vec::with_capacity(headers.len()),
        field_col: vec![None; fields.len()],
        numbered: Vec::new(),
        output_cols: Vec::new(),
        warnings: Vec::new(),
        errors: Vec::new(),
        near_misses: Vec::new(),
        plan_cols: None,
        is_plan: false,
    };
    let report_col = |name: &str| headers[..report_cols].iter().position(|h| h == name);
    layout.plan_cols = report_col("status").zip(report_col("changes"));
    let mut unknown: Vec<String> = Vec::new();
    for (col, header) in headers.iter().enumerate() {
        let h = normalize_header(header);
        let exact = names.iter().position(|ns| ns.contains(&h));
        let use_ = if h.is_empty() {
            ColumnUse::Ignored
        } else if col < report_cols {
            ColumnUse::Report
        } else if let Some(field) = exact.filter(|&f| !fields[f].numbered) {
            if let Some(first) = layout.field_col[field] {
                layout.errors.push(format!(
                    "columns '{}' and '{}' both give {}; keep one",
                    headers[first], header, fields[field].name
                ));
            } else {
                layout.field_col[field] = Some(col);
            }
            ColumnUse::Field(field)
        } else if let Some((field, n)) = numbered(&h, fields) {
            if let Some(&(_, _, first)) = layout
                .numbered
                .iter()
                .find(|(f, m, _)| *f == field && *m == n)
            {
                layout.errors.push(format!(
                    "columns '{}' and '{}' are the same column; keep one",
                    headers[first], header
                ));
            } else {
                layout.numbered.push((field, n, col));
            }
            ColumnUse::Numbered { field, n }
        } else if let Some(near) = near_miss(&h, fields, &names) {
            layout.errors.push(format!(
                "column '{header}' is not a known column but looks like '{near}'; \
                 rename it to '{near}' (a misspelled column would be ignored silently)"
            ));
            layout.near_misses.push((col, near));
            ColumnUse::Ignored
        } else {
            unknown.push(header.clone());
            ColumnUse::Ignored
        };
        if use_ != ColumnUse::Report {
            layout.output_cols.push(col);
        }
        layout.uses.push(use_);
    }
    layout.numbered.sort_unstable();
    // One line however many: a sheet with thousands of extra columns gets one warning.
    match unknown.as_slice() {
        [] => {}
        [one] => layout.warnings.push(format!(
            "column '{one}' is not a field of this platform; ignored"
        )),
        many => {
            let shown: Vec<String> = many.iter().take(5).map(|h| format!("'{h}'")).collect();
            let more = many.len().saturating_sub(5);
            let tail = if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            };
            layout.warnings.push(format!(
                "columns {}{tail} are not fields of this platform; ignored",
                shown.join(", ")
            ));
        }
    }
    layout
}

/// A numbered column (`role_id2`), or the one-role form without a number (`role_id`), which
/// is the first.
fn numbered(h: &str, fields: &[Field]) -> Option<(usize, u32)> {
    let (base, n) = split_number(h).unwrap_or((h, 1));
    fields
        .iter()
        .position(|f| f.numbered && normalize_header(f.name) == base)
        .map(|f| (f, n))
}

/// Within one edit (insert, delete, change, swap) of a name or alias, or two edits when that
/// name has eight characters or more.
fn near_miss(h: &str, fields: &[Field], names: &[Vec<String>]) -> Option<String> {
    let mut best: Option<(usize, String)> = None;
    for (field, ns) in fields.iter().zip(names) {
        for n in ns {
            if !crate::rules::within_a_typo(h, n) {
                continue;
            }
            let d = strsim::osa_distance(h, n);
            if best.as_ref().is_none_or(|(bd, _)| d < *bd) {
                best = Some((d, field.name.to_string()));
            }
        }
        if field.numbered {
            // `role_idx1`: a mangled numbered column; the suggestion keeps its number (or
            // is the first), never the bare name it already is.
            let base = normalize_header(field.name);
            let (stem, n) = split_number(h).unwrap_or((h, 1));
            if strsim::osa_distance(stem, &base) <= 1 && best.is_none() {
                best = Some((1, format!("{}{n}", field.name)));
            }
        }
    }
    best.map(|(_, name)| name)
}
