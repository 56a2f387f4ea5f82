//! What happens between a read and a write: another admin changing the same users after the
//! list was read, two rows that turn out to name one user, and a write whose answer was lost.
//! Against live servers of our own (they keep their users and apply writes) and the sandbox.

use std::path::Path;

use crate::common::rogue::{self, OnWrite};
use crate::common::*;
use bulkedit::sandbox::{Sandbox, SandboxConfig};

const HUB_TOKEN: &str = "tenant-7/s3cret-hub-token";
const PARTITION: &str = "00000000-0000-4000-8000-000000000000";

fn id(i: usize) -> String {
    format!("00000000-0000-4000-8000-{i:012}")
}

fn apply(
    platform: &str,
    url: &str,
    sheet: &Path,
    report: &Path,
    env: &[(&str, &str)],
    extra: &[&str],
) -> std::process::Output {
    let mut cmd = bulkedit();
    cmd.arg("apply")
        .arg(sheet)
        .args(["--platform", platform, "--url", url, "--rate", "unlimited"])
        .arg("--report")
        .arg(report)
        .args(extra);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn identity_env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("BULKEDIT_TOKEN", "identity-access-token"),
        ("BULKEDIT_PARTITION", PARTITION),
    ]
}

#[test]
fn another_admins_change_made_after_the_list_was_read_is_not_put_back() {
    // Hub: five rows, so the list is read up front; right after it, another admin gives every
    // user a new job title. A copy older than the window (none allowed here) is read again.
    let (server, users) = rogue::hub_live(
        (1..=5).map(rogue::hub_user).collect(),
        Some(("user_job_title", "Changed by another admin")),
        |_, _| OnWrite::Apply,
    );
    let dir = tempdir();
    let mut text = String::from("user_email,user_first_name\n");
    for i in 1..=5 {
        text.push_str(&format!("user{i:05}@example.com,Renamed{i}\n"));
    }
    let sheet = write(dir.path(), "hub.csv", text);
    let report = dir.path().join("report.csv");
    let url = format!("{}/org/tenant/automationhub_", server.url());
    let out = apply(
        "hub",
        &url,
        &sheet,
        &report,
        &[
            ("BULKEDIT_TOKEN", HUB_TOKEN),
            ("BULKEDIT_TEST_FRESH_MS", "0"),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let rows = read_report(&report);
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row["status"], "updated", "{row:?}");
        // The list, then one search by e-mail, then the write.
        assert_eq!(row["attempts"], "2", "row {}: {row:?}", i + 2);
    }
    for (i, user) in users.lock().unwrap().iter().enumerate() {
        assert_eq!(user["user_first_name"], format!("Renamed{}", i + 1));
        assert_eq!(user["user_job_title"], "Changed by another admin", "{user}");
    }
    for req in server
        .requests()
        .iter()
        .filter(|r| r.target.contains("edituser"))
    {
        assert!(
            !req.body.contains("Developer"),
            "an old value was sent: {}",
            req.body
        );
    }

    // Identity: the same, another admin changing surnames; each copy is read again by id.
    let (server, users) = rogue::identity_live(
        (1..=4).map(rogue::identity_user).collect(),
        Some(("surname", "Changed")),
        |_, _| OnWrite::Apply,
    );
    let mut text = String::from("userId,name\n");
    for i in 1..=4 {
        text.push_str(&format!("{},Renamed{i}\n", id(i)));
    }
    let sheet = write(dir.path(), "identity.csv", text);
    let report = dir.path().join("identity-report.csv");
    let mut env = identity_env();
    env.push(("BULKEDIT_TEST_FRESH_MS", "0"));
    let url = format!("{}/identity_", server.url());
    let out = apply("identity", &url, &sheet, &report, &env, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let rows = read_report(&report);
    assert!(rows.iter().all(|r| r["status"] == "updated"), "{rows:?}");
    for (i, user) in users.lock().unwrap().iter().enumerate() {
        assert_eq!(user["name"], format!("Renamed{}", i + 1));
        assert_eq!(user["surname"], "Changed", "{user}");
    }
    let reads = server
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && r.target.contains("/api/User/0"))
        .count();
    assert_eq!(reads, 4, "each row's copy read again by id");
}

