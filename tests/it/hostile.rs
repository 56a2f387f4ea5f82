//! Hostile and broken input (the files in tests/data/hostile/, made by make.py there): each gets exit
//! 2 with a message naming the file and what is wrong, or a verdict per row; never a panic, and
//! never a request for a row bulkedit did not understand.

use std::path::PathBuf;

use crate::common::*;
use bulkedit::sandbox::{Sandbox, SandboxConfig};

fn hostile(name: &str) -> PathBuf {
    root().join("tests/data/hostile").join(name)
}

/// What `validate` must say about a file: its exit code, a piece of its stderr, and for exit 0
/// or 1 the status of each row.
struct Case {
    file: &'static str,
    code: i32,
    says: &'static str,
    rows: &'static [(&'static str, &'static str)],
}

const CASES: &[Case] = &[
    Case { file: "empty.csv", code: 2, says: "there is no header row", rows: &[] },
    Case { file: "header-only.csv", code: 0, says: "no data rows: nothing to do", rows: &[] },
    Case { file: "garbage.csv", code: 2, says: "is not a text file or spreadsheet", rows: &[] },
    Case { file: "nul-early.csv", code: 2, says: "it contains NUL bytes", rows: &[] },
    Case { file: "truncated.xlsx", code: 2, says: "the file may be truncated or damaged", rows: &[] },
    // Found by the read_file fuzzer: calamine panics on it; bulkedit reports it.
    Case { file: "damaged-ole.xls", code: 2, says: "cannot be read as a workbook: the file is damaged", rows: &[] },
    Case { file: "duplicate-headers.csv", code: 2, says: "columns 'Department' and 'user_department' both give user_department", rows: &[] },
    // A title above the header is passed over and named; the rows keep Excel's numbers.
    Case { file: "title-row.csv", code: 0, says: "row 1 ('Users to update in Q3') is above the header (row 2) and taken for a title: not read as users", rows: &[("3", "valid")] },
    Case { file: "csv-named.xlsx", code: 0, says: "is named .xlsx but holds text", rows: &[("2", "valid")] },
    Case {
        file: "xlsx-named.csv",
        code: 0,
        says: "is named .csv but is a XLSX workbook",
        rows: &[("2", "valid"), ("3", "valid"), ("4", "valid"), ("5", "valid"), ("6", "valid"), ("7", "valid"), ("8", "valid"), ("9", "valid"), ("10", "valid"), ("11", "valid")],
    },
    Case { file: "mixed-encodings.csv", code: 0, says: "Windows-1252", rows: &[("2", "valid"), ("3", "valid")] },
    Case { file: "huge-cell.csv", code: 1, says: "1048576 characters is too long (at most 255)", rows: &[("2", "invalid")] },
    Case { file: "wide.csv", code: 0, says: "columns 'extra0', 'extra1', 'extra2', 'extra3', 'extra4' and 9994 more are not fields of this platform; ignored", rows: &[("2", "valid")] },
    Case { file: "ragged.csv", code: 1, says: "has 4 cells but the header has 3 columns", rows: &[("2", "valid"), ("3", "invalid"), ("4", "valid")] },
    Case { file: "formula-errors.xlsx", code: 1, says: "holds the formula error #REF!", rows: &[("2", "valid"), ("3", "invalid"), ("4", "invalid")] },
    Case { file: "merged-cells.xlsx", code: 1, says: "user_email: required", rows: &[("2", "valid"), ("3", "valid"), ("4", "invalid")] },
];

#[test]
fn every_hostile_file_gets_a_clear_verdict_and_never_a_panic() {
    let dir = tempdir();
    for case in CASES {
        let report = dir.path().join(format!("{}.report.csv", case.file));
        let out = bulkedit()
            .arg("validate")
            .arg(hostile(case.file))
            .arg("--report")
            .arg(&report)
            .output()
            .unwrap();
        let err = stderr_of(&out);
        assert_eq!(out.status.code(), Some(case.code), "{}: {err}", case.file);
        assert!(
            err.contains(case.says),
            "{}: expected '{}' in:\n{err}",
            case.file,
            case.says
        );
        assert!(!err.contains("panicked"), "{}: {err}", case.file);
        if case.code == 2 {
            assert!(
                err.contains(case.file),
                "{}: the message names the file: {err}",
                case.file
            );
            assert!(!report.exists());
        } else {
            let rows = read_report(&report);
            assert_eq!(statuses(&rows), pairs(case.rows), "{}", case.file);
            // A file that is not UTF-8 is decoded whole in its legacy encoding, never a mix
            // decided cell by cell: the pair that happens to be UTF-8 is two characters.
            if case.file == "mixed-encodings.csv" {
                assert_eq!(rows[0]["user_first_name"], "ZoÃ«");
                assert_eq!(rows[1]["user_first_name"], "José");
            }
        }
    }
}

#[test]
fn a_nul_byte_deep_in_a_file_makes_only_its_row_invalid() {
    let dir = tempdir();
    let report = dir.path().join("r.csv");
    let out = bulkedit()
        .arg("validate")
        .arg(hostile("nul-late.csv"))
        .arg("--report")
        .arg(&report)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let rows = read_report(&report);
    assert_eq!(rows.len(), 3001);
    let bad: Vec<_> = rows.iter().filter(|r| r["status"] == "invalid").collect();
    assert_eq!(bad.len(), 1);
    assert_eq!(bad[0]["row"], "3002");
    assert_eq!(
        bad[0]["error"],
        "user_first_name: contains a control character (remove it)"
    );
}

#[test]
fn nothing_is_sent_for_a_file_or_a_row_bulkedit_did_not_understand() {
    let sb = Sandbox::start(SandboxConfig {
        users: 5000,
        ..SandboxConfig::default()
    })
    .unwrap();
    let dir = tempdir();
    let before = sb.state();
    for case in CASES {
        let seen_before = sb.requests().len();
        let out = bulkedit()
            .arg("apply")
            .arg(hostile(case.file))
            .args([
                "--platform",
                "hub",
                "--url",
                sb.url_for("hub").as_str(),
                "--rate",
                "unlimited",
                "--report",
            ])
            .arg(dir.path().join("r.csv"))
            .env("BULKEDIT_TOKEN", "sandbox-tenant/sandbox-token")
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(case.code),
            "{}: {}",
            case.file,
            stderr_of(&out)
        );
        if case.code == 2 {
            assert_eq!(
                sb.requests().len(),
                seen_before,
                "{}: not one request",
                case.file
            );
        }
    }
    // The rows that were invalid left their users as they were: no formula error, NUL or
    // megabyte of text reached any user.
    let after = sb.state();
    let users = after["hub"].as_array().unwrap();
    for u in users {
        let dept = u["user_department"].as_str().unwrap();
        let name = u["user_first_name"].as_str().unwrap();
        assert!(!dept.starts_with('#'), "{u}");
        assert!(
            !name.contains('\0') && name.len() < 256 && !name.contains('\u{FFFD}'),
            "{u}"
        );
    }
    assert_eq!(
        users[3000], before["hub"][3000],
        "user03001's only row was invalid"
    );
}
