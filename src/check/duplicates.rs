//! Keys that name the same user on more than one row, whatever else is wrong with those rows:
//! a row's key is read from its cells ([`row_key`]), not from its checked edit, so an invalid
//! row still marks the valid row that shares its key. Every row's key is kept as one 8-byte
//! hash ([`KeyCollector`]), so memory stays flat however long the file. Repeated hashes are
//! only candidates: only when there are some is the file read again ([`reread_keys`]), and the
//! keys of the rows with those hashes compared exactly. The answer, [`Duplicates`], says by row
//! number what to report.

use std::borrow::Cow;
use std::hash::{Hash, Hasher};
use std::path::Path;
use std::sync::Arc;

use rayon::prelude::*;

use super::input::open_input;
use crate::error::Error;
use crate::platform::{Edit, Keep, Kind, Layout, Options, Platform, UserKey};
use crate::read::Row;
use crate::rules::{self, FieldError};

/// The user a row names, read from its cells alone: the first key column (in the platform's
/// order of keys) with a value, as the vendors' own key checks pick it. An id written as a
/// whole number with a zero fraction (`6.0`) is the number it is.
pub struct RowKey<'r> {
    pub field: &'static str,
    pub value: Cow<'r, str>,
    pub col: usize,
}

impl RowKey<'_> {
    pub fn hash(&self) -> u64 {
        hash_key(self.field, &self.value)
    }
}

/// The key `row` names, whatever else is wrong with it; `None` when no key cell has a value
/// (or the one there could not be read).
pub fn row_key<'r>(platform: &dyn Platform, layout: &Layout, row: &'r Row) -> Option<RowKey<'r>> {
    for &k in platform.key_fields() {
        let Some(col) = layout.field_col.get(k).copied().flatten() else {
            continue;
        };
        let value = rules::trim(row.cells.get(col).unwrap_or(""));
        if value.is_empty() {
            continue;
        }
        if row.bad_cells.iter().any(|(c, _)| *c == col) {
            return None;
        }
        let field = &platform.fields()[k];
        let value = match field.kind {
            Kind::Key(Kind::Id) => match rules::parse_whole(value) {
                Some(n) if !is_canonical_whole(value) => Cow::Owned(n.to_string()),
                _ => Cow::Borrowed(value),
            },
            _ => Cow::Borrowed(value),
        };
        return Some(RowKey {
            field: field.name,
            value,
            col,
        });
    }
    None
}

/// Digits with no leading zero: a whole number already written as `to_string` writes it.
fn is_canonical_whole(value: &str) -> bool {
    value.bytes().all(|b| b.is_ascii_digit()) && !(value.len() > 1 && value.starts_with('0'))
}

/// The hash of a key as `UserKey::normalized` spells it, without building that string for
/// the usual ASCII key.
#[inline]
pub fn key_hash(edit: &Edit) -> u64 {
    hash_key(edit.key.field, &edit.key.value)
}

#[inline]
fn hash_key(field: &str, value: &str) -> u64 {
    let mut h = rustc_hash::FxHasher::default();
    field.hash(&mut h);
    let value = rules::trim(value);
    // Every byte is hashed with its 0x20 bit set, which is the same for a letter in either
    // case: the usual ASCII key needs no lower-cased copy. Keys that differ only where that
    // bit hides a difference (`@` and a backquote) share a hash, and are told apart when the
    // candidate rows are read again and compared exactly.
    let hash_bytes = |h: &mut rustc_hash::FxHasher, bytes: &[u8]| {
        let mut chunks = bytes.chunks_exact(8);
        for c in chunks.by_ref() {
            h.write_u64(
                u64::from_le_bytes(c.try_into().expect("eight bytes")) | 0x2020_2020_2020_2020,
            );
        }
        for &b in chunks.remainder() {
            h.write_u8(b | 0x20);
        }
        h.write_usize(bytes.len());
    };
    if value.is_ascii() {
        hash_bytes(&mut h, value.as_bytes());
    } else {
        hash_bytes(&mut h, value.to_lowercase().as_bytes());
    }
    h.finish()
}

