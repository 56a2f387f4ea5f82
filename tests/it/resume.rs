//! `--resume` finishes the run it resumes: rows are known by their cells, not their position,
//! so a sheet edited between the runs (rows inserted, deleted, moved, changed) ends with every
//! current row applied exactly once, and the report holds exactly the current rows.

use std::collections::BTreeMap;
use std::path::Path;

use crate::common::*;
use bulkedit::sandbox::{Sandbox, SandboxConfig};

const CR_ENV: [(&str, &str); 2] = [
    ("BULKEDIT_USERNAME", "sandbox"),
    ("BULKEDIT_PASSWORD", "sandbox-password"),
];

fn sheet(dir: &Path, rows: &[(u32, String)]) -> std::path::PathBuf {
    let mut text = String::from("id,firstName\n");
    for (id, name) in rows {
        text.push_str(&format!("{id},{name}\n"));
    }
    write(dir, "users.csv", text)
}

fn run(sb: &Sandbox, file: &Path, report: &Path, extra: &[&str]) -> std::process::Output {
    let url = sb.url_for("control-room");
    let mut cmd = bulkedit();
    cmd.arg("apply")
        .arg(file)
        .args([
            "--platform",
            "control-room",
            "--url",
            url.as_str(),
            "--rate",
            "unlimited",
        ])
        .arg("--report")
        .arg(report)
        .args(extra);
    for (k, v) in CR_ENV {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// PUTs the sandbox saw, by Control Room user id.
fn writes_by_id(sb: &Sandbox) -> BTreeMap<u32, usize> {
    let mut by_id = BTreeMap::new();
    for r in sb.requests() {
        if r.method == "PUT" {
            if let Some(id) = r.path.rsplit('/').next().and_then(|s| s.parse().ok()) {
                *by_id.entry(id).or_default() += 1;
            }
        }
    }
    by_id
}

#[test]
fn resume_knows_finished_rows_by_their_cells_after_inserts_deletes_moves_and_edits() {
    let sb = Sandbox::start(SandboxConfig::default()).unwrap();
    let dir = tempdir();
    let report = dir.path().join("report.csv");
    let first: Vec<(u32, String)> = (1..=10).map(|i| (i, format!("Run1-{i}"))).collect();
    let out = run(&sb, &sheet(dir.path(), &first), &report, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));

    // New rows on top, the old ones in reverse order without user 3, user 5 renamed again.
    let mut second: Vec<(u32, String)> = (21..=23).map(|i| (i, format!("New-{i}"))).collect();
    for i in (1..=10).rev().filter(|i| *i != 3) {
        let name = if i == 5 {
            "Edited-5".to_string()
        } else {
            format!("Run1-{i}")
        };
        second.push((i, name));
    }
    let file = sheet(dir.path(), &second);
    let out = run(&sb, &file, &report, &["--resume"]);
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("resumed: 8 rows finished earlier and not sent again; 1 row changed since and sent again"),
        "{err}"
    );

    let rows = read_report(&report);
    let got: Vec<(String, String, String)> = rows
        .iter()
        .map(|r| (r["row"].clone(), r["id"].clone(), r["status"].clone()))
        .collect();
    let want: Vec<(String, String, String)> = second
        .iter()
        .enumerate()
        .map(|(i, (id, _))| ((i + 2).to_string(), id.to_string(), "updated".to_string()))
        .collect();
    assert_eq!(
        got, want,
        "exactly the current rows, in order, under their row numbers now"
    );

    let writes = writes_by_id(&sb);
    let mut expected: BTreeMap<u32, usize> = (1..=10).map(|i| (i, 1)).collect();
    expected.insert(5, 2);
    for i in 21..=23 {
        expected.insert(i, 1);
    }
    assert_eq!(
        writes, expected,
        "every row applied once; the edited one once more"
    );
    let state: serde_json::Value = crate::common::http_client()
        .build()
        .unwrap()
        .get(format!("{}/_sandbox/state", sb.base_url()))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let name_of = |id: u32| {
        state["control_room"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["id"] == id)
            .map(|u| u["firstName"].as_str().unwrap().to_string())
            .unwrap()
    };
    assert_eq!(name_of(5), "Edited-5");
    assert_eq!(name_of(22), "New-22");
}

