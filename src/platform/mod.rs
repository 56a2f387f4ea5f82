//! One module per vendor API: its table of fields and its calls (authenticate, list, find, read,
//! write, and how its answers read). The checks the tables drive ([`dictionary`]) and the
//! read-modify-write ([`rmw`]) are shared; everything outside this folder is vendor-neutral.

pub mod cache;
pub mod columns;
pub mod control_room;
pub mod dictionary;
pub mod hub;
pub mod identity;
pub mod page;
pub mod rmw;
pub mod token;
pub mod undo;

use std::sync::Arc;

use serde_json::Value;

use crate::engine::{FieldChange, Http, Outcome, Status};
use crate::error::Error;
use crate::rules::{self, FieldError};
pub use columns::{ColumnUse, Layout};
pub use dictionary::{Cell, Checker, Field, Kind, Place, Record, Sent, Shown, CLEAR};

/// Which user a row is about: the field that names them and its value as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserKey {
    pub field: &'static str,
    pub value: String,
}

impl UserKey {
    /// Keys compare case-insensitively after trimming.
    pub fn normalized(&self) -> String {
        normalized_key(self.field, &self.value)
    }
}

/// A key as [`UserKey::normalized`] spells it, for a field and a value not yet a `UserKey`,
/// made in one allocation: tens of thousands are made while the first row waits for the list.
pub fn normalized_key(field: &str, value: &str) -> String {
    let value = value.trim();
    let mut s = String::with_capacity(field.len() + 1 + value.len());
    s.push_str(field);
    s.push('\u{0}');
    if value.is_ascii() {
        s.extend(value.bytes().map(|b| char::from(b.to_ascii_lowercase())));
    } else {
        s.push_str(&rules::normalize_key(value));
    }
    s
}

/// A valid row: the user it is about and the changes to make, in the vendor's field names.
/// A text field set to `""` is cleared.
#[derive(Debug, Clone, PartialEq)]
pub struct Edit {
    pub key: UserKey,
    pub changes: Changes,
    /// What the plan this row comes from (a dry run's report fed back in) said it would do:
    /// it is done only if that is still exactly what it does.
    pub plan: Option<Box<Planned>>,
}

/// A plan's row: the status and changes its dry run reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    pub status: Status,
    pub changes: Vec<FieldChange>,
}

/// A row's changes by vendor field name. A handful per row, so a vector: no map to build and
/// tear down a million times.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Changes(Vec<(&'static str, Value)>, Keep);

/// Whether a row's changes are kept: `validate` only needs the verdict and the key, and not
/// building a JSON value per cell makes it several times cheaper.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Keep {
    #[default]
    Changes,
    VerdictOnly,
}

impl Changes {
    pub fn new(keep: Keep) -> Self {
        Changes(Vec::new(), keep)
    }

    /// Sets a field; a later value for the same field replaces an earlier one.
    pub fn insert(&mut self, name: &'static str, value: impl Into<Value>) {
        if self.1 == Keep::Changes {
            // Appending keeps the hot path free of comparisons; readers take the last value.
            self.0.push((name, value.into()));
        }
    }

    /// Sets a field to a value that is only built when changes are kept.
    pub fn insert_with(&mut self, name: &'static str, value: impl FnOnce() -> Value) {
        if self.1 == Keep::Changes {
            self.0.push((name, value()));
        }
    }

    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v)
    }

    /// Every field with its final value, in the order first set.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &Value)> {
        self.0
            .iter()
            .enumerate()
            .filter(|(i, (k, _))| !self.0[i + 1..].iter().any(|(later, _)| later == k))
            .map(|(_, (k, v))| (*k, v))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// What `bulkedit template` writes: a header and one example row.
pub struct Template {
    pub headers: Vec<&'static str>,
    pub example: Vec<&'static str>,
    /// Columns offered as drop-down lists in the xlsx template, with their choices.
    pub choices: Vec<(&'static str, Vec<&'static str>)>,
}

