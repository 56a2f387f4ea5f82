//! Reports that are never lost: the input is never written over, a report recording writes is
//! kept aside rather than replaced, two runs never share a report, `--resume` resumes only its
//! own run, and a disk that fills up mid-run stops sending with every known outcome kept.

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use crate::common::*;
use bulkedit::sandbox::{Sandbox, SandboxConfig};

const CR_ENV: [(&str, &str); 2] = [
    ("BULKEDIT_USERNAME", "sandbox"),
    ("BULKEDIT_PASSWORD", "sandbox-password"),
];

fn cr_sheet(dir: &Path, name: &str, n: u32, tag: &str) -> std::path::PathBuf {
    let mut text = String::from("id,firstName,description\n");
    for i in 1..=n {
        text.push_str(&format!("{i},{tag}{i},{}\n", "d".repeat(200)));
    }
    write(dir, name, text)
}

fn apply(sb: &Sandbox, file: &Path, report: &Path, extra: &[&str]) -> Output {
    let url = sb.url_for("control-room");
    let mut cmd = bulkedit();
    cmd.arg("apply")
        .arg(file)
        .args(["--platform", "control-room", "--url", url.as_str()])
        .arg("--report")
        .arg(report)
        .args(extra);
    for (k, v) in CR_ENV {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

#[test]
fn a_report_that_would_overwrite_the_input_is_refused_before_anything_happens() {
    let sb = Sandbox::start(SandboxConfig::default()).unwrap();
    let dir = tempdir();
    let input = cr_sheet(dir.path(), "users.csv", 3, "New");
    let before = std::fs::read(&input).unwrap();
    let out = apply(&sb, &input, &input, &["--rate", "unlimited"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("which is the input"),
        "{}",
        stderr_of(&out)
    );
    // A failures file fed back in, with --report naming the report it came from.
    let failures = cr_sheet(dir.path(), "r-failures.csv", 3, "New");
    let out = apply(&sb, &failures, &dir.path().join("r.csv"), &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
    assert_eq!(std::fs::read(&input).unwrap(), before);
    assert!(std::fs::read(&failures).is_ok());
    assert!(
        !sb.requests().iter().any(|r| r.method == "PUT"),
        "nothing was sent"
    );
}

#[test]
fn a_report_recording_writes_is_kept_aside_and_a_dry_run_report_is_replaced() {
    let sb = Sandbox::start(SandboxConfig::default()).unwrap();
    let dir = tempdir();
    let report = dir.path().join("report.csv");
    let dry = cr_sheet(dir.path(), "users.csv", 3, "Dry");
    let out = apply(&sb, &dry, &report, &["--dry-run", "--rate", "unlimited"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let out = apply(&sb, &dry, &report, &["--rate", "unlimited"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let listing = || {
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            // Each run's undo file goes with its report (tests/it/undo.rs).
            .filter(|n| n.starts_with("report") && !n.contains("-undo."))
            .collect();
        names.sort();
        names
    };
    assert_eq!(
        listing(),
        ["report.csv"],
        "the dry run's report recorded no write"
    );
    let second = cr_sheet(dir.path(), "users.csv", 3, "Again");
    let out = apply(&sb, &second, &report, &["--rate", "unlimited"]);
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let names = listing();
    assert_eq!(names.len(), 2, "{names:?}");
    let kept_name = names.iter().find(|n| *n != "report.csv").unwrap();
    assert!(
        kept_name.starts_with("report-") && kept_name.ends_with("Z.csv"),
        "{kept_name}"
    );
    let kept = dir.path().join(kept_name);
    assert!(
        err.contains(kept_name.as_str()),
        "the run says where it kept it: {err}"
    );
    let kept_rows = read_report(&kept);
    assert!(
        kept_rows
            .iter()
            .all(|r| r["status"] == "updated" && r["firstName"].starts_with("Dry")),
        "{kept_rows:?}"
    );
    assert!(read_report(&report)
        .iter()
        .all(|r| r["firstName"].starts_with("Again")));
}

#[test]
fn a_second_run_on_the_same_report_is_refused_at_once() {
    let sb = Sandbox::start(SandboxConfig::default()).unwrap();
    let dir = tempdir();
    let report = dir.path().join("report.csv");
    let input = cr_sheet(dir.path(), "users.csv", 20, "Slow");
    let url = sb.url_for("control-room");
    let mut slow = std::process::Command::new(assert_cmd::cargo::cargo_bin("bulkedit"));
    slow.arg("apply")
        .arg(&input)
        .args([
            "--platform",
            "control-room",
            "--url",
            url.as_str(),
            "--rate",
            "10/s",
        ])
        .arg("--report")
        .arg(&report)
        .stderr(std::process::Stdio::piped());
    for (k, v) in CR_ENV {
        slow.env(k, v);
    }
    let first = slow.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !sb.requests().iter().any(|r| r.method == "PUT") {
        assert!(
            Instant::now() < deadline,
            "the first run never started sending"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let second = apply(&sb, &input, &report, &["--rate", "unlimited"]);
    let err = stderr_of(&second);
    assert_eq!(second.status.code(), Some(2), "{err}");
    assert!(err.contains("another bulkedit is writing"), "{err}");
    let first = first.wait_with_output().unwrap();
    assert_eq!(first.status.code(), Some(0), "{}", stderr_of(&first));
    let rows = read_report(&report);
    assert_eq!(rows.len(), 20);
    assert!(rows.iter().all(|r| r["status"] == "updated"), "{rows:?}");
    let puts = sb.requests().iter().filter(|r| r.method == "PUT").count();
    assert_eq!(puts, 20, "the refused run sent nothing");
}

#[test]
fn resume_refuses_a_report_of_another_input_or_target() {
    let sb = Sandbox::start(SandboxConfig::default()).unwrap();
    let other = Sandbox::start(SandboxConfig::default()).unwrap();
    let dir = tempdir();
    let report = dir.path().join("report.csv");
    let first = cr_sheet(dir.path(), "users.csv", 3, "One");
    let out = apply(&sb, &first, &report, &["--rate", "unlimited"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let other_file = cr_sheet(dir.path(), "others.csv", 3, "Two");
    let out = apply(&sb, &other_file, &report, &["--resume"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("another input file"),
        "{}",
        stderr_of(&out)
    );
    let out = apply(&other, &first, &report, &["--resume"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("another target"),
        "{}",
        stderr_of(&out)
    );
    assert!(!other.requests().iter().any(|r| r.method == "PUT"));
    let out = apply(&sb, &first, &report, &["--resume"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
}

/// A small tmpfs, where this machine lets a test mount one (root on Linux); `None` otherwise.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(bytes: usize) -> Option<SmallDisk> {
        let dir = tempdir();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(dir.path())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(SmallDisk { dir })
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.dir.path())
            .status();
    }
}

#[test]
fn a_full_disk_mid_run_stops_sending_keeps_every_whole_line_and_resumes() {
    let Some(disk) = SmallDisk::mount(256 * 1024) else {
        eprintln!("skipped: this machine does not let a test mount a small tmpfs");
        return;
    };
    let sb = Sandbox::start(SandboxConfig {
        users: 2000,
        ..SandboxConfig::default()
    })
    .unwrap();
    let work = tempdir();
    let input = cr_sheet(work.path(), "users.csv", 2000, "Full");
    let report = disk.dir.path().join("report.csv");
    let out = apply(
        &sb,
        &input,
        &report,
        &["--rate", "unlimited", "--concurrency", "8"],
    );
    let err = stderr_of(&out);
    assert_eq!(
        out.status.code(),
        Some(3),
        "something was sent: not exit 2; {err}"
    );
    assert!(err.contains("--resume"), "{err}");
    let text = std::fs::read_to_string(&report).unwrap();
    assert!(text.ends_with('\n'), "no torn last line");
    let journaled = read_report(&report);
    assert!(
        !journaled.is_empty() && journaled.len() < 2000,
        "{}",
        journaled.len()
    );
    assert!(
        journaled.iter().all(|r| r["status"] == "updated"),
        "whole lines only"
    );

    // Room again: the resumed run finishes every row, none twice.
    std::process::Command::new("mount")
        .args(["-o", "remount,size=16m"])
        .arg(disk.dir.path())
        .status()
        .unwrap();
    let out = apply(&sb, &input, &report, &["--rate", "unlimited", "--resume"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let rows = read_report(&report);
    assert_eq!(rows.len(), 2000);
    assert!(rows
        .iter()
        .all(|r| r["status"] == "updated" || r["status"] == "unchanged"));
    let leftovers: Vec<String> = std::fs::read_dir(disk.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn template_never_overwrites_a_file_without_force() {
    let dir = tempdir();
    let sheet = write(
        dir.path(),
        "users.csv",
        "user_email\nfilled-in@example.com\n",
    );
    for extra in [&[][..], &["--xlsx"]] {
        let out = bulkedit()
            .args(["template", "--platform", "hub", "-o"])
            .arg(&sheet)
            .args(extra)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
        assert!(stderr_of(&out).contains("--force"), "{}", stderr_of(&out));
        assert_eq!(
            std::fs::read_to_string(&sheet).unwrap(),
            "user_email\nfilled-in@example.com\n"
        );
    }
    let out = bulkedit()
        .args(["template", "--platform", "hub", "--force", "-o"])
        .arg(&sheet)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert!(std::fs::read_to_string(&sheet)
        .unwrap()
        .starts_with("user_email,"));
}

#[test]
fn validate_keeps_a_report_recording_writes_and_never_writes_over_its_input() {
    let dir = tempdir();
    let report = write(
        dir.path(),
        "report.csv",
        "row,status,error,http_status,attempts,user_email\n2,updated,,201,2,user00001@example.com\n",
    );
    let input = write(
        dir.path(),
        "users.csv",
        "user_email\nuser00002@example.com\n",
    );
    let out = bulkedit()
        .arg("validate")
        .arg(&input)
        .arg("--report")
        .arg(&report)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let kept: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("report-") && n.ends_with("Z.csv"))
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert!(std::fs::read_to_string(dir.path().join(&kept[0]))
        .unwrap()
        .contains("2,updated"));
    let out = bulkedit()
        .arg("validate")
        .arg(&input)
        .arg("--report")
        .arg(&input)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
    assert_eq!(
        std::fs::read_to_string(&input).unwrap(),
        "user_email\nuser00002@example.com\n"
    );
}

/// The temporary files in `dir`: what a run writes before renaming into place.
fn temp_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    names.sort();
    names
}

#[test]
fn a_run_killed_while_writing_leaves_no_temporary_file_after_the_next_run() {
    let _cores = heavy();
    let dir = tempdir();
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let report = out.join("r.csv");
    // Long enough that the report is still being written when it is seen.
    let mut text = String::from("user_email,user_department\n");
    for i in 0..1_000_000 {
        text.push_str(&format!("user{i:07}@example.com,Dept{}\n", i % 50));
    }
    let big = write(dir.path(), "big.csv", text);
    // Another report's temporary file, which no run on r.csv may touch.
    write(&out, ".other.csv.12345.tmp", "someone else's");
    let mut caught = false;
    for _ in 0..5 {
        let mut run = std::process::Command::new(assert_cmd::cargo::cargo_bin("bulkedit"))
            .arg("validate")
            .arg(&big)
            .arg("--report")
            .arg(&report)
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let tmp = format!(".r.csv.{}.tmp", run.id());
        loop {
            if temp_files(&out).contains(&tmp) {
                run.kill().unwrap(); // SIGKILL: nothing of the run's own gets to clean up
                run.wait().unwrap();
                caught = true;
                break;
            }
            if run.try_wait().unwrap().is_some() {
                break; // finished before it was seen: try again
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        if caught {
            break;
        }
    }
    assert!(caught, "no run was seen writing its report");
    let left = temp_files(&out);
    assert_eq!(
        left.len(),
        2,
        "the killed run left its temporary report: {left:?}"
    );
    let small = write(
        dir.path(),
        "small.csv",
        "user_email,user_department\nuser00001@example.com,Sales\nbad,x\n",
    );
    let again = bulkedit()
        .arg("validate")
        .arg(&small)
        .arg("--report")
        .arg(&report)
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(1), "{}", stderr_of(&again));
    assert_eq!(temp_files(&out), [".other.csv.12345.tmp"]);
    assert_eq!(read_report(&report).len(), 2);
    // The same for what an apply leaves beside a workbook report: its journal's and its
    // failures file's temporary files.
    let sb = Sandbox::start(SandboxConfig::default()).unwrap();
    let xlsx = out.join("w.xlsx");
    for name in [
        ".w.xlsx.4000001.tmp",
        ".w.xlsx.partial.csv.4000002.tmp",
        ".w-failures.xlsx.4000003.tmp",
    ] {
        write(&out, name, "row,status\n2,updated\n");
    }
    let input = cr_sheet(dir.path(), "cr.csv", 2, "K");
    let applied = apply(&sb, &input, &xlsx, &[]);
    assert_eq!(applied.status.code(), Some(0), "{}", stderr_of(&applied));
    assert_eq!(temp_files(&out), [".other.csv.12345.tmp"]);
}

#[test]
fn a_workbook_report_that_cannot_be_written_stops_the_run_before_anything_is_sent() {
    let sb = Sandbox::start(SandboxConfig::default()).unwrap();
    let dir = tempdir();
    let input = cr_sheet(dir.path(), "users.csv", 3, "Never");
    let report = dir.path().join("r.xlsx");
    // Where the failures file would go, something that cannot be written over.
    std::fs::create_dir_all(dir.path().join("r-failures.xlsx").join("kept")).unwrap();
    let out = apply(&sb, &input, &report, &["--rate", "unlimited"]);
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("r-failures.xlsx") && err.contains("nothing was sent"),
        "{err}"
    );
    assert!(
        !sb.requests().iter().any(|r| r.method == "PUT"),
        "no row was sent"
    );
    assert!(!report.exists());
    let mut left: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(
        left,
        ["r-failures.xlsx", "users.csv"],
        "the trial left nothing"
    );
    // Once the way is clear, the same run goes through.
    std::fs::remove_dir_all(dir.path().join("r-failures.xlsx")).unwrap();
    let out = apply(&sb, &input, &report, &["--rate", "unlimited"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert!(report.exists());
    assert_eq!(
        sb.requests().iter().filter(|r| r.method == "PUT").count(),
        3
    );
}
