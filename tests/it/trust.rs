//! Trust on the wire, platform part: an answer is believed only when it has the vendor's
//! documented shape, and what was not understood is never written back.

use std::path::{Path, PathBuf};

use crate::common::rogue::{self, Answer, Rogue};
use crate::common::*;

const HUB_TOKEN: &str = "tenant-7/s3cret-hub-token";

fn hub_sheet(dir: &Path, n: usize) -> PathBuf {
    let mut text = String::from("user_email,user_first_name\n");
    for i in 1..=n {
        text.push_str(&format!("user{i:05}@example.com,Renamed{i}\n"));
    }
    write(dir, "users.csv", text)
}

fn apply(
    platform: &str,
    url: &str,
    sheet: &Path,
    report: &Path,
    env: &[(&str, &str)],
) -> std::process::Output {
    let mut cmd = bulkedit();
    cmd.arg("apply")
        .arg(sheet)
        .args([
            "--platform",
            platform,
            "--url",
            url,
            "--rate",
            "unlimited",
            "--retries",
            "0",
            "--report",
        ])
        .arg(report);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn apply_hub(server: &Rogue, sheet: &Path, report: &Path) -> std::process::Output {
    let url = format!("{}/org/tenant/automationhub_", server.url());
    apply("hub", &url, sheet, report, &[("BULKEDIT_TOKEN", HUB_TOKEN)])
}

#[test]
fn a_hub_write_is_updated_only_on_its_documented_answer() {
    type Case = (&'static str, fn() -> Answer, &'static str);
    let cases: [Case; 3] = [
        (
            "web page",
            || Answer::html(200, "<html><body>Sign in</body></html>"),
            "web page",
        ),
        (
            "empty",
            || Answer::Reply {
                status: 201,
                headers: vec![],
                body: vec![],
            },
            "an empty answer",
        ),
        (
            "other shape",
            || Answer::json(201, &serde_json::json!({})),
            "an answer this API does not give",
        ),
    ];
    for (what, answer, says) in cases {
        let server = rogue::hub(2, move |_, _| answer());
        let dir = tempdir();
        let report = dir.path().join("report.csv");
        let out = apply_hub(&server, &hub_sheet(dir.path(), 2), &report);
        let err = stderr_of(&out);
        assert_eq!(out.status.code(), Some(1), "{what}: {err}");
        for row in read_report(&report) {
            assert_eq!(row["status"], "failed", "{what}: {row:?}");
            assert!(row["error"].contains(says), "{what}: {row:?}");
        }
    }
}

#[test]
fn a_read_that_is_not_the_api_is_never_a_not_found() {
    // The look-up answered with a sign-in page: the row fails, it is not `not-found`.
    let server = Rogue::start(|req| {
        if req.target.contains("/roles") {
            Answer::json(200, &serde_json::json!({"statusCode": 200, "data": []}))
        } else {
            Answer::html(200, "<html><body>Sign in</body></html>")
        }
    });
    let dir = tempdir();
    let report = dir.path().join("report.csv");
    let out = apply_hub(&server, &hub_sheet(dir.path(), 1), &report);
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    let rows = read_report(&report);
    assert_eq!(rows[0]["status"], "failed", "{rows:?}");
    assert!(rows[0]["error"].contains("web page"), "{rows:?}");

    // The service root answered with a web page at log-in: exit 2, naming the URL.
    let server = Rogue::start(|_| Answer::html(200, "<html>portal</html>"));
    let report = dir.path().join("report2.csv");
    let out = apply_hub(&server, &hub_sheet(dir.path(), 1), &report);
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("--url") && err.contains("web page"), "{err}");
    assert!(!report.exists());

    // A genuine not-found carries the look-up's real status.
    let server = rogue::hub(0, |_, _| rogue::hub_updated());
    let report = dir.path().join("report3.csv");
    let out = apply_hub(&server, &hub_sheet(dir.path(), 1), &report);
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    let rows = read_report(&report);
    assert_eq!(
        (rows[0]["status"].as_str(), rows[0]["http_status"].as_str()),
        ("not-found", "200")
    );
}

