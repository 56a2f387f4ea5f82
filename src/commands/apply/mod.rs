//! `bulkedit apply`, in three phases: prepare (open and check every row, so that nothing is
//! sent for a user named twice; where to send, as whom, what an earlier run did; log in),
//! send (the engine's worker pool with one rate limiter, each outcome journaled as it
//! arrives), and finish (the report in input order, the summary, the exit code).

mod facts;
mod losses;
pub(crate) mod prepare;
mod progress;
mod send;
mod undo;

use std::io::{BufRead, IsTerminal, Write};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use url::Url;

use crate::engine::pool::{Stop, StopReason};
use crate::error::Error;
use crate::platform::Options;
use crate::report::guard;
use crate::report::journal::{self, Journal, Sending};
use crate::report::{self};

use super::{Connection, Console};
use facts::Facts;
use prepare::{Connected, Survey, Target};
pub(crate) use progress::rate_key;
use progress::Progress;
use send::{Run, Sent};
use undo::UndoFile;

#[derive(Debug, Clone)]
pub struct ApplyArgs {
    pub file: PathBuf,
    pub platform: Option<String>,
    pub sheet: Option<String>,
    pub report: Option<PathBuf>,
    pub options: Options,
    pub dry_run: bool,
    pub resume: bool,
    /// Create the user of a row whose user does not exist.
    pub create: bool,
    /// The file is the roster: deactivate the active users not in it.
    pub deactivate_missing: bool,
    /// More deactivations than this stop the run before anything is sent.
    pub max_deactivate: usize,
    /// Patterns (`*` wildcards) of users never deactivated.
    pub keep: Vec<String>,
    /// Do not ask before a real run.
    pub yes: bool,
    /// Stop after this many failed or not-found rows; 0 never stops.
    pub max_errors: u64,
    /// Where to write the run's facts as JSON, whatever the outcome.
    pub summary_json: Option<PathBuf>,
    pub connection: Connection,
}

impl Default for ApplyArgs {
    fn default() -> Self {
        ApplyArgs {
            file: PathBuf::new(),
            platform: None,
            sheet: None,
            report: None,
            options: Options::default(),
            dry_run: false,
            resume: false,
            create: false,
            deactivate_missing: false,
            max_deactivate: 10,
            keep: Vec::new(),
            yes: false,
            max_errors: 100,
            summary_json: None,
            connection: Connection::default(),
        }
    }
}

