//! The way back: every run that changes users writes an undo file beside its report, and
//! applying it puts the server back as the run found it, field for field, roles and groups
//! included; users the run created are deactivated and users it deactivated are active again.
//! Through the real binary against a real sandbox on loopback.

use std::path::{Path, PathBuf};

use crate::common::*;
use bulkedit::sandbox::{Sandbox, SandboxConfig};
use proptest::prelude::*;
use serde_json::Value;

struct Case {
    platform: &'static str,
    /// The sandbox state's name for the platform, and the field that tells users apart.
    state: &'static str,
    id: &'static str,
    env: &'static [(&'static str, &'static str)],
    /// Edits a person would make: a text field changed, one emptied or filled, roles or
    /// groups changed, a user deactivated, user 5 left out of the roster, a new user.
    sheet: &'static str,
}

const CASES: [Case; 3] = [
    Case {
        platform: "hub",
        state: "hub",
        id: "user_email",
        env: &[("BULKEDIT_TOKEN", "sandbox-tenant/sandbox-token")],
        sheet: "user_email,user_first_name,user_last_name,user_department,user_roles,Status\n\
                user00001@example.com,,,Treasury,,\n\
                user00002@example.com,,,,Program Manager; Standard User,\n\
                user00003@example.com,,,,,Inactive\n\
                user00004@example.com,,,#clear,,\n\
                user00006@example.com,,,,,\n\
                new.one@example.com,New,One,,,\n",
    },
    Case {
        platform: "identity",
        state: "identity",
        id: "id",
        env: &[
            ("BULKEDIT_CLIENT_ID", "sandbox-client"),
            ("BULKEDIT_CLIENT_SECRET", "sandbox-secret"),
        ],
        sheet: "userId,email,name,surname,displayName,isActive,bypassBasicAuthRestriction,groupIDsToAdd,groupIDsToRemove\n\
                00000000-0000-4000-8000-000000000001,,,,,,true,,\n\
                00000000-0000-4000-8000-000000000002,,Ana,,Ana Two,,,,\n\
                00000000-0000-4000-8000-000000000003,,,,,,,10000000-0000-4000-8000-000000000003,10000000-0000-4000-8000-000000000001\n\
                00000000-0000-4000-8000-000000000004,,,,,false,,,\n\
                00000000-0000-4000-8000-000000000006,,,,,,,,\n\
                ,new.one@example.com,New,One,,,,,\n",
    },
    Case {
        platform: "control-room",
        state: "control_room",
        id: "id",
        env: &[
            ("BULKEDIT_USERNAME", "sandbox"),
            ("BULKEDIT_PASSWORD", "sandbox-password"),
        ],
        sheet: "id,username,email,firstName,lastName,description,domain,roles,disabled,password\n\
                1,,,,,Finance bot runner,,,,\n\
                2,,,Ana,,,corp,,,\n\
                3,,,,,,,AAE_Basic; Bot Runner,,\n\
                4,,,,,,,,true,\n\
                6,,,,,,,,,\n\
                ,new.one,new.one@example.com,New,One,,,AAE_Basic,,Fine_Pass-01\n",
    },
];

/// Users 1 to 6 only: the roster sheets name the others by leaving them out.
fn sandbox() -> Sandbox {
    sandbox_of(6)
}

fn sandbox_of(users: usize) -> Sandbox {
    Sandbox::start(SandboxConfig {
        users,
        ..SandboxConfig::default()
    })
    .unwrap()
}

fn apply(
    sb: &Sandbox,
    case: &Case,
    file: &Path,
    report: &Path,
    extra: &[&str],
) -> std::process::Output {
    bulkedit()
        .arg("apply")
        .arg(file)
        .args(["--platform", case.platform, "--url"])
        .arg(sb.url_for(case.platform).as_str())
        .args(["--rate", "unlimited", "--yes", "--report"])
        .arg(report)
        .args(extra)
        .envs(case.env.iter().copied())
        .output()
        .unwrap()
}

