//! The command line: clap definitions, help texts, and the mapping from outcomes to exit codes.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::commands::{
    self, apply::ApplyArgs, export::ExportArgs, template::TemplateArgs, validate::ValidateArgs,
    Connection, Console,
};
use crate::engine::Rate;
use crate::error::Error;
use crate::platform::Options;
use crate::profile::{self, Profile};
use crate::sandbox::{Faults, Sandbox, SandboxConfig};

#[derive(Parser, Debug)]
#[command(
    name = "bulkedit",
    version,
    about = "Apply a spreadsheet of user-account changes to UiPath Automation Hub, UiPath Identity \
             Server or Automation Anywhere Control Room: validate it, dry-run it, send it, and \
             get a per-row report you can fix and feed back in.",
    after_help = "Secrets come from the environment (BULKEDIT_TOKEN, BULKEDIT_APP_KEY, BULKEDIT_CLIENT_ID, \
                  BULKEDIT_CLIENT_SECRET, BULKEDIT_USERNAME, BULKEDIT_PASSWORD, BULKEDIT_API_KEY), \
                  --token-file or the OS credential store (bulkedit secret), never from the command line.\n\nExit codes: 0 all rows fine, 1 some rows \
                  invalid/not-found/failed, 2 could not start, 3 stopped early, 130 interrupted.\n\n\
                  Examples:\n  \
                  bulkedit template --platform hub --xlsx\n  \
                  bulkedit validate users.xlsx\n  \
                  bulkedit apply users.xlsx --sandbox\n  \
                  bulkedit apply users.xlsx --profile acme --dry-run\n\n\
                  Each command's --help has its own examples; bulkedit completions SHELL and \
                  bulkedit man set up shell completion and the manual page."
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Check every row offline and write a report; never touches the network.
    #[command(after_help = VALIDATE_EXAMPLES)]
    Validate(ValidateCli),
    /// Send the rows to the platform (or rehearse with --dry-run or --sandbox).
    #[command(after_help = APPLY_HELP)]
    Apply(ApplyCli),
    /// Write every user of the platform as a sheet in the columns apply reads: the start of
    /// a bulk edit, and a backup.
    #[command(after_help = EXPORT_EXAMPLES)]
    Export(ExportCli),
    /// Write a header row and an example row to start a sheet from.
    #[command(after_help = TEMPLATE_EXAMPLES)]
    Template(TemplateCli),
    /// Serve all three vendor APIs on one loopback address, for rehearsals and tests.
    #[command(after_help = SANDBOX_EXAMPLES)]
    Sandbox(SandboxCli),
    /// Keep a profile's secret in the OS credential store (Windows Credential Manager, macOS
    /// Keychain, Linux keyutils), typed at a prompt that does not show it; never printed.
    #[command(after_help = SECRET_EXAMPLES)]
    Secret(SecretCli),
    /// Print the rows bulkedit reads from a file, as JSON lines: what Excel row each is, and its cells.
    #[command(after_help = ROWS_EXAMPLES)]
    Rows(RowsCli),
    /// Print a shell completion script (bash, zsh, fish, powershell, elvish) on stdout.
    #[command(after_help = COMPLETIONS_EXAMPLES)]
    Completions(CompletionsCli),
    /// Print the manual page (roff) of bulkedit, or of one of its commands, on stdout.
    #[command(after_help = MAN_EXAMPLES)]
    Man(ManCli),
}

// The examples every `--help` ends with: real invocations an admin can paste, sandbox first so
// that each one works on a machine with no account.
const VALIDATE_EXAMPLES: &str = "\
Examples:
  bulkedit validate users.xlsx                        check every row; report in users-report.csv
  bulkedit validate users.csv --platform identity --report checked.xlsx
  bulkedit validate users.xlsx --sheet \"To change\"     read a sheet other than the first";

const APPLY_HELP: &str = "\
Credentials (from the environment or --token-file, never from the command line):
  hub           BULKEDIT_TOKEN={tenantId}/{token} (Open API token; BULKEDIT_APP_KEY when it has
                one), or a cloud access token in BULKEDIT_TOKEN
  identity      BULKEDIT_CLIENT_ID + BULKEDIT_CLIENT_SECRET (external application), or
                BULKEDIT_TOKEN; --partition ID (or BULKEDIT_PARTITION) when the token has no prt_id
  control-room  BULKEDIT_USERNAME + BULKEDIT_PASSWORD or BULKEDIT_API_KEY, or a JWT in
                BULKEDIT_TOKEN
  PowerShell:   $env:BULKEDIT_TOKEN = \"...\"      bash/zsh: export BULKEDIT_TOKEN=...

