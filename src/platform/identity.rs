//! UiPath Identity Server: `PUT {url}/api/User/{userId}`, users found by id or by e-mail inside
//! the organization's partition; a fixed access token or client credentials.

use std::sync::{Arc, OnceLock};

use reqwest::Method;
use serde_json::{json, Map, Value};

use super::cache::search_exact;
use super::dictionary::{self, count, index, indices, Dictionary, Kind, Pick, Place};
use super::page::{self, read_page, Users};
use super::rmw::{
    field_changes, Answer, Change, Found, ListPage, Names, PageAt, ReadModifyWrite, Total, Vendor,
};
use super::token::{RenewingToken, Token};
use super::{
    endpoint, jwt_claims, server_message, Changes, Checker, Connect, Edit, Field, Keep, Plan,
    Platform, Record, Session, Template, UserKey,
};
use crate::engine::http::NoAuth;
use crate::engine::{Auth, CallError, FieldChange, Http, Outcome, Reply, Request, Status};
use crate::error::Error;
use crate::rules::{self, FieldError, MAX_TEXT};

/// Identity's fields, in the order rows are checked in and a dry run describes; the template
/// has its own column order. Group moves and passwords are sent beside the record.
#[rustfmt::skip]
const FIELDS: &[Field] = {
    use dictionary::{Kind::*, Place::*, Sent::*, Shown::*};
    const TEXT: Kind = Text(MAX_TEXT);
    const GROUPS: Kind = List { item: "group", max: MAX_TEXT };
    &[
        // name                          aliases       kind              in the record            template: column, example, drop-down
        Field::new("userId",                     &["User Id"], Key(&Id),         UserId("id"),            Column(0, "00000000-0000-4000-8000-000000000001", &[])),
        Field::new("name",                       &["Given Name", "First Name"], TEXT,             InRecord("name"),        Column(2, "First00001", &[])),
        Field::new("surname",                    &["Family Name", "Last Name"], TEXT,             InRecord("surname"),     Column(3, "Last00001", &[])),
        Field::new("displayName",                &[],          TEXT,             InRecord("displayName"), Column(4, "First00001 Last00001", &[])),
        Field::new("email",                      &["Mail", "E-mail", "Email Address"], Key(&Email),      InRecord("email"),       Column(1, "", &[])),
        Field::new("isActive",                   &[],          YesNo(TrueFalse), InRecord("isActive"),    Column(5, "true", &["true", "false"])),
        Field::new("bypassBasicAuthRestriction", &[],          YesNo(TrueFalse), InRecord("bypassBasicAuthRestriction"), Column(6, "false", &["true", "false"])),
        Field::new("invitationAccepted",         &[],          YesNo(TrueFalse), InRecord("invitationAccepted"), Column(7, "", &["true", "false"])),
        Field::new("groupIDsToAdd",              &["groupsToAdd", "Add Groups"], GROUPS,           WriteOnly,               Column(8, "", &[])),
        Field::new("groupIDsToRemove",           &["groupsToRemove", "Remove Groups"], GROUPS,           WriteOnly,               Column(9, "", &[])),
        Field::new("password",                   &[],          Password,         WriteOnly,               Column(10, "", &[])),
    ]
};

const USER_ID: usize = index(FIELDS, "userId");
const EMAIL: usize = index(FIELDS, "email");
const IS_ACTIVE: usize = index(FIELDS, "isActive");
const GROUPS_ADD: usize = index(FIELDS, "groupIDsToAdd");
const GROUPS_REMOVE: usize = index(FIELDS, "groupIDsToRemove");
const KEYS: [usize; count(FIELDS, Pick::Keys)] = indices(FIELDS, Pick::Keys);
const PASSWORD: usize = index(FIELDS, "password");
const MASKED: [usize; count(FIELDS, Pick::Masked)] = indices(FIELDS, Pick::Masked);

pub struct Identity;

/// A user id no account has: the nil UUID.
const NO_ONE: &str = "00000000-0000-0000-0000-000000000000";

impl Dictionary for Identity {
    const FIELDS: &'static [Field] = FIELDS;

    // Inlined into the table's walk, as hub's are.
    #[inline]
    fn key(&self, c: &mut Checker) -> Option<UserKey> {
        let record = c.record;
        match (record.get(USER_ID), record.get(EMAIL)) {
            (Some(id), email) => {
                // With an id, an e-mail is a change to make.
                if email.is_some() {
                    c.email(EMAIL);
                }
                c.path_id(id).then(|| UserKey {
                    field: FIELDS[USER_ID].name,
                    value: id.value.to_string(),
                })
            }
            (None, Some(email)) => match rules::check_email(email.value) {
                Ok(()) => Some(UserKey {
                    field: FIELDS[EMAIL].name,
                    value: email.value.to_string(),
                }),
                Err(m) => {
                    c.fail(email, m);
                    None
                }
            },
            (None, None) => {
                let col = record.layout.field_col[USER_ID]
                    .or(record.layout.field_col[EMAIL])
                    .unwrap_or(0);
                c.errors
                    .push(record.error(col, "required: a userId, or an email to look the user up"));
                None
            }
        }
    }

