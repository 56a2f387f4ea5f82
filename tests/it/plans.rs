//! What a run changes, said and kept: the report's `changes` column (`Field: before → after`),
//! for a dry run's plan and a real run's updated rows alike, and a report fed back in.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

use crate::common::*;
use bulkedit::sandbox::{Sandbox, SandboxConfig};
use serde_json::Value;

const IDENTITY_ENV: [(&str, &str); 2] = [
    ("BULKEDIT_CLIENT_ID", "sandbox-client"),
    ("BULKEDIT_CLIENT_SECRET", "sandbox-secret"),
];
const CR_ENV: [(&str, &str); 2] = [
    ("BULKEDIT_USERNAME", "sandbox"),
    ("BULKEDIT_PASSWORD", "sandbox-password"),
];
const HUB_ENV: [(&str, &str); 1] = [("BULKEDIT_TOKEN", "sandbox-tenant/sandbox-token")];

fn apply(
    sb: &Sandbox,
    platform: &str,
    file: &Path,
    report: &Path,
    env: &[(&str, &str)],
    extra: &[&str],
) -> Output {
    let mut cmd = bulkedit();
    cmd.arg("apply")
        .arg(file)
        .args(["--platform", platform, "--url"])
        .arg(sb.url_for(platform).as_str())
        .args(["--rate", "unlimited", "--report"])
        .arg(report)
        .args(extra);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn row<'a>(rows: &'a [BTreeMap<String, String>], n: &str) -> &'a BTreeMap<String, String> {
    rows.iter()
        .find(|r| r["row"] == n)
        .unwrap_or_else(|| panic!("row {n} in {rows:?}"))
}

fn user<'a>(state: &'a Value, platform: &str, key: &str, value: &str) -> &'a Value {
    state[platform]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u[key].as_str() == Some(value))
        .unwrap_or_else(|| panic!("{platform} user {key}={value}"))
}

/// A platform, its sheet, and the credentials for the sandbox.
type Sheet = (
    &'static str,
    PathBuf,
    &'static [(&'static str, &'static str)],
);

/// One sheet per platform: two users edited, one left as it is.
fn sheets(dir: &Path) -> Vec<Sheet> {
    vec![
        (
            "hub",
            write(
                dir,
                "hub.csv",
                "user_email,user_first_name,user_department,Roles\n\
                 user00001@example.com,O'Neil,,2; 8\n\
                 user00002@example.com,First00002,,\n\
                 user00003@example.com,,#clear,\n",
            ),
            &HUB_ENV,
        ),
        (
            "identity",
            write(
                dir,
                "identity.csv",
                "email,surname,isActive\n\
                 user00001@example.com,\"Lee; Jr\",false\n\
                 user00002@example.com,Last00002,\n\
                 user00003@example.com,Byron,\n",
            ),
            &IDENTITY_ENV,
        ),
        (
            "control-room",
            write(
                dir,
                "control-room.csv",
                "username,lastName,disabled\n\
                 user00001,Silva,true\n\
                 user00002,Last00002,\n\
                 user00003,,false\n",
            ),
            &CR_ENV,
        ),
    ]
}

/// What each sheet's rows 2 and 4 change, as the `changes` column says it.
fn expected(platform: &str) -> (&'static str, &'static str) {
    match platform {
        "hub" => (
            "user_first_name: 'First00001' → 'O''Neil'; user_roles: 'Standard User' → 'System Admin; Standard User'",
            // A department the sandbox seeds, cleared.
            "user_department: 'IT' → (empty)",
        ),
        "identity" => (
            "surname: 'Last00001' → 'Lee; Jr'; isActive: true → false",
            "surname: 'Last00003' → 'Byron'",
        ),
        _ => (
            "lastName: 'Last00001' → 'Silva'; disabled: false → true",
            "",
        ),
    }
}

