//! The field dictionary: each vendor keeps one table of its fields (name, aliases, kind, limits,
//! where each sits in the vendor's record, how the template shows it), and the checks of the
//! common kinds are driven by that table; a vendor adds hooks only for the fields truly its own.

use serde_json::Value;

use super::{Changes, Edit, Layout, Template, UserKey};
use crate::read::Row;
use crate::rules::{self, normalize_header, FieldError, MAX_TEXT};

/// One row of a platform's field table.
#[derive(Debug, Clone, Copy)]
pub struct Field {
    /// The vendor's own name, which the template uses and the row's changes are keyed by.
    pub name: &'static str,
    pub aliases: &'static [&'static str],
    /// Given as `name1`, `name2`, … (Automation Hub's `role_id1, category_id1, …` layout).
    pub numbered: bool,
    pub kind: Kind,
    pub place: Place,
    pub shown: Shown,
}

/// What a field holds, which says how a cell of it is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Free text of at most this many characters; `#clear` empties it.
    Text(usize),
    /// An e-mail address.
    Email,
    /// Yes or no in any of the spellings people use, sent as the vendor wants it.
    YesNo(Sent),
    /// A list of items (`;` or `,` between them), each free text of at most `max` characters;
    /// `item` is what an item is called in messages. The vendor's hook reads it.
    List { item: &'static str, max: usize },
    /// Sent but never shown: a non-empty value is `***` wherever a row is shown.
    Password,
    /// Names the user, holding a value of the inner kind. The vendor's key hook reads it, and
    /// takes it as a change when another key names the user.
    Key(&'static Kind),
    /// The platform's own id for a user; the vendor's key hook checks it.
    Id,
    /// Checked by the vendor's own hook (roles with categories, invite statuses).
    Own,
    /// One of a few named choices, any case, each standing for values of other fields (hub's
    /// user status: `Active` is `user_is_active` 1 with `user_invite_status` 3). A field the
    /// row also gives in its own column must agree with the choice. The field comes after the
    /// fields it sets in the table, so that theirs are read first.
    Named(&'static [Choice]),
}

/// A choice of a [`Kind::Named`] field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Choice {
    pub name: &'static str,
    /// `(field, value sent, values that agree)`: what the choice sets when the row does not
    /// give the field, and what the row may give it without contradicting the choice.
    pub sets: &'static [(&'static str, i64, &'static [i64])],
}

/// How a yes/no value travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    TrueFalse,
    OneZero,
}

