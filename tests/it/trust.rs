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

#[test]
fn token_only_runs_check_the_url_and_the_token_before_the_first_row() {
    use bulkedit::sandbox::{Sandbox, SandboxConfig};
    let sb = Sandbox::start(SandboxConfig::default()).unwrap();
    let elsewhere = format!("{}/nothing-here", sb.base_url());
    let identity = sb.url_for("identity").to_string();
    let control_room = sb.url_for("control-room").to_string();
    let partition = ("BULKEDIT_PARTITION", "00000000-0000-4000-8000-000000000000");
    type Case<'a> = (&'a str, &'a str, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case> = vec![
        (
            "identity",
            &elsewhere,
            vec![("BULKEDIT_TOKEN", "sandbox-identity-token"), partition],
            "does not answer like Identity Server's API",
        ),
        (
            "identity",
            &identity,
            vec![("BULKEDIT_TOKEN", "a-wrong-token"), partition],
            "refused the credentials",
        ),
        (
            "control-room",
            &elsewhere,
            vec![("BULKEDIT_TOKEN", "a-wrong-token")],
            "does not answer like a Control Room",
        ),
        (
            "control-room",
            &control_room,
            vec![("BULKEDIT_TOKEN", "a-wrong-token")],
            "refused the credentials",
        ),
    ];
    for (platform, url, env, says) in cases {
        let dir = tempdir();
        let sheet = match platform {
            "identity" => write(
                dir.path(),
                "in.csv",
                "userId,name\n00000000-0000-4000-8000-000000000001,Ann\n",
            ),
            _ => write(dir.path(), "in.csv", "id,firstName\n1,Ann\n"),
        };
        // An earlier report that records a write: never replaced by a run that cannot start.
        let report = write(
            dir.path(),
            "report.csv",
            "row,status,error,changes,http_status,attempts,id,firstName\n2,updated,,,200,2,1,Ann\n",
        );
        let before = std::fs::read(&report).unwrap();
        let out = apply(platform, url, &sheet, &report, &env);
        let err = stderr_of(&out);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{platform} {url} {env:?}: {err}"
        );
        assert!(err.contains(says), "{platform} {url} {env:?}: {err}");
        assert!(!err.contains("a-wrong-token"), "{err}");
        assert_eq!(std::fs::read(&report).unwrap(), before);
        let mut files: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        files.sort();
        assert_eq!(files, ["in.csv", "report.csv"], "{platform}: {err}");
    }
    let writes = sb.requests().iter().filter(|r| r.method == "PUT").count();
    assert_eq!(writes, 0);

    // Accepted credentials that may not read users: exit 2 naming the missing permission.
    for platform in ["identity", "control-room"] {
        let server = Rogue::start(|_| {
            Answer::json(
                403,
                &serde_json::json!({"message": "Forbidden: PM.User scope missing"}),
            )
        });
        let dir = tempdir();
        let sheet = match platform {
            "identity" => write(
                dir.path(),
                "in.csv",
                "userId,name\n00000000-0000-4000-8000-000000000001,Ann\n",
            ),
            _ => write(dir.path(), "in.csv", "id,firstName\n1,Ann\n"),
        };
        let report = dir.path().join("report.csv");
        let url = match platform {
            "identity" => format!("{}/identity_", server.url()),
            _ => server.url(),
        };
        let out = apply(
            platform,
            &url,
            &sheet,
            &report,
            &[("BULKEDIT_TOKEN", "t0ken"), partition],
        );
        let err = stderr_of(&out);
        assert_eq!(out.status.code(), Some(2), "{platform}: {err}");
        assert!(err.contains("lack the permission"), "{platform}: {err}");
        assert!(!report.exists());
        assert!(
            server.requests().iter().all(|r| r.method != "PUT"),
            "{platform}: nothing written"
        );
    }
}

#[test]
fn a_token_endpoint_is_a_web_page_by_its_shape_not_by_its_words() {
    let dir = tempdir();
    let sheet = write(
        dir.path(),
        "in.csv",
        "userId,name\n00000000-0000-4000-8000-000000000001,Ann\n",
    );
    let credentials = [
        ("BULKEDIT_CLIENT_ID", "app"),
        ("BULKEDIT_CLIENT_SECRET", "client-secret-value"),
    ];
    // A sign-in page where the token endpoint should be: a wrong --url.
    let server = Rogue::start(|_| Answer::html(200, "<!DOCTYPE html><html>Sign in</html>"));
    let report = dir.path().join("r1.csv");
    let url = format!("{}/identity_", server.url());
    let out = apply("identity", &url, &sheet, &report, &credentials);
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("web page") && err.contains("is --url everything before /api/User?"),
        "{err}"
    );
    // The API's own refusal that happens to mention a web page: the credentials, not the URL.
    let server = Rogue::start(|_| {
        Answer::json(
            400,
            &serde_json::json!({"error": "invalid_client", "error_description": "register the app on the web page first"}),
        )
    });
    let report = dir.path().join("r2.csv");
    let url = format!("{}/identity_", server.url());
    let out = apply("identity", &url, &sheet, &report, &credentials);
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("register the app on the web page first"),
        "{err}"
    );
    assert!(!err.contains("is --url"), "{err}");
}

