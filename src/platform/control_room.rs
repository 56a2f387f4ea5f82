//! Automation Anywhere Control Room: `PUT {url}/v1/usermanagement/users/{id}` replaces the whole
//! user, so every change is a read, a merge and a write of the full object with its `version`.

use std::sync::{Arc, OnceLock};

use reqwest::Method;
use serde_json::{json, Value};

use super::cache::search_exact;
use super::dictionary::{self, count, index, indices, Dictionary, Pick};
use super::page::{self, read_page, Users};
use super::rmw::{Answer, Change, Found, ListPage, Names, PageAt, ReadModifyWrite, Total, Vendor};
use super::token::{RenewingToken, Token};
use super::{
    endpoint, server_message, Changes, Checker, Connect, Edit, Field, Keep, Platform, Record,
    Session, Template, UserKey,
};
use crate::engine::http::NoAuth;
use crate::engine::{Auth, CallError, FieldChange, Http, Outcome, Reply, Request, Status};
use crate::error::Error;
use crate::rules::{self, FieldError, MAX_TEXT};

/// The Control Room's fields, in the order rows are checked in and a dry run describes; the
/// template has its own column order. A PUT sends back the whole record as read.
#[rustfmt::skip]
const FIELDS: &[Field] = {
    use dictionary::{Kind::*, Place::*, Sent::*, Shown::*};
    const TEXT: dictionary::Kind = Text(MAX_TEXT);
    &[
        // name            aliases       kind                           in the record          template: column, example, drop-down
        Field::new("id",          &["User Id"], Key(&Id),                      UserId("id"),          Column(0, "", &[])),
        Field::new("username",    &["Login", "User Name"], Key(&TEXT),                    InRecord("username"),  Column(1, "example.user", &[])),
        Field::new("email",       &["Mail", "Email Address"], Email,                         InRecord("email"),     Column(2, "user00001@example.com", &[])),
        Field::new("firstName",   &["First Name", "Given Name"], TEXT,                          InRecord("firstName"), Column(3, "First00001", &[])),
        Field::new("lastName",    &["Last Name", "Surname", "Family Name"], TEXT,                          InRecord("lastName"),  Column(4, "Last00001", &[])),
        Field::new("description", &[],          TEXT,                          InRecord("description"), Column(5, "Finance bot runner", &[])),
        Field::new("domain",      &[],          TEXT,                          InRecord("domain"),    Column(6, "", &[])),
        Field::new("disabled",    &[],          YesNo(TrueFalse),              InRecord("disabled"),  Column(8, "false", &["true", "false"])),
        Field::new("roles",       &[],          List { item: "role", max: MAX_TEXT }, InRecord("roles"), Column(7, "AAE_Basic; Bot Runner", &[])),
        Field::new("rolesToAdd",  &["Add Roles"], List { item: "role", max: MAX_TEXT }, WriteOnly,    Hidden),
        Field::new("rolesToRemove", &["Remove Roles"], List { item: "role", max: MAX_TEXT }, WriteOnly, Hidden),
        Field::new("password",    &[],          Password,                      WriteOnly,             Hidden),
    ]
};

const ID: usize = index(FIELDS, "id");
const USERNAME: usize = index(FIELDS, "username");
const ROLES: usize = index(FIELDS, "roles");
const ROLES_ADD: usize = index(FIELDS, "rolesToAdd");
const ROLES_REMOVE: usize = index(FIELDS, "rolesToRemove");
const EMAIL: usize = index(FIELDS, "email");
const DISABLED: usize = index(FIELDS, "disabled");
const PASSWORD: usize = index(FIELDS, "password");
const KEYS: [usize; count(FIELDS, Pick::Keys)] = indices(FIELDS, Pick::Keys);
const MASKED: [usize; count(FIELDS, Pick::Masked)] = indices(FIELDS, Pick::Masked);

/// The Control Room's documented password rule: 8 to 15 of these characters.
fn password_rule(p: &str) -> Result<(), String> {
    let n = p.chars().count();
    let odd: String = p
        .chars()
        .filter(|c| !(c.is_ascii_alphanumeric() || "@-_!#$%&.".contains(*c)))
        .collect();
    if !(8..=15).contains(&n) {
        return Err(format!(
            "a Control Room password has 8 to 15 characters, not {n}"
        ));
    }
    if !odd.is_empty() {
        return Err(
            "a Control Room password holds only a-z A-Z 0-9 and @ - _ ! # $ % & .".to_string(),
        );
    }
    Ok(())
}