Profiles (--profile NAME or BULKEDIT_PROFILE) come from config.toml in bulkedit's configuration
directory (~/.config/bulkedit/ on Linux and macOS, %APPDATA%\\bulkedit\\ on Windows; BULKEDIT_CONFIG
names another file). Flags given on the command line win. A profile never holds a secret:
  [profile.acme]
  platform = \"hub\"
  url = \"https://cloud.uipath.com/acme/DefaultTenant/automationhub_\"
  rate = \"5/s\"
  token_env = \"ACME_HUB_TOKEN\"     # the variable holding the token (or token_file = \"PATH\",
                                   # or keyring = \"token\": see bulkedit secret --help)

Examples:
  bulkedit apply samples/hub-clean.csv --sandbox      rehearse on the built-in sandbox
  bulkedit apply users.xlsx --url https://cr.example.com --dry-run    say what would change
  bulkedit apply users.xlsx --profile acme --report applied.xlsx
  bulkedit apply users.xlsx --profile acme --resume   finish a run stopped by Ctrl-C or a crash";

const EXPORT_EXAMPLES: &str = "\
Examples:
  bulkedit export --platform hub --sandbox -o users.csv
  bulkedit export --platform identity --url https://cloud.uipath.com/acme/identity_ -o users.xlsx
  bulkedit export --profile acme -o backup.xlsx --force

The credentials and profiles are apply's: see bulkedit apply --help.";

const TEMPLATE_EXAMPLES: &str = "\
Examples:
  bulkedit template --platform hub > users.csv        header and one example row as CSV
  bulkedit template --platform identity --xlsx         identity-template.xlsx with drop-down lists
  bulkedit template --platform control-room --xlsx -o cr.xlsx --force";

const SANDBOX_EXAMPLES: &str = "\
Examples:
  bulkedit sandbox                                    listen on 127.0.0.1:8080, 100 users each
  bulkedit sandbox --listen 127.0.0.1:9000 --users 5000 --latency 20
  bulkedit sandbox --fail-rate 0.05 --throttle-rate 0.02 --seed 7    rehearse with faults";

const SECRET_EXAMPLES: &str = "\
The profile says which secret the store holds for it, and the run reads it from there:
  [profile.acme]
  platform = \"identity\"
  url = \"https://cloud.uipath.com/acme/identity_\"
  client_id = \"bulkedit-acme\"
  keyring = \"client_secret\"     # or token, password, api_key

Examples:
  bulkedit secret set --profile acme                  type it at a prompt that does not show it
  Get-Content secret.txt | bulkedit secret set --profile acme    PowerShell: from a file, once
  bulkedit secret check --profile acme                is one stored? (exit 2 when not)
  bulkedit secret delete --profile acme";

const ROWS_EXAMPLES: &str = "\
Examples:
  bulkedit rows users.csv                             what bulkedit reads, one JSON line a row
  bulkedit rows users.xlsx --sheet Sheet2";

const COMPLETIONS_EXAMPLES: &str = "\
Examples:
  bulkedit completions bash > ~/.local/share/bash-completion/completions/bulkedit
  bulkedit completions zsh > ~/.zfunc/_bulkedit       (with fpath+=~/.zfunc before compinit)
  bulkedit completions fish > ~/.config/fish/completions/bulkedit.fish
  bulkedit completions powershell >> $PROFILE          PowerShell: completes in every new session";

const MAN_EXAMPLES: &str = "\
Examples:
  bulkedit man > bulkedit.1 && man ./bulkedit.1
  bulkedit man apply | man -l -                       the page of one command
  sudo sh -c 'bulkedit man > /usr/local/share/man/man1/bulkedit.1'";

#[derive(Args, Debug)]
struct RowsCli {
    /// The spreadsheet to read: any file validate and apply read.
    file: PathBuf,
    /// The sheet to read (default: the first visible one).
    #[arg(long, value_name = "NAME")]
    sheet: Option<String>,
}