/// Collects the keys of rows as one 8-byte hash a row, then finds the rows whose keys
/// collide. No row is held, and memory does not grow with the file: past [`RUN`] hashes, each
/// run of them is sorted and set aside in a temporary file, and the runs are merged at the end.
#[derive(Default)]
pub struct KeyCollector {
    hashes: Vec<u64>,
    runs: Vec<std::fs::File>,
    error: Option<std::io::Error>,
    /// Hashes per run; 0 means [`RUN`] (tests use small runs).
    run_len: usize,
}

/// Hashes held in memory at most: 8 MB.
pub const RUN: usize = 1 << 20;

/// Rows that name a user another row names too. Each such row points at its group, and a
/// group keeps only the first few of its rows and how many there are, so that 50,000 rows of
/// one key cost what 50,000 rows of distinct keys cost; a row's error is worded when it is
/// asked for.
#[derive(Default, Debug)]
pub struct Duplicates {
    /// `(row number, group)`, sorted by row number.
    by_line: Vec<(u64, u32)>,
    groups: Vec<Group>,
    valid_rows: usize,
}

/// The rows naming one user.
#[derive(Debug)]
struct Group {
    /// The first [`SHOWN`] + 1 row numbers, in order: a row names [`SHOWN`] others besides itself.
    first: Vec<u64>,
    rows: usize,
    /// The column holding the key (index and header) on the group's first row.
    col: usize,
    column: Arc<str>,
}

/// How many other rows a duplicate's error names before saying how many more.
const SHOWN: usize = 5;

impl Duplicates {
    /// The error to report on row `line`, when it names a user another row names too.
    pub fn get(&self, line: u64) -> Option<FieldError> {
        let i = self.by_line.binary_search_by_key(&line, |e| e.0).ok()?;
        Some(duplicate_error(
            line,
            &self.groups[self.by_line[i].1 as usize],
        ))
    }
    pub fn is_empty(&self) -> bool {
        self.by_line.is_empty()
    }
    /// How many rows name a user another row names too.
    pub fn rows(&self) -> usize {
        self.by_line.len()
    }
    /// How many of those rows are valid otherwise: the rows that were to be sent and are not.
    pub fn valid_rows(&self) -> usize {
        self.valid_rows
    }
}

impl KeyCollector {
    pub fn add(&mut self, edit: &Edit) {
        self.add_hash(key_hash(edit));
    }

    /// The key `row` names, valid or not (see [`row_key`]).
    pub fn add_row(&mut self, platform: &dyn Platform, layout: &Layout, row: &Row) {
        if let Some(key) = row_key(platform, layout, row) {
            self.add_hash(key.hash());
        }
    }

    /// A key already hashed with [`key_hash`] or [`RowKey::hash`].
    pub fn add_hash(&mut self, hash: u64) {
        let run_len = if self.run_len == 0 { RUN } else { self.run_len };
        if self.hashes.capacity() == 0 {
            self.hashes.reserve_exact(run_len);
        }
        self.hashes.push(hash);
        if self.hashes.len() == run_len {
            self.set_aside();
        }
    }

    /// Sorts the hashes in memory and moves them to a temporary file (deleted on close).
    fn set_aside(&mut self) {
        use std::io::{Seek, Write};
        self.hashes.sort_unstable();
        let written = (|| -> std::io::Result<std::fs::File> {
            let mut file = tempfile::tempfile()?;
            let mut w = std::io::BufWriter::new(&mut file);
            for h in &self.hashes {
                w.write_all(&h.to_le_bytes())?;
            }
            w.flush()?;
            drop(w);
            file.rewind()?;
            Ok(file)
        })();
        match written {
            Ok(f) => self.runs.push(f),
            Err(e) => {
                self.error.get_or_insert(e);
            }
        }
        self.hashes.clear();
    }

