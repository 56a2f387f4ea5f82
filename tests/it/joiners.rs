//! Joiners and leavers: `apply --create` makes the users a sheet names who do not exist yet,
//! through each vendor's create call, against a real sandbox on loopback; the server's state
//! and the report are checked row by row.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

use crate::common::*;
use bulkedit::sandbox::{Sandbox, SandboxConfig};
use serde_json::{json, Value};

const HUB_ENV: [(&str, &str); 1] = [("BULKEDIT_TOKEN", "sandbox-tenant/sandbox-token")];
const IDENTITY_ENV: [(&str, &str); 2] = [
    ("BULKEDIT_CLIENT_ID", "sandbox-client"),
    ("BULKEDIT_CLIENT_SECRET", "sandbox-secret"),
];
const CR_ENV: [(&str, &str); 2] = [
    ("BULKEDIT_USERNAME", "sandbox"),
    ("BULKEDIT_PASSWORD", "sandbox-password"),
];

fn sandbox() -> Sandbox {
    Sandbox::start(SandboxConfig::default()).unwrap()
}

struct Run {
    out: Output,
    report: Vec<BTreeMap<String, String>>,
    report_path: PathBuf,
}

impl Run {
    fn code(&self) -> Option<i32> {
        self.out.status.code()
    }
    fn stderr(&self) -> String {
        stderr_of(&self.out)
    }
    fn row(&self, n: &str) -> &BTreeMap<String, String> {
        self.report
            .iter()
            .find(|r| r["row"] == n)
            .unwrap_or_else(|| panic!("row {n} in {:?}", self.report))
    }
}

/// `bulkedit apply FILE` against the sandbox, its report beside the file under `name`.
fn apply(
    sb: &Sandbox,
    platform: &str,
    file: &Path,
    name: &str,
    env: &[(&str, &str)],
    extra: &[&str],
) -> Run {
    let report_path = file.with_file_name(name);
    let mut cmd = bulkedit();
    cmd.arg("apply")
        .arg(file)
        .args([
            "--platform",
            platform,
            "--url",
            sb.url_for(platform).as_str(),
        ])
        .args(["--rate", "unlimited", "--report"])
        .arg(&report_path)
        .args(extra);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let report = if report_path.exists() {
        read_report(&report_path)
    } else {
        Vec::new()
    };
    Run {
        out,
        report,
        report_path,
    }
}

/// Requests the sandbox saw with this method whose path ends with `suffix`.
fn seen_at(sb: &Sandbox, method: &str, suffix: &str) -> usize {
    sb.requests()
        .iter()
        .filter(|r| r.method == method && r.path.ends_with(suffix))
        .count()
}

/// Requests the sandbox saw with this method whose path contains `part`.
fn seen(sb: &Sandbox, method: &str, part: &str) -> usize {
    sb.requests()
        .iter()
        .filter(|r| r.method == method && r.path.contains(part))
        .count()
}

/// The sandbox's users of one platform whose `field` is `value`.
fn users_where(sb: &Sandbox, platform: &str, field: &str, value: &str) -> Vec<Value> {
    sb.state()[platform]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u[field] == value)
        .cloned()
        .collect()
}

fn count(sb: &Sandbox, platform: &str) -> usize {
    sb.state()[platform].as_array().unwrap().len()
}

const HUB_SHEET: &str = "user_email,user_first_name,user_last_name,user_job_title,user_roles\n\
    user00001@example.com,,,Solution Architect,\n\
    new.joiner@example.com,Nia,Joiner,Developer,Program Manager\n\
    plain.joiner@example.com,Pat,Plain,,\n\
    no.surname@example.com,Sam,,,\n";

#[test]
fn hub_create_makes_new_users_updates_the_others_and_a_second_run_finds_them() {
    let sb = sandbox();
    let dir = tempdir();
    let file = write(dir.path(), "joiners.csv", HUB_SHEET);
    let before = count(&sb, "hub");
    let run = apply(&sb, "hub", &file, "report.csv", &HUB_ENV, &["--create"]);
    assert_eq!(run.code(), Some(1), "row 5 is invalid: {}", run.stderr());
    assert_eq!(
        statuses(&run.report),
        pairs(&[
            ("2", "updated"),
            ("3", "created"),
            ("4", "created"),
            ("5", "invalid"),
        ])
    );
    assert_eq!(
        run.row("5")["error"],
        "to create this user (--create): user_last_name is needed"
    );
    assert_eq!(
        seen_at(&sb, "POST", "/adduser"),
        2,
        "nothing sent for row 5"
    );
    assert_eq!(count(&sb, "hub"), before + 2);
    let made = users_where(&sb, "hub", "user_email", "new.joiner@example.com");
    assert_eq!(
        made,
        [json!({
            "user_email": "new.joiner@example.com",
            "user_first_name": "Nia",
            "user_last_name": "Joiner",
            "user_job_title": "Developer",
            "user_location": "",
            "user_department": "",
            "user_business_unit": "",
            "user_is_active": 1,
            "user_invite_status": 1,
            "user_roles": [{"role_id": 5, "category_id": 0}],
        })]
    );
    let plain = users_where(&sb, "hub", "user_email", "plain.joiner@example.com");
    assert_eq!(
        plain[0]["user_roles"],
        json!([{"role_id": 8, "category_id": 0}]),
        "a new user without roles is a Standard User"
    );
    assert_eq!(
        users_where(&sb, "hub", "user_email", "user00001@example.com")[0]["user_job_title"],
        "Solution Architect"
    );

    // The next run finds the users it made: nothing more is created or sent.
    let again = apply(&sb, "hub", &file, "again.csv", &HUB_ENV, &["--create"]);
    assert_eq!(
        statuses(&again.report),
        pairs(&[
            ("2", "unchanged"),
            ("3", "unchanged"),
            ("4", "unchanged"),
            ("5", "invalid"),
        ])
    );
    assert_eq!(seen_at(&sb, "POST", "/adduser"), 2);
    assert_eq!(count(&sb, "hub"), before + 2);
}

