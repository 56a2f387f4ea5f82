//! End-to-end figures, each measured as a ratio within one run on this machine:
//!
//! - `validate`: a generated one-million-row hub CSV through `bulkedit validate`, beside the raw
//!   `csv` crate's parse of the same file; peak memory of the process.
//! - `xlsx`: a 100,000-row workbook through `bulkedit validate`, beside calamine's own read.
//! - `sandbox`: simple requests per second the sandbox serves on loopback (wrk when installed,
//!   else a keep-alive client of our own).
//! - `apply`: rows per second against the sandbox with 20 ms latency and 32 workers, beside the
//!   physical limit `min(rate, concurrency / latency)`; and with no latency and no limit; client
//!   CPU per row; requests per row, as the sandbox counted them.
//! - `fresh`: what never writing from a stale copy costs on a platform without a version check
//!   (hub): requests per row and rows per second at 20 ms latency, with copies from the list
//!   never read again (as before), read again past the default window, and always read again.
//!
//! - `wholejob` (only when named, see `wholejob/mod.rs`): a whole `apply` job of 3,000 edits
//!   in a 20,000-user tenant at 20 ms latency with 32 workers, beside wrk sending the same
//!   writes; `-- wholejob hub` for one platform, `--runs N` alternations.
//! - `apply-1m` (only when named, it takes minutes): one million rows through `apply`, the
//!   client's peak memory.
//!
//! `cargo bench --bench throughput` runs the first four; name some to run only those:
//! `cargo bench --bench throughput -- validate xlsx`.

// The same allocator as the binary.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bulkedit::sandbox::{Faults, Sandbox, SandboxConfig};

const BIN: &str = env!("CARGO_BIN_EXE_bulkedit");

fn data_dir() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-data");
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[path = "../tests/common/peak.rs"]
mod peak;

mod wholejob;

/// What a finished child used: wall time, CPU time and peak resident memory.
struct Usage {
    wall: Duration,
    cpu: Duration,
    peak_rss_mb: f64,
    code: i32,
}

fn run_measured(cmd: &mut Command) -> Usage {
    let started = Instant::now();
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let used = peak::wait_with_peak(child);
    Usage {
        wall: started.elapsed(),
        cpu: used.cpu,
        peak_rss_mb: used.peak_mb,
        code: used.code,
    }
}

fn best_of<T>(n: usize, mut f: impl FnMut() -> (Duration, T)) -> (Duration, T) {
    let mut best: Option<(Duration, T)> = None;
    for _ in 0..n {
        let (d, t) = f();
        if best.as_ref().is_none_or(|(b, _)| d < *b) {
            best = Some((d, t));
        }
    }
    best.unwrap()
}

fn hub_csv(rows: usize) -> PathBuf {
    let path = data_dir().join(format!("hub-{rows}.csv"));
    if !path.exists() {
        let mut w = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        writeln!(w, "user_email,user_first_name,user_last_name,user_job_title,user_business_unit,user_department,user_location,user_is_active,user_invite_status,user_roles").unwrap();
        for i in 1..=rows {
            writeln!(
                w,
                "user{i:07}@example.com,First{i},Last{i},Automation Analyst,Finance,Accounts Payable,\"Brooklyn, NY\",1,3,8; 6:2"
            )
            .unwrap();
        }
    }
    path
}

fn raw_csv_parse(path: &Path) -> (Duration, u64) {
    let started = Instant::now();
    let mut r = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_path(path)
        .unwrap();
    let mut rec = csv::ByteRecord::new();
    let mut n = 0u64;
    while r.read_byte_record(&mut rec).unwrap() {
        n += 1;
    }
    (started.elapsed(), n)
}

