//! Validation throughput: the field dictionaries on generated rows, all cores (as `validate`
//! runs them) and per row on one core.

// The same allocator as the binary.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

use bulkedit::check;
use bulkedit::platform::columns::map_headers;
use bulkedit::platform::{self, Keep, Options};
use bulkedit::read::Row;

fn hub_rows(n: usize) -> (Vec<String>, Vec<Row>) {
    // The template's header: every hub field, in the order the cells below follow.
    let headers: Vec<String> = platform::by_name("hub", &Options::default())
        .expect("hub exists")
        .template()
        .headers
        .iter()
        .map(|s| s.to_string())
        .collect();
    let rows = (1..=n)
        .map(|i| Row {
            line: i as u64 + 1,
            cells: vec![
                format!("user{i:07}@example.com"),
                format!("First{i}"),
                format!("Last{i}"),
                "Automation Analyst".into(),
                "Finance".into(),
                "Accounts Payable".into(),
                "Brooklyn".into(),
                "1".into(),
                "3".into(),
                "8; 6:2".into(),
            ]
            .into(),
            bad_cells: Vec::new(),
        })
        .collect();
    (headers, rows)
}

fn bench(c: &mut Criterion) {
    let hub = platform::by_name("hub", &Options::default()).unwrap();
    let (headers, rows) = hub_rows(check::CHUNK);
    let layout = map_headers(&headers, hub.fields());
    let mut g = c.benchmark_group("validate");
    g.throughput(Throughput::Elements(rows.len() as u64));
    g.bench_with_input(
        BenchmarkId::new("hub chunk, all cores", rows.len()),
        &rows,
        |b, rows| b.iter(|| check::check_chunk(hub.as_ref(), &layout, rows)),
    );
    for (what, keep) in [
        ("hub rows, one core, edits kept (apply)", Keep::Changes),
        (
            "hub rows, one core, verdicts only (validate)",
            Keep::VerdictOnly,
        ),
    ] {
        g.bench_with_input(BenchmarkId::new(what, rows.len()), &rows, |b, rows| {
            b.iter(|| {
                rows.iter()
                    .map(|r| check::check_row_keeping(hub.as_ref(), &layout, r, keep).is_ok())
                    .filter(|ok| *ok)
                    .count()
            })
        });
    }
    g.finish();
    let emails: Vec<String> = (0..1000)
        .map(|i| format!("first.last+{i}@sub{i}.example.com"))
        .collect();
    let mut g = c.benchmark_group("email");
    g.throughput(Throughput::Elements(emails.len() as u64));
    g.bench_function("is_valid_email", |b| {
        b.iter(|| {
            emails
                .iter()
                .filter(|e| bulkedit::rules::is_valid_email(e))
                .count()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
