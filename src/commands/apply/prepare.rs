//! Everything `apply` settles before the first row is sent: the input and its columns, every
//! row checked once for duplicate users, what an earlier run already did, where to send and as
//! whom, the HTTP client, and a logged-in session that has read what the rows need.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use url::Url;

use crate::check::{self, Duplicates, Input, KeyCollector};
use crate::engine::http::{printable, Hooks, LogSink};
use crate::engine::{Http, HttpSettings, Rate, Status};
use crate::error::Error;
use crate::platform::{
    Connect, Layout, Missing, Plan, PlannedLeaver, Platform, Roster, Session, UserKey,
};
use crate::report::guard::{self, ReportLock, RunRecord};
use crate::report::journal::{self, Earlier, Resumed};
use crate::report::{self, Columns};
use crate::rules::FieldError;
use crate::sandbox::{Sandbox, SandboxConfig};
use crate::secrets::{token_file_warning, Secrets, Sources};

use super::{check_url, ApplyArgs};
use crate::commands::{read_ahead, Console};

/// The input, opened and surveyed: what the run will do before it does any of it.
pub struct Survey {
    /// Held for the whole run: no second run writes this report meanwhile.
    pub _lock: ReportLock,
    /// Which run the report belongs to, for `--resume` to check.
    pub record: RunRecord,
    pub platform: Box<dyn Platform>,
    pub layout: Layout,
    pub columns: Columns,
    pub report_path: PathBuf,
    pub dups: Duplicates,
    pub earlier: Earlier,
    pub plan: Plan,
    /// Data rows in the file, blank ones and a plan's users to deactivate aside.
    pub total_rows: u64,
    /// The file is a plan: a dry run's report, with lines it said would change something.
    pub is_plan: bool,
}

/// Where the rows go and as whom. The sandbox, when there is one, lives as long as this.
pub struct Target {
    pub url: Url,
    pub secrets: Secrets,
    pub ca_cert: Option<Vec<u8>>,
    /// Held so that the sandbox serves until the run ends.
    pub _sandbox: Option<Sandbox>,
}

impl Target {
    /// Where the rows go, as a run record names it: the sandbox is new at every run.
    pub fn name(&self) -> String {
        match self._sandbox {
            Some(_) => "sandbox".into(),
            None => self.url.to_string(),
        }
    }
}

/// A session ready for the rows; none when no valid row needs one.
pub struct Connected {
    pub http: Arc<Http>,
    pub rate: Rate,
    pub session: Option<Box<dyn Session>>,
    /// Rows that name one user through different keys (an id on one, that user's e-mail on
    /// another), found in the list read up front: each refused, naming the others.
    pub twins: HashMap<u64, FieldError>,
    /// `--deactivate-missing`: the active users the roster does not name, sent after the rows.
    pub missing: Missing,
}

/// Opens the input and checks its header; the rows are read later.
pub fn open(args: &ApplyArgs, console: &Console) -> Result<Input, Error> {
    if args.connection.concurrency == 0 {
        return Err(Error::usage("--concurrency must be at least 1"));
    }
    let input = check::open_input(
        &args.file,
        args.platform.as_deref(),
        // The sandbox's URL is its own, whatever the platform: only a URL given says one.
        args.connection
            .url
            .as_deref()
            .filter(|_| !args.connection.sandbox),
        args.sheet.as_deref(),
        &args.options,
    )?;
    for w in input.warnings() {
        console.warn(w);
    }
    Ok(input)
}

