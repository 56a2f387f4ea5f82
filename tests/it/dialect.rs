//! The CSV files a run writes open in Excel as the input did: the report, its failures file
//! and the undo file use the input's delimiter and line ends, in UTF-8 with a BOM when the
//! input had one or was not UTF-8. Files are read here as Excel reads them: decoded as UTF-8
//! because of the BOM, and split on the list separator the test expects, not one detected.

use std::path::Path;

use crate::common::*;
use bulkedit::sandbox::{Sandbox, SandboxConfig};
use serde_json::Value;

const HUB_ENV: [(&str, &str); 1] = [("BULKEDIT_TOKEN", "sandbox-tenant/sandbox-token")];
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// What a European Excel saves as "CSV (semicolon delimited)": `;`, CR LF, Windows-1252.
fn windows_1252(text: &str) -> Vec<u8> {
    let (bytes, _, lossy) = encoding_rs::WINDOWS_1252.encode(text);
    assert!(!lossy, "the test's text fits Windows-1252");
    bytes.into_owned()
}

fn apply(sb: &Sandbox, file: &Path, report: &Path, extra: &[&str]) -> std::process::Output {
    bulkedit()
        .arg("apply")
        .arg(file)
        .args(["--platform", "hub", "--url"])
        .arg(sb.url_for("hub").as_str())
        .args(["--rate", "unlimited", "--yes", "--report"])
        .arg(report)
        .args(extra)
        .envs(HUB_ENV)
        .output()
        .unwrap()
}

/// A file's cells as Excel shows them: a UTF-8 BOM required (without one Excel would read the
/// bytes in the machine's code page), lines ended as `crlf` says, cells split on `delimiter`.
fn as_excel_opens(path: &Path, delimiter: u8, crlf: bool) -> Vec<Vec<String>> {
    let bytes = std::fs::read(path).unwrap();
    let text = bytes
        .strip_prefix(BOM)
        .unwrap_or_else(|| panic!("{} starts without a UTF-8 BOM", path.display()));
    let text = std::str::from_utf8(text).expect("UTF-8");
    assert_line_ends(path, text, crlf);
    csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(false)
        .from_reader(text.as_bytes())
        .records()
        .map(|r| r.unwrap().iter().map(str::to_string).collect())
        .collect()
}

/// Every line ends in CR LF (`crlf`), or in LF with no CR anywhere.
fn assert_line_ends(path: &Path, text: &str, crlf: bool) {
    assert!(text.ends_with('\n'), "{}", path.display());
    let lf = text.matches('\n').count();
    let crlfs = text.matches("\r\n").count();
    if crlf {
        assert_eq!(crlfs, lf, "{}: every line ends in CR LF", path.display());
    } else {
        assert!(!text.contains('\r'), "{}: lines end in LF", path.display());
    }
}

/// The cell of `column` in each line after the header.
fn column(lines: &[Vec<String>], name: &str) -> Vec<String> {
    let i = lines[0].iter().position(|h| h == name).unwrap();
    lines[1..].iter().map(|l| l[i].clone()).collect()
}

fn hub_user<'a>(state: &'a Value, email: &str) -> &'a Value {
    state["hub"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["user_email"] == email)
        .unwrap()
}

const EUROPEAN: &str = "Email;First Name;Last Name;Department\r\n\
                        user00001@example.com;José;Müller;R&D €\r\n\
                        user00002@example.com;Zoë;Ølberg;\"Sales; EMEA\"\r\n\
                        nobody@example.com;Zoë;Ølberg;Ventes\r\n\
                        not-an-email;Françoise;Þór;Ventes\r\n";

