//! What an admin meets before the first row is sent: `--help` that teaches by example, shell
//! completions and the man page made from the same definitions, and profiles that keep a
//! tenant's connection settings (never its secret) in the configuration file.

use std::path::{Path, PathBuf};

use bulkedit::sandbox::{Sandbox, SandboxConfig};
use clap::CommandFactory;

use crate::common::{bulkedit, read_report, stderr_of, tempdir, write};

/// Every command a user can type, from the same definitions the binary parses with.
fn subcommands() -> Vec<String> {
    bulkedit::cli::Cli::command()
        .get_subcommands()
        .map(|c| c.get_name().to_string())
        .filter(|n| n != "help")
        .collect()
}

fn stdout_of(args: &[&str]) -> String {
    let out = bulkedit().args(args).output().expect("runs");
    assert!(out.status.success(), "{args:?}: {}", stderr_of(&out));
    String::from_utf8(out.stdout).expect("utf-8")
}

#[test]
fn completions_for_every_shell_name_every_command() {
    let commands = subcommands();
    assert!(commands.len() >= 8, "{commands:?}");
    for shell in ["bash", "zsh", "fish", "powershell"] {
        let script = stdout_of(&["completions", shell]);
        for c in &commands {
            assert!(script.contains(c.as_str()), "{shell} script lacks {c}");
        }
        let flag = if shell == "fish" {
            "-l profile"
        } else {
            "--profile"
        };
        assert!(script.contains(flag), "{shell} script lacks --profile");
    }
    // bash itself can read what it is given, when there is one to ask.
    let dir = tempdir();
    let script = write(
        dir.path(),
        "bulkedit.bash",
        stdout_of(&["completions", "bash"]),
    );
    if let Ok(out) = std::process::Command::new("bash")
        .arg("-n")
        .arg(&script)
        .output()
    {
        assert!(out.status.success(), "{}", stderr_of(&out));
    }
    let out = bulkedit().args(["completions", "tcsh"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn the_man_page_is_roff_naming_every_command() {
    let page = stdout_of(&["man"]);
    assert!(page.contains(".TH bulkedit 1"), "{page}");
    assert!(page.contains(".SH SUBCOMMANDS"), "{page}");
    for c in subcommands() {
        assert!(
            page.contains(&format!("bulkedit\\-{}", c.replace('-', "\\-"))),
            "the page lacks {c}"
        );
    }
    let apply = stdout_of(&["man", "apply"]);
    assert!(apply.contains(".TH bulkedit-apply 1"), "{apply}");
    assert!(apply.contains("BULKEDIT_CLIENT_SECRET"), "{apply}");
    assert!(apply.contains("\\-\\-profile"), "{apply}");
    let out = bulkedit().args(["man", "nope"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr_of(&out).contains("validate, apply"),
        "{}",
        stderr_of(&out)
    );
}

#[test]
fn every_commands_help_ends_with_examples_of_itself() {
    let top = stdout_of(&["--help"]);
    let (_, examples) = top.split_once("Examples:").expect("top-level examples");
    assert!(examples.contains("bulkedit apply "), "{top}");
    for c in subcommands() {
        for flag in ["--help", "-h"] {
            let help = stdout_of(&[&c, flag]);
            let (_, examples) = help
                .split_once("Examples:")
                .unwrap_or_else(|| panic!("{c} {flag} has no examples:\n{help}"));
            let invocations = examples
                .lines()
                .filter(|l| l.trim_start().starts_with(&format!("bulkedit {c} ")))
                .count();
            assert!(invocations >= 2, "{c} {flag}: {examples}");
        }
    }
}

#[test]
fn every_flag_and_argument_is_described() {
    let mut cli = bulkedit::cli::Cli::command();
    cli.build();
    for c in cli.get_subcommands().filter(|c| c.get_name() != "help") {
        for arg in c.get_arguments() {
            assert!(
                arg.get_help().is_some(),
                "bulkedit {} {} has no description",
                c.get_name(),
                arg.get_id()
            );
        }
    }
}

#[test]
fn apply_help_lists_each_platforms_credentials() {
    let help = stdout_of(&["apply", "--help"]);
    let (_, credentials) = help
        .split_once("Credentials")
        .expect("a credentials section");
    for name in [
        "hub",
        "identity",
        "control-room",
        "BULKEDIT_TOKEN",
        "BULKEDIT_APP_KEY",
        "BULKEDIT_CLIENT_ID",
        "BULKEDIT_CLIENT_SECRET",
        "BULKEDIT_USERNAME",
        "BULKEDIT_PASSWORD",
        "BULKEDIT_API_KEY",
        "$env:BULKEDIT_TOKEN",
    ] {
        assert!(credentials.contains(name), "{name} missing:\n{credentials}");
    }
}

// --- profiles ---

/// A configuration file with `text` in a directory of its own; `BULKEDIT_CONFIG` points at it.
fn config(dir: &Path, text: &str) -> PathBuf {
    write(dir, "config.toml", text)
}

/// The clean hub sample, copied where its report may be written.
fn hub_sheet(dir: &Path) -> PathBuf {
    let to = dir.join("users.csv");
    std::fs::copy(crate::common::sample("hub-clean.csv"), &to).unwrap();
    to
}

fn hub_profile(sb: &Sandbox, extra: &str) -> String {
    format!(
        "# tenants\n[profile.other]\nplatform = \"identity\"\n\n[profile.acme]\nplatform = \"hub\"\n\
         url = \"{}\"\ntoken_env = \"ACME_HUB_TOKEN\"\n{extra}",
        sb.url_for("hub")
    )
}

#[test]
fn a_profile_supplies_platform_url_and_credentials_and_the_run_works() {
    let sb = Sandbox::start(SandboxConfig::default()).unwrap();
    let dir = tempdir();
    let cfg = config(
        dir.path(),
        &hub_profile(&sb, "rate = \"50/s\"\nconcurrency = 6\n"),
    );
    let sheet = hub_sheet(dir.path());
    let out = bulkedit()
        .arg("apply")
        .arg(&sheet)
        .args(["--profile", "acme"])
        .env("BULKEDIT_CONFIG", &cfg)
        .env("ACME_HUB_TOKEN", "sandbox-tenant/sandbox-token")
        // The profile's variable wins over an ambient token, which may be another tenant's.
        .env("BULKEDIT_TOKEN", "other-tenant/wrong-token")
        .output()
        .unwrap();
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains(&format!("to {} at 50/s with 6 workers", sb.url_for("hub"))),
        "{err}"
    );
    let report = read_report(&dir.path().join("users-report.csv"));
    assert!(
        report.iter().any(|r| r["status"] == "updated"),
        "{report:?}"
    );
    assert!(
        report
            .iter()
            .all(|r| r["status"] == "updated" || r["status"] == "unchanged"),
        "{report:?}"
    );

    // BULKEDIT_PROFILE does for export what --profile does, with no other flag at all.
    let out = bulkedit()
        .arg("export")
        .env("BULKEDIT_PROFILE", "acme")
        .env("BULKEDIT_CONFIG", &cfg)
        .env("ACME_HUB_TOKEN", "sandbox-tenant/sandbox-token")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let csv = String::from_utf8(out.stdout).unwrap();
    assert!(csv.contains("user00100@example.com"), "{csv}");
}

#[test]
fn flags_on_the_command_line_win_over_the_profile() {
    let sb = Sandbox::start(SandboxConfig::default()).unwrap();
    let dir = tempdir();
    // A URL where nothing listens and a rate that would never finish: only the flags make
    // this run work.
    let cfg = config(
        dir.path(),
        "[profile.acme]\nplatform = \"hub\"\nurl = \"http://127.0.0.1:9/automationhub_\"\n\
         rate = \"1/h\"\nconcurrency = 1\ntoken_env = \"ACME_HUB_TOKEN\"\n",
    );
    let sheet = hub_sheet(dir.path());
    let out = bulkedit()
        .arg("apply")
        .arg(&sheet)
        .args(["--profile", "acme", "--url"])
        .arg(sb.url_for("hub").as_str())
        .args(["--rate", "7/s", "--concurrency", "3"])
        .env("BULKEDIT_CONFIG", &cfg)
        .env("ACME_HUB_TOKEN", "sandbox-tenant/sandbox-token")
        .timeout(std::time::Duration::from_secs(60))
        .output()
        .unwrap();
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains(&format!("to {} at 7/s with 3 workers", sb.url_for("hub"))),
        "{err}"
    );

    // --token-file wins over the profile's token_env, whose variable is not even set here.
    let token = write(dir.path(), "token.txt", "sandbox-tenant/sandbox-token\n");
    let out = bulkedit()
        .arg("apply")
        .arg(&sheet)
        .args([
            "--profile",
            "acme",
            "--dry-run",
            "--rate",
            "unlimited",
            "--url",
        ])
        .arg(sb.url_for("hub").as_str())
        .arg("--token-file")
        .arg(&token)
        .env("BULKEDIT_CONFIG", &cfg)
        .timeout(std::time::Duration::from_secs(60))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
}

#[test]
fn a_profile_naming_an_unset_variable_stops_before_sending() {
    let sb = Sandbox::start(SandboxConfig::default()).unwrap();
    let dir = tempdir();
    let cfg = config(dir.path(), &hub_profile(&sb, ""));
    let out = bulkedit()
        .arg("apply")
        .arg(hub_sheet(dir.path()))
        .args(["--profile", "acme"])
        .env("BULKEDIT_CONFIG", &cfg)
        .env("BULKEDIT_TOKEN", "sandbox-tenant/sandbox-token")
        .output()
        .unwrap();
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("ACME_HUB_TOKEN") && err.contains("not set"),
        "{err}"
    );
    assert!(sb.requests().is_empty(), "{:?}", sb.requests());
}

#[test]
fn a_secret_in_the_configuration_file_is_refused_naming_file_line_and_key() {
    let sb = Sandbox::start(SandboxConfig::default()).unwrap();
    let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJzYW5kYm94In0.c2lnbmF0dXJlLXBhcnQ";
    for (extra, line, key) in [
        ("password = \"hunter2-secret\"\n", 9, "password"),
        ("client_secret = \"hunter2-secret\"\n", 9, "client_secret"),
        ("api_key = \"hunter2-secret\"\n", 9, "api_key"),
        (
            "partition = \"hunter2-secret\"\ntoken = \"hunter2-secret\"\n",
            10,
            "token",
        ),
        (&format!("partition = \"{jwt}\"\n") as &str, 9, "partition"),
    ] {
        let dir = tempdir();
        let cfg = config(dir.path(), &hub_profile(&sb, extra));
        let out = bulkedit()
            .arg("apply")
            .arg(hub_sheet(dir.path()))
            .args(["--profile", "acme"])
            .env("BULKEDIT_CONFIG", &cfg)
            .env("ACME_HUB_TOKEN", "sandbox-tenant/sandbox-token")
            .output()
            .unwrap();
        let err = stderr_of(&out);
        assert_eq!(out.status.code(), Some(2), "{err}");
        let expected = format!("{}: line {line}, key '{key}':", cfg.display());
        assert!(err.contains(&expected), "{expected} not in {err}");
        assert!(err.contains("never holds a secret"), "{err}");
        assert!(!err.contains("hunter2") && !err.contains(jwt), "{err}");
        assert!(!dir.path().join("users-report.csv").exists());
    }
    assert!(sb.requests().is_empty(), "{:?}", sb.requests());
}

#[test]
fn an_unknown_profile_exits_2_naming_the_profiles_there_are() {
    let sb = Sandbox::start(SandboxConfig::default()).unwrap();
    let dir = tempdir();
    let cfg = config(dir.path(), &hub_profile(&sb, ""));
    for command in ["apply", "export"] {
        let mut cmd = bulkedit();
        cmd.arg(command);
        if command == "apply" {
            cmd.arg(hub_sheet(dir.path()));
        }
        let out = cmd
            .args(["--profile", "acmee"])
            .env("BULKEDIT_CONFIG", &cfg)
            .output()
            .unwrap();
        let err = stderr_of(&out);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains("no profile 'acmee'"), "{err}");
        assert!(err.contains("the profiles there are: acme, other"), "{err}");
        assert!(err.contains(&cfg.display().to_string()), "{err}");
    }
    // No configuration file at all says where it was looked for.
    let missing = dir.path().join("nowhere.toml");
    let out = bulkedit()
        .args(["export", "--profile", "acme"])
        .env("BULKEDIT_CONFIG", &missing)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr_of(&out).contains(&missing.display().to_string()),
        "{}",
        stderr_of(&out)
    );
}

