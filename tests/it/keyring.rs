//! A profile's secret kept in the OS credential store: put there with `bulkedit secret set`
//! from standard input, used by a real run against the sandbox, and shown nowhere. On Linux
//! the store is the kernel's (keyutils); where a machine offers none (a container whose
//! seccomp profile refuses `keyctl`), each command must say so clearly, and the test checks
//! exactly that, saying which of the two it saw.

use std::path::{Path, PathBuf};

use bulkedit::sandbox::{Sandbox, SandboxConfig};

use crate::common::{bulkedit, read_report, stderr_of, tempdir, write};

const UNAVAILABLE: &str = "the OS credential store is not available here";

/// A profile name no other test or earlier run uses; its entry is removed when dropped.
struct Stored {
    profile: String,
    config: PathBuf,
}

impl Stored {
    fn new(dir: &Path, test: &str, profile_body: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let profile = format!("it-{test}-{}-{nanos}", std::process::id());
        let config = write(
            dir,
            "config.toml",
            format!("[profile.{profile}]\n{profile_body}"),
        );
        Stored { profile, config }
    }

    fn secret(&self, action: &str) -> assert_cmd::Command {
        let mut cmd = bulkedit();
        cmd.args(["secret", action, "--profile", &self.profile])
            .env("BULKEDIT_CONFIG", &self.config);
        cmd
    }
}

impl Drop for Stored {
    fn drop(&mut self) {
        let _ = self.secret("delete").output();
    }
}

/// Everything a run left for a person to see: its output and every file it wrote.
fn everything_shown(out: &std::process::Output, dir: &Path) -> String {
    let mut all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "csv" || e == "json") {
            all.push_str(&String::from_utf8_lossy(&std::fs::read(&path).unwrap()));
        }
    }
    all
}

#[test]
fn a_secret_stored_with_secret_set_is_used_by_the_run_and_shown_nowhere() {
    let sb = Sandbox::start(SandboxConfig::default()).unwrap();
    let dir = tempdir();
    let token = "sandbox-tenant/sandbox-token";
    let stored = Stored::new(
        dir.path(),
        "hub-token",
        &format!(
            "platform = \"hub\"\nurl = \"{}\"\nkeyring = \"token\"\n",
            sb.url_for("hub")
        ),
    );
    let sheet = write(
        dir.path(),
        "users.csv",
        "user_email,user_department\nuser00001@example.com,Treasury\n",
    );
    let apply = || {
        bulkedit()
            .arg("apply")
            .arg(&sheet)
            .args([
                "--profile",
                &stored.profile,
                "--yes",
                "-v",
                "--summary-json",
            ])
            .arg(dir.path().join("run.json"))
            .env("BULKEDIT_CONFIG", &stored.config)
            // An ambient token of another tenant: the profile's own secret wins over it.
            .env("BULKEDIT_TOKEN", "other-tenant/not-this-one")
            .output()
            .unwrap()
    };

    let out = stored
        .secret("set")
        .write_stdin(format!("{token}\n"))
        .output()
        .unwrap();
    let err = stderr_of(&out);
    if out.status.code() == Some(2) && err.contains(UNAVAILABLE) {
        eprintln!("this machine has no usable OS credential store; checked that it says so: {err}");
        assert!(!err.contains(token), "{err}");
        // The run that needs the store says the same, and sends nothing.
        let out = apply();
        let err = stderr_of(&out);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains(UNAVAILABLE), "{err}");
        assert!(sb.requests().is_empty(), "{:?}", sb.requests());
        return;
    }
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains(&format!("stored the token of profile '{}'", stored.profile))
            && err.contains("service bulkedit"),
        "{err}"
    );
    assert!(!err.contains(token) && out.stdout.is_empty(), "{err}");

    let out = stored.secret("check").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert!(!everything_shown(&out, dir.path()).contains("sandbox-token"));

    let out = apply();
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let report = read_report(&dir.path().join("users-report.csv"));
    assert_eq!(report[0]["status"], "updated", "{report:?}");
    // The verbose log, the summary, the report, its undo file and the run's facts: the token
    // (and its secret half alone) appear in none of them.
    let shown = everything_shown(&out, dir.path());
    assert!(
        !shown.contains(token) && !shown.contains("sandbox-token"),
        "{shown}"
    );
    // The sandbox saw the stored token, not the ambient one.
    assert!(
        sb.requests().iter().all(|r| r.status != 401),
        "{:?}",
        sb.requests()
    );

    // Removed, it is missed by name, and the run stops before sending anything.
    let out = stored.secret("delete").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let before = sb.requests().len();
    let out = apply();
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "no secret is stored for profile '{}'",
            stored.profile
        )) && err.contains(&format!("bulkedit secret set --profile {}", stored.profile)),
        "{err}"
    );
    assert_eq!(sb.requests().len(), before);
}