#[test]
fn a_semicolon_windows_1252_input_gets_a_semicolon_utf8_report_with_a_bom_and_crlf() {
    let sb = Sandbox::start(SandboxConfig::default()).unwrap();
    let dir = tempdir();
    let input = write(dir.path(), "users.csv", windows_1252(EUROPEAN));
    let report = dir.path().join("users-report.csv");
    let out = apply(&sb, &input, &report, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));

    let lines = as_excel_opens(&report, b';', true);
    assert_eq!(
        lines[0],
        [
            "row",
            "status",
            "error",
            "changes",
            "http_status",
            "attempts",
            "Email",
            "First Name",
            "Last Name",
            "Department"
        ]
    );
    assert!(lines.iter().all(|l| l.len() == 10), "{lines:?}");
    assert_eq!(
        column(&lines, "status"),
        ["updated", "updated", "not-found", "invalid"]
    );
    assert_eq!(
        column(&lines, "First Name"),
        ["José", "Zoë", "Zoë", "Françoise"]
    );
    assert_eq!(
        column(&lines, "Last Name"),
        ["Müller", "Ølberg", "Ølberg", "Þór"]
    );
    assert_eq!(
        column(&lines, "Department"),
        ["R&D €", "Sales; EMEA", "Ventes", "Ventes"]
    );
    let changes = column(&lines, "changes");
    assert!(changes[0].contains("→ 'José'"), "{changes:?}");
    assert!(changes[1].contains("→ 'Sales; EMEA'"), "{changes:?}");

    // The server got the names right too.
    let state = sb.state();
    let jose = hub_user(&state, "user00001@example.com");
    assert_eq!(jose["user_first_name"], "José");
    assert_eq!(jose["user_department"], "R&D €");

    let failures = as_excel_opens(&dir.path().join("users-report-failures.csv"), b';', true);
    assert_eq!(failures[0], lines[0]);
    assert_eq!(column(&failures, "row"), ["4", "5"]);
    assert_eq!(column(&failures, "First Name"), ["Zoë", "Françoise"]);
    assert_eq!(column(&failures, "Last Name"), ["Ølberg", "Þór"]);
}

