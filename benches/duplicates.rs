//! Finding duplicate keys stays linear: 50,000 rows naming one user take no longer (within
//! 2x) than 50,000 rows naming 50,000 users. `cargo bench --bench duplicates`.
//!
//! What is measured is the work on keys: hashing, finding repeated hashes and grouping the rows
//! read again. The re-reading itself is the file's, so the rows it would give are made ready
//! before each measured run; a duplicate's error is worded as its report line is written, the
//! same few words for any row however many share its key (see the unit tests of
//! `check::duplicates`).

use std::sync::Arc;

use bulkedit::check::{KeyCollector, KeyedRow};
use bulkedit::platform::{Changes, Edit, Keep, UserKey};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};

const ROWS: u64 = 50_000;

fn edit(value: String) -> Edit {
    Edit {
        key: UserKey {
            field: "user_email",
            value,
        },
        changes: Changes::new(Keep::VerdictOnly),
        plan: None,
    }
}

/// The rows of a file whose row `i` names `key(i)`, as the first pass sees them.
fn rows(key: impl Fn(u64) -> String) -> Vec<(u64, Edit)> {
    (0..ROWS).map(|i| (i + 2, edit(key(i)))).collect()
}

/// What reading the file again gives: every row, as `reread_keys` makes them.
fn reread(rows: &[(u64, Edit)]) -> Vec<KeyedRow> {
    let column: Arc<str> = Arc::from("Email");
    rows.iter()
        .map(|(line, e)| KeyedRow {
            line: *line,
            hash: bulkedit::check::key_hash(e),
            key: e.key.clone(),
            col: 0,
            column: column.clone(),
            valid: true,
        })
        .collect()
}

/// Finds the duplicates; returns how many rows are duplicates, and the rows read again when
/// they were not needed (so that freeing them is not measured either).
fn find(rows: &[(u64, Edit)], again: Vec<KeyedRow>) -> (usize, Option<Vec<KeyedRow>>) {
    let mut keys = KeyCollector::default();
    for (_, e) in rows {
        keys.add(e);
    }
    let mut again = Some(again);
    let dups = keys
        .duplicates(|wanted| {
            let rows = again.take().expect("read again once");
            Ok(rows.into_iter().filter(|r| wanted(r.hash)).collect())
        })
        .expect("no temporary file needed");
    (dups.rows(), again)
}

fn duplicates(c: &mut Criterion) {
    let mut group = c.benchmark_group("duplicates");
    group.sample_size(10);
    let distinct = rows(|i| format!("user{i:05}@example.com"));
    let one = rows(|_| "user00001@example.com".to_string());
    // Half the rows in pairs, as a sheet pasted twice by mistake.
    let pairs = rows(|i| format!("user{:05}@example.com", i / 2));
    assert_eq!(find(&distinct, reread(&distinct)).0, 0);
    assert_eq!(find(&one, reread(&one)).0, ROWS as usize);
    assert_eq!(find(&pairs, reread(&pairs)).0, ROWS as usize);
    for (name, rows) in [
        ("50000 distinct keys", &distinct),
        ("50000 copies of one key", &one),
        ("25000 keys twice each", &pairs),
    ] {
        group.bench_function(name, |b| {
            b.iter_batched(
                || reread(rows),
                |again| find(rows, again),
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, duplicates);
criterion_main!(benches);
