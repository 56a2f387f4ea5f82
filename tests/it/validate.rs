//! `bulkedit validate`, through the real binary on real files.

use crate::common::*;

fn validate(
    file: &std::path::Path,
    report: &std::path::Path,
    extra: &[&str],
) -> std::process::Output {
    bulkedit()
        .arg("validate")
        .arg(file)
        .arg("--report")
        .arg(report)
        .args(extra)
        .output()
        .expect("runs")
}

#[test]
fn clean_samples_are_valid_on_every_row_and_exit_zero() {
    let dir = tempdir();
    for (name, rows) in [
        ("hub-clean.csv", 10),
        ("hub-clean.xlsx", 10),
        ("identity-clean.csv", 6),
        ("identity-clean.xlsx", 6),
        ("control-room-clean.csv", 6),
        ("control-room-clean.xlsx", 6),
    ] {
        let report = dir.path().join(format!("{name}.report.csv"));
        let out = validate(&sample(name), &report, &[]);
        assert_eq!(out.status.code(), Some(0), "{name}: {}", stderr_of(&out));
        let r = read_report(&report);
        assert_eq!(r.len(), rows, "{name}");
        assert!(
            r.iter().all(|row| row["status"] == "valid"),
            "{name}: {r:?}"
        );
        let lines: Vec<String> = r.iter().map(|row| row["row"].clone()).collect();
        let expected: Vec<String> = (2..2 + rows).map(|n| n.to_string()).collect();
        assert_eq!(
            lines, expected,
            "{name}: rows are numbered as Excel shows them"
        );
        assert!(!report
            .with_file_name(format!("{name}.report-failures.csv"))
            .exists());
    }
}

#[test]
fn hub_mistakes_are_each_reported_with_what_would_be_right() {
    let dir = tempdir();
    let report = dir.path().join("r.csv");
    let out = validate(&sample("hub-mistakes.csv"), &report, &[]);
    assert_eq!(out.status.code(), Some(1));
    let r = read_report(&report);
    let got: Vec<(String, String, String)> = r
        .iter()
        .map(|x| (x["row"].clone(), x["status"].clone(), x["error"].clone()))
        .collect();
    let expected = [
        ("2", "invalid", "Email: the same user is also on row 9 (nothing is sent for a user named twice; keep one row)"),
        ("3", "invalid", "Email: not a valid e-mail address (like name@example.com): it contains a space"),
        ("4", "invalid", "Is Active: not a yes/no value (use true/false, yes/no or 1/0)"),
        ("5", "invalid", "Invite Status: must be 0, 1, 2 or 3 (0 not invited, 1 or 2 pending, 3 active)"),
        ("6", "invalid", "role_id1: role 99 is not a default role (use a role id (2, 3, 4, 5, 6, 8, 11) or a role name like 'Standard User'; admit a custom role with --allow-role 99, or name it)"),
        ("7", "invalid", "Invite Status: invite status 3 with is_active 0 is not a user status (inactive is 0/0 or 1/0, not invited 0/1, pending 1/1 or 2/1, active 3/1)"),
        ("8", "invalid", "category_id2: a category without a role (fill role_id2 or empty this cell)"),
        ("9", "invalid", "Email: the same user is also on row 2 (nothing is sent for a user named twice; keep one row)"),
        ("10", "invalid", "Is Active: #clear only empties a text field (leave the cell empty to keep the value)"),
        ("11", "invalid", "Job Title: 276 characters is too long (at most 255)"),
    ];
    let expected: Vec<(String, String, String)> = expected
        .iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
        .collect();
    assert_eq!(got, expected);
    // The input's own headers, in the input's order, after the report columns.
    assert_eq!(
        report_header(&report),
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
            "Job Title",
            "Department",
            "Is Active",
            "Invite Status",
            "role_id1",
            "category_id1",
            "role_id2",
            "category_id2"
        ]
    );
}

