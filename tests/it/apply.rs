//! `bulkedit apply`, the real binary against a real sandbox on loopback: the server's final
//! state and the report are checked row by row.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use crate::common::*;
use bulkedit::sandbox::{Faults, Sandbox, SandboxConfig};
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

fn sandbox(faults: Faults) -> Sandbox {
    Sandbox::start(SandboxConfig {
        faults,
        ..SandboxConfig::default()
    })
    .unwrap()
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

fn apply(
    sb: &Sandbox,
    platform: &str,
    file: &Path,
    dir: &Path,
    env: &[(&str, &str)],
    extra: &[&str],
) -> Run {
    let report_path = dir.join("report.csv");
    let mut cmd = bulkedit();
    cmd.arg("apply")
        .arg(file)
        .args([
            "--platform",
            platform,
            "--url",
            sb.url_for(platform).as_str(),
            "--report",
        ])
        .arg(&report_path)
        .args(extra);
    if !extra.contains(&"--rate") {
        cmd.args(["--rate", "unlimited"]);
    }
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

/// Requests the sandbox saw with this method whose path contains `part`.
fn seen(sb: &Sandbox, method: &str, part: &str) -> usize {
    sb.requests()
        .iter()
        .filter(|r| r.method == method && r.path.contains(part))
        .count()
}

/// Requests the sandbox saw with this method whose path ends with `suffix`.
fn seen_at(sb: &Sandbox, method: &str, suffix: &str) -> usize {
    sb.requests()
        .iter()
        .filter(|r| r.method == method && r.path.ends_with(suffix))
        .count()
}

fn hub_user<'a>(state: &'a Value, email: &str) -> &'a Value {
    state["hub"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["user_email"] == email)
        .unwrap()
}

#[test]
fn hub_rows_are_applied_and_unchanged_rows_are_not_sent() {
    let sb = sandbox(Faults::default());
    let dir = tempdir();
    let run = apply(
        &sb,
        "hub",
        &sample("hub-clean.csv"),
        dir.path(),
        &HUB_ENV,
        &[],
    );
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    assert_eq!(
        statuses(&run.report),
        pairs(&[
            ("2", "updated"),
            ("3", "updated"),
            ("4", "updated"),
            ("5", "updated"),
            ("6", "updated"),
            ("7", "updated"),
            ("8", "updated"),
            ("9", "unchanged"),
            ("10", "updated"),
            ("11", "updated")
        ])
    );
    let state = sb.state();
    let ana = hub_user(&state, "user00001@example.com");
    assert_eq!(ana["user_first_name"], "Ana");
    assert_eq!(ana["user_department"], "Accounts Payable");
    assert_eq!(ana["user_location"], "Lisbon");
    let chloe = hub_user(&state, "user00003@example.com");
    assert_eq!(chloe["user_first_name"], "Chloé");
    assert_eq!(
        chloe["user_roles"],
        json!([{"role_id": 4, "category_id": 0}, {"role_id": 5, "category_id": 3}, {"role_id": 8, "category_id": 0}])
    );
    let dmitri = hub_user(&state, "user00006@example.com");
    assert_eq!(
        (
            dmitri["user_is_active"].clone(),
            dmitri["user_invite_status"].clone()
        ),
        (json!(0), json!(0))
    );
    // Empty cells left fields alone.
    assert_eq!(
        hub_user(&state, "user00004@example.com")["user_first_name"],
        "First00004"
    );
    // One write per changed row; the list was read once instead of ten searches.
    assert_eq!(seen(&sb, "POST", "/edituser"), 9);
    assert_eq!(seen(&sb, "GET", "/users"), 1);
    assert_eq!(run.row("2")["http_status"], "201");
    assert_eq!(run.row("2")["attempts"], "1");
    assert_eq!(run.row("9")["attempts"], "0");
    assert!(!dir.path().join("report-failures.csv").exists());
    // The same sheet again changes nothing.
    let again = apply(
        &sb,
        "hub",
        &sample("hub-clean.csv"),
        dir.path(),
        &HUB_ENV,
        &[],
    );
    assert_eq!(again.code(), Some(0));
    assert!(
        again.report.iter().all(|r| r["status"] == "unchanged"),
        "{:?}",
        again.report
    );
    assert_eq!(seen(&sb, "POST", "/edituser"), 9);
}

#[test]
fn hub_cloud_tokens_and_per_row_searches_work_too() {
    let sb = sandbox(Faults::default());
    let dir = tempdir();
    let f = write(
        dir.path(),
        "one.csv",
        "Email,Job Title\nuser00042@example.com,Auditor\n",
    );
    let run = apply(
        &sb,
        "hub",
        &f,
        dir.path(),
        &[("BULKEDIT_TOKEN", "sandbox-cloud-token")],
        &[],
    );
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    assert_eq!(
        hub_user(&sb.state(), "user00042@example.com")["user_job_title"],
        "Auditor"
    );
    // One row: a search for it, not the whole list.
    assert_eq!(seen(&sb, "GET", "/users"), 1);
    assert!(sb.requests().iter().any(|r| r.path.ends_with("/users")));
    assert_eq!(run.row("2")["attempts"], "2", "a search and a write");
}

