//! UiPath Automation Hub Open API: `POST {url}/api/v1/openapi/edituser`, users keyed by e-mail,
//! two authentication modes that must not be mixed.

use std::sync::{Arc, OnceLock};

use reqwest::Method;
use serde_json::{json, Map, Value};

use super::cache::{exact_match, take_objects, UserCache};
use super::Layout;
use super::{
    describe_changes, endpoint, read_json, server_message, Checker, Connect, Edit, Field, Plan,
    Platform, Record, Session, Template, UserKey, UserPage,
};
use crate::engine::{Auth, Http, Outcome, Request, Status};
use crate::error::Error;
use crate::rules::{self, normalize_header, FieldError};

pub const EMAIL: usize = 0;
pub const FIRST_NAME: usize = 1;
pub const LAST_NAME: usize = 2;
pub const JOB_TITLE: usize = 3;
pub const BUSINESS_UNIT: usize = 4;
pub const DEPARTMENT: usize = 5;
pub const LOCATION: usize = 6;
pub const IS_ACTIVE: usize = 7;
pub const INVITE_STATUS: usize = 8;
pub const ROLES: usize = 9;
pub const ROLE_ID: usize = 10;
pub const CATEGORY_ID: usize = 11;

static FIELDS: [Field; 12] = [
    Field::new("user_email", &["Email", "Email Address"]),
    Field::new("user_first_name", &["First Name"]),
    Field::new("user_last_name", &["Last Name"]),
    Field::new("user_job_title", &["Job Title"]),
    Field::new("user_business_unit", &["Business Unit"]),
    Field::new("user_department", &["Department"]),
    Field::new("user_location", &["Location"]),
    Field::new("user_is_active", &["Is Active"]),
    Field::new("user_invite_status", &["Invite Status"]),
    Field::new("user_roles", &["Roles"]),
    Field::numbered("role_id"),
    Field::numbered("category_id"),
];

/// The text fields, in the order the vendor's example body lists them.
const TEXT_FIELDS: [(usize, &str); 6] = [
    (FIRST_NAME, "user_first_name"),
    (LAST_NAME, "user_last_name"),
    (LOCATION, "user_location"),
    (DEPARTMENT, "user_department"),
    (BUSINESS_UNIT, "user_business_unit"),
    (JOB_TITLE, "user_job_title"),
];

/// The fields `edituser` takes, which is what a read-modify-write sends back.
pub const RECORD_FIELDS: [&str; 10] = [
    "user_email",
    "user_first_name",
    "user_last_name",
    "user_location",
    "user_department",
    "user_business_unit",
    "user_job_title",
    "user_is_active",
    "user_invite_status",
    "user_roles",
];

/// Automation Hub's default roles; custom ones need `--allow-role`.
pub const DEFAULT_ROLES: [(u32, &str); 7] = [
    (2, "System Admin"),
    (3, "RPA Sponsor"),
    (4, "Component Curator"),
    (5, "Program Manager"),
    (6, "Idea Approver"),
    (8, "Standard User"),
    (11, "Project Manager"),
];

pub struct Hub {
    allowed_roles: Vec<u32>,
}

impl Hub {
    pub fn new(allowed_roles: Vec<u32>) -> Self {
        Hub { allowed_roles }
    }

    fn role_hint(&self) -> String {
        let mut ids: Vec<String> = DEFAULT_ROLES.iter().map(|(id, _)| id.to_string()).collect();
        ids.extend(self.allowed_roles.iter().map(u32::to_string));
        format!(
            "use a role id ({}) or a role name like 'Standard User'",
            ids.join(", ")
        )
    }

