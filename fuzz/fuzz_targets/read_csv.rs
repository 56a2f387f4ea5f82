//! Delimited text under every delimiter: parsing and delimiter detection never panic, and rows
//! are numbered upwards.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = bulkedit::read::detect_delimiter(&String::from_utf8_lossy(data));
    for d in [b',', b';', b'\t', b'|'] {
        let mut last = 0;
        for row in bulkedit::read::parse_text(data, d).into_iter().flatten() {
            assert!(row.line > last, "row numbers go up");
            last = row.line;
        }
    }
});
