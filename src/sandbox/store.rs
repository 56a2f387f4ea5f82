//! The sandbox's users: the same people on every platform, seeded the same way every time.
//! User `i` (from 1) is `user{i:05}@example.com`, `First{i:05} Last{i:05}`.

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Instant;

use serde_json::value::RawValue;
use serde_json::{json, Map, Value};

pub type Record = Map<String, Value>;

/// Users in a fixed order (for paging) with an index by key, each also kept as the JSON text
/// a list page shows: a page of a thousand users is then copied, not written out, so the
/// sandbox spends little of the CPU that a client on the same machine is measured with (a
/// vendor's server has its own).
#[derive(Default)]
pub struct Users {
    list: Vec<Record>,
    texts: Vec<OnceLock<Box<RawValue>>>,
    index: HashMap<String, usize>,
}

impl Users {
    pub fn push(&mut self, key: String, record: Record) {
        self.index.insert(key, self.list.len());
        self.texts.push(OnceLock::from(text_of(&record)));
        self.list.push(record);
    }
    /// The record, to change: its text is written again when next shown.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut Record> {
        let i = *self.index.get(key)?;
        self.texts[i] = OnceLock::new();
        self.list.get_mut(i)
    }
    pub fn get(&self, key: &str) -> Option<&Record> {
        self.list.get(*self.index.get(key)?)
    }
    /// Every record, in list order.
    pub fn records(&self) -> &[Record] {
        &self.list
    }
    /// The records at `at` in list order as JSON text, and how long they are together.
    pub fn texts(&self, at: impl Iterator<Item = usize>) -> (Vec<&RawValue>, usize) {
        let texts: Vec<&RawValue> = at.map(|i| self.text(i)).collect();
        let size = texts.iter().map(|t| t.get().len() + 1).sum();
        (texts, size)
    }

    /// The record at `at` in list order as JSON text.
    pub fn text(&self, at: usize) -> &RawValue {
        self.texts[at].get_or_init(|| text_of(&self.list[at]))
    }
}

fn text_of(record: &Record) -> Box<RawValue> {
    serde_json::value::to_raw_value(record).expect("JSON values serialize")
}

pub struct World {
    pub hub: Users,
    pub identity: Users,
    pub control_room: Users,
    /// Tokens issued by `/connect/token`, with their expiry.
    pub identity_tokens: HashMap<String, Instant>,
    /// Control Room JWTs, with their expiry.
    pub cr_tokens: HashMap<String, Instant>,
    /// Control Room ids by lower-case username, so a rename checks uniqueness at once.
    pub cr_usernames: HashMap<String, String>,
}

pub fn identity_id(i: usize) -> String {
    format!("00000000-0000-4000-8000-{i:012}")
}

/// Identity groups that exist in the sandbox's organization: the built-in ones first, then
/// custom ones. Every user is in `Everyone`; every tenth also in `Automation Developers`, every
/// fiftieth also in `Administrators`.
pub const GROUPS: [(&str, &str); 5] = [
    ("10000000-0000-4000-8000-000000000001", "Everyone"),
    ("10000000-0000-4000-8000-000000000002", "Administrators"),
    (
        "10000000-0000-4000-8000-000000000003",
        "Automation Developers",
    ),
    ("10000000-0000-4000-8000-000000000004", "Finance Robots"),
    ("10000000-0000-4000-8000-000000000005", "HR Reviewers"),
];

/// How many of [`GROUPS`] are built in (the rest are custom).
pub const BUILT_IN_GROUPS: usize = 2;

/// The groups seeded user `i` is in.
fn seeded_groups(i: usize) -> Vec<&'static str> {
    let mut groups = vec![GROUPS[0].0];
    if i.is_multiple_of(50) {
        groups.push(GROUPS[1].0);
    }
    if i.is_multiple_of(10) {
        groups.push(GROUPS[2].0);
    }
    groups
}

/// Control Room roles: id, name.
pub const CR_ROLES: [(i64, &str); 5] = [
    (1, "AAE_Admin"),
    (2, "AAE_Basic"),
    (3, "Bot Creator"),
    (4, "Bot Runner"),
    (27, "RoleBotDocsMD6"),
];