#[test]
fn identity_rows_are_applied_by_id_or_by_email() {
    let sb = sandbox(Faults::default());
    let dir = tempdir();
    let run = apply(
        &sb,
        "identity",
        &sample("identity-clean.csv"),
        dir.path(),
        &IDENTITY_ENV,
        &[],
    );
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    assert_eq!(
        statuses(&run.report),
        pairs(&[
            ("2", "updated"),
            ("3", "updated"),
            ("4", "updated"),
            ("5", "updated"),
            ("6", "updated"),
            ("7", "updated")
        ])
    );
    let state = sb.state();
    let users = state["identity"].as_array().unwrap();
    assert_eq!(users[0]["name"], "Ana");
    assert_eq!(
        users[0]["groupIDs"],
        json!([
            "10000000-0000-4000-8000-000000000001",
            "10000000-0000-4000-8000-000000000003"
        ])
    );
    assert_eq!(users[2]["displayName"], "Chloé Martin", "found by e-mail");
    assert_eq!(users[3]["isActive"], false);
    assert_eq!(users[3]["groupIDs"], json!([]));
    assert_eq!(users[4]["displayName"], "Eve (Sales)");
    assert_eq!(
        users[4]["name"], "First00005",
        "the name was re-sent unchanged"
    );
    assert_eq!(
        users[5]["surname"], "Ivanov",
        "e-mails match case-insensitively"
    );
}

#[test]
fn identity_with_a_fixed_token_needs_the_partition_for_email_lookups() {
    let sb = sandbox(Faults::default());
    let dir = tempdir();
    let env = [("BULKEDIT_TOKEN", "sandbox-identity-token")];
    let run = apply(
        &sb,
        "identity",
        &sample("identity-clean.csv"),
        dir.path(),
        &env,
        &[],
    );
    assert_eq!(run.code(), Some(2));
    assert!(run.stderr().contains("--partition"), "{}", run.stderr());
    assert_eq!(seen(&sb, "PUT", "/api/User/"), 0, "nothing was sent");
    let run = apply(
        &sb,
        "identity",
        &sample("identity-clean.csv"),
        dir.path(),
        &env,
        &["--partition", "00000000-0000-4000-8000-000000000000"],
    );
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
}

#[test]
fn identity_refusals_are_reported_with_the_servers_reason() {
    let sb = sandbox(Faults::default());
    let dir = tempdir();
    let f = write(
        dir.path(),
        "i.csv",
        "userId,email,password,groupIDsToAdd\n\
         00000000-0000-4000-8000-000000000001,,short,\n\
         00000000-0000-4000-8000-000000000002,new.address@example.com,,\n\
         00000000-0000-4000-8000-000000000003,,,not-a-uuid\n\
         00000000-0000-4000-8000-000000000004,,Long-enough-1,\n\
         00000000-0000-4000-8000-000000009999,,Long-enough-2,\n",
    );
    let run = apply(&sb, "identity", &f, dir.path(), &IDENTITY_ENV, &[]);
    assert_eq!(run.code(), Some(1));
    let r2 = run.row("2");
    assert_eq!(
        (r2["status"].as_str(), r2["http_status"].as_str()),
        ("failed", "200")
    );
    assert_eq!(
        r2["error"],
        "HTTP 200: PasswordTooShort: Passwords must be at least 8 characters."
    );
    assert_eq!(r2["password"], "***");
    assert_eq!(run.row("3")["error"], "HTTP 400: EmailChangeNotSupported: Changing the email of a user is not supported. Invite the new email address instead.");
    // A group the organization does not have is caught before the server would refuse it.
    assert_eq!(run.row("4")["status"], "invalid");
    assert!(
        run.row("4")["error"].starts_with("groupIDsToAdd: there is no group 'not-a-uuid'"),
        "{}",
        run.row("4")["error"]
    );
    assert_eq!(run.row("5")["status"], "updated");
    assert_eq!(run.row("6")["status"], "not-found");
    let failures = read_report(&dir.path().join("report-failures.csv"));
    assert_eq!(
        failures
            .iter()
            .map(|r| r["row"].as_str())
            .collect::<Vec<_>>(),
        ["2", "3", "4", "6"]
    );
    // Not one byte of a password reached a report.
    for p in [
        run.report_path.clone(),
        dir.path().join("report-failures.csv"),
    ] {
        let text = std::fs::read_to_string(p).unwrap();
        assert!(!text.contains("short,") && !text.contains("Long-enough"));
    }
}

#[test]
fn control_room_rows_are_read_merged_and_written_whole() {
    let sb = sandbox(Faults::default());
    let dir = tempdir();
    let run = apply(
        &sb,
        "control-room",
        &sample("control-room-clean.csv"),
        dir.path(),
        &CR_ENV,
        &[],
    );
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    assert_eq!(
        statuses(&run.report),
        pairs(&[
            ("2", "updated"),
            ("3", "updated"),
            ("4", "updated"),
            ("5", "updated"),
            ("6", "unchanged"),
            ("7", "updated")
        ])
    );
    let state = sb.state();
    let users = state["control_room"].as_array().unwrap();
    assert_eq!(
        users[0]["roles"],
        json!([{"id": 2, "name": "AAE_Basic", "version": 0}, {"id": 4, "name": "Bot Runner", "version": 0}])
    );
    assert_eq!(users[0]["description"], "Finance bot runner");
    assert_eq!(users[0]["version"], 2);
    assert_eq!(users[1]["firstName"], "Ben");
    assert_eq!(
        users[1]["email"], "user00002@example.com",
        "fields the row left empty survive the whole-object PUT"
    );
    assert_eq!(
        users[1]["roles"],
        json!([{"name": "AAE_Basic", "id": 2, "version": 0}])
    );
    assert_eq!(users[2]["firstName"], "Chloé", "found by username");
    assert_eq!(users[3]["disabled"], true);
    assert_eq!(
        users[3]["roles"],
        json!([{"id": 2, "name": "AAE_Basic", "version": 0}]),
        "roles kept"
    );
    assert_eq!(users[5]["username"], "user00006-renamed");
    assert_eq!(seen(&sb, "PUT", "/usermanagement/users/"), 5);
}

