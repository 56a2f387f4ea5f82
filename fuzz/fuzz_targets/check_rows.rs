//! Whole rows through every platform's field dictionary: the first record is the header, the
//! rest are rows (cells split on U+001F, records on U+001E). Nothing panics; a rejected row
//! always says why.
#![no_main]
use bulkedit::platform::{self, Options};
use bulkedit::platform::columns::map_headers;
use bulkedit::read::Row;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let mut records = text.split('\u{1e}').map(|r| r.split('\u{1f}').map(str::to_string).collect::<Vec<_>>());
    let Some(headers) = records.next() else { return };
    let options = Options { allowed_roles: vec![101] };
    for name in platform::NAMES {
        let p = platform::by_name(name, &options).unwrap();
        let layout = map_headers(&headers, p.fields());
        let _ = p.check_layout(&layout);
        for (i, cells) in records.clone().enumerate() {
            let row = Row { line: i as u64 + 2, cells: cells.into(), bad_cells: Vec::new() };
            if let Err(errors) = bulkedit::check::check_row(p.as_ref(), &layout, &row) {
                assert!(!errors.is_empty());
            }
        }
    }
});