#[derive(Args, Debug)]
struct SecretCli {
    #[command(subcommand)]
    action: SecretAction,
}

#[derive(Subcommand, Debug)]
enum SecretAction {
    /// Store the profile's secret, typed at a prompt (or piped on standard input), replacing
    /// any stored before.
    Set(SecretProfile),
    /// Say whether a secret is stored for the profile (exit 2 when not); never shows it.
    Check(SecretProfile),
    /// Remove the profile's secret from the store.
    Delete(SecretProfile),
}

#[derive(Args, Debug)]
struct SecretProfile {
    /// The profile whose secret it is: the account it is filed under (service bulkedit).
    #[arg(long, value_name = "NAME", env = "BULKEDIT_PROFILE")]
    profile: String,
}

#[derive(Args, Debug)]
struct CompletionsCli {
    /// The shell to complete in.
    #[arg(value_enum)]
    shell: clap_complete::Shell,
}

#[derive(Args, Debug)]
struct ManCli {
    /// A command whose own page to print (default: the page of bulkedit itself).
    #[arg(value_name = "COMMAND")]
    command: Option<String>,
}

#[derive(Args, Debug)]
struct InputCli {
    /// The spreadsheet: .csv/.tsv/.txt, .xlsx/.xlsm/.xlsb/.xls or .ods.
    file: PathBuf,
    /// hub, identity or control-room; detected from the headers when they are unambiguous.
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(crate::platform::NAMES))]
    platform: Option<String>,
    /// The sheet to read (default: the first visible one).
    #[arg(long, value_name = "NAME")]
    sheet: Option<String>,
    /// Where the report goes (default: <input name>-report.csv beside the input); a path ending
    /// in .xlsx writes a workbook with each broken cell marked.
    #[arg(long, value_name = "PATH")]
    report: Option<PathBuf>,
    /// Admit a custom Automation Hub role id (repeatable).
    #[arg(long = "allow-role", value_name = "ID")]
    allow_role: Vec<u32>,
}

impl InputCli {
    fn options(&self) -> Options {
        Options {
            allowed_roles: self.allow_role.clone(),
        }
    }
}

#[derive(Args, Debug)]
struct ValidateCli {
    #[command(flatten)]
    input: InputCli,
    /// Check every row as one whose user will be created: what creation needs is given.
    #[arg(long)]
    create: bool,
}

#[derive(Args, Debug)]
struct ApplyCli {
    #[command(flatten)]
    input: InputCli,
    /// Read current records and say what would change; write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Skip rows the report already shows as updated or unchanged.
    #[arg(long)]
    resume: bool,
    /// Create the user of a row when no such user exists (instead of reporting not-found).
    #[arg(long)]
    create: bool,
    /// The file is the whole roster: deactivate every active user who is not in it.
    #[arg(long)]
    deactivate_missing: bool,
    /// With --deactivate-missing: when more users than this would be deactivated, nothing is
    /// sent at all.
    #[arg(
        long,
        default_value_t = 10,
        value_name = "N",
        requires = "deactivate_missing"
    )]
    max_deactivate: usize,
    /// With --deactivate-missing: never deactivate a user whose e-mail, username or id matches
    /// PATTERN (`*` matches anything, any case; repeatable).
    #[arg(long, value_name = "PATTERN", requires = "deactivate_missing")]
    keep: Vec<String>,
    /// Do not ask before a real run.
    #[arg(long)]
    yes: bool,
    /// Stop after this many failed or not-found rows (0: never).
    #[arg(long, default_value_t = 100, value_name = "N")]
    max_errors: u64,
    /// Also write the run's facts as JSON to FILE (counts per status, start, end, duration,
    /// rate, target, platform, dry run, report paths, exit code), whatever the outcome: for
    /// change tickets and schedulers.
    #[arg(long, value_name = "FILE")]
    summary_json: Option<PathBuf>,
    #[command(flatten)]
    connection: ConnectionCli,
    /// Only warnings, errors and the summary.
    #[arg(short, long)]
    quiet: bool,
}

#[derive(Args, Debug)]
struct ExportCli {
    /// hub, identity or control-room (or the profile's platform, or the one --url is of).
    #[arg(long, required_unless_present_any = ["profile", "url"],
          value_parser = clap::builder::PossibleValuesParser::new(crate::platform::NAMES))]
    platform: Option<String>,
    /// Where to write it: CSV, or a workbook with drop-down lists for a name ending in .xlsx
    /// (default: CSV on stdout).
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Write over FILE if it exists (without it, an existing file is never replaced).
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    connection: ConnectionCli,
    /// Only warnings and errors.
    #[arg(short, long)]
    quiet: bool,
}