/// A platform's users by their id, without what the server alone manages (versions, times)
/// and with a text the server held as null read as empty, as a sheet cell reads it.
fn users(sb: &Sandbox, case: &Case) -> Vec<(String, Value)> {
    let mut out: Vec<(String, Value)> = sb.state()[case.state]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            let mut u = u.clone();
            let map = u.as_object_mut().unwrap();
            for managed in ["version", "updatedOn", "updatedBy", "lastModificationTime"] {
                map.remove(managed);
            }
            for v in map.values_mut() {
                if v.is_null() {
                    *v = Value::String(String::new());
                }
            }
            (u[case.id].to_string(), u)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn is_active(case: &Case, u: &Value) -> bool {
    match case.platform {
        "hub" => u["user_is_active"] == 1,
        "identity" => u["isActive"] == true,
        _ => u["disabled"] == false,
    }
}

/// Runs `case`'s edits with --create and --deactivate-missing, then its undo file; the
/// server must be as before, but for the created user, who stays and is inactive.
fn round_trip(case: &Case, report_name: &str) {
    round_trip_on(&sandbox(), case, report_name, &[]);
}

/// [`round_trip`] on `sb`, with `more` arguments to both runs: the first run's report rows.
fn round_trip_on(
    sb: &Sandbox,
    case: &Case,
    report_name: &str,
    more: &[&str],
) -> Vec<std::collections::BTreeMap<String, String>> {
    let dir = tempdir();
    let before = users(sb, case);
    let sheet = write(dir.path(), "edit.csv", case.sheet);
    let report = dir.path().join(report_name);
    let mut extra = vec!["--create", "--deactivate-missing", "--keep", "sandbox"];
    extra.extend(more);
    let out = apply(sb, case, &sheet, &report, &extra);
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(0), "{}: {err}", case.platform);
    let undo = bulkedit::report::undo_path(&report);
    assert!(undo.exists(), "{}: {err}", case.platform);
    assert!(
        err.contains(&format!("undo: {} (6 users;", undo.display())),
        "the summary names it: {err}"
    );
    let changed = users(sb, case);
    assert_ne!(changed, before, "{}: the edits were made", case.platform);

    let undo_report = dir.path().join(format!("undo-{report_name}"));
    // A workbook report is read as a sheet elsewhere; here only a CSV one is handed back.
    let rows = if report_name.ends_with(".csv") {
        read_report(&report)
    } else {
        Vec::new()
    };
    let out = apply(sb, case, &undo, &undo_report, more);
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(0), "{}: {err}", case.platform);
    let after = users(sb, case);
    let (created, kept): (Vec<_>, Vec<_>) = after
        .into_iter()
        .partition(|(id, _)| !before.iter().any(|(b, _)| b == id));
    assert_eq!(created.len(), 1, "{}: {created:?}", case.platform);
    assert!(
        !is_active(case, &created[0].1),
        "{}: the created user is deactivated: {created:?}",
        case.platform
    );
    for ((id, b), (_, a)) in before.iter().zip(&kept) {
        assert_eq!(a, b, "{}: user {id} is back as it was", case.platform);
    }
    assert_eq!(kept.len(), before.len());
    rows
}

#[test]
fn hub_undo_puts_back_every_field_roles_and_activity() {
    round_trip(&CASES[0], "report.csv");
}

#[test]
fn identity_undo_puts_back_every_field_and_moves_groups_back() {
    round_trip(&CASES[1], "report.csv");
}

#[test]
fn control_room_undo_puts_back_every_field_roles_and_empties_what_was_empty() {
    round_trip(&CASES[2], "report.csv");
}

/// Writes and creates whose answers were lost on the way back, each retried and then shown
/// made by a read of the user, are in the undo file like any other change: the way back does
/// not depend on the answers arriving.
#[test]
fn changes_whose_answers_were_lost_are_put_back_too() {
    for case in &CASES {
        let sb = Sandbox::start(SandboxConfig {
            users: 6,
            faults: bulkedit::sandbox::Faults {
                reset_rate: 0.4,
                seed: 11,
                ..Default::default()
            },
            ..SandboxConfig::default()
        })
        .unwrap();
        let rows = round_trip_on(&sb, case, "report.csv", &["--retries", "30"]);
        assert!(
            rows.iter()
                .any(|r| r["attempts"].parse::<u32>().unwrap() > 1),
            "{}: some answers were lost: {rows:?}",
            case.platform
        );
    }
}