#[test]
fn a_masked_password_from_a_report_is_refused_offline() {
    let dir = tempdir();
    let sheet = write(
        dir.path(),
        "identity.csv",
        "userId,name,password\n00000000-0000-4000-8000-000000000001,Ann,***\n",
    );
    let report = dir.path().join("report.csv");
    let out = bulkedit()
        .arg("validate")
        .arg(&sheet)
        .args(["--platform", "identity", "--report"])
        .arg(&report)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    let rows = read_report(&report);
    assert_eq!(rows[0]["status"], "invalid", "{rows:?}");
    assert!(
        rows[0]["error"].contains("the report masked this password; type it again"),
        "{rows:?}"
    );
}

#[test]
fn a_record_not_understood_is_not_written_back() {
    for roles in [serde_json::json!(["8"]), serde_json::Value::Null] {
        let mut user = serde_json::json!({
            "user_email": "user00001@example.com", "user_first_name": "F",
            "user_is_active": 1, "user_invite_status": 3, "user_roles": roles,
        });
        if user["user_roles"].is_null() {
            user.as_object_mut().unwrap().remove("user_roles");
        }
        let server = rogue::hub_with(vec![user], |_, _| rogue::hub_updated());
        let dir = tempdir();
        let report = dir.path().join("report.csv");
        let out = apply_hub(&server, &hub_sheet(dir.path(), 1), &report);
        assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
        let rows = read_report(&report);
        assert_eq!(rows[0]["status"], "failed", "{rows:?}");
        assert!(rows[0]["error"].contains("user_roles"), "{rows:?}");
        assert!(
            !server
                .requests()
                .iter()
                .any(|r| r.target.contains("edituser")),
            "nothing is written"
        );
    }
}

#[test]
fn deactivating_an_active_hub_user_sends_invite_status_1() {
    let server = rogue::hub(1, |_, _| rogue::hub_updated());
    let dir = tempdir();
    let sheet = write(
        dir.path(),
        "off.csv",
        "user_email,user_is_active\nuser00001@example.com,0\n",
    );
    let report = dir.path().join("report.csv");
    let out = apply_hub(&server, &sheet, &report);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let sent: Vec<serde_json::Value> = server
        .requests()
        .iter()
        .filter(|r| r.target.contains("edituser"))
        .map(|r| serde_json::from_str(&r.body).unwrap())
        .collect();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        (
            sent[0]["user_is_active"].clone(),
            sent[0]["user_invite_status"].clone()
        ),
        (serde_json::json!(0), serde_json::json!(1))
    );
}

#[test]
fn case_twins_fail_the_row_naming_both_and_loose_searches_are_paged() {
    let user = |email: &str| {
        serde_json::json!({"user_email": email, "user_first_name": "F", "user_is_active": 1,
            "user_invite_status": 3, "user_roles": [{"role_id": 8, "category_id": 0}]})
    };
    // One row (a look-up) and three rows (the list read up front).
    for rows in [1, 3] {
        let list = vec![
            user("User00001@example.com"),
            user("user00001@example.com"),
            user("user00002@example.com"),
            user("user00003@example.com"),
        ];
        let server = rogue::hub_with(list, |_, _| rogue::hub_updated());
        let dir = tempdir();
        let report = dir.path().join("report.csv");
        let out = apply_hub(&server, &hub_sheet(dir.path(), rows), &report);
        assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
        let rows = read_report(&report);
        assert_eq!(rows[0]["status"], "failed", "{rows:?}");
        assert!(
            rows[0]["error"].contains("'User00001@example.com'")
                && rows[0]["error"].contains("'user00001@example.com'"),
            "{rows:?}"
        );
        let edits = server
            .requests()
            .iter()
            .filter(|r| r.target.contains("edituser"))
            .count();
        assert_eq!(edits, rows.len() - 1, "nothing sent for the twins");
    }

    // The exact e-mail on the second page of a loose search.
    let server = Rogue::start(move |req| {
        if req.target.contains("/roles") {
            return Answer::json(200, &serde_json::json!({"statusCode": 200, "data": []}));
        }
        if req.target.contains("edituser") {
            return rogue::hub_updated();
        }
        let page2 = req.target.contains("page=2");
        let users: Vec<serde_json::Value> = if page2 {
            vec![user("user00001@example.com")]
        } else {
            (0..50)
                .map(|i| user(&format!("xuser00001{i}@example.com")))
                .collect()
        };
        Answer::json(
            200,
            &serde_json::json!({"statusCode": 200, "data": {"page": if page2 {2} else {1},
            "pageSize": 50, "totalItems": 51, "totalPages": 2, "users": users}}),
        )
    });
    let dir = tempdir();
    let report = dir.path().join("report.csv");
    let out = apply_hub(&server, &hub_sheet(dir.path(), 1), &report);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert_eq!(read_report(&report)[0]["status"], "updated");
}