/// What writing a report as large as `path` costs by itself, as validate writes one: into a
/// temporary file, `fsync`, renamed over the last one. The floor under validate's time that no
/// parsing or checking makes lower.
fn durable_copy(path: &Path, dest: &Path) -> (Duration, ()) {
    let started = Instant::now();
    let tmp = dest.with_extension("tmp");
    std::fs::copy(path, &tmp).unwrap();
    std::fs::File::open(&tmp).unwrap().sync_all().unwrap();
    std::fs::rename(&tmp, dest).unwrap();
    (started.elapsed(), ())
}

/// `bulkedit validate` of `path`, the fastest of three runs. `replacing`: each run replaces the
/// report the one before it wrote, as a re-run does; otherwise none is there (a first run).
/// On this machine's disk, freeing the old report's blocks in the rename takes 0.08-0.1 s.
fn validate_best_of_3(path: &Path, report: &Path, replacing: bool) -> Usage {
    best_of(3, || {
        if !replacing {
            let _ = std::fs::remove_file(report);
            let _ = std::fs::remove_file(bulkedit::report::failures_path(report));
            // The old report's blocks freed now, not in the timed run.
            let _ = Command::new("sync").status();
        }
        let u = run_measured(
            Command::new(BIN)
                .arg("validate")
                .arg(path)
                .arg("--report")
                .arg(report),
        );
        assert_eq!(u.code, 0);
        (u.wall, u)
    })
    .1
}

fn validate_1m() {
    let rows = 1_000_000;
    let path = hub_csv(rows);
    let report = data_dir().join("hub-1m-report.csv");
    let (raw, n) = best_of(3, || raw_csv_parse(&path));
    assert_eq!(n as usize, rows);
    let usage = validate_best_of_3(&path, &report, true);
    let first = validate_best_of_3(&path, &report, false);
    let (copy, ()) = best_of(3, || {
        durable_copy(&path, &data_dir().join("hub-1m-copy.csv"))
    });
    let mb = std::fs::metadata(&path).unwrap().len() as f64 / 1e6;
    println!("validate, {rows} hub rows ({mb:.0} MB CSV):");
    println!(
        "  raw csv crate parse      {:>8.0} rows/s  ({:.2} s)",
        rows as f64 / raw.as_secs_f64(),
        raw.as_secs_f64()
    );
    println!(
        "  bulkedit validate        {:>8.0} rows/s  ({:.2} s, report written, {:.2} s CPU)",
        rows as f64 / usage.wall.as_secs_f64(),
        usage.wall.as_secs_f64(),
        usage.cpu.as_secs_f64()
    );
    println!(
        "  ratio validate/raw parse {:>8.2}x   (target: at most 2x)",
        usage.wall.as_secs_f64() / raw.as_secs_f64()
    );
    println!(
        "  the same with no report to replace: {:.2} s, {:.2} s CPU, {:.2}x the raw parse",
        first.wall.as_secs_f64(),
        first.cpu.as_secs_f64(),
        first.wall.as_secs_f64() / raw.as_secs_f64()
    );
    println!(
        "  the input copied, fsynced and renamed over the last copy: {:.2} s ({:.2}x the raw parse)",
        copy.as_secs_f64(),
        copy.as_secs_f64() / raw.as_secs_f64()
    );
    println!(
        "  peak memory              {:>8.1} MB  (target: under 64 MB)",
        usage.peak_rss_mb
    );
}

