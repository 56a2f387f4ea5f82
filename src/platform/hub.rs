//! UiPath Automation Hub Open API: `POST {url}/api/v1/openapi/edituser`, users keyed by e-mail,
//! two authentication modes that must not be mixed.

use std::sync::Arc;

use reqwest::Method;
use serde_json::{json, Map, Value};

use super::cache::search_exact;
use super::dictionary::{self, count, index, indices, Dictionary, Pick};
use super::page::{self, read_page, Users};
use super::rmw::{Answer, Change, Found, ListPage, Names, PageAt, ReadModifyWrite, Total, Vendor};
use super::{
    endpoint, read_json, server_message, Changes, Checker, Connect, Edit, Field, Keep, Layout,
    Platform, Record, Session, Template, UserKey,
};
use crate::engine::{Auth, CallError, Http, Outcome, Reply, Request, Status};
use crate::error::Error;
use crate::rules::{self, normalize_header, FieldError, MAX_TEXT};

/// Automation Hub's fields, in the order `edituser`'s example body lists them: the order rows
/// are checked in and a dry run describes. The template has its own column order.
#[rustfmt::skip]
const FIELDS: &[Field] = {
    use dictionary::{Kind::*, Place::*, Sent::*, Shown::*};
    const TEXT: dictionary::Kind = Text(MAX_TEXT);
    &[
        // name                           aliases                  kind          in the record                   template: column, example, drop-down
        Field::new("user_email",         &["Email", "Email Address", "Mail"], Key(&Email),    InRecord("user_email"),         Column(0, "user00001@example.com", &[])),
        Field::new("user_first_name",    &["First Name", "Given Name"], TEXT,           InRecord("user_first_name"),    Column(1, "First00001", &[])),
        Field::new("user_last_name",     &["Last Name", "Surname", "Family Name"], TEXT,           InRecord("user_last_name"),     Column(2, "Last00001", &[])),
        Field::new("user_location",      &["Location"],               TEXT,           InRecord("user_location"),      Column(6, "Brooklyn", &[])),
        Field::new("user_department",    &["Department"],             TEXT,           InRecord("user_department"),    Column(5, "Accounts Payable", &[])),
        Field::new("user_business_unit", &["Business Unit"],          TEXT,           InRecord("user_business_unit"), Column(4, "Finance", &[])),
        Field::new("user_job_title",     &["Job Title"],              TEXT,           InRecord("user_job_title"),     Column(3, "Developer", &[])),
        Field::new("user_is_active",     &["Is Active"],              YesNo(OneZero), InRecord("user_is_active"),     Column(7, "1", &["1", "0"])),
        Field::new("user_invite_status", &["Invite Status"],          Own,            InRecord("user_invite_status"), Column(8, "3", &["0", "1", "2", "3"])),
        Field::new("user_roles",         &["Roles"],                  Own,            InRecord("user_roles"),         Column(9, "8; 6:0", &["2", "3", "4", "5", "6", "8", "11"])),
        Field::new("rolesToAdd",         &["Add Roles"],              Own,            WriteOnly,                      Hidden),
        Field::new("rolesToRemove",      &["Remove Roles"],           Own,            WriteOnly,                      Hidden),
        Field::new("Status",             &[],                         Named(STATUSES), Folded,                       Hidden),
        Field::numbered("role_id"),
        Field::numbered("category_id"),
    ]
};

/// A `Status` column read through UiPath's user status table (invite status / is active):
/// active 3/1, not invited 0/1; inactive sends 1/0, as UiPath's inactivation procedure does, and
/// agrees with 0/0; pending sends 1/1 (no e-mail sent) and agrees with 2/1.
#[rustfmt::skip]
const STATUSES: &[dictionary::Choice] = {
    use dictionary::Choice;
    &[
        Choice { name: "Active", sets: &[("user_is_active", 1, &[1]), ("user_invite_status", 3, &[3])] },
        Choice { name: "Inactive", sets: &[("user_is_active", 0, &[0]), ("user_invite_status", 1, &[0, 1])] },
        Choice { name: "Pending", sets: &[("user_is_active", 1, &[1]), ("user_invite_status", 1, &[1, 2])] },
        Choice { name: "Not invited", sets: &[("user_is_active", 1, &[1]), ("user_invite_status", 0, &[0])] },
    ]
};