/// Settings a platform needs to reach its server.
pub struct Connect<'a> {
    pub url: &'a url::Url,
    pub secrets: &'a crate::secrets::Secrets,
    /// `--partition` (identity), already merged with `BULKEDIT_PARTITION`.
    pub partition: Option<&'a str>,
    pub http: Arc<Http>,
    /// The run will most likely read the whole user list: the read that proves the URL and
    /// the credentials reads its first page (or is sent beside it), which the list then
    /// starts from instead of asking again.
    pub first_page: bool,
}

/// What the rows ahead ask of a session, counted before anything is sent.
#[derive(Debug, Clone, Copy, Default)]
pub struct Plan {
    /// Valid rows to carry out.
    pub rows: usize,
    /// Of those, rows that name the user by something other than the platform's id
    /// (an e-mail or a username), which needs a look-up.
    pub lookups: usize,
    /// `--create`: a row whose user does not exist creates it.
    pub create: bool,
    /// `--deactivate-missing`: every user is read up front, to compare with the roster.
    pub deactivate_missing: bool,
    /// Requests the run may have in flight at once (`--concurrency`): pages of the list read
    /// up front are read that many at a time.
    pub workers: usize,
}

/// The file as a roster, for `--deactivate-missing`: who it names, and who is never deactivated.
#[derive(Debug, Default)]
pub struct Roster {
    /// [`UserKey::normalized`] of every key cell of every row, valid or not: a user a row
    /// names in any way is never taken for missing.
    pub named: std::collections::HashSet<String>,
    /// `--keep` patterns (`*` matches anything), matched in any case against every name a
    /// user is known by.
    pub keep: Vec<String>,
    /// The key fields the file has a column for, in order: a missing user's report line shows
    /// the first of them the user has.
    pub columns: Vec<&'static str>,
    /// When the file is a plan (a dry run's report): the users its `would-deactivate` lines
    /// list. Only they are deactivated, each only if it has not moved since.
    pub plan: Option<Vec<PlannedLeaver>>,
}

/// A user a plan would deactivate: the key its line shows, and what the dry run said
/// deactivating it changes.
#[derive(Debug, Clone)]
pub struct PlannedLeaver {
    pub key: UserKey,
    pub changes: Vec<FieldChange>,
}

/// A user to deactivate as missing from the roster.
pub struct Leaver {
    /// The edit that deactivates it, keyed by the user's id.
    pub edit: Edit,
    /// The key its report line shows.
    pub shown: Option<UserKey>,
    /// Why it is not deactivated after all, known before anything is sent: a plan's leaver
    /// that moved since, or a user missing now that the plan does not list. Its line is
    /// `drifted`, with this as its error.
    pub drifted: Option<String>,
}

/// Active users on the server that the roster does not name.
pub struct Missing {
    pub users: Vec<Leaver>,
    /// Whether the account the run authenticates as is known (and so kept); when not, the
    /// run says so.
    pub caller_known: bool,
}

impl Missing {
    /// How many will be deactivated (or would be, in a dry run): those not drifted.
    pub fn to_deactivate(&self) -> usize {
        self.users.iter().filter(|l| l.drifted.is_none()).count()
    }
}

/// Whether `text` matches `pattern`, where `*` matches any run of characters, in any case.
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    let (pattern, text) = (pattern.to_lowercase(), text.to_lowercase());
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        // No `*`: the whole text.
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// A logged-in connection that carries out one row at a time; called from many workers at once.
/// Told of a write about to be sent: the status it would give the row and what it changes.
/// An error stops the write before it leaves (the run could not keep its note of it).
pub type BeforeWrite<'a> = &'a dyn Fn(Status, &[FieldChange]) -> Result<(), String>;