    /// Both group lists at once, when the table comes to the first: a group in both is an error.
    #[inline]
    fn check_own(&self, field: usize, c: &mut Checker) {
        if field != GROUPS_ADD {
            return;
        }
        let add = c.list(GROUPS_ADD);
        let remove = c.list(GROUPS_REMOVE);
        if let (Some((add_cell, add)), Some((_, remove))) = (&add, &remove) {
            let both: Vec<&String> = add
                .iter()
                .filter(|g| remove.iter().any(|r| r.eq_ignore_ascii_case(g)))
                .collect();
            for g in both {
                c.fail(
                    *add_cell,
                    format!("group '{g}' is also in groupIDsToRemove (keep it in one list)"),
                );
            }
        }
        if let Some((_, add)) = add {
            c.changes
                .insert_with(FIELDS[GROUPS_ADD].name, || json!(add));
        }
        if let Some((_, remove)) = remove {
            c.changes
                .insert_with(FIELDS[GROUPS_REMOVE].name, || json!(remove));
        }
    }
}

impl Platform for Identity {
    fn deactivation(&self) -> Changes {
        deactivation()
    }

    /// The groups a row removes the user from.
    fn taken_away(&self, change: &FieldChange) -> Vec<String> {
        if change.field == FIELDS[GROUPS_REMOVE].name {
            rules::split_list(&change.after)
                .map(str::to_string)
                .collect()
        } else {
            Vec::new()
        }
    }

    /// Groups are moved, not listed: the groups a run added are removed again, and those it
    /// removed are added again.
    fn undo(&self, status: Status, changes: &[FieldChange]) -> super::undo::Undo {
        let turned: Vec<FieldChange> = changes
            .iter()
            .map(|c| {
                let opposite = match c.field.as_str() {
                    f if f == FIELDS[GROUPS_ADD].name => FIELDS[GROUPS_REMOVE].name,
                    f if f == FIELDS[GROUPS_REMOVE].name => FIELDS[GROUPS_ADD].name,
                    _ => return c.clone(),
                };
                FieldChange {
                    field: opposite.to_string(),
                    before: c.after.clone(),
                    after: String::new(),
                    hidden: false,
                }
            })
            .collect();
        super::undo::undo(FIELDS, &deactivation(), status, &turned)
    }

