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
        err.contains("'Row'") && err.contains("'Error'") && !err.contains("'Status'"),
        "warned, not dropped; on hub Status is the user status: {err}"
    );
    let header = report_header(&report);
    assert_eq!(
        header,
        [
            "row",
            "status",
            "error",
            "changes",
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
    // Only shared HR headers: hub and identity both take them, so the platform must be named.
    let out = validate(&hub, &dir.path().join("h.csv"), &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("give --platform"),
        "{}",
        stderr_of(&out)
    );
    for platform in ["hub", "identity"] {
        let out = validate(&hub, &dir.path().join("h.csv"), &["--platform", platform]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{platform}: {}",
            stderr_of(&out)
        );
        assert!(!stderr_of(&out).contains("ignored"), "{}", stderr_of(&out));
    }
}

#[test]
fn platforms_are_told_apart_by_their_own_columns_not_by_shared_hr_headers() {
    let dir = tempdir();
    let cases = [
        // One column of the platform's own beside the HR headers settles it.
        ("Email Address,Given Name,Last Name,Department\nuser00001@example.com,Ana,Silva,Sales\n", Some("hub")),
        ("E-mail,First Name,Family Name,displayName\nuser00001@example.com,Ana,Silva,Ana Silva\n", Some("identity")),
        ("Mail,Given Name,Surname,invitationAccepted\nuser00001@example.com,Ana,Silva,true\n", Some("identity")),
        ("User Name,Given Name,Surname,Mail\nuser00001,Ana,Silva,ana@example.com\n", Some("control-room")),
        ("username,firstName,email\nuser00001,Ana,ana@example.com\n", Some("control-room")),
        ("user_email,First Name\nuser00001@example.com,Ana\n", Some("hub")),
        // Nothing but what every platform's HR export has.
        ("Email,First Name,Last Name\nuser00001@example.com,Ana,Silva\n", None),
    ];
    for (text, platform) in cases {
        let f = write(dir.path(), "d.csv", text);
        let out = validate(&f, &dir.path().join("r.csv"), &[]);
        let err = stderr_of(&out);
        match platform {
            Some(p) => {
                assert_eq!(out.status.code(), Some(0), "{text}: {err}");
                assert!(
                    err.contains(&format!("checking rows for {p}")),
                    "{text}: {err}"
                );
            }
            None => {
                assert_eq!(out.status.code(), Some(2), "{text}: {err}");
                assert!(
                    err.contains("fits more than one platform (hub, identity)"),
                    "{err}"
                );
            }
        }
    }
    // On identity the HR headers land on its own fields.
    let f = write(
        dir.path(),
        "id.csv",
        "Email Address,Given Name,Family Name,displayName\nuser00003@example.com,Ada,Byron,Ada Byron\n",
    );
    let plan = dir.path().join("plan.csv");
    let out = bulkedit()
        .arg("apply")
        .arg(&f)
        .args(["--sandbox", "--dry-run", "--report"])
        .arg(&plan)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let row = &read_report(&plan)[0];
    assert_eq!(row["status"], "would-update");
    // Wherever the report says what changes (its `changes` column, or `error` before it had one).
    let said = row.get("changes").unwrap_or(&row["error"]);
    assert!(
        said.starts_with("name: ") && said.contains("Ada") && said.contains("surname: "),
        "{said}"
    );
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

/// The hub users of a sandbox as it holds them now.
fn hub_users(sb: &bulkedit::sandbox::Sandbox) -> Vec<serde_json::Value> {
    let state: serde_json::Value = http_client()
        .build()
        .unwrap()
        .get(format!("{}/_sandbox/state", sb.base_url()))
        .send()
        .unwrap()
        .json()
        .unwrap();
    state["hub"].as_array().unwrap().clone()
}

#[test]
fn a_hub_status_column_is_the_user_status_and_must_agree_with_is_active_and_invite_status() {
    let dir = tempdir();
    let f = write(
        dir.path(),
        "status.csv",
        "Email,Status,Is Active,Invite Status\n\
         user00001@example.com,inactive,,\n\
         user00002@example.com,NOT INVITED,,\n\
         user00003@example.com,Pending,,2\n\
         user00004@example.com,Active,,\n\
         user00005@example.com,Inactive,0,0\n\
         user00006@example.com,Active,0,\n\
         user00007@example.com,Pending,,3\n\
         user00008@example.com,Retired,,\n",
    );
    let report = dir.path().join("r.csv");
    let out = validate(&f, &report, &[]);
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(!err.contains("'Status'"), "mapped, not ignored: {err}");
    let r = read_report(&report);
    assert_eq!(
        statuses(&r),
        pairs(&[
            ("2", "valid"),
            ("3", "valid"),
            ("4", "valid"),
            ("5", "valid"),
            ("6", "valid"),
            ("7", "invalid"),
            ("8", "invalid"),
            ("9", "invalid"),
        ])
    );
    assert_eq!(
        r[5]["error"],
        "Status: Active contradicts Is Active 0 on the same row (give one of them, or values that agree)"
    );
    assert!(
        r[6]["error"].contains("contradicts Invite Status 3"),
        "{}",
        r[6]["error"]
    );
    assert!(
        r[7]["error"].contains("not one of Active, Inactive, Pending, Not invited"),
        "{}",
        r[7]["error"]
    );

    // Applied, each valid row leaves the user with the pair its status stands for.
    let sb =
        bulkedit::sandbox::Sandbox::start(bulkedit::sandbox::SandboxConfig::default()).unwrap();
    let before = hub_users(&sb);
    let applied = dir.path().join("applied.csv");
    let out = bulkedit()
        .arg("apply")
        .arg(&f)
        .args(["--url", sb.url_for("hub").as_str(), "--report"])
        .arg(&applied)
        .env("BULKEDIT_TOKEN", "sandbox-tenant/sandbox-token")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    let after = hub_users(&sb);
    let pair = |users: &[serde_json::Value], i: usize| {
        let u = users
            .iter()
            .find(|u| u["user_email"] == format!("user{i:05}@example.com"))
            .unwrap();
        (
            u["user_invite_status"].as_i64().unwrap(),
            u["user_is_active"].as_i64().unwrap(),
        )
    };
    // (invite status, is active), as UiPath's status table writes them.
    assert_eq!(
        pair(&after, 1),
        (1, 0),
        "inactive as UiPath's procedure sends it"
    );
    assert_eq!(pair(&after, 2), (0, 1), "not invited");
    assert_eq!(
        pair(&after, 3),
        (2, 1),
        "pending, as the row's invite status says"
    );
    assert_eq!(pair(&after, 4), (3, 1), "active");
    assert_eq!(
        pair(&after, 5),
        (0, 0),
        "inactive, as the row's own pair says"
    );
    for i in 6..=8 {
        assert_eq!(
            pair(&after, i),
            pair(&before, i),
            "row {} was not sent",
            i + 1
        );
    }
}