#[test]
fn resume_after_random_edits_applies_every_current_row_exactly_once() {
    let mut rng = fastrand::Rng::with_seed(20261130);
    for case in 0..6 {
        let sb = Sandbox::start(SandboxConfig::default()).unwrap();
        let dir = tempdir();
        let report = dir.path().join("report.csv");
        let first: Vec<(u32, String)> = (1..=rng.u32(3..15))
            .map(|i| (i, format!("A{case}-{i}")))
            .collect();
        let out = run(&sb, &sheet(dir.path(), &first), &report, &[]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));

        let mut second = first.clone();
        for _ in 0..rng.usize(1..6) {
            match rng.u8(0..4) {
                0 if !second.is_empty() => {
                    second.remove(rng.usize(0..second.len()));
                }
                1 => {
                    let id = rng.u32(40..90);
                    if !second.iter().any(|(i, _)| *i == id) {
                        second.insert(rng.usize(0..=second.len()), (id, format!("N{case}-{id}")));
                    }
                }
                2 if !second.is_empty() => {
                    let at = rng.usize(0..second.len());
                    second[at].1 = format!("E{case}-{}", rng.u32(..));
                }
                _ => rng.shuffle(&mut second),
            }
        }
        let before = writes_by_id(&sb);
        let out = run(&sb, &sheet(dir.path(), &second), &report, &["--resume"]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "case {case}: {}",
            stderr_of(&out)
        );
        let after = writes_by_id(&sb);

        let rows = read_report(&report);
        assert_eq!(
            rows.len(),
            second.len(),
            "case {case}: one line per current row"
        );
        for (i, ((id, name), row)) in second.iter().zip(&rows).enumerate() {
            assert_eq!(row["row"], (i + 2).to_string(), "case {case}");
            assert_eq!(row["id"], id.to_string(), "case {case}");
            assert_eq!(row["status"], "updated", "case {case}: {row:?}");
            let sent_now =
                after.get(id).copied().unwrap_or(0) - before.get(id).copied().unwrap_or(0);
            let done_before = first.iter().any(|(i, n)| i == id && n == name);
            assert_eq!(
                sent_now,
                usize::from(!done_before),
                "case {case}: row {id},{name} sent {sent_now} times by the resumed run"
            );
        }
    }
}

/// What a European Excel saves: `;`, CR LF, Windows-1252; names that need it.
fn european_sheet(dir: &Path, rows: std::ops::RangeInclusive<u32>) -> std::path::PathBuf {
    let mut text = String::from("id;firstName;description\r\n");
    for id in rows {
        text.push_str(&format!("{id};Zoë-{id};\"Ølberg; R&D €\"\r\n"));
    }
    let (bytes, _, lossy) = encoding_rs::WINDOWS_1252.encode(&text);
    assert!(!lossy);
    write(dir, "users.csv", bytes)
}

#[test]
fn resume_of_a_killed_run_reads_its_semicolon_report_with_a_bom_and_crlf_and_skips_its_rows() {
    let sb = Sandbox::start(SandboxConfig::default()).unwrap();
    let dir = tempdir();
    let report = dir.path().join("report.csv");
    let file = european_sheet(dir.path(), 1..=60);
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("bulkedit"));
    cmd.arg("apply")
        .arg(&file)
        .args(["--platform", "control-room", "--url"])
        .arg(sb.url_for("control-room").as_str())
        .args(["--rate", "10/s", "--concurrency", "2", "--report"])
        .arg(&report)
        .envs(CR_ENV)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = cmd.spawn().unwrap();
    // The journal is the report, spelled as the report is, while the run goes on.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !(report.exists() && read_report(&report).len() >= 10) {
        assert!(std::time::Instant::now() < deadline, "no rows journaled");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let journal = std::fs::read(&report).unwrap();
    let text = std::str::from_utf8(journal.strip_prefix(b"\xEF\xBB\xBF").expect("a BOM")).unwrap();
    assert!(text
        .starts_with("row;status;error;changes;http_status;attempts;id;firstName;description\r\n"));
    assert_eq!(text.matches('\n').count(), text.matches("\r\n").count());
    assert!(text.contains(";Zoë-"), "{text}");
    let finished = read_report(&report);
    assert!(
        finished.len() >= 10 && finished.len() < 60,
        "{}",
        finished.len()
    );
    assert!(finished.iter().all(|r| r["status"] == "updated"));

    let out = run(&sb, &file, &report, &["--resume"]);
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains(&format!(
            "resumed: {} rows finished earlier",
            finished.len()
        )),
        "{err}"
    );
    // Every row sent once: those the killed run finished were not sent again.
    let writes = writes_by_id(&sb);
    assert_eq!(
        writes,
        (1..=60).map(|id| (id, 1)).collect::<BTreeMap<u32, usize>>()
    );
    let final_report = std::fs::read(&report).unwrap();
    assert!(final_report.starts_with(b"\xEF\xBB\xBF"));
    let rows = read_report(&report);
    let got: Vec<(String, String, String)> = rows
        .iter()
        .map(|r| {
            (
                r["row"].clone(),
                r["firstName"].clone(),
                r["status"].clone(),
            )
        })
        .collect();
    let want: Vec<(String, String, String)> = (1..=60)
        .map(|id| {
            (
                (id + 1).to_string(),
                format!("Zoë-{id}"),
                "updated".to_string(),
            )
        })
        .collect();
    assert_eq!(got, want);
    assert!(rows.iter().all(|r| r["description"] == "Ølberg; R&D €"));
}
