//! Secrets never reach stdout, stderr, logs or reports: every byte the program writes is
//! searched for the token, the client secret, the API key and the passwords, on success, on
//! failure and with `-v`.

use std::path::Path;

use crate::common::*;
use bulkedit::sandbox::{Faults, Sandbox, SandboxConfig};

fn everything_written(out: &std::process::Output, dir: &Path) -> String {
    let mut all = String::from_utf8_lossy(&out.stdout).into_owned();
    all.push_str(&String::from_utf8_lossy(&out.stderr));
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "csv")
            && path
                .file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .contains("report")
        {
            all.push_str(&std::fs::read_to_string(&path).unwrap());
        }
    }
    all
}

#[test]
fn no_secret_is_ever_written_on_success_failure_or_verbose_runs() {
    let sb = Sandbox::start(SandboxConfig {
        faults: Faults {
            fail_rate: 0.2,
            seed: 4,
            ..Faults::default()
        },
        ..SandboxConfig::default()
    })
    .unwrap();
    let dir = tempdir();
    let token_file = write(dir.path(), "token", "sandbox-tenant/sandbox-token\n");
    let identity_rows = write(
        dir.path(),
        "i.csv",
        "userId,password,name\n00000000-0000-4000-8000-000000000001,Correct-Horse-9,A\n00000000-0000-4000-8000-000000000002,tiny,B\n",
    );
    let hub_file = sample("hub-clean.csv");
    let cr_file = sample("control-room-clean.csv");
    type Run<'a> = (&'a str, &'a Path, Vec<(&'a str, &'a str)>, Vec<&'a str>);
    let runs: Vec<Run> = vec![
        (
            "hub",
            &hub_file,
            vec![],
            vec!["--token-file", token_file.to_str().unwrap()],
        ),
        (
            "hub",
            &hub_file,
            vec![("BULKEDIT_TOKEN", "sandbox-tenant/sandbox-token")],
            vec![],
        ),
        (
            "hub",
            &hub_file,
            vec![("BULKEDIT_TOKEN", "sandbox-tenant/not-the-token")],
            vec![],
        ),
        (
            "identity",
            &identity_rows,
            vec![
                ("BULKEDIT_CLIENT_ID", "sandbox-client"),
                ("BULKEDIT_CLIENT_SECRET", "sandbox-secret"),
            ],
            vec![],
        ),
        (
            "identity",
            &identity_rows,
            vec![
                ("BULKEDIT_CLIENT_ID", "sandbox-client"),
                ("BULKEDIT_CLIENT_SECRET", "wrong-secret-value"),
            ],
            vec![],
        ),
        (
            "control-room",
            &cr_file,
            vec![
                ("BULKEDIT_USERNAME", "sandbox"),
                ("BULKEDIT_PASSWORD", "sandbox-password"),
            ],
            vec![],
        ),
        (
            "control-room",
            &cr_file,
            vec![
                ("BULKEDIT_USERNAME", "sandbox"),
                ("BULKEDIT_API_KEY", "sandbox-api-key"),
            ],
            vec!["--dry-run"],
        ),
        (
            "control-room",
            &cr_file,
            vec![
                ("BULKEDIT_USERNAME", "sandbox"),
                ("BULKEDIT_PASSWORD", "wrong-password-value"),
            ],
            vec![],
        ),
    ];
    let secrets = [
        "sandbox-token",
        "not-the-token",
        "sandbox-secret",
        "wrong-secret-value",
        "sandbox-password",
        "sandbox-api-key",
        "wrong-password-value",
        "Correct-Horse-9",
        "tiny",
    ];
    for (platform, file, env, extra) in runs {
        for verbose in [false, true] {
            let mut cmd = bulkedit();
            cmd.arg("apply")
                .arg(file)
                .args([
                    "--platform",
                    platform,
                    "--url",
                    sb.url_for(platform).as_str(),
                    "--rate",
                    "unlimited",
                    "--retries",
                    "8",
                    "--report",
                ])
                .arg(dir.path().join("report.csv"))
                .args(&extra)
                .envs(env.iter().copied());
            if verbose {
                cmd.arg("-v");
            }
            let out = cmd.output().unwrap();
            let all = everything_written(&out, dir.path());
            assert!(!all.is_empty());
            if verbose {
                assert!(all.contains(" -> "), "-v logs requests: {all}");
            }
            for s in secrets {
                // The sandbox's JWTs and the like never contain these words; any hit is a leak.
                assert!(
                    !all.contains(s),
                    "{platform} {env:?} -v={verbose}: '{s}' leaked in:\n{all}"
                );
            }
            // Also no bearer token of any shape.
            assert!(!all.contains("Bearer "), "{all}");
        }
    }
}

#[test]
fn secrets_are_not_accepted_as_command_line_values() {
    for flag in ["--token", "--password", "--api-key", "--client-secret"] {
        let out = bulkedit()
            .args(["apply"])
            .arg(sample("hub-clean.csv"))
            .args(["--sandbox", flag, "value"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{flag}");
        assert!(
            stderr_of(&out).contains("unexpected argument"),
            "{flag}: {}",
            stderr_of(&out)
        );
    }
}

#[test]
fn a_bug_that_panics_costs_one_row_and_shows_no_credential() {
    // BULKEDIT_TEST_PANIC_ROW makes the worker on that row panic with every credential in the
    // panic message, as a bug that formatted them would.
    let sb = Sandbox::start(SandboxConfig::default()).unwrap();
    let dir = tempdir();
    let report = dir.path().join("report.csv");
    let out = bulkedit()
        .arg("apply")
        .arg(sample("control-room-clean.csv"))
        .args(["--url", sb.url_for("control-room").as_str(), "--report"])
        .arg(&report)
        .args(["--rate", "unlimited", "--concurrency", "2"])
        .env("BULKEDIT_USERNAME", "sandbox")
        .env("BULKEDIT_PASSWORD", "sandbox-password")
        .env("BULKEDIT_TEST_PANIC_ROW", "3")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    let all = everything_written(&out, dir.path());
    assert!(
        stderr_of(&out).contains("internal error") && stderr_of(&out).contains("test panic"),
        "the panic is reported: {}",
        stderr_of(&out)
    );
    assert!(!all.contains("sandbox-password"), "leaked in:\n{all}");
    let rows = read_report(&report);
    let mut failed = 0;
    for r in &rows {
        if r["row"] == "3" {
            assert_eq!(r["status"], "failed");
            assert!(r["error"].contains("internal error"), "{r:?}");
            failed += 1;
        } else {
            assert!(
                ["updated", "unchanged"].contains(&r["status"].as_str()),
                "every other row is carried out: {r:?}"
            );
        }
    }
    assert_eq!(failed, 1, "the row is reported once: {rows:?}");
}