#[test]
fn identity_and_control_room_mistakes_are_reported_row_by_row() {
    let dir = tempdir();
    let report = dir.path().join("i.csv");
    assert_eq!(
        validate(&sample("identity-mistakes.csv"), &report, &[])
            .status
            .code(),
        Some(1)
    );
    let r = read_report(&report);
    let errors: Vec<&str> = r.iter().map(|x| x["error"].as_str()).collect();
    assert_eq!(
        errors,
        [
            "User Id: the same user is also on row 9 (nothing is sent for a user named twice; keep one row)",
            "User Id: an id cannot contain '/' (copy the id exactly as the platform shows it)",
            "email: not a valid e-mail address (like name@example.com): it has no @",
            "isActive: not a yes/no value (use true/false, yes/no or 1/0)",
            "groupIDsToAdd: group '10000000-0000-4000-8000-000000000002' is also in groupIDsToRemove (keep it in one list)",
            "password: a password cannot be cleared (leave the cell empty to keep it)",
            "User Id: required: a userId, or an email to look the user up",
            "User Id: the same user is also on row 2 (nothing is sent for a user named twice; keep one row)",
        ]
    );
    let report = dir.path().join("c.csv");
    assert_eq!(
        validate(&sample("control-room-mistakes.csv"), &report, &[])
            .status
            .code(),
        Some(1)
    );
    let errors: Vec<String> = read_report(&report)
        .iter()
        .map(|x| x["error"].clone())
        .collect();
    assert_eq!(
        errors,
        [
            "User Id: the same user is also on row 9 (nothing is sent for a user named twice; keep one row)",
            "User Id: must be a positive whole number (the user's id in the Control Room)",
            "email: not a valid e-mail address (like name@example.com): it has no @",
            "roles: a user must keep at least one role (list the roles to keep)",
            "disabled: not a yes/no value (use true/false, yes/no or 1/0)",
            "User Id: required: an id, or a username to look the user up",
            "User Id: must be a positive whole number (the user's id in the Control Room)",
            "User Id: the same user is also on row 2 (nothing is sent for a user named twice; keep one row)",
        ]
    );
}

#[test]
fn every_broken_field_of_a_row_is_reported_not_just_the_first() {
    let dir = tempdir();
    let f = write(
        dir.path(),
        "u.csv",
        "Email,Is Active,Invite Status,Roles\nbad-email,maybe,7,99\n",
    );
    let report = dir.path().join("r.csv");
    validate(&f, &report, &[]);
    let r = read_report(&report);
    assert_eq!(
        r[0]["error"],
        "Email: not a valid e-mail address (like name@example.com): it has no @; \
         Is Active: not a yes/no value (use true/false, yes/no or 1/0); \
         Invite Status: must be 0, 1, 2 or 3 (0 not invited, 1 or 2 pending, 3 active); \
         Roles: role 99 is not a default role (use a role id (2, 3, 4, 5, 6, 8, 11) or a role name like 'Standard User'; admit a custom role with --allow-role 99, or name it)"
    );
}

#[test]
fn failures_file_holds_only_the_rows_to_fix_and_feeds_back_in() {
    let dir = tempdir();
    let report = dir.path().join("out/report.csv");
    assert_eq!(
        validate(&sample("hub-mistakes.csv"), &report, &[])
            .status
            .code(),
        Some(1)
    );
    let failures = dir.path().join("out/report-failures.csv");
    let f = read_report(&failures);
    assert_eq!(f.len(), 10);
    assert_eq!(report_header(&failures), report_header(&report));
    // Fed back in, the report columns are ignored and appear once in the new report.
    let again = dir.path().join("again.csv");
    let out = validate(&failures, &again, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(report_header(&again), report_header(&report));
    assert!(
        !stderr_of(&out).contains("not a field"),
        "{}",
        stderr_of(&out)
    );
    // Fix the cells of one row and that row is valid.
    let text = std::fs::read_to_string(&failures).unwrap().replace(
        "user00014@example.com,Ivo,Petrov,Analyst,Finance,1,5",
        "user00014@example.com,Ivo,Petrov,Analyst,Finance,1,3",
    );
    let fixed = write(dir.path(), "fixed.csv", text);
    validate(&fixed, &again, &[]);
    let r = read_report(&again);
    let ivo = r
        .iter()
        .find(|x| x["Email"] == "user00014@example.com")
        .unwrap();
    assert_eq!(ivo["status"], "valid");
}

#[test]
fn a_clean_run_removes_a_stale_failures_file() {
    let dir = tempdir();
    let report = dir.path().join("report.csv");
    validate(&sample("hub-mistakes.csv"), &report, &[]);
    assert!(dir.path().join("report-failures.csv").exists());
    validate(&sample("hub-clean.csv"), &report, &[]);
    assert!(!dir.path().join("report-failures.csv").exists());
}

#[test]
fn passwords_are_shown_as_stars_in_reports_and_failures() {
    let dir = tempdir();
    let f = write(
        dir.path(),
        "p.csv",
        "userId,password,isActive\n00000000-0000-4000-8000-000000000001,Hunter2-secret,maybe\n00000000-0000-4000-8000-000000000002,,true\n",
    );
    let report = dir.path().join("r.csv");
    validate(&f, &report, &[]);
    for path in [report.clone(), dir.path().join("r-failures.csv")] {
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("Hunter2-secret"), "{}", path.display());
    }
    let r = read_report(&report);
    assert_eq!(r[0]["password"], "***");
    assert_eq!(r[1]["password"], "");
}