#[test]
fn control_room_unknown_roles_are_invalid_before_anything_is_sent() {
    let sb = sandbox(Faults::default());
    let dir = tempdir();
    let f = write(
        dir.path(),
        "c.csv",
        "id,roles\n3,AAE_Basic; Wizard\n4,4\n5,Bot Runer\n",
    );
    let run = apply(&sb, "control-room", &f, dir.path(), &CR_ENV, &[]);
    assert_eq!(run.code(), Some(1));
    assert_eq!(run.row("2")["status"], "invalid");
    assert_eq!(
        run.row("2")["error"],
        "roles: there is no role 'Wizard'; the roles are: AAE_Admin, AAE_Basic, Bot Creator, \
         Bot Runner, RoleBotDocsMD6"
    );
    assert!(
        run.row("4")["error"].contains("there is no role 'Bot Runer' (did you mean 'Bot Runner'?)"),
        "{:?}",
        run.row("4")
    );
    assert_eq!(
        run.row("3")["status"],
        "updated",
        "a role id is resolved to the role"
    );
    assert_eq!(
        sb.state()["control_room"][3]["roles"],
        json!([{"id": 4, "name": "Bot Runner", "version": 0}])
    );
    assert_eq!(seen(&sb, "PUT", "/usermanagement/users/3"), 0);
}

#[test]
fn a_conflict_is_read_again_and_retried_once() {
    let sb = sandbox(Faults {
        conflict_rate: 1.0,
        ..Faults::default()
    });
    let dir = tempdir();
    let f = write(dir.path(), "c.csv", "id,description\n7,Conflicted\n");
    let run = apply(&sb, "control-room", &f, dir.path(), &CR_ENV, &[]);
    assert_eq!(run.code(), Some(1));
    let r = run.row("2");
    assert_eq!(
        (r["status"].as_str(), r["http_status"].as_str()),
        ("failed", "409")
    );
    assert!(r["error"].contains("changed by someone else"), "{r:?}");
    // Read, write (409), read again, write again (409): retried once only.
    assert_eq!(seen_at(&sb, "PUT", "/usermanagement/users/7"), 2);
    assert_eq!(seen_at(&sb, "GET", "/usermanagement/users/7"), 2);
    assert_eq!(r["attempts"], "4");

    // When the first write meets a conflict and the second does not, the row is updated.
    let sb = sandbox(Faults {
        conflict_rate: 0.5,
        seed: 3,
        ..Faults::default()
    });
    let mut text = String::from("id,description\n");
    for i in 1..=40 {
        text.push_str(&format!("{i},Edited {i}\n"));
    }
    let f = write(dir.path(), "c.csv", text);
    let run = apply(
        &sb,
        "control-room",
        &f,
        dir.path(),
        &CR_ENV,
        &["--concurrency", "1"],
    );
    let state = sb.state();
    let mut retried = 0;
    for i in 1..=40 {
        let r = run.row(&(i + 1).to_string());
        let puts = seen_at(&sb, "PUT", &format!("/usermanagement/users/{i}"));
        let desc = &state["control_room"][i - 1]["description"];
        match r["status"].as_str() {
            "updated" => {
                assert_eq!(desc, &json!(format!("Edited {i}")));
                if puts == 2 {
                    retried += 1;
                }
            }
            "failed" => assert_eq!((puts, desc), (2, &json!(""))),
            other => panic!("{other}"),
        }
    }
    assert!(retried > 0, "some rows succeeded on the second write");
}

fn many_rows(dir: &Path, n: usize, platform: &str) -> PathBuf {
    let mut text = String::new();
    match platform {
        "hub" => text.push_str("user_email,user_job_title\n"),
        _ => text.push_str("id,description\n"),
    }
    for i in 1..=n {
        match platform {
            "hub" => text.push_str(&format!("user{i:05}@example.com,Title {i}\n")),
            _ => text.push_str(&format!("{i},Note {i}\n")),
        }
    }
    write(dir, &format!("{platform}-{n}.csv"), text)
}

fn assert_all_applied(run: &Run, sb: &Sandbox, platform: &str, n: usize) {
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    assert_eq!(run.report.len(), n);
    let lines: Vec<String> = run.report.iter().map(|r| r["row"].clone()).collect();
    let expected: Vec<String> = (2..n + 2).map(|i| i.to_string()).collect();
    assert_eq!(lines, expected, "each row exactly once, in input order");
    assert!(
        run.report.iter().all(|r| r["status"] == "updated"),
        "{:?}",
        run.report
            .iter()
            .filter(|r| r["status"] != "updated")
            .collect::<Vec<_>>()
    );
    let state = sb.state();
    for i in 1..=n {
        match platform {
            "hub" => assert_eq!(
                hub_user(&state, &format!("user{i:05}@example.com"))["user_job_title"],
                format!("Title {i}")
            ),
            _ => assert_eq!(
                state["control_room"][i - 1]["description"],
                format!("Note {i}")
            ),
        }
    }
}