const EMAIL: usize = index(FIELDS, "user_email");
const FIRST_NAME: usize = index(FIELDS, "user_first_name");
const LAST_NAME: usize = index(FIELDS, "user_last_name");
/// The role a new user gets when the row gives none, as Automation Hub's own `adduser` does.
const STANDARD_USER: u32 = 8;
const IS_ACTIVE: usize = index(FIELDS, "user_is_active");
const INVITE_STATUS: usize = index(FIELDS, "user_invite_status");
const ROLES: usize = index(FIELDS, "user_roles");
const ROLES_ADD: usize = index(FIELDS, "rolesToAdd");
const ROLES_REMOVE: usize = index(FIELDS, "rolesToRemove");
const ROLE_ID: usize = index(FIELDS, "role_id");
const CATEGORY_ID: usize = index(FIELDS, "category_id");
const KEYS: [usize; count(FIELDS, Pick::Keys)] = indices(FIELDS, Pick::Keys);

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

    /// A role id, or a name: a default role's name is its id at once; any other name is a
    /// custom role's, which only the server's own list knows (the run looks it up there).
    fn role(&self, text: &str) -> Result<RoleRef, String> {
        if let Some(n) = rules::parse_whole(text) {
            let known = DEFAULT_ROLES.iter().any(|(id, _)| i64::from(*id) == n)
                || self.allowed_roles.iter().any(|id| i64::from(*id) == n);
            return if known {
                Ok(RoleRef::Id(n as u32))
            } else {
                Err(format!("role {n} is not a default role ({}; admit a custom role with --allow-role {n}, or name it)", self.role_hint()))
            };
        }
        Ok(default_role(text).map_or_else(|| RoleRef::Name(text.to_string()), RoleRef::Id))
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
    fn role_item(&self, item: &str) -> Result<(RoleRef, u32), String> {
        match item.bytes().position(|c| c == b':') {
            Some(i) => Ok((
                self.role(rules::trim(&item[..i]))?,
                Hub::category(rules::trim(&item[i + 1..]))?,
            )),
            None => Ok((self.role(item)?, 0)),
        }
    }

    /// `rolesToAdd` / `rolesToRemove`: roles (with a category or not) a row adds to or takes
    /// from the user's, never beside a whole set, and no role in both.
    fn role_moves(&self, field: usize, c: &mut Checker) {
        const _: () = assert!(ROLES < ROLES_ADD && ROLES_ADD < ROLES_REMOVE);
        let rec = c.record;
        let Some(cell) = rec.get(field) else {
            return;
        };
        let whole_set = rec.get(ROLES).is_some()
            || rec
                .layout
                .numbered
                .iter()
                .any(|&(f, _, col)| f == ROLE_ID && rec.cell(col).is_some());
        if whole_set {
            c.fail(
                cell,
                "a row that sets the whole set of roles (user_roles) cannot also add or remove: keep one",
            );
            return;
        }
        let parse = |text: &str| -> Result<Vec<(RoleRef, u32)>, String> {
            rules::split_list(text)
                .map(|item| self.role_item(item))
                .collect()
        };
        let mut roles = match parse(cell.value) {
            Ok(roles) => roles,
            Err(m) => {
                c.fail(cell, m);
                return;
            }
        };
        if field == ROLES_REMOVE {
            // Read from the cell, so that validate (which keeps no changes) says it too.
            let added = rec
                .get(ROLES_ADD)
                .and_then(|a| parse(a.value).ok())
                .unwrap_or_default();
            if let Some((r, _)) = roles
                .iter()
                .find(|(r, _)| added.iter().any(|(a, _)| a.same(r)))
            {
                c.fail(
                    cell,
                    format!("role {r} is also in rolesToAdd (keep it in one list)"),
                );
                return;
            }
        }
        roles.sort_unstable();
        roles.dedup();
        c.changes
            .insert_with(FIELDS[field].name, || roles_json(&roles));
    }

    fn roles(&self, c: &mut Checker) {
        let rec = c.record;
        let mut roles: smallvec::SmallVec<[(RoleRef, u32); 8]> = smallvec::SmallVec::new();
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
        for &(_, n, col) in numbered.iter().filter(|(f, _, _)| *f == ROLE_ID) {
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
            c.changes
                .insert_with(FIELDS[ROLES].name, || roles_json(&roles));
        }
    }
}