pub struct ControlRoom;

impl Dictionary for ControlRoom {
    const FIELDS: &'static [Field] = FIELDS;

    // Inlined into the table's walk, as hub's are.
    #[inline]
    fn key(&self, c: &mut Checker) -> Option<UserKey> {
        let record = c.record;
        // The password's own rule, beside the generic password checks the table drives (a
        // password kind has no hook of its own); never repeating the value.
        if let Some(cell) = record.get(PASSWORD) {
            let masked =
                cell.value.trim() == "***" || cell.value.eq_ignore_ascii_case(super::CLEAR);
            if let (false, Err(m)) = (masked, password_rule(cell.value)) {
                c.fail(cell, m);
            }
        }
        match (record.get(ID), record.get(USERNAME)) {
            (Some(id), name) => {
                // With an id, a username is a change to make.
                if let Some(name) = name {
                    if name.value.eq_ignore_ascii_case(super::CLEAR) {
                        c.fail(
                            name,
                            "a user must keep a username (leave the cell empty to keep it)",
                        );
                    } else {
                        c.text(USERNAME);
                    }
                }
                match rules::parse_whole(id.value) {
                    Some(n) if n > 0 => Some(UserKey {
                        field: FIELDS[ID].name,
                        value: n.to_string(),
                    }),
                    _ => {
                        c.fail(
                            id,
                            "must be a positive whole number (the user's id in the Control Room)",
                        );
                        None
                    }
                }
            }
            (None, Some(name)) => match rules::check_text(name.value, c.limit(USERNAME)) {
                Ok(()) if !name.value.eq_ignore_ascii_case(super::CLEAR) => Some(UserKey {
                    field: FIELDS[USERNAME].name,
                    value: name.value.to_string(),
                }),
                Ok(()) => {
                    c.fail(name, "the username names the user and cannot be cleared");
                    None
                }
                Err(m) => {
                    c.fail(name, m);
                    None
                }
            },
            (None, None) => {
                let col = record.layout.field_col[ID]
                    .or(record.layout.field_col[USERNAME])
                    .unwrap_or(0);
                c.errors
                    .push(record.error(col, "required: an id, or a username to look the user up"));
                None
            }
        }
    }

    #[inline]
    fn check_own(&self, field: usize, c: &mut Checker) {
        if field == ROLES_ADD || field == ROLES_REMOVE {
            role_moves(field, c);
            return;
        }
        if field != ROLES {
            return;
        }
        let Some(cell) = c.record.get(ROLES) else {
            return;
        };
        if cell.value.eq_ignore_ascii_case(super::CLEAR) {
            c.fail(
                cell,
                "a user must keep at least one role (list the roles to keep)",
            );
        } else if let Some((_, roles)) = c.list(ROLES) {
            c.changes.insert_with(FIELDS[ROLES].name, || json!(roles));
        }
    }
}

/// `rolesToAdd` / `rolesToRemove`: roles a row adds to or takes from the user's, never
/// beside a whole set, and no role in both.
fn role_moves(field: usize, c: &mut Checker) {
    let rec = c.record;
    let Some(cell) = rec.get(field) else {
        return;
    };
    if rec.get(ROLES).is_some() {
        c.fail(
            cell,
            "a row that sets the whole set of roles (roles) cannot also add or remove: keep one",
        );
        return;
    }
    if cell.value.eq_ignore_ascii_case(super::CLEAR) {
        c.fail(
            cell,
            "#clear only empties a text field (list the roles to add or remove)",
        );
        return;
    }
    if field == ROLES_REMOVE {
        if let Some(added) = rec.get(ROLES_ADD) {
            let added: Vec<String> = rules::split_list(added.value)
                .map(rules::normalize_key)
                .collect();
            if let Some(both) =
                rules::split_list(cell.value).find(|r| added.contains(&rules::normalize_key(r)))
            {
                c.fail(
                    cell,
                    format!("role '{both}' is also in rolesToAdd (keep it in one list)"),
                );
                return;
            }
        }
    }
    if let Some((_, roles)) = c.list(field) {
        c.changes.insert_with(FIELDS[field].name, || json!(roles));
    }
}

impl Platform for ControlRoom {
    fn deactivation(&self) -> Changes {
        deactivation()
    }

