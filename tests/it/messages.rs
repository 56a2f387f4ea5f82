//! Messages that point to the fix, met the way an admin meets them: a workbook whose first
//! sheet is a cover, a title above the header, a URL that says the platform (or contradicts
//! the headers), a misspelled column before any platform is known, rates a person can read,
//! and the sandbox's own word when it is stopped.

use std::path::{Path, PathBuf};

use bulkedit::sandbox::{Sandbox, SandboxConfig};

use crate::common::{bulkedit, pairs, read_report, statuses, stderr_of, tempdir, write};

/// A workbook of named sheets, each given as rows of cells (`""` leaves a cell empty).
fn workbook(dir: &Path, name: &str, sheets: &[(&str, &[&[&str]])]) -> PathBuf {
    let path = dir.join(name);
    let mut book = rust_xlsxwriter::Workbook::new();
    for (sheet_name, rows) in sheets {
        let sheet = book.add_worksheet();
        sheet.set_name(*sheet_name).unwrap();
        for (r, row) in rows.iter().enumerate() {
            for (c, cell) in row.iter().enumerate() {
                if !cell.is_empty() {
                    sheet.write_string(r as u32, c as u16, *cell).unwrap();
                }
            }
        }
    }
    book.save(&path).unwrap();
    path
}

const COVER: &[&[&str]] = &[
    &["How to fill this workbook"],
    &["One user a row on the Users sheet; leave a cell empty to keep the value."],
];
const USERS: &[&[&str]] = &[
    &["user_email", "user_department"],
    &["user00001@example.com", "Treasury"],
    &["user00002@example.com", "Audit"],
];

fn validate(file: &Path, extra: &[&str]) -> std::process::Output {
    bulkedit()
        .arg("validate")
        .arg(file)
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn a_workbook_whose_first_sheet_is_a_cover_is_read_from_the_one_sheet_with_users_saying_so() {
    let dir = tempdir();
    let book = workbook(
        dir.path(),
        "review.xlsx",
        &[("Instructions", COVER), ("Users", USERS)],
    );
    let out = validate(&book, &[]);
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("the first sheet, 'Instructions', has no header naming a user key column")
            && err.contains("read sheet 'Users'")
            && err.contains("--sheet NAME"),
        "{err}"
    );
    let report = read_report(&dir.path().join("review-report.csv"));
    assert_eq!(statuses(&report), pairs(&[("2", "valid"), ("3", "valid")]));
}

#[test]
fn a_workbook_with_users_on_two_sheets_past_a_cover_asks_which_naming_both() {
    let dir = tempdir();
    let book = workbook(
        dir.path(),
        "two.xlsx",
        &[("Cover", COVER), ("Finance", USERS), ("Audit", USERS)],
    );
    let out = validate(&book, &[]);
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("the first sheet, 'Cover', has no header naming a user key column")
            && err.contains("sheets 'Finance' and 'Audit' each have one")
            && err.contains("--sheet NAME"),
        "{err}"
    );
    // Named, the sheet is read.
    let out = validate(&book, &["--sheet", "Audit"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
}

#[test]
fn a_workbook_with_no_header_anywhere_names_the_sheet_it_read_and_lists_the_others() {
    let dir = tempdir();
    let book = workbook(
        dir.path(),
        "notes.xlsx",
        &[
            ("Cover", COVER),
            ("Notes", &[&["Owner", "Due"], &["Ana", "Friday"]]),
        ],
    );
    let out = validate(&book, &["--platform", "hub"]);
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("notes.xlsx"), "{err}");
    assert!(err.contains("has no user_email column"), "{err}");
    assert!(
        err.contains("no row among the first 10 non-empty ones names a user key column")
            && err.contains("looked for user_email, userId, email, id or username"),
        "{err}"
    );
    assert!(
        err.contains("this is XLSX workbook, sheet 'Cover'")
            && err.contains("other sheets are 'Notes'")
            && err.contains("--sheet NAME"),
        "{err}"
    );
    // A sheet named with --sheet is read as named, never swapped for another.
    let book = workbook(
        dir.path(),
        "cover-named.xlsx",
        &[("Users", USERS), ("Cover", COVER)],
    );
    let out = validate(&book, &["--sheet", "Cover", "--platform", "hub"]);
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("sheet 'Cover'") && err.contains("other sheets are 'Users'"),
        "{err}"
    );
}

