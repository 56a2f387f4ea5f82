//! Any bytes as a file, under names that do and do not match their content: format sniffing,
//! encodings, and calamine's readers for XLSX, XLSB, XLS and ODS.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = std::env::temp_dir().join(format!("bulkedit-fuzz-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    for name in ["input.csv", "input.xlsx"] {
        let path = dir.join(name);
        if std::fs::write(&path, data).is_err() {
            return;
        }
        if let Ok(sheet) = bulkedit::read::open(&path, None) {
            for row in sheet.rows.take(10_000) {
                if row.is_err() {
                    break;
                }
            }
        }
    }
});