    /// A role id or name.
    fn role(&self, text: &str) -> Result<u32, String> {
        if let Some(n) = rules::parse_whole(text) {
            let known = DEFAULT_ROLES.iter().any(|(id, _)| i64::from(*id) == n)
                || self.allowed_roles.iter().any(|id| i64::from(*id) == n);
            return if known {
                Ok(n as u32)
            } else {
                Err(format!("role {n} is not a default role ({}; admit a custom role with --allow-role {n})", self.role_hint()))
            };
        }
        let wanted = normalize_header(text);
        DEFAULT_ROLES
            .iter()
            .find(|(_, name)| normalize_header(name) == wanted)
            .map(|(id, _)| *id)
            .ok_or_else(|| format!("unknown role '{text}' ({})", self.role_hint()))
    }

    fn category(text: &str) -> Result<u32, String> {
        match rules::parse_whole(text) {
            Some(n) if (0..=i64::from(u32::MAX)).contains(&n) => Ok(n as u32),
            _ => Err(format!(
                "category '{text}' is not a whole number of 0 or more"
            )),
        }
    }

    /// `ROLE` or `ROLE:CATEGORY`.
    fn role_item(&self, item: &str) -> Result<(u32, u32), String> {
        match item.bytes().position(|c| c == b':') {
            Some(i) => Ok((
                self.role(rules::trim(&item[..i]))?,
                Hub::category(rules::trim(&item[i + 1..]))?,
            )),
            None => Ok((self.role(item)?, 0)),
        }
    }

    fn roles(&self, c: &mut Checker) {
        let rec = c.record;
        let mut roles: smallvec::SmallVec<[(u32, u32); 8]> = smallvec::SmallVec::new();
        let mut ok = true;
        if let Some(cell) = rec.get(ROLES) {
            if cell.value.eq_ignore_ascii_case(super::CLEAR) {
                c.fail(
                    cell,
                    "#clear only empties a text field (list the roles the user should keep)",
                );
                return;
            }
            for item in rules::split_list(cell.value) {
                match self.role_item(item) {
                    Ok(r) => roles.push(r),
                    Err(m) => {
                        c.fail(cell, m);
                        ok = false;
                    }
                }
            }
        }
        // UiPath's bulk-edit sheet: role_id1, category_id1, role_id2, …
        let numbered = &rec.layout.numbered;
        for &(field, n, col) in numbered.iter().filter(|(f, _, _)| *f == ROLE_ID) {
            let _ = field;
            let category_col = numbered
                .iter()
                .find(|(f, m, _)| *f == CATEGORY_ID && *m == n)
                .map(|(_, _, c)| *c);
            let Some(role_cell) = rec.cell(col) else {
                continue;
            };
            let role = self.role(role_cell.value);
            if let Err(m) = &role {
                c.fail(role_cell, m.clone());
                ok = false;
            }
            let category = match category_col.and_then(|cc| rec.cell(cc)) {
                None => Ok(0),
                Some(cell) => Hub::category(cell.value).inspect_err(|m| {
                    c.fail(cell, m.clone());
                }),
            };
            match (role, category) {
                (Ok(r), Ok(cat)) => roles.push((r, cat)),
                _ => ok = false,
            }
        }
        for &(_, n, col) in numbered.iter().filter(|(f, _, _)| *f == CATEGORY_ID) {
            let has_role_col = numbered.iter().any(|(f, m, _)| *f == ROLE_ID && *m == n);
            let role_given = numbered
                .iter()
                .find(|(f, m, _)| *f == ROLE_ID && *m == n)
                .and_then(|(_, _, rc)| rec.cell(*rc))
                .is_some();
            if let Some(cell) = rec.cell(col) {
                if !role_given {
                    let why = if has_role_col {
                        format!("a category without a role (fill role_id{n} or empty this cell)")
                    } else {
                        format!("there is no role_id{n} column for this category")
                    };
                    c.fail(cell, why);
                    ok = false;
                }
            }
        }
        if ok && !roles.is_empty() {
            roles.sort_unstable();
            roles.dedup();
            c.changes.insert_with("user_roles", || roles_json(&roles));
        }
    }
}

/// Roles in an edit: `[role, category]` pairs, cheap to build for every row; they become
/// the vendor's `{"role_id", "category_id"}` objects only when a request is made.
fn roles_json(roles: &[(u32, u32)]) -> Value {
    Value::Array(roles.iter().map(|(r, c)| json!([r, c])).collect())
}