#[test]
fn a_workbook_report_gets_a_workbook_undo_file_that_applies_as_well() {
    round_trip(&CASES[1], "report.xlsx");
}

#[test]
fn a_dry_run_or_a_run_that_changes_nothing_writes_no_undo_file() {
    let case = &CASES[0];
    let sb = sandbox();
    let dir = tempdir();
    let sheet = write(dir.path(), "edit.csv", case.sheet);
    let report = dir.path().join("report.csv");
    let out = apply(&sb, case, &sheet, &report, &["--dry-run", "--create"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert!(!bulkedit::report::undo_path(&report).exists());
    assert!(!stderr_of(&out).contains("undo:"));
    let same = write(
        dir.path(),
        "same.csv",
        "user_email,user_department\nuser00001@example.com,Finance\n",
    );
    let out = apply(&sb, case, &same, &report, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert_eq!(read_report(&report)[0]["status"], "unchanged");
    assert!(!bulkedit::report::undo_path(&report).exists());
}

/// A hub run that moves user 1 to Treasury, its report in a directory of its own.
fn first_hub_run() -> (Sandbox, tempfile::TempDir, PathBuf) {
    let sb = sandbox();
    let dir = tempdir();
    let report = dir.path().join("report.csv");
    let first = write(
        dir.path(),
        "first.csv",
        "user_email,user_department\nuser00001@example.com,Treasury\n",
    );
    let out = apply(&sb, &CASES[0], &first, &report, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    (sb, dir, report)
}

#[test]
fn a_second_run_on_the_same_report_keeps_the_first_runs_undo_file_beside_its_report() {
    let case = &CASES[0];
    let (sb, dir, report) = first_hub_run();
    let second = write(
        dir.path(),
        "second.csv",
        "user_email,user_department\nuser00002@example.com,Audit\n",
    );
    let out = apply(&sb, case, &second, &report, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let mut undo_files: Vec<PathBuf> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with("-undo.csv"))
        .collect();
    undo_files.sort();
    assert_eq!(undo_files.len(), 2, "{undo_files:?}");
    let kept = undo_files
        .iter()
        .find(|p| **p != bulkedit::report::undo_path(&report))
        .unwrap();
    let kept_text = std::fs::read_to_string(kept).unwrap();
    assert!(
        kept_text.contains("user00001@example.com,Finance"),
        "{kept_text}"
    );
    let text = std::fs::read_to_string(bulkedit::report::undo_path(&report)).unwrap();
    assert!(text.contains("user00002@example.com,HR"), "{text}");
    assert!(!text.contains("user00001"), "{text}");
}

#[test]
fn a_password_cannot_be_put_back_and_the_summary_says_so() {
    let case = &CASES[2];
    let sb = sandbox();
    let dir = tempdir();
    let sheet = write(
        dir.path(),
        "pw.csv",
        "id,description,password\n2,Night shift,Fine_Pass-02\n",
    );
    let report = dir.path().join("report.csv");
    let out = apply(&sb, case, &sheet, &report, &[]);
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("cannot put back: password on 1 user"), "{err}");
    let undo = std::fs::read_to_string(bulkedit::report::undo_path(&report)).unwrap();
    assert_eq!(
        undo.trim_start_matches('\u{feff}'),
        "id,description\n2,#clear\n"
    );
}

#[test]
fn the_undo_file_cannot_be_the_input_of_a_run_whose_report_it_belongs_to() {
    let case = &CASES[0];
    let (sb, _dir, report) = first_hub_run();
    let undo = bulkedit::report::undo_path(&report);
    let out = apply(&sb, case, &undo, &report, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
    assert!(stderr_of(&out).contains("undo file would be written to"));
    assert!(undo.exists(), "the undo file is still there");
}

/// Control Room users 1 to 60: rows 1 to 40 edited, 41 to 55 kept as they are, 56 to 60 left
/// out of the roster; ten new users created.
fn killable_sheet(dir: &Path) -> PathBuf {
    let mut text =
        String::from("id,username,email,firstName,lastName,description,roles,password\n");
    for i in 1..=55 {
        let description = if i <= 40 {
            format!("Shift {i}")
        } else {
            String::new()
        };
        text.push_str(&format!("{i},,,,,{description},,\n"));
    }
    for n in 1..=10 {
        text.push_str(&format!(
            ",joiner{n:02},joiner{n:02}@example.com,Join,Er{n:02},,AAE_Basic,Fine_Pass-{n:02}\n"
        ));
    }
    write(dir, "roster.csv", text)
}

#[test]
fn a_run_killed_while_creating_and_deactivating_resumes_doing_each_exactly_once_and_its_undo_covers_both_attempts(
) {
    let case = &CASES[2];
    let sb = Sandbox::start(SandboxConfig {
        users: 60,
        // Every change is made at once and answered 20 ms later: a run killed with a write
        // on the wire has had that write made, as on a real server.
        faults: bulkedit::sandbox::Faults {
            slow_rate: 1.0,
            slow: std::time::Duration::from_millis(20),
            ..Default::default()
        },
        ..SandboxConfig::default()
    })
    .unwrap();
    let dir = tempdir();
    let before = users(&sb, case);
    let sheet = killable_sheet(dir.path());
    let report = dir.path().join("report.csv");
    let args = |resume: bool| {
        let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("bulkedit"));
        cmd.arg("apply")
            .arg(&sheet)
            .args(["--platform", "control-room", "--url"])
            .arg(sb.url_for("control-room").as_str())
            .args(["--rate", "40/s", "--concurrency", "4", "--yes", "--create"])
            .args(["--deactivate-missing", "--keep", "sandbox", "--report"])
            .arg(&report)
            .envs(case.env.iter().copied());
        if resume {
            cmd.arg("--resume");
        }
        cmd
    };
    let mut run = args(false)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Killed (SIGKILL: nothing of its own cleans up) past a third of the rows, at a moment
    // the server has made a write whose answer the run has not journaled yet.
    let writes = || {
        sb.requests()
            .iter()
            .filter(|r| {
                (r.method == "PUT" && r.path.contains("/v1/usermanagement/users/"))
                    || (r.method == "POST" && r.path.ends_with("/v1/usermanagement/users"))
            })
            .count()
    };
    loop {
        let text = std::fs::read_to_string(&report).unwrap_or_default();
        let journaled = text
            .lines()
            .filter(|l| l.contains(",updated,") || l.contains(",created,"))
            .count();
        if journaled > 20 && writes() > journaled {
            run.kill().unwrap();
            run.wait().unwrap();
            break;
        }
        assert!(
            run.try_wait().unwrap().is_none(),
            "the run ended before it was killed"
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    // The note of the write on the wire is there for the resumed run to find.
    assert!(dir.path().join(".report.csv.sending").exists());
    let out = args(true).output().unwrap();
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("resumed:"), "{err}");
    assert!(
        !dir.path().join(".report.csv.sending").exists(),
        "a finished run leaves no notes behind"
    );
    let lines = read_report(&report);
    let count = |status: &str| lines.iter().filter(|l| l["status"] == status).count();
    assert_eq!(
        (
            count("updated"),
            count("unchanged"),
            count("created"),
            count("deactivated")
        ),
        (40, 15, 10, 5),
        "every row and every leaver once: {:?}",
        lines
            .iter()
            .map(|l| format!("{} {} {}", l["row"], l["id"], l["status"]))
            .collect::<Vec<_>>()
    );
    // Each user written at most once, each joiner created once.
    let requests = sb.requests();
    for id in 1..=60 {
        let puts = requests
            .iter()
            .filter(|r| {
                r.method == "PUT" && r.path.ends_with(&format!("/v1/usermanagement/users/{id}"))
            })
            .count();
        assert_eq!(
            puts,
            usize::from(id <= 40 || id > 55),
            "user {id} was written {puts} times"
        );
    }
    let creates = requests
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/v1/usermanagement/users"))
        .count();
    assert_eq!(creates, 10, "no joiner created twice");
    let joiners = users(&sb, case)
        .into_iter()
        .filter(|(_, u)| u["username"].as_str().unwrap().starts_with("joiner"))
        .count();
    assert_eq!(joiners, 10);

    // The resumed run's undo file puts back what both attempts did.
    let undo = bulkedit::report::undo_path(&report);
    let out = apply(&sb, case, &undo, &dir.path().join("undo-report.csv"), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let after = users(&sb, case);
    for (id, b) in &before {
        let a = &after.iter().find(|(i, _)| i == id).unwrap().1;
        assert_eq!(a, b, "user {id} is back as it was");
    }
    let active_joiners = after
        .iter()
        .filter(|(_, u)| {
            u["username"].as_str().unwrap().starts_with("joiner") && is_active(case, u)
        })
        .count();
    assert_eq!(active_joiners, 0, "the joiners are deactivated");
}

/// A cell a person might type into a text column: left empty, emptied, or some text.
fn text_cell() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("#clear".to_string()),
        "[A-Za-z][A-Za-z ']{0,11}".prop_map(|s| s.trim().to_string()),
    ]
}

fn choice(options: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop::sample::select(options).prop_map(str::to_string)
}

/// Some of `names`, or none (the cell left empty), joined as a list cell.
fn some_of(names: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop::sample::subsequence(names, 0..=names.len()).prop_map(|picked| picked.join("; "))
}

/// One row of edits for user `i` of `platform`, in the columns of [`random_sheet`].
fn random_row(platform: usize) -> BoxedStrategy<Vec<String>> {
    match platform {
        0 => (
            text_cell(),
            text_cell(),
            some_of(&["Standard User", "Program Manager", "Idea Approver"]),
            choice(&["", "Active", "Inactive"]),
        )
            .prop_map(|(a, b, c, d)| vec![a, b, c, d])
            .boxed(),
        1 => (
            text_cell(),
            choice(&["", "true", "false"]),
            choice(&["", "true", "false"]),
            prop::collection::vec(0u8..3, 3),
        )
            .prop_map(|(name, active, bypass, moves)| {
                // Each of three groups is added, removed, or left alone.
                let group = |n: usize| format!("10000000-0000-4000-8000-00000000000{}", n + 2);
                let pick = |m: u8| -> String {
                    let ids: Vec<String> = (0..3).filter(|&g| moves[g] == m).map(group).collect();
                    ids.join("; ")
                };
                vec![name, active, bypass, pick(1), pick(2)]
            })
            .boxed(),
        _ => (
            text_cell(),
            text_cell(),
            some_of(&["AAE_Basic", "Bot Creator", "Bot Runner"]),
            choice(&["", "true", "false"]),
        )
            .prop_map(|(a, b, c, d)| vec![a, b, c, d])
            .boxed(),
    }
}

/// A sheet of `rows` (user `i + 1` on each, where `Some`) in the platform's columns.
fn random_sheet(platform: usize, rows: &[Option<Vec<String>>]) -> String {
    let header = [
        "user_email,user_department,user_job_title,user_roles,Status",
        "userId,displayName,isActive,bypassBasicAuthRestriction,groupIDsToAdd,groupIDsToRemove",
        "id,description,domain,roles,disabled",
    ][platform];
    let mut out = format!("{header}\n");
    for (i, row) in rows.iter().enumerate() {
        let Some(cells) = row else { continue };
        let n = i + 1;
        let key = match platform {
            0 => format!("user{n:05}@example.com"),
            1 => format!("00000000-0000-4000-8000-{n:012}"),
            _ => n.to_string(),
        };
        let quoted: Vec<String> = cells.iter().map(|c| format!("\"{c}\"")).collect();
        out.push_str(&format!("{key},{}\n", quoted.join(",")));
    }
    out
}

fn random_edits() -> impl Strategy<Value = (usize, Vec<Option<Vec<String>>>)> {
    (0usize..3).prop_flat_map(|p| {
        (
            Just(p),
            prop::collection::vec(prop::option::of(random_row(p)), 8),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// For any edits a person might make to users of any platform, applying them and then the
    /// run's undo file leaves every user as it was (what only the server manages aside).
    #[test]
    fn apply_then_its_undo_file_puts_every_user_back((platform, rows) in random_edits()) {
        let case = &CASES[platform];
        let sb = sandbox_of(8);
        let dir = tempdir();
        let before = users(&sb, case);
        let sheet = write(dir.path(), "edit.csv", random_sheet(platform, &rows));
        let report = dir.path().join("report.csv");
        let out = apply(&sb, case, &sheet, &report, &[]);
        prop_assert!(matches!(out.status.code(), Some(0 | 1)), "{}", stderr_of(&out));
        let undo = bulkedit::report::undo_path(&report);
        if undo.exists() {
            let out = apply(&sb, case, &undo, &dir.path().join("undo-report.csv"), &[]);
            prop_assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
        } else {
            let wrote = read_report(&report).iter().any(|l| l["status"] == "updated");
            prop_assert!(!wrote, "a run that wrote left no undo file");
        }
        let after = users(&sb, case);
        prop_assert_eq!(after, before);
    }
}

/// What another admin changes on one of the users a plan changes, between its dry run and
/// its apply: a sheet of one row, and the report row of the plan it moves.
fn moved_by_someone_else(case: &Case) -> (&'static str, &'static str) {
    match case.platform {
        "hub" => (
            "user_email,user_department\nuser00001@example.com,Audit\n",
            "2",
        ),
        "identity" => (
            "userId,displayName\n00000000-0000-4000-8000-000000000002,Someone Else\n",
            "3",
        ),
        _ => ("id,firstName\n2,Zoe\n", "3"),
    }
}

#[test]
fn a_plan_applies_exactly_a_row_moved_since_is_drifted_and_the_undo_puts_back_the_rest() {
    for case in &CASES {
        let sb = sandbox();
        let dir = tempdir();
        let sheet = write(dir.path(), "edit.csv", case.sheet);
        let plan = dir.path().join("plan.csv");
        let out = apply(&sb, case, &sheet, &plan, &["--dry-run", "--create"]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
        let planned = read_report(&plan);
        assert!(planned.iter().any(|l| l["status"] == "would-update"));

        let (move_sheet, moved_row) = moved_by_someone_else(case);
        let other = write(dir.path(), "other.csv", move_sheet);
        let out = apply(&sb, case, &other, &dir.path().join("other-report.csv"), &[]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
        let before = users(&sb, case);

        let applied = dir.path().join("applied.csv");
        let out = apply(&sb, case, &plan, &applied, &["--create"]);
        let err = stderr_of(&out);
        assert_eq!(out.status.code(), Some(1), "{}: {err}", case.platform);
        let lines = read_report(&applied);
        for line in &lines {
            let was = &planned.iter().find(|p| p["row"] == line["row"]).unwrap()["status"];
            let expected = match (line["row"] == moved_row, was.as_str()) {
                (true, _) => "drifted",
                // A report never holds a password: a plan's must be typed again.
                (false, _) if line.get("password").is_some_and(|p| p == "***") => "invalid",
                (false, "would-update") => "updated",
                (false, "would-create") => "created",
                (false, other) => other,
            };
            assert_eq!(line["status"], expected, "{}: {line:?}", case.platform);
            if matches!(line["status"].as_str(), "updated" | "created") {
                let from_plan = &planned.iter().find(|p| p["row"] == line["row"]).unwrap();
                assert_eq!(
                    line["changes"], from_plan["changes"],
                    "{}: as planned",
                    case.platform
                );
            }
        }
        let drifted = lines.iter().find(|l| l["row"] == moved_row).unwrap();
        assert!(
            drifted["error"].starts_with("moved since the plan, so nothing was sent: "),
            "{}: {drifted:?}",
            case.platform
        );
        assert_eq!(
            users(&sb, case)
                .iter()
                .find(|(id, _)| id == &before[usize::from(moved_row == "3")].0)
                .map(|u| &u.1),
            Some(&before[usize::from(moved_row == "3")].1),
            "{}: the moved user is as the other admin left it",
            case.platform
        );

        let undo = bulkedit::report::undo_path(&applied);
        let out = apply(&sb, case, &undo, &dir.path().join("undo-report.csv"), &[]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
        let after = users(&sb, case);
        for (id, b) in &before {
            let a = &after.iter().find(|(i, _)| i == id).unwrap().1;
            assert_eq!(
                a, b,
                "{}: user {id} is back as the plan found it",
                case.platform
            );
        }
    }
}
