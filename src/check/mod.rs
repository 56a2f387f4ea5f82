//! Rows to edits or field errors: each row checked against the platform's field dictionary,
//! in parallel, in chunks that keep memory flat; and [`verdict`], what a checked row comes to
//! once duplicate keys are known. The rooms beside it: [`input`] opens a file for a platform,
//! [`duplicates`] finds keys that name the same user on more than one row.

pub mod duplicates;
pub mod input;

use rayon::prelude::*;

use crate::engine::{Outcome, Status};
use crate::error::Error;
use crate::platform::dictionary::Shown;
use crate::platform::{Edit, Keep, Layout, Planned, Platform, Record};
use crate::read::{self, Row};
use crate::rules::FieldError;

pub use duplicates::{
    key_hash, reread_keys, row_key, Duplicates, KeyCollector, KeyedRow, RowKey, RUN,
};
pub use input::{open_input, open_sheet, Input};

/// Rows handed to the validators at once: big enough to keep both cores busy, small enough
/// that a million-row file never sits in memory.
pub const CHUNK: usize = 4096;

/// Checks one row: unreadable cells, cells past the last header, then the field dictionary.
pub fn check_row(
    platform: &dyn Platform,
    layout: &Layout,
    row: &Row,
) -> Result<Edit, Vec<FieldError>> {
    check_row_keeping(platform, layout, row, Keep::Changes)
}

/// [`check_row`], keeping the edit's changes or only its key.
pub fn check_row_keeping(
    platform: &dyn Platform,
    layout: &Layout,
    row: &Row,
    keep: Keep,
) -> Result<Edit, Vec<FieldError>> {
    // `extend` of an empty iterator is inlined away for the usual row with no unreadable
    // cells, where `collect` was a call on every row (3.5% of the dictionary's time).
    let mut errors: Vec<FieldError> = Vec::new();
    errors.extend(row.bad_cells.iter().map(|(col, why)| {
        let name = layout
            .headers
            .get(*col)
            .cloned()
            .unwrap_or_else(|| format!("column {}", col + 1));
        FieldError::new(
            Some(*col).filter(|c| *c < layout.headers.len()),
            name,
            why.clone(),
        )
    }));
    let extra = (layout.headers.len()..row.cells.len())
        .filter(|&i| row.cells.get(i).is_some_and(|c| !c.is_empty()))
        .count();
    if extra > 0 {
        errors.push(FieldError::new(
            None,
            "row",
            format!(
                "has {} cells but the header has {} columns (remove the extra cells or add headers)",
                row.cells.len(),
                layout.headers.len()
            ),
        ));
    }
    let record = Record { row, layout, keep };
    match platform.validate(&record) {
        Ok(edit) if errors.is_empty() && is_the_example(platform, layout, row, &edit) => {
            let col = layout.field_col[platform
                .fields()
                .iter()
                .position(|f| f.name == edit.key.field)
                .unwrap_or(0)];
            Err(vec![FieldError::new(
                col,
                edit.key.field,
                "this is the template's example row, left in: replace it with a real user's \
                 values or delete it",
            )])
        }
        Ok(edit) if errors.is_empty() => planned(layout, row, edit),
        Ok(_) => Err(errors),
        Err(mut field_errors) => {
            // A cell that could not be read is reported once, as unreadable.
            field_errors.retain(|e| !row.bad_cells.iter().any(|(c, _)| e.col == Some(*c)));
            errors.extend(field_errors);
            Err(errors)
        }
    }
}

/// A row of a plan (a dry run's report fed back in) that would update or create its user
/// carries what the dry run said it would change: it is done only if that still holds. Any
/// other row of a plan (`unchanged`, `not-found`, one added by hand) carries that it changes
/// nothing: should it now change something, it is `drifted`, not sent.
fn planned(layout: &Layout, row: &Row, mut edit: Edit) -> Result<Edit, Vec<FieldError>> {
    let Some((status_col, changes_col)) = layout.plan_cols else {
        return Ok(edit);
    };
    let cell = |c: usize| row.cells.get(c).unwrap_or("").trim();
    let status = match Status::parse(cell(status_col)) {
        Some(s @ (Status::WouldUpdate | Status::WouldCreate)) => s,
        _ if layout.is_plan => {
            edit.plan = Some(Box::new(Planned {
                status: Status::Unchanged,
                changes: Vec::new(),
            }));
            return Ok(edit);
        }
        _ => return Ok(edit),
    };
    match crate::report::parse_changes(cell(changes_col)) {
        Some(changes) if !changes.is_empty() => {
            edit.plan = Some(Box::new(Planned { status, changes }));
            Ok(edit)
        }
        _ => Err(vec![FieldError::new(
            Some(changes_col),
            "changes",
            format!(
                "this {status} row of a plan does not say what it changes as the dry run wrote \
                 it: run the dry run again rather than editing its changes"
            ),
        )]),
    }
}

/// The status a plan's line was given by its dry run (`would-update`, `would-create`,
/// `would-deactivate`), when the file is a report and the line has one of those.
pub fn plan_status(layout: &Layout, row: &Row) -> Option<Status> {
    let (status_col, _) = layout.plan_cols?;
    match Status::parse(row.cells.get(status_col).unwrap_or("").trim())? {
        s @ (Status::WouldUpdate | Status::WouldCreate | Status::WouldDeactivate) => Some(s),
        _ => None,
    }
}