/// The URL and credentials: the built-in sandbox's, or the user's.
pub fn target(args: &ApplyArgs, console: &Console, platform_name: &str) -> Result<Target, Error> {
    let c = &args.connection;
    let mut secrets = Secrets::gather(&Sources {
        token_file: c.token_file.as_deref(),
        token_env: c.token_env.as_deref(),
        store: c.store.as_ref(),
        username: c.username.as_deref(),
        client_id: c.client_id.as_deref(),
    })?;
    if let Some(w) = args
        .connection
        .token_file
        .as_deref()
        .and_then(token_file_warning)
    {
        console.warn(&w);
    }
    let sandbox = if args.connection.sandbox {
        if args.connection.url.is_some() {
            return Err(Error::usage("give --url or --sandbox, not both"));
        }
        let sb = Sandbox::start(SandboxConfig::default())
            .map_err(|e| Error::usage(format!("cannot start the sandbox: {e}")))?;
        if secrets.is_empty() {
            secrets = crate::sandbox::default_secrets(platform_name);
        }
        Some(sb)
    } else {
        None
    };
    crate::crash::hold_secrets(&secrets);
    let url = match (&sandbox, &args.connection.url) {
        (Some(sb), _) => sb.url_for(platform_name),
        (None, Some(raw)) => {
            let url = check_url(raw, args.connection.allow_http)?;
            let api = crate::platform::by_name(platform_name, &args.options)
                .map_or(&[][..], |p| p.api_path());
            match crate::platform::service_root(&url, api) {
                Some(root) => {
                    console.info(&format!(
                        "--url {url}: the API's path is bulkedit's to add; using the service \
                         root {root}"
                    ));
                    root
                }
                None => url,
            }
        }
        (None, None) => {
            return Err(Error::usage(
                "give --url URL (the service root) or --sandbox",
            ))
        }
    };
    let ca_cert = match &args.connection.ca_cert {
        Some(p) => Some(
            std::fs::read(p)
                .map_err(|e| Error::usage(format!("--ca-cert {}: {e}", p.display())))?,
        ),
        None => None,
    };
    Ok(Target {
        url,
        secrets,
        ca_cert,
        _sandbox: sandbox,
    })
}

/// Checks every row once, so that users named on two rows are known before anything is sent,
/// and reads what an earlier run finished when resuming.
pub fn survey(
    args: &ApplyArgs,
    console: &Console,
    mut input: Input,
    target: &Target,
) -> Result<Survey, Error> {
    let platform_name = input.platform.name();
    console.info(&format!(
        "{}: checking rows for {platform_name}, read as {}",
        args.file.display(),
        input.sheet.description
    ));
    let columns = input.columns();
    let report_path = args
        .report
        .clone()
        .unwrap_or_else(|| report::default_path(&args.file));
    guard::refuse_input_as_output(&args.file, &report_path)?;
    let lock = ReportLock::acquire(&report_path)?;
    let record = RunRecord::new(&args.file, platform_name, &target.name());
    if args.resume {
        if let Some(w) = record.check_resume(&report_path)? {
            console.warn(&w);
        }
    }
    let earlier = if args.resume {
        let key_cols: Vec<usize> = input
            .platform
            .key_fields()
            .iter()
            .filter_map(|&k| input.layout.field_col[k])
            .collect();
        journal::read_earlier(&report_path, &columns, &key_cols).map_err(Error::Usage)?
    } else {
        Earlier::none()
    };
    let key_field = input.platform.fields()[input.platform.key_fields()[0]].name;
    let mut keys = KeyCollector::default();
    let mut plan = Plan {
        create: args.create,
        deactivate_missing: args.deactivate_missing,
        workers: args.connection.concurrency,
        ..Plan::default()
    };
    let mut total_rows = 0u64;
    let (mut is_plan, mut planned_leavers, mut planned_joiners) = (false, 0u64, 0u64);
    // The rows are read here for their keys; the sending pass reads them again rather than
    // holding a million edits in memory.
    let rows = std::mem::replace(&mut input.sheet.rows, Box::new(std::iter::empty()));
    for chunk in read_ahead(rows) {
        let chunk = chunk?;
        let checked = check::check_chunk(input.platform.as_ref(), &input.layout, &chunk);
        for (row, checked) in chunk.iter().zip(checked) {
            let planned = check::plan_status(&input.layout, row);
            is_plan |= planned.is_some();
            planned_joiners += u64::from(planned == Some(Status::WouldCreate));
            // A plan's users to deactivate are not rows of its roster.
            if planned == Some(Status::WouldDeactivate) {
                planned_leavers += 1;
                continue;
            }
            total_rows += 1;
            keys.add_row(input.platform.as_ref(), &input.layout, row);
            let Ok(edit) = checked else { continue };
            if let Resumed::Done(_) = earlier.look_up(&columns, row.line, &row.cells) {
                continue;
            }
            plan.rows += 1;
            if edit.key.field != key_field {
                plan.lookups += 1;
            }
        }
    }
    let dups = keys.duplicates(|wanted| {
        check::reread_keys(
            &args.file,
            platform_name,
            args.sheet.as_deref(),
            &args.options,
            wanted,
        )
    })?;
    // Rows naming the same user were valid alone but are not sent.
    plan.rows = plan.rows.saturating_sub(dups.valid_rows());
    if planned_joiners > 0 && !args.create {
        return Err(Error::usage(format!(
            "{}: the plan creates {} (its would-create rows): give --create to carry it out as \
             the dry run did, or delete those rows",
            args.file.display(),
            report::summary::counted(planned_joiners, "user")
        )));
    }
    if planned_leavers > 0 && !args.deactivate_missing {
        return Err(Error::usage(format!(
            "{}: the plan deactivates {} (its would-deactivate lines): give \
             --deactivate-missing to carry it out as the dry run did, or delete those lines",
            args.file.display(),
            report::summary::counted(planned_leavers, "user")
        )));
    }
    let mut layout = input.layout;
    layout.is_plan = is_plan;
    Ok(Survey {
        _lock: lock,
        record,
        platform: input.platform,
        layout,
        columns,
        report_path,
        dups,
        earlier,
        plan,
        total_rows,
        is_plan,
    })
}