    /// Every hash that occurs more than once, in order.
    fn repeated(mut self) -> std::io::Result<Vec<u64>> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        // At the end of the run, with every core free.
        rayon::slice::ParallelSliceMut::par_sort_unstable(&mut self.hashes[..]);
        if self.runs.is_empty() {
            // One run, the usual case: repeats are equal neighbours.
            return Ok(self
                .hashes
                .chunk_by(|a, b| a == b)
                .filter(|group| group.len() > 1)
                .map(|group| group[0])
                .collect());
        }
        let in_memory = std::mem::take(&mut self.hashes);
        merge_repeated(self.runs, in_memory)
    }

    /// Finds the rows whose keys are equal. Equal hashes are only candidates: `reread` reads
    /// the file again, picks the rows whose key hashes are among them, and their exact keys
    /// decide.
    pub fn duplicates(
        self,
        reread: impl FnOnce(&(dyn Fn(u64) -> bool + Sync)) -> Result<Vec<KeyedRow>, Error>,
    ) -> Result<Duplicates, Error> {
        let candidates = self.repeated().map_err(|e| {
            Error::usage(format!(
                "cannot keep the keys aside in a temporary file to find duplicates: {e}"
            ))
        })?;
        if candidates.is_empty() {
            return Ok(Duplicates::default());
        }
        let wanted = |hash: u64| candidates.binary_search(&hash).is_ok();
        let rows = reread(&wanted)?;
        Ok(group(rows))
    }
}

/// The rows read again, grouped by the user they name. Rows of one hash are compared exactly
/// with the first row of each distinct key of that hash (almost always one), without a
/// lower-cased copy of every key.
fn group(rows: Vec<KeyedRow>) -> Duplicates {
    // For each hash, the groups (indices into `groups`) of the distinct keys seen with it.
    let mut by_hash: rustc_hash::FxHashMap<u64, Vec<usize>> = Default::default();
    let mut groups: Vec<(Group, usize)> = Vec::new();
    let mut member: Vec<(u64, usize, bool)> = Vec::with_capacity(rows.len());
    for (i, row) in rows.iter().enumerate() {
        let seen = by_hash.entry(row.hash).or_default();
        let g = match seen
            .iter()
            .copied()
            .find(|&g| same_key(&rows[groups[g].1].key, &row.key))
        {
            Some(g) => g,
            None => {
                groups.push((
                    Group {
                        first: Vec::new(),
                        rows: 0,
                        col: row.col,
                        column: row.column.clone(),
                    },
                    i,
                ));
                seen.push(groups.len() - 1);
                groups.len() - 1
            }
        };
        let group = &mut groups[g].0;
        group.rows += 1;
        if group.first.len() <= SHOWN {
            group.first.push(row.line);
        }
        member.push((row.line, g, row.valid));
    }
    // Only groups of more than one row are duplicates; the rest were hashes that collided.
    let mut renumbered = vec![u32::MAX; groups.len()];
    let mut dups = Duplicates::default();
    for (g, (group, _)) in groups.into_iter().enumerate() {
        if group.rows > 1 {
            renumbered[g] = dups.groups.len() as u32;
            dups.groups.push(group);
        }
    }
    let in_group = member.iter().filter(|m| renumbered[m.1] != u32::MAX);
    dups.valid_rows = in_group.clone().filter(|m| m.2).count();
    dups.by_line = in_group
        .map(|&(line, g, _)| (line, renumbered[g]))
        .collect();
    // Rows come back in file order; sorting keeps a reader of any order right.
    if !dups.by_line.is_sorted_by_key(|e| e.0) {
        dups.by_line.sort_unstable_by_key(|e| e.0);
    }
    dups
}