#[test]
fn bad_gateways_and_unavailable_servers_are_retried_until_the_row_is_updated() {
    let sb = sandbox(Faults {
        fail_rate: 0.3,
        seed: 11,
        ..Faults::default()
    });
    let dir = tempdir();
    let run = apply(
        &sb,
        "hub",
        &many_rows(dir.path(), 40, "hub"),
        dir.path(),
        &HUB_ENV,
        &["--retries", "15", "--concurrency", "8"],
    );
    assert_all_applied(&run, &sb, "hub", 40);
    let failed = sb
        .requests()
        .iter()
        .filter(|r| [502, 503, 504].contains(&r.status))
        .count();
    assert!(failed > 5, "faults happened: {failed}");
    assert!(run
        .report
        .iter()
        .any(|r| r["attempts"].parse::<u32>().unwrap() > 1));
}

#[test]
fn dropped_connections_are_retried_and_control_room_writes_stay_correct() {
    let sb = sandbox(Faults {
        reset_rate: 0.25,
        seed: 5,
        ..Faults::default()
    });
    let dir = tempdir();
    let run = apply(
        &sb,
        "control-room",
        &many_rows(dir.path(), 40, "control-room"),
        dir.path(),
        &CR_ENV,
        &["--retries", "15", "--concurrency", "8"],
    );
    assert_all_applied(&run, &sb, "control-room", 40);
}

#[test]
fn answers_slower_than_the_timeout_are_retried() {
    let sb = sandbox(Faults {
        slow_rate: 0.2,
        slow: Duration::from_millis(1200),
        seed: 9,
        ..Faults::default()
    });
    let dir = tempdir();
    let run = apply(
        &sb,
        "hub",
        &many_rows(dir.path(), 30, "hub"),
        dir.path(),
        &HUB_ENV,
        &["--retries", "15", "--concurrency", "8", "--timeout", "0.4"],
    );
    assert_all_applied(&run, &sb, "hub", 30);
}

#[test]
fn retry_after_pauses_the_whole_pool_for_exactly_as_long_as_asked() {
    let _timed = timed();
    for date_form in [false, true] {
        let sb = sandbox(Faults {
            throttle_rate: 0.3,
            retry_after: Duration::from_secs(2),
            retry_after_date: date_form,
            seed: 2,
            ..Faults::default()
        });
        let dir = tempdir();
        let run = apply(
            &sb,
            "hub",
            &many_rows(dir.path(), 12, "hub"),
            dir.path(),
            &HUB_ENV,
            &["--retries", "15", "--concurrency", "4"],
        );
        assert_all_applied(&run, &sb, "hub", 12);
        let requests = sb.requests();
        let throttled: Vec<f64> = requests
            .iter()
            .filter(|r| r.status == 429)
            .map(|r| r.at.as_secs_f64())
            .collect();
        assert!(!throttled.is_empty());
        // An HTTP date has whole seconds: the pause is at least a second less than asked.
        let pause = if date_form { 1.0 } else { 2.0 };
        for t in &throttled {
            let during: Vec<f64> = requests
                .iter()
                .map(|r| r.at.as_secs_f64())
                .filter(|at| *at > t + 0.05 && *at < t + pause - 0.05)
                .collect();
            assert!(
                during.is_empty(),
                "date form {date_form}: requests {during:?} inside the pause after {t}"
            );
        }
    }
}

#[test]
fn a_non_retryable_error_is_not_retried() {
    let sb = sandbox(Faults::default());
    let dir = tempdir();
    let f = write(dir.path(), "c.csv", "id,username\n8,user00009\n");
    let run = apply(&sb, "control-room", &f, dir.path(), &CR_ENV, &[]);
    assert_eq!(run.code(), Some(1));
    let r = run.row("2");
    assert_eq!(r["error"], "HTTP 400: Username user00009 already exists");
    assert_eq!(r["attempts"], "2", "one read, one write");
}

#[test]
fn dry_run_reads_but_writes_nothing_and_says_what_would_change() {
    let sb = sandbox(Faults::default());
    let dir = tempdir();
    let before = sb.state();
    let run = apply(
        &sb,
        "hub",
        &sample("hub-clean.csv"),
        dir.path(),
        &HUB_ENV,
        &["--dry-run"],
    );
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    assert_eq!(sb.state(), before);
    assert_eq!(seen(&sb, "POST", "/edituser"), 0);
    assert_eq!(run.row("2")["status"], "would-update");
    assert_eq!(
        run.row("2")["error"],
        "",
        "error holds only what went wrong"
    );
    assert_eq!(
        run.row("2")["changes"],
        "user_first_name: 'First00001' → 'Ana'; user_last_name: 'Last00001' → 'Silva'; user_location: 'Brooklyn' → 'Lisbon'; \
         user_department: 'Finance' → 'Accounts Payable'; user_job_title: 'Analyst' → 'Finance Analyst'"
    );
    assert!(
        run.row("4")["changes"].ends_with(
            "; user_roles: 'Standard User' → 'Component Curator; Program Manager:3; Standard User'"
        ),
        "{}",
        run.row("4")["changes"]
    );
    assert_eq!(run.row("9")["status"], "unchanged");
    let run = apply(
        &sb,
        "control-room",
        &sample("control-room-clean.csv"),
        dir.path(),
        &CR_ENV,
        &["--dry-run"],
    );
    assert_eq!(
        run.row("2")["changes"],
        "firstName: 'First00001' → 'Ana'; lastName: 'Last00001' → 'Silva'; description: (empty) → 'Finance bot runner'; roles: 'AAE_Basic' → 'AAE_Basic; Bot Runner'"
    );
    assert_eq!(seen(&sb, "PUT", "/usermanagement/users/"), 0);
}