/// How `apply` and `export` reach a server; a profile may fill any of these.
#[derive(Args, Debug)]
struct ConnectionCli {
    /// The service root (see README); everything before /api/v1/openapi, /api/User or /v1.
    #[arg(long, value_name = "URL", required_unless_present_any = ["sandbox", "profile"])]
    url: Option<String>,
    /// Run against the built-in sandbox, started in-process on a loopback port.
    #[arg(long, conflicts_with = "url")]
    sandbox: bool,
    /// Take platform, URL, rate and the other connection settings from this profile in the
    /// configuration file (see bulkedit apply --help); flags given here win.
    #[arg(long, value_name = "NAME", env = "BULKEDIT_PROFILE")]
    profile: Option<String>,
    /// Requests in flight at once: rows for apply, pages of users for export (1 to 512).
    #[arg(long, default_value_t = 4, value_name = "N",
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=512))]
    concurrency: usize,
    /// Requests shared by all workers: 10/s, 600/min, 1000/h or unlimited (default: hub 10/s,
    /// identity 30/min, control-room 5/s).
    #[arg(long, value_name = "R")]
    rate: Option<Rate>,
    /// Further tries for 408, 429, 502, 503, 504 and dropped connections (0 to 100).
    #[arg(long, default_value_t = 5, value_name = "N",
          value_parser = clap::value_parser!(u32).range(0..=100))]
    retries: u32,
    /// Read the token from this file instead of BULKEDIT_TOKEN.
    #[arg(long, value_name = "PATH")]
    token_file: Option<PathBuf>,
    /// Identity: the organization's partition id, when the token has no prt_id claim
    /// (or BULKEDIT_PARTITION).
    #[arg(long, value_name = "ID")]
    partition: Option<String>,
    /// Allow http:// to hosts other than loopback (an 11.x Control Room without TLS).
    #[arg(long)]
    allow_http: bool,
    /// Trust this CA certificate (PEM) beside the system's.
    #[arg(long, value_name = "PEM")]
    ca_cert: Option<PathBuf>,
    /// Seconds to wait for an answer before counting the request as failed (up to a day).
    #[arg(long, default_value = "30", value_name = "SECONDS", value_parser = seconds)]
    timeout: Duration,
    /// The longest pause a server's Retry-After may ask for; a longer one stops the run
    /// (resume it later) instead of waiting for hours.
    #[arg(long, default_value = "300", value_name = "SECONDS", value_parser = seconds)]
    max_pause: Duration,
    /// Log one line per request (secrets redacted).
    #[arg(short, long)]
    verbose: bool,
}

impl ConnectionCli {
    fn connection(&self) -> Connection {
        Connection {
            url: self.url.clone(),
            sandbox: self.sandbox,
            concurrency: self.concurrency,
            rate: self.rate,
            retries: self.retries,
            token_file: self.token_file.clone(),
            token_env: None,
            store: None,
            username: None,
            client_id: None,
            partition: self.partition.clone(),
            allow_http: self.allow_http,
            ca_cert: self.ca_cert.clone(),
            verbose: self.verbose,
            timeout: self.timeout,
            max_pause: self.max_pause,
        }
    }
}

#[derive(Args, Debug)]
struct TemplateCli {
    /// hub, identity or control-room: whose field table to write.
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(crate::platform::NAMES))]
    platform: String,
    /// Write a workbook with drop-down lists.
    #[arg(long)]
    xlsx: bool,
    /// Where to write it (default: stdout for CSV, <platform>-template.xlsx for --xlsx).
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Write over FILE if it exists (without it, an existing file is never replaced).
    #[arg(long)]
    force: bool,
}