#[test]
fn a_misspelled_column_stops_the_run_naming_the_field_it_resembles() {
    let dir = tempdir();
    for (header, near) in [
        ("Emial,Department", "user_email"),
        ("user_email,Departmnet", "user_department"),
        ("user_email,user_job_tilte", "user_job_title"),
        ("user_email,Bussiness Unit", "user_business_unit"),
    ] {
        let f = write(
            dir.path(),
            "h.csv",
            format!("{header}\nuser00001@example.com,Sales\n"),
        );
        let out = validate(&f, &dir.path().join("r.csv"), &["--platform", "hub"]);
        assert_eq!(out.status.code(), Some(2), "{header}");
        let err = stderr_of(&out);
        assert!(
            err.contains(&format!("looks like '{near}'")),
            "{header}: {err}"
        );
        assert!(err.contains("h.csv"), "names the file: {err}");
    }
}

#[test]
fn an_unknown_column_far_from_any_field_is_ignored_with_a_warning() {
    let dir = tempdir();
    let f = write(
        dir.path(),
        "h.csv",
        "user_email,Cost Centre,user_department\nuser00001@example.com,CC-42,Sales\n",
    );
    let report = dir.path().join("r.csv");
    let out = validate(&f, &report, &[]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        stderr_of(&out).contains("column 'Cost Centre' is not a field of this platform; ignored")
    );
    // It is still shown in the report, as part of the input.
    assert_eq!(read_report(&report)[0]["Cost Centre"], "CC-42");
}

#[test]
fn the_same_field_twice_is_an_error() {
    let dir = tempdir();
    let f = write(
        dir.path(),
        "h.csv",
        "user_email,Department,user_department\nuser00001@example.com,A,B\n",
    );
    let out = validate(&f, &dir.path().join("r.csv"), &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr_of(&out)
        .contains("columns 'Department' and 'user_department' both give user_department"));
}