#[test]
fn an_identity_profile_keeps_its_client_secret_in_the_store_and_its_client_id_in_the_file() {
    let sb = Sandbox::start(SandboxConfig::default()).unwrap();
    let dir = tempdir();
    let stored = Stored::new(
        dir.path(),
        "identity-secret",
        &format!(
            "platform = \"identity\"\nurl = \"{}\"\nclient_id = \"sandbox-client\"\n\
             keyring = \"client-secret\"\n",
            sb.url_for("identity")
        ),
    );
    let out = stored
        .secret("set")
        .write_stdin("\u{feff}sandbox-secret\r\n")
        .output()
        .unwrap();
    let err = stderr_of(&out);
    if out.status.code() == Some(2) && err.contains(UNAVAILABLE) {
        eprintln!("this machine has no usable OS credential store; checked that it says so: {err}");
        return;
    }
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("stored the client secret"), "{err}");
    let sheet = write(
        dir.path(),
        "people.csv",
        "email,name\nuser00002@example.com,Beatriz\n",
    );
    let out = bulkedit()
        .arg("apply")
        .arg(&sheet)
        .args(["--profile", &stored.profile, "--yes"])
        .env("BULKEDIT_CONFIG", &stored.config)
        .output()
        .unwrap();
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(!everything_shown(&out, dir.path()).contains("sandbox-secret"));
    let report = read_report(&dir.path().join("people-report.csv"));
    assert_eq!(report[0]["status"], "updated", "{report:?}");
}

#[test]
fn secret_set_refuses_a_profile_that_does_not_keep_its_secret_in_the_store_and_never_reads_it() {
    let dir = tempdir();
    let cfg = write(
        dir.path(),
        "config.toml",
        "[profile.cr]\nplatform = \"control-room\"\nurl = \"https://cr.example.com\"\n",
    );
    let out = bulkedit()
        .args(["secret", "set", "--profile", "cr"])
        .env("BULKEDIT_CONFIG", &cfg)
        .write_stdin("my-api-key-value\n")
        .output()
        .unwrap();
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("profile 'cr' does not keep its secret in the OS credential store")
            && err.contains("keyring = \"api_key\"")
            && err.contains(&cfg.display().to_string()),
        "{err}"
    );
    assert!(!err.contains("my-api-key-value"), "{err}");

    // A secret typed where the profile names what the store holds is refused, not repeated.
    let cfg = write(
        dir.path(),
        "config.toml",
        "[profile.cr]\nplatform = \"control-room\"\nkeyring = \"Xk9-my-api-key-value\"\n",
    );
    let out = bulkedit()
        .args(["secret", "set", "--profile", "cr"])
        .env("BULKEDIT_CONFIG", &cfg)
        .write_stdin("x\n")
        .output()
        .unwrap();
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("line 3, key 'keyring'") && !err.contains("Xk9-my-api-key-value"),
        "{err}"
    );
}

#[test]
fn the_readmes_credential_store_example_is_a_file_bulkedit_reads() {
    let readme = std::fs::read_to_string(crate::common::root().join("README.md")).unwrap();
    let example = readme
        .split("```toml\n")
        .skip(1)
        .filter_map(|block| block.split_once("```").map(|(b, _)| b))
        .find(|block| block.contains("keyring ="))
        .expect("a TOML example with keyring");
    let dir = tempdir();
    let cfg = write(dir.path(), "config.toml", example);
    // A profile the file does not have: bulkedit lists the ones it read, so the file parsed.
    let out = bulkedit()
        .args(["export", "--profile", "nope"])
        .env("BULKEDIT_CONFIG", &cfg)
        .output()
        .unwrap();
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("the profiles there are: acme-cloud, cr-prod"),
        "{err}"
    );
}