#[derive(Args, Debug)]
struct SandboxCli {
    /// The address to listen on (a loopback address keeps it on this machine).
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    listen: SocketAddr,
    /// Seeded users per platform.
    #[arg(long, default_value_t = 100, value_name = "N")]
    users: usize,
    /// Milliseconds added to every call.
    #[arg(long, default_value_t = 0, value_name = "MS")]
    latency: u64,
    /// A server-side rate limit, answered with 429 and Retry-After.
    #[arg(long, value_name = "R")]
    rate: Option<Rate>,
    /// Makes the choice of faulty requests repeatable.
    #[arg(long, default_value_t = 0, value_name = "N")]
    seed: u64,
    /// Fraction of calls answered 502, 503 or 504.
    #[arg(long, default_value_t = 0.0, value_name = "F")]
    fail_rate: f64,
    /// Fraction of calls answered 429 with Retry-After.
    #[arg(long, default_value_t = 0.0, value_name = "F")]
    throttle_rate: f64,
    /// Seconds in the Retry-After of --throttle-rate answers.
    #[arg(long, default_value_t = 1, value_name = "SECONDS")]
    retry_after: u64,
    /// Send Retry-After as an HTTP date instead of seconds.
    #[arg(long)]
    retry_after_date: bool,
    /// Fraction of calls whose connection drops before the answer (after the change is made).
    #[arg(long, default_value_t = 0.0, value_name = "F")]
    reset_rate: f64,
    /// Fraction of calls answered only after --slow-ms.
    #[arg(long, default_value_t = 0.0, value_name = "F")]
    slow_rate: f64,
    /// Milliseconds a --slow-rate answer takes.
    #[arg(long, default_value_t = 35_000, value_name = "MS")]
    slow_ms: u64,
    /// Enforce Identity's published limits: 160 PUT and 300 GET per 5 minutes.
    #[arg(long)]
    identity_limits: bool,
    /// Fraction of Control Room PUTs that meet a concurrent edit and get 409.
    #[arg(long, default_value_t = 0.0, value_name = "F")]
    conflict_rate: f64,
    /// Seconds Control Room and Identity client-credential tokens live.
    #[arg(long, default_value_t = 1200, value_name = "SECONDS")]
    token_lifetime: u64,
    /// Require this x-ah-openapi-app-key on Open API calls.
    #[arg(long, value_name = "KEY")]
    hub_app_key: Option<String>,
}

impl SandboxCli {
    fn config(&self) -> SandboxConfig {
        SandboxConfig {
            listen: self.listen,
            users: self.users,
            token_lifetime: Duration::from_secs(self.token_lifetime),
            hub_app_key: self.hub_app_key.clone(),
            tls: None,
            faults: Faults {
                seed: self.seed,
                latency: Duration::from_millis(self.latency),
                rate: self.rate.and_then(|r| r.per_second),
                retry_after_date: self.retry_after_date,
                fail_rate: self.fail_rate,
                throttle_rate: self.throttle_rate,
                retry_after: Duration::from_secs(self.retry_after),
                reset_rate: self.reset_rate,
                slow_rate: self.slow_rate,
                slow: Duration::from_millis(self.slow_ms),
                identity_limits: self.identity_limits,
                conflict_rate: self.conflict_rate,
            },
        }
    }
}

static INTERRUPTED: LazyLock<Arc<AtomicBool>> = LazyLock::new(Arc::default);

/// Ctrl-C, or a stop signal (a scheduler's SIGTERM, a closed terminal's SIGHUP), sets
/// [`INTERRUPTED`] and says `what` happens now, in the words of the command that was stopped:
/// `{by}` names what stopped it, so that a scheduler's log does not tell of a Ctrl-C nobody
/// typed. A second one quits at once.
fn on_interrupt(what: &'static str) {
    #[cfg(unix)]
    {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
        let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]) else {
            return;
        };
        std::thread::spawn(move || {
            for signal in signals.forever() {
                interrupted(
                    what,
                    match signal {
                        SIGTERM => "SIGTERM",
                        SIGHUP => "SIGHUP",
                        _ => "Ctrl-C",
                    },
                );
            }
        });
    }
    #[cfg(windows)]
    {
        let _ = ctrlc::set_handler(move || interrupted(what, "Ctrl-C"));
    }
}

fn interrupted(what: &str, by: &str) {
    if INTERRUPTED.swap(true, Ordering::SeqCst) {
        // A second one: the journal already holds every finished row.
        std::process::exit(130);
    }
    let _ = writeln!(
        std::io::stderr().lock(),
        "bulkedit: {}",
        what.replace("{by}", by)
    );
}