/// Roles as a person writes them: `8, 6:2`.
fn roles_text(roles: &Value) -> String {
    roles
        .as_array()
        .map(|a| {
            a.iter()
                .map(|r| match r["category_id"].as_u64().unwrap_or(0) {
                    0 => r["role_id"].to_string(),
                    c => format!("{}:{c}", r["role_id"]),
                })
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

/// Roles as a sorted set, so that order never makes a change.
fn normalize_roles(v: Option<&Value>) -> Value {
    let mut pairs: Vec<(u64, u64)> = v
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|r| match r {
                    Value::Array(pair) => (
                        pair.first().and_then(Value::as_u64).unwrap_or(0),
                        pair.get(1).and_then(Value::as_u64).unwrap_or(0),
                    ),
                    _ => (
                        r.get("role_id").and_then(Value::as_u64).unwrap_or(0),
                        r.get("category_id").and_then(Value::as_u64).unwrap_or(0),
                    ),
                })
                .collect()
        })
        .unwrap_or_default();
    pairs.sort_unstable();
    pairs.dedup();
    Value::Array(
        pairs
            .into_iter()
            .map(|(r, c)| json!({"role_id": r, "category_id": c}))
            .collect(),
    )
}

impl Platform for Hub {
    fn name(&self) -> &'static str {
        "hub"
    }

    fn fields(&self) -> &'static [Field] {
        &FIELDS
    }

    fn key_fields(&self) -> &'static [usize] {
        &[EMAIL]
    }

    fn check_layout(&self, layout: &Layout) -> Vec<String> {
        let numbered_roles = layout.numbered.iter().any(|(f, _, _)| *f == ROLE_ID);
        if layout.has(ROLES) && numbered_roles {
            vec![
                "give roles either in one roles column or in role_id1, category_id1, …, not both"
                    .into(),
            ]
        } else {
            Vec::new()
        }
    }

    fn validate(&self, record: &Record) -> Result<Edit, Vec<FieldError>> {
        let mut c = Checker::new(record);
        let key = match record.get(EMAIL) {
            None => {
                let col = record.layout.field_col[EMAIL].unwrap_or(0);
                c.errors
                    .push(record.error(col, "required (the e-mail of the user to update)"));
                None
            }
            Some(cell) if cell.value.eq_ignore_ascii_case(super::CLEAR) => {
                c.fail(cell, "the e-mail names the user and cannot be cleared");
                None
            }
            Some(cell) => match rules::check_email(cell.value) {
                Ok(()) => Some(UserKey {
                    field: "user_email",
                    value: cell.value.to_string(),
                }),
                Err(m) => {
                    c.fail(cell, m);
                    None
                }
            },
        };
        for (field, name) in TEXT_FIELDS {
            c.text(field, name);
        }
        let active = c.boolean(IS_ACTIVE, "user_is_active");
        if let Some(a) = active {
            c.changes.insert("user_is_active", u8::from(a));
        }
        let mut invite = None;
        if let Some(cell) = record.get(INVITE_STATUS) {
            match rules::parse_whole(cell.value) {
                Some(n @ 0..=3) => {
                    invite = Some(n);
                    c.changes.insert("user_invite_status", n);
                }
                _ => c.fail(
                    cell,
                    "must be 0, 1, 2 or 3 (0 not invited, 1 or 2 pending, 3 active)",
                ),
            }
        }
        if let (Some(false), Some(i @ 1..=3)) = (active, invite) {
            let cell = record.get(INVITE_STATUS).expect("checked above");
            c.fail(
                cell,
                format!(
                    "invite status {i} with is_active 0 is not a user status (inactive is 0/0, \
                     not invited 0/1, pending 1/1 or 2/1, active 3/1)"
                ),
            );
        }
        self.roles(&mut c);
        c.finish(key)
    }

    fn template(&self) -> Template {
        Template {
            headers: vec![
                "user_email",
                "user_first_name",
                "user_last_name",
                "user_job_title",
                "user_business_unit",
                "user_department",
                "user_location",
                "user_is_active",
                "user_invite_status",
                "user_roles",
            ],
            example: vec![
                "user00001@example.com",
                "First00001",
                "Last00001",
                "Developer",
                "Finance",
                "Accounts Payable",
                "Brooklyn",
                "1",
                "3",
                "8; 6:0",
            ],
            choices: vec![
                ("user_is_active", vec!["1", "0"]),
                ("user_invite_status", vec!["0", "1", "2", "3"]),
                ("user_roles", vec!["2", "3", "4", "5", "6", "8", "11"]),
            ],
        }
    }

    fn default_rate(&self) -> f64 {
        // No limit is published; stay polite.
        10.0
    }

    fn connect(&self, settings: &Connect) -> Result<Box<dyn Session>, Error> {
        let token = settings.secrets.token.clone().ok_or_else(|| {
            Error::Credentials(
                "hub needs a token: set BULKEDIT_TOKEN to an Open API token ({tenantId}/{token}) \
                 or a cloud access token, or use --token-file"
                    .into(),
            )
        })?;
        // `{tenantId}/{token}` is an Open API token; anything else is a cloud access token.
        let open_api = token.contains('/');
        let auth = HubAuth {
            bearer: format!("Bearer {token}"),
            open_api,
            app_key: settings.secrets.app_key.clone().filter(|_| open_api),
        };
        let base = endpoint(settings.url, &["api", "v1", "openapi"]);
        let session = HubSession {
            http: Arc::clone(&settings.http),
            auth,
            base,
            cache: OnceLock::new(),
        };
        // Reading the roles proves the URL and the token before any row is touched.
        let reply = settings
            .http
            .send(
                &Request::get(endpoint(&session.base, &["roles"])),
                &session.auth,
            )
            .map_err(|e| super::start_error(e, settings.url))?;
        match reply.status {
            200..=299 => Ok(Box::new(session)),
            403 => Err(Error::Authentication(format!(
                "the token lacks the permission to manage users ({})",
                server_message(&reply)
            ))),
            404 => Err(Error::url(settings.url, format!(
                "{} does not answer like Automation Hub (is --url everything before /api/v1/openapi, \
                 and is Automation Hub enabled?): {}",
                settings.url,
                server_message(&reply)
            ))),
            _ => Err(Error::Authentication(server_message(&reply))),
        }
    }
}