/// Automation Hub roles: the default ones and two custom roles.
pub const HUB_ROLES: [(u32, &str); 9] = [
    (2, "System Admin"),
    (3, "RPA Sponsor"),
    (4, "Component Curator"),
    (5, "Program Manager"),
    (6, "Idea Approver"),
    (8, "Standard User"),
    (11, "Project Manager"),
    (101, "Citizen Developer Lead"),
    (102, "Automation Champion"),
];

const DEPARTMENTS: [&str; 5] = ["Finance", "HR", "IT", "Operations", "Sales"];

impl World {
    pub fn seeded(n: usize) -> Self {
        let mut w = World {
            hub: Users::default(),
            identity: Users::default(),
            control_room: Users::default(),
            identity_tokens: HashMap::new(),
            cr_tokens: HashMap::new(),
            cr_usernames: HashMap::new(),
        };
        for i in 1..=n {
            let email = format!("user{i:05}@example.com");
            let first = format!("First{i:05}");
            let last = format!("Last{i:05}");
            let dept = DEPARTMENTS[(i - 1) % DEPARTMENTS.len()];
            w.hub.push(
                email.clone(),
                obj(json!({
                    "user_email": email,
                    "user_first_name": first,
                    "user_last_name": last,
                    "user_location": "Brooklyn",
                    "user_department": dept,
                    "user_business_unit": dept,
                    "user_job_title": "Analyst",
                    "user_is_active": 1,
                    "user_invite_status": 3,
                    "user_roles": [{"role_id": 8, "category_id": 0}],
                })),
            );
            let id = identity_id(i);
            w.identity.push(
                id.clone(),
                obj(json!({
                    "id": id,
                    "userName": format!("user{i:05}"),
                    "email": email,
                    "emailConfirmed": true,
                    "name": first,
                    "surname": last,
                    "displayName": format!("{first} {last}"),
                    "creationTime": "2024-01-01T00:00:00Z",
                    "lastModificationTime": null,
                    "lastLoginTime": null,
                    "groupIDs": seeded_groups(i),
                    "legacyId": i,
                    "isActive": true,
                    "bypassBasicAuthRestriction": false,
                    "type": "User",
                    "invitationAccepted": true,
                })),
            );
            w.cr_usernames.insert(format!("user{i:05}"), i.to_string());
            w.control_room.push(
                i.to_string(),
                obj(json!({
                    "id": i,
                    "email": email,
                    "username": format!("user{i:05}"),
                    "domain": null,
                    "firstName": first,
                    "lastName": last,
                    "version": 1,
                    "principalId": i,
                    "deleted": false,
                    "roles": [{"name": "AAE_Basic", "id": 2, "version": 0}],
                    "sysAssignedRoles": [],
                    "groupNames": [],
                    "permissions": [],
                    "licenseFeatures": ["RUNTIME"],
                    "emailVerified": true,
                    "passwordSet": true,
                    "questionsSet": true,
                    "enableAutoLogin": false,
                    "disabled": false,
                    "clientRegistered": false,
                    "description": "",
                    "createdBy": 1,
                    "createdOn": "2024-01-01T00:00:00Z",
                    "updatedBy": 1,
                    "updatedOn": "2024-01-01T00:00:00Z",
                    "publicKey": null,
                    "appType": null,
                    "routingName": null,
                    "appUrl": null,
                })),
            );
        }
        w
    }

    /// `GET /_sandbox/state`.
    pub fn state(&self) -> Value {
        json!({
            "hub": self.hub.records(),
            "identity": self.identity.records(),
            "control_room": self.control_room.records(),
        })
    }
}

fn obj(v: Value) -> Record {
    match v {
        Value::Object(m) => m,
        _ => unreachable!("seed records are objects"),
    }
}

pub fn now_iso() -> String {
    httpdate_to_iso(std::time::SystemTime::now())
}

/// RFC 3339 in UTC, to the second.
fn httpdate_to_iso(t: std::time::SystemTime) -> String {
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs() as i64;
    chrono::DateTime::from_timestamp(secs, 0)
        .map(|d| d.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}