/// Whether two keys name the same user: the same field, and values equal case-insensitively
/// after trimming, as `UserKey::normalized` compares them.
fn same_key(a: &UserKey, b: &UserKey) -> bool {
    let (x, y) = (rules::trim(&a.value), rules::trim(&b.value));
    a.field == b.field
        && if x.is_ascii() && y.is_ascii() {
            x.eq_ignore_ascii_case(y)
        } else {
            x.to_lowercase() == y.to_lowercase()
        }
}

/// The error reported on row `line` of `group`: the other rows (the first few, and how many
/// more). Constant work a row, however many rows the group has.
fn duplicate_error(line: u64, group: &Group) -> FieldError {
    use std::fmt::Write;
    let others = group.rows - 1;
    let mut text = String::with_capacity(160);
    text.push_str("the same user is also on row");
    if others != 1 {
        text.push('s');
    }
    let mut shown = 0;
    for l in group.first.iter().filter(|l| **l != line).take(SHOWN) {
        text.push_str(if shown == 0 { " " } else { ", " });
        let _ = write!(text, "{l}");
        shown += 1;
    }
    if others > shown {
        let _ = write!(text, " and {} more", others - shown);
    }
    text.push_str(" (nothing is sent for a user named twice; keep one row)");
    FieldError::new(Some(group.col), &*group.column, text)
}

/// Every hash that occurs more than once in sorted runs (files of little-endian hashes, and
/// the last run still in memory), in order: a k-way merge, where repeats are equal neighbours.
fn merge_repeated(runs: Vec<std::fs::File>, in_memory: Vec<u64>) -> std::io::Result<Vec<u64>> {
    use std::cmp::Reverse;
    use std::io::Read;
    let mut sources: Vec<Box<dyn Iterator<Item = std::io::Result<u64>>>> = Vec::new();
    for file in runs {
        let mut r = std::io::BufReader::new(file);
        sources.push(Box::new(std::iter::from_fn(move || {
            let mut b = [0u8; 8];
            match r.read_exact(&mut b) {
                Ok(()) => Some(Ok(u64::from_le_bytes(b))),
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => None,
                Err(e) => Some(Err(e)),
            }
        })));
    }
    sources.push(Box::new(in_memory.into_iter().map(Ok)));
    let mut heads = std::collections::BinaryHeap::new();
    for (i, s) in sources.iter_mut().enumerate() {
        if let Some(h) = s.next() {
            heads.push(Reverse((h?, i)));
        }
    }
    let mut repeated = Vec::new();
    let mut last: Option<(u64, bool)> = None;
    while let Some(Reverse((h, i))) = heads.pop() {
        match last {
            Some((prev, counted)) if prev == h => {
                if !counted {
                    repeated.push(h);
                    last = Some((h, true));
                }
            }
            _ => last = Some((h, false)),
        }
        if let Some(next) = sources[i].next() {
            heads.push(Reverse((next?, i)));
        }
    }
    Ok(repeated)
}

/// A row read again to compare its key exactly.
pub struct KeyedRow {
    pub line: u64,
    pub key: UserKey,
    /// Its key's hash, as [`RowKey::hash`] gives it.
    pub hash: u64,
    /// The column (index and header) that holds the key.
    pub col: usize,
    pub column: Arc<str>,
    /// Whether the row is valid otherwise (the rows `apply` would have sent).
    pub valid: bool,
}