/// Where a field's value sits when a user's record is read, merged and written back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// In the record under this key: read, compared, and written back.
    InRecord(&'static str),
    /// The user's id, under this key in the record: it names the user in URLs, never changes.
    UserId(&'static str),
    /// Sent with a write but not part of the record read back (group moves, a password).
    WriteOnly,
    /// Folded into another field by the vendor's hook (hub's `role_id1, category_id1, …`).
    Folded,
}

/// How `bulkedit template` shows a field.
#[derive(Debug, Clone, Copy)]
pub enum Shown {
    /// The template's column number (from 0), its example value, and the choices its
    /// workbook offers as a drop-down list (none when empty).
    Column(usize, &'static str, &'static [&'static str]),
    /// Not in the template.
    Hidden,
}

impl Field {
    pub const fn new(
        name: &'static str,
        aliases: &'static [&'static str],
        kind: Kind,
        place: Place,
        shown: Shown,
    ) -> Self {
        Field {
            name,
            aliases,
            numbered: false,
            kind,
            place,
            shown,
        }
    }

    /// A numbered column, folded into another field and never in the template.
    pub const fn numbered(name: &'static str) -> Self {
        Field {
            name,
            aliases: &[],
            numbered: true,
            kind: Kind::Own,
            place: Place::Folded,
            shown: Shown::Hidden,
        }
    }

    /// Whether the field can name the user a row is about.
    pub const fn names_user(&self) -> bool {
        matches!(self.kind, Kind::Key(_))
    }

    /// Whether a non-empty value is shown as `***`.
    pub const fn is_masked(&self) -> bool {
        matches!(self.kind, Kind::Password)
    }

    /// The key this field's value is found under in the vendor's record, if it is there.
    pub const fn record_key(&self) -> Option<&'static str> {
        match self.place {
            Place::InRecord(key) | Place::UserId(key) => Some(key),
            Place::WriteOnly | Place::Folded => None,
        }
    }
}

impl Kind {
    /// The most characters a text value of this kind may have.
    pub const fn limit(&self) -> Option<usize> {
        match self {
            Kind::Text(max) | Kind::List { max, .. } => Some(*max),
            Kind::Key(inner) => inner.limit(),
            _ => None,
        }
    }
}

/// Headers that HR exports use for the same things on every platform (SPEC Input). A platform
/// may take them as aliases, but a column under one of them says nothing about which platform a
/// sheet is for: platforms are told apart by the columns that are their own.
pub const SHARED_HEADERS: &[&str] = &[
    "Given Name",
    "First Name",
    "Surname",
    "Family Name",
    "Last Name",
    "Mail",
    "E-mail",
    "Email Address",
    "Login",
    "User Name",
];

/// The position of the field called `name`; a compile error when a table has no such field,
/// so a vendor's hooks name fields by name and never by a position kept in step by hand.
pub const fn index(fields: &[Field], name: &str) -> usize {
    let mut i = 0;
    while i < fields.len() {
        if same(fields[i].name, name) {
            return i;
        }
        i += 1;
    }
    panic!("no such field in the table")
}

const fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// Which fields [`count`] and [`indices`] pick.
#[derive(Clone, Copy)]
pub enum Pick {
    /// The fields that can name a user.
    Keys,
    /// The fields shown as `***`.
    Masked,
}

const fn picked(field: &Field, pick: Pick) -> bool {
    match pick {
        Pick::Keys => field.names_user(),
        Pick::Masked => field.is_masked(),
    }
}

/// How many fields `pick` picks: the length of [`indices`].
pub const fn count(fields: &[Field], pick: Pick) -> usize {
    let (mut i, mut n) = (0, 0);
    while i < fields.len() {
        if picked(&fields[i], pick) {
            n += 1;
        }
        i += 1;
    }
    n
}

/// The positions of the fields `pick` picks, in table order, worked out when compiling.
pub const fn indices<const N: usize>(fields: &[Field], pick: Pick) -> [usize; N] {
    let mut out = [0; N];
    let (mut i, mut n) = (0, 0);
    while i < fields.len() {
        if picked(&fields[i], pick) {
            out[n] = i;
            n += 1;
        }
        i += 1;
    }
    assert!(n == N, "the length is count(fields, pick)");
    out
}

/// The template a table describes: its shown fields in column order.
pub fn template(fields: &[Field]) -> Template {
    let mut shown: Vec<(usize, &'static str, &'static str, &'static [&'static str])> = fields
        .iter()
        .filter_map(|f| match f.shown {
            Shown::Column(at, example, choices) => Some((at, f.name, example, choices)),
            Shown::Hidden => None,
        })
        .collect();
    shown.sort_by_key(|s| s.0);
    Template {
        headers: shown.iter().map(|s| s.1).collect(),
        example: shown.iter().map(|s| s.2).collect(),
        choices: shown
            .iter()
            .filter(|s| !s.3.is_empty())
            .map(|s| (s.1, s.3.to_vec()))
            .collect(),
    }
}

/// One row seen through a layout: the validators' view of the cells.
pub struct Record<'a> {
    pub row: &'a Row,
    pub layout: &'a Layout,
    pub keep: super::Keep,
}

/// A non-empty cell of a field.
#[derive(Debug, Clone, Copy)]
pub struct Cell<'a> {
    pub col: usize,
    pub value: &'a str,
}

pub const CLEAR: &str = "#clear";

