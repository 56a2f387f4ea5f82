//! Properties of the reader and the validators: what they accept round-trips unchanged through
//! a real CSV file, no input makes them panic, and the e-mail rule agrees with the WHATWG
//! definition on a corpus of 648 addresses written by other people.

use std::io::Write;

use crate::common;
use bulkedit::check;
use bulkedit::platform::columns::map_headers;
use bulkedit::platform::{self, Options};
use bulkedit::read::{self, Row};
use bulkedit::rules;
use proptest::prelude::*;
use serde_json::Value;

/// Writes one header and one data row as CSV to a real file, reads it back with the reader.
fn through_a_file(headers: &[&str], cells: &[String]) -> (Vec<String>, Row) {
    let dir = common::tempdir();
    let path = dir.path().join("p.csv");
    {
        let mut w = csv::Writer::from_path(&path).unwrap();
        w.write_record(headers).unwrap();
        w.write_record(cells).unwrap();
        w.flush().unwrap();
    }
    let sheet = read::open(&path, None).unwrap();
    let rows: Vec<Row> = sheet
        .rows
        .map(|r| r.unwrap())
        .filter(|r| !r.is_blank())
        .collect();
    assert_eq!(rows.len(), 1, "{cells:?}");
    (sheet.headers, rows.into_iter().next().unwrap())
}

fn hub() -> Box<dyn platform::Platform> {
    platform::by_name("hub", &Options::default()).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// Any text the dictionary accepts reaches the edit exactly as written (trimmed), after a
    /// trip through a CSV file.
    #[test]
    fn accepted_text_round_trips_through_a_file(name in "\\PC{0,300}", job in "[ -~]{0,40}") {
        let headers = ["user_email", "user_first_name", "user_job_title"];
        let cells = vec!["user00001@example.com".to_string(), name.clone(), job.clone()];
        let (header_row, row) = through_a_file(&headers, &cells);
        let platform = hub();
        let layout = map_headers(&header_row, platform.fields());
        let result = check::check_row(platform.as_ref(), &layout, &row);
        let trimmed = name.trim();
        let name_ok = rules::check_text(trimmed, 255).is_ok();
        match result {
            Ok(edit) => {
                prop_assert!(name_ok);
                let got = edit.changes.get("user_first_name").and_then(Value::as_str);
                if trimmed.is_empty() {
                    prop_assert_eq!(got, None);
                } else if trimmed.eq_ignore_ascii_case("#clear") {
                    prop_assert_eq!(got, Some(""));
                } else {
                    prop_assert_eq!(got, Some(trimmed));
                }
                let job = job.trim();
                if !job.is_empty() && !job.eq_ignore_ascii_case("#clear") {
                    prop_assert_eq!(edit.changes.get("user_job_title").and_then(Value::as_str), Some(job));
                }
            }
            Err(errors) => {
                prop_assert!(!name_ok, "rejected valid text: {errors:?}");
                prop_assert!(errors.iter().all(|e| e.column == "user_first_name"), "{errors:?}");
            }
        }
    }

    /// Whole numbers read back as themselves, with or without a zero fraction.
    #[test]
    fn whole_numbers_round_trip(n in any::<i64>(), zeros in 1usize..4) {
        prop_assert_eq!(rules::parse_whole(&n.to_string()), Some(n));
        prop_assert_eq!(rules::parse_whole(&format!("{n}.{}", "0".repeat(zeros))), Some(n));
        prop_assert_eq!(rules::parse_whole(&format!("{n}.5")), None);
    }

    /// Hub roles given as ids, names and categories become the same set whatever their order.
    #[test]
    fn role_lists_are_sets(mut roles in proptest::collection::vec((prop::sample::select(vec![2u32, 3, 4, 5, 6, 8, 11]), 0u32..5), 1..6)) {
        let platform = hub();
        let text = |rs: &[(u32, u32)]| rs.iter().map(|(r, c)| format!("{r}:{c}")).collect::<Vec<_>>().join("; ");
        let headers: Vec<String> = ["user_email", "user_roles"].iter().map(|s| s.to_string()).collect();
        let layout = map_headers(&headers, platform.fields());
        let row = |t: String| Row { line: 2, cells: vec!["a@example.com".to_string(), t].into(), bad_cells: vec![] };
        let a = check::check_row(platform.as_ref(), &layout, &row(text(&roles))).unwrap();
        roles.reverse();
        let b = check::check_row(platform.as_ref(), &layout, &row(text(&roles))).unwrap();
        prop_assert_eq!(a.changes.get("user_roles"), b.changes.get("user_roles"));
    }

    /// No bytes make the CSV reader panic, under any delimiter.
    #[test]
    fn no_bytes_panic_the_reader(bytes in proptest::collection::vec(any::<u8>(), 0..2000), d in prop::sample::select(vec![b',', b';', b'\t', b'|'])) {
        for row in read::parse_text(&bytes, d) {
            let _ = row;
        }
        let _ = read::detect_delimiter(&String::from_utf8_lossy(&bytes));
    }

    /// `validate` reads UTF-8 text with a fast reader, in blocks on every core, and hands
    /// whatever that reader does not take to the full parser: together they must read
    /// exactly what the full parser alone reads, wherever the blocks are cut.
    #[test]
    fn the_fast_reader_reads_what_the_full_parser_reads(
        bytes in proptest::collection::vec(prop_oneof![
            // Runs of text long enough for the reader's eight-bytes-at-a-time scan…
            "[a-zé \u{a0}]{1,20}".prop_map(String::into_bytes),
            // …and every byte that means something, one at a time.
            prop::sample::select(b" ,,;\"\"\n\n\r\t".iter().copied().chain([0xc3, 0xa9, 0xff]).collect::<Vec<u8>>()).prop_map(|b| vec![b]),
        ], 0..80).prop_map(|parts| parts.concat()),
        d in prop::sample::select(vec![b',', b';', b'\t']),
        mut cuts in proptest::collection::vec(0usize..1000, 0..4),
    ) {
        cuts.sort_unstable();
        // Rows, or the error that ends them (an unclosed quote), which both must name alike.
        let full: Vec<Result<Row, String>> = read::parse_text(&bytes, d).into_iter().map(|r| r.map_err(|e| e.to_string())).collect();
        let fast: Vec<Result<Row, String>> = read::parse_text_in_blocks(&bytes, d, &cuts).into_iter().map(|r| r.map_err(|e| e.to_string())).collect();
        prop_assert_eq!(fast, full, "{:?}", String::from_utf8_lossy(&bytes));
    }

    /// A record the fast reader calls canonical is copied into the report as it stands, so
    /// its bytes must be exactly what the report writer would make of its cells in a report
    /// separated by the same delimiter.
    #[test]
    fn canonical_records_are_what_the_report_would_write(
        bytes in proptest::collection::vec(prop::sample::select(
            b"aab ,,;;\t\"\"\n\r".iter().copied().chain([0xc3, 0xa9]).collect::<Vec<u8>>()), 0..200),
        d in prop::sample::select(vec![b',', b';', b'\t', b'|']),
    ) {
        let mut records = read::records::Records::new(&bytes, d, true);
        let mut row = Row::default();
        let dialect = bulkedit::report::CsvDialect { delimiter: d, ..bulkedit::report::CsvDialect::PLAIN };
        while let read::records::Next::Record(info) = records.next_into(&mut row) {
            if info.canonical {
                let mut line = Vec::new();
                bulkedit::report::push_csv_record(&mut line, row.cells.iter(), &dialect);
                line.pop();
                prop_assert_eq!(String::from_utf8_lossy(&bytes[info.start..info.end]), String::from_utf8_lossy(&line));
            }
        }
    }

    /// No cells make any platform's validator panic, and a rejected row always says why.
    #[test]
    fn no_cells_panic_a_validator(cells in proptest::collection::vec("\\PC{0,20}|#clear|[0-9.]{1,6}|[a-z]{1,8}@[a-z]{1,8}\\.com", 0..14)) {
        for name in platform::NAMES {
            let p = platform::by_name(name, &Options::default()).unwrap();
            let headers: Vec<String> = p.fields().iter().map(|f| if f.numbered { format!("{}1", f.name) } else { f.name.to_string() }).collect();
            let layout = map_headers(&headers, p.fields());
            let row = Row { line: 2, cells: cells.clone().into(), bad_cells: vec![] };
            if let Err(errors) = check::check_row(p.as_ref(), &layout, &row) {
                prop_assert!(!errors.is_empty());
            }
        }
    }
}