/// Reads `path` again and returns the rows, valid or not, whose keys' hashes are `wanted`.
pub fn reread_keys(
    path: &Path,
    platform_name: &str,
    sheet: Option<&str>,
    options: &Options,
    wanted: &(dyn Fn(u64) -> bool + Sync),
) -> Result<Vec<KeyedRow>, Error> {
    let input = open_input(path, Some(platform_name), None, sheet, options)?;
    let (platform, layout) = (input.platform.as_ref(), &input.layout);
    let headers: Vec<Arc<str>> = layout
        .headers
        .iter()
        .map(|h| Arc::from(h.as_str()))
        .collect();
    let mut out = Vec::new();
    for chunk in super::chunks(input.sheet.rows, super::CHUNK) {
        let chunk = chunk?;
        out.par_extend(chunk.par_iter().with_min_len(256).filter_map(|row| {
            let key = row_key(platform, layout, row)?;
            let hash = key.hash();
            wanted(hash).then(|| KeyedRow {
                line: row.line,
                valid: super::check_row_keeping(platform, layout, row, Keep::VerdictOnly).is_ok(),
                hash,
                col: key.col,
                column: headers[key.col].clone(),
                key: UserKey {
                    field: key.field,
                    value: key.value.into_owned(),
                },
            })
        }));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edit(field: &'static str, value: &str) -> Edit {
        Edit {
            key: crate::platform::UserKey {
                field,
                value: value.to_string(),
            },
            changes: crate::platform::Changes::new(Keep::VerdictOnly),
            plan: None,
        }
    }

    #[test]
    fn keys_hash_alike_in_any_case_and_padding_and_apart_otherwise() {
        let h = |f, v| key_hash(&edit(f, v));
        let base = h("user_email", "Jane.Doe@Example.com");
        assert_eq!(base, h("user_email", "  jane.doe@EXAMPLE.COM "));
        assert_ne!(base, h("user_email", "jane.doe@example.co"));
        assert_ne!(base, h("user_email", "jane.dof@example.com"));
        assert_ne!(base, h("username", "jane.doe@example.com"));
        // Non-ASCII keys are lower-cased in full, as `UserKey::normalized` compares them.
        assert_eq!(
            h("user_email", "ÉLODIE@example.com"),
            h("user_email", "élodie@EXAMPLE.com")
        );
        assert_eq!(h("username", "\u{212A}im"), h("username", "kim"));
    }

    fn keyed(line: u64, value: &str) -> KeyedRow {
        KeyedRow {
            line,
            hash: hash_key("user_email", value),
            key: UserKey {
                field: "user_email",
                value: value.to_string(),
            },
            col: 0,
            column: Arc::from("Email"),
            valid: line.is_multiple_of(2),
        }
    }

    #[test]
    fn a_group_names_the_first_few_others_and_how_many_more() {
        let mut rows: Vec<KeyedRow> = (2..12).map(|l| keyed(l, "A@x.org")).collect();
        rows.push(keyed(20, "b@x.org"));
        rows.push(keyed(21, " B@X.org"));
        rows.push(keyed(22, "alone@x.org"));
        let dups = group(rows);
        assert_eq!(dups.rows(), 12);
        assert_eq!(dups.valid_rows(), 6);
        assert!(dups.get(22).is_none() && dups.get(1).is_none());
        let text = |l| dups.get(l).unwrap().message;
        assert!(text(2).starts_with("the same user is also on rows 3, 4, 5, 6, 7 and 4 more ("));
        assert!(text(5).starts_with("the same user is also on rows 2, 3, 4, 6, 7 and 4 more ("));
        assert!(text(11).starts_with("the same user is also on rows 2, 3, 4, 5, 6 and 4 more ("));
        assert!(text(21).starts_with("the same user is also on row 20 ("));
        assert_eq!(dups.get(21).unwrap().column, "Email");
    }

    #[test]
    fn repeated_hashes_are_found_across_runs_set_aside_on_disk() {
        let mut keys = KeyCollector {
            run_len: 4,
            ..KeyCollector::default()
        };
        for h in [5, 1, 9, 5, 3, 1, 7, 2, 8, 9, 10, 9] {
            keys.add_hash(h);
        }
        assert_eq!(keys.runs.len(), 3, "three full runs went to disk");
        assert_eq!(keys.repeated().unwrap(), vec![1, 5, 9]);
        let mut small = KeyCollector::default();
        for h in [3, 2, 3, 4, 3, 4] {
            small.add_hash(h);
        }
        assert!(small.runs.is_empty());
        assert_eq!(small.repeated().unwrap(), vec![3, 4]);
    }
}