    fn taken_away(&self, change: &FieldChange) -> Vec<String> {
        if change.field == FIELDS[ROLES].name {
            super::list_losses(change)
        } else {
            Vec::new()
        }
    }

    fn name(&self) -> &'static str {
        "control-room"
    }

    fn api_path(&self) -> &'static [&'static str] {
        &["v1"]
    }

    fn url_sign(&self, url: &url::Url) -> Option<String> {
        // A Control Room is served from the root of its host, which alone says nothing; its
        // API paths and Automation 360 Cloud's hosts do.
        let segments: Vec<String> = url
            .path_segments()
            .into_iter()
            .flatten()
            .filter(|s| !s.is_empty())
            .map(str::to_ascii_lowercase)
            .collect();
        let api = segments
            .windows(2)
            .any(|w| w[0] == "v1" && matches!(w[1].as_str(), "usermanagement" | "authentication"))
            || segments == ["v1"];
        let host = url.host_str().unwrap_or("").to_ascii_lowercase();
        if api {
            Some("its path has Control Room's /v1 API".into())
        } else if host.ends_with(".automationanywhere.digital") {
            Some(format!("{host} is an Automation 360 Cloud Control Room"))
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

    /// Automation 360 documents that it e-mails a user who is edited, enabled or disabled.
    fn caution(&self) -> Option<&'static str> {
        Some(
            "when its SMTP is on, the Control Room e-mails every user who is edited, enabled \
             or disabled",
        )
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
        // Nothing is published and on-premises Control Rooms are often small.
        5.0
    }

    fn connect(&self, settings: &Connect) -> Result<Box<dyn Session>, Error> {
        let secrets = settings.secrets;
        let login = match (&secrets.username, &secrets.password, &secrets.api_key) {
            (Some(u), Some(p), _) => Some(json!({"username": u, "password": p})),
            (Some(u), None, Some(k)) => Some(json!({"username": u, "apiKey": k})),
            (Some(_), None, None) => {
                return Err(Error::Credentials(
                    "BULKEDIT_USERNAME needs BULKEDIT_PASSWORD or BULKEDIT_API_KEY".into(),
                ))
            }
            _ => None,
        };
        let auth_url = endpoint(settings.url, &["v1", "authentication"]);
        let first = match (&login, &secrets.token) {
            (Some(body), _) => log_in(&settings.http, &auth_url, body).map_err(|e| match e {
                LoginError::Refused(m) => {
                    Error::Authentication(format!("the Control Room refused the login: {m}"))
                }
                LoginError::Unreachable(m) => {
                    Error::url(settings.url, format!("cannot reach {}: {m}", settings.url))
                }
                LoginError::NotTheApi(m) => Error::url(
                    settings.url,
                    format!(
                        "{} is not a Control Room (is --url the Control Room root?): {m}",
                        settings.url
                    ),
                ),
            })?,
            (None, Some(t)) => Token::from_jwt(t.clone()),
            (None, None) => return Err(Error::Credentials(
                "control-room needs BULKEDIT_USERNAME with BULKEDIT_PASSWORD or BULKEDIT_API_KEY, \
                     or a token in BULKEDIT_TOKEN or --token-file"
                    .into(),
            )),
        };
        let session = ControlRoomSession {
            http: Arc::clone(&settings.http),
            auth: ControlRoomAuth {
                token: RenewingToken::new(first).learning(secrets.clone()),
                login,
                auth_url,
            },
            base: settings.url.clone(),
            roles: OnceLock::new(),
        };
        // A token given as is proves nothing until used: a page of the user list proves the
        // URL, the token and the permission to read users; one user long, or the list's first
        // page when the run is about to read it all.
        let length = if settings.first_page {
            ControlRoomSession::PAGE
        } else {
            1
        };
        let req = Request::new(
            Method::POST,
            endpoint(&session.base, &["v1", "usermanagement", "users", "list"]),
        )
        .json(&json!({"page": {"offset": 0, "length": length}}));
        let reply = super::preflight(
            &settings.http,
            &req,
            &session.auth,
            settings.url,
            "a Control Room (is --url the Control Room root?)",
            false,
        )?;
        let first = settings
            .first_page
            .then(|| ControlRoomSession::first_page(&reply))
            .flatten();
        Ok(Box::new(
            ReadModifyWrite::new(session, settings.url.clone()).with_first_page(first),
        ))
    }
}