/// A role as a row names it: by id (a default role's name is read as its id at once), or
/// by the name of a custom role, which the server's own list resolves.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum RoleRef {
    Id(u32),
    Name(String),
}

impl RoleRef {
    /// The same role as far as the row tells: names compare as headers do (any case,
    /// spaces, `_` and `-` aside).
    fn same(&self, other: &RoleRef) -> bool {
        match (self, other) {
            (RoleRef::Name(a), RoleRef::Name(b)) => normalize_header(a) == normalize_header(b),
            (a, b) => a == b,
        }
    }

    fn json(&self) -> Value {
        match self {
            RoleRef::Id(id) => json!(id),
            RoleRef::Name(name) => json!(name),
        }
    }
}

impl std::fmt::Display for RoleRef {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            RoleRef::Id(id) => write!(f, "{id}"),
            RoleRef::Name(name) => write!(f, "'{name}'"),
        }
    }
}

/// A default role's id by its name, in any case, spaces, `_` and `-` aside.
fn default_role(name: &str) -> Option<u32> {
    let wanted = normalize_header(name);
    DEFAULT_ROLES
        .iter()
        .find(|(_, n)| normalize_header(n) == wanted)
        .map(|(id, _)| *id)
}

/// `[role, category]` pairs as an edit holds them, custom roles' names resolved by
/// `resolve` (which the session's list of roles answers).
fn pairs(v: &Value, resolve: &dyn Fn(&str) -> Option<u32>) -> Vec<(u64, u64)> {
    v.as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let role = match p.get(0) {
                Some(Value::String(name)) => resolve(name).map_or(0, u64::from),
                Some(other) => other.as_u64().unwrap_or(0),
                None => 0,
            };
            (role, p.get(1).and_then(Value::as_u64).unwrap_or(0))
        })
        .collect()
}

/// Roles in an edit: `[role, category]` pairs, cheap to build for every row, a custom role
/// by its name until the run's list of roles says its id; they become the vendor's
/// `{"role_id", "category_id"}` objects only when a request is made.
fn roles_json(roles: &[(RoleRef, u32)]) -> Value {
    Value::Array(roles.iter().map(|(r, c)| json!([r.json(), c])).collect())
}

/// The names of roles an edit's role lists give, as written.
fn role_names(v: &Value) -> impl Iterator<Item = &str> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p.get(0).and_then(Value::as_str))
}

/// The `(role, category)` pairs of roles as [`normalize_roles`] gives them.
fn pairs_of_record(roles: &Value) -> Vec<(u64, u64)> {
    roles
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            (
                r["role_id"].as_u64().unwrap_or(0),
                r["category_id"].as_u64().unwrap_or(0),
            )
        })
        .collect()
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

impl Dictionary for Hub {
    const FIELDS: &'static [Field] = FIELDS;

    // This, `check_own` and `invite_status` are inlined into the table's walk: called apart,
    // they cost 2% of the dictionary's instructions in calls alone.
    #[inline]
    fn key(&self, c: &mut Checker) -> Option<UserKey> {
        let record = c.record;
        match record.get(EMAIL) {
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
                    field: FIELDS[EMAIL].name,
                    value: cell.value.to_string(),
                }),
                Err(m) => {
                    c.fail(cell, m);
                    None
                }
            },
        }
    }

    #[inline]
    fn check_own(&self, field: usize, c: &mut Checker) {
        match field {
            INVITE_STATUS => invite_status(c),
            ROLES => self.roles(c),
            ROLES_ADD | ROLES_REMOVE => self.role_moves(field, c),
            // role_id1, category_id1, … are read with user_roles.
            _ => {}
        }
    }
}

/// 0 to 3, and with `user_is_active` 0 only a pair from UiPath's user status table, or 1/0,
/// the pair UiPath's own inactivation procedure sends; a row that makes a user inactive without
/// an invite status sends that 1 (SPEC Validation).
#[inline]
fn invite_status(c: &mut Checker) {
    const _: () = assert!(IS_ACTIVE < INVITE_STATUS);
    let Some(cell) = c.record.get(INVITE_STATUS) else {
        if c.said(IS_ACTIVE) == Some(false) {
            c.changes.insert(FIELDS[INVITE_STATUS].name, 1);
        }
        return;
    };
    let Some(invite @ 0..=3) = rules::parse_whole(cell.value) else {
        c.fail(
            cell,
            "must be 0, 1, 2 or 3 (0 not invited, 1 or 2 pending, 3 active)",
        );
        return;
    };
    c.changes.insert(FIELDS[INVITE_STATUS].name, invite);
    // The table puts user_is_active first, so its answer is known here.
    if let (Some(false), 2..=3) = (c.said(IS_ACTIVE), invite) {
        c.fail(
            cell,
            format!(
                "invite status {invite} with is_active 0 is not a user status (inactive is 0/0 \
                 or 1/0, not invited 0/1, pending 1/1 or 2/1, active 3/1)"
            ),
        );
    }
}

