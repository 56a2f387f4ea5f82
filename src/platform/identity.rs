//! UiPath Identity Server: `PUT {url}/api/User/{userId}`, users found by id or by e-mail inside
//! the organization's partition; a fixed access token or client credentials.

use std::sync::{Arc, OnceLock};

use reqwest::Method;
use serde_json::{json, Map, Value};

use super::cache::{exact_match, take_objects, UserCache};
use super::dictionary::{self, count, index, indices, Dictionary, Kind, Pick};
use super::token::{RenewingToken, Token};
use super::{
    describe_changes, endpoint, jwt_claims, read_json, server_message, Checker, Connect, Edit,
    Field, Plan, Platform, Record, Session, Template, UserKey,
};
use crate::engine::http::NoAuth;
use crate::engine::{Auth, Http, Outcome, Reply, Request, Status};
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
        Field::new("name",                       &[],          TEXT,             InRecord("name"),        Column(2, "First00001", &[])),
        Field::new("surname",                    &[],          TEXT,             InRecord("surname"),     Column(3, "Last00001", &[])),
        Field::new("displayName",                &[],          TEXT,             InRecord("displayName"), Column(4, "First00001 Last00001", &[])),
        Field::new("email",                      &[],          Key(&Email),      InRecord("email"),       Column(1, "", &[])),
        Field::new("isActive",                   &[],          YesNo(TrueFalse), InRecord("isActive"),    Column(5, "true", &["true", "false"])),
        Field::new("bypassBasicAuthRestriction", &[],          YesNo(TrueFalse), InRecord("bypassBasicAuthRestriction"), Column(6, "false", &["true", "false"])),
        Field::new("invitationAccepted",         &[],          YesNo(TrueFalse), InRecord("invitationAccepted"), Column(7, "", &["true", "false"])),
        Field::new("groupIDsToAdd",              &[],          GROUPS,           WriteOnly,               Column(8, "", &[])),
        Field::new("groupIDsToRemove",           &[],          GROUPS,           WriteOnly,               Column(9, "", &[])),
        Field::new("password",                   &[],          Password,         WriteOnly,               Column(10, "", &[])),
    ]
};

const USER_ID: usize = index(FIELDS, "userId");
const EMAIL: usize = index(FIELDS, "email");
const GROUPS_ADD: usize = index(FIELDS, "groupIDsToAdd");
const GROUPS_REMOVE: usize = index(FIELDS, "groupIDsToRemove");
const KEYS: [usize; count(FIELDS, Pick::Keys)] = indices(FIELDS, Pick::Keys);
const MASKED: [usize; count(FIELDS, Pick::Masked)] = indices(FIELDS, Pick::Masked);

pub struct Identity;

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
    fn name(&self) -> &'static str {
        "identity"
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
        let session = IdentitySession {
            http: Arc::clone(&settings.http),
            auth: IdentityAuth {
                token: RenewingToken::new(first),
                credentials,
                token_url,
            },
            base: settings.url.clone(),
            partition,
            cache: OnceLock::new(),
        };
        Ok(Box::new(session))
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

/// Fields re-sent with every change, as UiPath's own PowerShell module does, so that a server
/// that clears omitted fields loses nothing.
const RESENT: [&str; 4] = ["name", "surname", "displayName", "email"];
const FLAGS: [&str; 3] = [
    "isActive",
    "bypassBasicAuthRestriction",
    "invitationAccepted",
];

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

#[cfg(test)]
mod tests {
    use super::*;
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
        assert_eq!(Identity.masked_fields(), [index(FIELDS, "password")]);
        assert_eq!(Identity.key_fields(), [USER_ID, EMAIL]);
    }
}