struct HubAuth {
    bearer: String,
    open_api: bool,
    app_key: Option<String>,
}

impl Auth for HubAuth {
    fn headers(&self) -> Vec<(&'static str, String)> {
        let mut h = vec![("authorization", self.bearer.clone())];
        // The two modes are never mixed: a cloud token with this header is refused.
        if self.open_api {
            h.push(("x-ah-openapi-auth", "openapi-token".into()));
            if let Some(key) = &self.app_key {
                h.push(("x-ah-openapi-app-key", key.clone()));
            }
        }
        h
    }
}

struct HubSession {
    http: Arc<Http>,
    auth: HubAuth,
    base: url::Url,
    /// Every user by e-mail, when reading the whole list took fewer calls.
    cache: OnceLock<UserCache>,
}

const PAGE: usize = 500;

impl HubSession {
    fn users_page(
        &self,
        search: Option<&str>,
        page: usize,
        limit: usize,
    ) -> Result<UserPage, Outcome> {
        let mut url = endpoint(&self.base, &["users"]);
        url.query_pairs_mut()
            .append_pair("s", search.unwrap_or(""))
            .append_pair("inviteStatus", "all")
            .append_pair("limit", &limit.to_string())
            .append_pair("page", &page.to_string());
        let (mut body, attempts) =
            read_json(&self.http, &Request::get(url), &self.auth, "reading users")?;
        let data = &mut body["data"];
        let users = take_objects(&mut data["users"]);
        let pages = data["totalPages"].as_u64().unwrap_or(1) as usize;
        Ok((users, pages, attempts))
    }