#[test]
fn a_dry_run_says_who_would_be_created_and_sends_nothing() {
    let sb = sandbox();
    let dir = tempdir();
    let file = write(dir.path(), "joiners.csv", HUB_SHEET);
    let run = apply(
        &sb,
        "hub",
        &file,
        "plan.csv",
        &HUB_ENV,
        &["--create", "--dry-run"],
    );
    assert_eq!(
        statuses(&run.report),
        pairs(&[
            ("2", "would-update"),
            ("3", "would-create"),
            ("4", "would-create"),
            ("5", "invalid"),
        ])
    );
    let said = &run.row("3")["changes"];
    assert!(
        said.contains("user_first_name: (empty) → 'Nia'") && said.contains("user_roles"),
        "{said}"
    );
    assert!(
        run.row("4")["changes"].contains("user_roles: (empty) → 'Standard User'"),
        "the default role shows: {:?}",
        run.row("4")
    );
    assert_eq!(
        run.row("3")["error"],
        "",
        "error holds only what went wrong"
    );
    assert_eq!(seen_at(&sb, "POST", "/adduser"), 0);
    assert_eq!(seen_at(&sb, "POST", "/edituser"), 0);
    assert!(users_where(&sb, "hub", "user_email", "new.joiner@example.com").is_empty());
}

#[test]
fn a_plan_that_creates_users_is_refused_without_create_before_anything_is_sent() {
    let sb = sandbox();
    let dir = tempdir();
    let file = write(dir.path(), "joiners.csv", HUB_SHEET);
    let plan = apply(
        &sb,
        "hub",
        &file,
        "plan.csv",
        &HUB_ENV,
        &["--create", "--dry-run"],
    );
    assert_eq!(plan.row("3")["status"], "would-create");
    let run = apply(&sb, "hub", &plan.report_path, "applied.csv", &HUB_ENV, &[]);
    assert_eq!(run.out.status.code(), Some(2), "{}", stderr_of(&run.out));
    assert!(
        stderr_of(&run.out).contains(
            "the plan creates 2 users (its would-create rows): give --create to carry it out as \
             the dry run did"
        ),
        "{}",
        stderr_of(&run.out)
    );
    assert!(!run.report_path.exists(), "no report");
    assert_eq!(seen_at(&sb, "POST", "/edituser"), 0);
    // With --create, the plan is carried out.
    let run = apply(
        &sb,
        "hub",
        &plan.report_path,
        "applied.csv",
        &HUB_ENV,
        &["--create"],
    );
    assert_eq!(run.row("3")["status"], "created", "{}", stderr_of(&run.out));
}

#[test]
fn without_create_a_new_user_is_still_not_found() {
    let sb = sandbox();
    let dir = tempdir();
    let file = write(dir.path(), "joiners.csv", HUB_SHEET);
    let run = apply(&sb, "hub", &file, "report.csv", &HUB_ENV, &[]);
    assert_eq!(run.row("3")["status"], "not-found");
    assert_eq!(seen_at(&sb, "POST", "/adduser"), 0);
}

#[test]
fn hub_refuses_to_create_an_active_user_before_sending() {
    let sb = sandbox();
    let dir = tempdir();
    let file = write(
        dir.path(),
        "joiners.csv",
        "Email,First Name,Last Name,Is Active,Invite Status\n\
         active.joiner@example.com,Ada,Active,1,3\n",
    );
    let run = apply(&sb, "hub", &file, "report.csv", &HUB_ENV, &["--create"]);
    assert_eq!(run.code(), Some(1));
    assert_eq!(run.row("2")["status"], "invalid");
    assert!(
        run.row("2")["error"].contains("user_invite_status 3 (active) cannot be given"),
        "{:?}",
        run.row("2")
    );
    assert_eq!(seen_at(&sb, "POST", "/adduser"), 0);
}