    fn name(&self) -> &'static str {
        "identity"
    }

    fn api_path(&self) -> &'static [&'static str] {
        &["api", "User"]
    }

    fn url_sign(&self, url: &url::Url) -> Option<String> {
        // Automation Cloud and Suite: `…/{org}/identity_`; a standalone Orchestrator:
        // `https://{host}/identity`.
        let path = url.path().to_ascii_lowercase();
        if let Some(seg) = ["identity_", "identity"]
            .into_iter()
            .find(|s| super::has_segment(url, s))
        {
            Some(format!("its path has {seg}, Identity Server's"))
        } else if path.contains("/api/user") || path.contains("/connect/token") {
            Some("its path has Identity Server's /api/User or /connect/token".into())
        } else {
            None
        }
    }

    fn fields(&self) -> &'static [Field] {
        FIELDS
    }

    fn key_fields(&self) -> &'static [usize] {
        &KEYS
    }

    fn masked_fields(&self) -> &'static [usize] {
        &MASKED
    }

    fn validate(&self, record: &Record) -> Result<Edit, Vec<FieldError>> {
        dictionary::check(self, record)
    }

    fn template(&self) -> Template {
        dictionary::template(FIELDS)
    }

    fn cannot_create(&self, edit: &Edit) -> Vec<String> {
        creation_problems(edit)
    }

    fn default_rate(&self) -> f64 {
        // UiPath publishes 160 PUT and 300 GET per 5 minutes per organization: 150 requests
        // of either kind per 5 minutes stays inside both.
        0.5
    }

    fn connect(&self, settings: &Connect) -> Result<Box<dyn Session>, Error> {
        let secrets = settings.secrets;
        let token_url = endpoint(settings.url, &["connect", "token"]);
        let credentials = match (&secrets.client_id, &secrets.client_secret) {
            (Some(id), Some(secret)) => Some((id.clone(), secret.clone())),
            (Some(_), None) | (None, Some(_)) => {
                return Err(Error::Credentials(
                    "identity client credentials need both BULKEDIT_CLIENT_ID and BULKEDIT_CLIENT_SECRET"
                        .into(),
                ))
            }
            (None, None) => None,
        };
        let first =
            match (&secrets.token, &credentials) {
                (Some(t), _) => Token::from_jwt(t.clone()),
                (None, Some((id, secret))) => fetch_token(&settings.http, &token_url, id, secret)
                    .map_err(|e| match e {
                    // Something other than Identity answered where its token endpoint
                    // should be: a wrong --url.
                    TokenError::NotTheApi(m) => Error::url(
                        settings.url,
                        format!(
                            "cannot get a token from {token_url}: {m} (is --url everything \
                                 before /api/User?)"
                        ),
                    ),
                    TokenError::Refused(m) => {
                        Error::Authentication(format!("cannot get a token from {token_url}: {m}"))
                    }
                })?,
                (None, None) => return Err(Error::Credentials(
                    "identity needs BULKEDIT_TOKEN (an access token) or BULKEDIT_CLIENT_ID and \
                     BULKEDIT_CLIENT_SECRET (an external application), or --token-file"
                        .into(),
                )),
            };
        let partition = jwt_claims(&first.value)
            .and_then(|c| c.get("prt_id").and_then(Value::as_str).map(str::to_string))
            .or_else(|| settings.partition.map(str::to_string));
        let session = IdentitySession {
            http: Arc::clone(&settings.http),
            auth: IdentityAuth {
                token: RenewingToken::new(first).learning(secrets.clone()),
                credentials,
                token_url,
            },
            base: settings.url.clone(),
            partition,
            groups: OnceLock::new(),
        };
        // One read proves the URL, the token and the permission to read users before any
        // row: one user of the partition, or without a partition a user by an id no one has
        // (the API's own 404 answers as well as a user would).
        // When the run is about to read the whole list, that user is its first page.
        let listing = settings.first_page && session.partition.is_some();
        let (url, missing_ok) = match &session.partition {
            Some(p) => {
                let top = if listing { IdentitySession::PAGE } else { 1 };
                let mut url = endpoint(&session.base, &["api", "User", "users", p]);
                url.query_pairs_mut()
                    .append_pair("searchTerm", "")
                    .append_pair("top", &top.to_string())
                    .append_pair("skip", "0");
                (url, false)
            }
            None => (endpoint(&session.base, &["api", "User", NO_ONE]), true),
        };
        let reply = super::preflight(
            &settings.http,
            &Request::get(url),
            &session.auth,
            settings.url,
            "Identity Server's API (is --url everything before /api/User?)",
            missing_ok,
        )?;
        let first = listing
            .then(|| {
                let (envelope, users) = page::split_page(&reply.body, &["results"])?;
                let total = envelope["totalCount"].as_u64().unwrap_or(0) as usize;
                Some(ListPage {
                    users,
                    total: Total::Users(total),
                })
            })
            .flatten();
        Ok(Box::new(
            ReadModifyWrite::new(session, settings.url.clone()).with_first_page(first),
        ))
    }
}

/// Why no token came from the token endpoint.
enum TokenError {
    /// Something other than Identity answered: a web page, an empty body, a wrong --url.
    NotTheApi(String),
    Refused(String),
}

impl From<TokenError> for String {
    fn from(e: TokenError) -> String {
        match e {
            TokenError::NotTheApi(m) | TokenError::Refused(m) => m,
        }
    }
}

fn fetch_token(
    http: &Http,
    token_url: &url::Url,
    id: &str,
    secret: &str,
) -> Result<Token, TokenError> {
    let req = Request::new(Method::POST, token_url.clone()).form(&[
        ("grant_type", "client_credentials"),
        ("client_id", id),
        ("client_secret", secret),
        ("scope", "PM.User PM.User.Write"),
    ]);
    let reply = http.send(&req, &NoAuth).map_err(|e| match e {
        crate::engine::CallError::Transport { message, .. } => TokenError::NotTheApi(message),
        crate::engine::CallError::Unauthorized { message, .. } => TokenError::Refused(message),
        other => TokenError::Refused(other.to_string()),
    })?;
    if super::is_web_page(&reply) || (reply.is_success() && reply.json().is_none()) {
        return Err(TokenError::NotTheApi(super::not_the_api(&reply)));
    }
    let body = reply.json().unwrap_or(Value::Null);
    match body.get("access_token").and_then(Value::as_str) {
        Some(t) if reply.is_success() => Ok(Token {
            value: t.to_string(),
            lifetime: body
                .get("expires_in")
                .and_then(Value::as_u64)
                .map(std::time::Duration::from_secs),
        }),
        _ => Err(TokenError::Refused(server_message(&reply))),
    }
}