impl Platform for Hub {
    fn deactivation(&self) -> Changes {
        deactivation()
    }

    fn taken_away(&self, change: &crate::engine::FieldChange) -> Vec<String> {
        if change.field == FIELDS[ROLES].name {
            super::list_losses(change)
        } else {
            Vec::new()
        }
    }

    fn name(&self) -> &'static str {
        "hub"
    }

    fn api_path(&self) -> &'static [&'static str] {
        &["api", "v1", "openapi"]
    }

    fn url_sign(&self, url: &url::Url) -> Option<String> {
        let path = url.path().to_ascii_lowercase();
        if super::has_segment(url, "automationhub_") {
            Some("its path has automationhub_, Automation Hub's".into())
        } else if path.contains("/api/v1/openapi") {
            Some("its path has /api/v1/openapi, Automation Hub's Open API".into())
        } else if url.host_str() == Some("automation-hub.uipath.com") {
            Some("automation-hub.uipath.com is Automation Hub's".into())
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
        dictionary::check(self, record)
    }

    fn template(&self) -> Template {
        dictionary::template(FIELDS)
    }

    fn cannot_create(&self, edit: &Edit) -> Vec<String> {
        creation_problems(edit)
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
        let mut session = HubSession {
            http: Arc::clone(&settings.http),
            auth,
            base,
            roles: default_names(),
            roles_listed: false,
        };
        // Reading the roles proves the URL and the token before any row is touched. When the
        // run is about to read the whole user list, its first page is read beside them: it is
        // kept only if the roles say the URL and the token are good.
        let (reply, first) = std::thread::scope(|scope| {
            let first = settings.first_page.then(|| {
                scope.spawn(|| {
                    let (users, total, _, _) =
                        session.users_page(None, 1, HubSession::PAGE).ok()?;
                    Some(ListPage { users, total })
                })
            });
            let reply = settings.http.send(
                &Request::get(endpoint(&session.base, &["roles"])),
                &session.auth,
            );
            let first = first.and_then(|t| t.join().ok().flatten());
            (reply, first)
        });
        let reply = reply.map_err(|e| super::start_error(e, settings.url))?;
        if super::is_web_page(&reply) || (reply.is_success() && reply.json().is_none()) {
            return Err(Error::url(
                settings.url,
                format!(
                    "{} is not Automation Hub's API (is --url everything before /api/v1/openapi?): {}",
                    settings.url,
                    super::not_the_api(&reply)
                ),
            ));
        }
        match reply.status {
            200..=299 => {
                // The answer is the role list the rows' role names are looked up in.
                if let Some(roles) = reply.json().and_then(|body| role_names_of(&body)) {
                    session.roles = roles;
                    session.roles_listed = true;
                }
                let base = session.base.clone();
                Ok(Box::new(
                    ReadModifyWrite::new(session, base).with_first_page(first),
                ))
            }
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
    /// The tenant's roles (id, name), from the `GET /roles` the log-in reads; the default
    /// roles when that answer lists none.
    roles: Names,
    /// Whether `roles` is the server's own list.
    roles_listed: bool,
}

impl HubSession {
    /// A page of users, every invite status, whose e-mail or name contains `search`: with
    /// how many there are (users when the answer counts them, else pages), how many pages,
    /// and the requests it took. Counted in users, a list that changes while it is read shows
    /// it in pages counting otherwise than the first.
    fn users_page(
        &self,
        search: Option<&str>,
        page: usize,
        limit: usize,
    ) -> Result<(Users, Total, usize, u32), Outcome> {
        let mut url = endpoint(&self.base, &["users"]);
        url.query_pairs_mut()
            .append_pair("s", search.unwrap_or(""))
            .append_pair("inviteStatus", "all")
            .append_pair("limit", &limit.to_string())
            .append_pair("page", &page.to_string());
        let req = Request::get(url);
        let (body, users, attempts) = read_page(
            &self.http,
            &req,
            &self.auth,
            "reading users",
            &["data", "users"],
        )?;
        let pages = body["data"]["totalPages"].as_u64().unwrap_or(1) as usize;
        let total = match body["data"]["totalItems"].as_u64() {
            Some(users) => Total::Users(users as usize),
            None => Total::Pages(pages),
        };
        Ok((users, total, pages, attempts))
    }
}

impl Vendor for HubSession {
    const FIELDS: &'static [Field] = FIELDS;
    // The largest page the sandbox serves, as on the other platforms: a tenant of 20,000 users
    // is 20 reads, most of them at once. A server that pages smaller is followed (`Shape`).
    const PAGE: usize = 1000;

    fn list_page(&self, at: &PageAt) -> Result<ListPage, Outcome> {
        let (users, total, _, _) = self.users_page(None, at.number + 1, at.size)?;
        Ok(ListPage { users, total })
    }

    fn find(&self, key: &UserKey) -> Result<Found, Outcome> {
        // The search matches loosely: only the exact e-mail is the row's user, on any page.
        search_exact(FIELDS[EMAIL].name, &key.value, |n| {
            let (users, _, pages, attempts) = self.users_page(Some(&key.value), n + 1, 50)?;
            Ok((page::values(users), n + 1 < pages, attempts))
        })
    }

    /// Hub has no read by id: its users are written and found by e-mail.
    fn read(&self, email: &str) -> Result<Found, Outcome> {
        self.find(&UserKey {
            field: FIELDS[EMAIL].name,
            value: email.to_string(),
        })
    }

    fn not_found(&self, _key: &UserKey) -> String {
        "no Automation Hub user has this e-mail".into()
    }

    /// Roles as `{"role_id", "category_id"}` numbers, and the two status fields as numbers
    /// when present: anything else would be sent back as zeros or an empty list.
    fn understood(&self, record: &Map<String, Value>) -> Result<(), String> {
        let roles = FIELDS[ROLES].name;
        let role_ok = |r: &Value| {
            r.get("role_id").is_some_and(Value::is_u64)
                && r.get("category_id").is_none_or(Value::is_u64)
        };
        match record.get(roles) {
            Some(Value::Array(list)) if list.iter().all(role_ok) => {}
            Some(other) => {
                return Err(format!(
                    "the server's {roles} are not role objects ({}): nothing was sent",
                    super::shown(other)
                ))
            }
            None => {
                return Err(format!(
                    "the server's record has no {roles}: nothing was sent"
                ))
            }
        }
        for key in [FIELDS[IS_ACTIVE].name, FIELDS[INVITE_STATUS].name] {
            match record.get(key) {
                None | Some(Value::Null) => {}
                Some(v) if v.is_u64() => {}
                Some(other) => {
                    return Err(format!(
                        "the server's {key} is not a number ({}): nothing was sent",
                        super::shown(other)
                    ))
                }
            }
        }
        Ok(())
    }

    /// UiPath's status table has no inactive user with invite status 3: deactivating an
    /// active user sends invite status 1, as UiPath's own inactivation procedure does.
    /// Also carries out `rolesToAdd` and `rolesToRemove` on the roles as read: a role without
    /// a category added where the user has it with one is there already, and removed with any.
    fn settle(&self, record: &mut Map<String, Value>, edit: &Edit) -> Result<(), String> {
        let (active, invite) = (FIELDS[IS_ACTIVE].name, FIELDS[INVITE_STATUS].name);
        let inactive = record.get(active).and_then(Value::as_u64) == Some(0);
        if inactive && record.get(invite).and_then(Value::as_u64) == Some(3) {
            record.insert(invite.to_string(), json!(1));
        }
        let by_name = |name: &str| self.role_id(name);
        let add = edit
            .changes
            .get(FIELDS[ROLES_ADD].name)
            .map(|v| pairs(v, &by_name));
        let remove = edit
            .changes
            .get(FIELDS[ROLES_REMOVE].name)
            .map(|v| pairs(v, &by_name));
        if add.is_none() && remove.is_none() {
            return Ok(());
        }
        let key = FIELDS[ROLES].name;
        let mut roles: Vec<(u64, u64)> = pairs_of_record(&normalize_roles(record.get(key)));
        let same = |(r, c): (u64, u64), (hr, hc): (u64, u64)| r == hr && (c == 0 || c == hc);
        for wanted in add.unwrap_or_default() {
            if !roles.iter().any(|&held| same(wanted, held)) {
                roles.push(wanted);
            }
        }
        for gone in remove.unwrap_or_default() {
            roles.retain(|&held| !same(gone, held));
        }
        if roles.is_empty() {
            return Err(format!(
                "{}: this would leave the user without a role (a user keeps at least one; \
                 nothing was sent)",
                FIELDS[ROLES_REMOVE].name
            ));
        }
        let objects: Vec<Value> = roles
            .iter()
            .map(|(r, c)| json!({"role_id": r, "category_id": c}))
            .collect();
        record.insert(key.to_string(), Value::Array(objects));
        Ok(())
    }

    /// Custom roles named in `user_roles` as the ids the tenant's list gives them.
    fn resolve(&self, field: &str, value: &Value) -> Result<Value, String> {
        if field != FIELDS[ROLES].name {
            return Ok(value.clone());
        }
        let by_name = |name: &str| self.role_id(name);
        let resolved = pairs(value, &by_name);
        Ok(Value::Array(
            resolved.iter().map(|(r, c)| json!([r, c])).collect(),
        ))
    }

    /// Role names the tenant does not have, or has twice: the row is invalid, with the
    /// closest names. Ids were checked with the row (default roles and `--allow-role`).
    fn unknown_names(&self, edit: &Edit) -> Result<(), Outcome> {
        for field in [ROLES, ROLES_ADD, ROLES_REMOVE] {
            let Some(value) = edit.changes.get(FIELDS[field].name) else {
                continue;
            };
            for name in role_names(value) {
                let wanted = normalize_header(name);
                let matching: Vec<&(String, String)> = self
                    .roles
                    .iter()
                    .filter(|(_, n)| normalize_header(n) == wanted)
                    .collect();
                let why = match matching.as_slice() {
                    [_] => continue,
                    [] => {
                        let names: Vec<&str> = self.roles.iter().map(|(_, n)| n.as_str()).collect();
                        let mut why = super::rmw::no_such("role", name, &names);
                        if !self.roles_listed {
                            why.push_str(
                                " (the server's list of roles could not be read: only the \
                                 default roles go by name)",
                            );
                        }
                        why
                    }
                    several => format!(
                        "{} roles are named '{name}' (ids {}): give the id",
                        several.len(),
                        several
                            .iter()
                            .map(|(id, _)| id.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                };
                return Err(Outcome::with_error(
                    Status::Invalid,
                    format!("{}: {why}", FIELDS[field].name),
                ));
            }
        }
        Ok(())
    }

    fn normalise(&self, key: &str, value: Value) -> Value {
        if key == FIELDS[ROLES].name {
            normalize_roles(Some(&value))
        } else {
            value
        }
    }

    fn write(&self, _email: &str, change: &Change) -> Result<Reply, CallError> {
        self.post("edituser", change)
    }

    fn interpret(&self, _id: &str, reply: &Reply) -> Answer {
        envelope(reply)
    }

    fn cannot_create(&self, edit: &Edit) -> Vec<String> {
        creation_problems(edit)
    }

    /// A new user is a Standard User unless the row gives roles.
    fn new_record(&self) -> Map<String, Value> {
        let mut record = Map::new();
        record.insert(FIELDS[ROLES].name.into(), json!([[STANDARD_USER, 0]]));
        record
    }

    fn create(&self, _edit: &Edit, change: &Change) -> Result<Reply, CallError> {
        self.post("adduser", change)
    }

    fn created(&self, _edit: &Edit, reply: &Reply) -> Answer {
        envelope(reply)
    }

    /// Pending users (1/1, 2/1) are active accounts too; inactive is `user_is_active` 0.
    fn is_active(&self, user: &Map<String, Value>) -> bool {
        user.get(FIELDS[IS_ACTIVE].name).and_then(Value::as_u64) != Some(0)
    }

    fn deactivation(&self) -> Changes {
        deactivation()
    }

    /// `GET /roles`: every role, custom ones included; the list read at log-in when it was.
    fn names(&self) -> Result<Names, Outcome> {
        if self.roles_listed {
            return Ok(self.roles.clone());
        }
        let req = Request::get(endpoint(&self.base, &["roles"]));
        let (body, attempts) = read_json(&self.http, &req, &self.auth, "reading the roles")?;
        role_names_of(&body).ok_or_else(|| super::unknown_shape("reading the roles", attempts))
    }

    /// The tenant's roles, which the `changes` column names roles by.
    fn names_known(&self) -> Names {
        self.roles.clone()
    }

    /// Roles by name where `apply` reads the name back as the same role, by id otherwise (a
    /// name two roles share, one that does not read back as one list item, or a custom
    /// role named like a default one).
    fn exported(&self, field: &Field, user: &Map<String, Value>, names: &Names) -> Option<String> {
        if field.name != FIELDS[ROLES].name {
            return None;
        }
        let roles = normalize_roles(user.get(field.name));
        let items: Vec<String> = roles
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| {
                let id = r["role_id"].as_u64().unwrap_or(0);
                let role = name_reading_back(names, id).unwrap_or_else(|| id.to_string());
                match r["category_id"].as_u64().unwrap_or(0) {
                    0 => role,
                    c => format!("{role}:{c}"),
                }
            })
            .collect();
        Some(items.join("; "))
    }
}

impl HubSession {
    /// The id of the tenant's one role named `name` (in any case, spaces, `_` and `-`
    /// aside), a default role's name included.
    fn role_id(&self, name: &str) -> Option<u32> {
        let wanted = normalize_header(name);
        let mut matching = self
            .roles
            .iter()
            .filter(|(_, n)| normalize_header(n) == wanted);
        let (id, _) = matching.next()?;
        match matching.next() {
            Some(_) => None,
            None => id.parse().ok().or_else(|| default_role(name)),
        }
    }
}

/// The default roles as a list of names.
fn default_names() -> Names {
    DEFAULT_ROLES
        .iter()
        .map(|(id, name)| (id.to_string(), name.to_string()))
        .collect()
}

/// The roles of a `GET /roles` answer (`{"data": [{"role_id", "role_name"}, …]}`), when it
/// lists any.
fn role_names_of(body: &Value) -> Option<Names> {
    let roles: Names = body["data"]
        .as_array()?
        .iter()
        .filter_map(|r| {
            Some((
                r["role_id"].as_u64()?.to_string(),
                r["role_name"].as_str()?.to_string(),
            ))
        })
        .collect();
    (!roles.is_empty()).then_some(roles)
}

/// The name a sheet can give role `id` by, when `apply` reads that name back as this role:
/// one role alone has it, it reads as one list item, and it is no default role's name (those
/// are read without the server) unless this is that default role.
fn name_reading_back(names: &Names, id: u64) -> Option<String> {
    let (_, name) = names.iter().find(|(rid, _)| *rid == id.to_string())?;
    let key = normalize_header(name);
    let alone = names
        .iter()
        .filter(|(_, n)| normalize_header(n) == key)
        .count()
        == 1;
    let one_item = !name.is_empty()
        && rules::trim(name) == name
        && !name.contains([';', ',', ':'])
        && rules::parse_whole(name).is_none();
    let as_default = default_role(name).is_none_or(|d| u64::from(d) == id);
    (alone && one_item && as_default).then(|| name.clone())
}

impl HubSession {
    /// The whole record as compared, roles as the vendor's objects, to `edituser` or
    /// `adduser`; null fields are left out, so the server keeps what it has.
    fn post(&self, call: &str, change: &Change) -> Result<Reply, CallError> {
        let body: Map<String, Value> = change
            .after
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let req =
            Request::new(Method::POST, endpoint(&self.base, &[call])).json(&Value::Object(body));
        self.http.send(&req, &self.auth)
    }
}

/// `adduser` needs the e-mail (the row's key), a first and a last name, and refuses
/// invite status 3: a user becomes active by logging in.
fn creation_problems(edit: &Edit) -> Vec<String> {
    let given = |field: usize| {
        edit.changes
            .get(FIELDS[field].name)
            .and_then(Value::as_str)
            .is_some_and(|s| !s.trim().is_empty())
    };
    let mut problems: Vec<String> = [FIRST_NAME, LAST_NAME]
        .into_iter()
        .filter(|&f| !given(f))
        .map(|f| format!("{} is needed", FIELDS[f].name))
        .collect();
    if edit
        .changes
        .get(FIELDS[INVITE_STATUS].name)
        .and_then(Value::as_u64)
        == Some(3)
    {
        problems.push(format!(
            "{} 3 (active) cannot be given to a new user; leave it empty or give 1 (pending)",
            FIELDS[INVITE_STATUS].name
        ));
    }
    problems
}

/// What an answer to `edituser` or `adduser` says.
fn envelope(reply: &Reply) -> Answer {
    // Success is the documented envelope, `{"statusCode": 201, …}`, with a 2xx in it: a
    // 200 may still carry the vendor's own failing `statusCode`, and anything else (a
    // web page, an empty body) is not the API's answer at all.
    if !reply.is_success() {
        return Answer::Refused(server_message(reply));
    }
    match reply
        .json()
        .as_ref()
        .and_then(|b| b.get("statusCode"))
        .and_then(Value::as_u64)
    {
        Some(200..=299) => Answer::Accepted,
        Some(_) => Answer::Refused(server_message(reply)),
        None => Answer::Refused(super::not_the_api(reply)),
    }
}

/// `user_is_active` 0 with invite status 1, as UiPath's page on inactivating users that
/// left the company sends.
fn deactivation() -> Changes {
    let mut changes = Changes::new(Keep::Changes);
    changes.insert(FIELDS[IS_ACTIVE].name, 0);
    changes.insert(FIELDS[INVITE_STATUS].name, 1);
    changes
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::engine::HttpSettings;
    use crate::platform::rmw::merge;
    use crate::platform::{Changes, Keep};

    fn session() -> HubSession {
        HubSession {
            http: Arc::new(Http::new(HttpSettings::default(), Default::default()).unwrap()),
            auth: HubAuth {
                bearer: "Bearer t/t".into(),
                open_api: true,
                app_key: None,
            },
            base: "http://127.0.0.1/api/v1/openapi".parse().unwrap(),
            roles: default_names(),
            roles_listed: false,
        }
    }

    #[test]
    fn the_template_keeps_its_columns_examples_and_drop_downs() {
        let t = Hub::new(Vec::new()).template();
        assert_eq!(
            t.headers,
            [
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
            ]
        );
        assert_eq!(
            t.example,
            [
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
            ]
        );
        assert_eq!(
            t.choices,
            [
                ("user_is_active", vec!["1", "0"]),
                ("user_invite_status", vec!["0", "1", "2", "3"]),
                ("user_roles", vec!["2", "3", "4", "5", "6", "8", "11"]),
            ]
        );
    }

    #[test]
    fn a_dry_run_names_fields_in_edituser_order_and_roles_as_people_write_them() {
        let current = json!({
            "user_email": "a@example.com", "user_first_name": "A", "user_location": "X",
            "user_job_title": "J", "user_roles": [{"role_id": 8, "category_id": 0}],
        });
        let mut changes = Changes::new(Keep::Changes);
        changes.insert("user_job_title", "K");
        changes.insert("user_location", "Y");
        changes.insert("user_roles", json!([[5, 3], [4, 0], [8, 0]]));
        changes.insert("user_is_active", 1);
        let edit = Edit {
            key: UserKey {
                field: "user_email",
                value: "a@example.com".into(),
            },
            changes,
            plan: None,
        };
        let s = session();
        let change = merge(&s, current.as_object().unwrap().clone(), &edit).unwrap();
        let said: Vec<_> = s
            .describe(&change)
            .into_iter()
            .map(|c| (c.field, c.before, c.after))
            .collect();
        let c = |f: &str, b: &str, a: &str| (f.to_string(), b.to_string(), a.to_string());
        assert_eq!(
            said,
            [
                c("user_location", "X", "Y"),
                c("user_job_title", "J", "K"),
                c("user_is_active", "", "1"),
                c(
                    "user_roles",
                    "Standard User",
                    "Component Curator; Program Manager:3; Standard User"
                ),
            ]
        );
        // Roles are sent as the vendor's objects, sorted.
        assert_eq!(
            change.after["user_roles"],
            json!([
                {"role_id": 4, "category_id": 0},
                {"role_id": 5, "category_id": 3},
                {"role_id": 8, "category_id": 0}
            ])
        );
    }
}