pub trait Session: Send + Sync {
    /// Called once before the rows: read every user with the paged list when that takes fewer
    /// calls than reading `rows` users one by one.
    fn prepare(&self, plan: &Plan) -> Result<(), Error>;
    /// Whether every user was read up front, so that [`Session::listed_user`] answers.
    fn listed(&self) -> bool {
        false
    }
    /// A warning for the run about how [`Session::prepare`] read the users, when it has one.
    fn note(&self) -> Option<&str> {
        None
    }
    /// The id of the user a key names, from the list read up front, without a request: what
    /// tells two rows naming one user through different keys apart before anything is sent.
    fn listed_user(&self, _key: &UserKey) -> Option<String> {
        None
    }
    /// Reads the current record, merges the edit of the input's row `row`, writes it unless
    /// nothing changes (or `dry_run`), and says what happened. `before_write` hears of each
    /// write just before it is sent; when it cannot take note, nothing is sent.
    fn apply(&self, edit: &Edit, row: u64, dry_run: bool, before_write: BeforeWrite) -> Outcome;
    /// What `export` reads every user through, when this session can.
    fn export(&self) -> Option<&dyn rmw::Export> {
        None
    }
    /// `--deactivate-missing`: the active users on the server the roster does not name, never
    /// the kept ones or the account the run authenticates as. Needs every user read up front.
    fn missing(&self, _roster: &Roster) -> Result<Missing, Error> {
        Err(Error::usage("--deactivate-missing is not available here"))
    }
    /// Deactivates a user [`Session::missing`] found, through the same read-modify-write.
    fn deactivate(&self, _edit: &Edit, _dry_run: bool, _before_write: BeforeWrite) -> Outcome {
        Outcome::with_error(
            crate::engine::Status::Failed,
            "--deactivate-missing is not available here",
        )
    }
}

pub trait Platform: Send + Sync {
    /// The `--platform` value.
    fn name(&self) -> &'static str;
    /// The path of its API below the service root, as an admin copies it from the vendor's
    /// docs into `--url` (`api/v1/openapi`): such a URL is cut back to the root.
    fn api_path(&self) -> &'static [&'static str] {
        &[]
    }
    /// What in a `--url` says it is this platform's service root (a path segment or a host
    /// only it uses), if anything: the platform is told from the URL as well as the headers.
    fn url_sign(&self, _url: &url::Url) -> Option<String> {
        None
    }
    fn fields(&self) -> &'static [Field];
    /// The fields that can name a user; a file needs at least one of them.
    fn key_fields(&self) -> &'static [usize];
    /// Header problems beyond the generic ones (layouts that cannot be combined).
    fn check_layout(&self, _layout: &Layout) -> Vec<String> {
        Vec::new()
    }
    /// Checks one row against the field dictionary: every broken field, not just the first.
    fn validate(&self, record: &Record) -> Result<Edit, Vec<FieldError>>;
    /// Fields whose non-empty values are shown as `***` wherever a row is shown.
    fn masked_fields(&self) -> &'static [usize] {
        &[]
    }
    fn template(&self) -> Template;
    /// What creating a row's user would lack or break (`--create`), as far as the row alone
    /// tells: what `validate --create` checks offline, and `apply --create` again before it
    /// creates a user.
    fn cannot_create(&self, _edit: &Edit) -> Vec<String> {
        Vec::new()
    }
    /// A rate that is safe when the user gives none, in requests per second.
    fn default_rate(&self) -> f64;
    /// Authenticates and returns a session.
    fn connect(&self, settings: &Connect) -> Result<Box<dyn Session>, Error>;
    /// What a person should know before a real run sends anything: what the platform itself
    /// does when users change.
    fn caution(&self) -> Option<&'static str> {
        None
    }
    /// What deactivating a user sets: `--deactivate-missing` sends it, and the undo file of a
    /// run puts it on the users the run created.
    fn deactivation(&self) -> Changes;
    /// The roles or groups a change takes away from a user, by the names the change shows:
    /// the summary warns of them.
    fn taken_away(&self, _change: &FieldChange) -> Vec<String> {
        Vec::new()
    }
    /// The cells of an input sheet that put back what one report line changed.
    fn undo(&self, status: Status, changes: &[FieldChange]) -> undo::Undo {
        undo::undo(self.fields(), &self.deactivation(), status, changes)
    }
}