#[test]
fn a_plain_utf8_comma_input_still_gets_a_plain_report() {
    let sb = Sandbox::start(SandboxConfig::default()).unwrap();
    let dir = tempdir();
    let input = write(
        dir.path(),
        "users.csv",
        "Email,First Name,Department\n\
         user00001@example.com,José,\"R&D; Lab\"\n\
         nobody@example.com,Zoë,Ventes\n",
    );
    let report = dir.path().join("users-report.csv");
    let out = apply(&sb, &input, &report, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    for path in [&report, &dir.path().join("users-report-failures.csv")] {
        let text = std::fs::read_to_string(path).unwrap();
        assert!(
            text.starts_with("row,status,error,changes,http_status,attempts,Email,"),
            "no BOM, commas: {text}"
        );
        assert_line_ends(path, &text, false);
    }
    let text = std::fs::read_to_string(&report).unwrap();
    assert!(text.contains(",José,R&D; Lab\n"), "{text}");
}

/// What Excel saves as "Unicode Text": UTF-16LE with a BOM, tab-separated, CR LF.
#[test]
fn a_tab_separated_utf16_input_gets_a_tab_separated_utf8_report_with_a_bom() {
    let dir = tempdir();
    let text = "Email\tFirst Name\tDepartment\r\n\
                user00001@example.com\tJosé\tŁódź, R&D\r\n\
                broken\tŁukasz\t€\r\n";
    let mut bytes = vec![0xFF, 0xFE];
    bytes.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
    let input = write(dir.path(), "users.txt", bytes);
    let out = bulkedit()
        .args(["validate", "--platform", "hub"])
        .arg(&input)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    let lines = as_excel_opens(&dir.path().join("users-report.csv"), b'\t', true);
    assert_eq!(column(&lines, "status"), ["valid", "invalid"]);
    assert_eq!(column(&lines, "First Name"), ["José", "Łukasz"]);
    assert_eq!(column(&lines, "Department"), ["Łódź, R&D", "€"]);
    let failures = as_excel_opens(&dir.path().join("users-report-failures.csv"), b'\t', true);
    assert_eq!(column(&failures, "First Name"), ["Łukasz"]);
}

/// `validate` copies a valid row's record into the report as it stands when it can: in a
/// `;` file that is every record spelled as a `;` report spells it.
#[test]
fn validate_of_a_semicolon_utf8_file_copies_its_records_into_a_semicolon_report() {
    let dir = tempdir();
    let mut text = String::from("\u{feff}Email;First Name;Department\n");
    for i in 1..=2000 {
        text.push_str(&format!("user{i:05}@example.com;Zoë {i};\"R&D; Lab\"\n"));
    }
    text.push_str("user02001@example.com;\"Quote \"\"Q\"\"\";a, b\n");
    let input = write(dir.path(), "users.csv", &text);
    let out = bulkedit()
        .args(["validate", "--platform", "hub"])
        .arg(&input)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let report = dir.path().join("users-report.csv");
    let lines = as_excel_opens(&report, b';', false);
    assert_eq!(lines.len(), 2002);
    assert_eq!(
        lines[1][6..],
        ["user00001@example.com", "Zoë 1", "R&D; Lab"]
    );
    assert_eq!(
        lines[2001][6..],
        ["user02001@example.com", "Quote \"Q\"", "a, b"]
    );
    let written = std::fs::read_to_string(&report).unwrap();
    assert!(
        written.contains("\n2001;valid;;;;0;user02000@example.com;Zoë 2000;\"R&D; Lab\"\n"),
        "{written}"
    );
}

#[test]
fn a_workbooks_csv_report_is_comma_separated_with_crlf_and_a_bom() {
    let dir = tempdir();
    let input = dir.path().join("hub-clean.xlsx");
    std::fs::copy(sample("hub-clean.xlsx"), &input).unwrap();
    let out = bulkedit().arg("validate").arg(&input).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let lines = as_excel_opens(&dir.path().join("hub-clean-report.csv"), b',', true);
    assert_eq!(lines[0][..2], ["row", "status"]);
    assert!(lines[1..].iter().all(|l| l[1] == "valid"), "{lines:?}");
}

#[test]
fn the_undo_file_of_a_semicolon_input_is_semicolon_separated_and_puts_everything_back() {
    let sb = Sandbox::start(SandboxConfig::default()).unwrap();
    let before = sb.state();
    let dir = tempdir();
    let input = write(dir.path(), "users.csv", windows_1252(EUROPEAN));
    let report = dir.path().join("users-report.csv");
    apply(&sb, &input, &report, &[]);
    let undo = dir.path().join("users-report-undo.csv");
    let lines = as_excel_opens(&undo, b';', true);
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(lines.iter().all(|l| l.len() == lines[0].len()), "{lines:?}");
    assert_eq!(
        column(&lines, "user_email"),
        ["user00001@example.com", "user00002@example.com"]
    );

    let out = apply(&sb, &undo, &dir.path().join("undo-report.csv"), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let after = sb.state();
    for email in ["user00001@example.com", "user00002@example.com"] {
        let (was, is) = (hub_user(&before, email), hub_user(&after, email));
        for field in ["user_first_name", "user_last_name", "user_department"] {
            assert_eq!(is[field], was[field], "{email} {field}");
        }
    }
}

#[test]
fn a_semicolon_report_with_a_bom_that_records_writes_is_kept_aside_by_the_next_run() {
    let sb = Sandbox::start(SandboxConfig::default()).unwrap();
    let dir = tempdir();
    let input = write(dir.path(), "users.csv", windows_1252(EUROPEAN));
    let report = dir.path().join("users-report.csv");
    apply(&sb, &input, &report, &[]);
    let first = std::fs::read(&report).unwrap();
    assert!(first.starts_with(BOM));

    let out = apply(&sb, &input, &report, &[]);
    let err = stderr_of(&out);
    assert!(
        err.contains("records writes to a server: kept it as"),
        "{err}"
    );
    let kept: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_str().unwrap();
            name.starts_with("users-report-2")
                && !name.contains("-failures")
                && !name.contains("-undo")
        })
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(std::fs::read(&kept[0]).unwrap(), first);

    // A report of no writes (this run's: every row unchanged now) is simply replaced.
    let out = apply(&sb, &input, &report, &[]);
    assert!(
        !stderr_of(&out).contains("kept it as"),
        "{}",
        stderr_of(&out)
    );
}