impl<'a> Record<'a> {
    /// The field's cell, if the column exists and the cell is not empty.
    pub fn get(&self, field: usize) -> Option<Cell<'a>> {
        let col = self.layout.field_col.get(field).copied().flatten()?;
        self.cell(col)
    }

    pub fn cell(&self, col: usize) -> Option<Cell<'a>> {
        let value = self.row.cells.get(col).unwrap_or("");
        (!value.is_empty()).then_some(Cell { col, value })
    }

    pub fn error(&self, col: usize, message: impl Into<String>) -> FieldError {
        FieldError::new(Some(col), self.layout.headers[col].clone(), message)
    }

    pub fn column_name(&self, field: usize, fields: &[Field]) -> String {
        match self.layout.field_col.get(field).copied().flatten() {
            Some(col) => self.layout.headers[col].clone(),
            None => fields[field].name.to_string(),
        }
    }
}

/// What a vendor adds to the checks its table drives.
pub trait Dictionary {
    const FIELDS: &'static [Field];
    /// Reads the cells that name the user, and any change a key cell carries besides; `None`
    /// after reporting why there is no usable key.
    fn key(&self, c: &mut Checker) -> Option<UserKey>;
    /// Checks a field of a kind only the vendor knows (lists, [`Kind::Own`]), when the table
    /// comes to it, so that errors keep the table's order.
    fn check_own(&self, field: usize, c: &mut Checker);
}

/// Checks one row against a vendor's table: every broken field, not just the first.
#[inline]
pub fn check<D: Dictionary>(dictionary: &D, record: &Record) -> Result<Edit, Vec<FieldError>> {
    const { assert!(D::FIELDS.len() <= 64, "a yes/no answer is one bit of a u64") };
    let mut c = Checker::new(record, D::FIELDS);
    let key = dictionary.key(&mut c);
    // The table is a constant, so each field is checked at a constant position and its kind,
    // name and limits fold into straight code, as if the checks were written out by hand; a
    // loop looked them up again for every row of a million-row file (6% of the dictionary's
    // instructions). A table of more than 16 fields walks the rest in a loop.
    macro_rules! field_by_field {
        ($($i:literal)*) => {$(
            if $i < D::FIELDS.len() {
                check_field(dictionary, &mut c, $i, &D::FIELDS[$i]);
            }
        )*};
    }
    field_by_field!(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15);
    for (field, f) in D::FIELDS.iter().enumerate().skip(16) {
        check_field(dictionary, &mut c, field, f);
    }
    c.finish(key)
}

/// One field by its kind: the common kinds here, the others by the vendor's hook.
#[inline(always)]
fn check_field<D: Dictionary>(dictionary: &D, c: &mut Checker, field: usize, f: &Field) {
    match f.kind {
        Kind::Text(max) => c.text_within(field, f.name, max),
        Kind::Email => c.email_as(field, f.name),
        Kind::YesNo(sent) => {
            c.yes_no_as(field, f.name, sent);
        }
        Kind::Password => c.password_as(field, f.name),
        Kind::Named(choices) => c.named(field, choices),
        Kind::Key(_) | Kind::Id => {}
        // A numbered column is read by the hook of the field it folds into.
        Kind::List { .. } | Kind::Own if !f.numbered => dictionary.check_own(field, c),
        Kind::List { .. } | Kind::Own => {}
    }
}

/// Collects the changes and the errors of one row; the building block of every dictionary.
pub struct Checker<'r, 'a> {
    pub record: &'r Record<'a>,
    pub fields: &'static [Field],
    pub changes: Changes,
    pub errors: Vec<FieldError>,
    /// The yes/no fields read so far that said yes, and those that said no, one bit per field.
    said: [u64; 2],
}

impl<'r, 'a> Checker<'r, 'a> {
    pub fn new(record: &'r Record<'a>, fields: &'static [Field]) -> Self {
        Checker {
            record,
            fields,
            changes: Changes::new(record.keep),
            errors: Vec::new(),
            said: [0; 2],
        }
    }