#[test]
fn the_email_rule_agrees_with_whatwg_and_rfc_5321_lengths_on_the_isemail_corpus() {
    let text = std::fs::read_to_string(common::corpus("email-isemail/emails.jsonl")).unwrap();
    let mut checked = 0;
    let mut disagreements = Vec::new();
    for line in text.lines() {
        let case: Value = serde_json::from_str(line).unwrap();
        let address = case["address"].as_str().unwrap();
        let local_len = address
            .rsplit_once('@')
            .map_or(address.len(), |(l, _)| l.len());
        let expected =
            case["html_spec_ok"].as_bool().unwrap() && local_len <= 64 && address.len() <= 254;
        if rules::is_valid_email(address) != expected {
            disagreements.push(format!("{address:?} ({})", case["source"]));
        }
        checked += 1;
    }
    assert_eq!(checked, 648);
    assert!(disagreements.is_empty(), "{disagreements:#?}");
}

#[test]
fn a_report_written_with_every_status_reads_back_as_written() {
    // The report is itself input: write one, read it through the reader, compare cell by cell.
    let dir = common::tempdir();
    let path = dir.path().join("in.csv");
    let mut f = std::fs::File::create(&path).unwrap();
    writeln!(f, "user_email,user_job_title").unwrap();
    writeln!(f, "a@example.com,\"=HYPERLINK(\"\"x\"\")\"").unwrap();
    writeln!(f, "b@example.com,\"multi\nline\"").unwrap();
    drop(f);
    let report = dir.path().join("r.csv");
    let out = common::bulkedit()
        .arg("validate")
        .arg(&path)
        .arg("--report")
        .arg(&report)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let rows = common::rows_of(&report);
    assert_eq!(rows[1]["cells"][7], "=HYPERLINK(\"x\")");
    assert_eq!(rows[2]["cells"][7], "multi\nline");
    assert_eq!(
        rows[2]["row"], 3,
        "a quoted line break does not shift the report's rows either"
    );
}