fn xlsx_100k() {
    let rows = 100_000u32;
    let path = data_dir().join("hub-100k.xlsx");
    if !path.exists() {
        let mut wb = rust_xlsxwriter::Workbook::new();
        let ws = wb.add_worksheet();
        let headers = [
            "user_email",
            "user_first_name",
            "user_last_name",
            "user_department",
            "user_is_active",
            "user_invite_status",
            "user_roles",
        ];
        for (c, h) in headers.iter().enumerate() {
            ws.write_string(0, c as u16, *h).unwrap();
        }
        for i in 1..=rows {
            ws.write_string(i, 0, format!("user{i:07}@example.com"))
                .unwrap();
            ws.write_string(i, 1, format!("First{i}")).unwrap();
            ws.write_string(i, 2, format!("Last{i}")).unwrap();
            ws.write_string(i, 3, "Accounts Payable").unwrap();
            ws.write_number(i, 4, 1.0).unwrap();
            ws.write_number(i, 5, 3.0).unwrap();
            ws.write_string(i, 6, "8; 6:2").unwrap();
        }
        wb.save(&path).unwrap();
    }
    let (calamine, cells) = best_of(3, || {
        use calamine::Reader;
        let started = Instant::now();
        let mut wb = calamine::open_workbook_auto(&path).unwrap();
        let name = wb.sheet_names()[0].clone();
        let range = wb.worksheet_range(&name).unwrap();
        let cells = range.rows().map(|r| r.len()).sum::<usize>();
        (started.elapsed(), cells)
    });
    assert!(cells > 0);
    let report = data_dir().join("hub-100k-report.csv");
    let usage = validate_best_of_3(&path, &report, true);
    println!("xlsx, {rows} hub rows:");
    println!("  calamine's own read      {:.2} s", calamine.as_secs_f64());
    println!(
        "  bulkedit validate        {:.2} s  (report written, peak {:.0} MB)",
        usage.wall.as_secs_f64(),
        usage.peak_rss_mb
    );
    println!(
        "  ratio                    {:.2}x   (target: at most 1.5x)",
        usage.wall.as_secs_f64() / calamine.as_secs_f64()
    );
}

/// A keep-alive HTTP/1.1 client: one connection per thread, one request at a time.
fn load(addr: std::net::SocketAddr, path: &str, threads: usize, seconds: f64) -> f64 {
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer sandbox-cloud-token\r\n\r\n"
    );
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let request = request.clone();
            std::thread::spawn(move || {
                let stream = TcpStream::connect(addr).unwrap();
                stream.set_nodelay(true).unwrap();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut writer = stream;
                let mut n = 0u64;
                let mut line = String::new();
                while Instant::now() < deadline {
                    writer.write_all(request.as_bytes()).unwrap();
                    let mut length = 0usize;
                    loop {
                        line.clear();
                        reader.read_line(&mut line).unwrap();
                        if line == "\r\n" {
                            break;
                        }
                        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                            length = v.trim().parse().unwrap();
                        }
                    }
                    let mut body = vec![0u8; length];
                    reader.read_exact(&mut body).unwrap();
                    n += 1;
                }
                n
            })
        })
        .collect();
    let total: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    total as f64 / seconds
}

fn sandbox_rps() {
    let sb = Sandbox::start(SandboxConfig::default()).unwrap();
    let path = "/sandbox-org/sandbox-tenant/automationhub_/api/v1/openapi/roles";
    let url = format!("{}{path}", sb.base_url());
    println!("sandbox, GET {path} on loopback:");
    let wrk = Command::new("wrk")
        .args([
            "-t2",
            "-c32",
            "-d5s",
            "-H",
            "Authorization: Bearer sandbox-cloud-token",
            &url,
        ])
        .output();
    match wrk {
        Ok(out) if out.status.success() => {
            let text = String::from_utf8_lossy(&out.stdout);
            let rps = text
                .lines()
                .find(|l| l.starts_with("Requests/sec"))
                .unwrap_or("Requests/sec: ?");
            println!(
                "  wrk -t2 -c32 -d5s        {}  (target: at least 20,000)",
                rps.trim_start_matches("Requests/sec:").trim()
            );
        }
        _ => println!("  (wrk not installed: apt-get install wrk)"),
    }
    let rps = load(sb.addr(), path, 8, 5.0);
    println!("  in-process client, 8 keep-alive connections  {rps:.0} requests/s  (target: at least 20,000)");
}

fn csv_rows(dir: &Path, rows: usize) -> PathBuf {
    let path = dir.join(format!("cr-{rows}.csv"));
    let mut w = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    writeln!(w, "id,description").unwrap();
    for i in 1..=rows {
        writeln!(w, "{i},Bench run note {i}").unwrap();
    }
    path
}