/// `http://` only to loopback unless allowed: a token must not cross a network in clear text.
pub fn check_url(raw: &str, allow_http: bool) -> Result<Url, Error> {
    let mut url = Url::parse(raw.trim())
        .map_err(|e| Error::url(raw, format!("--url '{raw}' is not a URL: {e}")))?;
    if !url.username().is_empty() || url.password().is_some() {
        // Shown without them: the message must not repeat a password.
        let _ = url.set_username("");
        let _ = url.set_password(None);
        return Err(Error::url(
            &url,
            format!(
                "--url {url}: the URL holds a user name or password; credentials come from the \
                 environment or --token-file, never from the command line (other users can read \
                 a process's arguments)"
            ),
        ));
    }
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

/// Runs `apply` and returns the exit code.
pub fn run(
    args: &ApplyArgs,
    console: &Console,
    interrupted: &Arc<AtomicBool>,
) -> Result<i32, Error> {
    let started_at = std::time::SystemTime::now();
    let started = Instant::now();
    let mut facts = Facts::default();
    let result = run_facts(
        args,
        console,
        interrupted,
        &mut facts,
        (started_at, started),
    );
    if let Some(path) = &args.summary_json {
        let code = match &result {
            Ok(code) => *code,
            Err(e) => e.exit_code(),
        };
        let doc = facts.to_json(
            args.dry_run,
            code,
            result.as_ref().err(),
            started_at,
            started.elapsed(),
        );
        if let Err(e) = facts::write(path, &doc) {
            console.warn(&e.to_string());
        }
    }
    result
}

fn run_facts(
    args: &ApplyArgs,
    console: &Console,
    interrupted: &Arc<AtomicBool>,
    facts: &mut Facts,
    started: (SystemTime, Instant),
) -> Result<i32, Error> {
    let input = prepare::open(args, console)?;
    facts.platform = Some(input.platform.name().to_string());
    let target = prepare::target(args, console, input.platform.name())?;
    facts.target = Some(target.name());
    let (survey, http) = prepare::survey_and_client(args, console, input, &target, interrupted)?;
    let stop = Stop::new(args.max_errors);
    let connected = prepare::connect(args, &survey, &target, http)?;
    announce(args, console, &survey, &target, &connected);
    confirm(args, console, &survey, &target, &connected)?;

    let report_path = &survey.report_path;
    if !args.resume {
        if let Some(kept) = guard::keep_earlier(report_path)? {
            console.info(&format!(
                "the earlier report records writes to a server: kept it as {}",
                kept.display()
            ));
        }
        survey.record.save(report_path)?;
    }
    let mut journal = Journal::open(report_path, &survey.columns, &survey.earlier)
        .map_err(|e| Error::report(report_path, e))?;
    let sending = Sending::open(report_path, &survey.columns, args.resume)
        .map_err(|e| Error::report(report_path, e))?;
    // The users missing from the roster are reported after the rows.
    let lines = survey.total_rows + connected.missing.users.len() as u64;
    let progress = Progress::new(console, lines, args.connection.verbose);
    let run = Run {
        args,
        sending: &sending,
        survey: &survey,
        target: &target,
        connected: &connected,
        stop: &stop,
        interrupted,
    };
    let sent = send::send(&run, &mut journal, &progress)?;
    progress.finish();
    let code = finish(
        args, console, &survey, &connected, &stop, journal, sent, started, facts,
    )?;
    // Every outcome is in the report now: the notes of writes on the wire are not needed.
    sending.remove();
    // The run is over: the user list and every worker's connections are let go on a thread
    // of their own, which the process does not wait for when it ends.
    std::thread::spawn(move || drop(connected));
    Ok(code)
}

/// Says what the run is about to do, or why it stops before the first row.
fn announce(
    args: &ApplyArgs,
    console: &Console,
    survey: &Survey,
    target: &Target,
    connected: &Connected,
) {
    if args.deactivate_missing {
        let n = connected.missing.to_deactivate();
        let listed = if survey.is_plan {
            "the plan lists"
        } else {
            "not in the roster"
        };
        console.info(&format!(
            "{} {listed} {}",
            report::summary::counted(n as u64, "active user"),
            if args.dry_run {
                "would be deactivated"
            } else {
                "will be deactivated"
            }
        ));
        let moved = connected.missing.users.len() - n;
        if moved > 0 {
            console.warn(&format!(
                "{} moved since the plan (deactivated by someone else, gone, or missing now \
                 but not in the plan): not deactivated, reported drifted",
                report::summary::counted(moved as u64, "user")
            ));
        }
        if !connected.missing.caller_known {
            console.warn(
                "the credentials do not say which user this run authenticates as: if it is a \
                 user of this platform, protect it with --keep",
            );
        }
        if args.dry_run && n > args.max_deactivate {
            console.warn(&format!(
                "a real run would stop before sending anything: {n} deactivations are more \
                 than --max-deactivate {} allows",
                args.max_deactivate
            ));
        }
    }
    if let Some(note) = connected.session.as_ref().and_then(|s| s.note()) {
        console.warn(note);
    }
    if connected.session.is_some() {
        console.info(&format!(
            "{} {} to {} at {} with {}{}",
            if args.dry_run { "checking" } else { "sending" },
            report::summary::counted(survey.plan.rows as u64, "row"),
            target.url,
            connected.rate,
            report::summary::counted(args.connection.concurrency as u64, "worker"),
            if args.dry_run {
                " (dry run: nothing is written)"
            } else {
                ""
            }
        ));
    }
}

/// Before a real run (not a dry run, not the sandbox): what the platform does when users
/// change, and, when a person started it at a terminal, what the run is about to do and a yes
/// before anything is sent. `--yes` skips the question; without a terminal there is none.
fn confirm(
    args: &ApplyArgs,
    console: &Console,
    survey: &Survey,
    target: &Target,
    connected: &Connected,
) -> Result<(), Error> {
    if args.dry_run || target._sandbox.is_some() || connected.session.is_none() {
        return Ok(());
    }
    let caution = survey.platform.caution();
    let asking = !args.yes && std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
    if !asking {
        if let Some(c) = caution {
            console.warn(c);
        }
        return Ok(());
    }
    let url = &target.url;
    let mut text = format!(
        "About to change {} at {}{}:\n  {} in the file, each written only where it differs \
         from the server",
        survey.platform.name(),
        url.host_str().unwrap_or(""),
        url.path().trim_end_matches('/'),
        users(survey.plan.rows as u64),
    );
    if args.create {
        text.push_str(", creating those that do not exist");
    }
    if args.deactivate_missing {
        text.push_str(&format!(
            "\n  {} not in the file to deactivate",
            users(connected.missing.to_deactivate() as u64)
        ));
    }
    if let Some(c) = caution {
        text.push_str(&format!("\n  note: {c}"));
    }
    text.push_str("\nType yes to go on: ");
    let mut stderr = std::io::stderr().lock();
    let _ = stderr.write_all(text.as_bytes());
    let _ = stderr.flush();
    drop(stderr);
    let mut answer = String::new();
    let _ = std::io::stdin().lock().read_line(&mut answer);
    match answer.trim().to_lowercase().as_str() {
        "y" | "yes" => Ok(()),
        _ => Err(Error::usage("not confirmed: nothing was sent")),
    }
}

/// `1 user`, `2 users`.
fn users(n: u64) -> String {
    format!("{n} user{}", if n == 1 { "" } else { "s" })
}

/// The final report in input order, the undo file, the summary, and the exit code.
#[allow(clippy::too_many_arguments)]
fn finish(
    args: &ApplyArgs,
    console: &Console,
    survey: &Survey,
    connected: &Connected,
    stop: &Stop,
    journal: Journal,
    sent: Sent,
    (started_at, started): (SystemTime, Instant),
    facts: &mut Facts,
) -> Result<i32, Error> {
    let journal_path = journal.path.clone();
    let from = journal.start;
    journal
        .close()
        .map_err(|e| Error::report(&journal_path, e))?;
    let report_path = &survey.report_path;
    let mut undo = UndoFile::new(survey.platform.as_ref(), &survey.layout);
    let mut losses = losses::Losses::new(survey.platform.as_ref());
    let finalized = journal::finalize(
        &journal_path,
        from,
        report_path,
        &survey.columns,
        &sent.field_errors,
        |outcome, cells| {
            losses.add(outcome);
            if !args.dry_run {
                undo.add(outcome, cells);
            }
        },
    )
    .map_err(|e| Error::report(report_path, e))?;
    let summary = sent.summary;
    let code = match stop.reason() {
        StopReason::Interrupted => 130,
        StopReason::MaxErrors | StopReason::Auth | StopReason::ServerPause => 3,
        _ if summary.any_problem() => 1,
        _ => 0,
    };
    let undo_path = report::undo_path(report_path);
    // Spelled as the report is, so that it opens as the input did; with a BOM whatever the
    // input was, since its cells are the server's values, which may hold any character.
    let undo_csv = (!report::is_xlsx(report_path)).then_some(report::CsvDialect {
        bom: true,
        ..survey.columns.csv
    });
    facts.summary = Some(summary.clone());
    facts.requests = Some(connected.http.requests_sent());
    let about = facts.for_workbook(
        &args.file,
        args.dry_run,
        code,
        started_at,
        started.elapsed(),
        (!undo.is_empty()).then(|| undo_path.clone()),
    );
    let wrote_failures = finalized
        .finish(Some(about))
        .map_err(|e| Error::report(report_path, e))?;
    // The report is whole by now: an undo file that cannot be written is said, not fatal.
    let undone = match undo.write(&undo_path, undo_csv) {
        Ok(written) => written,
        Err(e) => {
            console.warn(&format!(
                "{e}: the run's changes are in the report's changes column"
            ));
            None
        }
    };
    let resumed = sent.resumed;
    if resumed.carried + resumed.sent_again > 0 {
        console.info(&format!(
            "resumed: {} finished earlier and not sent again; {} changed since and sent again",
            rows(resumed.carried),
            rows(resumed.sent_again)
        ));
    }
    let failures = report::failures_path(report_path);
    facts.report = Some(report_path.clone());
    facts.failures = wrote_failures.then(|| failures.clone());
    facts.undo = undone
        .as_ref()
        .filter(|w| w.rows > 0)
        .map(|_| undo_path.clone());
    // A plan's rows fed back through its failures file would no longer be checked against
    // what the dry run saw (the file is a sheet, not a plan).
    let failures_are = if survey.is_plan {
        "to look into: a plan's rows are finished with --resume, or planned again with a dry run"
    } else {
        report::summary::FIX_AND_RUN_AGAIN
    };
    let mut text = summary.render(
        started.elapsed(),
        Some(connected.http.requests_sent()),
        report_path,
        wrote_failures.then_some((failures.as_path(), failures_are)),
    );
    if let Some(written) = &undone {
        text.push_str(&undo::describe(written, &undo_path));
    }
    if let Some(lost) = losses.warning(args.dry_run) {
        console.warn(&lost);
    }
    console.summary(&text);
    if let why @ (StopReason::MaxErrors | StopReason::Auth | StopReason::ServerPause) =
        stop.reason()
    {
        console.warn(&stop_message(why));
    }
    match stop.reason() {
        StopReason::Running => {}
        StopReason::Interrupted => console.info(FINISH_WITH_RESUME),
        _ => console.info(&format!("once that is seen to, {FINISH_WITH_RESUME}")),
    }
    Ok(code)
}

/// What a run stopped before its last row says of the way to finish it.
const FINISH_WITH_RESUME: &str = "to finish the run, give the same command with --resume: the \
     rows already done are not sent again";

/// `1 row`, `2 rows`.
fn rows(n: u64) -> String {
    format!("{n} row{}", if n == 1 { "" } else { "s" })
}

fn stop_message(reason: StopReason) -> String {
    match reason {
        StopReason::Interrupted => "not sent: the run was interrupted".into(),
        StopReason::MaxErrors => "not sent: the run stopped after --max-errors failed rows".into(),
        StopReason::Auth => {
            "not sent: the run stopped because the server refused the credentials".into()
        }
        StopReason::ServerPause => {
            "not sent: the run stopped because the server asked for a pause longer than --max-pause"
                .into()
        }
        StopReason::Running => "not sent".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_with_credentials_is_refused_without_repeating_them() {
        let e = check_url("https://admin:hunter22@cr.example.com", false).unwrap_err();
        let text = e.to_string();
        assert!(text.contains("user name or password"), "{text}");
        assert!(
            !text.contains("hunter22") && !text.contains("admin"),
            "{text}"
        );
        assert_eq!(e.exit_code(), 2);
    }
}