#[test]
fn a_dry_run_says_what_would_change_in_changes_and_leaves_error_empty() {
    let sb = Sandbox::start(SandboxConfig::default()).unwrap();
    let dir = tempdir();
    let before = sb.state();
    for (platform, sheet, env) in sheets(dir.path()) {
        let plan = dir.path().join(format!("{platform}-plan.csv"));
        let out = apply(&sb, platform, &sheet, &plan, env, &["--dry-run"]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{platform}: {}",
            stderr_of(&out)
        );
        let header = report_header(&plan);
        assert_eq!(
            header[..6],
            [
                "row",
                "status",
                "error",
                "changes",
                "http_status",
                "attempts"
            ]
        );
        let rows = read_report(&plan);
        let (two, four) = expected(platform);
        assert_eq!(
            (
                row(&rows, "2")["status"].as_str(),
                row(&rows, "2")["error"].as_str()
            ),
            ("would-update", ""),
            "{platform}: {rows:?}"
        );
        assert_eq!(row(&rows, "2")["changes"], two, "{platform}");
        assert_eq!(row(&rows, "3")["status"], "unchanged", "{platform}");
        assert_eq!(row(&rows, "3")["changes"], "", "{platform}");
        assert_eq!(row(&rows, "4")["changes"], four, "{platform}: {rows:?}");
    }
    assert_eq!(sb.state(), before, "a dry run writes nothing");
}

#[test]
fn updated_rows_carry_their_changes_and_the_report_fed_back_in_changes_nothing_more() {
    let sb = Sandbox::start(SandboxConfig::default()).unwrap();
    let dir = tempdir();
    for (platform, sheet, env) in sheets(dir.path()) {
        let report = dir.path().join(format!("{platform}-report.csv"));
        let out = apply(&sb, platform, &sheet, &report, env, &[]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{platform}: {}",
            stderr_of(&out)
        );
        let rows = read_report(&report);
        let (two, _) = expected(platform);
        assert_eq!(row(&rows, "2")["status"], "updated", "{platform}: {rows:?}");
        assert_eq!(row(&rows, "2")["changes"], two, "{platform}");
        assert_eq!(row(&rows, "2")["error"], "", "{platform}");

        // The report is an input: its own columns, `changes` among them, are not fields,
        // and every row is now as it asks.
        let state = sb.state();
        let again = dir.path().join(format!("{platform}-again.csv"));
        let out = apply(&sb, platform, &report, &again, env, &[]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{platform}: {}",
            stderr_of(&out)
        );
        let header = report_header(&again);
        assert_eq!(
            header.iter().filter(|h| *h == "changes").count(),
            1,
            "{header:?}"
        );
        let rows = read_report(&again);
        assert!(
            rows.iter()
                .all(|r| r["status"] == "unchanged" && r["changes"].is_empty()),
            "{platform}: {rows:?}"
        );
        assert_eq!(sb.state(), state, "{platform}");
    }
    let state = sb.state();
    assert_eq!(
        user(&state, "hub", "user_email", "user00001@example.com")["user_first_name"],
        "O'Neil"
    );
    assert_eq!(
        user(&state, "identity", "email", "user00001@example.com")["surname"],
        "Lee; Jr"
    );
    assert_eq!(
        user(&state, "control_room", "username", "user00001")["disabled"],
        true
    );
}