/// `bulkedit apply` of a Control Room sheet against the sandbox, with no rate limit.
fn apply_command(sb: &Sandbox, input: &Path, concurrency: usize, report: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.arg("apply")
        .arg(input)
        .args([
            "--url",
            sb.url_for("control-room").as_str(),
            "--rate",
            "unlimited",
            "--quiet",
        ])
        .args(["--concurrency", &concurrency.to_string(), "--report"])
        .arg(report)
        .env("BULKEDIT_USERNAME", "sandbox")
        .env("BULKEDIT_PASSWORD", "sandbox-password");
    cmd
}

fn latency_sandbox(latency_ms: u64, users: usize) -> Sandbox {
    Sandbox::start(SandboxConfig {
        users,
        faults: Faults {
            latency: Duration::from_millis(latency_ms),
            ..Faults::default()
        },
        ..SandboxConfig::default()
    })
    .unwrap()
}

/// Rows per second while sending, as the server saw it: the first write to the last.
fn sending_rate(writes: &[f64]) -> f64 {
    (writes.len() - 1) as f64 / (writes[writes.len() - 1] - writes[0])
}

fn apply_run(latency_ms: u64, concurrency: usize, rows: usize) {
    let sb = latency_sandbox(latency_ms, rows);
    let dir = data_dir();
    let input = csv_rows(&dir, rows);
    let usage = run_measured(&mut apply_command(
        &sb,
        &input,
        concurrency,
        &dir.join("apply-report.csv"),
    ));
    assert_eq!(usage.code, 0);
    let requests = sb.requests();
    let puts: Vec<f64> = requests
        .iter()
        .filter(|r| r.method == "PUT")
        .map(|r| r.at.as_secs_f64())
        .collect();
    assert_eq!(puts.len(), rows);
    let sending = sending_rate(&puts);
    let overall = rows as f64 / usage.wall.as_secs_f64();
    let label = if latency_ms == 0 {
        "no latency".to_string()
    } else {
        format!("{latency_ms} ms latency")
    };
    println!("apply, {rows} control-room rows, {label}, {concurrency} workers, no rate limit:");
    if latency_ms > 0 {
        let limit = concurrency as f64 / (latency_ms as f64 / 1000.0);
        println!(
            "  sending {sending:.0} rows/s of a physical limit of {limit:.0} ({:.1}%; target: at least 95%)",
            100.0 * sending / limit
        );
    } else {
        println!("  sending {sending:.0} rows/s (target: at least 5,000)");
    }
    println!(
        "  whole run {overall:.0} rows/s ({:.2} s, login, list and report included); client CPU {:.0} µs per row; peak {:.0} MB; {:.3} requests per row",
        usage.wall.as_secs_f64(),
        usage.cpu.as_secs_f64() * 1e6 / rows as f64,
        usage.peak_rss_mb,
        requests.len() as f64 / rows as f64
    );
}