#[test]
fn the_readmes_profile_example_is_a_file_bulkedit_reads() {
    let readme = std::fs::read_to_string(crate::common::root().join("README.md")).unwrap();
    let (_, rest) = readme.split_once("```toml\n").expect("a TOML example");
    let (example, _) = rest.split_once("```").unwrap();
    let dir = tempdir();
    let cfg = config(dir.path(), example);
    let out = bulkedit()
        .args(["export", "--profile", "nope"])
        .env("BULKEDIT_CONFIG", &cfg)
        .output()
        .unwrap();
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("the profiles there are: acme, acme-identity, onprem-cr"),
        "{err}"
    );
}

#[test]
fn summary_json_says_what_happened_for_a_scheduler_whether_the_run_finished_or_not() {
    let dir = tempdir();
    let sheet = write(
        dir.path(),
        "users.csv",
        "user_email,user_department\nuser00001@example.com,Treasury\nuser00002@example.com,HR\nnot-an-email,X\n",
    );
    let json_path = dir.path().join("summary.json");
    let out = bulkedit()
        .arg("apply")
        .arg(&sheet)
        .args(["--sandbox", "--yes", "--summary-json"])
        .arg(&json_path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap();
    assert_eq!(doc["exit_code"], 1);
    assert_eq!(doc["platform"], "hub");
    assert_eq!(doc["target"], "sandbox");
    assert_eq!(doc["dry_run"], false);
    assert_eq!(doc["rows"], 3);
    assert_eq!(
        doc["counts"],
        serde_json::json!({"updated": 1, "unchanged": 1, "invalid": 1})
    );
    assert!(doc["report"]
        .as_str()
        .unwrap()
        .ends_with("users-report.csv"));
    assert!(doc["failures"]
        .as_str()
        .unwrap()
        .ends_with("users-report-failures.csv"));
    assert!(doc["undo"]
        .as_str()
        .unwrap()
        .ends_with("users-report-undo.csv"));
    assert!(doc["started"].as_str().unwrap() <= doc["ended"].as_str().unwrap());
    assert!(doc["requests"].as_u64().unwrap() >= 1);
    assert_eq!(doc["error"], serde_json::Value::Null);

    // A run that cannot start still leaves its facts: exit 2 and why.
    let out = bulkedit()
        .arg("apply")
        .arg(dir.path().join("missing.csv"))
        .args(["--sandbox", "--summary-json"])
        .arg(&json_path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap();
    assert_eq!(doc["exit_code"], 2);
    assert!(
        doc["error"].as_str().unwrap().contains("missing.csv"),
        "{doc}"
    );
    assert_eq!(doc["counts"], serde_json::json!({}));
}