    fn find(&self, key: &UserKey) -> Result<(Option<Map<String, Value>>, u32), Outcome> {
        if let Some(cache) = self.cache.get() {
            return Ok((cache.get(key), 0));
        }
        let (users, _, attempts) = self.users_page(Some(&key.value), 1, 50)?;
        let user = exact_match(users, "user_email", &key.value);
        Ok((user, attempts))
    }
}

impl Session for HubSession {
    fn prepare(&self, plan: &Plan) -> Result<(), Error> {
        if plan.rows < 2 {
            return Ok(());
        }
        let fail = |o: Outcome| {
            Error::server(
                &self.base,
                format!("cannot read the user list: {}", o.error),
            )
        };
        let (users, pages, _) = self.users_page(None, 1, PAGE).map_err(fail)?;
        // The whole list costs `pages` calls; one search per row costs `rows`.
        if pages >= plan.rows || pages * PAGE > super::MAX_CACHED_USERS {
            return Ok(());
        }
        let keys = |u: &Value| vec![("user_email", u["user_email"].as_str().map(str::to_string))];
        let mut cache = UserCache::default();
        cache.add_page(users, keys);
        for page in 2..=pages {
            let (more, _, _) = self.users_page(None, page, PAGE).map_err(fail)?;
            cache.add_page(more, keys);
        }
        let _ = self.cache.set(cache);
        Ok(())
    }

    fn apply(&self, edit: &Edit, dry_run: bool) -> Outcome {
        let (current, read_attempts) = match self.find(&edit.key) {
            Ok(found) => found,
            Err(outcome) => return outcome,
        };
        let Some(current) = current else {
            return Outcome::with_error(Status::NotFound, "no Automation Hub user has this e-mail")
                .http(200, read_attempts);
        };
        let mut now: Map<String, Value> = RECORD_FIELDS
            .iter()
            .map(|k| {
                (
                    k.to_string(),
                    current.get(*k).cloned().unwrap_or(Value::Null),
                )
            })
            .collect();
        now.insert(
            "user_roles".into(),
            normalize_roles(current.get("user_roles")),
        );
        let mut desired = now.clone();
        for (k, v) in edit.changes.iter() {
            desired.insert(k.to_string(), v.clone());
        }
        desired.insert(
            "user_roles".into(),
            normalize_roles(desired.get("user_roles")),
        );
        if desired == now {
            let mut o = Outcome::new(Status::Unchanged);
            o.attempts = read_attempts;
            return o;
        }
        if dry_run {
            let show = |m: &Map<String, Value>| {
                let mut m = m.clone();
                m.insert(
                    "user_roles".into(),
                    Value::String(roles_text(&m["user_roles"])),
                );
                m
            };
            let mut o = Outcome::with_error(
                Status::WouldUpdate,
                describe_changes(&show(&now), &show(&desired), &RECORD_FIELDS),
            );
            o.attempts = read_attempts;
            return o;
        }
        // Null fields are left out: the server keeps what it has.
        let body: Map<String, Value> = desired.into_iter().filter(|(_, v)| !v.is_null()).collect();
        let req = Request::new(Method::POST, endpoint(&self.base, &["edituser"]))
            .json(&Value::Object(body));
        match self.http.send(&req, &self.auth) {
            Err(e) => Outcome::from_call_error(e, read_attempts),
            Ok(reply) => {
                let accepted = reply.is_success()
                    && reply
                        .json()
                        .and_then(|b| b.get("statusCode").and_then(Value::as_u64))
                        .is_none_or(|c| (200..300).contains(&c));
                let status = if accepted {
                    Status::Updated
                } else {
                    Status::Failed
                };
                let error = if accepted {
                    String::new()
                } else {
                    server_message(&reply)
                };
                Outcome::with_error(status, error)
                    .http(reply.status, read_attempts + reply.attempts)
            }
        }
    }
}
