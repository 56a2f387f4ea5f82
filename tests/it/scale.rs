//! Faults at scale: 20,000 rows through the sandbox with 20% 503s, 5% 429s with Retry-After,
//! 2% dropped connections and 1% answers slower than the client's timeout. Every row ends
//! `updated`, the server holds exactly the expected state, and the report has each row exactly
//! once; then again with the process killed at random points and resumed.

use std::path::Path;
use std::time::Duration;

use crate::common::*;
use bulkedit::sandbox::{Faults, Sandbox, SandboxConfig};

const ROWS: usize = 20_000;

fn faulty() -> Sandbox {
    Sandbox::start(SandboxConfig {
        users: ROWS,
        faults: Faults {
            seed: 2026,
            fail_rate: 0.20,
            throttle_rate: 0.05,
            // Each Retry-After pauses the whole pool; a second each time would make this a
            // 20-minute test. The pause itself is measured in tests/it/apply.rs.
            retry_after: Duration::ZERO,
            reset_rate: 0.02,
            slow_rate: 0.01,
            slow: Duration::from_millis(1500),
            ..Faults::default()
        },
        ..SandboxConfig::default()
    })
    .unwrap()
}

fn input(dir: &Path) -> std::path::PathBuf {
    let mut text = String::from("id,description\n");
    for i in 1..=ROWS {
        text.push_str(&format!("{i},Scale {i}\n"));
    }
    write(dir, "scale.csv", text)
}

fn args<'a>(sb: &'a Sandbox, report: &'a Path) -> Vec<String> {
    vec![
        "--url".into(),
        sb.url_for("control-room").to_string(),
        "--rate".into(),
        "unlimited".into(),
        "--concurrency".into(),
        "128".into(),
        "--retries".into(),
        "20".into(),
        "--timeout".into(),
        "0.7".into(),
        "--max-errors".into(),
        "0".into(),
        "--quiet".into(),
        "--report".into(),
        report.to_str().unwrap().into(),
    ]
}

fn assert_everything_applied(sb: &Sandbox, report: &Path) {
    let rows = read_report(report);
    assert_eq!(rows.len(), ROWS);
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(
            r["row"],
            (i + 2).to_string(),
            "each row exactly once, in order"
        );
        assert!(
            r["status"] == "updated" || r["status"] == "unchanged",
            "{r:?}"
        );
    }
    let state = sb.state();
    for (i, user) in state["control_room"].as_array().unwrap().iter().enumerate() {
        assert_eq!(user["description"], format!("Scale {}", i + 1));
    }
    let statuses = sb.requests();
    for code in [503, 429] {
        assert!(statuses.iter().any(|r| r.status == code), "{code} happened");
    }
}

fn run(sb: &Sandbox, file: &Path, report: &Path, extra: &[&str]) -> std::process::Output {
    bulkedit()
        .arg("apply")
        .arg(file)
        .args(args(sb, report))
        .args(extra)
        .env("BULKEDIT_USERNAME", "sandbox")
        .env("BULKEDIT_PASSWORD", "sandbox-password")
        .output()
        .unwrap()
}

