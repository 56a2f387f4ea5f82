//! Finding duplicate keys stays linear: 50,000 rows naming one user take no longer (within
//! 2x) than 50,000 rows naming 50,000 users. `cargo bench --bench duplicates`.

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
    }
}

/// The rows of a file whose row `i` names `key(i)`, as the first pass and the re-reading see
/// them.
fn rows(key: impl Fn(u64) -> String) -> Vec<(u64, Edit)> {
    (0..ROWS).map(|i| (i + 2, edit(key(i)))).collect()
}

fn find(rows: &[(u64, Edit)]) -> usize {
    let mut keys = KeyCollector::default();
    for (_, e) in rows {
        keys.add(e);
    }
    let dups = keys
        .duplicates(|wanted| {
            Ok(rows
                .iter()
                .filter(|(_, e)| wanted(e))
                .map(|(line, e)| KeyedRow {
                    line: *line,
                    edit: e.clone(),
                    key_col: Some((0, "Email".into())),
                })
                .collect())
        })
        .expect("no temporary file needed");
    dups.by_line.len()
}

fn duplicates(c: &mut Criterion) {
    let mut group = c.benchmark_group("duplicates");
    group.sample_size(10);
    let distinct = rows(|i| format!("user{i:05}@example.com"));
    let one = rows(|_| "user00001@example.com".to_string());
    // Half the rows in pairs, as a sheet pasted twice by mistake.
    let pairs = rows(|i| format!("user{:05}@example.com", i / 2));
    assert_eq!(find(&distinct), 0);
    assert_eq!(find(&one), ROWS as usize);
    group.bench_function("50000 distinct keys", |b| {
        b.iter_batched(|| (), |()| find(&distinct), BatchSize::SmallInput)
    });
    group.bench_function("50000 copies of one key", |b| {
        b.iter_batched(|| (), |()| find(&one), BatchSize::SmallInput)
    });
    group.bench_function("25000 keys twice each", |b| {
        b.iter_batched(|| (), |()| find(&pairs), BatchSize::SmallInput)
    });
    group.finish();
}

criterion_group!(benches, duplicates);
criterion_main!(benches);