/// How many users a list answer says match: its filter's count, or the whole count.
fn list_total(envelope: &Value) -> usize {
    let page = &envelope["page"];
    page["totalFilter"]
        .as_u64()
        .or(page["total"].as_u64())
        .unwrap_or(0) as usize
}

enum LoginError {
    Refused(String),
    Unreachable(String),
    /// Something other than the Control Room answered: a web page, a proxy, a wrong --url.
    NotTheApi(String),
}

fn log_in(http: &Http, auth_url: &url::Url, body: &Value) -> Result<Token, LoginError> {
    let reply = http
        .send(
            &Request::new(Method::POST, auth_url.clone()).json(body),
            &NoAuth,
        )
        .map_err(|e| match e {
            CallError::Transport { message, .. } => LoginError::Unreachable(message),
            CallError::Unauthorized { message, .. } => LoginError::Refused(message),
            other => LoginError::Refused(other.to_string()),
        })?;
    if super::is_web_page(&reply) || (reply.is_success() && reply.json().is_none()) {
        return Err(LoginError::NotTheApi(super::not_the_api(&reply)));
    }
    match reply.json().as_ref().and_then(|b| b["token"].as_str()) {
        Some(t) if reply.is_success() => Ok(Token::from_jwt(t.to_string())),
        _ => Err(LoginError::Refused(server_message(&reply))),
    }
}

struct ControlRoomAuth {
    token: RenewingToken,
    login: Option<Value>,
    auth_url: url::Url,
}

impl ControlRoomAuth {
    fn fresh_token(&self, http: &Http, old: &str) -> Result<Token, String> {
        // Renew the live token first; log in again when that is refused.
        let refresh = Request::new(Method::POST, endpoint(&self.auth_url, &["token"]))
            .json(&json!({"token": old}));
        if let Ok(reply) = http.send(&refresh, &NoAuth) {
            if let Some(t) = reply
                .json()
                .as_ref()
                .and_then(|b| b["token"].as_str())
                .filter(|_| reply.is_success())
            {
                return Ok(Token::from_jwt(t.to_string()));
            }
        }
        match &self.login {
            Some(body) => log_in(http, &self.auth_url, body).map_err(|e| match e {
                LoginError::Refused(m) | LoginError::Unreachable(m) | LoginError::NotTheApi(m) => m,
            }),
            None => Err("the token expired and no credentials were given to log in again".into()),
        }
    }
}

impl Auth for ControlRoomAuth {
    fn headers(&self) -> Vec<(&'static str, String)> {
        vec![("x-authorization", self.token.value())]
    }

    fn generation(&self) -> u64 {
        self.token.generation()
    }

    fn renew(&self, http: &Http, seen: u64) -> Result<bool, String> {
        if self.login.is_none() {
            return Ok(false);
        }
        self.token.renew(seen, |_| match &self.login {
            Some(body) => log_in(http, &self.auth_url, body).map_err(|e| match e {
                LoginError::Refused(m) | LoginError::Unreachable(m) | LoginError::NotTheApi(m) => m,
            }),
            None => Err("no credentials".into()),
        })
    }

    fn before_request(&self, http: &Http) {
        if self.token.expiring_soon() {
            let _ = self
                .token
                .renew(self.token.generation(), |old| self.fresh_token(http, old));
        }
    }
}

struct ControlRoomSession {
    http: Arc<Http>,
    auth: ControlRoomAuth,
    base: url::Url,
    /// The Control Room's roles by lower-case name and by id, read once when a row needs them.
    roles: OnceLock<Result<Vec<Value>, String>>,
}

impl ControlRoomSession {
    fn list(
        &self,
        filter: Option<Value>,
        offset: usize,
        length: usize,
    ) -> Result<(Users, usize, u32), Outcome> {
        let mut body = json!({"page": {"offset": offset, "length": length}});
        if let Some(f) = filter {
            body["filter"] = f;
        }
        let req = Request::new(
            Method::POST,
            endpoint(&self.base, &["v1", "usermanagement", "users", "list"]),
        )
        .json(&body);
        let (b, users, attempts) =
            read_page(&self.http, &req, &self.auth, "listing users", &["list"])?;
        Ok((users, list_total(&b), attempts))
    }

    /// The first page of the whole list, in the answer to the log-in's read of it.
    fn first_page(reply: &Reply) -> Option<ListPage> {
        let (envelope, users) = page::split_page(&reply.body, &["list"])?;
        Some(ListPage {
            users,
            total: Total::Users(list_total(&envelope)),
        })
    }