/// What a list field's change takes away: the items before that are not there after
/// (roles compare by name, a hub role's `:category` aside).
pub fn list_losses(change: &FieldChange) -> Vec<String> {
    let role = |item: &str| item.split(':').next().unwrap_or(item).trim().to_lowercase();
    let after: Vec<String> = rules::split_list(&change.after).map(role).collect();
    let mut lost: Vec<String> = rules::split_list(&change.before)
        .filter(|item| !after.contains(&role(item)))
        .map(|item| item.split(':').next().unwrap_or(item).trim().to_string())
        .collect();
    lost.dedup();
    lost
}

/// Options that change the field dictionary.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Custom Automation Hub role ids admitted beside the default ones.
    pub allowed_roles: Vec<u32>,
}

pub const NAMES: [&str; 3] = ["hub", "identity", "control-room"];

pub fn by_name(name: &str, options: &Options) -> Option<Box<dyn Platform>> {
    match name {
        "hub" => Some(Box::new(hub::Hub::new(options.allowed_roles.clone()))),
        "identity" => Some(Box::new(identity::Identity)),
        "control-room" => Some(Box::new(control_room::ControlRoom)),
        _ => None,
    }
}

/// What marks the header row of any platform's sheet: a column naming a user key (a key
/// field's name or alias, on any platform), so that a title above the header is passed over.
pub fn header_marks() -> crate::read::HeaderMarks {
    let options = Options::default();
    let platforms: Vec<Box<dyn Platform>> =
        NAMES.iter().filter_map(|n| by_name(n, &options)).collect();
    let keys = || {
        platforms
            .iter()
            .flat_map(|p| p.key_fields().iter().map(|&k| &p.fields()[k]))
    };
    let mut shown: Vec<&str> = Vec::new();
    for field in keys() {
        if !shown.contains(&field.name) {
            shown.push(field.name);
        }
    }
    let shown = match shown.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        _ => shown.join(""),
    };
    crate::read::HeaderMarks::new(
        keys().flat_map(|f| std::iter::once(f.name).chain(f.aliases.iter().copied())),
        shown,
    )
}

/// How well a header row fits each platform that has its key column, best first.
pub fn fits(headers: &[String], options: &Options) -> Vec<(columns::Fit, Box<dyn Platform>)> {
    let mut scored: Vec<(columns::Fit, Box<dyn Platform>)> = NAMES
        .iter()
        .filter_map(|n| by_name(n, options))
        .filter_map(|p| {
            let layout = crate::platform::columns::map_headers(headers, p.fields());
            let has_key = p.key_fields().iter().any(|&k| layout.has(k));
            has_key.then(|| (layout.matched(), p))
        })
        .collect();
    scored.sort_by_key(|s| std::cmp::Reverse(s.0));
    scored
}

/// Picks the platform a header row belongs to: among the platforms whose key column is present,
/// the one that matches the most columns exactly, if only one does.
pub fn detect(headers: &[String], options: &Options) -> Result<Box<dyn Platform>, String> {
    let mut scored = fits(headers, options);
    match scored.as_slice() {
        [] => Err(
            "the header names no user key of any platform (hub needs user_email; identity userId \
             or email; control-room id or username); give --platform to see what is wrong"
                .to_string(),
        ),
        [(best, _), (second, _), ..] if best == second => Err(format!(
            "the header fits more than one platform ({}); give --platform",
            scored
                .iter()
                .filter(|(s, _)| s == best)
                .map(|(_, p)| p.name())
                .collect::<Vec<_>>()
                .join(", ")
        )),
        _ => Ok(scored.remove(0).1),
    }
}

