//! `bulkedit export` of 20,000 users from the sandbox with 20 ms latency on every call, for each
//! platform, beside the limit the listing cannot beat: `pages / concurrency × latency` (every
//! worker always waiting on a page). Measured as the server saw the list requests (the first
//! page's arrival to the last page's answer) and as the whole command (start-up, log-in, the
//! role or group names, the file written).
//!
//! `cargo bench --bench export` (or `-- hub identity control-room` for some of them;
//! `-- --concurrency 8` for another number of workers).

// The same allocator as the binary.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bulkedit::sandbox::{Faults, Sandbox, SandboxConfig};

const BIN: &str = env!("CARGO_BIN_EXE_bulkedit");
const USERS: usize = 20_000;
const LATENCY: Duration = Duration::from_millis(20);

fn data_dir() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-data");
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn credentials(platform: &str) -> Vec<(&'static str, &'static str)> {
    match platform {
        "hub" => vec![("BULKEDIT_TOKEN", "sandbox-tenant/sandbox-token")],
        "identity" => vec![
            ("BULKEDIT_CLIENT_ID", "sandbox-client"),
            ("BULKEDIT_CLIENT_SECRET", "sandbox-secret"),
        ],
        _ => vec![
            ("BULKEDIT_USERNAME", "sandbox"),
            ("BULKEDIT_PASSWORD", "sandbox-password"),
        ],
    }
}

/// Whether a request the sandbox saw reads a page of the user list.
fn is_page(path: &str) -> bool {
    path.ends_with("/openapi/users")
        || path.contains("/api/User/users/")
        || path.ends_with("/usermanagement/users/list")
}

fn export(platform: &str, concurrency: usize) {
    let sb = Sandbox::start(SandboxConfig {
        users: USERS,
        faults: Faults {
            latency: LATENCY,
            ..Faults::default()
        },
        ..SandboxConfig::default()
    })
    .unwrap();
    let out = data_dir().join(format!("export-{platform}.csv"));
    let started = Instant::now();
    let status = Command::new(BIN)
        .args(["export", "--platform", platform, "--url"])
        .arg(sb.url_for(platform).as_str())
        .args(["--rate", "unlimited", "--force", "--concurrency"])
        .arg(concurrency.to_string())
        .arg("-o")
        .arg(&out)
        .envs(credentials(platform))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .status()
        .expect("runs");
    let whole = started.elapsed().as_secs_f64();
    assert!(status.success());
    let lines = std::fs::read_to_string(&out).unwrap().lines().count();
    assert_eq!(lines, USERS + 1, "a header and every user");
    // The sandbox stamps a request when it answers it, after the latency.
    let pages: Vec<f64> = sb
        .requests()
        .iter()
        .filter(|r| is_page(&r.path))
        .map(|r| r.at.as_secs_f64())
        .collect();
    let latency = LATENCY.as_secs_f64();
    let listing = pages.iter().cloned().fold(f64::MIN, f64::max)
        - (pages.iter().cloned().fold(f64::MAX, f64::min) - latency);
    let limit = pages.len() as f64 / concurrency as f64 * latency;
    // The first page is read alone: it says how many there are.
    let strict = (1 + (pages.len() - 1).div_ceil(concurrency)) as f64 * latency;
    println!(
        "export, {USERS} {platform} users, 20 ms latency, {concurrency} workers: {} pages",
        pages.len()
    );
    println!(
        "  listing {:.0} ms; limit pages / concurrency × latency {:.0} ms: {:.2}x (with the first page alone, {:.0} ms: {:.2}x)",
        listing * 1000.0,
        limit * 1000.0,
        listing / limit,
        strict * 1000.0,
        listing / strict
    );
    println!(
        "  whole command {:.0} ms ({:.2}x the limit): start-up, log-in, names, the file written",
        whole * 1000.0,
        whole / limit
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let concurrency = args
        .iter()
        .position(|a| a == "--concurrency")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(4);
    let named: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| ["hub", "identity", "control-room"].contains(a))
        .collect();
    for platform in ["hub", "identity", "control-room"] {
        if named.is_empty() || named.contains(&platform) {
            export(platform, concurrency);
        }
    }
}
