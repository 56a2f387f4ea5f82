//! UiPath Identity Server: `PUT {url}/api/User/{userId}`, users found by id or by e-mail inside
//! the organization's partition; a fixed access token or client credentials.

use std::sync::{Arc, OnceLock};

use reqwest::Method;
use serde_json::{json, Map, Value};

use super::cache::{exact_match, take_objects, UserCache};
use super::token::{RenewingToken, Token};
use super::{
    describe_changes, endpoint, jwt_claims, read_json, server_message, Checker, Connect, Edit,
    Field, Plan, Platform, Record, Session, Template, UserKey,
};
use crate::engine::http::NoAuth;
use crate::engine::{Auth, Http, Outcome, Reply, Request, Status};
use crate::error::Error;
use crate::rules::{self, FieldError, MAX_TEXT};

pub const USER_ID: usize = 0;
pub const EMAIL: usize = 1;
pub const NAME: usize = 2;
pub const SURNAME: usize = 3;
pub const DISPLAY_NAME: usize = 4;
pub const IS_ACTIVE: usize = 5;
pub const BYPASS: usize = 6;
pub const INVITATION_ACCEPTED: usize = 7;
pub const GROUPS_ADD: usize = 8;
pub const GROUPS_REMOVE: usize = 9;
pub const PASSWORD: usize = 10;

static FIELDS: [Field; 11] = [
    Field::new("userId", &["User Id"]),
    Field::new("email", &[]),
    Field::new("name", &[]),
    Field::new("surname", &[]),
    Field::new("displayName", &[]),
    Field::new("isActive", &[]),
    Field::new("bypassBasicAuthRestriction", &[]),
    Field::new("invitationAccepted", &[]),
    Field::new("groupIDsToAdd", &[]),
    Field::new("groupIDsToRemove", &[]),
    Field::new("password", &[]),
];

/// Fields re-sent with every change, as UiPath's own PowerShell module does, so that a server
/// that clears omitted fields loses nothing.
const RESENT: [&str; 4] = ["name", "surname", "displayName", "email"];
const FLAGS: [&str; 3] = [
    "isActive",
    "bypassBasicAuthRestriction",
    "invitationAccepted",
];

pub struct Identity;

fn group_item(item: &str) -> Result<(), String> {
    rules::check_text(item, MAX_TEXT).map_err(|m| format!("group '{item}': {m}"))
}