#[test]
fn users_that_do_not_exist_are_not_found() {
    let sb = sandbox(Faults::default());
    let dir = tempdir();
    for (platform, text, env) in [
        (
            "hub",
            "user_email,user_department\nnobody@example.com,X\n",
            &HUB_ENV[..],
        ),
        (
            "identity",
            "userId,name\n00000000-0000-4000-8000-000000000999,X\n",
            &IDENTITY_ENV[..],
        ),
        (
            "identity",
            "email,name\nnobody@example.com,X\n",
            &IDENTITY_ENV[..],
        ),
        ("control-room", "id,firstName\n999,X\n", &CR_ENV[..]),
        (
            "control-room",
            "username,firstName\nnobody,X\n",
            &CR_ENV[..],
        ),
    ] {
        let f = write(dir.path(), "n.csv", text);
        let run = apply(&sb, platform, &f, dir.path(), env, &[]);
        assert_eq!(run.code(), Some(1), "{platform}: {}", run.stderr());
        assert_eq!(run.row("2")["status"], "not-found", "{platform} {text}");
    }
}

#[test]
fn an_expired_or_revoked_token_is_renewed_and_the_row_retried() {
    let _timed = timed();
    // Control Room JWTs that live four seconds, across a run of seven.
    let sb = Sandbox::start(SandboxConfig {
        token_lifetime: Duration::from_secs(4),
        ..SandboxConfig::default()
    })
    .unwrap();
    let dir = tempdir();
    let run = apply(
        &sb,
        "control-room",
        &many_rows(dir.path(), 42, "control-room"),
        dir.path(),
        &CR_ENV,
        &["--rate", "6/s", "--concurrency", "2"],
    );
    assert_all_applied(&run, &sb, "control-room", 42);
    let renewals =
        seen(&sb, "POST", "/v1/authentication/token") + seen(&sb, "POST", "/v1/authentication") - 1;
    assert!(renewals >= 1, "the token was renewed");
    assert!(
        sb.requests().iter().all(|r| r.status != 401),
        "renewed before it expired"
    );

    // Tokens revoked mid-run: each platform's client logs in again once and carries on.
    let sb = sandbox(Faults::default());
    let f = many_rows(dir.path(), 20, "control-room");
    let base = sb.base_url();
    let revoker = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1200));
        http_client()
            .build()
            .unwrap()
            .post(format!("{base}/_sandbox/revoke-tokens"))
            .send()
            .unwrap();
    });
    let run = apply(
        &sb,
        "control-room",
        &f,
        dir.path(),
        &CR_ENV,
        &["--rate", "10/s", "--concurrency", "1"],
    );
    revoker.join().unwrap();
    assert_all_applied(&run, &sb, "control-room", 20);
    assert_eq!(
        sb.requests().iter().filter(|r| r.status == 401).count(),
        1,
        "one 401, then a new login"
    );
}

#[test]
fn refused_credentials_stop_before_the_first_row_with_exit_2_and_no_report() {
    let sb = sandbox(Faults::default());
    let dir = tempdir();
    // An earlier report at the same place is not replaced by a run that could not start.
    let earlier = write(
        dir.path(),
        "report.csv",
        "row,status,error
2,updated,
",
    );
    let run = bulkedit()
        .arg("apply")
        .arg(sample("hub-clean.csv"))
        .args(["--url", sb.url_for("hub").as_str(), "--report"])
        .arg(&earlier)
        .env("BULKEDIT_TOKEN", "sandbox-tenant/wrong-token")
        .output()
        .unwrap();
    let err = stderr_of(&run);
    assert_eq!(run.status.code(), Some(2), "{err}");
    assert!(err.contains("401") && err.contains("credentials"), "{err}");
    assert_eq!(
        std::fs::read_to_string(&earlier).unwrap(),
        "row,status,error\n2,updated,\n"
    );
    assert!(!dir.path().join("report-failures.csv").exists());
    assert!(
        !sb.requests().iter().any(|r| r.path.ends_with("/edituser")),
        "nothing was written"
    );
    let run = apply(
        &sb,
        "control-room",
        &sample("control-room-clean.csv"),
        dir.path(),
        &[
            ("BULKEDIT_USERNAME", "sandbox"),
            ("BULKEDIT_PASSWORD", "nope"),
        ],
        &[],
    );
    assert_eq!(run.code(), Some(2));
    assert!(
        run.stderr().contains("refused the login"),
        "{}",
        run.stderr()
    );
}

#[test]
fn missing_credentials_or_a_bad_url_stop_before_anything_is_sent() {
    let sb = sandbox(Faults::default());
    let dir = tempdir();
    let run = apply(&sb, "hub", &sample("hub-clean.csv"), dir.path(), &[], &[]);
    assert_eq!(run.code(), Some(2));
    assert!(run.stderr().contains("BULKEDIT_TOKEN"), "{}", run.stderr());
    assert!(sb.requests().is_empty());
    let out = bulkedit()
        .args(["apply"])
        .arg(sample("hub-clean.csv"))
        .args(["--url", "http://hub.example.com/acme/automationhub_"])
        .envs(HUB_ENV)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr_of(&out).contains("http:// sends the token in clear text"),
        "{}",
        stderr_of(&out)
    );
    let out = bulkedit()
        .args(["apply"])
        .arg(sample("hub-clean.csv"))
        .envs(HUB_ENV)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "--url or --sandbox is required");
}

