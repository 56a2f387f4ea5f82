//! `wholejob`: a whole `bulkedit apply` job (start-up, log-in, the user list, the writes, the
//! report and the undo file) of 3,000 edits in a tenant of 20,000 users at 20 ms latency with
//! 32 workers, beside `wrk` sending the very same writes (method, path, headers with the
//! token, bodies) over 32 connections to a sandbox reset to the same users. The ratio is the
//! job's rows per second (edits ÷ the process's wall time) to wrk's writes per second (as the
//! sandbox saw them: the first write's arrival to the last one's answer). Runs alternate, and
//! the medians are reported.
//!
//! `cargo bench --bench throughput -- wholejob` (every platform), or name platforms:
//! `-- wholejob hub control-room`; `--runs N` alternations (default 3).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bulkedit::sandbox::{Captured, Faults, Sandbox, SandboxConfig, Seen};

use super::{data_dir, peak, BIN};

const USERS: usize = 20_000;
const EDITS: usize = 3_000;
const LATENCY: Duration = Duration::from_millis(20);
const WORKERS: usize = 32;
const SCRIPT: &str = include_str!("writes.lua");
pub const PLATFORMS: [&str; 3] = ["hub", "control-room", "identity"];

/// wrk must be there: the bench compares with it, and installs nothing itself.
pub fn wrk_or_exit() {
    let found = Command::new("wrk")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !found {
        eprintln!(
            "wholejob compares bulkedit with wrk, which is not installed: \
             apt-get install -y wrk (or brew install wrk), then run it again"
        );
        std::process::exit(2);
    }
}

fn sandbox() -> Sandbox {
    Sandbox::start(SandboxConfig {
        users: USERS,
        faults: Faults {
            latency: LATENCY,
            ..Faults::default()
        },
        ..SandboxConfig::default()
    })
    .unwrap()
}

/// The users the sheet edits: spread over the whole tenant, as an admin's edits would be.
fn edited() -> impl Iterator<Item = usize> {
    (0..EDITS).map(|k| 1 + k * USERS / EDITS)
}

/// A sheet of 3,000 edits, each naming its user the way an admin's sheet does on that
/// platform (an e-mail, a username), so the job finds them in the user list.
fn sheet(platform: &str) -> PathBuf {
    let path = data_dir().join(format!("wholejob-{platform}.csv"));
    let mut w = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    let (header, row): (&str, fn(usize) -> String) = match platform {
        "hub" => ("user_email,user_job_title", |i| {
            format!("user{i:05}@example.com,Whole job title {i}")
        }),
        "identity" => ("email,displayName", |i| {
            format!("user{i:05}@example.com,Whole Job {i}")
        }),
        _ => ("username,description", |i| {
            format!("user{i:05},Whole job note {i}")
        }),
    };
    writeln!(w, "{header}").unwrap();
    for i in edited() {
        writeln!(w, "{}", row(i)).unwrap();
    }
    path
}

fn credentials(platform: &str) -> Vec<(&'static str, &'static str)> {
    match platform {
        "hub" => vec![("BULKEDIT_TOKEN", bulkedit::sandbox::HUB_TOKEN)],
        "identity" => vec![
            ("BULKEDIT_CLIENT_ID", bulkedit::sandbox::CLIENT_ID),
            ("BULKEDIT_CLIENT_SECRET", bulkedit::sandbox::CLIENT_SECRET),
        ],
        _ => vec![
            ("BULKEDIT_USERNAME", bulkedit::sandbox::CR_USERNAME),
            ("BULKEDIT_PASSWORD", bulkedit::sandbox::CR_PASSWORD),
        ],
    }
}

/// Whether a request is one of the job's writes.
fn is_write(platform: &str, method: &str, path: &str) -> bool {
    match platform {
        "hub" => method == "POST" && path.ends_with("/openapi/edituser"),
        "identity" => method == "PUT" && path.contains("/api/User/"),
        _ => method == "PUT" && path.starts_with("/v1/usermanagement/users/"),
    }
}

/// Whether a request reads a page of the whole user list.
fn is_page(path: &str) -> bool {
    path.ends_with("/openapi/users")
        || path.contains("/api/User/users/")
        || path.ends_with("/usermanagement/users/list")
}

/// One `bulkedit apply` of the sheet, start to exit.
struct Job {
    wall: Duration,
    cpu: Duration,
    /// Since the process was started: the first request sent, the log-in and names read, the
    /// list's first page sent and last page answered, the first write sent, the last write
    /// answered.
    first_request: f64,
    list: Option<(f64, f64)>,
    first_write: f64,
    last_write: f64,
    requests: usize,
}