struct IdentityAuth {
    token: RenewingToken,
    credentials: Option<(String, String)>,
    token_url: url::Url,
}

impl Auth for IdentityAuth {
    fn headers(&self) -> Vec<(&'static str, String)> {
        vec![("authorization", format!("Bearer {}", self.token.value()))]
    }

    fn generation(&self) -> u64 {
        self.token.generation()
    }

    fn renew(&self, http: &Http, seen: u64) -> Result<bool, String> {
        let Some((id, secret)) = &self.credentials else {
            return Ok(false);
        };
        // There is no refresh token: client credentials simply ask again.
        self.token.renew(seen, |_| {
            fetch_token(http, &self.token_url, id, secret).map_err(String::from)
        })
    }

    fn before_request(&self, http: &Http) {
        if self.credentials.is_some() && self.token.expiring_soon() {
            // A failure here is retried by the 401 path.
            let _ = self.renew(http, self.token.generation());
        }
    }
}

struct IdentitySession {
    http: Arc<Http>,
    auth: IdentityAuth,
    base: url::Url,
    partition: Option<String>,
    /// The organization's groups (id as keys compare, name), read once when a row needs them.
    groups: OnceLock<Result<Names, Outcome>>,
}

impl IdentitySession {
    fn group_catalog(&self) -> Result<&Names, Outcome> {
        self.groups
            .get_or_init(|| self.names())
            .as_ref()
            .map_err(Clone::clone)
    }

    /// A group named by its id or its name (any case) as the id it is sent as; `None` when
    /// the organization has no such group, or its groups have not been read.
    fn group_id(&self, item: &str) -> Option<String> {
        let groups = self.groups.get()?.as_ref().ok()?;
        let key = rules::normalize_key(item);
        groups
            .iter()
            .find(|(id, _)| *id == key)
            .or_else(|| {
                groups
                    .iter()
                    .find(|(_, n)| n.eq_ignore_ascii_case(item.trim()))
            })
            .map(|(id, _)| id.clone())
    }

    /// A group id as a sheet shows it: its name when that names it alone and reads back as
    /// one list item, else the id.
    fn group_shown(&self, id: &str) -> String {
        let Some(Ok(groups)) = self.groups.get() else {
            return id.to_string();
        };
        shown_name(groups, id)
    }

    fn search(
        &self,
        partition: &str,
        term: &str,
        top: usize,
        skip: usize,
    ) -> Result<(Users, usize, u32), Outcome> {
        let mut url = endpoint(&self.base, &["api", "User", "users", partition]);
        url.query_pairs_mut()
            .append_pair("searchTerm", term)
            .append_pair("top", &top.to_string())
            .append_pair("skip", &skip.to_string());
        let req = Request::get(url);
        let (body, results, attempts) = read_page(
            &self.http,
            &req,
            &self.auth,
            "searching users",
            &["results"],
        )?;
        let total = body["totalCount"].as_u64().unwrap_or(0) as usize;
        Ok((results, total, attempts))
    }

    fn partition(&self) -> Result<&str, Outcome> {
        self.partition.as_deref().ok_or_else(|| {
            Outcome::with_error(Status::Failed, "no partition to look e-mails up in")
        })
    }
}

/// A group's name when it names that group alone and reads back as one list item; else its id.
fn shown_name(groups: &Names, id: &str) -> String {
    let key = rules::normalize_key(id);
    let Some((_, name)) = groups.iter().find(|(g, _)| *g == key) else {
        return id.to_string();
    };
    let alone = groups
        .iter()
        .filter(|(_, n)| n.eq_ignore_ascii_case(name))
        .count()
        == 1;
    let readable = !name.contains([';', ',']) && name.trim() == name && !name.is_empty();
    if alone && readable && !groups.iter().any(|(g, _)| g.eq_ignore_ascii_case(name)) {
        name.clone()
    } else {
        id.to_string()
    }
}

fn str_list(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(rules::normalize_key))
                .collect()
        })
        .unwrap_or_default()
}

