//! `bulkedit export` through the real binary against a real sandbox: the round trip (export,
//! apply the file unchanged, nothing written) for every platform in CSV and in a workbook,
//! an edit carried out exactly, and the preflight errors.

use std::path::{Path, PathBuf};

use bulkedit::sandbox::{Sandbox, SandboxConfig};
use serde_json::{json, Value};

use crate::common::{bulkedit, http_client, read_report, stderr_of, tempdir};

fn env_for(platform: &str) -> Vec<(&'static str, &'static str)> {
    match platform {
        "hub" => vec![("BULKEDIT_TOKEN", "sandbox-tenant/sandbox-token")],
        "identity" => vec![
            ("BULKEDIT_CLIENT_ID", "sandbox-client"),
            ("BULKEDIT_CLIENT_SECRET", "sandbox-secret"),
        ],
        _ => vec![
            ("BULKEDIT_USERNAME", "sandbox"),
            ("BULKEDIT_PASSWORD", "sandbox-password"),
        ],
    }
}

fn sandbox(users: usize) -> Sandbox {
    Sandbox::start(SandboxConfig {
        users,
        ..SandboxConfig::default()
    })
    .expect("the sandbox starts")
}

/// `bulkedit export` of `platform` into `out`, unlimited rate; its output.
fn export(sb: &Sandbox, platform: &str, out: &Path, extra: &[&str]) -> std::process::Output {
    bulkedit()
        .args(["export", "--platform", platform, "--url"])
        .arg(sb.url_for(platform).as_str())
        .args(["--rate", "unlimited", "--concurrency", "4", "-o"])
        .arg(out)
        .args(extra)
        .envs(env_for(platform))
        .output()
        .expect("runs")
}

/// `bulkedit apply` of `file`, unlimited rate; the report's rows.
fn apply(
    sb: &Sandbox,
    platform: &str,
    file: &Path,
    report: &Path,
) -> Vec<std::collections::BTreeMap<String, String>> {
    let out = bulkedit()
        .arg("apply")
        .arg(file)
        .args(["--platform", platform, "--url"])
        .arg(sb.url_for(platform).as_str())
        .args(["--rate", "unlimited", "--concurrency", "8", "--report"])
        .arg(report)
        .envs(env_for(platform))
        .output()
        .expect("runs");
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "apply: {}",
        stderr_of(&out)
    );
    read_report(report)
}

/// Requests that change users: every one but logging in, reading and listing.
fn writes(sb: &Sandbox) -> Vec<String> {
    sb.requests()
        .into_iter()
        .filter(|s| {
            let read = s.method == "GET"
                || s.path.ends_with("/list")
                || s.path.contains("/authentication")
                || s.path.ends_with("/connect/token");
            !read
        })
        .map(|s| format!("{} {}", s.method, s.path))
        .collect()
}