#[test]
fn a_token_obtained_during_the_run_is_redacted_when_the_server_echoes_it() {
    const TOKEN: &str = "learned-identity-token-0123456789";
    let id = "00000000-0000-4000-8000-000000000001";
    let server = Rogue::start(move |req| {
        if req.target.ends_with("/connect/token") {
            return Answer::json(
                200,
                &serde_json::json!({"access_token": TOKEN, "expires_in": 3600, "token_type": "Bearer"}),
            );
        }
        if req.method == "GET" {
            return Answer::json(
                200,
                &serde_json::json!({"id": id, "name": "Ann", "email": "a@example.com"}),
            );
        }
        let echoed = req.header("authorization").unwrap_or("").to_string();
        Answer::json(
            400,
            &serde_json::json!({"succeeded": false, "errors": [{"code": "Bad", "description": echoed}]}),
        )
    });
    let dir = tempdir();
    let sheet = write(dir.path(), "i.csv", format!("userId,name\n{id},Bea\n"));
    let report = dir.path().join("report.csv");
    let url = format!("{}/identity_", server.url());
    let out = apply(
        "identity",
        &url,
        &sheet,
        &report,
        &[
            ("BULKEDIT_CLIENT_ID", "app"),
            ("BULKEDIT_CLIENT_SECRET", "client-secret-value"),
        ],
    );
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let rows = read_report(&report);
    assert_eq!(rows[0]["status"], "failed", "{rows:?}");
    assert!(!rows[0]["error"].contains(TOKEN), "{rows:?}");
    assert!(!err.contains(TOKEN), "{err}");
    assert!(!std::fs::read_to_string(&report).unwrap().contains(TOKEN));
}

/// A JWT with these claims (unsigned: the client never checks signatures).
fn jwt(claims: serde_json::Value) -> String {
    use base64::Engine;
    let b64 = |v: &serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    format!(
        "{}.{}.sig",
        b64(&serde_json::json!({"alg": "HS256"})),
        b64(&claims)
    )
}

#[test]
fn a_local_clock_ahead_of_the_server_does_not_renew_before_every_request() {
    // The server's clock is an hour behind: by the local clock its 20-minute token expired
    // long ago, though it was issued just now.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let token = jwt(serde_json::json!({"iat": now - 3600, "exp": now - 3600 + 1200}));
    let user = |id: u64| {
        serde_json::json!({"id": id, "version": 1, "username": format!("u{id}"), "email": format!("u{id}@example.com"),
            "firstName": "F", "roles": [{"id": 1, "name": "AAE_Basic", "version": 0}]})
    };
    let server = Rogue::start(move |req| {
        let path = req.target.split('?').next().unwrap_or("");
        if path.ends_with("/v1/authentication") || path.ends_with("/v1/authentication/token") {
            return Answer::json(200, &serde_json::json!({"token": token}));
        }
        if path.ends_with("/users/list") {
            let list: Vec<_> = (1..=3).map(user).collect();
            return Answer::json(
                200,
                &serde_json::json!({"page": {"offset": 0, "total": 3, "totalFilter": 3}, "list": list}),
            );
        }
        let id: u64 = path.rsplit('/').next().unwrap_or("0").parse().unwrap_or(0);
        Answer::json(200, &user(id))
    });
    let dir = tempdir();
    let sheet = write(dir.path(), "cr.csv", "id,firstName\n1,A\n2,B\n3,C\n");
    let report = dir.path().join("report.csv");
    let out = apply(
        "control-room",
        &server.url(),
        &sheet,
        &report,
        &[
            ("BULKEDIT_USERNAME", "admin"),
            ("BULKEDIT_PASSWORD", "pw-value"),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let logins = server
        .requests()
        .iter()
        .filter(|r| r.target.contains("/authentication"))
        .count();
    assert_eq!(logins, 1, "one log-in, no renewals");
}