/// The reason from any of Identity's three rejection shapes.
fn rejection(reply: &Reply) -> String {
    let Some(body) = reply.json() else {
        return server_message(reply);
    };
    match &body["errors"] {
        // `{"succeeded": false, "errors": [{"code", "description"}]}`
        Value::Array(errors) if !errors.is_empty() => {
            let text: Vec<String> = errors
                .iter()
                .map(|e| {
                    let d = e["description"].as_str().unwrap_or("");
                    match e["code"].as_str() {
                        Some(code) if !d.is_empty() => format!("{code}: {d}"),
                        Some(code) => code.to_string(),
                        None => d.to_string(),
                    }
                })
                .collect();
            format!("HTTP {}: {}", reply.status, text.join("; "))
        }
        // The validation problem: `{"errors": {"field": ["message"]}, "title": …}`
        Value::Object(fields) if !fields.is_empty() => {
            let text: Vec<String> = fields
                .iter()
                .map(|(f, msgs)| {
                    let m: Vec<&str> = msgs
                        .as_array()
                        .map(|a| a.iter().filter_map(Value::as_str).collect())
                        .unwrap_or_default();
                    format!("{f}: {}", m.join(" "))
                })
                .collect();
            format!("HTTP {}: {}", reply.status, text.join("; "))
        }
        _ => server_message(reply),
    }
}

impl Vendor for IdentitySession {
    const FIELDS: &'static [Field] = FIELDS;
    const PAGE: usize = 1000;

    /// Users are listed inside the partition only: without one, e-mails cannot be looked up
    /// and the list cannot be read.
    fn can_list(&self, plan: &Plan) -> Result<bool, Error> {
        if plan.lookups > 0 && self.partition.is_none() {
            return Err(Error::usage(
                "identity looks users up by e-mail inside the organization's partition: give \
                 --partition ID or BULKEDIT_PARTITION (the token has no prt_id claim)",
            ));
        }
        Ok(self.partition.is_some())
    }

    fn list_page(&self, at: &PageAt) -> Result<ListPage, Outcome> {
        let (users, total, _) = self.search(self.partition()?, "", at.size, at.offset)?;
        Ok(ListPage {
            users,
            total: Total::Users(total),
        })
    }

    fn find(&self, key: &UserKey) -> Result<Found, Outcome> {
        if key.field == FIELDS[USER_ID].name {
            return self.read(&key.value);
        }
        // The search matches loosely: only the exact e-mail is the row's user, on any page.
        const TOP: usize = 50;
        let partition = self.partition()?;
        let mut skip = 0;
        search_exact(FIELDS[EMAIL].name, &key.value, |_| {
            let (results, total, n) = self.search(partition, &key.value, TOP, skip)?;
            skip += results.len();
            Ok((page::values(results), skip < total, n))
        })
    }

    fn read(&self, id: &str) -> Result<Found, Outcome> {
        let url = endpoint(&self.base, &["api", "User", id]);
        super::read_user(&self.http, url, &self.auth)
    }

    fn not_found(&self, key: &UserKey) -> String {
        let what = if key.field == FIELDS[USER_ID].name {
            "id"
        } else {
            "e-mail"
        };
        format!("no Identity user has this {what}")
    }

    /// Groups named by id or by name, checked against the organization's own list.
    fn unknown_names(&self, edit: &Edit) -> Result<(), Outcome> {
        let items: Vec<(usize, String)> = [GROUPS_ADD, GROUPS_REMOVE]
            .into_iter()
            .flat_map(|f| {
                let list = edit
                    .changes
                    .get(FIELDS[f].name)
                    .map(str_list)
                    .unwrap_or_default();
                list.into_iter().map(move |g| (f, g))
            })
            .collect();
        if items.is_empty() {
            return Ok(());
        }
        let groups = self.group_catalog()?;
        for (field, item) in items {
            // A name two groups share says neither: their ids do.
            let key = rules::normalize_key(&item);
            let named: Vec<&str> = groups
                .iter()
                .filter(|(_, n)| n.eq_ignore_ascii_case(item.trim()))
                .map(|(id, _)| id.as_str())
                .collect();
            if named.len() > 1 && !groups.iter().any(|(id, _)| *id == key) {
                return Err(Outcome::with_error(
                    Status::Invalid,
                    format!(
                        "{}: {} groups are named '{}' (ids {}): give the id",
                        FIELDS[field].name,
                        named.len(),
                        item.trim(),
                        named.join(", ")
                    ),
                ));
            }
            if self.group_id(&item).is_none() {
                let names: Vec<&str> = groups.iter().map(|(_, n)| n.as_str()).collect();
                return Err(Outcome::with_error(
                    Status::Invalid,
                    format!(
                        "{}: {}",
                        FIELDS[field].name,
                        super::rmw::no_such("group", &item, &names)
                    ),
                ));
            }
        }
        Ok(())
    }