#[test]
fn max_errors_stops_the_run_and_skips_the_rest() {
    let sb = sandbox(Faults::default());
    let dir = tempdir();
    let mut text = String::from("user_email,user_department\n");
    for i in 0..20 {
        text.push_str(&format!("ghost{i}@example.com,X\n"));
    }
    let f = write(dir.path(), "g.csv", text);
    let run = apply(
        &sb,
        "hub",
        &f,
        dir.path(),
        &HUB_ENV,
        &["--max-errors", "3", "--concurrency", "1"],
    );
    assert_eq!(run.code(), Some(3), "{}", run.stderr());
    assert_eq!(run.report.len(), 20);
    let not_found = run
        .report
        .iter()
        .filter(|r| r["status"] == "not-found")
        .count();
    let skipped = run
        .report
        .iter()
        .filter(|r| r["status"] == "skipped")
        .count();
    assert_eq!(not_found, 3);
    assert_eq!(not_found + skipped, 20);
    assert!(run.stderr().contains("--max-errors"));
}

#[test]
fn the_rate_is_never_exceeded_measured_on_the_server() {
    let _timed = timed();
    let sb = Sandbox::start(SandboxConfig {
        users: 200,
        ..SandboxConfig::default()
    })
    .unwrap();
    let dir = tempdir();
    let f = many_rows(dir.path(), 200, "control-room");
    let run = apply(
        &sb,
        "control-room",
        &f,
        dir.path(),
        &CR_ENV,
        &["--rate", "50/s", "--concurrency", "8"],
    );
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    let times: Vec<f64> = sb.requests().iter().map(|r| r.at.as_secs_f64()).collect();
    let n = times.len();
    let span = times[n - 1] - times[0];
    let achieved = (n - 1) as f64 / span;
    // Never faster than asked: that is the limiter's promise to the server. Slower than asked
    // is what a busy machine does to any client, so only a gross shortfall fails the test.
    assert!(
        (50.0 * 0.8..=50.0 * 1.02).contains(&achieved),
        "{achieved:.2}/s over {n} requests"
    );
    // No one-second window holds more than the rate plus the burst of one.
    for (i, t) in times.iter().enumerate() {
        let in_window = times[i..].iter().take_while(|u| **u < t + 1.0).count();
        assert!(
            in_window <= 51,
            "{in_window} requests in the second from {t}"
        );
    }
}

#[test]
fn the_sandbox_flag_rehearses_with_no_account_and_no_network() {
    let dir = tempdir();
    for (name, rows) in [
        ("hub-clean.csv", 10),
        ("identity-clean.csv", 6),
        ("control-room-clean.csv", 6),
        ("hub-clean.xlsx", 10),
    ] {
        let f = dir.path().join(name);
        std::fs::copy(sample(name), &f).unwrap();
        let out = bulkedit()
            .arg("apply")
            .arg(&f)
            .arg("--sandbox")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{name}: {}", stderr_of(&out));
        let stem = name.split('.').next().unwrap();
        let report = read_report(&dir.path().join(format!("{stem}-report.csv")));
        assert_eq!(report.len(), rows, "{name}");
    }
}

#[test]
fn invalid_rows_are_reported_and_never_sent() {
    let sb = sandbox(Faults::default());
    let dir = tempdir();
    let run = apply(
        &sb,
        "hub",
        &sample("hub-mistakes.csv"),
        dir.path(),
        &HUB_ENV,
        &[],
    );
    assert_eq!(run.code(), Some(1));
    assert_eq!(run.report.len(), 10);
    assert!(run.report.iter().all(|r| r["status"] == "invalid"));
    // Not a request beyond logging in: nothing is read or written for a sheet with no valid row.
    assert_eq!(seen(&sb, "POST", "/edituser"), 0);
    assert_eq!(seen(&sb, "GET", "/users"), 0);
    assert_eq!(
        hub_user(&sb.state(), "user00011@example.com")["user_last_name"],
        "Last00011"
    );
}

#[test]
fn an_xlsx_report_is_written_for_apply_too() {
    let sb = sandbox(Faults::default());
    let dir = tempdir();
    let report = dir.path().join("out.xlsx");
    let out = bulkedit()
        .arg("apply")
        .arg(sample("hub-mistakes.csv"))
        .args(["--url", sb.url_for("hub").as_str(), "--report"])
        .arg(&report)
        .envs(HUB_ENV)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    let rows = rows_of(&report);
    assert_eq!(rows.len(), 11);
    assert!(dir.path().join("out-failures.xlsx").exists());
    assert!(
        !dir.path().join("out.xlsx.partial.csv").exists(),
        "the journal is gone"
    );
}

fn spawn_apply(
    sb: &Sandbox,
    platform: &str,
    file: &Path,
    report: &Path,
    env: &[(&str, &str)],
    extra: &[&str],
) -> std::process::Child {
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("bulkedit"));
    cmd.arg("apply")
        .arg(file)
        .args([
            "--platform",
            platform,
            "--url",
            sb.url_for(platform).as_str(),
            "--report",
        ])
        .arg(report)
        .args(extra)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().unwrap()
}

