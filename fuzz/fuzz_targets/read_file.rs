//! Any bytes as a file, under names that do and do not match their content: format sniffing,
//! encodings, and calamine's readers for XLSX, XLSB, XLS and ODS.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // libFuzzer aborts on every panic; the panic bulkedit catches and reports (a workbook
    // reader giving up on a damaged file) must unwind, and any other still aborts.
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let libfuzzer = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !bulkedit::crash::expected() {
                libfuzzer(info);
            }
        }));
    });
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
