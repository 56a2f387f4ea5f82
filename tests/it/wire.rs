//! Trust on the wire: against small misbehaving servers of our own on 127.0.0.1, what reaches
//! which address, how long a run waits, and what the report and the terminal say.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::rogue::{self, Answer, Rogue};
use crate::common::*;

const HUB_TOKEN: &str = "tenant-7/s3cret-hub-token";

/// A hub sheet renaming users 1..=n.
fn hub_sheet(dir: &Path, n: usize) -> PathBuf {
    let mut text = String::from("user_email,user_first_name\n");
    for i in 1..=n {
        text.push_str(&format!("user{i:05}@example.com,Renamed{i}\n"));
    }
    write(dir, "users.csv", text)
}

fn hub_url(server: &Rogue) -> String {
    format!("{}/org/tenant/automationhub_", server.url())
}

fn apply_hub(
    server_url: &str,
    sheet: &Path,
    report: &Path,
    extra: &[&str],
) -> std::process::Output {
    bulkedit()
        .arg("apply")
        .arg(sheet)
        .args([
            "--platform",
            "hub",
            "--url",
            server_url,
            "--rate",
            "unlimited",
            "--report",
        ])
        .arg(report)
        .args(extra)
        .env("BULKEDIT_TOKEN", HUB_TOKEN)
        .output()
        .unwrap()
}

#[test]
fn a_redirect_is_not_followed_and_no_credential_reaches_another_address() {
    let elsewhere = Rogue::start(|_| Answer::json(200, &serde_json::json!({})));
    let target = format!("{}/steal", elsewhere.url());
    let server = Rogue::start(move |_| Answer::html(302, "moved").with_header("location", &target));
    let dir = tempdir();
    let report = dir.path().join("report.csv");
    let out = apply_hub(&hub_url(&server), &hub_sheet(dir.path(), 3), &report, &[]);
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("302") && err.contains(&format!("{}/steal", elsewhere.url())),
        "{err}"
    );
    assert!(
        elsewhere.requests().is_empty(),
        "nothing went to the other address"
    );
    assert_eq!(
        server.requests().len(),
        1,
        "the first call, once: no retry of a redirect"
    );
    assert!(
        !report.exists(),
        "a run that could not start writes no report"
    );
    assert!(!err.contains("s3cret"), "{err}");
}

#[test]
fn an_endless_answer_is_refused_rather_than_read_into_memory() {
    let server = Rogue::start(|_| Answer::Endless);
    let dir = tempdir();
    let started = Instant::now();
    let out = apply_hub(
        &hub_url(&server),
        &hub_sheet(dir.path(), 2),
        &dir.path().join("r.csv"),
        &[],
    );
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("longer than 64 MB"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(60));
}

#[test]
fn a_retry_after_longer_than_max_pause_stops_the_run_instead_of_sleeping() {
    let server = rogue::hub(5, |n, _| {
        if n == 0 {
            Answer::json(429, &serde_json::json!({"message": "slow down"}))
                .with_header("retry-after", "86400")
        } else {
            rogue::hub_updated()
        }
    });
    let dir = tempdir();
    let report = dir.path().join("report.csv");
    let started = Instant::now();
    let out = apply_hub(
        &hub_url(&server),
        &hub_sheet(dir.path(), 5),
        &report,
        &["--concurrency", "1"],
    );
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "it did not wait a day"
    );
    let rows = read_report(&report);
    assert_eq!(rows[0]["status"], "failed");
    assert!(rows[0]["error"].contains("--max-pause"), "{:?}", rows[0]);
    assert!(
        rows[1..].iter().all(|r| r["status"] == "skipped"),
        "{rows:?}"
    );
    let edits = server
        .requests()
        .iter()
        .filter(|r| r.target.ends_with("/edituser"))
        .count();
    assert_eq!(
        edits, 1,
        "nothing was sent after the server asked for a day's pause"
    );
}

#[test]
fn an_overflowing_retry_after_is_no_crash() {
    let server = rogue::hub(2, |_, _| {
        Answer::json(503, &serde_json::json!({"message": "busy"}))
            .with_header("retry-after", "99999999999999999999999999")
    });
    let dir = tempdir();
    let report = dir.path().join("report.csv");
    let out = apply_hub(
        &hub_url(&server),
        &hub_sheet(dir.path(), 2),
        &report,
        &["--retries", "1"],
    );
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(read_report(&report).iter().all(|r| r["status"] == "failed"));
}

