//! Keys that name the same user on more than one row. Every valid row's key is kept as one
//! 8-byte hash ([`KeyCollector`]), so memory stays flat however long the file. Repeated hashes
//! are only candidates: only when there are some is the file read again ([`reread_keys`]), and
//! the keys of the rows with those hashes compared exactly. The answer, [`Duplicates`], says by
//! row number what to report.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::Path;

use rayon::prelude::*;

use super::input::open_input;
use crate::error::Error;
use crate::platform::{Edit, Keep, Options};
use crate::rules::FieldError;

/// The hash of a key as `UserKey::normalized` spells it, without building that string for
/// the usual ASCII key.
#[inline]
pub fn key_hash(edit: &Edit) -> u64 {
    let mut h = rustc_hash::FxHasher::default();
    edit.key.field.hash(&mut h);
    let value = crate::rules::trim(&edit.key.value);
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

/// Collects the keys of valid rows as one 8-byte hash a row, then finds the rows whose keys
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

/// Rows that name a user another row names too, with the error to report on each.
#[derive(Default, Debug)]
pub struct Duplicates {
    pub by_line: HashMap<u64, FieldError>,
}

impl Duplicates {
    pub fn get(&self, line: u64) -> Option<&FieldError> {
        self.by_line.get(&line)
    }
    pub fn is_empty(&self) -> bool {
        self.by_line.is_empty()
    }
}

impl KeyCollector {
    pub fn add(&mut self, edit: &Edit) {
        self.add_hash(key_hash(edit));
    }

    /// A key already hashed with [`key_hash`].
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
        reread: impl FnOnce(&(dyn Fn(&Edit) -> bool + Sync)) -> Result<Vec<KeyedRow>, Error>,
    ) -> Result<Duplicates, Error> {
        let candidates = self.repeated().map_err(|e| {
            Error::usage(format!(
                "cannot keep the keys aside in a temporary file to find duplicates: {e}"
            ))
        })?;
        if candidates.is_empty() {
            return Ok(Duplicates::default());
        }
        let wanted = |edit: &Edit| candidates.binary_search(&key_hash(edit)).is_ok();
        let rows = reread(&wanted)?;
        let mut groups: HashMap<String, Vec<&KeyedRow>> = HashMap::new();
        for row in &rows {
            groups
                .entry(row.edit.key.normalized())
                .or_default()
                .push(row);
        }
        let mut dups = Duplicates::default();
        for members in groups.values().filter(|m| m.len() > 1) {
            for row in members {
                dups.by_line.insert(row.line, duplicate_error(row, members));
            }
        }
        Ok(dups)
    }
}

/// The error reported on `row`, one of `members`, which all name the same user: the other
/// rows (the first few, and how many more).
fn duplicate_error(row: &KeyedRow, members: &[&KeyedRow]) -> FieldError {
    // Only the first few others are named: a key on 50,000 rows costs each row five look-ups,
    // not 50,000 (which made finding duplicates quadratic in the rows of one key).
    let shown: Vec<String> = members
        .iter()
        .map(|m| m.line)
        .filter(|l| *l != row.line)
        .take(5)
        .map(|l| l.to_string())
        .collect();
    let others = members.len() - 1;
    let more = others.saturating_sub(5);
    let rows_text = if more > 0 {
        format!("{} and {more} more", shown.join(", "))
    } else {
        shown.join(", ")
    };
    let column = row
        .key_col
        .as_ref()
        .map(|c| c.1.clone())
        .unwrap_or_else(|| row.edit.key.field.to_string());
    FieldError::new(
        row.key_col.as_ref().map(|c| c.0),
        column,
        format!(
            "the same user is also on row{} {rows_text} (nothing is sent for a user named twice; keep one row)",
            if others == 1 { "" } else { "s" }
        ),
    )
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

/// A valid row read again to compare its key exactly.
pub struct KeyedRow {
    pub line: u64,
    pub edit: Edit,
    /// The column (index and header) that holds the key.
    pub key_col: Option<(usize, String)>,
}

/// Reads `path` again and returns the valid rows whose edits are `wanted`, with their edits and
/// the column (index and header) that holds their key. Rows are checked on every core, in
/// chunks, as the first reading checked them.
pub fn reread_keys(
    path: &Path,
    platform_name: &str,
    sheet: Option<&str>,
    options: &Options,
    wanted: &(dyn Fn(&Edit) -> bool + Sync),
) -> Result<Vec<KeyedRow>, Error> {
    let input = open_input(path, Some(platform_name), sheet, options)?;
    let (platform, layout) = (input.platform.as_ref(), &input.layout);
    let key_col = |edit: &Edit| {
        platform
            .fields()
            .iter()
            .position(|f| f.name == edit.key.field)
            .and_then(|f| layout.field_col[f])
            .map(|c| (c, layout.headers[c].clone()))
    };
    let mut out = Vec::new();
    for chunk in super::chunks(input.sheet.rows) {
        let chunk = chunk?;
        out.par_extend(chunk.par_iter().with_min_len(256).filter_map(|row| {
            let edit = super::check_row_keeping(platform, layout, row, Keep::VerdictOnly)
                .ok()
                .filter(|e| wanted(e))?;
            Some(KeyedRow {
                line: row.line,
                key_col: key_col(&edit),
                edit,
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