#[test]
fn headers_match_aliases_ignoring_case_spaces_underscores_and_dashes() {
    let dir = tempdir();
    let f = write(
        dir.path(),
        "h.csv",
        "EMAIL ADDRESS,first-name,LAST_NAME,job title,Business_Unit,is active,INVITE-STATUS\nuser00001@example.com,A,B,C,D,1,3\n",
    );
    let report = dir.path().join("r.csv");
    let out = validate(&f, &report, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert!(!stderr_of(&out).contains("ignored"));
}

#[test]
fn the_platform_is_detected_from_headers_or_must_be_named() {
    let dir = tempdir();
    let cases = [
        (
            "user_email,user_department\nuser00001@example.com,Sales\n",
            Some("hub"),
        ),
        (
            "userId,displayName\n00000000-0000-4000-8000-000000000001,X\n",
            Some("identity"),
        ),
        ("id,firstName,roles\n1,A,AAE_Basic\n", Some("control-room")),
        // e-mail alone names a user on hub and on identity alike.
        ("email\nuser00001@example.com\n", None),
    ];
    for (text, platform) in cases {
        let f = write(dir.path(), "d.csv", text);
        let out = validate(&f, &dir.path().join("r.csv"), &[]);
        match platform {
            Some(p) => {
                assert_eq!(out.status.code(), Some(0), "{text}: {}", stderr_of(&out));
                assert!(
                    stderr_of(&out).contains(&format!("checking rows for {p}")),
                    "{text}"
                );
            }
            None => {
                assert_eq!(out.status.code(), Some(2), "{text}");
                assert!(
                    stderr_of(&out).contains("give --platform"),
                    "{}",
                    stderr_of(&out)
                );
                let out = validate(&f, &dir.path().join("r.csv"), &["--platform", "identity"]);
                assert_eq!(out.status.code(), Some(0));
            }
        }
    }
}

#[test]
fn rows_are_numbered_as_excel_shows_them_across_blank_lines_and_quoted_breaks() {
    let dir = tempdir();
    let f = write(
        dir.path(),
        "n.csv",
        "\n\nuser_email,user_job_title\nuser00001@example.com,\"Two\nlines\"\n\n   ,  \nuser00002@example.com,x\r\nuser00003@example.com,y",
    );
    let report = dir.path().join("r.csv");
    assert_eq!(validate(&f, &report, &[]).status.code(), Some(0));
    let r = read_report(&report);
    // Header on line 3; the quoted break does not shift later rows; blank rows are skipped.
    assert_eq!(
        statuses(&r),
        pairs(&[("4", "valid"), ("7", "valid"), ("8", "valid")])
    );
    // Empty lines count as rows too, in Excel and here, whatever ends the lines.
    let f = write(
        dir.path(),
        "e.csv",
        "user_email\n\nuser00001@example.com\n\r\n\r\nuser00002@example.com\r\n\nuser00003@example.com",
    );
    assert_eq!(validate(&f, &report, &[]).status.code(), Some(0));
    assert_eq!(
        statuses(&read_report(&report)),
        pairs(&[("3", "valid"), ("6", "valid"), ("8", "valid")])
    );
}

#[test]
fn whole_numbers_with_a_zero_fraction_read_as_integers() {
    let dir = tempdir();
    let f = write(
        dir.path(),
        "n.csv",
        "user_email,user_is_active,user_invite_status,user_roles,role_id1,category_id1\nuser00001@example.com,1.0,3.0,,8.0,2.00\nuser00002@example.com,1,2.5,,,\n",
    );
    let report = dir.path().join("r.csv");
    let out = validate(&f, &report, &[]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "roles in two layouts at once are refused"
    );
    let f = write(
        dir.path(),
        "n.csv",
        "user_email,user_is_active,user_invite_status,role_id1,category_id1\nuser00001@example.com,1.0,3.0,8.0,2.00\nuser00002@example.com,1,2.5,,\n",
    );
    validate(&f, &report, &[]);
    assert_eq!(
        statuses(&read_report(&report)),
        pairs(&[("2", "valid"), ("3", "invalid")])
    );
}

#[test]
fn a_header_with_no_data_rows_succeeds_with_nothing_to_do() {
    let dir = tempdir();
    let f = write(dir.path(), "h.csv", "user_email,user_department\n\n\n");
    let report = dir.path().join("r.csv");
    let out = validate(&f, &report, &[]);
    assert_eq!(out.status.code(), Some(0));
    assert!(stderr_of(&out).contains("no data rows: nothing to do"));
    assert_eq!(read_report(&report).len(), 0);
}

#[test]
fn one_row_is_counted_as_one_row_not_one_rows() {
    let dir = tempdir();
    let f = write(
        dir.path(),
        "one.csv",
        "user_email,user_department\nuser00001@example.com,Sales\n",
    );
    let out = validate(&f, &dir.path().join("r.csv"), &[]);
    assert_eq!(out.status.code(), Some(0));
    let said = stderr_of(&out);
    assert!(said.contains("1 row: 1 valid"), "{said}");
    // (A rate such as "211 rows/s" is a unit, not a count.)
    assert!(!said.lines().any(|l| l.starts_with("1 rows")), "{said}");
}

#[test]
fn files_that_cannot_start_exit_2_naming_the_file_and_leave_no_report() {
    let dir = tempdir();
    let cases: Vec<(std::path::PathBuf, &str)> = vec![
        (write(dir.path(), "empty.csv", ""), "there is no header row"),
        (
            write(dir.path(), "blank.csv", "\n \n,,\n"),
            "there is no header row",
        ),
        (
            write(dir.path(), "nokey.csv", "user_department\nSales\n"),
            "no user key",
        ),
        (
            write(dir.path(), "bin.csv", [0u8, 159, 146, 150, 0, 1, 2, 3]),
            "not a text file",
        ),
        (dir.path().join("missing.csv"), "cannot open"),
        (
            corpus("xlsx-calamine/excel/pass_protected.xlsx"),
            "password-protected",
        ),
        (corpus("fastcsv-spec/bom/utf32le_bom.csv"), "UTF-32"),
    ];
    for (file, message) in cases {
        let report = dir.path().join("r.csv");
        let out = validate(&file, &report, &[]);
        assert_eq!(out.status.code(), Some(2), "{}", file.display());
        let err = stderr_of(&out);
        assert!(err.contains(message), "{}: {err}", file.display());
        assert!(
            err.contains(file.file_name().unwrap().to_str().unwrap()),
            "{err}"
        );
        assert!(!report.exists(), "{}", file.display());
    }
    let f = write(dir.path(), "nokey2.csv", "user_department\nSales\n");
    let out = validate(&f, &dir.path().join("r.csv"), &["--platform", "hub"]);
    assert!(
        stderr_of(&out).contains("has no user_email column"),
        "{}",
        stderr_of(&out)
    );
}

#[test]
fn an_unknown_sheet_lists_the_sheets_there_are() {
    let dir = tempdir();
    let out = validate(
        &corpus("xlsx-calamine/excel/any_sheets.xlsx"),
        &dir.path().join("r.csv"),
        &["--sheet", "Users"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr_of(&out).contains("has no sheet named 'Users'; its sheets are 'Visible', 'Hidden' (hidden), 'VeryHidden' (hidden), 'Chart'"),
        "{}",
        stderr_of(&out)
    );
}

#[test]
fn formula_errors_in_a_workbook_make_the_row_invalid() {
    // A workbook with #REF!-style cells under platform headers, written by our own writer.
    let dir = tempdir();
    let path = dir.path().join("f.xlsx");
    let mut wb = rust_xlsxwriter::Workbook::new();
    let ws = wb.add_worksheet();
    ws.write_string(0, 0, "user_email").unwrap();
    ws.write_string(0, 1, "user_department").unwrap();
    ws.write_string(1, 0, "user00001@example.com").unwrap();
    ws.write_formula(
        1,
        1,
        rust_xlsxwriter::Formula::new("=#REF!").set_result("#REF!"),
    )
    .unwrap();
    ws.write_string(2, 0, "user00002@example.com").unwrap();
    ws.write_number(2, 1, 42.0).unwrap();
    wb.save(&path).unwrap();
    let report = dir.path().join("r.csv");
    validate(&path, &report, &[]);
    let r = read_report(&report);
    assert_eq!(r[0]["status"], "invalid", "{r:?}");
    assert_eq!(
        r[0]["error"],
        "user_department: holds the formula error #REF! (fix the formula or type the value)"
    );
    assert_eq!(r[1]["status"], "valid");
    assert_eq!(r[1]["user_department"], "42");
}

#[test]
fn delimiters_and_encodings_are_detected() {
    let dir = tempdir();
    let text = "user_email;user_first_name;user_department\nuser00001@example.com;Zoë;Ops\n";
    let mut utf16 = vec![0xFF, 0xFE];
    utf16.extend(
        text.replace(';', "\t")
            .encode_utf16()
            .flat_map(|u| u.to_le_bytes()),
    );
    let piped = text.replace(';', "|");
    let (cp1252, _, _) = encoding_rs::WINDOWS_1252.encode(&piped);
    let mut bom = vec![0xEF, 0xBB, 0xBF];
    bom.extend(text.as_bytes());
    for (name, bytes) in [
        ("semi.csv", text.as_bytes().to_vec()),
        ("u16.tsv", utf16),
        ("cp.txt", cp1252.to_vec()),
        ("bom.csv", bom),
    ] {
        let f = write(dir.path(), name, bytes);
        let report = dir.path().join("r.csv");
        let out = validate(&f, &report, &[]);
        assert_eq!(out.status.code(), Some(0), "{name}: {}", stderr_of(&out));
        let r = read_report(&report);
        assert_eq!(r[0]["user_first_name"], "Zoë", "{name}");
        assert_eq!(r[0]["user_email"], "user00001@example.com", "{name}");
    }
}

#[test]
fn a_workbook_named_csv_is_read_as_a_workbook() {
    let dir = tempdir();
    let f = dir.path().join("really-xlsx.csv");
    std::fs::copy(sample("hub-clean.xlsx"), &f).unwrap();
    let report = dir.path().join("r.csv");
    let out = validate(&f, &report, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert!(stderr_of(&out).contains("is named .csv but is a XLSX workbook"));
    assert_eq!(read_report(&report).len(), 10);
}

#[test]
fn custom_hub_roles_need_allow_role() {
    let dir = tempdir();
    let f = write(
        dir.path(),
        "r.csv",
        "user_email,user_roles\nuser00001@example.com,8; 101:2\n",
    );
    let report = dir.path().join("out.csv");
    assert_eq!(validate(&f, &report, &[]).status.code(), Some(1));
    assert_eq!(
        validate(&f, &report, &["--allow-role", "101"])
            .status
            .code(),
        Some(0)
    );
}

#[test]
fn duplicate_keys_compare_case_insensitively_and_name_the_first_few_others() {
    let dir = tempdir();
    let mut text = String::from("user_email,user_department\n");
    for i in 0..8 {
        let email = if i % 2 == 0 {
            "Dup@Example.com"
        } else {
            " dup@example.COM "
        };
        text.push_str(&format!("{email},D{i}\n"));
    }
    text.push_str("other@example.com,X\n");
    let f = write(dir.path(), "d.csv", text);
    let report = dir.path().join("r.csv");
    validate(&f, &report, &[]);
    let r = read_report(&report);
    assert_eq!(r[0]["error"], "user_email: the same user is also on rows 3, 4, 5, 6, 7 and 2 more (nothing is sent for a user named twice; keep one row)");
    assert!(r[..8].iter().all(|x| x["status"] == "invalid"));
    assert_eq!(r[8]["status"], "valid");
}

#[test]
fn the_xlsx_report_marks_each_broken_cell_with_its_reason() {
    let dir = tempdir();
    let report = dir.path().join("r.xlsx");
    assert_eq!(
        validate(&sample("hub-mistakes.csv"), &report, &[])
            .status
            .code(),
        Some(1)
    );
    assert!(dir.path().join("r-failures.xlsx").exists());
    // The rows read back through our own reader.
    let rows = rows_of(&report);
    assert_eq!(rows[0]["header"][0], "row");
    assert_eq!(rows[3]["cells"][1], "invalid");
    assert_eq!(rows[3]["cells"][6], "user00013@example.com");
    // The reasons are attached to the cells as notes.
    let notes = xlsx_part(&report, "xl/comments1.xml");
    assert!(
        notes.contains("not a yes/no value (use true/false, yes/no or 1/0)"),
        "{notes}"
    );
    assert!(
        notes.contains(r#"ref="L4""#),
        "the Is Active cell of row 4 carries the note: {notes}"
    );
}

fn xlsx_part(path: &std::path::Path, part: &str) -> String {
    let mut zip = zip::ZipArchive::new(std::fs::File::open(path).unwrap()).unwrap();
    let mut f = zip.by_name(part).unwrap();
    let mut s = String::new();
    std::io::Read::read_to_string(&mut f, &mut s).unwrap();
    s
}

/// A template's example row is there to show the form: left in, it is refused by `validate`
/// and `apply` alike (it would edit whoever it names), and nothing else in it is wrong.
#[test]
fn a_templates_example_row_left_in_is_refused_and_the_workbook_offers_drop_downs() {
    let dir = tempdir();
    let example_only = |out: &std::process::Output, report: &std::path::Path, what: &str| {
        assert_eq!(out.status.code(), Some(1), "{what}: {}", stderr_of(out));
        let rows = read_report(report);
        assert_eq!(rows.len(), 1, "{what}");
        assert_eq!(rows[0]["status"], "invalid", "{what}");
        assert!(
            rows[0]["error"].contains("the template's example row")
                && !rows[0]["error"].contains(';'),
            "{what}: only the example is wrong: {}",
            rows[0]["error"]
        );
    };
    for p in ["hub", "identity", "control-room"] {
        let csv = dir.path().join(format!("{p}.csv"));
        bulkedit()
            .args(["template", "--platform", p, "-o"])
            .arg(&csv)
            .assert()
            .success();
        let report = dir.path().join(format!("{p}-r.csv"));
        example_only(&validate(&csv, &report, &[]), &report, p);
        let applied = dir.path().join(format!("{p}-applied.csv"));
        let out = bulkedit()
            .args(["apply", "--sandbox", "--yes", "--report"])
            .arg(&applied)
            .arg(&csv)
            .output()
            .unwrap();
        example_only(&out, &applied, &format!("{p} apply"));
        let xlsx = dir.path().join(format!("{p}.xlsx"));
        bulkedit()
            .args(["template", "--platform", p, "--xlsx", "-o"])
            .arg(&xlsx)
            .assert()
            .success();
        let report = dir.path().join(format!("{p}-x.csv"));
        example_only(
            &validate(&xlsx, &report, &[]),
            &report,
            &format!("{p} xlsx"),
        );
        let sheet = xlsx_part(&xlsx, "xl/worksheets/sheet1.xml");
        assert!(
            sheet.contains("<dataValidation type=\"list\""),
            "{p}: {sheet}"
        );
    }
    let out = bulkedit()
        .args(["template", "--platform", "hub"])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("user_email,user_first_name,"), "{text}");
    assert_eq!(text.lines().count(), 2);
}

/// `validate` reads UTF-8 text in blocks on every core, and other text row by row; the report
/// must not depend on which. The same sheet as UTF-8 and as UTF-16, with quoted line breaks
/// (some falling where a block is cut), empty lines, padded and quoted cells, broken rows, and
/// a stray quote two thirds in, where the fast reader hands over to the full parser.
#[test]
fn reading_in_blocks_reports_what_reading_row_by_row_reports() {
    let mut text = String::from("user_email,user_first_name,user_job_title,user_is_active\r\n");
    for i in 1..=6000 {
        let email = if i % 101 == 0 {
            "not-an-email".to_string()
        } else {
            format!("user{i:05}@example.com")
        };
        let job = match i % 6 {
            0 | 3 => "\"Two\nlines\"",
            1 => "\"Smith, Jones\"",
            2 => " padded ",
            4 => "\"say \"\"hi\"\"\"",
            _ => "Analyst",
        };
        let active = if i % 13 == 0 { "maybe" } else { "1" };
        text.push_str(&format!("{email},First{i},{job},{active}\n"));
        if i % 997 == 0 {
            text.push_str("\r\n\n");
        }
        if i == 4000 {
            text.push_str("user99999@example.com,\"Odd\"quote,x,1\n");
        }
    }
    let dir = tempdir();
    let utf8 = write(dir.path(), "u8.csv", &text);
    let mut utf16 = vec![0xFF, 0xFE];
    utf16.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
    let utf16 = write(dir.path(), "u16.csv", utf16);
    let (r8, r16) = (dir.path().join("r8.csv"), dir.path().join("r16.csv"));
    assert_eq!(validate(&utf8, &r8, &[]).status.code(), Some(1));
    assert_eq!(validate(&utf16, &r16, &[]).status.code(), Some(1));
    // The same lines; only the UTF-16 input's report starts with a BOM, as the report of an
    // input that was not UTF-8 does (see `dialect.rs`).
    let read = |p: &std::path::Path| std::fs::read_to_string(p).unwrap();
    let unmarked = |p: &std::path::Path| {
        read(p)
            .strip_prefix('\u{feff}')
            .unwrap_or_else(|| panic!("{} starts with a BOM", p.display()))
            .to_string()
    };
    assert_eq!(read(&r8), unmarked(&r16));
    let failures = |p: &std::path::Path| bulkedit::report::failures_path(p);
    assert_eq!(read(&failures(&r8)), unmarked(&failures(&r16)));
    let rows = read_report(&r8);
    assert_eq!(rows.len(), 6001);
    // A spot check that both are right, not only alike: the row after the stray quote.
    let after = rows
        .iter()
        .find(|r| r["user_email"] == "user04001@example.com")
        .unwrap();
    // Quoted line breaks do not count; the empty lines and the stray-quote row do.
    let expected_line = 1 + 4001 + 2 * (4000 / 997) + 1;
    assert_eq!(after["row"], expected_line.to_string());
}

#[test]
fn hub_accepts_the_inactivation_pair_1_0_and_a_deactivation_alone_sends_invite_status_1() {
    let dir = tempdir();
    let f = write(
        dir.path(),
        "inactive.csv",
        "user_email,user_is_active,user_invite_status\nuser00001@example.com,0,1\nuser00002@example.com,0,0\nuser00003@example.com,0,\nuser00004@example.com,0,2\n",
    );
    let report = dir.path().join("r.csv");
    validate(&f, &report, &[]);
    let got: Vec<String> = read_report(&report)
        .iter()
        .map(|r| r["status"].clone())
        .collect();
    assert_eq!(got, ["valid", "valid", "valid", "invalid"]);
    let sb =
        bulkedit::sandbox::Sandbox::start(bulkedit::sandbox::SandboxConfig::default()).unwrap();
    let only = write(
        dir.path(),
        "off.csv",
        "user_email,user_is_active\nuser00005@example.com,0\n",
    );
    let out = bulkedit()
        .arg("apply")
        .arg(&only)
        .args(["--url", sb.url_for("hub").as_str(), "--report"])
        .arg(dir.path().join("a.csv"))
        .env("BULKEDIT_TOKEN", "sandbox-tenant/sandbox-token")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let state: serde_json::Value = http_client()
        .build()
        .unwrap()
        .get(format!("{}/_sandbox/state", sb.base_url()))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let user = state["hub"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["user_email"] == "user00005@example.com")
        .unwrap();
    assert_eq!(
        (
            user["user_is_active"].as_i64(),
            user["user_invite_status"].as_i64()
        ),
        (Some(0), Some(1))
    );
}

/// The users of one platform as the sandbox holds them now.
fn sandbox_users(sb: &bulkedit::sandbox::Sandbox, platform: &str) -> Vec<serde_json::Value> {
    let state: serde_json::Value = http_client()
        .build()
        .unwrap()
        .get(format!("{}/_sandbox/state", sb.base_url()))
        .send()
        .unwrap()
        .json()
        .unwrap();
    state[platform].as_array().unwrap().clone()
}

#[test]
fn a_key_on_an_invalid_row_still_marks_the_valid_row_sharing_it() {
    let dir = tempdir();
    // Row 2 is valid alone; row 3 names the same user (in another case) with a broken
    // department; control-room's row 5 writes row 4's id as Excel stores a number.
    let hub = write(
        dir.path(),
        "hub.csv",
        format!(
            "user_email,user_department\nuser00001@example.com,Finance\nUSER00001@example.com ,{}\nuser00002@example.com,Sales\n",
            "x".repeat(300)
        ),
    );
    let report = dir.path().join("r.csv");
    let out = validate(&hub, &report, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    let r = read_report(&report);
    assert_eq!(
        statuses(&r),
        pairs(&[("2", "invalid"), ("3", "invalid"), ("4", "valid")])
    );
    assert_eq!(r[0]["error"], "user_email: the same user is also on row 3 (nothing is sent for a user named twice; keep one row)");
    assert!(
        r[1]["error"].contains("user_department: ")
            && r[1]["error"].contains("user_email: the same user is also on row 2"),
        "the invalid row names both what is wrong and its twin: {}",
        r[1]["error"]
    );
    let cr = write(
        dir.path(),
        "cr.csv",
        "id,email\n6,user00006@example.com\n6.0,not-an-email\n",
    );
    validate(&cr, &report, &[]);
    assert_eq!(
        statuses(&read_report(&report)),
        pairs(&[("2", "invalid"), ("3", "invalid")])
    );
}

#[test]
fn apply_sends_nothing_for_a_valid_row_whose_key_an_invalid_row_repeats() {
    let dir = tempdir();
    let f = write(
        dir.path(),
        "hub.csv",
        "user_email,user_department,user_is_active\nuser00001@example.com,Finance,\nuser00001@example.com,Sales,perhaps\nuser00002@example.com,Legal,\n",
    );
    let sb =
        bulkedit::sandbox::Sandbox::start(bulkedit::sandbox::SandboxConfig::default()).unwrap();
    let before = sandbox_users(&sb, "hub");
    let report = dir.path().join("a.csv");
    let out = bulkedit()
        .arg("apply")
        .arg(&f)
        .args(["--url", sb.url_for("hub").as_str(), "--report"])
        .arg(&report)
        .env("BULKEDIT_TOKEN", "sandbox-tenant/sandbox-token")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    assert_eq!(
        statuses(&read_report(&report)),
        pairs(&[("2", "invalid"), ("3", "invalid"), ("4", "updated")])
    );
    let after = sandbox_users(&sb, "hub");
    let user = |users: &[serde_json::Value], email: &str| {
        users
            .iter()
            .find(|u| u["user_email"] == email)
            .cloned()
            .unwrap()
    };
    assert_eq!(
        user(&after, "user00001@example.com"),
        user(&before, "user00001@example.com"),
        "nothing was sent for the user named twice"
    );
    assert_eq!(
        user(&after, "user00002@example.com")["user_department"],
        "Legal"
    );
}