impl Platform for Identity {
    fn name(&self) -> &'static str {
        "identity"
    }

    fn fields(&self) -> &'static [Field] {
        &FIELDS
    }

    fn key_fields(&self) -> &'static [usize] {
        &[USER_ID, EMAIL]
    }

    fn masked_fields(&self) -> &'static [usize] {
        &[PASSWORD]
    }

    fn validate(&self, record: &Record) -> Result<Edit, Vec<FieldError>> {
        let mut c = Checker::new(record);
        let key = match (record.get(USER_ID), record.get(EMAIL)) {
            (Some(id), email) => {
                // With an id, an e-mail is a change to make.
                if email.is_some() {
                    c.email(EMAIL, "email");
                }
                c.path_id(id).then(|| UserKey {
                    field: "userId",
                    value: id.value.to_string(),
                })
            }
            (None, Some(email)) => match rules::check_email(email.value) {
                Ok(()) => Some(UserKey {
                    field: "email",
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
        };
        c.text(NAME, "name");
        c.text(SURNAME, "surname");
        c.text(DISPLAY_NAME, "displayName");
        c.boolean(IS_ACTIVE, "isActive");
        c.boolean(BYPASS, "bypassBasicAuthRestriction");
        c.boolean(INVITATION_ACCEPTED, "invitationAccepted");
        let add = c.list(GROUPS_ADD, group_item);
        let remove = c.list(GROUPS_REMOVE, group_item);
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
            c.changes.insert_with("groupIDsToAdd", || json!(add));
        }
        if let Some((_, remove)) = remove {
            c.changes.insert_with("groupIDsToRemove", || json!(remove));
        }
        if let Some(cell) = record.get(PASSWORD) {
            if cell.value.eq_ignore_ascii_case(super::CLEAR) {
                c.fail(
                    cell,
                    "a password cannot be cleared (leave the cell empty to keep it)",
                );
            } else {
                c.changes
                    .insert("password", Value::String(cell.value.to_string()));
            }
        }
        c.finish(key)
    }

    fn template(&self) -> Template {
        Template {
            headers: vec![
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
            ],
            example: vec![
                "00000000-0000-4000-8000-000000000001",
                "",
                "First00001",
                "Last00001",
                "First00001 Last00001",
                "true",
                "false",
                "",
                "",
                "",
                "",
            ],
            choices: vec![
                ("isActive", vec!["true", "false"]),
                ("bypassBasicAuthRestriction", vec!["true", "false"]),
                ("invitationAccepted", vec!["true", "false"]),
            ],
        }
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
                    .map_err(|m| {
                    Error::Authentication(format!("cannot get a token from {token_url}: {m}"))
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
        Ok(Box::new(IdentitySession {
            http: Arc::clone(&settings.http),
            auth: IdentityAuth {
                token: RenewingToken::new(first),
                credentials,
                token_url,
            },
            base: settings.url.clone(),
            partition,
            cache: OnceLock::new(),
        }))
    }
}

fn fetch_token(http: &Http, token_url: &url::Url, id: &str, secret: &str) -> Result<Token, String> {
    let req = Request::new(Method::POST, token_url.clone()).form(&[
        ("grant_type", "client_credentials"),
        ("client_id", id),
        ("client_secret", secret),
        ("scope", "PM.User PM.User.Write"),
    ]);
    let reply = http.send(&req, &NoAuth).map_err(|e| match e {
        crate::engine::CallError::Transport { message, .. } => message,
        crate::engine::CallError::Unauthorized { message, .. } => message,
        other => other.to_string(),
    })?;
    let body = reply.json().unwrap_or(Value::Null);
    match body.get("access_token").and_then(Value::as_str) {
        Some(t) if reply.is_success() => Ok(Token {
            value: t.to_string(),
            lifetime: body
                .get("expires_in")
                .and_then(Value::as_u64)
                .map(std::time::Duration::from_secs),
        }),
        _ => Err(server_message(&reply)),
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
        self.token
            .renew(seen, |_| fetch_token(http, &self.token_url, id, secret))
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
    /// Users by id and by e-mail, when reading the whole list took fewer calls.
    cache: OnceLock<UserCache>,
}

const PAGE: usize = 1000;

impl IdentitySession {
    fn search(
        &self,
        partition: &str,
        term: &str,
        top: usize,
        skip: usize,
    ) -> Result<(Vec<Value>, usize, u32), Outcome> {
        let mut url = endpoint(&self.base, &["api", "User", "users", partition]);
        url.query_pairs_mut()
            .append_pair("searchTerm", term)
            .append_pair("top", &top.to_string())
            .append_pair("skip", &skip.to_string());
        let (mut body, attempts) = read_json(
            &self.http,
            &Request::get(url),
            &self.auth,
            "searching users",
        )?;
        let total = body["totalCount"].as_u64().unwrap_or(0) as usize;
        let results = take_objects(&mut body["results"]);
        Ok((results, total, attempts))
    }

    /// The user's current record and the requests it took; `None` when there is no such user.
    fn find(&self, key: &UserKey) -> Result<(Option<Value>, u32), Outcome> {
        if let Some(cache) = self.cache.get() {
            return Ok((cache.get(key).map(Value::Object), 0));
        }
        if key.field == "userId" {
            let url = endpoint(&self.base, &["api", "User", &key.value]);
            let reply = self
                .http
                .send(&Request::get(url), &self.auth)
                .map_err(|e| Outcome::from_call_error(e, 0))?;
            return match reply.status {
                200 => Ok((reply.json(), reply.attempts)),
                404 => Ok((None, reply.attempts)),
                _ => Err(Outcome::with_error(
                    Status::Failed,
                    format!("reading the user: {}", server_message(&reply)),
                )
                .http(reply.status, reply.attempts)),
            };
        }
        let Some(partition) = &self.partition else {
            return Err(Outcome::with_error(
                Status::Failed,
                "no partition to look e-mails up in",
            ));
        };
        let (results, _, attempts) = self.search(partition, &key.value, 20, 0)?;
        let user = exact_match(results, "email", &key.value).map(Value::Object);
        Ok((user, attempts))
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

impl Session for IdentitySession {
    fn prepare(&self, plan: &Plan) -> Result<(), Error> {
        if plan.lookups > 0 && self.partition.is_none() {
            return Err(Error::usage(
                "identity looks users up by e-mail inside the organization's partition: give \
                 --partition ID or BULKEDIT_PARTITION (the token has no prt_id claim)",
            ));
        }
        let Some(partition) = &self.partition else {
            return Ok(());
        };
        if plan.rows < 2 {
            return Ok(());
        }
        let fail = |o: Outcome| {
            Error::server(
                &self.base,
                format!("cannot read the user list: {}", o.error),
            )
        };
        let (users, total, _) = self.search(partition, "", PAGE, 0).map_err(fail)?;
        let pages = total.div_ceil(PAGE).max(1);
        if pages >= plan.rows || total > super::MAX_CACHED_USERS {
            return Ok(());
        }
        let keys = |u: &Value| {
            vec![
                ("userId", u["id"].as_str().map(str::to_string)),
                ("email", u["email"].as_str().map(str::to_string)),
            ]
        };
        let mut cache = UserCache::default();
        let mut read = users.len();
        cache.add_page(users, keys);
        while read < total {
            let (more, _, _) = self.search(partition, "", PAGE, read).map_err(fail)?;
            if more.is_empty() {
                break;
            }
            read += more.len();
            cache.add_page(more, keys);
        }
        let _ = self.cache.set(cache);
        Ok(())
    }

    fn apply(&self, edit: &Edit, dry_run: bool) -> Outcome {
        let (current, read_attempts) = match self.find(&edit.key) {
            Ok(found) => found,
            Err(o) => return o,
        };
        let Some(current) = current else {
            let what = if edit.key.field == "userId" {
                "id"
            } else {
                "e-mail"
            };
            return Outcome::with_error(
                Status::NotFound,
                format!("no Identity user has this {what}"),
            )
            .http(200, read_attempts);
        };
        let Some(id) = current["id"].as_str().map(str::to_string) else {
            return Outcome::with_error(Status::Failed, "the server's user record has no id");
        };
        let fields: Vec<&str> = RESENT.iter().chain(FLAGS.iter()).copied().collect();
        let now: Map<String, Value> = fields
            .iter()
            .map(|k| (k.to_string(), current[*k].clone()))
            .collect();
        let mut desired = now.clone();
        for k in &fields {
            if let Some(v) = edit.changes.get(k) {
                desired.insert(k.to_string(), v.clone());
            }
        }
        let member_of = str_list(&current["groupIDs"]);
        let to_add: Vec<Value> = edit
            .changes
            .get("groupIDsToAdd")
            .map(str_list)
            .unwrap_or_default()
            .into_iter()
            .filter(|g| !member_of.contains(g))
            .map(Value::String)
            .collect();
        let to_remove: Vec<Value> = edit
            .changes
            .get("groupIDsToRemove")
            .map(str_list)
            .unwrap_or_default()
            .into_iter()
            .filter(|g| member_of.contains(g))
            .map(Value::String)
            .collect();
        let password = edit.changes.get("password");
        if desired == now && to_add.is_empty() && to_remove.is_empty() && password.is_none() {
            let mut o = Outcome::new(Status::Unchanged);
            o.attempts = read_attempts;
            return o;
        }
        if dry_run {
            let mut what = describe_changes(&now, &desired, &fields);
            for (label, list) in [
                ("add to groups", &to_add),
                ("remove from groups", &to_remove),
            ] {
                if !list.is_empty() {
                    let names: Vec<&str> = list.iter().filter_map(Value::as_str).collect();
                    what = [what, format!("{label}: {}", names.join(", "))]
                        .into_iter()
                        .filter(|s| !s.is_empty())
                        .collect::<Vec<_>>()
                        .join("; ");
                }
            }
            if password.is_some() {
                what = [what, "password: ***".to_string()]
                    .into_iter()
                    .filter(|s| !s.is_empty())
                    .collect::<Vec<_>>()
                    .join("; ");
            }
            let mut o = Outcome::with_error(Status::WouldUpdate, what);
            o.attempts = read_attempts;
            return o;
        }
        let mut body: Map<String, Value> = RESENT
            .iter()
            .filter(|k| !desired[**k].is_null())
            .map(|k| (k.to_string(), desired[*k].clone()))
            .collect();
        for k in FLAGS {
            if desired[k] != now[k] {
                body.insert(k.into(), desired[k].clone());
            }
        }
        if !to_add.is_empty() {
            body.insert("groupIDsToAdd".into(), Value::Array(to_add));
        }
        if !to_remove.is_empty() {
            body.insert("groupIDsToRemove".into(), Value::Array(to_remove));
        }
        if let Some(p) = password {
            body.insert("password".into(), p.clone());
        }
        let req = Request::new(Method::PUT, endpoint(&self.base, &["api", "User", &id]))
            .json(&Value::Object(body));
        match self.http.send(&req, &self.auth) {
            Err(e) => Outcome::from_call_error(e, read_attempts),
            Ok(reply) => {
                // Identity may answer 200 and still refuse: the body has the last word.
                let succeeded = reply.is_success()
                    && reply
                        .json()
                        .is_some_and(|b| b["succeeded"].as_bool() != Some(false));
                if succeeded {
                    Outcome::new(Status::Updated).http(reply.status, read_attempts + reply.attempts)
                } else {
                    Outcome::with_error(Status::Failed, rejection(&reply))
                        .http(reply.status, read_attempts + reply.attempts)
                }
            }
        }
    }
}