#[test]
fn identity_create_chooses_the_id_sets_partition_user_name_groups_and_masks_the_password() {
    let sb = sandbox();
    let dir = tempdir();
    let chosen = "3f1c2a9e-7b4d-4c1a-9f2e-5d6b7a8c9d0e";
    let file = write(
        dir.path(),
        "joiners.csv",
        format!(
            "userId,email,name,surname,groupIDsToAdd,password\n\
             ,user00002@example.com,Ben,,,\n\
             ,ida.new@example.com,Ida,New,10000000-0000-4000-8000-000000000004,Welcome-2026\n\
             {chosen},id.chosen@example.com,Ivo,Chosen,,\n\
             ,no.name@example.com,,,,short\n"
        ),
    );
    let before = count(&sb, "identity");
    let run = apply(
        &sb,
        "identity",
        &file,
        "report.csv",
        &IDENTITY_ENV,
        &["--create"],
    );
    assert_eq!(
        statuses(&run.report),
        pairs(&[
            ("2", "updated"),
            ("3", "created"),
            ("4", "created"),
            ("5", "failed"),
        ]),
        "{}",
        run.stderr()
    );
    // The server's own refusal, in its words.
    assert!(
        run.row("5")["error"].contains("PasswordTooShort"),
        "{:?}",
        run.row("5")
    );
    assert_eq!(run.row("3")["password"], "***");
    let text = std::fs::read_to_string(&run.report_path).unwrap();
    assert!(!text.contains("Welcome-2026"), "{text}");
    assert_eq!(count(&sb, "identity"), before + 2);

    let ida = users_where(&sb, "identity", "email", "ida.new@example.com");
    assert_eq!(ida.len(), 1);
    let ida = &ida[0];
    let id = uuid::Uuid::parse_str(ida["id"].as_str().unwrap()).unwrap();
    assert_eq!(id.get_version_num(), 4, "a fresh UUID v4: {id}");
    assert_eq!(ida["userName"], "ida.new@example.com");
    assert_eq!(
        (&ida["name"], &ida["surname"]),
        (&json!("Ida"), &json!("New"))
    );
    assert_eq!(ida["isActive"], true);
    assert_eq!(
        ida["groupIDs"],
        json!([
            "10000000-0000-4000-8000-000000000001",
            "10000000-0000-4000-8000-000000000004"
        ])
    );
    // The sandbox refuses a create without the organization's partition: three were taken.
    assert_eq!(seen_at(&sb, "POST", "/api/User"), 3);
    let ivo = users_where(&sb, "identity", "id", chosen);
    assert_eq!(ivo[0]["email"], "id.chosen@example.com", "the row's own id");

    // Found by the next run, by e-mail and by id alike.
    let rerun = write(
        dir.path(),
        "again.csv",
        format!("userId,email,name,surname\n,ida.new@example.com,Ida,New\n{chosen},,Ivo,Chosen\n"),
    );
    let again = apply(
        &sb,
        "identity",
        &rerun,
        "again-report.csv",
        &IDENTITY_ENV,
        &["--create"],
    );
    assert_eq!(
        statuses(&again.report),
        pairs(&[("2", "unchanged"), ("3", "unchanged")]),
        "{}",
        again.stderr()
    );
    assert_eq!(count(&sb, "identity"), before + 2);
}

#[test]
fn identity_create_names_what_is_missing() {
    let sb = sandbox();
    let dir = tempdir();
    let file = write(
        dir.path(),
        "joiners.csv",
        "userId,name\n3f1c2a9e-7b4d-4c1a-9f2e-5d6b7a8c9d0e,Ivo\n",
    );
    let run = apply(
        &sb,
        "identity",
        &file,
        "report.csv",
        &IDENTITY_ENV,
        &["--create"],
    );
    assert_eq!(run.row("2")["status"], "invalid");
    assert_eq!(
        run.row("2")["error"],
        "to create this user (--create): email is needed"
    );
    assert_eq!(seen_at(&sb, "POST", "/api/User"), 0);
}