#[test]
fn a_control_room_record_without_a_version_is_written_only_from_a_fresh_copy() {
    // A Control Room whose records carry no version: a PUT cannot be refused as stale, so
    // a copy older than the window is read again, as on the platforms without one.
    let users: Vec<serde_json::Value> = (1..=4)
        .map(|i| {
            let mut u = rogue::control_room_user(i, &format!("user{i:05}"));
            u.as_object_mut().unwrap().remove("version");
            u
        })
        .collect();
    let (server, users) = rogue::control_room_live_with(users, Some(("lastName", "Changed")));
    let dir = tempdir();
    let mut text = String::from("id,firstName\n");
    for i in 1..=4 {
        text.push_str(&format!("{i},Renamed{i}\n"));
    }
    let sheet = write(dir.path(), "cr.csv", text);
    let report = dir.path().join("report.csv");
    let env = [("BULKEDIT_TOKEN", "t0ken"), ("BULKEDIT_TEST_FRESH_MS", "0")];
    let out = apply("control-room", &server.url(), &sheet, &report, &env, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let rows = read_report(&report);
    assert!(rows.iter().all(|r| r["status"] == "updated"), "{rows:?}");
    for (i, user) in users.lock().unwrap().iter().enumerate() {
        assert_eq!(user["firstName"], format!("Renamed{}", i + 1));
        assert_eq!(
            user["lastName"], "Changed",
            "the other admin's change stands: {user}"
        );
    }
}

#[test]
fn a_copy_inside_the_freshness_window_is_written_without_reading_it_again() {
    // The saving the list read up front exists for: within the window, no row reads again.
    let (server, _) = rogue::hub_live((1..=5).map(rogue::hub_user).collect(), None, |_, _| {
        OnWrite::Apply
    });
    let dir = tempdir();
    let mut text = String::from("user_email,user_first_name\n");
    for i in 1..=5 {
        text.push_str(&format!("user{i:05}@example.com,Renamed{i}\n"));
    }
    let sheet = write(dir.path(), "hub.csv", text);
    let report = dir.path().join("report.csv");
    let url = format!("{}/org/tenant/automationhub_", server.url());
    let out = apply(
        "hub",
        &url,
        &sheet,
        &report,
        &[
            ("BULKEDIT_TOKEN", HUB_TOKEN),
            ("BULKEDIT_TEST_FRESH_MS", "3600000"),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let rows = read_report(&report);
    assert!(rows.iter().all(|r| r["attempts"] == "1"), "{rows:?}");
    let searches = server
        .requests()
        .iter()
        .filter(|r| r.target.contains("/users?"))
        .count();
    assert_eq!(searches, 1, "the list, once");
}

/// The Control Room sheet naming user 5 by id on row 2 and by username on row 3, and user 6
/// by id on row 4.
fn cr_twin_sheet(dir: &Path) -> std::path::PathBuf {
    write(
        dir,
        "cr.csv",
        "id,username,firstName\n5,,ByIdAnn\n,USER00005,ByNameBea\n6,,Cleo\n",
    )
}

fn cr_env() -> [(&'static str, &'static str); 2] {
    [
        ("BULKEDIT_USERNAME", "sandbox"),
        ("BULKEDIT_PASSWORD", "sandbox-password"),
    ]
}

#[test]
fn two_rows_naming_one_user_through_different_keys_are_both_refused() {
    // A hundred users: the list is read up front, and shows the twins before anything is sent.
    let sb = Sandbox::start(SandboxConfig::default()).unwrap();
    let dir = tempdir();
    let report = dir.path().join("report.csv");
    let url = sb.url_for("control-room").to_string();
    let out = apply(
        "control-room",
        &url,
        &cr_twin_sheet(dir.path()),
        &report,
        &cr_env(),
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    let rows = read_report(&report);
    assert_eq!(
        statuses(&rows),
        pairs(&[("2", "invalid"), ("3", "invalid"), ("4", "updated")])
    );
    assert!(
        rows[0]["error"].contains("the same user as row 3 (its username 'USER00005')"),
        "{rows:?}"
    );
    assert!(
        rows[1]["error"].contains("the same user as row 2 (its id '5')"),
        "{rows:?}"
    );
    let puts: Vec<String> = sb
        .requests()
        .iter()
        .filter(|r| r.method == "PUT")
        .map(|r| r.path.clone())
        .collect();
    assert_eq!(
        puts,
        ["/v1/usermanagement/users/6"],
        "nothing sent for user 5"
    );
    let state = sb.state();
    assert_eq!(state["control_room"][4]["firstName"], "First00005");
    assert_eq!(state["control_room"][5]["firstName"], "Cleo");

    // Identity: userId on one row, the same user's e-mail on another.
    let sb = Sandbox::start(SandboxConfig::default()).unwrap();
    let sheet = write(
        dir.path(),
        "identity.csv",
        format!(
            "userId,email,name\n{},,Ann\n,user00001@example.com,Bea\n{},,Cleo\n",
            id(1),
            id(2)
        ),
    );
    let report = dir.path().join("identity-report.csv");
    let url = sb.url_for("identity").to_string();
    let env = [
        ("BULKEDIT_TOKEN", "sandbox-identity-token"),
        ("BULKEDIT_PARTITION", PARTITION),
    ];
    let out = apply("identity", &url, &sheet, &report, &env, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    let rows = read_report(&report);
    assert_eq!(
        statuses(&rows),
        pairs(&[("2", "invalid"), ("3", "invalid"), ("4", "updated")])
    );
    assert!(rows[0]["error"].contains("row 3"), "{rows:?}");
    assert!(rows[1]["error"].contains("row 2"), "{rows:?}");
    let puts = sb.requests().iter().filter(|r| r.method == "PUT").count();
    assert_eq!(puts, 1, "nothing sent for user 1");
}

#[test]
fn a_twin_found_by_a_look_up_after_its_first_row_was_sent_is_refused_naming_it() {
    // Too many users to list for three rows: each row looks its user up, one at a time. Row 2
    // is sent before row 3's look-up shows the same user: row 2's change stands (it cannot be
    // un-sent), row 3 is refused naming it, and nothing is sent for it.
    let sb = Sandbox::start(SandboxConfig {
        users: 3500,
        ..SandboxConfig::default()
    })
    .unwrap();
    let dir = tempdir();
    let report = dir.path().join("report.csv");
    let url = sb.url_for("control-room").to_string();
    let out = apply(
        "control-room",
        &url,
        &cr_twin_sheet(dir.path()),
        &report,
        &cr_env(),
        &["--concurrency", "1"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    let rows = read_report(&report);
    assert_eq!(
        statuses(&rows),
        pairs(&[("2", "updated"), ("3", "invalid"), ("4", "updated")])
    );
    assert!(
        rows[1]["error"].contains("the same user as row 2 (its id '5')")
            && rows[1]["error"].contains("row 2 was sent before this showed"),
        "{rows:?}"
    );
    let puts = sb.requests().iter().filter(|r| r.method == "PUT").count();
    assert_eq!(puts, 2);
    assert_eq!(sb.state()["control_room"][4]["firstName"], "ByIdAnn");
}

/// The row of a write whose answer was lost says what it changed, and the run's undo file
/// names the user with the value it had.
fn assert_lost_write_is_undoable(
    report: &Path,
    rows: &[std::collections::BTreeMap<String, String>],
) {
    assert!(
        rows[0]["changes"].contains("First00001") && rows[0]["changes"].contains("Renamed"),
        "{rows:?}"
    );
    let undo = std::fs::read_to_string(bulkedit::report::undo_path(report)).unwrap_or_default();
    assert!(
        undo.contains(&id(1)) && undo.contains("First00001"),
        "the undo file puts the name back: {undo}"
    );
}

#[test]
fn a_write_whose_answer_was_lost_is_updated_when_a_read_shows_it_was_made() {
    let dir = tempdir();
    let sheet = write(
        dir.path(),
        "identity.csv",
        format!("userId,name\n{},Renamed\n", id(1)),
    );
    // Applied, then the connection drops, on every try: a read shows the change in place.
    let (server, users) = rogue::identity_live(vec![rogue::identity_user(1)], None, |_, _| {
        OnWrite::ApplyThenDrop
    });
    let report = dir.path().join("report.csv");
    let url = format!("{}/identity_", server.url());
    let out = apply(
        "identity",
        &url,
        &sheet,
        &report,
        &identity_env(),
        &["--retries", "1"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let rows = read_report(&report);
    assert_eq!(rows[0]["status"], "updated", "{rows:?}");
    assert_eq!(rows[0]["error"], "", "{rows:?}");
    // The read, the write and its retry, the read that found the change.
    assert_eq!(
        (
            rows[0]["attempts"].as_str(),
            rows[0]["http_status"].as_str()
        ),
        ("4", "200")
    );
    assert_eq!(users.lock().unwrap()[0]["name"], "Renamed");
    // What it changed is said, and the undo file puts it back, as for any write.
    assert_lost_write_is_undoable(&report, &rows);

    // Dropped before it was made: the row failed, and says the server may have applied it.
    let (server, users) =
        rogue::identity_live(vec![rogue::identity_user(1)], None, |_, _| OnWrite::Drop);
    let report = dir.path().join("report2.csv");
    let url = format!("{}/identity_", server.url());
    let out = apply(
        "identity",
        &url,
        &sheet,
        &report,
        &identity_env(),
        &["--retries", "1"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    let rows = read_report(&report);
    assert_eq!(rows[0]["status"], "failed", "{rows:?}");
    assert!(
        rows[0]["error"].contains(
            "the connection dropped after the request was sent; the server may have applied it"
        ),
        "{rows:?}"
    );
    assert_eq!(users.lock().unwrap()[0]["name"], "First00001");

    // Applied, the answer lost, and the retry refused as a change already made: the read
    // after it shows the row's values in place.
    for (first, says) in [
        (OnWrite::ApplyThenDrop, None),
        (
            OnWrite::Drop,
            Some("NothingToChange: the user already has these values"),
        ),
    ] {
        let (server, users) =
            rogue::identity_live(vec![rogue::identity_user(1)], None, move |n, _| {
                if n == 0 {
                    first
                } else {
                    OnWrite::Refuse
                }
            });
        let report = dir.path().join("report3.csv");
        let url = format!("{}/identity_", server.url());
        let out = apply(
            "identity",
            &url,
            &sheet,
            &report,
            &identity_env(),
            &["--retries", "1"],
        );
        let rows = read_report(&report);
        let name = users.lock().unwrap()[0]["name"].clone();
        match says {
            None => {
                assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
                assert_eq!(rows[0]["status"], "updated", "{rows:?}");
                assert_eq!(name, "Renamed");
                assert_lost_write_is_undoable(&report, &rows);
            }
            Some(says) => {
                assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
                assert_eq!(
                    (rows[0]["status"].as_str(), rows[0]["http_status"].as_str()),
                    ("failed", "400"),
                    "{rows:?}"
                );
                assert!(rows[0]["error"].contains(says), "{rows:?}");
                assert_eq!(name, "First00001");
            }
        }
    }
}