/// Runs the command line and returns the exit code.
pub fn main() -> i32 {
    crate::crash::install_hook();
    // The matches as well as the values: a profile fills only what was not typed, and only the
    // matches tell a typed `--concurrency 4` from the default.
    let parsed = Cli::command()
        .try_get_matches()
        .and_then(|m| Cli::from_arg_matches(&m).map(|cli| (cli, m)));
    let (cli, matches) = match parsed {
        Ok(parsed) => parsed,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    let sub = matches.subcommand().map(|(_, m)| m);
    let typed = |id: &str| typed(sub, id);
    match cli.command {
        Command::Validate(v) => {
            let console = Console::new(false);
            let args = ValidateArgs {
                file: v.input.file.clone(),
                platform: v.input.platform.clone(),
                sheet: v.input.sheet.clone(),
                report: v.input.report.clone(),
                options: v.input.options(),
                create: v.create,
            };
            exit_with(commands::validate::run(&args, &console))
        }
        Command::Apply(a) => {
            on_interrupt("interrupted ({by}): finishing the rows in flight ({by} again quits now)");
            let console = Console::new(a.quiet);
            let mut args = ApplyArgs {
                file: a.input.file.clone(),
                platform: a.input.platform.clone(),
                sheet: a.input.sheet.clone(),
                report: a.input.report.clone(),
                options: a.input.options(),
                dry_run: a.dry_run,
                resume: a.resume,
                create: a.create,
                deactivate_missing: a.deactivate_missing,
                max_deactivate: a.max_deactivate,
                keep: a.keep.clone(),
                yes: a.yes,
                max_errors: a.max_errors,
                summary_json: a.summary_json.clone(),
                connection: a.connection.connection(),
            };
            if let Err(e) = with_profile(a.connection.profile.as_deref(), |p| {
                args.connection.fill_from(p, &mut args.platform, &typed)
            }) {
                return exit_with(Err(e));
            }
            exit_with(commands::apply::run(&args, &console, &INTERRUPTED))
        }
        Command::Export(x) => {
            on_interrupt(
                "interrupted ({by}): finishing the pages in flight ({by} again quits now)",
            );
            let console = Console::new(x.quiet);
            let mut args = ExportArgs {
                platform: x.platform.unwrap_or_default(),
                output: x.output,
                force: x.force,
                quiet: x.quiet,
                connection: x.connection.connection(),
            };
            if let Err(e) = with_profile(x.connection.profile.as_deref(), |p| {
                let mut platform = Some(args.platform.clone()).filter(|p| !p.is_empty());
                args.connection.fill_from(p, &mut platform, &typed);
                args.platform = platform.unwrap_or_default();
            }) {
                return exit_with(Err(e));
            }
            exit_with(commands::export::run(&args, &console, &INTERRUPTED))
        }
        Command::Template(t) => {
            let args = TemplateArgs {
                platform: t.platform,
                xlsx: t.xlsx,
                output: t.output,
                force: t.force,
            };
            match commands::template::run(&args) {
                Ok(Some(path)) => {
                    eprintln!("bulkedit: wrote {}", path.display());
                    0
                }
                Ok(None) => 0,
                Err(e) => exit_with(Err(e)),
            }
        }
        Command::Completions(c) => {
            let mut out = std::io::stdout().lock();
            clap_complete::generate(c.shell, &mut Cli::command(), "bulkedit", &mut out);
            0
        }
        Command::Man(m) => {
            let page = man_page(m.command.as_deref());
            exit_with(page.and_then(|page| {
                std::io::stdout()
                    .lock()
                    .write_all(&page)
                    .map_err(|e| Error::usage(format!("cannot write the page: {e}")))
                    .map(|()| 0)
            }))
        }
        Command::Secret(s) => {
            let (action, p) = match s.action {
                SecretAction::Set(p) => (commands::secret::Action::Set, p),
                SecretAction::Check(p) => (commands::secret::Action::Check, p),
                SecretAction::Delete(p) => (commands::secret::Action::Delete, p),
            };
            exit_with(commands::secret::run(action, &p.profile))
        }
        Command::Rows(r) => {
            exit_with(commands::print_rows(&r.file, r.sheet.as_deref()).map(|()| 0))
        }
        Command::Sandbox(s) => {
            on_interrupt(
                "sandbox stopped ({by}): its users, and every change made to them, were in \
                 memory and are gone",
            );
            let config = s.config();
            let users = config.users;
            let sandbox = match Sandbox::start(config) {
                Ok(sb) => sb,
                Err(e) => {
                    eprintln!("bulkedit: error: cannot listen on {}: {e}", s.listen);
                    return 2;
                }
            };
            println!("{}", sandbox_banner(&sandbox, users));
            while !INTERRUPTED.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(100));
            }
            drop(sandbox);
            0
        }
    }
}