/// The HTTP client a run shares between its workers: the connection settings, the platform's
/// safe rate unless one is given, and lines to stderr with every secret redacted (with -v
/// there is no progress bar, see `Progress::new`, so they go straight to stderr).
pub fn http_client(
    args: &ApplyArgs,
    target: &Target,
    default_rate: f64,
    interrupted: &Arc<AtomicBool>,
) -> Result<Http, Error> {
    let secrets = &target.secrets;
    let log: Option<LogSink> = args.connection.verbose.then(|| {
        let secrets = secrets.clone();
        Arc::new(move |line: &str| to_stderr(&format!("bulkedit: {}", secrets.redact(line)))) as _
    });
    let notice: LogSink = {
        let secrets = secrets.clone();
        Arc::new(move |line: &str| {
            to_stderr(&format!("bulkedit: warning: {}", secrets.redact(line)));
        })
    };
    let hooks = Hooks {
        log,
        notice: Some(notice),
        interrupted: Arc::clone(interrupted),
    };
    let settings = HttpSettings {
        rate: args
            .connection
            .rate
            .unwrap_or_else(|| Rate::per_second(default_rate)),
        retries: args.connection.retries,
        timeout: args.connection.timeout,
        ca_cert: target.ca_cert.clone(),
        tls: target.url.scheme() != "http",
        concurrency: args.connection.concurrency,
        max_pause: args.connection.max_pause,
        ..HttpSettings::default()
    };
    Http::new(settings, hooks).map_err(Error::Usage)
}

/// Logs in to `target` as its secrets say, in the partition `--partition` or the secrets name.
/// `first_page`: the run will most likely read the whole user list (see [`Connect`]).
pub fn log_in(
    platform: &dyn Platform,
    args: &ApplyArgs,
    target: &Target,
    http: &Arc<Http>,
    first_page: bool,
) -> Result<Box<dyn Session>, Error> {
    let secrets = &target.secrets;
    platform.connect(&Connect {
        url: &target.url,
        secrets,
        partition: args
            .connection
            .partition
            .as_deref()
            .or(secrets.partition.as_deref()),
        http: Arc::clone(http),
        first_page,
    })
}