/// The platform a `--url` is the service root of, and what in it says so: when exactly one
/// platform recognises it.
pub fn from_url(url: &url::Url, options: &Options) -> Option<(Box<dyn Platform>, String)> {
    let mut claims: Vec<(Box<dyn Platform>, String)> = NAMES
        .iter()
        .filter_map(|n| by_name(n, options))
        .filter_map(|p| p.url_sign(url).map(|sign| (p, sign)))
        .collect();
    (claims.len() == 1).then(|| claims.remove(0))
}

/// The platform a command is for, as far as the command line tells before any file is read.
pub enum Named {
    /// By `--platform` (or a profile), and not contradicted by `--url`.
    Given(Box<dyn Platform>),
    /// By `--url` alone, with what in it says so.
    ByUrl(Box<dyn Platform>, String, url::Url),
    /// Neither: the headers must tell.
    Unknown,
}

/// The platform `name` (from `--platform` or a profile), or the one `url` is the service
/// root of. A name and a URL that say different platforms are a usage error, before anything
/// is read or sent.
pub fn named(name: Option<&str>, url: Option<&str>, options: &Options) -> Result<Named, Error> {
    let by_url = url
        .and_then(|u| url::Url::parse(u.trim()).ok())
        .and_then(|u| from_url(&u, options).map(|(p, sign)| (p, sign, u)));
    let Some(name) = name.filter(|n| !n.is_empty()) else {
        return Ok(match by_url {
            Some((p, sign, u)) => Named::ByUrl(p, sign, u),
            None => Named::Unknown,
        });
    };
    let given = by_name(name, options).ok_or_else(|| {
        Error::usage(format!(
            "unknown platform '{name}' (use {})",
            NAMES.join(", ")
        ))
    })?;
    match by_url {
        Some((p, sign, u)) if p.name() != given.name() => Err(Error::usage(format!(
            "the platform is {name} (from --platform or the profile), but --url {u} is {}'s: \
             {sign}. Give the {name} URL, or --platform {}",
            p.name(),
            p.name()
        ))),
        _ => Ok(Named::Given(given)),
    }
}

/// Whether one of a URL's path segments is `segment`, in any case.
pub fn has_segment(url: &url::Url, segment: &str) -> bool {
    url.path_segments()
        .into_iter()
        .flatten()
        .any(|s| s.eq_ignore_ascii_case(segment))
}

/// Reading every user up front is cheaper in calls, but holds them in memory: past this many
/// users, rows are read one by one instead, so memory does not grow with the tenant.
pub const MAX_CACHED_USERS: usize = 100_000;

/// `base` with `segments` appended, each percent-encoded, so an id can never change which
/// resource the URL names.
pub fn endpoint(base: &url::Url, segments: &[&str]) -> url::Url {
    let mut url = base.clone();
    url.set_query(None);
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty();
        path.extend(segments);
    }
    url
}

/// Sends a read and returns the server's answer when it accepted it; a refusal, or no answer,
/// becomes a `failed` outcome that says what was being read.
pub fn send_read(
    http: &Http,
    req: &crate::engine::Request,
    auth: &dyn crate::engine::Auth,
    what: &str,
) -> Result<crate::engine::Reply, Outcome> {
    let reply = http
        .send(req, auth)
        .map_err(|e| Outcome::from_call_error(e, 0))?;
    if !reply.is_success() {
        return Err(Outcome::with_error(
            crate::engine::Status::Failed,
            format!("{what}: {}", server_message(&reply)),
        )
        .http(reply.status, reply.attempts));
    }
    Ok(reply)
}