    fn role_catalog(&self) -> Result<&Vec<Value>, String> {
        self.roles
            .get_or_init(|| {
                let req = Request::new(
                    Method::POST,
                    endpoint(&self.base, &["v1", "usermanagement", "roles", "list"]),
                )
                .json(&json!({"page": {"offset": 0, "length": 10000}}));
                let reply = super::send_read(&self.http, &req, &self.auth, "reading the roles")
                    .map_err(|o| o.error)?;
                Ok(reply
                    .json()
                    .and_then(|b| b["list"].as_array().cloned())
                    .unwrap_or_default())
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Role names or ids as the role objects the Control Room expects.
    fn resolve_roles(&self, wanted: &Value) -> Result<Value, String> {
        let catalog = self.role_catalog()?;
        let mut out = Vec::new();
        for w in wanted
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            let by_id = rules::parse_whole(w).filter(|n| *n > 0);
            let role = catalog.iter().find(|r| {
                by_id.is_some_and(|n| r["id"].as_i64() == Some(n))
                    || r["name"]
                        .as_str()
                        .is_some_and(|name| name.eq_ignore_ascii_case(w))
            });
            match role {
                Some(r) => out.push(json!({"id": r["id"], "name": r["name"], "version": r.get("version").cloned().unwrap_or(json!(0))})),
                None => return Err(format!("the Control Room has no role '{w}'")),
            }
        }
        Ok(Value::Array(out))
    }
}

impl Vendor for ControlRoomSession {
    const FIELDS: &'static [Field] = FIELDS;
    const PAGE: usize = 1000;

    /// A PUT carries the `version` it was read at; a stale one is a conflict, read again. A
    /// record without one (no version is published) is written only from a fresh copy.
    fn versioned(&self, record: &serde_json::Map<String, Value>) -> bool {
        record.get("version").is_some_and(Value::is_number)
    }

    fn list_page(&self, at: &PageAt) -> Result<ListPage, Outcome> {
        let (users, total, _) = self.list(None, at.offset, at.size)?;
        Ok(ListPage {
            users,
            total: Total::Users(total),
        })
    }

    fn find(&self, key: &UserKey) -> Result<Found, Outcome> {
        if key.field == FIELDS[ID].name {
            return self.read(&key.value);
        }
        // The filter may match loosely: only the exact username is the row's user, on any
        // page of the results.
        const LENGTH: usize = 100;
        let username = FIELDS[USERNAME].name;
        let filter = json!({"operator": "eq", "field": username, "value": key.value});
        let mut offset = 0;
        search_exact(username, &key.value, |_| {
            let (users, total, n) = self.list(Some(filter.clone()), offset, LENGTH)?;
            offset += users.len();
            Ok((page::values(users), offset < total, n))
        })
    }

    fn read(&self, id: &str) -> Result<Found, Outcome> {
        let url = endpoint(&self.base, &["v1", "usermanagement", "users", id]);
        super::read_user(&self.http, url, &self.auth)
    }

    fn not_found(&self, key: &UserKey) -> String {
        let what = if key.field == FIELDS[ID].name {
            "id"
        } else {
            "username"
        };
        format!("no Control Room user has this {what}")
    }

    /// The roles, once a row has made the run read them.
    fn names_known(&self) -> Names {
        let Some(Ok(catalog)) = self.roles.get() else {
            return Names::new();
        };
        catalog
            .iter()
            .filter_map(|r| {
                Some((
                    r["id"].as_i64()?.to_string(),
                    r["name"].as_str()?.to_string(),
                ))
            })
            .collect()
    }

    /// Roles named by id or by name, checked against the Control Room's own list.
    fn unknown_names(&self, edit: &Edit) -> Result<(), Outcome> {
        let wanted: Vec<(usize, &Value)> = [ROLES, ROLES_ADD, ROLES_REMOVE]
            .into_iter()
            .filter_map(|f| Some((f, edit.changes.get(FIELDS[f].name)?)))
            .collect();
        if wanted.is_empty() {
            return Ok(());
        }
        let catalog = self
            .role_catalog()
            .map_err(|m| Outcome::with_error(Status::Failed, m))?;
        let items = wanted.iter().flat_map(|(f, v)| {
            v.as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(move |w| (*f, w))
        });
        for (field, w) in items {
            let by_id = rules::parse_whole(w).filter(|n| *n > 0);
            let known = catalog.iter().any(|r| {
                by_id.is_some_and(|n| r["id"].as_i64() == Some(n))
                    || r["name"]
                        .as_str()
                        .is_some_and(|name| name.eq_ignore_ascii_case(w))
            });
            if !known {
                let names: Vec<&str> = catalog.iter().filter_map(|r| r["name"].as_str()).collect();
                return Err(Outcome::with_error(
                    Status::Invalid,
                    format!(
                        "{}: {}",
                        FIELDS[field].name,
                        super::rmw::no_such("role", w, &names)
                    ),
                ));
            }
        }
        Ok(())
    }

    /// `rolesToAdd` and `rolesToRemove` carried out on the roles as read.
    fn settle(
        &self,
        record: &mut serde_json::Map<String, Value>,
        edit: &Edit,
    ) -> Result<(), String> {
        let moves = |f: usize| {
            edit.changes
                .get(FIELDS[f].name)
                .and_then(|v| self.resolve_roles(v).ok())
                .and_then(|v| v.as_array().cloned())
        };
        let (add, remove) = (moves(ROLES_ADD), moves(ROLES_REMOVE));
        if add.is_none() && remove.is_none() {
            return Ok(());
        }
        let key = FIELDS[ROLES].name;
        let mut roles: Vec<Value> = record
            .get(key)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let has = |roles: &[Value], r: &Value| roles.iter().any(|h| h["id"] == r["id"]);
        for r in add.unwrap_or_default() {
            if !has(&roles, &r) {
                roles.push(r);
            }
        }
        let gone = remove.unwrap_or_default();
        roles.retain(|h| !has(&gone, h));
        if roles.is_empty() {
            return Err(format!(
                "{}: this would leave the user without a role (a user keeps at least one; \
                 nothing was sent)",
                FIELDS[ROLES_REMOVE].name
            ));
        }
        record.insert(key.to_string(), Value::Array(roles));
        Ok(())
    }

    fn resolve(&self, field: &str, value: &Value) -> Result<Value, String> {
        if field == FIELDS[ROLES].name {
            self.resolve_roles(value)
        } else {
            Ok(value.clone())
        }
    }

    /// Roles as objects with an id: anything else would be written back as an empty set.
    fn understood(&self, record: &serde_json::Map<String, Value>) -> Result<(), String> {
        let roles = FIELDS[ROLES].name;
        match record.get(roles) {
            Some(Value::Array(list))
                if list.iter().all(|r| r.get("id").is_some_and(Value::is_i64)) =>
            {
                Ok(())
            }
            Some(other) => Err(format!(
                "the server's {roles} are not role objects ({}): nothing was sent",
                super::shown(other)
            )),
            None => Err(format!(
                "the server's record has no {roles}: nothing was sent"
            )),
        }
    }

    /// Roles compare as sets of ids; `""` as null, since the vendor's own example sends `""`
    /// for a domain it answers as null.
    fn normalise(&self, key: &str, value: Value) -> Value {
        match value {
            Value::Array(roles) if key == FIELDS[ROLES].name => {
                let mut ids: Vec<i64> = roles.iter().filter_map(|r| r["id"].as_i64()).collect();
                ids.sort_unstable();
                ids.dedup();
                json!(ids)
            }
            Value::String(s) if s.is_empty() => Value::Null,
            v => v,
        }
    }

    /// A password is sent with the record: never read back, so a row that gives one is
    /// always sent.
    fn beside(
        &self,
        _current: &serde_json::Map<String, Value>,
        edit: &Edit,
    ) -> Vec<(&'static str, Value)> {
        let password = FIELDS[PASSWORD].name;
        edit.changes
            .get(password)
            .map(|p| (password, p.clone()))
            .into_iter()
            .collect()
    }

    fn describe(&self, change: &Change) -> Vec<FieldChange> {
        let mut changes = super::rmw::field_changes(self, change);
        // The password: only that it changes, never its value.
        changes.extend(change.beside.iter().map(|(field, _)| FieldChange {
            field: field.to_string(),
            before: String::new(),
            after: String::new(),
            hidden: true,
        }));
        changes
    }

    /// The PUT replaces the whole user: the record as read, with the changes merged in and
    /// its `version` from that read.
    fn write(&self, id: &str, change: &Change) -> Result<Reply, CallError> {
        let req = Request::new(
            Method::PUT,
            endpoint(&self.base, &["v1", "usermanagement", "users", id]),
        )
        .json(&with_beside(change));
        self.http.send(&req, &self.auth)
    }

    fn cannot_create(&self, edit: &Edit) -> Vec<String> {
        creation_problems(edit)
    }

    fn create(&self, _edit: &Edit, change: &Change) -> Result<Reply, CallError> {
        let req = Request::new(
            Method::POST,
            endpoint(&self.base, &["v1", "usermanagement", "users"]),
        )
        .json(&with_beside(change));
        self.http.send(&req, &self.auth)
    }

    /// Success is a user in the answer, with an id, under the username sent: the answer
    /// proves it, as a write's does.
    fn created(&self, edit: &Edit, reply: &Reply) -> Answer {
        match reply.status {
            200 | 201 => {
                let body = reply.json();
                let user = body.as_ref();
                let same = user
                    .and_then(|b| b.get(FIELDS[USERNAME].name))
                    .and_then(Value::as_str)
                    .is_some_and(|u| u.eq_ignore_ascii_case(edit.key.value.trim()));
                let has_id = user
                    .and_then(|b| b.get("id"))
                    .is_some_and(|id| id.is_i64() || id.is_string());
                if same && has_id {
                    Answer::Accepted
                } else {
                    Answer::Refused(super::not_the_api(reply))
                }
            }
            409 => Answer::Conflict(server_message(reply)),
            _ => Answer::Refused(server_message(reply)),
        }
    }

    fn interpret(&self, id: &str, reply: &Reply) -> Answer {
        match reply.status {
            // The documented success carries the user back: the same one.
            200 | 201 => {
                // Only its id is read: the rest of the user is not needed.
                let same = page::pick(&reply.body, &["id"])
                    .pop()
                    .flatten()
                    .and_then(|v| {
                        v.as_i64()
                            .map(|i| i.to_string())
                            .or(v.as_str().map(str::to_string))
                    })
                    .is_some_and(|got| got == id);
                if same {
                    Answer::Accepted
                } else {
                    Answer::Refused(super::not_the_api(reply))
                }
            }
            409 => Answer::Conflict(server_message(reply)),
            _ => Answer::Refused(server_message(reply)),
        }
    }
    /// The role list, read once and shared with the role look-ups of rows.
    fn names(&self) -> Result<Names, Outcome> {
        let catalog = self
            .role_catalog()
            .map_err(|m| Outcome::with_error(crate::engine::Status::Failed, m))?;
        Ok(catalog
            .iter()
            .filter_map(|r| {
                Some((
                    r["id"].as_i64()?.to_string(),
                    r["name"].as_str()?.to_string(),
                ))
            })
            .collect())
    }

    /// Deleted users are listed too, but are no longer users.
    fn exports(&self, user: &serde_json::Map<String, Value>) -> bool {
        user.get("deleted").and_then(Value::as_bool) != Some(true)
    }

    /// Roles by name where `apply` finds that same role by the name (one role of that name,
    /// no list separator, not a number), by id otherwise.
    fn exported(
        &self,
        field: &Field,
        user: &serde_json::Map<String, Value>,
        names: &Names,
    ) -> Option<String> {
        if field.name != FIELDS[ROLES].name {
            return None;
        }
        let mut ids: Vec<i64> = user
            .get(field.name)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|r| r["id"].as_i64())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        let items: Vec<String> = ids
            .iter()
            .map(|id| {
                let name = names
                    .iter()
                    .find(|(rid, _)| *rid == id.to_string())
                    .map(|(_, n)| n.as_str())
                    .filter(|n| {
                        let unique = names
                            .iter()
                            .filter(|(_, o)| o.eq_ignore_ascii_case(n))
                            .count()
                            == 1;
                        unique
                            && rules::parse_whole(n).is_none()
                            && !n.contains([';', ','])
                            && rules::trim(n) == *n
                            && !n.is_empty()
                    });
                name.map_or_else(|| id.to_string(), str::to_string)
            })
            .collect();
        Some(items.join("; "))
    }

    fn is_active(&self, user: &serde_json::Map<String, Value>) -> bool {
        let flag = |k: &str| user.get(k).and_then(Value::as_bool) == Some(true);
        !flag(FIELDS[DISABLED].name) && !flag("deleted")
    }

    fn deactivation(&self) -> Changes {
        deactivation()
    }

    /// Its id and username, and its e-mail.
    fn known_as(&self, user: &serde_json::Map<String, Value>) -> Vec<String> {
        let id = user
            .get("id")
            .and_then(Value::as_i64)
            .map(|i| i.to_string());
        ["username", "email"]
            .iter()
            .filter_map(|k| user.get(*k).and_then(Value::as_str).map(str::to_string))
            .chain(id)
            .collect()
    }

    /// The username the run logs in with.
    fn caller(&self) -> Option<String> {
        let login = self.auth.login.as_ref()?;
        login
            .get("username")
            .and_then(Value::as_str)
            .map(str::to_string)
    }
}

/// Creation needs a username (the Control Room chooses the id), an e-mail, a password
/// and at least one role.
fn creation_problems(edit: &Edit) -> Vec<String> {
    let given = |field: usize| match edit.changes.get(FIELDS[field].name) {
        Some(Value::String(s)) => !s.trim().is_empty(),
        Some(Value::Array(items)) => !items.is_empty(),
        Some(_) => true,
        None => false,
    };
    let mut problems = Vec::new();
    if edit.key.field == FIELDS[ID].name {
        problems.push(format!(
            "a new user is named by {} (the Control Room chooses its id): leave {} empty",
            FIELDS[USERNAME].name, FIELDS[ID].name
        ));
    }
    for field in [EMAIL, PASSWORD, ROLES] {
        if !given(field) {
            problems.push(format!("{} is needed", FIELDS[field].name));
        }
    }
    problems
}

/// The record with what is sent beside it (a password) in the same object.
fn with_beside(change: &Change) -> Value {
    let mut body = change.record.clone();
    body.extend(
        change
            .beside
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone())),
    );
    Value::Object(body)
}