    pub fn fail(&mut self, cell: Cell, message: impl Into<String>) {
        self.errors.push(self.record.error(cell.col, message));
    }

    /// The field's text limit from the table.
    pub fn limit(&self, field: usize) -> usize {
        // Every text-like kind has one; the fallback only keeps this total.
        self.fields[field].kind.limit().unwrap_or(MAX_TEXT)
    }

    /// What a yes/no field the table came to earlier said, when it was a yes or a no, so that a
    /// hook that depends on it need not read it again.
    pub fn said(&self, field: usize) -> Option<bool> {
        let bit = 1 << field;
        [false, true]
            .into_iter()
            .find(|&b| self.said[usize::from(b)] & bit != 0)
    }

    /// `#clear` is only for text fields.
    fn refuse_clear(&mut self, cell: Cell) -> bool {
        if cell.value.eq_ignore_ascii_case(CLEAR) {
            self.fail(
                cell,
                "#clear only empties a text field (leave the cell empty to keep the value)",
            );
            true
        } else {
            false
        }
    }

    /// Free text up to the field's limit; `#clear` empties it.
    pub fn text(&mut self, field: usize) {
        self.text_within(field, self.fields[field].name, self.limit(field));
    }

    fn text_within(&mut self, field: usize, name: &'static str, max: usize) {
        let Some(cell) = self.record.get(field) else {
            return;
        };
        if cell.value.eq_ignore_ascii_case(CLEAR) {
            self.changes.insert(name, "");
            return;
        }
        match rules::check_text(cell.value, max) {
            Ok(()) => {
                self.changes.insert(name, cell.value);
            }
            Err(m) => self.fail(cell, m),
        }
    }

    pub fn email(&mut self, field: usize) {
        self.email_as(field, self.fields[field].name);
    }

    fn email_as(&mut self, field: usize, name: &'static str) {
        let Some(cell) = self.record.get(field) else {
            return;
        };
        if self.refuse_clear(cell) {
            return;
        }
        match rules::check_email(cell.value) {
            Ok(()) => {
                self.changes.insert(name, cell.value);
            }
            Err(m) => self.fail(cell, m),
        }
    }

    /// A yes/no value, kept as the table says it is sent.
    fn yes_no_as(&mut self, field: usize, name: &'static str, sent: Sent) -> Option<bool> {
        let cell = self.record.get(field)?;
        if self.refuse_clear(cell) {
            return None;
        }
        match rules::parse_bool(cell.value) {
            Some(b) => {
                self.said[usize::from(b)] |= 1 << field;
                match sent {
                    Sent::OneZero => self.changes.insert(name, u8::from(b)),
                    Sent::TrueFalse => self.changes.insert(name, b),
                }
                Some(b)
            }
            None => {
                self.fail(cell, format!("not a yes/no value ({})", rules::BOOL_HINT));
                None
            }
        }
    }

    /// One of the field's named choices, setting the fields it stands for; a field the row gives
    /// too must agree.
    fn named(&mut self, field: usize, choices: &'static [Choice]) {
        let Some(cell) = self.record.get(field) else {
            return;
        };
        if self.refuse_clear(cell) {
            return;
        }
        let wanted = normalize_header(cell.value);
        let Some(choice) = choices.iter().find(|c| normalize_header(c.name) == wanted) else {
            let names: Vec<&str> = choices.iter().map(|c| c.name).collect();
            self.fail(cell, format!("not one of {}", names.join(", ")));
            return;
        };
        for &(name, sent, agree) in choice.sets {
            let Some(other) = self.fields.iter().position(|f| f.name == name) else {
                continue;
            };
            let Some(given) = self.record.get(other) else {
                self.changes.insert(name, sent);
                continue;
            };
            let value = match self.fields[other].kind {
                Kind::YesNo(_) => rules::parse_bool(given.value).map(i64::from),
                _ => rules::parse_whole(given.value),
            };
            // A value that cannot be read is reported by its own field.
            if value.is_some_and(|v| !agree.contains(&v)) {
                let there = &self.record.layout.headers[given.col];
                let message = format!(
                    "{} contradicts {there} {} on the same row (give one of them, or values \
                     that agree)",
                    choice.name, given.value
                );
                self.fail(cell, message);
            }
        }
    }