/// Sends a read (a list or a search) and returns its JSON body and the requests it took; a
/// refusal becomes a `failed` outcome that says what was being read.
pub fn read_json(
    http: &Http,
    req: &crate::engine::Request,
    auth: &dyn crate::engine::Auth,
    what: &str,
) -> Result<(Value, u32), Outcome> {
    let reply = send_read(http, req, auth, what)?;
    // Only the API's own JSON object is read: a web page or an empty body is never taken for
    // an empty list (which would turn every row into `not-found`).
    match reply.json() {
        Some(body @ Value::Object(_)) => Ok((body, reply.attempts)),
        _ => Err(not_the_api_outcome(&reply, what)),
    }
}

/// A read whose JSON this client does not understand: the row fails rather than guess.
pub fn unknown_shape(what: &str, attempts: u32) -> Outcome {
    Outcome::with_error(
        crate::engine::Status::Failed,
        format!("{what}: an answer this API does not give"),
    )
    .http(200, attempts)
}

/// A read answered by something other than the API: the row fails, naming what was read.
pub fn not_the_api_outcome(reply: &crate::engine::Reply, what: &str) -> Outcome {
    Outcome::with_error(
        crate::engine::Status::Failed,
        format!("{what}: {}", not_the_api(reply)),
    )
    .http(reply.status, reply.attempts)
}

/// The server's reason for refusing a request, from whichever error shape it used. Whole: it
/// is cut to length only after secrets are redacted from it, so no part of one survives a cut.
pub fn server_message(reply: &crate::engine::Reply) -> String {
    let reason = crate::engine::http::short_reason(&reply.body).unwrap_or_else(|| {
        let text = reply.body.trim();
        if text.is_empty() {
            "no reason given".to_string()
        } else if is_web_page(reply) {
            web_page_reason(text)
        } else {
            text.to_string()
        }
    });
    format!("HTTP {}: {reason}", reply.status)
}

/// What a web page answering for the API says, as a person reads it: its title (or first
/// heading), not its markup. A gateway's or a proxy's error page (`502 Bad Gateway`) is the
/// usual one.
fn web_page_reason(page: &str) -> String {
    const NOT_THE_API: &str =
        "a web page, not the API's answer: a proxy or a gateway may have answered";
    let lower = page.to_ascii_lowercase();
    let inner = |tag: &str| -> Option<&str> {
        let open = lower.find(&format!("<{tag}"))?;
        let start = open + lower[open..].find('>')? + 1;
        let end = start + lower[start..].find(&format!("</{tag}"))?;
        Some(&page[start..end])
    };
    let said = [inner("title"), inner("h1")]
        .into_iter()
        .flatten()
        .map(page_text)
        .find(|t| !t.is_empty());
    match said {
        Some(t) => format!("{t} ({NOT_THE_API})"),
        None => NOT_THE_API.to_string(),
    }
}

/// A piece of a page as text: tags dropped, the common entities read, spaces collapsed, cut
/// to a line.
fn page_text(html: &str) -> String {
    let mut text = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                text.push(' ');
            }
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    let text = text
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&nbsp;", " ")
        .replace("&amp;", "&");
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(160)
        .collect()
}

/// A failed first call: an unreachable server is a bad URL (exit 2), a refusal stops the run.
pub fn start_error(e: crate::engine::CallError, url: &url::Url) -> Error {
    match e {
        crate::engine::CallError::Transport { message, .. } => {
            Error::url(url, format!("cannot reach {url}: {message}"))
        }
        crate::engine::CallError::Unauthorized { message, .. } => Error::Authentication(message),
        other => Error::server(url, other.to_string()),
    }
}