/// The input surveyed, and the HTTP client every worker will share, made at once: the client
/// loads the system's certificates, which takes as long as checking a few thousand rows.
pub fn survey_and_client(
    args: &ApplyArgs,
    console: &Console,
    input: Input,
    target: &Target,
    interrupted: &Arc<AtomicBool>,
) -> Result<(Survey, Http), Error> {
    let default_rate = input.platform.default_rate();
    let (survey, http) = std::thread::scope(|scope| {
        let http = scope.spawn(|| http_client(args, target, default_rate, interrupted));
        let survey = survey(args, console, input, target);
        let http = http
            .join()
            .unwrap_or_else(|_| Err(Error::usage("the HTTP client could not be made")));
        (survey, http)
    });
    // A file that cannot be read is said before a setting that cannot be used.
    Ok((survey?, http?))
}

/// A session that has logged in and read what the rows need: the check, before the first
/// row, that the URL and the credentials work. When they do not, the run stops here
/// (exit 2), before a report is written or replaced.
pub fn connect(
    args: &ApplyArgs,
    survey: &Survey,
    target: &Target,
    http: Http,
) -> Result<Connected, Error> {
    let platform = survey.platform.as_ref();
    let secrets = &target.secrets;
    let http = Arc::new(http);
    let rate = http.rate();
    // A roster of no valid rows still has users missing from it.
    let session = if survey.plan.rows == 0 && !args.deactivate_missing {
        Ok(None)
    } else {
        log_in(
            platform,
            args,
            target,
            &http,
            likely_listed(args, &survey.plan),
        )
        .and_then(|s| s.prepare(&survey.plan).map(|()| Some(s)))
    };
    let session = session.map_err(|e| e.redacted(|text| printable(&secrets.redact(text))))?;
    let plan = survey.plan;
    let twins = match &session {
        // Only rows naming users through different keys can name one user twice unseen.
        Some(s) if s.listed() && plan.lookups > 0 && plan.lookups < plan.rows => {
            twins(args, survey, s.as_ref())?
        }
        _ => HashMap::new(),
    };
    let missing = match &session {
        Some(s) if args.deactivate_missing => {
            let missing = s.missing(&roster(args, survey)?)?;
            refuse_above_cap(args, &missing)?;
            missing
        }
        _ => Missing {
            users: Vec::new(),
            caller_known: true,
        },
    };
    Ok(Connected {
        http,
        rate,
        session,
        twins,
        missing,
    })
}

/// Whether a run will most likely read the whole user list: a roster always does, and so do
/// a thousand rows in any tenant small enough to keep (its list takes fewer calls than a
/// look-up per row).
fn likely_listed(args: &ApplyArgs, plan: &Plan) -> bool {
    args.deactivate_missing || plan.rows >= 1000
}