#[test]
fn twenty_thousand_rows_through_every_fault_all_end_updated() {
    let _heavy = heavy();
    let sb = faulty();
    let dir = tempdir();
    let file = input(dir.path());
    let report = dir.path().join("report.csv");
    let out = run(&sb, &file, &report, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert_everything_applied(&sb, &report);
    assert!(read_report(&report)
        .iter()
        .all(|r| r["status"] == "updated"));
}

#[test]
fn twenty_thousand_rows_killed_at_random_points_and_resumed() {
    let _heavy = heavy();
    let sb = faulty();
    let dir = tempdir();
    let file = input(dir.path());
    let report = dir.path().join("report.csv");
    let mut rng = fastrand::Rng::with_seed(7);
    for kill in 0..3 {
        let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("bulkedit"));
        cmd.arg("apply")
            .arg(&file)
            .args(args(&sb, &report))
            .env("BULKEDIT_USERNAME", "sandbox")
            .env("BULKEDIT_PASSWORD", "sandbox-password");
        if kill > 0 {
            cmd.arg("--resume");
        }
        let mut child = cmd
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(rng.u64(1500..4000)));
        child.kill().unwrap();
        child.wait().unwrap();
    }
    let out = run(&sb, &file, &report, &["--resume"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert_everything_applied(&sb, &report);
}

#[cfg(unix)]
fn hub_rows(dir: &Path, rows: usize) -> std::path::PathBuf {
    use std::io::Write;
    let path = dir.join(format!("hub-{rows}.csv"));
    let mut w = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    writeln!(w, "user_email,user_first_name,user_last_name,user_department,user_is_active,user_invite_status,user_roles").unwrap();
    for i in 1..=rows {
        writeln!(
            w,
            "user{i:07}@example.com,First{i},Last{i},\"Accounts, Payable\",1,3,8; 6:2"
        )
        .unwrap();
    }
    path
}

#[cfg(unix)]
fn peak_of(cmd: &mut std::process::Command) -> (i32, f64) {
    let child = cmd
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let used = peak::wait_with_peak(child);
    (used.code, used.peak_mb)
}

#[test]
#[cfg(unix)]
fn validate_memory_stays_flat_as_the_file_grows() {
    let _heavy = heavy();
    let dir = tempdir();
    let mut peaks = Vec::new();
    // The second file is past one run of key hashes (check::RUN), so a run goes to disk.
    for rows in [200_000, 1_200_000] {
        let file = hub_rows(dir.path(), rows);
        let (code, peak) = peak_of(
            std::process::Command::new(assert_cmd::cargo::cargo_bin("bulkedit"))
                .arg("validate")
                .arg(&file)
                .arg("--report")
                .arg(dir.path().join("report.csv")),
        );
        assert_eq!(code, 0);
        eprintln!("validate {rows} rows: peak {peak:.1} MB");
        assert!(peak < 64.0, "{rows} rows: peak {peak:.1} MB (at most 64)");
        peaks.push(peak);
        let report = std::fs::read(dir.path().join("report.csv")).unwrap();
        let lines = report.iter().filter(|&&b| b == b'\n').count();
        assert_eq!(lines, rows + 1, "a header and every row");
    }
    // 6x the rows. Holding rows would add hundreds of MB; the key hashes add at most 8 MB
    // (one run; past it they go to disk, unit-tested in check.rs), and rows in flight between
    // the stages vary by a few MB with how busy the machine is.
    assert!(
        peaks[1] < peaks[0] + 20.0,
        "memory grows with the file: {peaks:?} MB"
    );
}

#[test]
#[cfg(unix)]
fn apply_memory_is_bounded_by_the_user_cache() {
    let _heavy = heavy();
    // 40,000 users are read with the paged list and kept (as compact JSON) for their rows.
    let rows = 40_000;
    let sb = Sandbox::start(SandboxConfig {
        users: rows,
        ..SandboxConfig::default()
    })
    .unwrap();
    let dir = tempdir();
    let mut text = String::from("id,description\n");
    for i in 1..=rows {
        text.push_str(&format!("{i},Memory {i}\n"));
    }
    let file = write(dir.path(), "cr.csv", text);
    let report = dir.path().join("report.csv");
    let (code, peak) = peak_of(
        std::process::Command::new(assert_cmd::cargo::cargo_bin("bulkedit"))
            .arg("apply")
            .arg(&file)
            .args(["--url", sb.url_for("control-room").as_str()])
            .args(["--rate", "unlimited", "--concurrency", "16", "--report"])
            .arg(&report)
            .env("BULKEDIT_USERNAME", "sandbox")
            .env("BULKEDIT_PASSWORD", "sandbox-password"),
    );
    assert_eq!(code, 0);
    assert_eq!(read_report(&report).len(), rows);
    eprintln!("apply {rows} rows and users: peak {peak:.1} MB");
    // ~1 KB a cached user plus the workers' buffers; parsed maps cost five times as much.
    assert!(peak < 160.0, "peak {peak:.1} MB for {rows} users");
}