#[test]
fn a_title_above_the_header_is_passed_over_and_rows_keep_their_excel_numbers() {
    let dir = tempdir();
    let csv = write(
        dir.path(),
        "q3.csv",
        "Q3 access review – Finance\n\nuser_email,user_department\n\
         user00001@example.com,Treasury\nnot-an-email,Audit\n",
    );
    let book = workbook(
        dir.path(),
        "q3.xlsx",
        &[(
            "Review",
            &[
                &["Q3 access review – Finance"],
                &[],
                &["Email", "Department"],
                &["user00001@example.com", "Treasury"],
                &["not-an-email", "Audit"],
            ],
        )],
    );
    for file in [csv, book] {
        let out = validate(&file, &[]);
        let err = stderr_of(&out);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(
            err.contains("row 1 ('Q3 access review – Finance') is above the header (row 3)")
                && err.contains("not read as users"),
            "{err}"
        );
        let stem = file.file_stem().unwrap().to_str().unwrap();
        let ext = file.extension().unwrap().to_str().unwrap();
        let report = read_report(&dir.path().join(format!("{stem}-report.csv")));
        assert_eq!(
            statuses(&report),
            pairs(&[("4", "valid"), ("5", "invalid")]),
            "{ext}"
        );
        // Left in the same folder, the next file's report must not be this one's.
        std::fs::remove_file(dir.path().join(format!("{stem}-report.csv"))).unwrap();
        let _ = std::fs::remove_file(dir.path().join(format!("{stem}-report-failures.csv")));
    }

    // The same file applied: the title is not a user, and the report keeps Excel's numbers.
    let sheet = write(
        dir.path(),
        "apply.csv",
        "Q3 access review – Finance\n\nuser_email,user_department\n\
         user00001@example.com,Treasury\nuser00002@example.com,Audit\n",
    );
    let out = bulkedit()
        .arg("apply")
        .arg(&sheet)
        .args(["--sandbox", "--yes"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let report = read_report(&dir.path().join("apply-report.csv"));
    assert_eq!(
        statuses(&report),
        pairs(&[("4", "updated"), ("5", "updated")])
    );
}

#[test]
fn a_header_that_names_no_user_is_named_with_what_was_looked_for() {
    let dir = tempdir();
    let file = write(
        dir.path(),
        "names.csv",
        "Access review\nFirst Name,Department\nAna,Treasury\n",
    );
    let out = validate(&file, &[]);
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("names.csv") && err.contains("row 1, the first non-empty row, is the header"),
        "{err}"
    );
    assert!(
        err.contains("no row among the first 10 non-empty ones names a user key column (looked for user_email, userId, email, id or username)"),
        "{err}"
    );
}

#[test]
fn a_misspelled_column_gets_its_suggestion_before_the_platform_is_known() {
    let dir = tempdir();
    let file = write(
        dir.path(),
        "typo.csv",
        "Emial,Depatment\nuser00001@example.com,Treasury\n",
    );
    let out = validate(&file, &[]);
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("column 'Emial' is not a known column but looks like 'user_email' (hub) or 'email' (identity, control-room)"),
        "{err}"
    );
    assert!(
        err.contains(
            "column 'Depatment' is not a known column but looks like 'user_department' (hub)"
        ),
        "{err}"
    );
    // Below a title, the misspelled header is still the header.
    let file = write(
        dir.path(),
        "typo-title.csv",
        "Q3 review\n\nEmial,First Name\nuser00001@example.com,Ana\n",
    );
    let out = validate(&file, &[]);
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("column 'Emial' is not a known column") && err.contains("row 3 is the header"),
        "{err}"
    );
}

const IDENTITY_ENV: [(&str, &str); 2] = [
    ("BULKEDIT_CLIENT_ID", "sandbox-client"),
    ("BULKEDIT_CLIENT_SECRET", "sandbox-secret"),
];

#[test]
fn the_platform_is_told_from_the_url_when_the_headers_fit_more_than_one() {
    let sb = Sandbox::start(SandboxConfig::default()).unwrap();
    let dir = tempdir();
    // `Email` and `First Name` are hub's and identity's alike.
    let sheet = write(
        dir.path(),
        "both.csv",
        "Email,First Name\nuser00001@example.com,Ana\n",
    );
    let out = validate(&sheet, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
    assert!(stderr_of(&out).contains("fits more than one platform"));

    let out = bulkedit()
        .arg("apply")
        .arg(&sheet)
        .arg("--url")
        .arg(sb.url_for("identity").as_str())
        .envs(IDENTITY_ENV)
        .output()
        .unwrap();
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("checking rows for identity"), "{err}");
    let report = read_report(&dir.path().join("both-report.csv"));
    assert_eq!(report[0]["status"], "updated", "{report:?}");
    let state: serde_json::Value = crate::common::http_client()
        .build()
        .unwrap()
        .get(format!("{}/_sandbox/state", sb.base_url()))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let first = &state["identity"][0];
    assert_eq!(first["email"], "user00001@example.com");
    assert_eq!(first["name"], "Ana");

    // export too takes the platform from the URL.
    let out = bulkedit()
        .arg("export")
        .arg("--url")
        .arg(sb.url_for("hub").as_str())
        .env("BULKEDIT_TOKEN", "sandbox-tenant/sandbox-token")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let csv = String::from_utf8(out.stdout).unwrap();
    assert!(csv.starts_with("user_email"), "{csv}");
}