/// Waits until the journal at `report` holds at least `rows` finished rows.
fn wait_for_rows(report: &Path, rows: usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while std::time::Instant::now() < deadline {
        if report.exists() && read_report(report).len() >= rows {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("{} never reached {rows} rows", report.display());
}

#[test]
#[cfg(unix)]
fn ctrl_c_finishes_the_rows_in_flight_and_reports_the_rest_as_skipped() {
    let sb = sandbox(Faults::default());
    let dir = tempdir();
    let report = dir.path().join("report.csv");
    let f = many_rows(dir.path(), 60, "control-room");
    let child = spawn_apply(
        &sb,
        "control-room",
        &f,
        &report,
        &CR_ENV,
        &["--rate", "10/s", "--concurrency", "2"],
    );
    wait_for_rows(&report, 10);
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("to finish the run, give the same command with --resume"),
        "the summary says how to finish: {}",
        stderr_of(&out)
    );
    let r = read_report(&report);
    let lines: Vec<String> = r.iter().map(|x| x["row"].clone()).collect();
    assert_eq!(
        lines,
        (2..62).map(|i| i.to_string()).collect::<Vec<_>>(),
        "every row once, in order"
    );
    let updated = r.iter().filter(|x| x["status"] == "updated").count();
    let skipped = r.iter().filter(|x| x["status"] == "skipped").count();
    assert_eq!(updated + skipped, 60);
    assert!(
        updated >= 10 && skipped > 20,
        "{updated} updated, {skipped} skipped"
    );
    assert_eq!(
        seen(&sb, "PUT", "/usermanagement/users/"),
        updated,
        "every row sent was finished"
    );
    assert_eq!(
        read_report(&dir.path().join("report-failures.csv")).len(),
        skipped
    );
}

#[test]
#[cfg(unix)]
fn a_scheduler_stopping_a_run_with_sigterm_is_told_apart_from_ctrl_c_and_the_run_resumes() {
    let sb = sandbox(Faults::default());
    let dir = tempdir();
    let report = dir.path().join("report.csv");
    let f = many_rows(dir.path(), 60, "hub");
    let child = spawn_apply(
        &sb,
        "hub",
        &f,
        &report,
        &HUB_ENV,
        &["--rate", "10/s", "--concurrency", "2"],
    );
    wait_for_rows(&report, 10);
    // What systemd, cron's killer or a CI runner sends to stop a job.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(
        err.contains(
            "interrupted (SIGTERM): finishing the rows in flight (SIGTERM again quits now)"
        ),
        "{err}"
    );
    assert!(!err.contains("Ctrl-C"), "nobody typed Ctrl-C: {err}");
    let r = read_report(&report);
    assert_eq!(r.len(), 60, "every row reported");
    let updated = r.iter().filter(|x| x["status"] == "updated").count();
    assert!((10..60).contains(&updated), "{updated} updated");
    assert!(r
        .iter()
        .all(|x| x["status"] == "updated" || x["status"] == "skipped"));

    let run = apply(&sb, "hub", &f, dir.path(), &HUB_ENV, &["--resume"]);
    assert_all_done(&run, 60);
    assert_eq!(seen(&sb, "POST", "/edituser"), 60, "each row sent once");
}

#[test]
fn a_killed_run_loses_nothing_and_resumes_to_every_row_exactly_once() {
    let sb = sandbox(Faults::default());
    let dir = tempdir();
    let report = dir.path().join("report.csv");
    let f = many_rows(dir.path(), 100, "hub");
    let mut child = spawn_apply(
        &sb,
        "hub",
        &f,
        &report,
        &HUB_ENV,
        &["--rate", "40/s", "--concurrency", "4"],
    );
    wait_for_rows(&report, 25);
    child.kill().unwrap();
    child.wait().unwrap();
    // What the killed run left: the rows that had finished, as they finished.
    let partial = read_report(&report);
    let writes_before = seen(&sb, "POST", "/edituser");
    assert!(
        partial.len() >= 25 && partial.len() < 100,
        "{}",
        partial.len()
    );
    assert!(partial.iter().all(|x| x["status"] == "updated"));
    assert!(
        writes_before >= partial.len() && writes_before <= partial.len() + 4,
        "at most the rows in flight were lost"
    );

    let run = apply(&sb, "hub", &f, dir.path(), &HUB_ENV, &["--resume"]);
    assert_all_done(&run, 100);
    // The journaled rows were not sent again; the rest were sent once.
    assert_eq!(seen(&sb, "POST", "/edituser"), 100);
    let state = sb.state();
    for i in 1..=100 {
        assert_eq!(
            hub_user(&state, &format!("user{i:05}@example.com"))["user_job_title"],
            format!("Title {i}")
        );
    }
    // Resuming a finished run sends nothing.
    let again = apply(&sb, "hub", &f, dir.path(), &HUB_ENV, &["--resume"]);
    assert_all_done(&again, 100);
    assert_eq!(seen(&sb, "POST", "/edituser"), 100);
}

fn assert_all_done(run: &Run, n: usize) {
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    let lines: Vec<String> = run.report.iter().map(|r| r["row"].clone()).collect();
    assert_eq!(
        lines,
        (2..n + 2).map(|i| i.to_string()).collect::<Vec<_>>(),
        "each row exactly once, in order"
    );
    assert!(run
        .report
        .iter()
        .all(|r| r["status"] == "updated" || r["status"] == "unchanged"));
}

#[test]
fn resume_refuses_a_report_of_another_input() {
    let sb = sandbox(Faults::default());
    let dir = tempdir();
    let run = apply(
        &sb,
        "hub",
        &sample("hub-clean.csv"),
        dir.path(),
        &HUB_ENV,
        &[],
    );
    assert_eq!(run.code(), Some(0));
    let other = write(dir.path(), "o.csv", "user_email\nuser00001@example.com\n");
    let run = apply(&sb, "hub", &other, dir.path(), &HUB_ENV, &["--resume"]);
    assert_eq!(run.code(), Some(2));
    assert!(
        run.stderr()
            .contains("belongs to a run with another input file"),
        "{}",
        run.stderr()
    );
}