fn run_job(sb: &Sandbox, platform: &str, sheet: &Path, n: usize) -> Job {
    let dir = data_dir().join(format!("wholejob-{platform}-{n}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut cmd = Command::new(BIN);
    cmd.arg("apply")
        .arg(sheet)
        .args([
            "--platform",
            platform,
            "--url",
            sb.url_for(platform).as_str(),
        ])
        .args(["--rate", "unlimited", "--quiet", "--yes", "--concurrency"])
        .arg(WORKERS.to_string())
        .arg("--report")
        .arg(dir.join("report.csv"))
        .envs(credentials(platform))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let spawned = Instant::now();
    let child = cmd.spawn().expect("bulkedit runs");
    let used = peak::wait_with_peak(child);
    let wall = spawned.elapsed();
    assert_eq!(used.code, 0, "bulkedit apply of {platform} failed");
    let offset = spawned.duration_since(sb.started()).as_secs_f64();
    let latency = LATENCY.as_secs_f64();
    // The sandbox stamps a request when it answers, after the latency.
    let sent = |s: &Seen| s.at.as_secs_f64() - latency - offset;
    let answered = |s: &Seen| s.at.as_secs_f64() - offset;
    let seen = sb.requests();
    let writes: Vec<&Seen> = seen
        .iter()
        .filter(|s| is_write(platform, &s.method, &s.path))
        .collect();
    assert_eq!(writes.len(), EDITS, "{platform}: one write per edit");
    assert!(writes.iter().all(|s| (200..300).contains(&s.status)));
    let pages: Vec<&Seen> = seen.iter().filter(|s| is_page(&s.path)).collect();
    let list = (!pages.is_empty()).then(|| {
        let first = pages.iter().map(|s| sent(s)).fold(f64::MAX, f64::min);
        let last = pages.iter().map(|s| answered(s)).fold(f64::MIN, f64::max);
        (first, last)
    });
    Job {
        wall,
        cpu: used.cpu,
        first_request: seen.iter().map(sent).fold(f64::MAX, f64::min),
        list,
        first_write: writes.iter().map(|s| sent(s)).fold(f64::MAX, f64::min),
        last_write: writes.iter().map(|s| answered(s)).fold(f64::MIN, f64::max),
        requests: seen.len(),
    }
}

/// The job's writes, as the sandbox kept them, in a file wrk's script reads: the headers of
/// the first (the same on every write, but for the token, given for the sandbox wrk talks to)
/// and each request's method, path and body.
fn wrk_requests(platform: &str, captured: &[Captured], token: (&str, String)) -> PathBuf {
    let writes: Vec<&Captured> = captured
        .iter()
        .filter(|c| is_write(platform, &c.method, &c.target))
        .collect();
    assert_eq!(writes.len(), EDITS, "{platform}: every write kept");
    let path = data_dir().join(format!("wholejob-{platform}-wrk.txt"));
    let mut w = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    let clean = |s: &str| {
        assert!(!s.contains(['\t', '\n', '\r']), "one line per request");
        s.to_string()
    };
    for (name, value) in &writes[0].headers {
        let value = if name.eq_ignore_ascii_case(token.0) {
            token.1.clone()
        } else {
            value.clone()
        };
        writeln!(w, "H\t{}\t{}", clean(name), clean(&value)).unwrap();
    }
    for c in writes {
        let body = std::str::from_utf8(&c.body).expect("JSON bodies");
        writeln!(
            w,
            "R\t{}\t{}\t{}",
            clean(&c.method),
            clean(&c.target),
            clean(body)
        )
        .unwrap();
    }
    path
}

/// The header and token wrk's writes carry on a sandbox of its own: a log-in of its own on
/// Control Room (tokens are the sandbox's), the well-known token elsewhere.
fn token_for(platform: &str, sb: &Sandbox) -> (&'static str, String) {
    match platform {
        "hub" => (
            "authorization",
            format!("Bearer {}", bulkedit::sandbox::HUB_TOKEN),
        ),
        "identity" => (
            "authorization",
            format!("Bearer {}", bulkedit::sandbox::IDENTITY_TOKEN),
        ),
        _ => ("x-authorization", control_room_token(sb)),
    }
}

/// `POST /v1/authentication` by hand: one request, the connection closed after it.
fn control_room_token(sb: &Sandbox) -> String {
    use std::io::Read;
    let body = serde_json::json!({
        "username": bulkedit::sandbox::CR_USERNAME,
        "password": bulkedit::sandbox::CR_PASSWORD,
    })
    .to_string();
    let mut stream = std::net::TcpStream::connect(sb.addr()).unwrap();
    write!(
        stream,
        "POST /v1/authentication HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        sb.addr(),
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let json = answer.split("\r\n\r\n").nth(1).expect("a body");
    let v: serde_json::Value = serde_json::from_str(json).expect("the log-in's JSON");
    v["token"].as_str().expect("a token").to_string()
}

/// wrk sending the prepared writes once each over 32 connections: its writes per second as
/// the sandbox saw them, and its own wall time.
fn run_wrk(sb: &Sandbox, platform: &str, requests: &Path) -> (f64, Duration) {
    let script = data_dir().join("wholejob-writes.lua");
    std::fs::write(&script, SCRIPT).unwrap();
    let started = Instant::now();
    let out = Command::new("wrk")
        .args([
            "-t1",
            "-c",
            &WORKERS.to_string(),
            "-d120s",
            "--timeout",
            "30s",
            "-s",
        ])
        .arg(&script)
        .arg(sb.base_url())
        .arg("--")
        .arg(requests)
        .output()
        .expect("wrk runs");
    let wall = started.elapsed();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("prepared requests answered"),
        "wrk did not finish the writes: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen = sb.requests();
    let writes: Vec<f64> = seen
        .iter()
        .filter(|s| is_write(platform, &s.method, &s.path))
        .inspect(|s| assert!((200..300).contains(&s.status), "wrk's write: {s:?}"))
        .map(|s| s.at.as_secs_f64())
        .collect();
    assert_eq!(writes.len(), EDITS, "{platform}: wrk sent every write once");
    let first = writes.iter().cloned().fold(f64::MAX, f64::min) - LATENCY.as_secs_f64();
    let last = writes.iter().cloned().fold(f64::MIN, f64::max);
    (EDITS as f64 / (last - first), wall)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

pub fn wholejob(platform: &str, runs: usize) {
    let sheet = sheet(platform);
    // A first job, not timed, whose writes wrk sends again.
    let captured = {
        let sb = sandbox();
        sb.capture(true);
        run_job(&sb, platform, &sheet, 0);
        sb.captured()
    };
    let ms = |s: f64| s * 1000.0;
    println!(
        "wholejob, {platform}: {EDITS} edits in a tenant of {USERS} users, {} ms latency, {WORKERS} workers, no rate limit:",
        LATENCY.as_millis()
    );
    let (mut jobs, mut wrks, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for n in 1..=runs {
        let sb = sandbox();
        let job = run_job(&sb, platform, &sheet, n);
        drop(sb);
        let sb = sandbox();
        let requests = wrk_requests(platform, &captured, token_for(platform, &sb));
        let (wrk_rate, wrk_wall) = run_wrk(&sb, platform, &requests);
        drop(sb);
        let rate = EDITS as f64 / job.wall.as_secs_f64();
        let list = job.list.map_or("no list".to_string(), |(a, b)| {
            format!("list {:.0}–{:.0} ms", ms(a), ms(b))
        });
        println!(
            "  run {n}: bulkedit {rate:.0} rows/s ({:.0} ms; first request {:.0} ms, {list}, \
             writes {:.0}–{:.0} ms, exit {:.0} ms; {} requests; {:.2} s CPU); wrk {wrk_rate:.0} \
             writes/s ({:.0} ms of writes, {:.0} ms wall); {:.1}%",
            ms(job.wall.as_secs_f64()),
            ms(job.first_request),
            ms(job.first_write),
            ms(job.last_write),
            ms(job.wall.as_secs_f64()),
            job.requests,
            job.cpu.as_secs_f64(),
            ms(EDITS as f64 / wrk_rate),
            ms(wrk_wall.as_secs_f64()),
            100.0 * rate / wrk_rate
        );
        ratios.push(rate / wrk_rate);
        jobs.push(rate);
        wrks.push(wrk_rate);
    }
    println!(
        "  median of {runs}: bulkedit whole job {:.0} rows/s, wrk {:.0} writes/s: {:.1}% (target: at least 95%)",
        median(jobs),
        median(wrks),
        100.0 * median(ratios)
    );
}
