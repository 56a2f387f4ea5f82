//! `bulkedit apply`: check every row first (nothing is sent for a file with ambiguous users
//! until we know which they are), then hand the valid rows to the engine's worker pool (one
//! rate limiter for all workers), journal each outcome as it arrives, and finish with the
//! report in input order.

use std::io::IsTerminal;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::bounded;
use url::Url;

use crate::check::{self, verdict, KeyCollector};
use crate::engine::pool::{self, Stop, StopReason};
use crate::engine::{Http, HttpSettings, Outcome, Rate, Status};
use crate::error::Error;
use crate::platform::{Connect, Edit, Options, Plan};
use crate::read::{Cells, Row};
use crate::report::journal::{self, Earlier, Journal};
use crate::report::summary::Summary;
use crate::report::{self, ReportRow};
use crate::rules::FieldError;
use crate::sandbox::{Sandbox, SandboxConfig};
use crate::secrets::Secrets;

use super::{read_ahead, Console};

#[derive(Debug, Clone)]
pub struct ApplyArgs {
    pub file: PathBuf,
    pub platform: Option<String>,
    pub sheet: Option<String>,
    pub report: Option<PathBuf>,
    pub options: Options,
    pub url: Option<String>,
    pub sandbox: bool,
    pub dry_run: bool,
    pub resume: bool,
    pub concurrency: usize,
    pub rate: Option<Rate>,
    pub retries: u32,
    /// Stop after this many failed or not-found rows; 0 never stops.
    pub max_errors: u64,
    pub token_file: Option<PathBuf>,
    pub partition: Option<String>,
    pub allow_http: bool,
    pub ca_cert: Option<PathBuf>,
    pub verbose: bool,
    pub timeout: Duration,
}

impl Default for ApplyArgs {
    fn default() -> Self {
        ApplyArgs {
            file: PathBuf::new(),
            platform: None,
            sheet: None,
            report: None,
            options: Options::default(),
            url: None,
            sandbox: false,
            dry_run: false,
            resume: false,
            concurrency: 4,
            rate: None,
            retries: 5,
            max_errors: 100,
            token_file: None,
            partition: None,
            allow_http: false,
            ca_cert: None,
            verbose: false,
            timeout: Duration::from_secs(30),
        }
    }
}

/// `http://` only to loopback unless allowed: a token must not cross a network in clear text.
pub fn check_url(raw: &str, allow_http: bool) -> Result<Url, Error> {
    let url = Url::parse(raw.trim())
        .map_err(|e| Error::url(raw, format!("--url '{raw}' is not a URL: {e}")))?;
    match url.scheme() {
        "https" => {}
        "http" => {
            let loopback = match url.host() {
                Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
                Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
                Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
                None => false,
            };
            if !loopback && !allow_http {
                return Err(Error::url(raw, format!(
                    "--url {url}: http:// sends the token in clear text and is refused except to \
                     loopback; use https:// or, for a Control Room that only speaks http, --allow-http"
                )));
            }
        }
        other => {
            return Err(Error::url(
                raw,
                format!("--url {url}: the scheme must be https (or http), not {other}"),
            ))
        }
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(Error::url(
            raw,
            format!("--url {url}: give the service root, without ? or #"),
        ));
    }
    Ok(url)
}

struct Job {
    line: u64,
    cells: Cells,
    edit: Edit,
}

struct Done {
    line: u64,
    cells: Cells,
    outcome: Outcome,
    errors: Vec<FieldError>,
}