#[test]
fn control_room_create_needs_a_password_and_a_role_and_the_answer_proves_it() {
    let sb = sandbox();
    let dir = tempdir();
    let file = write(
        dir.path(),
        "joiners.csv",
        "username,email,firstName,lastName,roles,password\n\
         user00001,,Ana,,,\n\
         cora.new,cora.new@example.com,Cora,New,AAE_Basic; Bot Runner,Start-2026\n\
         no.password,no.password@example.com,Noel,,AAE_Basic,\n\
         no.role,no.role@example.com,,,,Start-2026\n",
    );
    let before = count(&sb, "control_room");
    let run = apply(
        &sb,
        "control-room",
        &file,
        "report.csv",
        &CR_ENV,
        &["--create"],
    );
    assert_eq!(
        statuses(&run.report),
        pairs(&[
            ("2", "updated"),
            ("3", "created"),
            ("4", "invalid"),
            ("5", "invalid"),
        ]),
        "{}",
        run.stderr()
    );
    assert_eq!(
        run.row("4")["error"],
        "to create this user (--create): password is needed"
    );
    assert_eq!(
        run.row("5")["error"],
        "to create this user (--create): roles is needed"
    );
    assert_eq!(run.row("3")["password"], "***");
    let text = std::fs::read_to_string(&run.report_path).unwrap();
    assert!(!text.contains("Start-2026"), "{text}");
    assert_eq!(seen_at(&sb, "POST", "/v1/usermanagement/users"), 1);
    assert_eq!(count(&sb, "control_room"), before + 1);
    let cora = users_where(&sb, "control_room", "username", "cora.new");
    assert_eq!(cora.len(), 1);
    let cora = &cora[0];
    assert_eq!(
        (&cora["email"], &cora["firstName"], &cora["lastName"]),
        (
            &json!("cora.new@example.com"),
            &json!("Cora"),
            &json!("New")
        )
    );
    let roles: Vec<&str> = cora["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["AAE_Basic", "Bot Runner"]);
    assert_eq!(cora["disabled"], false);

    // Found by the next run.
    let rerun = write(
        dir.path(),
        "again.csv",
        "username,email,firstName,lastName,roles\n\
         cora.new,cora.new@example.com,Cora,New,AAE_Basic; Bot Runner\n",
    );
    let again = apply(
        &sb,
        "control-room",
        &rerun,
        "again-report.csv",
        &CR_ENV,
        &["--create"],
    );
    assert_eq!(statuses(&again.report), pairs(&[("2", "unchanged")]));
    assert_eq!(count(&sb, "control_room"), before + 1);
}

#[test]
fn a_control_room_password_outside_the_documented_rule_is_invalid_offline() {
    let dir = tempdir();
    let file = write(
        dir.path(),
        "joiners.csv",
        "username,email,roles,password\n\
         a.user,a@example.com,AAE_Basic,short\n\
         b.user,b@example.com,AAE_Basic,has space 2026\n\
         c.user,c@example.com,AAE_Basic,Fine_Pass-01\n",
    );
    let out = bulkedit()
        .args(["validate", "--platform", "control-room"])
        .arg(&file)
        .output()
        .unwrap();
    let report = read_report(&file.with_file_name("joiners-report.csv"));
    assert_eq!(
        statuses(&report),
        pairs(&[("2", "invalid"), ("3", "invalid"), ("4", "valid")]),
        "{}",
        stderr_of(&out)
    );
    assert!(
        report[0]["error"].contains("8 to 15 characters, not 5"),
        "{report:?}"
    );
    assert!(
        report[1]["error"].contains("only a-z A-Z 0-9"),
        "{report:?}"
    );
    let text = std::fs::read_to_string(file.with_file_name("joiners-report.csv")).unwrap();
    assert!(!text.contains("has space 2026") && !text.contains("Fine_Pass-01"));
}

/// What each platform's roster sheet names a user by, how the sandbox's state spells that
/// key and whether the user is active, and the credentials and write call of the platform.
struct Roster {
    platform: &'static str,
    state: &'static str,
    header: &'static str,
    key: fn(usize) -> String,
    state_key: &'static str,
    active: fn(&Value) -> bool,
    env: &'static [(&'static str, &'static str)],
    write: (&'static str, &'static str),
}

const ROSTERS: [Roster; 3] = [
    Roster {
        platform: "hub",
        state: "hub",
        header: "Email",
        key: |i| format!("user{i:05}@example.com"),
        state_key: "user_email",
        active: |u| u["user_is_active"] == 1,
        env: &HUB_ENV,
        write: ("POST", "/edituser"),
    },
    Roster {
        platform: "identity",
        state: "identity",
        header: "email",
        key: |i| format!("user{i:05}@example.com"),
        state_key: "email",
        active: |u| u["isActive"] == true,
        env: &IDENTITY_ENV,
        write: ("PUT", "/api/User/"),
    },
    Roster {
        platform: "control-room",
        state: "control_room",
        header: "username",
        key: |i| format!("user{i:05}"),
        state_key: "username",
        active: |u| u["disabled"] == false,
        env: &CR_ENV,
        write: ("PUT", "/v1/usermanagement/users/"),
    },
];

/// A roster sheet naming the sandbox's users `1..=100` except `missing`.
fn roster_sheet(dir: &Path, r: &Roster, missing: &[usize]) -> PathBuf {
    let mut text = format!("{}\n", r.header);
    for i in (1..=100).filter(|i| !missing.contains(i)) {
        text.push_str(&format!("{}\n", (r.key)(i)));
    }
    write(dir, &format!("roster-{}.csv", r.platform), text)
}

/// The keys of the sandbox's users of `r`'s platform that are inactive.
fn inactive(sb: &Sandbox, r: &Roster) -> Vec<String> {
    let mut keys: Vec<String> = sb.state()[r.state]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| !(r.active)(u))
        .map(|u| u[r.state_key].as_str().unwrap().to_string())
        .collect();
    keys.sort();
    keys
}

/// The report lines of users missing from the roster: empty `row`, key, status.
fn leavers(run: &Run, r: &Roster) -> Vec<(String, String)> {
    let mut lines: Vec<(String, String)> = run
        .report
        .iter()
        .filter(|l| l["row"].is_empty())
        .map(|l| (l[r.header].clone(), l["status"].clone()))
        .collect();
    lines.sort();
    lines
}