/// A job big enough to read the whole user list reads each page of it once: the read that
/// proves the URL and the credentials at log-in is the list's first page (Control Room,
/// Identity) or is sent beside it (hub), not a page of its own, and the rest come at once.
#[test]
fn a_job_that_reads_the_whole_list_reads_each_page_once() {
    let sb = Sandbox::start(SandboxConfig {
        users: 2500,
        ..SandboxConfig::default()
    })
    .unwrap();
    let dir = tempdir();
    let sheets = [
        (
            "hub",
            "user_email,user_job_title",
            "user{i:05}@example.com,Title {i}",
            &HUB_ENV[..],
        ),
        (
            "identity",
            "email,displayName",
            "user{i:05}@example.com,Name {i}",
            &IDENTITY_ENV[..],
        ),
        (
            "control-room",
            "username,description",
            "user{i:05},Note {i}",
            &CR_ENV[..],
        ),
    ];
    for (platform, header, row, env) in sheets {
        let mut text = format!("{header}\n");
        for i in 1..=1200 {
            text.push_str(
                &row.replace("{i:05}", &format!("{i:05}"))
                    .replace("{i}", &i.to_string()),
            );
            text.push('\n');
        }
        let file = write(dir.path(), &format!("{platform}.csv"), text);
        let before = sb.requests().len();
        let run = apply(
            &sb,
            platform,
            &file,
            dir.path(),
            env,
            &["--concurrency", "8"],
        );
        assert_eq!(run.code(), Some(0), "{platform}: {}", run.stderr());
        assert!(run.report.iter().all(|r| r["status"] == "updated"));
        let pages: Vec<String> = sb.requests()[before..]
            .iter()
            .filter(|r| {
                r.path.ends_with("/openapi/users")
                    || r.path.contains("/api/User/users/")
                    || r.path.ends_with("/usermanagement/users/list")
            })
            .map(|r| r.path.clone())
            .collect();
        // 2,500 users: 3 pages of 1,000.
        assert_eq!(pages.len(), 3, "{platform}: {pages:?}");
    }
}

/// A `--url` copied with the API's own path (`/api/v1/openapi`, `/api/User`, `/v1`, and what
/// follows) is cut back to the service root, saying so, and the run goes on: SPEC's promise.
#[test]
fn a_url_with_the_apis_own_path_is_cut_back_to_the_service_root() {
    let sb = sandbox(Faults::default());
    let dir = tempdir();
    /// A platform, the API path pasted after its root, a sheet, and its credentials.
    type Case<'a> = (&'a str, &'a str, &'a str, &'a [(&'a str, &'a str)]);
    let cases: [Case; 3] = [
        (
            "hub",
            "api/v1/openapi/",
            "user_email,user_job_title\nuser00001@example.com,Cut\n",
            &HUB_ENV,
        ),
        (
            "identity",
            "api/User",
            "userId,name\n00000000-0000-4000-8000-000000000001,Cut\n",
            &IDENTITY_ENV,
        ),
        (
            "control-room",
            "v1/usermanagement/users",
            "id,firstName\n1,Cut\n",
            &CR_ENV,
        ),
    ];
    for (platform, api, sheet, env) in cases {
        let root = sb.url_for(platform);
        let url = format!("{}/{api}", root.as_str().trim_end_matches('/'));
        let file = write(dir.path(), &format!("{platform}.csv"), sheet);
        let report = dir.path().join(format!("{platform}-report.csv"));
        let out = bulkedit()
            .arg("apply")
            .arg(&file)
            .args([
                "--platform",
                platform,
                "--url",
                &url,
                "--rate",
                "unlimited",
                "--report",
            ])
            .arg(&report)
            .envs(env.iter().copied())
            .output()
            .unwrap();
        let err = stderr_of(&out);
        assert_eq!(out.status.code(), Some(0), "{platform}: {err}");
        assert!(
            err.contains("the API's path is bulkedit's to add; using the service root"),
            "{platform}: {err}"
        );
        assert_eq!(read_report(&report)[0]["status"], "updated", "{platform}");
    }
}

/// Identity's group columns go by SPEC's other names too (`groupsToAdd`, `Add Groups`,
/// `groupsToRemove`, `Remove Groups`), as hub's role columns do: an admin's `Remove Groups`
/// column was dropped with a warning, and the row reported unchanged.
#[test]
fn identity_group_columns_are_read_under_specs_other_names() {
    let sb = sandbox(Faults::default());
    let dir = tempdir();
    let admins = "10000000-0000-4000-8000-000000000002";
    let reviewers = "10000000-0000-4000-8000-000000000005";
    for (add, remove) in [
        ("groupsToAdd", "groupsToRemove"),
        ("Add Groups", "Remove Groups"),
    ] {
        // User 50 is in Administrators; then back again, the other way round.
        for (adds, removes, member) in [
            ("HR Reviewers", "Administrators", false),
            ("Administrators", "HR Reviewers", true),
        ] {
            let file = write(
                dir.path(),
                "groups.csv",
                format!("userId,{add},{remove}\n00000000-0000-4000-8000-000000000050,{adds},{removes}\n"),
            );
            let run = apply(&sb, "identity", &file, dir.path(), &IDENTITY_ENV, &[]);
            assert_eq!(run.code(), Some(0), "{add}: {}", run.stderr());
            assert_eq!(
                run.report[0]["status"], "updated",
                "{add}: {:?}",
                run.report
            );
            let state = sb.state();
            let user = state["identity"]
                .as_array()
                .unwrap()
                .iter()
                .find(|u| u["id"] == "00000000-0000-4000-8000-000000000050")
                .unwrap()
                .clone();
            let groups: Vec<&str> = user["groupIDs"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(Value::as_str)
                .collect();
            assert_eq!(groups.contains(&admins), member, "{add}: {groups:?}");
            assert_eq!(groups.contains(&reviewers), !member, "{add}: {groups:?}");
        }
    }
}