/// Whether a line of a plan is one of its users to deactivate (a `would-deactivate` line,
/// after the rows): a user the dry run found missing from the roster, not a row of it.
pub fn is_planned_leaver(layout: &Layout, row: &Row) -> bool {
    plan_status(layout, row) == Some(Status::WouldDeactivate)
}

/// What a plan's line of a user to deactivate says it changes, as the dry run wrote it; an
/// error naming the line when that cannot be read back.
pub fn planned_changes(
    layout: &Layout,
    row: &Row,
) -> Result<Vec<crate::engine::FieldChange>, Error> {
    let (_, changes_col) = layout.plan_cols.expect("a plan's line");
    let cell = row.cells.get(changes_col).unwrap_or("").trim();
    match crate::report::parse_changes(cell) {
        Some(changes) if !changes.is_empty() => Ok(changes),
        _ => Err(Error::usage(format!(
            "row {} of the plan: a would-deactivate line that does not say what it changes as \
             the dry run wrote it ('{cell}'): run the dry run again rather than editing it",
            row.line
        ))),
    }
}

/// `--create`: a valid row must also give what creating its user needs (its edit's changes
/// must be kept); otherwise it is invalid, naming what is missing.
pub fn creatable(
    platform: &dyn Platform,
    result: Result<Edit, Vec<FieldError>>,
) -> Result<Edit, Vec<FieldError>> {
    let edit = result?;
    let problems = platform.cannot_create(&edit);
    if problems.is_empty() {
        return Ok(edit);
    }
    Err(vec![FieldError::new(
        None,
        "to create this user (--create)",
        problems.join("; "),
    )])
}

/// Checks a chunk of rows on every core, keeping their order.
pub fn check_chunk(
    platform: &dyn Platform,
    layout: &Layout,
    rows: &[Row],
) -> Vec<Result<Edit, Vec<FieldError>>> {
    rows.par_iter()
        .with_min_len(256)
        .map(|row| check_row(platform, layout, row))
        .collect()
}

/// Reads the rest of a sheet in chunks of non-blank rows: the first of `first` rows, each
/// after it twice the one before, up to [`CHUNK`].
pub fn chunks(rows: read::Rows, first: usize) -> impl Iterator<Item = Result<Vec<Row>, Error>> {
    let mut rows = rows.filter(|r| !matches!(r, Ok(row) if row.is_blank()));
    let mut size = first.clamp(1, CHUNK);
    std::iter::from_fn(move || {
        let mut chunk = Vec::with_capacity(size);
        for r in rows.by_ref() {
            match r {
                Ok(row) => {
                    chunk.push(row);
                    if chunk.len() == size {
                        break;
                    }
                }
                Err(e) => return Some(Err(e)),
            }
        }
        size = (size * 2).min(CHUNK);
        (!chunk.is_empty()).then_some(Ok(chunk))
    })
}

/// What a checked row comes to once duplicate keys are known: its edit, with the outcome
/// `valid` (validate's `valid`; apply's status for a row not sent yet), when the row goes on;
/// else the `invalid` outcome and the field errors behind it. A key that another row names too
/// makes a row invalid that is valid otherwise, and is named beside whatever else is wrong with
/// a row that is not.
#[inline]
pub fn verdict(
    result: Result<Edit, Vec<FieldError>>,
    duplicate: Option<FieldError>,
    valid: Status,
) -> (Result<Edit, ()>, Outcome, Vec<FieldError>) {
    match (result, duplicate) {
        (Ok(edit), None) => (Ok(edit), Outcome::new(valid), Vec::new()),
        (Ok(_), Some(dup)) => {
            let errors = vec![dup];
            let outcome = Outcome::with_error(Status::Invalid, crate::rules::join_errors(&errors));
            (Err(()), outcome, errors)
        }
        (Err(mut errors), dup) => {
            errors.extend(dup);
            let outcome = Outcome::with_error(Status::Invalid, crate::rules::join_errors(&errors));
            (Err(()), outcome, errors)
        }
    }
}

/// Whether a row is still the template's example: a sheet with every template column, and the
/// row's key and every other cell as `template` wrote them. Left in by mistake, it would change
/// whoever the example names; the key is compared first, so an ordinary row costs one comparison.
fn is_the_example(platform: &dyn Platform, layout: &Layout, row: &Row, edit: &Edit) -> bool {
    let fields = platform.fields();
    let key_example = fields
        .iter()
        .find(|f| f.name == edit.key.field)
        .and_then(|f| match f.shown {
            Shown::Column(_, example, _) => Some(example),
            Shown::Hidden => None,
        });
    match key_example {
        Some(example) if !example.is_empty() && edit.key.value.trim() == example => {}
        _ => return false,
    }
    fields
        .iter()
        .zip(&layout.field_col)
        .all(|(f, col)| match (f.shown, col) {
            (Shown::Column(_, example, _), Some(col)) => {
                row.cells.get(*col).map_or("", str::trim) == example
            }
            // A sheet without every template column is the user's own, whatever it holds.
            (Shown::Column(..), None) => false,
            (Shown::Hidden, _) => true,
        })
}