pub fn run(args: &ApplyArgs, console: &Console, interrupted: &AtomicBool) -> Result<i32, Error> {
    let started = Instant::now();
    if args.concurrency == 0 {
        return Err(Error::usage("--concurrency must be at least 1"));
    }
    let input = check::open_input(
        &args.file,
        args.platform.as_deref(),
        args.sheet.as_deref(),
        &args.options,
    )?;
    let platform_name = input.platform.name().to_string();
    for w in input
        .sheet
        .warnings
        .iter()
        .chain(input.layout.warnings.iter())
    {
        console.warn(w);
    }
    let columns = input.columns();
    let report_path = args
        .report
        .clone()
        .unwrap_or_else(|| report::default_path(&args.file));

    // Where and as whom.
    let mut secrets = Secrets::from_env(args.token_file.as_deref())?;
    let sandbox = if args.sandbox {
        if args.url.is_some() {
            return Err(Error::usage("give --url or --sandbox, not both"));
        }
        let sb = Sandbox::start(SandboxConfig::default())
            .map_err(|e| Error::usage(format!("cannot start the sandbox: {e}")))?;
        if secrets.is_empty() {
            secrets = crate::sandbox::default_secrets(&platform_name);
        }
        Some(sb)
    } else {
        None
    };
    crate::crash::hold_secrets(&secrets);
    let url = match (&sandbox, &args.url) {
        (Some(sb), _) => sb.url_for(&platform_name),
        (None, Some(raw)) => check_url(raw, args.allow_http)?,
        (None, None) => {
            return Err(Error::usage(
                "give --url URL (the service root) or --sandbox",
            ))
        }
    };
    let ca_cert = match &args.ca_cert {
        Some(p) => Some(
            std::fs::read(p)
                .map_err(|e| Error::usage(format!("--ca-cert {}: {e}", p.display())))?,
        ),
        None => None,
    };

    // First pass: check every row, so that duplicates are known before anything is sent.
    console.info(&format!(
        "{}: checking rows for {platform_name}, read as {}",
        args.file.display(),
        input.sheet.description
    ));
    let key_field = input.platform.fields()[input.platform.key_fields()[0]].name;
    let mut keys = KeyCollector::default();
    let mut plan = Plan::default();
    let mut total_rows = 0u64;
    for chunk in read_ahead(input.sheet.rows) {
        let chunk = chunk?;
        total_rows += chunk.len() as u64;
        for edit in check::check_chunk(input.platform.as_ref(), &input.layout, &chunk)
            .into_iter()
            .flatten()
        {
            plan.rows += 1;
            if edit.key.field != key_field {
                plan.lookups += 1;
            }
            keys.add(&edit);
        }
    }
    let dups = keys.duplicates(|wanted| {
        check::reread_keys(
            &args.file,
            &platform_name,
            args.sheet.as_deref(),
            &args.options,
            wanted,
        )
    })?;
    let earlier = if args.resume {
        journal::read_earlier(&report_path, &columns).map_err(Error::Usage)?
    } else {
        Earlier::none()
    };
    // Rows naming the same user were valid alone but are not sent.
    plan.rows = plan
        .rows
        .saturating_sub(dups.by_line.len() + earlier.done.len());

    let stop = Stop::new(args.max_errors);
    // With -v there is no progress bar (see `Progress::new`), so lines go straight to stderr.
    let log: Option<crate::engine::http::LogSink> = if args.verbose {
        let secrets = secrets.clone();
        Some(Arc::new(move |line: &str| {
            eprintln!("bulkedit: {}", secrets.redact(line));
        }))
    } else {
        None
    };
    let settings = HttpSettings {
        rate: args
            .rate
            .unwrap_or_else(|| Rate::per_second(input.platform.default_rate())),
        retries: args.retries,
        timeout: args.timeout,
        ca_cert,
        concurrency: args.concurrency,
        ..HttpSettings::default()
    };
    let rate = settings.rate;
    let http = Arc::new(Http::new(settings, log).map_err(Error::Usage)?);

    // Log in and read what the rows need; a refusal here still reports every row.
    let session = if plan.rows == 0 {
        Ok(None)
    } else {
        input
            .platform
            .connect(&Connect {
                url: &url,
                secrets: &secrets,
                partition: args.partition.as_deref().or(secrets.partition.as_deref()),
                http: Arc::clone(&http),
            })
            .and_then(|s| s.prepare(&plan).map(|()| Some(s)))
    };
    let (session, start_failure) = match session {
        Ok(s) => (s, None),
        Err(e) if e.is_refusal() => {
            stop.stop(StopReason::Auth);
            (None, Some(secrets.redact(&e.to_string())))
        }
        Err(e) => return Err(e.redacted(|text| secrets.redact(text))),
    };
    if let Some(m) = &start_failure {
        console.warn(&format!("stopping before the first row: {m}"));
    } else if session.is_some() {
        console.info(&format!(
            "{} {} rows to {url} at {rate} with {} workers{}",
            if args.dry_run { "checking" } else { "sending" },
            plan.rows,
            args.concurrency,
            if args.dry_run {
                " (dry run: nothing is written)"
            } else {
                ""
            }
        ));
    }

    let mut journal = Journal::open(&report_path, &columns, &earlier)
        .map_err(|e| Error::report(&report_path, e))?;
    let journal_path = journal.path.clone();

    let (job_tx, job_rx) = bounded::<Job>(args.concurrency * 4);
    let (done_tx, done_rx) = bounded::<Done>(args.concurrency * 64);
    let progress = Progress::new(
        console,
        total_rows.saturating_sub(earlier.done.len() as u64),
        args.verbose,
    );

    let input2 = check::open_input(
        &args.file,
        Some(&platform_name),
        args.sheet.as_deref(),
        &args.options,
    )?;
    let panic_row = test_panic_row();
    let carry_out = |job: &Job| -> Outcome {
        let Some(session) = session.as_deref() else {
            return Outcome::with_error(
                Status::Skipped,
                stop_message(stop.reason(), start_failure.as_deref()),
            );
        };
        if panic_row == Some(job.line) {
            panic!("test panic holding {}", secrets.values().join(" "));
        }
        let mut outcome = session.apply(&job.edit, args.dry_run);
        outcome.error = secrets.redact(&outcome.error);
        outcome
    };
    let skipped =
        |why| Outcome::with_error(Status::Skipped, stop_message(why, start_failure.as_deref()));
    let finish = |job: Job, outcome| Done {
        line: job.line,
        cells: job.cells,
        outcome,
        errors: Vec::new(),
    };
    let work = pool::Work {
        carry_out: &carry_out,
        skipped: &skipped,
        finish: &finish,
    };
    let summary = std::thread::scope(|scope| -> Result<Summary, Error> {
        // Workers: the pool carries each row out through the platform's session.
        pool::start(scope, args.concurrency, &job_rx, &done_tx, &stop, &work);
        drop(job_rx);

        // The journal writer: every outcome reaches the disk as it arrives (outcomes that
        // arrive together share one write).
        let writer = {
            let progress = &progress;
            let journal = &mut journal;
            scope.spawn(move || -> Result<Summary, std::io::Error> {
                let mut summary = Summary::default();
                for done in done_rx.iter() {
                    journal.record(&ReportRow {
                        line: done.line,
                        outcome: &done.outcome,
                        cells: &done.cells,
                        field_errors: &done.errors,
                    })?;
                    if done_rx.is_empty() {
                        journal.flush()?;
                    }
                    summary.add(&done.outcome, &done.errors);
                    progress.tick(&done.outcome, &summary);
                }
                journal.flush()?;
                Ok(summary)
            })
        };

        // The dispatcher: every row of the file, in order, to a worker or straight to the journal.
        let platform = input2.platform.as_ref();
        let layout = &input2.layout;
        let mut read_error = None;
        'rows: for chunk in read_ahead(input2.sheet.rows) {
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => {
                    read_error = Some(e);
                    break;
                }
            };
            let results = check::check_chunk(platform, layout, &chunk);
            for (row, result) in chunk.into_iter().zip(results) {
                if interrupted.load(Ordering::SeqCst) {
                    stop.stop(StopReason::Interrupted);
                }
                if earlier.done.contains_key(&row.line) {
                    continue;
                }
                let Row { line, cells, .. } = row;
                let (edit, outcome, errors) = verdict(result, dups.get(line), Status::Skipped);
                let done = match edit {
                    Ok(edit) if stop.is_running() => {
                        if job_tx.send(Job { line, cells, edit }).is_err() {
                            break 'rows;
                        }
                        continue;
                    }
                    Ok(_) => Done {
                        line,
                        cells,
                        outcome: Outcome::with_error(
                            Status::Skipped,
                            stop_message(stop.reason(), start_failure.as_deref()),
                        ),
                        errors,
                    },
                    Err(()) => Done {
                        line,
                        cells,
                        outcome,
                        errors,
                    },
                };
                if done_tx.send(done).is_err() {
                    break 'rows;
                }
            }
        }
        drop(job_tx);
        drop(done_tx);
        let summary = writer
            .join()
            .expect("the journal writer does not panic")
            .map_err(|e| Error::report(&journal_path, e))?;
        if let Some(e) = read_error {
            return Err(Error::usage(format!(
                "{e} (the rows before it are in {})",
                journal_path.display()
            )));
        }
        Ok(summary)
    })?;
    progress.finish();
    journal
        .close()
        .map_err(|e| Error::report(&journal_path, e))?;

    // The final report, in input order.
    // The platform and layout of the send pass: the file need not be opened again.
    let field_errors = |line: u64, cells: &Cells| -> Vec<FieldError> {
        if let Some(d) = dups.get(line) {
            return vec![d.clone()];
        }
        let row = Row {
            line,
            cells: cells.clone(),
            bad_cells: Vec::new(),
        };
        check::check_row(input2.platform.as_ref(), &input2.layout, &row)
            .err()
            .unwrap_or_default()
    };
    let wrote_failures = journal::finalize(&journal_path, &report_path, &columns, &field_errors)
        .map_err(|e| Error::report(&report_path, e))?;

    // Earlier runs' finished rows count in the summary too.
    let mut summary = summary;
    for o in earlier.done.values() {
        summary.add(o, &[]);
    }
    let failures = report::failures_path(&report_path);
    console.summary(&summary.render(
        started.elapsed(),
        Some(http.requests_sent()),
        &report_path,
        wrote_failures.then_some(failures.as_path()),
    ));
    drop(sandbox);
    Ok(match stop.reason() {
        StopReason::Interrupted => 130,
        why @ (StopReason::MaxErrors | StopReason::Auth) => {
            console.warn(&stop_message(why, start_failure.as_deref()));
            3
        }
        _ if summary.any_problem() => 1,
        _ => 0,
    })
}