#[test]
fn deactivate_missing_deactivates_exactly_the_active_users_not_in_the_roster() {
    for r in &ROSTERS {
        let sb = sandbox();
        let dir = tempdir();
        // User 70 is inactive already: missing from the roster, and left alone.
        let leaver = write(
            dir.path(),
            "leaver.csv",
            match r.platform {
                "hub" => "Email,Is Active\nuser00070@example.com,0\n",
                "identity" => "email,isActive\nuser00070@example.com,false\n",
                _ => "username,disabled\nuser00070,true\n",
            },
        );
        let first = apply(&sb, r.platform, &leaver, "leaver-report.csv", r.env, &[]);
        assert_eq!(statuses(&first.report), pairs(&[("2", "updated")]));
        let writes_before = seen(&sb, r.write.0, r.write.1);

        let missing = [10, 20, 30, 40, 50, 60, 70];
        let file = roster_sheet(dir.path(), r, &missing);
        let plan = apply(
            &sb,
            r.platform,
            &file,
            "plan.csv",
            r.env,
            &["--deactivate-missing", "--keep", "USER00060*", "--dry-run"],
        );
        assert_eq!(plan.code(), Some(0), "{}: {}", r.platform, plan.stderr());
        let gone = |status: &str| -> Vec<(String, String)> {
            [10, 20, 30, 40, 50]
                .iter()
                .map(|&i| ((r.key)(i), status.to_string()))
                .collect()
        };
        assert_eq!(
            leavers(&plan, r),
            gone("would-deactivate"),
            "{}",
            r.platform
        );
        assert_eq!(
            seen(&sb, r.write.0, r.write.1),
            writes_before,
            "a dry run writes nothing"
        );

        let run = apply(
            &sb,
            r.platform,
            &file,
            "report.csv",
            r.env,
            &["--deactivate-missing", "--keep", "USER00060*"],
        );
        assert_eq!(run.code(), Some(0), "{}: {}", r.platform, run.stderr());
        assert_eq!(leavers(&run, r), gone("deactivated"), "{}", r.platform);
        assert_eq!(
            run.report.iter().filter(|l| !l["row"].is_empty()).count(),
            93,
            "every roster row is reported, before the missing users"
        );
        assert!(run.report[..93].iter().all(|l| l["status"] == "unchanged"));
        let mut expected: Vec<String> = [10, 20, 30, 40, 50, 70]
            .iter()
            .map(|&i| (r.key)(i))
            .collect();
        expected.sort();
        assert_eq!(inactive(&sb, r), expected, "{}", r.platform);
        assert_eq!(
            seen(&sb, r.write.0, r.write.1),
            writes_before + 5,
            "{}: one write per missing user",
            r.platform
        );
        if r.platform == "hub" {
            let u = users_where(&sb, "hub", "user_email", "user00010@example.com");
            assert_eq!(
                (&u[0]["user_is_active"], &u[0]["user_invite_status"]),
                (&json!(0), &json!(1))
            );
        }
    }
}

#[test]
fn above_max_deactivate_nothing_is_sent_and_the_run_says_how_to_allow_it() {
    for r in &ROSTERS {
        let sb = sandbox();
        let dir = tempdir();
        let missing: Vec<usize> = (51..=100).collect();
        let file = roster_sheet(dir.path(), r, &missing);
        let run = apply(
            &sb,
            r.platform,
            &file,
            "report.csv",
            r.env,
            &["--deactivate-missing"],
        );
        assert_eq!(run.code(), Some(2), "{}: {}", r.platform, run.stderr());
        let said = run.stderr();
        assert!(
            said.contains("would deactivate 50 users")
                && said.contains("--max-deactivate 50")
                && said.contains("nothing was sent"),
            "{said}"
        );
        assert!(
            !run.report_path.exists(),
            "no report: the run never started"
        );
        assert!(
            sb.requests().iter().all(|q| q.method == "GET"
                || q.path.ends_with("/list")
                || q.path.ends_with("/authentication")
                || q.path.ends_with("/connect/token")),
            "{}: only reads: {:?}",
            r.platform,
            sb.requests()
        );
        assert!(inactive(&sb, r).is_empty());

        // Allowed, they go.
        let run = apply(
            &sb,
            r.platform,
            &file,
            "report.csv",
            r.env,
            &["--deactivate-missing", "--max-deactivate", "50"],
        );
        assert_eq!(run.code(), Some(0), "{}: {}", r.platform, run.stderr());
        assert_eq!(inactive(&sb, r).len(), 50);
    }
}