/// The one authenticated read made before the first row, on every platform and with every
/// kind of credential: it proves that `--url` is the API (`what` says which, and where its
/// root is), that the credentials are accepted and that they may read users. When not, the
/// run stops (exit 2) saying which of the three is wrong. `missing_ok`: the read names a user
/// that need not exist, so the API's own 404 is an answer too. The answer, when it is one, is
/// the caller's to keep (a first page of users, say).
pub fn preflight(
    http: &Http,
    req: &crate::engine::Request,
    auth: &dyn crate::engine::Auth,
    url: &url::Url,
    what: &str,
    missing_ok: bool,
) -> Result<crate::engine::Reply, Error> {
    let reply = http.send(req, auth).map_err(|e| start_error(e, url))?;
    // Checked without building it: the answer may be a page of a thousand users.
    let not_json = || serde_json::from_str::<serde::de::IgnoredAny>(&reply.body).is_err();
    if is_web_page(&reply) || (reply.is_success() && not_json()) {
        return Err(Error::url(
            url,
            format!("{url} is not {what}: {}", not_the_api(&reply)),
        ));
    }
    match reply.status {
        200..=299 => Ok(reply),
        404 if missing_ok => Ok(reply),
        403 => Err(Error::Authentication(format!(
            "the credentials were accepted but lack the permission to read users ({})",
            server_message(&reply)
        ))),
        404 => Err(Error::url(
            url,
            format!(
                "{url} does not answer like {what}: {}",
                server_message(&reply)
            ),
        )),
        _ => Err(Error::Authentication(format!(
            "the server refused the credentials: {}",
            server_message(&reply)
        ))),
    }
}