    /// A row that moves groups needs the user's groups as a list of ids: read any other
    /// way (none, `null`, a name), each move would look already made and be dropped unsaid.
    fn settle(&self, record: &mut Map<String, Value>, edit: &Edit) -> Result<(), String> {
        let moves = [GROUPS_ADD, GROUPS_REMOVE]
            .iter()
            .any(|&f| edit.changes.get(FIELDS[f].name).is_some());
        let listed = match record.get("groupIDs") {
            Some(Value::Array(ids)) => ids.iter().all(Value::is_string),
            _ => false,
        };
        // A new user's record is made here, and has no groups until it is created.
        let read = record.contains_key("id");
        if moves && read && !listed {
            let held = record.get("groupIDs").map_or("none".into(), super::shown);
            return Err(format!(
                "the server's record does not list the user's groups as ids (groupIDs: {held}), \
                 so the group moves cannot be worked out: nothing was sent"
            ));
        }
        Ok(())
    }

    /// Only the group moves that change something: groups are compared as the keys are.
    fn beside(&self, current: &Map<String, Value>, edit: &Edit) -> Vec<(&'static str, Value)> {
        let member_of = str_list(current.get("groupIDs").unwrap_or(&Value::Null));
        let moves = |field: usize, member: bool| {
            let groups: Vec<Value> = edit
                .changes
                .get(FIELDS[field].name)
                .map(str_list)
                .unwrap_or_default()
                .into_iter()
                .map(|g| self.group_id(&g).unwrap_or(g))
                .filter(|g| member_of.contains(g) == member)
                .map(Value::String)
                .collect();
            (!groups.is_empty()).then_some((FIELDS[field].name, Value::Array(groups)))
        };
        let password = FIELDS[PASSWORD].name;
        [moves(GROUPS_ADD, false), moves(GROUPS_REMOVE, true)]
            .into_iter()
            .flatten()
            .chain(edit.changes.get(password).map(|p| (password, p.clone())))
            .collect()
    }

    /// The record's fields, then the group moves that change something (by name) and a
    /// password, which is never shown.
    fn describe(&self, change: &Change) -> Vec<FieldChange> {
        let mut changes = field_changes(self, change);
        changes.extend(change.beside.iter().map(|(field, value)| {
            let groups: Vec<String> = value
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(|id| self.group_shown(id))
                .collect();
            FieldChange {
                field: field.to_string(),
                before: String::new(),
                after: groups.join("; "),
                hidden: *field == FIELDS[PASSWORD].name,
            }
        }));
        changes
    }