#[test]
fn a_workbook_report_and_its_failures_file_have_the_changes_column_too() {
    let sb = Sandbox::start(SandboxConfig::default()).unwrap();
    let dir = tempdir();
    let sheet = write(
        dir.path(),
        "in.csv",
        "username,lastName\nuser00001,Silva\nnobody,Smith\n",
    );
    let report = dir.path().join("report.xlsx");
    let out = apply(
        &sb,
        "control-room",
        &sheet,
        &report,
        &CR_ENV,
        &["--dry-run"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    // `bulkedit rows` reads the workbook as `apply` would: a report's columns and all.
    let rows = rows_of(&report);
    let cells = |r: &Value| -> Vec<String> {
        r.get("cells")
            .or_else(|| r.get("header"))
            .and_then(Value::as_array)
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap_or_default().to_string())
            .collect()
    };
    assert_eq!(rows.len(), 3, "a header and two rows: {rows:?}");
    assert_eq!(cells(&rows[0])[..4], ["row", "status", "error", "changes"]);
    let first = cells(&rows[1]);
    assert_eq!(first[1], "would-update", "{first:?}");
    assert_eq!(first[2], "");
    assert_eq!(first[3], "lastName: 'Last00001' → 'Silva'");
    let failures = dir.path().join("report-failures.xlsx");
    let failed = cells(&rows_of(&failures)[1]);
    assert_eq!((failed[1].as_str(), failed[3].as_str()), ("not-found", ""));
}

#[test]
fn resuming_into_a_report_without_the_changes_column_is_refused_and_keeps_it() {
    let sb = Sandbox::start(SandboxConfig::default()).unwrap();
    let dir = tempdir();
    let sheet = write(dir.path(), "in.csv", "username,lastName\nuser00001,Silva\n");
    let report = dir.path().join("report.csv");
    let out = apply(&sb, "control-room", &sheet, &report, &CR_ENV, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    // The same report as an older bulkedit wrote it, before it had a `changes` column.
    let old = "row,status,error,http_status,attempts,username,lastName\n2,updated,,200,2,user00001,Silva\n";
    std::fs::write(&report, old).unwrap();
    let state = sb.state();
    let out = apply(&sb, "control-room", &sheet, &report, &CR_ENV, &["--resume"]);
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("other columns") && err.contains("before reports had a changes column"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&report).unwrap(), old);
    assert_eq!(sb.state(), state);
}

/// A plan approves only its `would-…` rows. A row its dry run showed `unchanged` (an export's
/// row for a user nobody edited) that would now change something, because someone changed
/// that user on the server since, is `drifted`, not a write putting back what they did; so is a
/// row added to the plan by hand after its dry run.
#[test]
fn a_plan_sends_nothing_for_a_row_its_dry_run_did_not_mark_to_change() {
    let sb = Sandbox::start(SandboxConfig {
        users: 10,
        ..SandboxConfig::default()
    })
    .unwrap();
    let dir = tempdir();
    let dept = |email: &str| {
        user(&sb.state(), "hub", "user_email", email)["user_department"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let sheet = write(
        dir.path(),
        "sheet.csv",
        format!(
            "user_email,user_department\n\
             user00001@example.com,Treasury\n\
             user00002@example.com,{}\n",
            dept("user00002@example.com")
        ),
    );
    let plan = dir.path().join("plan.csv");
    let out = apply(&sb, "hub", &sheet, &plan, &HUB_ENV, &["--dry-run"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let rows = read_report(&plan);
    assert_eq!(
        statuses(&rows),
        pairs(&[("2", "would-update"), ("3", "unchanged")])
    );

    // Another admin moves user 2 after the plan was approved.
    let other = write(
        dir.path(),
        "other.csv",
        "user_email,user_department\nuser00002@example.com,Legal\n",
    );
    let out = apply(
        &sb,
        "hub",
        &other,
        &dir.path().join("other-report.csv"),
        &HUB_ENV,
        &["--yes"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    // And a row is added to the plan by hand.
    let mut text = std::fs::read_to_string(&plan).unwrap();
    let added: Vec<&str> = text
        .lines()
        .next()
        .unwrap()
        .split(',')
        .map(|column| match column {
            "user_email" => "user00003@example.com",
            "user_department" => "Audit",
            _ => "",
        })
        .collect();
    text.push_str(&format!("{}\n", added.join(",")));
    std::fs::write(&plan, text).unwrap();
    let before3 = dept("user00003@example.com");

    let report = dir.path().join("applied.csv");
    let out = apply(&sb, "hub", &plan, &report, &HUB_ENV, &["--yes"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    let rows = read_report(&report);
    assert_eq!(
        statuses(&rows),
        pairs(&[("2", "updated"), ("3", "drifted"), ("4", "drifted")])
    );
    for n in ["3", "4"] {
        let error = &row(&rows, n)["error"];
        assert!(
            error.contains("the plan sends nothing for this row")
                && error.contains("user_department"),
            "row {n}: {error}"
        );
    }
    assert_eq!(dept("user00001@example.com"), "Treasury");
    assert_eq!(
        dept("user00002@example.com"),
        "Legal",
        "the other admin's change stands"
    );
    assert_eq!(dept("user00003@example.com"), before3);
}