#[test]
fn a_case_twin_on_a_later_search_page_than_the_match_fails_the_row_naming_both() {
    let dir = tempdir();
    // Identity: the exact e-mail first, 50 near matches, then its twin on the second page.
    let mut users = vec![rogue::identity_user(1)];
    for i in 0..50 {
        let mut near = rogue::identity_user(100 + i);
        near["email"] = serde_json::json!(format!("a{i}user00001@example.com"));
        users.push(near);
    }
    let mut twin = rogue::identity_user(99);
    twin["email"] = serde_json::json!("USER00001@example.com");
    users.push(twin);
    let (server, _) = rogue::identity_live(users, None, |_, _| rogue::OnWrite::Apply);
    let sheet = write(
        dir.path(),
        "i.csv",
        "email,name\nuser00001@example.com,Ann\n",
    );
    let report = dir.path().join("identity.csv");
    let url = format!("{}/identity_", server.url());
    let env = [
        ("BULKEDIT_TOKEN", "t0ken"),
        ("BULKEDIT_PARTITION", "00000000-0000-4000-8000-000000000000"),
    ];
    let out = apply("identity", &url, &sheet, &report, &env);
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    let rows = read_report(&report);
    assert_eq!(rows[0]["status"], "failed", "{rows:?}");
    assert!(
        rows[0]["error"].contains("'user00001@example.com'")
            && rows[0]["error"].contains("'USER00001@example.com'"),
        "{rows:?}"
    );
    assert!(server.requests().iter().all(|r| r.method != "PUT"));

    // Control Room: the same with usernames, 100 to a page.
    let mut users = vec![rogue::control_room_user(1, "user00001")];
    users.extend((0..120).map(|i| rogue::control_room_user(10 + i, &format!("user00001.{i}"))));
    users.push(rogue::control_room_user(7, "USER00001"));
    let (server, _) = rogue::control_room_live(users);
    let sheet = write(dir.path(), "cr.csv", "username,firstName\nuser00001,Ann\n");
    let report = dir.path().join("cr-report.csv");
    let out = apply(
        "control-room",
        &server.url(),
        &sheet,
        &report,
        &[("BULKEDIT_TOKEN", "t0ken")],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    let rows = read_report(&report);
    assert_eq!(rows[0]["status"], "failed", "{rows:?}");
    assert!(
        rows[0]["error"].contains("'user00001'") && rows[0]["error"].contains("'USER00001'"),
        "{rows:?}"
    );
    assert!(server.requests().iter().all(|r| r.method != "PUT"));
}

#[test]
fn a_control_room_username_look_up_pages_through_near_matches_to_the_exact_one() {
    // 250 near matches come first: the exact username is on the third page of 100.
    let mut users: Vec<serde_json::Value> = (0..250)
        .map(|i| rogue::control_room_user(10 + i, &format!("user00001{i}")))
        .collect();
    users.push(rogue::control_room_user(5, "user00001"));
    let (server, users) = rogue::control_room_live(users);
    let dir = tempdir();
    let sheet = write(dir.path(), "cr.csv", "username,firstName\nUser00001,Ann\n");
    let report = dir.path().join("report.csv");
    let out = apply(
        "control-room",
        &server.url(),
        &sheet,
        &report,
        &[("BULKEDIT_TOKEN", "t0ken")],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let rows = read_report(&report);
    assert_eq!(rows[0]["status"], "updated", "{rows:?}");
    // The three pages of the look-up, then the write.
    assert_eq!(rows[0]["attempts"], "4", "{rows:?}");
    let puts: Vec<String> = server
        .requests()
        .iter()
        .filter(|r| r.method == "PUT")
        .map(|r| r.target.clone())
        .collect();
    assert_eq!(puts, ["/v1/usermanagement/users/5"]);
    let users = users.lock().unwrap();
    assert_eq!(users.last().unwrap()["firstName"], "Ann");
    assert!(users[..250].iter().all(|u| u["firstName"] == "F"));
}

/// A hub whose user 1 is removed while the list is read, two users a page: the first page
/// counts 6 users, the next ones 5, and user 3 moves onto the first page, which was already
/// read. `search` answers a look-up by e-mail from the users as they are now.
fn hub_losing_a_user_while_listed() -> Rogue {
    let user = |i: usize| {
        serde_json::json!({"user_email": format!("user{i:05}@example.com"), "user_first_name": "F",
            "user_is_active": 1, "user_invite_status": 3,
            "user_roles": [{"role_id": 2, "category_id": 0}]})
    };
    Rogue::start(move |req| {
        let path = req.target.split('?').next().unwrap_or("");
        let query = |name: &str| {
            req.target
                .split(['?', '&'])
                .find_map(|p| p.strip_prefix(&format!("{name}=")))
                .unwrap_or("")
                .to_string()
        };
        if path.ends_with("/roles") {
            return Answer::json(200, &serde_json::json!({"statusCode": 200, "data": []}));
        }
        if path.ends_with("/edituser") || path.ends_with("/adduser") {
            return rogue::hub_updated();
        }
        let (users, total): (Vec<usize>, usize) =
            match (query("s").as_str(), query("page").as_str()) {
                ("", "1") => (vec![1, 2], 6),
                ("", "2") => (vec![4, 5], 5),
                ("", _) => (vec![6], 5),
                (s, _) => {
                    let wanted = s.replace("%40", "@");
                    (
                        (2..=6)
                            .filter(|i| format!("user{i:05}@example.com") == wanted)
                            .collect(),
                        1,
                    )
                }
            };
        let users: Vec<serde_json::Value> = users.into_iter().map(user).collect();
        Answer::json(
            200,
            &serde_json::json!({"statusCode": 200, "data": {"page": 1, "pageSize": 2,
                "totalItems": total, "totalPages": total.div_ceil(2), "users": users}}),
        )
    })
}

/// A user skipped by a list that changed while it was read is not taken for missing (four
/// rows, so that its three pages are read rather than a look-up per row): it is
/// not created again (demoted to the new user's role) under --create, not reported
/// not-found, and --deactivate-missing refuses to judge who is missing from such a list.
#[test]
fn a_user_list_that_changes_while_it_is_read_is_not_trusted_for_who_is_missing() {
    let dir = tempdir();
    let sheet = write(
        dir.path(),
        "users.csv",
        "user_email,user_first_name\n\
         user00002@example.com,Two\n\
         user00003@example.com,Three\n\
         user00004@example.com,Four\n\
         user00005@example.com,Five\n",
    );
    let server = hub_losing_a_user_while_listed();
    let report = dir.path().join("report.csv");
    let url = format!("{}/org/tenant/automationhub_", server.url());
    let out = bulkedit()
        .args(["apply"])
        .arg(&sheet)
        .args([
            "--platform",
            "hub",
            "--url",
            &url,
            "--rate",
            "unlimited",
            "--create",
            "--report",
        ])
        .arg(&report)
        .env("BULKEDIT_TOKEN", HUB_TOKEN)
        .output()
        .unwrap();
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains(
            "the user list changed while it was read (its page 2 counted 5 users where \
             the first counted 6 users): each row's user is looked up on its own instead"
        ),
        "{err}"
    );
    let rows = read_report(&report);
    assert_eq!(
        statuses(&rows),
        pairs(&[
            ("2", "updated"),
            ("3", "updated"),
            ("4", "updated"),
            ("5", "updated")
        ])
    );
    assert!(
        server
            .requests()
            .iter()
            .all(|r| !r.target.contains("adduser")),
        "nobody was created"
    );

    let roster = dir.path().join("roster-report.csv");
    let server = hub_losing_a_user_while_listed();
    let url = format!("{}/org/tenant/automationhub_", server.url());
    let out = bulkedit()
        .args(["apply"])
        .arg(&sheet)
        .args(["--platform", "hub", "--url", &url, "--rate", "unlimited"])
        .args(["--deactivate-missing", "--report"])
        .arg(&roster)
        .env("BULKEDIT_TOKEN", HUB_TOKEN)
        .output()
        .unwrap();
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("the user list changed while it was read")
            && err.contains("nothing was sent, since --deactivate-missing needs every user"),
        "{err}"
    );
    assert!(server.requests().iter().all(|r| r.method == "GET"));
}