/// `disabled: true`.
fn deactivation() -> Changes {
    let mut changes = Changes::new(Keep::Changes);
    changes.insert(FIELDS[DISABLED].name, true);
    changes
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::engine::HttpSettings;
    use crate::platform::rmw::merge;
    use crate::platform::{Changes, Keep};

    #[test]
    fn the_template_keeps_its_columns_examples_and_drop_downs() {
        let t = ControlRoom.template();
        let headers = ["id", "username", "email", "firstName", "lastName"];
        assert_eq!(t.headers[..5], headers);
        assert_eq!(
            t.headers[5..],
            ["description", "domain", "roles", "disabled"]
        );
        // No id: on a real Control Room, id 1 is usually the installation's admin.
        assert_eq!(
            t.example[..3],
            ["", "example.user", "user00001@example.com"]
        );
        assert_eq!(
            t.example[3..],
            [
                "First00001",
                "Last00001",
                "Finance bot runner",
                "",
                "AAE_Basic; Bot Runner",
                "false"
            ]
        );
        assert_eq!(t.choices, [("disabled", vec!["true", "false"])]);
        assert_eq!(ControlRoom.key_fields(), [ID, USERNAME]);
    }

    #[test]
    fn an_empty_text_matches_a_null_and_the_whole_record_is_sent_back() {
        let base: url::Url = "http://127.0.0.1".parse().unwrap();
        let s = ControlRoomSession {
            http: Arc::new(Http::new(HttpSettings::default(), Default::default()).unwrap()),
            auth: ControlRoomAuth {
                token: RenewingToken::new(Token {
                    value: "t".into(),
                    lifetime: None,
                }),
                login: None,
                auth_url: endpoint(&base, &["v1", "authentication"]),
            },
            base,
            roles: OnceLock::new(),
        };
        let current = json!({
            "id": 7, "version": 3, "username": "u", "domain": null, "disabled": false,
            "roles": [{"id": 4}, {"id": 2}],
        });
        let mut changes = Changes::new(Keep::Changes);
        changes.insert("domain", "");
        changes.insert("disabled", true);
        let edit = Edit {
            key: UserKey {
                field: "id",
                value: "7".into(),
            },
            changes,
            plan: None,
        };
        let change = merge(&s, current.as_object().unwrap().clone(), &edit).unwrap();
        let said: Vec<_> = s
            .describe(&change)
            .into_iter()
            .map(|c| (c.field, c.before, c.after))
            .collect();
        assert_eq!(said, [("disabled".into(), "false".into(), "true".into())]);
        assert_eq!(change.record["version"], 3);
        assert_eq!(change.before["roles"], json!([2, 4]));
    }
}
