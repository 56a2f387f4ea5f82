//! The shared field rules on any text.
#![no_main]
use bulkedit::rules::*;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if is_valid_email(text) {
        assert!(text.len() <= 254 && text.contains('@'));
    }
    let _ = check_email(text);
    let _ = check_text(text, MAX_TEXT);
    let _ = parse_bool(text);
    if let Some(n) = parse_whole(text) {
        assert_eq!(parse_whole(&n.to_string()), Some(n));
    }
    let _ = split_list(text);
    if check_path_id(text).is_ok() {
        assert!(!text.contains('/') && !text.contains('?') && !text.contains('#'));
    }
    let _ = normalize_header(text);
});