    /// Text fields are re-sent with every change, as UiPath's own PowerShell module does, so
    /// that a server that clears omitted fields loses nothing; yes/no fields only when changed.
    fn write(&self, id: &str, change: &Change) -> Result<Reply, CallError> {
        let mut body = Map::new();
        for field in FIELDS {
            let Place::InRecord(key) = field.place else {
                continue;
            };
            let (before, after) = (&change.before[key], &change.after[key]);
            let send = match field.kind {
                Kind::YesNo(_) => after != before,
                _ => !after.is_null(),
            };
            if send {
                body.insert(key.to_string(), after.clone());
            }
        }
        body.extend(
            change
                .beside
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone())),
        );
        let req = Request::new(Method::PUT, endpoint(&self.base, &["api", "User", id]))
            .json(&Value::Object(body));
        self.http.send(&req, &self.auth)
    }

    fn interpret(&self, _id: &str, reply: &Reply) -> Answer {
        succeeded(reply)
    }

    /// Beside what the row must give, the organization's partition.
    fn cannot_create(&self, edit: &Edit) -> Vec<String> {
        let mut problems = creation_problems(edit);
        if self.partition.is_none() {
            problems.push(
                "the organization's partition is needed: give --partition ID or \
                 BULKEDIT_PARTITION (the token has no prt_id claim)"
                    .into(),
            );
        }
        problems
    }

    /// `CreateUserCommand`: the record's fields, an id this client chooses (a fresh UUID v4,
    /// or the row's `userId`) so the run knows the user it made, the e-mail as user name,
    /// the partition, the groups to add as `groupIDs`, and a password when the row gives one.
    fn create(&self, edit: &Edit, change: &Change) -> Result<Reply, CallError> {
        let id = if edit.key.field == FIELDS[USER_ID].name {
            edit.key.value.trim().to_lowercase()
        } else {
            uuid::Uuid::new_v4().to_string()
        };
        let mut body = Map::new();
        body.insert("id".into(), json!(id));
        for (k, v) in change.after.iter().filter(|(_, v)| !v.is_null()) {
            body.insert(k.clone(), v.clone());
        }
        if let Some(email) = change.after.get(FIELDS[EMAIL].name).cloned() {
            body.insert("userName".into(), email);
        }
        body.insert("partitionGlobalId".into(), json!(self.partition));
        if let Some(groups) = edit.changes.get(FIELDS[GROUPS_ADD].name) {
            // Named by id or by name: sent as ids.
            let ids: Vec<String> = str_list(groups)
                .into_iter()
                .map(|g| self.group_id(&g).unwrap_or(g))
                .collect();
            body.insert("groupIDs".into(), json!(ids));
        }
        if let Some(password) = edit.changes.get(FIELDS[PASSWORD].name) {
            body.insert(FIELDS[PASSWORD].name.into(), password.clone());
        }
        let req = Request::new(Method::POST, endpoint(&self.base, &["api", "User"]))
            .json(&Value::Object(body));
        self.http.send(&req, &self.auth)
    }

    fn created(&self, _edit: &Edit, reply: &Reply) -> Answer {
        succeeded(reply)
    }

    fn is_active(&self, user: &Map<String, Value>) -> bool {
        let active = FIELDS[IS_ACTIVE].name;
        user.get(active).and_then(Value::as_bool) != Some(false)
    }

    fn deactivation(&self) -> Changes {
        deactivation()
    }

    /// Its id and e-mail, and its user name.
    fn known_as(&self, user: &Map<String, Value>) -> Vec<String> {
        ["id", "email", "userName"]
            .iter()
            .filter_map(|k| user.get(*k).and_then(Value::as_str).map(str::to_string))
            .collect()
    }

    /// A user's access token names its user (`sub`, and often `email`); client credentials
    /// and tokens without those claims name no user of the organization.
    fn caller(&self) -> Option<String> {
        let claims = jwt_claims(&self.auth.token.value())?;
        ["email", "preferred_username", "sub"]
            .iter()
            .find_map(|c| claims.get(*c).and_then(Value::as_str).map(str::to_string))
    }

    /// `GET /api/Group/{partitionGlobalId}`: a bare array of every group.
    fn names(&self) -> Result<Names, Outcome> {
        let url = endpoint(&self.base, &["api", "Group", self.partition()?]);
        let what = "reading the groups";
        let reply = super::send_read(&self.http, &Request::get(url), &self.auth, what)?;
        match reply.json() {
            Some(Value::Array(groups)) => Ok(groups
                .iter()
                .filter_map(|g| {
                    let id = g["id"].as_str()?;
                    Some((rules::normalize_key(id), g["name"].as_str()?.to_string()))
                })
                .collect()),
            _ => Err(super::not_the_api_outcome(&reply, what)),
        }
    }

    /// The user's groups, by name, in `groupIDsToAdd`: adding a group a user is in changes
    /// nothing, so the file applies unchanged, and restores the memberships where they were
    /// lost. A group whose name is not its alone (or holds a list separator) goes by its id.
    fn exported(&self, field: &Field, user: &Map<String, Value>, names: &Names) -> Option<String> {
        if field.name == FIELDS[GROUPS_ADD].name {
            let groups: Vec<String> = user
                .get("groupIDs")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(|id| shown_name(names, id))
                .collect();
            Some(groups.join("; "))
        } else {
            None
        }
    }
}

/// `POST /api/User` needs an e-mail (the user name is the e-mail); a row keyed by `userId`
/// gives the new user that id, so it must be a GUID.
fn creation_problems(edit: &Edit) -> Vec<String> {
    let mut problems = Vec::new();
    let by_id = edit.key.field == FIELDS[USER_ID].name;
    if by_id && uuid::Uuid::try_parse(&edit.key.value).is_err() {
        problems.push(format!(
            "{} must be a GUID to be a new user's id (or leave it empty and name the user \
             by email)",
            FIELDS[USER_ID].name
        ));
    }
    let has_email = !by_id
        || edit
            .changes
            .get(FIELDS[EMAIL].name)
            .and_then(Value::as_str)
            .is_some_and(|e| !e.trim().is_empty());
    if !has_email {
        problems.push(format!("{} is needed", FIELDS[EMAIL].name));
    }
    problems
}

/// Identity may answer 200 and still refuse: the body has the last word, and only
/// `"succeeded": true` is a success.
fn succeeded(reply: &Reply) -> Answer {
    let body = reply.json();
    match body.as_ref().map(|b| &b["succeeded"]) {
        Some(Value::Bool(true)) if reply.is_success() => Answer::Accepted,
        Some(Value::Bool(false)) => Answer::Refused(rejection(reply)),
        _ if reply.is_success() => Answer::Refused(super::not_the_api(reply)),
        _ => Answer::Refused(rejection(reply)),
    }
}