/// Hub rows at 20 ms latency, 32 workers: what reading a stale copy again before writing a
/// whole record costs, for each freshness window (`None`: the default).
fn fresh_run(rows: usize, window_ms: Option<u64>) {
    let sb = latency_sandbox(20, rows);
    let dir = data_dir();
    let input = dir.join(format!("hub-titles-{rows}.csv"));
    let mut w = std::io::BufWriter::new(std::fs::File::create(&input).unwrap());
    writeln!(w, "user_email,user_job_title").unwrap();
    for i in 1..=rows {
        writeln!(w, "user{i:05}@example.com,Bench title {i}").unwrap();
    }
    drop(w);
    let mut cmd = Command::new(BIN);
    cmd.arg("apply")
        .arg(&input)
        .args(["--url", sb.url_for("hub").as_str(), "--rate", "unlimited"])
        .args(["--quiet", "--concurrency", "32", "--report"])
        .arg(dir.join("fresh-report.csv"))
        .env("BULKEDIT_TOKEN", bulkedit::sandbox::HUB_TOKEN);
    if let Some(ms) = window_ms {
        cmd.env("BULKEDIT_TEST_FRESH_MS", ms.to_string());
    }
    let usage = run_measured(&mut cmd);
    assert_eq!(usage.code, 0);
    let requests = sb.requests();
    let writes: Vec<f64> = requests
        .iter()
        .filter(|r| r.path.ends_with("/edituser"))
        .map(|r| r.at.as_secs_f64())
        .collect();
    assert_eq!(writes.len(), rows);
    let window = match window_ms {
        None => "the default window".to_string(),
        Some(0) => "always read again".to_string(),
        Some(ms) if ms >= 3_600_000 => "never read again (before)".to_string(),
        Some(ms) => format!("a {ms} ms window"),
    };
    println!(
        "  {window:<28} {:.3} requests per row; sending {:.0} rows/s; whole run {:.0} rows/s ({:.2} s)",
        requests.len() as f64 / rows as f64,
        sending_rate(&writes),
        rows as f64 / usage.wall.as_secs_f64(),
        usage.wall.as_secs_f64()
    );
}

/// One million rows through `apply`: past the 100,000-user cache the client reads each user,
/// so this is two million requests; what matters is that the client's memory stays flat.
fn apply_1m() {
    let rows = 1_000_000;
    let sb = Sandbox::start(SandboxConfig {
        users: rows,
        ..SandboxConfig::default()
    })
    .unwrap();
    let dir = data_dir();
    let input = csv_rows(&dir, rows);
    let usage = run_measured(&mut apply_command(
        &sb,
        &input,
        16,
        &dir.join("apply-1m-report.csv"),
    ));
    assert_eq!(usage.code, 0);
    println!("apply, {rows} control-room rows against a sandbox of {rows} users:");
    println!(
        "  {:.0} rows/s ({:.0} s); client CPU {:.0} µs per row; client peak memory {:.0} MB",
        rows as f64 / usage.wall.as_secs_f64(),
        usage.wall.as_secs_f64(),
        usage.cpu.as_secs_f64() * 1e6 / rows as f64,
        usage.peak_rss_mb
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runs: usize = args
        .iter()
        .position(|a| a == "--runs")
        .and_then(|i| args.get(i + 1))
        .map(|n| n.parse().expect("--runs takes a number"))
        .unwrap_or(3);
    let wanted: Vec<String> = args
        .iter()
        .enumerate()
        .filter(|(i, a)| !a.starts_with('-') && (*i == 0 || args[i - 1] != "--runs"))
        .map(|(_, a)| a.clone())
        .filter(|a| !wholejob::PLATFORMS.contains(&a.as_str()))
        .collect();
    let platforms: Vec<&str> = wholejob::PLATFORMS
        .into_iter()
        .filter(|p| args.iter().any(|a| a == p))
        .collect();
    if wanted.iter().any(|w| w == "wholejob") {
        wholejob::wrk_or_exit();
        let all = platforms.is_empty();
        for p in wholejob::PLATFORMS {
            if all || platforms.contains(&p) {
                wholejob::wholejob(p, runs);
            }
        }
    }
    let run = |name: &str| wanted.is_empty() || wanted.iter().any(|w| w == name);
    if run("validate") {
        validate_1m();
    }
    if run("xlsx") {
        xlsx_100k();
    }
    if run("sandbox") {
        sandbox_rps();
    }
    if run("apply") {
        apply_run(20, 32, 8000);
        apply_run(0, 8, 30_000);
    }
    if run("fresh") {
        println!("fresh: 8000 hub rows (a whole record written per row), 20 ms latency, 32 workers, no rate limit:");
        for window in [Some(3_600_000), None, Some(0)] {
            fresh_run(8000, window);
        }
    }
    // Minutes long: only when named.
    if wanted.iter().any(|w| w == "apply-1m") {
        apply_1m();
    }
}