#[test]
fn headers_or_a_platform_that_contradict_the_url_stop_before_anything_is_sent() {
    let sb = Sandbox::start(SandboxConfig::default()).unwrap();
    let dir = tempdir();
    let hub_sheet = write(
        dir.path(),
        "hub.csv",
        "user_email,user_department\nuser00001@example.com,Treasury\n",
    );
    let identity_url = sb.url_for("identity");
    let out = bulkedit()
        .arg("apply")
        .arg(&hub_sheet)
        .arg("--url")
        .arg(identity_url.as_str())
        .envs(IDENTITY_ENV)
        .output()
        .unwrap();
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("the header (row 1) is hub's")
            && err.contains("'user_email' and 'user_department'")
            && err.contains(&format!("--url {identity_url} is identity's"))
            && err.contains("identity_"),
        "{err}"
    );

    let out = bulkedit()
        .arg("apply")
        .arg(&hub_sheet)
        .args(["--platform", "hub", "--url"])
        .arg(identity_url.as_str())
        .env("BULKEDIT_TOKEN", "sandbox-tenant/sandbox-token")
        .output()
        .unwrap();
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("the platform is hub") && err.contains("--platform identity"),
        "{err}"
    );
    let out = bulkedit()
        .args(["export", "--platform", "control-room", "--url"])
        .arg(sb.url_for("hub").as_str())
        .output()
        .unwrap();
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("is hub's: its path has automationhub_"),
        "{err}"
    );
    assert!(sb.requests().is_empty(), "{:?}", sb.requests());
    assert!(!dir.path().join("hub-report.csv").exists());
}

/// Whether a rate is written as a person reads it: whole with thousands separators from 100
/// up, one decimal below, two significant digits under 0.1.
fn readable_rate(text: &str) -> bool {
    let grouped = {
        let groups: Vec<&str> = text.split(',').collect();
        groups[0].len() <= 3
            && !groups[0].is_empty()
            && groups[1..].iter().all(|g| g.len() == 3)
            && groups.iter().all(|g| g.bytes().all(|b| b.is_ascii_digit()))
            && text.replace(',', "").parse::<u64>().is_ok_and(|n| n >= 100)
    };
    let one_decimal = text
        .split_once('.')
        .is_some_and(|(w, f)| f.len() == 1 && w.parse::<u32>().is_ok_and(|w| w < 100));
    let small = text.starts_with("0.0") && text.len() <= 6;
    grouped || one_decimal || small || text == "0"
}

#[test]
fn rates_in_the_summary_are_shown_with_sensible_precision() {
    assert!(readable_rate("1,234") && readable_rate("12.5") && readable_rate("0.8"));
    assert!(!readable_rate("1234.5678901") && !readable_rate("1234") && !readable_rate("12.54"));
    let dir = tempdir();
    let mut text = String::from("user_email,user_department\n");
    for i in 1..=3000 {
        text.push_str(&format!("user{i:05}@example.com,Treasury\n"));
    }
    let file = write(dir.path(), "many.csv", text);
    let out = validate(&file, &[]);
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let line = err
        .lines()
        .find(|l| l.starts_with("took "))
        .unwrap_or_else(|| panic!("no time line: {err}"));
    let rate = line
        .split_once('(')
        .and_then(|(_, r)| r.strip_suffix(" rows/s)"))
        .unwrap_or_else(|| panic!("{line}"));
    assert!(readable_rate(rate), "{line}");

    let small = write(
        dir.path(),
        "few.csv",
        "user_email,user_department\nuser00001@example.com,Treasury\nuser00002@example.com,Audit\n",
    );
    let out = bulkedit()
        .arg("apply")
        .arg(&small)
        .args(["--sandbox", "--yes"])
        .output()
        .unwrap();
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let line = err
        .lines()
        .find(|l| l.starts_with("took "))
        .unwrap_or_else(|| panic!("no time line: {err}"));
    // took 0.1 s: 12.5 rows/s, 4 requests (50.0/s)
    let rows_rate = line
        .split_once(": ")
        .and_then(|(_, r)| r.split_once(" rows/s"))
        .map(|(r, _)| r)
        .unwrap_or_else(|| panic!("{line}"));
    let requests_rate = line
        .rsplit_once('(')
        .and_then(|(_, r)| r.strip_suffix("/s)"))
        .unwrap_or_else(|| panic!("{line}"));
    assert!(readable_rate(rows_rate), "{line}");
    assert!(readable_rate(requests_rate), "{line}");
}

#[test]
#[cfg(unix)]
fn the_sandbox_stopped_by_ctrl_c_says_so_in_its_own_words() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("bulkedit"))
        .args(["sandbox", "--listen", "127.0.0.1:0", "--users", "3"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // It is serving once it has said where.
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut banner = String::new();
    stdout.read_line(&mut banner).unwrap();
    assert!(banner.contains("listening on"), "{banner}");
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("sandbox stopped (Ctrl-C)") && err.contains("were in memory and are gone"),
        "{err}"
    );
    // Not the words of an apply run stopped midway.
    assert!(
        !err.contains("rows in flight") && !err.contains("--resume"),
        "{err}"
    );
}