/// `isActive: false`.
fn deactivation() -> Changes {
    let mut changes = Changes::new(Keep::Changes);
    changes.insert(FIELDS[IS_ACTIVE].name, false);
    changes
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::engine::HttpSettings;
    use crate::platform::rmw::merge;
    use crate::platform::{Changes, Keep};

    fn session() -> IdentitySession {
        let base: url::Url = "http://127.0.0.1/identity_".parse().unwrap();
        IdentitySession {
            http: Arc::new(Http::new(HttpSettings::default(), Default::default()).unwrap()),
            auth: IdentityAuth {
                token: RenewingToken::new(Token {
                    value: "t".into(),
                    lifetime: None,
                }),
                credentials: None,
                token_url: endpoint(&base, &["connect", "token"]),
            },
            base,
            partition: None,
            groups: OnceLock::new(),
        }
    }

    #[test]
    fn a_group_name_two_groups_share_makes_the_row_invalid_and_its_id_does_not() {
        let s = session();
        let finance = |i: u8| {
            (
                format!("20000000-0000-4000-8000-00000000000{i}"),
                "Finance".to_string(),
            )
        };
        let _ = s
            .groups
            .set(Ok(vec![finance(1), finance(2)].into_iter().collect()));
        let edit = |item: &str| {
            let mut changes = Changes::default();
            changes.insert("groupIDsToAdd", json!([item]));
            Edit {
                key: UserKey {
                    field: "userId",
                    value: "00000000-0000-4000-8000-000000000001".into(),
                },
                changes,
                plan: None,
            }
        };
        let o = s.unknown_names(&edit("finance")).unwrap_err();
        assert_eq!(o.status, Status::Invalid);
        assert!(
            o.error.contains("2 groups are named 'finance'"),
            "{}",
            o.error
        );
        assert!(s
            .unknown_names(&edit("20000000-0000-4000-8000-000000000002"))
            .is_ok());
    }

    #[test]
    fn the_template_keeps_its_columns_examples_and_drop_downs() {
        let t = Identity.template();
        assert_eq!(
            t.headers,
            [
                "userId",
                "email",
                "name",
                "surname",
                "displayName",
                "isActive",
                "bypassBasicAuthRestriction",
                "invitationAccepted",
                "groupIDsToAdd",
                "groupIDsToRemove",
                "password",
            ]
        );
        let example = ["00000000-0000-4000-8000-000000000001", "", "First00001"];
        assert_eq!(t.example[..3], example);
        assert_eq!(
            t.example[3..8],
            ["Last00001", "First00001 Last00001", "true", "false", ""]
        );
        let yes_no = |f| (f, vec!["true", "false"]);
        assert_eq!(
            t.choices,
            [
                yes_no("isActive"),
                yes_no("bypassBasicAuthRestriction"),
                yes_no("invitationAccepted")
            ]
        );
        assert_eq!(Identity.masked_fields(), [PASSWORD]);
        assert_eq!(Identity.key_fields(), [USER_ID, EMAIL]);
    }

    #[test]
    fn a_dry_run_names_record_changes_then_the_group_moves_that_change_something() {
        let current = json!({
            "id": "x", "name": "Ann", "email": "a@example.com", "isActive": true,
            "groupIDs": ["G1"],
        });
        let mut changes = Changes::new(Keep::Changes);
        changes.insert("isActive", false);
        changes.insert("surname", "Lee");
        changes.insert("groupIDsToAdd", json!(["g1", "G2"]));
        changes.insert("groupIDsToRemove", json!(["g1", "g3"]));
        changes.insert("password", "secret");
        let edit = Edit {
            key: UserKey {
                field: "userId",
                value: "x".into(),
            },
            changes,
            plan: None,
        };
        let s = session();
        let change = merge(&s, current.as_object().unwrap().clone(), &edit).unwrap();
        let said: Vec<_> = s
            .describe(&change)
            .into_iter()
            .map(|c| (c.field, c.before, c.after, c.hidden))
            .collect();
        let c = |f: &str, b: &str, a: &str, h| (f.to_string(), b.to_string(), a.to_string(), h);
        assert_eq!(
            said,
            [
                c("surname", "", "Lee", false),
                c("isActive", "true", "false", false),
                c("groupIDsToAdd", "", "g2", false),
                c("groupIDsToRemove", "", "g1", false),
                c("password", "", "", true),
            ]
        );
        // Nothing but a group already joined: nothing to send.
        let mut changes = Changes::new(Keep::Changes);
        changes.insert("groupIDsToAdd", json!(["g1"]));
        let edit = Edit { changes, ..edit };
        let change = merge(&s, current.as_object().unwrap().clone(), &edit).unwrap();
        assert!(change.is_empty());
    }
}