/// An Identity user whose groups the server gives as anything but a list of ids (none, null,
/// a name): a row moving groups cannot tell which moves change something, so it fails
/// saying so and sends nothing, rather than report `unchanged` with the user still in the
/// group.
#[test]
fn a_group_move_for_an_identity_user_whose_groups_are_not_a_list_of_ids_is_not_dropped() {
    let admins = "10000000-0000-4000-8000-000000000002";
    for held in [
        None,
        Some(serde_json::Value::Null),
        Some(serde_json::json!("Administrators")),
    ] {
        let mut user = rogue::identity_user(1);
        match &held {
            None => {
                user.as_object_mut().unwrap().remove("groupIDs");
            }
            Some(v) => user["groupIDs"] = v.clone(),
        }
        let (server, _) = rogue::identity_live(vec![user], None, |_, _| rogue::OnWrite::Apply);
        let dir = tempdir();
        let sheet = write(
            dir.path(),
            "i.csv",
            format!("userId,groupIDsToRemove\n00000000-0000-4000-8000-000000000001,{admins}\n"),
        );
        let report = dir.path().join("report.csv");
        let url = format!("{}/identity_", server.url());
        let env = [
            ("BULKEDIT_TOKEN", "t0ken"),
            ("BULKEDIT_PARTITION", "00000000-0000-4000-8000-000000000000"),
        ];
        let out = apply("identity", &url, &sheet, &report, &env);
        assert_eq!(out.status.code(), Some(1), "{held:?}: {}", stderr_of(&out));
        let rows = read_report(&report);
        assert_eq!(rows[0]["status"], "failed", "{held:?}: {rows:?}");
        assert!(
            rows[0]["error"].contains("does not list the user's groups as ids")
                && rows[0]["error"].contains("nothing was sent"),
            "{held:?}: {rows:?}"
        );
        assert!(server.requests().iter().all(|r| r.method != "PUT"));
    }
}