    /// A password: sent as written, never cleared.
    fn password_as(&mut self, field: usize, name: &'static str) {
        let Some(cell) = self.record.get(field) else {
            return;
        };
        if cell.value.eq_ignore_ascii_case(CLEAR) {
            self.fail(
                cell,
                "a password cannot be cleared (leave the cell empty to keep it)",
            );
        } else if cell.value.trim() == "***" {
            // What a report shows for a password: sending it would set the password to `***`.
            self.fail(cell, "the report masked this password; type it again");
        } else {
            self.changes
                .insert(name, Value::String(cell.value.to_string()));
        }
    }

    /// A list of items, each free text within the table's limit; `None` when the cell is empty
    /// or an item is broken.
    pub fn list(&mut self, field: usize) -> Option<(Cell<'a>, Vec<String>)> {
        let cell = self.record.get(field)?;
        if self.refuse_clear(cell) {
            return None;
        }
        let (what, max) = match self.fields[field].kind {
            Kind::List { item, max } => (item, max),
            // Only lists are read as lists; the fallback only keeps this total.
            _ => ("item", MAX_TEXT),
        };
        let mut items = Vec::new();
        let mut ok = true;
        for i in rules::split_list(cell.value) {
            if let Err(m) = rules::check_text(i, max) {
                self.fail(cell, format!("{what} '{i}': {m}"));
                ok = false;
            } else if !items.iter().any(|x: &String| x.eq_ignore_ascii_case(i)) {
                items.push(i.to_string());
            }
        }
        ok.then_some((cell, items))
    }

    /// A key that names the user in a URL path.
    pub fn path_id(&mut self, cell: Cell) -> bool {
        match rules::check_path_id(cell.value) {
            Ok(()) => true,
            Err(m) => {
                self.fail(cell, m);
                false
            }
        }
    }

    /// The row's edit, or every error found. A caller that has no key has reported why.
    pub fn finish(self, key: Option<UserKey>) -> Result<Edit, Vec<FieldError>> {
        match key {
            Some(key) if self.errors.is_empty() => Ok(Edit {
                key,
                changes: self.changes,
                plan: None,
            }),
            _ => Err(self.errors),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[rustfmt::skip]
    const T: &[Field] = &[
        Field::new("id", &[], Kind::Key(&Kind::Id), Place::UserId("uid"), Shown::Column(1, "7", &[])),
        Field::new("pw", &[], Kind::Password, Place::WriteOnly, Shown::Hidden),
        Field::new("name", &["Login"], Kind::Key(&Kind::Text(9)), Place::InRecord("login"), Shown::Column(0, "", &[])),
        Field::new("on", &[], Kind::YesNo(Sent::OneZero), Place::InRecord("on"), Shown::Column(2, "1", &["1", "0"])),
    ];

    #[test]
    fn positions_keys_and_masks_come_from_the_table() {
        const NAME: usize = index(T, "name");
        assert_eq!(NAME, 2);
        const KEYS: [usize; count(T, Pick::Keys)] = indices(T, Pick::Keys);
        assert_eq!(KEYS, [0, 2]);
        const MASKED: [usize; count(T, Pick::Masked)] = indices(T, Pick::Masked);
        assert_eq!(MASKED, [1]);
        assert_eq!(T[NAME].kind.limit(), Some(9));
        assert_eq!(T[0].record_key(), Some("uid"));
    }

    #[test]
    fn the_template_lists_shown_fields_by_column() {
        let t = template(T);
        assert_eq!(t.headers, ["name", "id", "on"]);
        assert_eq!(t.example, ["", "7", "1"]);
        assert_eq!(t.choices, [("on", vec!["1", "0"])]);
    }
}