#[test]
fn the_control_room_account_the_run_logs_in_as_is_never_deactivated() {
    let sb = sandbox();
    let dir = tempdir();
    // The login account as a Control Room user, made by a run of its own.
    let own = write(
        dir.path(),
        "own.csv",
        "username,email,roles,password\nSandbox,sandbox@example.com,AAE_Admin,Own-Pass-01\n",
    );
    let made = apply(
        &sb,
        "control-room",
        &own,
        "own-report.csv",
        &CR_ENV,
        &["--create"],
    );
    assert_eq!(
        statuses(&made.report),
        pairs(&[("2", "created")]),
        "{}",
        made.stderr()
    );
    let file = roster_sheet(dir.path(), &ROSTERS[2], &[7]);
    let run = apply(
        &sb,
        "control-room",
        &file,
        "report.csv",
        &CR_ENV,
        &["--deactivate-missing"],
    );
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    assert_eq!(
        leavers(&run, &ROSTERS[2]),
        pairs(&[("user00007", "deactivated")])
    );
    let own = users_where(&sb, "control_room", "username", "Sandbox");
    assert_eq!(own[0]["disabled"], false);
}

#[test]
fn users_named_on_invalid_rows_are_not_missing_from_the_roster() {
    let sb = sandbox();
    let dir = tempdir();
    let mut text = String::from("Email,Is Active\n");
    for i in 1..=100 {
        // Row for user 5 is broken, yet it names user 5: not a leaver.
        let active = if i == 5 { "maybe" } else { "" };
        text.push_str(&format!("user{i:05}@example.com,{active}\n"));
    }
    let file = write(dir.path(), "roster.csv", text);
    let run = apply(
        &sb,
        "hub",
        &file,
        "report.csv",
        &HUB_ENV,
        &["--deactivate-missing"],
    );
    assert_eq!(run.code(), Some(1), "{}", run.stderr());
    assert_eq!(run.row("6")["status"], "invalid");
    assert!(leavers(&run, &ROSTERS[0]).is_empty(), "{:?}", run.report);
    assert!(inactive(&sb, &ROSTERS[0]).is_empty());
}