/// Whether the user typed this flag, rather than clap filling in its default.
fn typed(matches: Option<&ArgMatches>, id: &str) -> bool {
    matches.and_then(|m| m.value_source(id)) == Some(ValueSource::CommandLine)
}

/// Loads the named profile (from `--profile` or `BULKEDIT_PROFILE`) and lets `fill` merge it.
fn with_profile(name: Option<&str>, fill: impl FnOnce(&Profile)) -> Result<(), Error> {
    if let Some(name) = name.map(str::trim).filter(|n| !n.is_empty()) {
        fill(&profile::load(name)?);
    }
    Ok(())
}

/// The manual page of bulkedit, or of one command (`bulkedit-apply(1)`), as roff, made from
/// the same definitions as `--help` so the two never disagree.
pub fn man_page(command: Option<&str>) -> Result<Vec<u8>, Error> {
    let mut cli = Cli::command();
    cli.build();
    let cmd = match command {
        None => cli,
        Some(name) => {
            let sub = cli.find_subcommand(name).cloned().ok_or_else(|| {
                let names: Vec<&str> = cli.get_subcommands().map(|c| c.get_name()).collect();
                Error::usage(format!(
                    "no command '{name}' (there are: {})",
                    names.join(", ")
                ))
            })?;
            sub.display_name(format!("bulkedit-{name}"))
                .version(env!("CARGO_PKG_VERSION"))
        }
    };
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd)
        .source(concat!("bulkedit ", env!("CARGO_PKG_VERSION")))
        .render(&mut page)
        .map_err(|e| Error::usage(format!("cannot render the page: {e}")))?;
    Ok(page)
}

/// A number of seconds above zero and at most a day, as `--timeout` and `--max-pause` take.
fn seconds(text: &str) -> Result<Duration, String> {
    match text.trim().parse::<f64>() {
        Ok(s) if s > 0.0 && s <= 86_400.0 => Ok(Duration::from_secs_f64(s)),
        _ => Err(format!(
            "'{text}' is not a number of seconds above zero and at most 86400 (a day)"
        )),
    }
}

fn exit_with(result: Result<i32, crate::error::Error>) -> i32 {
    match result {
        Ok(code) => code,
        Err(e) => {
            let _ = writeln!(
                std::io::stderr().lock(),
                "bulkedit: error: {}",
                crate::engine::http::printable(&crate::crash::redact(&e.to_string()))
            );
            e.exit_code()
        }
    }
}

/// What `bulkedit sandbox` prints: the `--url` and credentials for each platform.
pub fn sandbox_banner(sb: &Sandbox, users: usize) -> String {
    use crate::sandbox::*;
    let base = sb.base_url();
    format!(
        "bulkedit sandbox listening on {base} ({users} users per platform; Ctrl-C stops it)\n\
         \n\
         hub:\n  --url {hub}\n  BULKEDIT_TOKEN={HUB_TOKEN}    (Open API token)\n  BULKEDIT_TOKEN={HUB_CLOUD_TOKEN}    (cloud access token)\n\
         identity:\n  --url {identity}\n  BULKEDIT_CLIENT_ID={CLIENT_ID} BULKEDIT_CLIENT_SECRET={CLIENT_SECRET}\n  or BULKEDIT_TOKEN={IDENTITY_TOKEN} with --partition {PARTITION}\n\
         control-room:\n  --url {cr}\n  BULKEDIT_USERNAME={CR_USERNAME} BULKEDIT_PASSWORD={CR_PASSWORD}    (or BULKEDIT_API_KEY={CR_API_KEY})\n\
         \n\
         state: {base}/_sandbox/state   stats: {base}/_sandbox/stats   requests: {base}/_sandbox/requests",
        hub = sb.url_for("hub"),
        identity = sb.url_for("identity"),
        cr = sb.url_for("control-room").as_str().trim_end_matches('/'),
    )
}