/// The file as a roster: every key cell of every row, valid or not (a row with a mistake
/// still names a user who is not leaving), and the `--keep` patterns.
fn roster(args: &ApplyArgs, survey: &Survey) -> Result<Roster, Error> {
    let platform = survey.platform.as_ref();
    let fields = platform.fields();
    let key_cols: Vec<(&'static str, usize)> = platform
        .key_fields()
        .iter()
        .filter_map(|&k| Some((fields[k].name, survey.layout.field_col[k]?)))
        .collect();
    let mut roster = Roster {
        keep: args.keep.clone(),
        columns: key_cols.iter().map(|(name, _)| *name).collect(),
        plan: survey.is_plan.then(Vec::new),
        ..Roster::default()
    };
    let rows = check::open_sheet(&args.file, args.sheet.as_deref())?.rows;
    for chunk in read_ahead(rows) {
        let chunk = chunk?;
        let checked = check::check_chunk(platform, &survey.layout, &chunk);
        for (row, checked) in chunk.iter().zip(checked) {
            if check::is_planned_leaver(&survey.layout, row) {
                // The user its line shows, in the first key column it fills.
                let key = key_cols.iter().find_map(|&(field, col)| {
                    let value = row.cells.get(col).unwrap_or("").trim();
                    (!value.is_empty()).then(|| UserKey {
                        field,
                        value: value.to_string(),
                    })
                });
                let (Some(key), Some(plan)) = (key, roster.plan.as_mut()) else {
                    continue;
                };
                let changes = check::planned_changes(&survey.layout, row)?;
                if !plan.iter().any(|p| p.key.normalized() == key.normalized()) {
                    plan.push(PlannedLeaver { key, changes });
                }
                continue;
            }
            // The key as checked (`5.0` is id 5), and every key cell as written.
            if let Ok(edit) = checked {
                roster.named.insert(edit.key.normalized());
            }
            for &(field, col) in &key_cols {
                let value = row.cells.get(col).unwrap_or("").trim();
                if !value.is_empty() {
                    let key = UserKey {
                        field,
                        value: value.to_string(),
                    };
                    roster.named.insert(key.normalized());
                }
            }
        }
    }
    Ok(roster)
}

/// More users missing from the roster than `--max-deactivate` allows: a file that is not the
/// whole roster (a filtered export, a wrong sheet) would deactivate them all, so a real run
/// stops before it sends anything. A dry run lists them, to be checked.
fn refuse_above_cap(args: &ApplyArgs, missing: &Missing) -> Result<(), Error> {
    let n = missing.to_deactivate();
    if args.dry_run || n <= args.max_deactivate {
        return Ok(());
    }
    Err(Error::usage(format!(
        "--deactivate-missing would deactivate {n} users, more than --max-deactivate {} \
         allows: nothing was sent. Check that the file is the whole roster (a dry run lists \
         who would go), then allow it with --max-deactivate {n}",
        args.max_deactivate
    )))
}

/// Every row whose key resolves, in the list read up front, to the same user as another
/// row's different key, with the error that names the others: known before anything is sent,
/// so that neither row is. (Without the list, the session claims each user as rows resolve.)
fn twins(
    args: &ApplyArgs,
    survey: &Survey,
    session: &dyn Session,
) -> Result<HashMap<u64, FieldError>, Error> {
    let platform = survey.platform.as_ref();
    let rows = check::open_sheet(&args.file, args.sheet.as_deref())?.rows;
    // Users by id, each with the rows that name them: at most one entry per listed user.
    let mut named: HashMap<String, Vec<(u64, UserKey)>> = HashMap::new();
    for chunk in read_ahead(rows) {
        let chunk = chunk?;
        let checked = check::check_chunk(platform, &survey.layout, &chunk);
        for (row, checked) in chunk.iter().zip(checked) {
            let Ok(edit) = checked else { continue };
            if survey.dups.get(row.line).is_some() || check::is_planned_leaver(&survey.layout, row)
            {
                continue;
            }
            if let Resumed::Done(_) = survey
                .earlier
                .look_up(&survey.columns, row.line, &row.cells)
            {
                continue;
            }
            if let Some(id) = session.listed_user(&edit.key) {
                named.entry(id).or_default().push((row.line, edit.key));
            }
        }
    }
    let mut twins = HashMap::new();
    for rows in named.into_values().filter(|rows| rows.len() > 1) {
        for (line, key) in &rows {
            let others: Vec<String> = rows
                .iter()
                .filter(|(l, _)| l != line)
                .take(5)
                .map(|(l, k)| format!("row {l} (its {} '{}')", k.field, k.value))
                .collect();
            let more = (rows.len() - 1).saturating_sub(others.len());
            let more = if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            };
            let field = platform.fields().iter().position(|f| f.name == key.field);
            let col = field.and_then(|f| survey.layout.field_col[f]);
            let column = col
                .and_then(|c| survey.layout.headers.get(c).cloned())
                .unwrap_or_else(|| key.field.to_string());
            twins.insert(
                *line,
                FieldError::new(
                    col,
                    column,
                    format!(
                        "the same user as {}{more} (nothing is sent for a user named twice; \
                         keep one row)",
                        others.join(", ")
                    ),
                ),
            );
        }
    }
    Ok(twins)
}

/// A line on stderr that never ends the run: a closed pipe or a full disk loses the line only.
fn to_stderr(line: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}