/// `bulkedit apply ARGS` under a pseudo-terminal (util-linux `script` gives the child one),
/// with `answer` typed on it; what the terminal showed, and the exit code.
fn apply_at_a_terminal(args: &[String], env: &[(&str, &str)], answer: &str) -> (String, i32) {
    use std::io::Write;
    let bin = assert_cmd::cargo::cargo_bin("bulkedit");
    let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
    let command = std::iter::once(bin.to_string_lossy().to_string())
        .chain(args.iter().cloned())
        .map(|s| quote(&s))
        .collect::<Vec<_>>()
        .join(" ");
    let mut cmd = std::process::Command::new("script");
    cmd.args(["-qec", &command, "/dev/null"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("BULKEDIT_")) {
        cmd.env_remove(k);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .spawn()
        .expect("util-linux `script` runs a command under a pseudo-terminal");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(answer.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        String::from_utf8_lossy(&out.stdout).to_string(),
        out.status.code().unwrap_or(-1),
    )
}

fn roster_args(sb: &Sandbox, file: &Path, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = ["apply", "--platform", "control-room", "--rate", "unlimited"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.push("--url".into());
    args.push(sb.url_for("control-room").to_string());
    args.push(file.to_string_lossy().to_string());
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

#[test]
fn a_real_run_at_a_terminal_says_what_it_will_do_and_waits_for_a_yes() {
    let sb = sandbox();
    let dir = tempdir();
    let file = roster_sheet(dir.path(), &ROSTERS[2], &[3, 4]);
    let args = roster_args(&sb, &file, &["--deactivate-missing"]);

    // Anything but a yes sends nothing.
    let (shown, code) = apply_at_a_terminal(&args, &CR_ENV, "no\n");
    assert_eq!(code, 2, "{shown}");
    assert!(
        shown.contains("About to change control-room at 127.0.0.1"),
        "{shown}"
    );
    assert!(shown.contains("98 users in the file"), "{shown}");
    assert!(
        shown.contains("2 users not in the file to deactivate"),
        "{shown}"
    );
    assert!(
        shown.contains("e-mails every user who is edited, enabled or disabled"),
        "{shown}"
    );
    assert!(shown.contains("not confirmed: nothing was sent"), "{shown}");
    assert_eq!(seen(&sb, "PUT", "/v1/usermanagement/users/"), 0);

    let (shown, code) = apply_at_a_terminal(&args, &CR_ENV, "yes\n");
    assert_eq!(code, 0, "{shown}");
    assert_eq!(seen(&sb, "PUT", "/v1/usermanagement/users/"), 2);
    assert_eq!(inactive(&sb, &ROSTERS[2]), ["user00003", "user00004"]);
}

#[test]
fn yes_or_no_terminal_means_no_question() {
    let sb = sandbox();
    let dir = tempdir();
    let file = roster_sheet(dir.path(), &ROSTERS[2], &[5]);
    let args = roster_args(&sb, &file, &["--deactivate-missing", "--yes"]);
    let (shown, code) = apply_at_a_terminal(&args, &CR_ENV, "");
    assert_eq!(code, 0, "{shown}");
    assert!(!shown.contains("Type yes"), "{shown}");
    assert_eq!(inactive(&sb, &ROSTERS[2]), ["user00005"]);

    // Without a terminal the run never waits, and still gives the Control Room's caution.
    let file = roster_sheet(dir.path(), &ROSTERS[2], &[5, 6]);
    let run = apply(
        &sb,
        "control-room",
        &file,
        "report.csv",
        &CR_ENV,
        &["--deactivate-missing"],
    );
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    assert!(!run.stderr().contains("Type yes"));
    assert!(
        run.stderr().contains("e-mails every user"),
        "{}",
        run.stderr()
    );
    assert_eq!(inactive(&sb, &ROSTERS[2]), ["user00005", "user00006"]);
}

#[test]
fn a_create_whose_answer_is_lost_is_never_made_twice() {
    use bulkedit::sandbox::Faults;
    for r in &ROSTERS {
        let sb = Sandbox::start(SandboxConfig {
            faults: Faults {
                reset_rate: 0.3,
                seed: 11,
                ..Faults::default()
            },
            ..SandboxConfig::default()
        })
        .unwrap();
        let dir = tempdir();
        let mut text = String::from(match r.platform {
            "hub" => "Email,First Name,Last Name\n",
            "identity" => "email,name,surname\n",
            _ => "username,email,firstName,roles,password\n",
        });
        for i in 1..=30 {
            text.push_str(&match r.platform {
                "hub" | "identity" => format!("joiner{i}@example.com,J{i},Joiner\n"),
                _ => format!("joiner{i},joiner{i}@example.com,J{i},AAE_Basic,Start-2026\n"),
            });
        }
        let file = write(dir.path(), "joiners.csv", text);
        let before = count(&sb, r.state);
        let run = apply(
            &sb,
            r.platform,
            &file,
            "report.csv",
            r.env,
            &["--create", "--retries", "15", "--concurrency", "8"],
        );
        assert_eq!(run.code(), Some(0), "{}: {}", r.platform, run.stderr());
        assert!(
            run.report.iter().all(|l| l["status"] == "created"),
            "{}: {:?}",
            r.platform,
            run.report
        );
        assert_eq!(count(&sb, r.state), before + 30, "{}", r.platform);
        let creates = sb
            .requests()
            .iter()
            .filter(|q| {
                q.method == "POST"
                    && (q.path.ends_with("/adduser")
                        || q.path.ends_with("/api/User")
                        || q.path.ends_with("/usermanagement/users"))
            })
            .count();
        assert!(creates > 30, "{}: answers were lost: {creates}", r.platform);
    }
}

#[test]
fn validate_create_checks_what_creation_needs_offline() {
    let dir = tempdir();
    let file = write(dir.path(), "joiners.csv", HUB_SHEET);
    let report = file.with_file_name("joiners-report.csv");
    let out = bulkedit()
        .args(["validate", "--create"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    let rows = read_report(&report);
    assert_eq!(
        statuses(&rows),
        pairs(&[
            ("2", "invalid"),
            ("3", "valid"),
            ("4", "valid"),
            ("5", "invalid"),
        ])
    );
    assert_eq!(
        rows[0]["error"],
        "to create this user (--create): user_first_name is needed; user_last_name is needed"
    );
    assert_eq!(
        rows[3]["error"],
        "to create this user (--create): user_last_name is needed"
    );
    // Without --create the same rows are edits, and valid.
    let out = bulkedit().arg("validate").arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));

    let cr = write(
        dir.path(),
        "cr.csv",
        "id,username,email,roles,password\n\
         7,,,,\n\
         ,cora.new,cora.new@example.com,AAE_Basic,Start-2026\n",
    );
    let out = bulkedit()
        .args(["validate", "--create", "--platform", "control-room"])
        .arg(&cr)
        .output()
        .unwrap();
    let rows = read_report(&cr.with_file_name("cr-report.csv"));
    assert_eq!(
        statuses(&rows),
        pairs(&[("2", "invalid"), ("3", "valid")]),
        "{}",
        stderr_of(&out)
    );
    assert!(
        rows[0]["error"].contains("a new user is named by username")
            && rows[0]["error"].contains("password is needed"),
        "{rows:?}"
    );
}

#[test]
fn a_resumed_run_deactivates_no_one_twice_and_keeps_the_earlier_lines() {
    let r = &ROSTERS[2];
    let sb = sandbox();
    let dir = tempdir();
    let file = roster_sheet(dir.path(), r, &[8, 9]);
    let first = apply(
        &sb,
        r.platform,
        &file,
        "report.csv",
        r.env,
        &["--deactivate-missing"],
    );
    assert_eq!(first.code(), Some(0), "{}", first.stderr());
    let writes = seen(&sb, r.write.0, r.write.1);
    assert_eq!(writes, 2);
    let again = apply(
        &sb,
        r.platform,
        &file,
        "report.csv",
        r.env,
        &["--deactivate-missing", "--resume"],
    );
    assert_eq!(again.code(), Some(0), "{}", again.stderr());
    assert_eq!(
        seen(&sb, r.write.0, r.write.1),
        writes,
        "no one deactivated twice"
    );
    assert_eq!(
        leavers(&again, r),
        pairs(&[("user00008", "deactivated"), ("user00009", "deactivated")]),
        "the first run's deactivations stay in the report"
    );
    assert_eq!(again.report.len(), 100);
}

/// A one-row sheet that makes user `i` active or inactive on `r`'s platform: what another
/// administrator does between a plan and its run.
fn set_active(sb: &Sandbox, dir: &Path, r: &Roster, i: usize, active: bool) {
    let (header, value) = match r.platform {
        "hub" => ("Is Active", if active { "1" } else { "0" }),
        "identity" => ("isActive", if active { "true" } else { "false" }),
        _ => ("disabled", if active { "false" } else { "true" }),
    };
    let file = write(
        dir,
        "other-admin.csv",
        format!("{},{header}\n{},{value}\n", r.header, (r.key)(i)),
    );
    let run = apply(sb, r.platform, &file, "other-admin-report.csv", r.env, &[]);
    assert_eq!(
        statuses(&run.report),
        pairs(&[("2", "updated")]),
        "{}",
        run.stderr()
    );
}

/// A dry run's plan fed back to `apply --deactivate-missing` deactivates exactly the users its
/// `would-deactivate` lines list: one deactivated by someone else since is `drifted`, and a
/// user missing now who was not then (reactivated meanwhile) is not deactivated without a
/// plan line of its own: `drifted` too, saying so. Without `--deactivate-missing` the plan's
/// deactivations are refused before anything is sent.
#[test]
fn a_plan_deactivates_exactly_the_leavers_it_lists_and_says_which_moved() {
    for r in &ROSTERS {
        let sb = sandbox();
        let dir = tempdir();
        // User 70 is inactive when the plan is made: not missing then.
        set_active(&sb, dir.path(), r, 70, false);
        let file = roster_sheet(dir.path(), r, &[10, 20, 30, 70]);
        let plan = apply(
            &sb,
            r.platform,
            &file,
            "plan.csv",
            r.env,
            &["--deactivate-missing", "--dry-run"],
        );
        assert_eq!(plan.code(), Some(0), "{}: {}", r.platform, plan.stderr());
        let planned: Vec<(String, String)> = [10, 20, 30]
            .iter()
            .map(|&i| ((r.key)(i), "would-deactivate".to_string()))
            .collect();
        assert_eq!(leavers(&plan, r), planned, "{}", r.platform);

        // Meanwhile another administrator deactivates user 20 and reactivates user 70.
        set_active(&sb, dir.path(), r, 20, false);
        set_active(&sb, dir.path(), r, 70, true);
        let writes_before = seen(&sb, r.write.0, r.write.1);

        // Without --deactivate-missing the plan's deactivations are not silently dropped.
        let refused = apply(
            &sb,
            r.platform,
            &plan.report_path,
            "refused.csv",
            r.env,
            &[],
        );
        assert_eq!(
            refused.code(),
            Some(2),
            "{}: {}",
            r.platform,
            refused.stderr()
        );
        assert!(
            refused.stderr().contains("--deactivate-missing"),
            "{}",
            refused.stderr()
        );
        assert_eq!(seen(&sb, r.write.0, r.write.1), writes_before);

        let run = apply(
            &sb,
            r.platform,
            &plan.report_path,
            "report.csv",
            r.env,
            &["--deactivate-missing"],
        );
        assert_eq!(run.code(), Some(1), "{}: {}", r.platform, run.stderr());
        // The plan's rows are its roster: 96 users, each unchanged; its lines of leavers are
        // not rows.
        let rows: Vec<_> = run.report.iter().filter(|l| !l["row"].is_empty()).collect();
        assert_eq!(rows.len(), 96, "{}", r.platform);
        assert!(rows.iter().all(|l| l["status"] == "unchanged"));
        let mut expected: Vec<(String, String)> = vec![
            ((r.key)(10), "deactivated".into()),
            ((r.key)(20), "drifted".into()),
            ((r.key)(30), "deactivated".into()),
            ((r.key)(70), "drifted".into()),
        ];
        expected.sort();
        assert_eq!(leavers(&run, r), expected, "{}", r.platform);
        let line = |i: usize| {
            run.report
                .iter()
                .find(|l| l["row"].is_empty() && l[r.header] == (r.key)(i))
                .unwrap()
        };
        assert!(
            line(20)["error"].starts_with("moved since the plan, so nothing was sent: ")
                && line(20)["error"].contains("the server already has"),
            "{}: {:?}",
            r.platform,
            line(20)
        );
        assert!(
            line(70)["error"].contains("the plan does not list this user"),
            "{}: {:?}",
            r.platform,
            line(70)
        );
        let mut gone: Vec<String> = [10, 20, 30].iter().map(|&i| (r.key)(i)).collect();
        gone.sort();
        assert_eq!(
            inactive(&sb, r),
            gone,
            "{}: user 70 stays active",
            r.platform
        );
        assert_eq!(
            seen(&sb, r.write.0, r.write.1),
            writes_before + 2,
            "{}: a write for each planned leaver still to go",
            r.platform
        );
    }
}