/// The claims of a JWT, read without checking the signature (the server checks it).
pub fn jwt_claims(token: &str) -> Option<Value> {
    use base64::Engine;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Why an answer with a success status is still not the API's answer: a web page (a proxy,
/// a login page, a wrong `--url`), an empty body, or a shape this API does not give.
pub fn not_the_api(reply: &crate::engine::Reply) -> String {
    let body = reply.body.trim_start();
    let why = if body.is_empty() {
        "an empty answer, not the API's"
    } else if body.starts_with('<') {
        "the server answered with a web page, not the API: a proxy or login page, or a wrong --url"
    } else {
        "an answer this API does not give"
    };
    format!("HTTP {}: {why}", reply.status)
}

/// A value from the server, shortened for an error message.
pub fn shown(v: &Value) -> String {
    v.to_string().chars().take(80).collect()
}

/// Whether a body is a web page rather than JSON (an answer from something other than the API).
pub fn is_web_page(reply: &crate::engine::Reply) -> bool {
    reply.body.trim_start().starts_with('<')
}

/// Reads one user at its own URL: the record; none when the API says 404; or why not (a web
/// page where the API should answer is never taken for a missing user).
pub fn read_user(
    http: &Http,
    url: url::Url,
    auth: &dyn crate::engine::Auth,
) -> Result<rmw::Found, Outcome> {
    let reply = http
        .send(&crate::engine::Request::get(url), auth)
        .map_err(|e| Outcome::from_call_error(e, 0))?;
    match (reply.status, reply.json()) {
        (200, Some(Value::Object(m))) => Ok((Some(m), reply.attempts, 200)),
        (404, _) if !is_web_page(&reply) => Ok((None, reply.attempts, 404)),
        (200 | 404, _) => Err(not_the_api_outcome(&reply, "reading the user")),
        _ => Err(Outcome::with_error(
            crate::engine::Status::Failed,
            format!("reading the user: {}", server_message(&reply)),
        )
        .http(reply.status, reply.attempts)),
    }
}

/// `url` cut back to the service root when its path holds `api` (compared in any case, whole
/// segments), with everything after it: `…/automationhub_/api/v1/openapi/users` is
/// `…/automationhub_`. `None` when it does not.
pub fn service_root(url: &url::Url, api: &[&str]) -> Option<url::Url> {
    if api.is_empty() {
        return None;
    }
    let segments: Vec<&str> = url.path_segments()?.collect();
    let at = segments.windows(api.len()).position(|w| {
        w.iter()
            .zip(api)
            .all(|(segment, wanted)| segment.eq_ignore_ascii_case(wanted))
    })?;
    let mut root = url.clone();
    root.path_segments_mut()
        .ok()?
        .clear()
        .extend(&segments[..at]);
    Some(root)
}

#[cfg(test)]
mod tests {
    use super::{server_message, service_root, wildcard_match};
    use crate::engine::Reply;

    fn answered(status: u16, body: &str) -> String {
        server_message(&Reply {
            status,
            body: body.into(),
            attempts: 1,
            after_lost_answer: false,
        })
    }

    #[test]
    fn a_web_page_for_an_answer_is_said_by_its_title_not_its_markup() {
        let nginx = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n\
                     <center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n\
                     </body>\r\n</html>";
        assert_eq!(
            answered(502, nginx),
            "HTTP 502: 502 Bad Gateway (a web page, not the API's answer: a proxy or a gateway \
             may have answered)"
        );
        // No title: the first heading, its own markup and entities read as text.
        let page = "<!DOCTYPE html><HTML><BODY><H1 class=x>Service <b>Unavailable</b> &amp; \
                    busy</H1><p>Try later</p></BODY></HTML>";
        assert!(
            answered(503, page).starts_with("HTTP 503: Service Unavailable & busy (a web page"),
            "{}",
            answered(503, page)
        );
        // Neither: only what it is.
        assert_eq!(
            answered(500, "<html><body><p>oops</p></body></html>"),
            "HTTP 500: a web page, not the API's answer: a proxy or a gateway may have answered"
        );
        // The API's own words, and plain text, are as they were.
        assert_eq!(
            answered(400, r#"{"message":"bad email"}"#),
            "HTTP 400: bad email"
        );
        assert_eq!(answered(400, "plain words"), "HTTP 400: plain words");
    }

    #[test]
    fn keep_patterns_match_whole_names_with_star_wildcards_in_any_case() {
        assert!(wildcard_match("svc-*", "SVC-Robot01"));
        assert!(wildcard_match(
            "*@partner.example.com",
            "a@Partner.example.com"
        ));
        assert!(wildcard_match("break*glass*", "break-the-glass-1"));
        assert!(wildcard_match("*", "anyone"));
        assert!(wildcard_match("admin", "ADMIN"));
        // A pattern without `*` is the whole name, not a part of it.
        assert!(!wildcard_match("admin", "sysadmin"));
        assert!(!wildcard_match("svc-*", "my-svc-1"));
        // The end must still fit after the middle parts took their share.
        assert!(!wildcard_match("ab*b", "ab"));
        assert!(!wildcard_match("a*c*c", "abc"));
    }

    #[test]
    fn an_api_path_and_what_follows_it_are_cut_back_to_the_service_root() {
        let cut = |url: &str, api: &[&str]| {
            service_root(&url.parse().unwrap(), api).map(|u| u.to_string())
        };
        let hub = ["api", "v1", "openapi"];
        assert_eq!(
            cut(
                "https://cloud.uipath.com/org/t/automationhub_/api/v1/openapi",
                &hub
            )
            .as_deref(),
            Some("https://cloud.uipath.com/org/t/automationhub_")
        );
        assert_eq!(
            cut(
                "https://cloud.uipath.com/org/t/automationhub_/API/v1/OpenAPI/users/",
                &hub
            )
            .as_deref(),
            Some("https://cloud.uipath.com/org/t/automationhub_")
        );
        assert_eq!(
            cut("https://cr.example.com/v1", &["v1"]).as_deref(),
            Some("https://cr.example.com/")
        );
        assert_eq!(
            cut(
                "https://cloud.uipath.com/org/identity_/api/User",
                &["api", "user"]
            )
            .as_deref(),
            Some("https://cloud.uipath.com/org/identity_")
        );
        // Only whole segments: a prefix that merely looks like one stays.
        assert_eq!(cut("https://cr.example.com/v1app", &["v1"]), None);
        assert_eq!(
            cut("https://cloud.uipath.com/org/t/automationhub_", &hub),
            None
        );
    }
}