#[test]
fn no_request_starts_inside_a_retry_after_window() {
    let _timed = timed();
    let server = rogue::hub(40, |n, _| {
        if n == 5 {
            Answer::json(429, &serde_json::json!({"message": "slow down"}))
                .with_header("retry-after", "2")
        } else {
            rogue::hub_updated()
        }
    });
    let dir = tempdir();
    let report = dir.path().join("report.csv");
    let out = apply_hub(
        &hub_url(&server),
        &hub_sheet(dir.path(), 40),
        &report,
        &["--concurrency", "8"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let edits: Vec<Instant> = server
        .requests()
        .iter()
        .filter(|r| r.target.ends_with("/edituser"))
        .map(|r| r.at)
        .collect();
    assert_eq!(edits.len(), 41, "40 rows and the one retry");
    let paused_at = edits[5];
    // Requests already on the wire when the 429 went out may still land; nothing may start
    // after the client has read it and before the two seconds are over.
    let inside: Vec<Duration> = edits
        .iter()
        .filter_map(|t| t.checked_duration_since(paused_at))
        .filter(|d| *d > Duration::from_millis(150) && *d < Duration::from_millis(1950))
        .collect();
    assert!(
        inside.is_empty(),
        "requests started inside the window: {inside:?}"
    );
    assert!(
        edits
            .iter()
            .any(|t| t.checked_duration_since(paused_at) >= Some(Duration::from_secs(2))),
        "the rest went after it"
    );
    let rows = read_report(&report);
    assert!(rows.iter().all(|r| r["status"] == "updated"), "{rows:?}");
}

#[test]
#[cfg(unix)]
fn ctrl_c_ends_a_long_pause_at_once() {
    let _timed = timed();
    let server = rogue::hub(3, |n, _| {
        if n == 0 {
            Answer::json(429, &serde_json::json!({"message": "slow down"}))
                .with_header("retry-after", "120")
        } else {
            rogue::hub_updated()
        }
    });
    let dir = tempdir();
    let report = dir.path().join("report.csv");
    let child = std::process::Command::new(assert_cmd::cargo::cargo_bin("bulkedit"))
        .arg("apply")
        .arg(hub_sheet(dir.path(), 3))
        .args([
            "--platform",
            "hub",
            "--url",
            &hub_url(&server),
            "--rate",
            "unlimited",
        ])
        .args(["--concurrency", "1", "--report"])
        .arg(&report)
        .env("BULKEDIT_TOKEN", HUB_TOKEN)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !server
        .requests()
        .iter()
        .any(|r| r.target.ends_with("/edituser"))
    {
        assert!(Instant::now() < deadline, "the first write never came");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    let interrupted = Instant::now();
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(
        interrupted.elapsed() < Duration::from_secs(5),
        "the pause ended with Ctrl-C"
    );
    assert!(
        err.contains("asked to wait 2 min 0 s"),
        "the pause was announced: {err}"
    );
    let rows = read_report(&report);
    assert!(rows.iter().all(|r| r["status"] == "skipped"), "{rows:?}");
    let edits = server
        .requests()
        .iter()
        .filter(|r| r.target.ends_with("/edituser"))
        .count();
    assert_eq!(edits, 1, "nothing started after Ctrl-C");
}

#[test]
fn option_values_that_make_no_sense_are_usage_errors_not_panics() {
    let dir = tempdir();
    let sheet = hub_sheet(dir.path(), 1);
    for bad in [
        &["--concurrency", "100000000"][..],
        &["--concurrency", "0"],
        &["--rate", "1e-300/s"],
        &["--rate", "1e300/s"],
        &["--timeout", "1e20"],
        &["--timeout", "-1"],
        &["--max-pause", "NaN"],
        &["--retries", "4294967295"],
    ] {
        let out = bulkedit()
            .arg("apply")
            .arg(&sheet)
            .args(["--sandbox"])
            .args(bad)
            .output()
            .unwrap();
        let err = stderr_of(&out);
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {err}");
        assert!(!err.contains("panicked"), "{bad:?}: {err}");
    }
}

#[test]
fn verbose_logging_survives_a_closed_stderr() {
    let dir = tempdir();
    let sheet = hub_sheet(dir.path(), 5);
    let report = dir.path().join("report.csv");
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("bulkedit"))
        .arg("apply")
        .arg(&sheet)
        .args(["--sandbox", "-v", "--report"])
        .arg(&report)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    // Nobody reads stderr any more: every write to it fails with a broken pipe.
    drop(child.stderr.take());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    let rows = read_report(&report);
    assert_eq!(rows.len(), 5);
    assert!(rows.iter().all(|r| r["status"] == "updated"), "{rows:?}");
}

#[test]
fn a_server_that_refuses_large_pages_is_read_in_smaller_ones() {
    // 1,200 users, and pages of at most 500: a larger one is refused as a bad request.
    let users: Vec<serde_json::Value> = (1..=1200)
        .map(|i| {
            serde_json::json!({"user_email": format!("user{i:05}@example.com"),
                "user_first_name": format!("First{i:05}"), "user_is_active": 1,
                "user_invite_status": 3, "user_roles": [{"role_id": 8, "category_id": 0}]})
        })
        .collect();
    let server = Rogue::start(move |req| {
        let path = req.target.split('?').next().unwrap_or("");
        if path.ends_with("/roles") {
            return Answer::json(200, &serde_json::json!({"statusCode": 200, "data": []}));
        }
        if path.ends_with("/edituser") {
            return rogue::hub_updated();
        }
        let query = |name: &str| -> usize {
            req.target
                .split(['?', '&'])
                .find_map(|p| p.strip_prefix(&format!("{name}=")))
                .and_then(|v| v.parse().ok())
                .unwrap_or(1)
        };
        let (limit, page) = (query("limit"), query("page"));
        if limit > 500 {
            return Answer::json(
                400,
                &serde_json::json!({"message": "limit must be from 1 to 500", "statusCode": 400}),
            );
        }
        let on_page: Vec<_> = users.iter().skip((page - 1) * limit).take(limit).collect();
        Answer::json(
            200,
            &serde_json::json!({"message": "Success", "statusCode": 200, "data": {
                "page": page, "pageSize": limit, "totalItems": users.len(),
                "totalPages": users.len().div_ceil(limit), "users": on_page}}),
        )
    });
    let dir = tempdir();
    let report = dir.path().join("report.csv");
    let out = apply_hub(&hub_url(&server), &hub_sheet(dir.path(), 5), &report, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let rows = read_report(&report);
    assert!(rows.iter().all(|r| r["status"] == "updated"), "{rows:?}");
    let reads: Vec<String> = server
        .requests()
        .iter()
        .filter(|r| r.target.contains("/users?"))
        .map(|r| r.target.clone())
        .collect();
    assert_eq!(
        reads.len(),
        4,
        "one refused, then three pages of 500: {reads:?}"
    );
    assert!(reads[0].contains("limit=1000"), "{reads:?}");
    assert!(
        reads[1..].iter().all(|r| r.contains("limit=500")),
        "{reads:?}"
    );

    // Export reads the whole list the same way.
    let exported = dir.path().join("export.csv");
    let out = bulkedit()
        .args(["export", "--platform", "hub", "--url", &hub_url(&server)])
        .args(["--rate", "unlimited", "-o"])
        .arg(&exported)
        .env("BULKEDIT_TOKEN", HUB_TOKEN)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let lines = std::fs::read_to_string(&exported).unwrap().lines().count();
    assert_eq!(lines, 1201, "a header and every user");
}

#[test]
fn a_gateway_error_page_is_reported_by_its_title_not_its_markup() {
    // IIS's own page for a 500, as an application gateway in front of the API sends it.
    let server = rogue::hub(2, |_, _| {
        Answer::html(
            500,
            "<!DOCTYPE html PUBLIC \"-//W3C//DTD XHTML 1.0 Strict//EN\">\r\n<html><head>\
             <meta http-equiv=\"Content-Type\" content=\"text/html\"/>\r\n\
             <title>500 - Internal server error.</title>\r\n<style type=\"text/css\">\
             body{margin:0;font-size:.7em;}</style></head><body><div id=\"header\">\
             <h1>Server Error</h1></div></body></html>",
        )
    });
    let dir = tempdir();
    let report = dir.path().join("report.csv");
    let out = apply_hub(&hub_url(&server), &hub_sheet(dir.path(), 2), &report, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    let rows = read_report(&report);
    assert_eq!(rows.len(), 2);
    for row in rows {
        assert_eq!(row["status"], "failed", "{row:?}");
        assert!(
            row["error"].ends_with(
                "HTTP 500: 500 - Internal server error. (a web page, not the API's answer: \
                 a proxy or a gateway may have answered)"
            ),
            "{row:?}"
        );
        assert!(!row["error"].contains('<'), "{row:?}");
    }
}

#[test]
fn server_text_loses_its_control_characters_before_the_report() {
    let server = rogue::hub(2, |_, _| {
        Answer::json(
            400,
            &serde_json::json!({"message": "bad \u{1b}[2J\u{1b}[31mred\r\nline", "statusCode": 400}),
        )
    });
    let dir = tempdir();
    let report = dir.path().join("report.csv");
    let out = apply_hub(&hub_url(&server), &hub_sheet(dir.path(), 2), &report, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    for row in read_report(&report) {
        assert!(row["error"].contains("red"), "{row:?}");
        assert!(!row["error"].chars().any(char::is_control), "{row:?}");
    }
}

#[test]
fn a_secret_echoed_at_the_cut_of_a_long_answer_is_redacted_whole() {
    let server = rogue::hub(2, |_, req| {
        // The server echoes the token just where a 300-character cut used to fall.
        let token = req
            .header("authorization")
            .unwrap_or("")
            .replace("Bearer ", "");
        Answer::html(
            400,
            &format!("{}{token}{}", "a".repeat(290), "b".repeat(50)),
        )
    });
    let dir = tempdir();
    let report = dir.path().join("report.csv");
    let out = apply_hub(&hub_url(&server), &hub_sheet(dir.path(), 2), &report, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    for row in read_report(&report) {
        assert!(row["error"].contains("***"), "{row:?}");
        assert!(!row["error"].contains("s3cret"), "{row:?}");
    }
}
