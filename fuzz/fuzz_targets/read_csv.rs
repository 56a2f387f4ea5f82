//! Delimited text under every delimiter: parsing and delimiter detection never panic, rows
//! are numbered upwards, and reading in blocks with the fast reader (as `validate` reads UTF-8
//! text) gives exactly the rows the full parser gives, wherever the blocks are cut.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = bulkedit::read::detect_delimiter(&String::from_utf8_lossy(data));
    // Cuts taken from the data itself, so the fuzzer can steer them.
    let cuts: Vec<usize> = data
        .iter()
        .take(4)
        .map(|&b| b as usize * data.len() / 256)
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    for d in [b',', b';', b'\t', b'|'] {
        let mut last = 0;
        let full = bulkedit::read::parse_text(data, d);
        for row in full.iter().flatten() {
            assert!(row.line > last, "row numbers go up");
            last = row.line;
        }
        let in_blocks = bulkedit::read::parse_text_in_blocks(data, d, &cuts);
        let rows = |r: Vec<Result<bulkedit::read::Row, _>>| -> Vec<_> { r.into_iter().flatten().collect() };
        assert_eq!(rows(in_blocks), rows(full), "blocks read as the full parser reads");
    }
});
