//! Columns: a report's own columns are dropped only from a report fed back in; a user's own
//! `Status` or `Error` column is never dropped; HR export headers are aliases; a suggestion
//! never points a column at a field of another meaning, nor at its own name.

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
fn a_users_own_status_error_and_row_columns_are_kept_in_files_that_are_not_reports() {
    let dir = tempdir();
    let f = write(
        dir.path(),
        "users.csv",
        "Email,Row,Status,Error,Attempts\nuser00001@example.com,7,Active,none,3\n",
    );
    let report = dir.path().join("r.csv");
    let out = validate(&f, &report, &["--platform", "hub"]);
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("'Row'") && err.contains("'Status'"),
        "warned, not dropped: {err}"
    );
    let header = report_header(&report);
    assert_eq!(
        header,
        [
            "row",
            "status",
            "error",
            "http_status",
            "attempts",
            "Email",
            "Row",
            "Status",
            "Error",
            "Attempts"
        ]
    );
    let rows = read_report(&report);
    assert_eq!(rows[0]["Status"], "Active");
    // The same columns in a report fed back in are the report's, and appear once.
    let again = dir.path().join("again.csv");
    let out = validate(&report, &again, &["--platform", "hub"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert_eq!(report_header(&again), header);
}

#[test]
fn hr_export_headers_are_aliases_and_never_steered_to_another_field() {
    let dir = tempdir();
    let f = write(
        dir.path(),
        "cr.csv",
        "User Name,Given Name,Surname,Mail\nuser00001,Ana,Lovelace,ana@example.com\n",
    );
    let out = validate(
        &f,
        &dir.path().join("r.csv"),
        &["--platform", "control-room"],
    );
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(!err.contains("looks like"), "{err}");
    let rows = rows_of(&f);
    assert_eq!(rows.len(), 2);
    let hub = write(
        dir.path(),
        "hub.csv",
        "Mail,Given Name,Family Name\nuser00001@example.com,Ana,Lovelace\n",
    );
    let out = validate(&hub, &dir.path().join("h.csv"), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
}

#[test]
fn hubs_one_role_layout_works_and_is_what_a_mangled_role_column_is_steered_to() {
    let dir = tempdir();
    let f = write(
        dir.path(),
        "one-role.csv",
        "user_email,role_id,category_id\nuser00001@example.com,Program Manager,2\n",
    );
    let report = dir.path().join("r.csv");
    let out = validate(&f, &report, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let applied = dir.path().join("applied.csv");
    let out = bulkedit()
        .arg("apply")
        .arg(&f)
        .args(["--sandbox", "--report"])
        .arg(&applied)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert_eq!(read_report(&applied)[0]["status"], "updated");

    let typo = write(
        dir.path(),
        "typo.csv",
        "user_email,role_idx\nuser00001@example.com,8\n",
    );
    let out = validate(&typo, &dir.path().join("t.csv"), &[]);
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("looks like 'role_id'"), "{err}");
}