/// Export, then apply the file as it is: every row `unchanged`, no write sent, state as it was.
fn round_trip(platform: &str, users: usize, file: &str) {
    let sb = sandbox(users);
    let dir = tempdir();
    let path = dir.path().join(file);
    let out = export(&sb, platform, &path, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert!(out.stdout.is_empty(), "-o writes the file, not stdout");
    let before = sb.state();
    let report = apply(&sb, platform, &path, &dir.path().join("report.csv"));
    assert_eq!(report.len(), users, "one row a user");
    let moved: Vec<_> = report
        .iter()
        .filter(|r| r["status"] != "unchanged")
        .take(3)
        .collect();
    assert!(moved.is_empty(), "{moved:?}");
    assert_eq!(writes(&sb), Vec::<String>::new(), "no write was sent");
    assert_eq!(sb.state(), before);
}

#[test]
fn hub_export_applied_unchanged_sends_nothing_csv() {
    // More users than a page (500): the pages after the first are read at once.
    round_trip("hub", 1_200, "hub.csv");
}

#[test]
fn hub_export_applied_unchanged_sends_nothing_xlsx() {
    round_trip("hub", 120, "hub.xlsx");
}

#[test]
fn identity_export_applied_unchanged_sends_nothing_csv() {
    round_trip("identity", 1_100, "identity.csv");
}

#[test]
fn identity_export_applied_unchanged_sends_nothing_xlsx() {
    round_trip("identity", 120, "identity.xlsx");
}

#[test]
fn control_room_export_applied_unchanged_sends_nothing_csv() {
    round_trip("control-room", 1_100, "cr.csv");
}

#[test]
fn control_room_export_applied_unchanged_sends_nothing_xlsx() {
    round_trip("control-room", 120, "cr.xlsx");
}

#[test]
fn every_user_is_one_row_in_the_template_columns_with_role_and_group_names_where_apply_reads_them()
{
    let sb = sandbox(1_050);
    let dir = tempdir();
    for platform in ["hub", "identity", "control-room"] {
        let path = dir.path().join(format!("{platform}.csv"));
        let out = export(&sb, platform, &path, &[]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
        let template = bulkedit()
            .args(["template", "--platform", platform])
            .output()
            .unwrap();
        let template_header = String::from_utf8(template.stdout).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let text = text.strip_prefix('\u{feff}').expect("a BOM, for Excel");
        assert_eq!(
            text.lines().next(),
            template_header.lines().next(),
            "{platform}: the template's columns"
        );
        let rows = read_report(&path);
        assert_eq!(rows.len(), 1_050, "{platform}: every user once");
        let key = text.lines().next().unwrap().split(',').next().unwrap();
        let keys: std::collections::HashSet<&String> = rows.iter().map(|r| &r[key]).collect();
        assert_eq!(keys.len(), 1_050);
    }
    let hub = read_report(&dir.path().join("hub.csv"));
    assert_eq!(hub[6]["user_email"], "user00007@example.com");
    assert_eq!(hub[6]["user_department"], "HR");
    assert_eq!(
        hub[6]["user_roles"], "Standard User",
        "a default role by name"
    );
    assert_eq!(
        (
            hub[6]["user_is_active"].as_str(),
            hub[6]["user_invite_status"].as_str()
        ),
        ("1", "3")
    );
    let identity = read_report(&dir.path().join("identity.csv"));
    assert_eq!(
        identity[49]["groupIDsToAdd"], "Everyone; Administrators; Automation Developers",
        "groups by name, as apply reads them back"
    );
    assert_eq!(identity[0]["isActive"], "true");
    assert_eq!(identity[0]["password"], "", "passwords are never exported");
    let cr = read_report(&dir.path().join("control-room.csv"));
    assert_eq!(cr[41]["id"], "42");
    assert_eq!(cr[41]["roles"], "AAE_Basic", "roles by name");
    assert_eq!(cr[41]["disabled"], "false");
}

#[test]
fn an_exported_sheet_with_one_department_edited_updates_exactly_that_user() {
    let sb = sandbox(40);
    let dir = tempdir();
    let path = dir.path().join("users.csv");
    let out = export(&sb, "hub", &path, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let text = std::fs::read_to_string(&path).unwrap();
    let edited = text.replace(
        "user00007@example.com,First00007,Last00007,Analyst,HR,HR,",
        "user00007@example.com,First00007,Last00007,Analyst,HR,Treasury,",
    );
    assert_ne!(edited, text, "the row as exported");
    std::fs::write(&path, edited).unwrap();
    let before = sb.state();
    let report = apply(&sb, "hub", &path, &dir.path().join("report.csv"));
    let updated: Vec<&str> = report
        .iter()
        .filter(|r| r["status"] != "unchanged")
        .map(|r| r["user_email"].as_str())
        .collect();
    assert_eq!(updated, ["user00007@example.com"]);
    assert_eq!(report[6]["status"], "updated");
    let mut expected = before.clone();
    expected["hub"][6]["user_department"] = json!("Treasury");
    assert_eq!(sb.state(), expected, "that user's department, nothing else");
    let writes = writes(&sb);
    assert_eq!(writes.len(), 1, "{writes:?}");
}

fn hub_edit(sb: &Sandbox, body: Value) {
    let r = http_client()
        .build()
        .unwrap()
        .post(format!("{}/api/v1/openapi/edituser", sb.url_for("hub")))
        .header("Authorization", "Bearer sandbox-tenant/sandbox-token")
        .header("x-ah-openapi-auth", "openapi-token")
        .json(&body)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
}

#[test]
fn values_apply_would_read_differently_are_left_empty_in_csv_and_kept_whole_in_a_workbook() {
    let sb = sandbox(5);
    hub_edit(
        &sb,
        json!({"user_email": "user00001@example.com", "user_first_name": "=HYPERLINK(\"x\")"}),
    );
    hub_edit(
        &sb,
        json!({"user_email": "user00002@example.com", "user_job_title": " padded "}),
    );
    hub_edit(
        &sb,
        json!({"user_email": "user00003@example.com", "user_location": "#clear"}),
    );
    let dir = tempdir();
    let csv = dir.path().join("users.csv");
    let out = export(&sb, "hub", &csv, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let err = stderr_of(&out);
    assert!(err.contains("1 cells begin with = + - @"), "{err}");
    assert!(
        err.contains("2 cells have spaces around their text or read #clear"),
        "{err}"
    );
    let set_up = writes(&sb).len();
    let rows = read_report(&csv);
    assert_eq!(rows[0]["user_first_name"], "", "never a formula in a CSV");
    assert_eq!(rows[1]["user_job_title"], "");
    assert_eq!(rows[2]["user_location"], "");
    let before = sb.state();
    let report = apply(&sb, "hub", &csv, &dir.path().join("report.csv"));
    assert!(
        report.iter().all(|r| r["status"] == "unchanged"),
        "{report:?}"
    );
    // A workbook holds text as text: the formula-like name is written as it is.
    let xlsx = dir.path().join("users.xlsx");
    let out = export(&sb, "hub", &xlsx, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert!(
        !stderr_of(&out).contains("begin with"),
        "{}",
        stderr_of(&out)
    );
    let rows = crate::common::rows_of(&xlsx);
    assert_eq!(rows[1]["cells"][1], "=HYPERLINK(\"x\")");
    let report = apply(&sb, "hub", &xlsx, &dir.path().join("report2.csv"));
    assert!(
        report.iter().all(|r| r["status"] == "unchanged"),
        "{report:?}"
    );
    assert_eq!(writes(&sb).len(), set_up, "no write beside the test's own");
    assert_eq!(sb.state(), before);
}

#[test]
fn export_without_o_writes_csv_to_stdout() {
    let out = bulkedit()
        .args(["export", "--platform", "control-room", "--sandbox"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with("id,username,email,"),
        "no BOM on a pipe: {text:.40}"
    );
    assert_eq!(
        text.lines().count(),
        101,
        "a header and the sandbox's 100 users"
    );
}

#[test]
fn export_stops_before_writing_when_the_url_or_credentials_do_not_work() {
    let sb = sandbox(3);
    let dir = tempdir();
    let path: PathBuf = dir.path().join("users.csv");
    let out = bulkedit()
        .args(["export", "--platform", "hub", "--url"])
        .arg(sb.url_for("hub").as_str())
        .arg("-o")
        .arg(&path)
        .env("BULKEDIT_TOKEN", "sandbox-tenant/wrong")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
    assert!(!path.exists(), "nothing written");
    let out = bulkedit()
        .args(["export", "--platform", "control-room", "--url"])
        .arg(sb.url_for("control-room").as_str())
        .arg("-o")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr_of(&out).contains("BULKEDIT_USERNAME"),
        "{}",
        stderr_of(&out)
    );
    assert!(!path.exists());
    // An earlier export is never written over without --force.
    std::fs::write(&path, "kept").unwrap();
    let out = export(&sb, "hub", &path, &[]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "kept");
    let out = export(&sb, "hub", &path, &["--force"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert_eq!(read_report(&path).len(), 3);
}

#[test]
#[cfg(unix)]
fn ctrl_c_stops_the_export_and_writes_nothing() {
    // Ten pages at two requests a second: time enough to be interrupted.
    let sb = sandbox(5_000);
    let dir = tempdir();
    let path = dir.path().join("users.csv");
    let child = std::process::Command::new(assert_cmd::cargo::cargo_bin("bulkedit"))
        .args(["export", "--platform", "hub", "--url"])
        .arg(sb.url_for("hub").as_str())
        .args(["--rate", "2/s", "--concurrency", "1", "-o"])
        .arg(&path)
        .env("BULKEDIT_TOKEN", "sandbox-tenant/sandbox-token")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pages_read = || {
        sb.requests()
            .iter()
            .filter(|r| r.path.ends_with("/openapi/users"))
            .count()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while pages_read() < 2 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", stderr_of(&out));
    assert!(pages_read() < 10, "stopped before the last page");
    assert!(!path.exists(), "an export is written whole or not at all");
    assert!(
        stderr_of(&out).contains("nothing was written"),
        "{}",
        stderr_of(&out)
    );
}

#[test]
fn a_custom_hub_role_is_exported_by_its_name_and_applied_back_unchanged() {
    let sb = sandbox(4);
    hub_edit(
        &sb,
        json!({"user_email": "user00002@example.com", "user_roles": [
            {"role_id": 101, "category_id": 0}, {"role_id": 6, "category_id": 2}]}),
    );
    let dir = tempdir();
    let path = dir.path().join("users.csv");
    let out = export(&sb, "hub", &path, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let rows = read_report(&path);
    assert_eq!(
        rows[1]["user_roles"], "Idea Approver:2; Citizen Developer Lead",
        "roles by the tenant's own names, a category kept"
    );
    let err = stderr_of(&out);
    assert!(!err.contains("refused"), "{err}");
    let before = sb.state();
    let edits = writes(&sb).len();
    // Without --allow-role: the name is looked up in the tenant's list.
    let report = apply(&sb, "hub", &path, &dir.path().join("report.csv"));
    assert!(
        report.iter().all(|r| r["status"] == "unchanged"),
        "{report:?}"
    );
    assert_eq!(writes(&sb).len(), edits, "no write was sent");
    assert_eq!(sb.state(), before);
}

/// Hub roles by name, resolved against the tenant's own `GET /roles` once per run: custom
/// roles in any case, added or set whole; an unknown name makes its row invalid with the
/// closest name, and nothing is sent for it; `validate`, offline, cannot know custom roles.
#[test]
fn hub_role_names_are_looked_up_in_the_tenants_own_list() {
    let sb = sandbox(5);
    let dir = tempdir();
    let sheet = dir.path().join("roles.csv");
    std::fs::write(
        &sheet,
        "user_email,user_roles,rolesToAdd\n\
         user00001@example.com,Citizen Developer Lead; standard user,\n\
         user00002@example.com,,automation champion:3\n\
         user00003@example.com,Citizen Developer Leed,\n\
         user00004@example.com,,Idea Aprover\n",
    )
    .unwrap();
    let offline = bulkedit()
        .args(["validate", "--platform", "hub"])
        .arg(&sheet)
        .arg("--report")
        .arg(dir.path().join("validate.csv"))
        .output()
        .unwrap();
    assert_eq!(offline.status.code(), Some(0), "{}", stderr_of(&offline));
    let report = apply(&sb, "hub", &sheet, &dir.path().join("report.csv"));
    let status: Vec<(&str, &str)> = report
        .iter()
        .map(|r| (r["status"].as_str(), r["error"].as_str()))
        .collect();
    assert_eq!(status[0], ("updated", ""));
    assert_eq!(status[1], ("updated", ""));
    assert_eq!(status[2].0, "invalid");
    assert!(
        status[2]
            .1
            .starts_with("user_roles: there is no role 'Citizen Developer Leed' (did you mean 'Citizen Developer Lead'?)"),
        "{}",
        status[2].1
    );
    assert_eq!(status[3].0, "invalid");
    assert!(
        status[3].1.starts_with(
            "rolesToAdd: there is no role 'Idea Aprover' (did you mean 'Idea Approver'?)"
        ),
        "{}",
        status[3].1
    );
    assert_eq!(
        report[0]["changes"],
        "user_roles: 'Standard User' → 'Standard User; Citizen Developer Lead'"
    );
    assert_eq!(
        report[1]["changes"],
        "user_roles: 'Standard User' → 'Standard User; Automation Champion:3'"
    );
    let roles = |email: &str| -> Value {
        sb.state()["hub"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["user_email"] == email)
            .unwrap()["user_roles"]
            .clone()
    };
    let ids = |email: &str| -> Vec<(u64, u64)> {
        let mut v: Vec<(u64, u64)> = roles(email)
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["role_id"].as_u64().unwrap(),
                    r["category_id"].as_u64().unwrap(),
                )
            })
            .collect();
        v.sort();
        v
    };
    assert_eq!(ids("user00001@example.com"), [(8, 0), (101, 0)]);
    assert_eq!(ids("user00002@example.com"), [(8, 0), (102, 3)]);
    // Nothing was sent for the invalid rows.
    assert_eq!(ids("user00003@example.com"), [(8, 0)]);
    assert_eq!(ids("user00004@example.com"), [(8, 0)]);
    let edits = writes(&sb);
    assert_eq!(edits.len(), 2, "{edits:?}");
    // The role list is read once, at log-in.
    let role_reads = sb
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/openapi/roles"))
        .count();
    assert_eq!(role_reads, 1);
}

#[test]
fn identity_groups_go_by_name_or_id_and_an_unknown_name_is_invalid_with_the_closest_offered() {
    let sb = sandbox(5);
    let dir = tempdir();
    let sheet = dir.path().join("groups.csv");
    std::fs::write(
        &sheet,
        "userId,email,name,surname,groupIDsToAdd,groupIDsToRemove\n\
         00000000-0000-4000-8000-000000000001,,,,automation developers; Finance Robots,\n\
         00000000-0000-4000-8000-000000000002,,,,10000000-0000-4000-8000-000000000004,Everyone\n\
         00000000-0000-4000-8000-000000000003,,,,Finance Robot,\n\
         ,new.joiner@example.com,Nia,Joiner,HR Reviewers,\n",
    )
    .unwrap();
    let out = bulkedit()
        .arg("apply")
        .arg(&sheet)
        .args(["--platform", "identity", "--create", "--url"])
        .arg(sb.url_for("identity").as_str())
        .args(["--rate", "unlimited", "--report"])
        .arg(dir.path().join("report.csv"))
        .envs(env_for("identity"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    let report = read_report(&dir.path().join("report.csv"));
    let line = |i: usize| (report[i]["status"].as_str(), report[i]["changes"].as_str());
    assert_eq!(
        line(0),
        (
            "updated",
            "groupIDsToAdd: (empty) → 'Automation Developers; Finance Robots'"
        ),
        "changes name the groups"
    );
    assert_eq!(
        line(1),
        (
            "updated",
            "groupIDsToAdd: (empty) → 'Finance Robots'; groupIDsToRemove: (empty) → 'Everyone'"
        )
    );
    assert_eq!(report[2]["status"], "invalid");
    assert!(
        report[2]["error"].starts_with(
            "groupIDsToAdd: there is no group 'finance robot' (did you mean 'Finance Robots'?)"
        ),
        "{}",
        report[2]["error"]
    );
    assert_eq!(report[3]["status"], "created");
    let groups_of = |email: &str| -> Vec<String> {
        let state = sb.state();
        let user = state["identity"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["email"] == email)
            .unwrap()
            .clone();
        let mut g: Vec<String> = user["groupIDs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap()[33..].to_string())
            .collect();
        g.sort();
        g
    };
    assert_eq!(groups_of("user00001@example.com"), ["001", "003", "004"]);
    assert_eq!(groups_of("user00002@example.com"), ["004"]);
    assert_eq!(
        groups_of("user00003@example.com"),
        ["001"],
        "nothing sent for it"
    );
    assert!(groups_of("new.joiner@example.com").contains(&"005".to_string()));
}

/// `apply FILE` of `platform` against `sb`; its stderr and the report's rows.
fn apply_with_stderr(
    sb: &Sandbox,
    platform: &str,
    file: &Path,
    extra: &[&str],
) -> (
    Option<i32>,
    String,
    Vec<std::collections::BTreeMap<String, String>>,
) {
    let report = file.with_file_name("roles-report.csv");
    let out = bulkedit()
        .arg("apply")
        .arg(file)
        .args(["--platform", platform, "--url"])
        .arg(sb.url_for(platform).as_str())
        .args(["--rate", "unlimited", "--report"])
        .arg(&report)
        .args(extra)
        .envs(env_for(platform))
        .output()
        .unwrap();
    (out.status.code(), stderr_of(&out), read_report(&report))
}

#[test]
fn roles_are_added_and_removed_by_name_and_the_summary_warns_of_what_users_lose() {
    for (platform, sheet, state, roles_of) in [
        (
            "hub",
            "user_email,Add Roles,Remove Roles,user_roles\n\
             user00001@example.com,Program Manager,,\n\
             user00002@example.com,Idea Approver,Standard User,\n\
             user00003@example.com,Idea Approver,Idea Approver,\n\
             user00004@example.com,Idea Approver,,Standard User\n\
             user00005@example.com,,Standard User; Program Manager,\n",
            "hub",
            (|u: &Value| {
                let mut r: Vec<u64> = u["user_roles"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r["role_id"].as_u64().unwrap())
                    .collect();
                r.sort();
                r.iter().map(u64::to_string).collect::<Vec<_>>().join(",")
            }) as fn(&Value) -> String,
        ),
        (
            "control-room",
            "id,rolesToAdd,rolesToRemove,roles\n\
             1,Bot Runner,,\n\
             2,bot creator,AAE_Basic,\n\
             3,Bot Runner,bot runner,\n\
             4,Bot Runner,,AAE_Basic\n\
             5,,AAE_Basic; Bot Runer,\n",
            "control_room",
            |u: &Value| {
                let mut r: Vec<i64> = u["roles"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r["id"].as_i64().unwrap())
                    .collect();
                r.sort();
                r.iter().map(i64::to_string).collect::<Vec<_>>().join(",")
            },
        ),
    ] {
        let sb = sandbox(6);
        let dir = tempdir();
        let file = dir.path().join("roles.csv");
        std::fs::write(&file, sheet).unwrap();
        let (code, err, report) = apply_with_stderr(&sb, platform, &file, &[]);
        assert_eq!(code, Some(1), "{platform}: {err}");
        let status: Vec<&str> = report.iter().map(|l| l["status"].as_str()).collect();
        // Hub: taking every role away fails, nothing sent; control-room: an unknown role.
        let last = if platform == "hub" {
            "failed"
        } else {
            "invalid"
        };
        assert_eq!(
            status,
            ["updated", "updated", "invalid", "invalid", last],
            "{platform}: {report:?}"
        );
        assert!(
            report[2]["error"].contains("is also in rolesToAdd"),
            "{platform}: {report:?}"
        );
        assert!(
            report[3]["error"].contains("cannot also add or remove"),
            "{platform}: {report:?}"
        );
        let users = sb.state()[state].as_array().unwrap().clone();
        let (first, second) = match platform {
            "hub" => ("5,8", "6"),
            _ => ("2,4", "3"),
        };
        assert_eq!(
            roles_of(&users[0]),
            first,
            "{platform}: added to what was there"
        );
        assert_eq!(
            roles_of(&users[1]),
            second,
            "{platform}: one added, one taken away"
        );
        assert_eq!(
            roles_of(&users[4]),
            roles_of(&users[5]),
            "{platform}: nothing sent"
        );
        let lost = if platform == "hub" {
            "Standard User"
        } else {
            "AAE_Basic"
        };
        assert!(
            err.contains(&format!("warning: 1 user loses {lost}")),
            "{platform}: {err}"
        );
    }
}