fn stop_message(reason: StopReason, start_failure: Option<&str>) -> String {
    match (reason, start_failure) {
        (_, Some(m)) => format!("not sent: the run stopped before the first row: {m}"),
        (StopReason::Interrupted, _) => "not sent: the run was interrupted".into(),
        (StopReason::MaxErrors, _) => {
            "not sent: the run stopped after --max-errors failed rows".into()
        }
        (StopReason::Auth, _) => {
            "not sent: the run stopped because the server refused the credentials".into()
        }
        (StopReason::Running, _) => "not sent".into(),
    }
}

/// A progress bar when a person watches stderr, a plain line every ten seconds otherwise.
struct Progress<'c> {
    console: &'c Console,
    bar: Option<indicatif::ProgressBar>,
    started: Instant,
    last_line: std::sync::Mutex<Instant>,
    total: u64,
}

impl<'c> Progress<'c> {
    fn new(console: &'c Console, total: u64, verbose: bool) -> Self {
        let bar = (!console.quiet && !verbose && std::io::stderr().is_terminal()).then(|| {
            let bar = indicatif::ProgressBar::new(total);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{bar:30} {pos}/{len} rows  {per_sec}  ETA {eta}  {msg}",
                )
                .expect("the template is valid"),
            );
            bar
        });
        console.set_bar(bar.clone());
        Progress {
            console,
            bar,
            started: Instant::now(),
            last_line: std::sync::Mutex::new(Instant::now()),
            total,
        }
    }

    fn tick(&self, _outcome: &Outcome, summary: &Summary) {
        let ok = summary.count(Status::Updated)
            + summary.count(Status::Unchanged)
            + summary.count(Status::WouldUpdate);
        let bad = summary.count(Status::Failed)
            + summary.count(Status::NotFound)
            + summary.count(Status::Invalid);
        match &self.bar {
            Some(bar) => {
                bar.inc(1);
                bar.set_message(format!("ok {ok}  failed {bad}"));
            }
            None if !self.console.quiet => {
                let mut last = self.last_line.lock().unwrap_or_else(|e| e.into_inner());
                if last.elapsed() >= Duration::from_secs(10) {
                    *last = Instant::now();
                    let done = summary.total();
                    let rate = done as f64 / self.started.elapsed().as_secs_f64().max(1e-9);
                    self.console.info(&format!(
                        "{done}/{} rows, {rate:.1} rows/s, {ok} ok, {bad} failed",
                        self.total
                    ));
                }
            }
            None => {}
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        self.console.set_bar(None);
    }
}

/// A test hook: `BULKEDIT_TEST_PANIC_ROW=N` makes the worker that carries out row N panic with
/// every credential in the message, as a bug that formatted them would. The tests prove the
/// row is reported and no credential is shown.
fn test_panic_row() -> Option<u64> {
    std::env::var("BULKEDIT_TEST_PANIC_ROW")
        .ok()
        .and_then(|v| v.parse().ok())
}
