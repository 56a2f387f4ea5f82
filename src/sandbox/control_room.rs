//! Automation Anywhere Control Room as the sandbox models it: JWT login and renewal with a real
//! `exp`, `GET/PUT /v1/usermanagement/users/{id}`, the filtered user list and the role list.
//! PUT replaces the user: `username`, `email` and a role are mandatory, fields left out are
//! cleared, and a `version` other than the current one is a 409 conflict. `POST
//! /v1/usermanagement/users` creates one: `username`, `email`, a password of 8 to 15 of the
//! documented characters and a known role are needed; a username that exists is a 409 (the
//! sandbox's choice: the documented conflict code), and the answer is 201 with the new user.

use std::time::Instant;

use axum::http::Method;
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};

use super::store::{now_iso, World, CR_ROLES};
use super::{
    make_jwt, unix_now, Answer, Call, SandboxConfig, CR_API_KEY, CR_PASSWORD, CR_USERNAME,
};

fn error(status: u16, code: &str, message: impl Into<String>) -> Answer {
    Answer::json(
        status,
        json!({"code": code, "details": "", "message": message.into()}),
    )
}

fn issue(world: &mut World, config: &SandboxConfig) -> String {
    let lifetime = config.token_lifetime;
    let token = make_jwt(json!({
        "sub": "1",
        "tenantUuid": "00000000-0000-0000-0000-000000000001",
        "iat": unix_now(),
        "exp": unix_now() + lifetime.as_secs(),
    }));
    world
        .cr_tokens
        .insert(token.clone(), Instant::now() + lifetime);
    token
}

fn valid(world: &World, token: &str) -> bool {
    world
        .cr_tokens
        .get(token)
        .is_some_and(|e| *e > Instant::now())
}

pub fn handle(world: &mut World, config: &SandboxConfig, call: &Call) -> Answer {
    match (call.method, call.path) {
        (&Method::POST, "/v1/authentication") => return log_in(world, config, call),
        (&Method::POST, "/v1/authentication/token") => {
            let old = call
                .json()
                .and_then(|b| b["token"].as_str().map(str::to_string))
                .unwrap_or_default();
            return if valid(world, &old) {
                let token = issue(world, config);
                Answer::json(200, json!({"token": token}))
            } else {
                error(
                    401,
                    "um.token.invalid",
                    "The token is invalid or has expired",
                )
            };
        }
        _ => {}
    }
    match call.header("x-authorization") {
        Some(t) if valid(world, t) => {}
        Some(t) if world.cr_tokens.contains_key(t) => {
            return error(401, "um.token.expired", "The token has expired")
        }
        _ => return error(401, "um.unauthorized", "Authentication is required"),
    }
    let segments: Vec<&str> = call.path.trim_start_matches('/').split('/').collect();
    match (call.method, segments.as_slice()) {
        (&Method::POST, ["v1", "usermanagement", "users", "list"]) => list(world, call),
        (&Method::POST, ["v1", "usermanagement", "roles", "list"]) => {
            let roles: Vec<Value> = CR_ROLES
                .iter()
                .map(|(id, name)| json!({"id": id, "name": name, "version": 0, "description": "", "systemRole": name.starts_with("AAE_")}))
                .collect();
            Answer::json(
                200,
                json!({"page": {"offset": 0, "total": roles.len(), "totalFilter": roles.len()}, "list": roles}),
            )
        }
        (&Method::GET, ["v1", "usermanagement", "users", id]) => match world.control_room.get(id) {
            Some(u) => Answer::json(200, Value::Object(u.clone())),
            None => error(404, "um.user.not.found", format!("User {id} not found")),
        },
        (&Method::PUT, ["v1", "usermanagement", "users", id]) => update(world, call, id),
        (&Method::POST, ["v1", "usermanagement", "users"]) => create(world, call),
        _ => error(404, "not.found", format!("No resource at {}", call.path)),
    }
}

fn log_in(world: &mut World, config: &SandboxConfig, call: &Call) -> Answer {
    let body = call.json().unwrap_or(Value::Null);
    let user = body["username"].as_str().unwrap_or("");
    let ok = user == CR_USERNAME
        && (body["password"].as_str() == Some(CR_PASSWORD)
            || body["apiKey"].as_str() == Some(CR_API_KEY));
    if !ok {
        return error(
            401,
            "um.authentication.failed",
            "Authentication failed: invalid username, password or API key",
        );
    }
    let token = issue(world, config);
    Answer::json(
        200,
        json!({"token": token, "user": {"id": 0, "username": CR_USERNAME, "email": "sandbox@example.com", "roles": [{"id": 1, "name": "AAE_Admin"}]}}),
    )
}

fn resolve_role(r: &Value) -> Result<Value, Answer> {
    let id = r["id"]
        .as_i64()
        .or_else(|| r["id"].as_str().and_then(|s| s.parse().ok()));
    let name = r["name"].as_str();
    if let Some(n) = name {
        if n.chars().count() > 255 {
            return Err(error(
                400,
                "um.role.name.length",
                "Role names are at most 255 characters",
            ));
        }
    }
    let found = CR_ROLES.iter().find(|(rid, rname)| {
        id.is_some_and(|i| i == *rid) || name.is_some_and(|n| n.eq_ignore_ascii_case(rname))
    });
    match (found, name) {
        (Some((rid, rname)), _) => Ok(json!({"id": rid, "name": rname, "version": 0})),
        (None, None) if id.is_none() => Err(error(
            400,
            "um.role.name.required",
            "Roles: name is mandatory",
        )),
        _ => Err(error(
            400,
            "um.role.not.found",
            format!(
                "Role {} not found",
                name.map(str::to_string)
                    .or(id.map(|i| i.to_string()))
                    .unwrap_or_default()
            ),
        )),
    }
}

fn update(world: &mut World, call: &Call, id: &str) -> Answer {
    let Some(Value::Object(body)) = call.json() else {
        return error(
            400,
            "um.request.invalid",
            "The request body must be a JSON object",
        );
    };
    let username = body
        .get("username")
        .and_then(Value::as_str)
        .map(str::trim)
        .unwrap_or("");
    if username.is_empty() {
        return error(400, "um.user.username.required", "Username is mandatory");
    }
    if username.chars().count() > 255 {
        return error(
            400,
            "um.user.username.length",
            "Username is at most 255 characters",
        );
    }
    let email = body.get("email").and_then(Value::as_str).unwrap_or("");
    if let Err(a) = email_checked(email) {
        return a;
    }
    let roles = match required_roles(&body) {
        Ok(roles) => roles,
        Err(a) => return a,
    };
    let wanted = username.to_lowercase();
    let clash = world
        .cr_usernames
        .get(&wanted)
        .is_some_and(|owner| owner != id);
    let Some(user) = world.control_room.get_mut(id) else {
        return error(404, "um.user.not.found", format!("User {id} not found"));
    };
    if clash {
        return error(
            400,
            "um.user.username.exists",
            format!("Username {username} already exists"),
        );
    }
    let current_version = user["version"].as_i64().unwrap_or(0);
    let sent_version = body.get("version").and_then(|v| {
        v.as_i64()
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
    });
    if sent_version.is_some_and(|v| v != current_version) {
        return error(
            409,
            "um.user.version.conflict",
            "The user was changed by someone else; read it again and retry",
        );
    }
    let text = |k: &str| {
        body.get(k)
            .cloned()
            .filter(|v| v.is_string())
            .unwrap_or(Value::Null)
    };
    let old_name = user["username"].as_str().map(str::to_lowercase);
    user.insert("username".into(), json!(username));
    user.insert("email".into(), json!(email));
    // PUT replaces: what is left out is cleared.
    for k in ["firstName", "lastName", "description", "domain"] {
        user.insert(k.into(), text(k));
    }
    user.insert(
        "disabled".into(),
        json!(body
            .get("disabled")
            .and_then(Value::as_bool)
            .unwrap_or(false)),
    );
    user.insert("roles".into(), Value::Array(roles));
    user.insert("version".into(), json!(current_version + 1));
    user.insert("updatedBy".into(), json!(1));
    user.insert("updatedOn".into(), json!(now_iso()));
    let answer = Answer::json(200, Value::Object(user.clone()));
    if let Some(old) = old_name.filter(|o| *o != wanted) {
        world.cr_usernames.remove(&old);
    }
    world.cr_usernames.insert(wanted, id.to_string());
    answer
}

fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.to_lowercase(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn matches(user: &Map<String, Value>, filter: &Value) -> bool {
    let op = filter["operator"].as_str().unwrap_or("");
    let operands = || filter["operands"].as_array().cloned().unwrap_or_default();
    match op {
        "and" => operands().iter().all(|f| matches(user, f)),
        "or" => operands().iter().any(|f| matches(user, f)),
        "not" => !operands().iter().any(|f| matches(user, f)),
        "" => true,
        _ => {
            let field = filter["field"].as_str().unwrap_or("");
            let have = user.get(field).cloned().unwrap_or(Value::Null);
            let want = &filter["value"];
            let (h, w) = (text_of(&have), text_of(want));
            let numeric = have.as_f64().zip(
                want.as_f64()
                    .or_else(|| want.as_str().and_then(|s| s.parse().ok())),
            );
            let order = match numeric {
                Some((a, b)) => a.partial_cmp(&b),
                None => Some(h.cmp(&w)),
            };
            match op {
                "eq" => order == Some(std::cmp::Ordering::Equal),
                "ne" => order != Some(std::cmp::Ordering::Equal),
                "lt" => order == Some(std::cmp::Ordering::Less),
                "le" => order != Some(std::cmp::Ordering::Greater),
                "gt" => order == Some(std::cmp::Ordering::Greater),
                "ge" => order != Some(std::cmp::Ordering::Less),
                "substring" => h.contains(&w),
                _ => false,
            }
        }
    }
}

fn list(world: &World, call: &Call) -> Answer {
    let body = call.json().unwrap_or(json!({}));
    let offset = body["page"]["offset"].as_u64().unwrap_or(0) as usize;
    let length = body["page"]["length"].as_u64().unwrap_or(100) as usize;
    if length > 10_000 {
        return error(400, "um.page.length", "page.length is at most 10000");
    }
    let filter = body.get("filter").cloned().unwrap_or(Value::Null);
    let users = &world.control_room;
    let all = users.records().len();
    let (total_filter, (page, size)) = if filter.is_null() {
        (
            all,
            users.texts(offset.min(all)..offset.saturating_add(length).min(all)),
        )
    } else {
        let matching: Vec<usize> = users
            .records()
            .iter()
            .enumerate()
            .filter(|(_, u)| matches(u, &filter))
            .map(|(i, _)| i)
            .collect();
        let total = matching.len();
        (
            total,
            users.texts(matching.into_iter().skip(offset).take(length)),
        )
    };
    #[derive(serde::Serialize)]
    struct Listed<'a> {
        page: Value,
        list: Vec<&'a RawValue>,
    }
    Answer::written(
        200,
        &Listed {
            page: json!({"offset": offset, "total": users.records().len(), "totalFilter": total_filter}),
            list: page,
        },
        size + 200,
    )
}

/// Another administrator saves the user at `path` first: its version moves on.
pub fn someone_else_edits(world: &mut World, path: &str) {
    if let Some(id) = path.strip_prefix("/v1/usermanagement/users/") {
        if let Some(user) = world.control_room.get_mut(id) {
            let v = user["version"].as_i64().unwrap_or(0);
            user.insert("version".into(), json!(v + 1));
        }
    }
}

/// The characters a Control Room password may hold (APIS.md), and how many.
fn password_ok(p: &str) -> bool {
    (8..=15).contains(&p.chars().count())
        && p.chars()
            .all(|c| c.is_ascii_alphanumeric() || "@-_!#$%&.".contains(c))
}

fn create(world: &mut World, call: &Call) -> Answer {
    let Some(Value::Object(body)) = call.json() else {
        return error(
            400,
            "um.request.invalid",
            "The request body must be a JSON object",
        );
    };
    let text = |k: &str| body.get(k).and_then(Value::as_str).map(str::trim);
    let username = text("username").unwrap_or("");
    if username.is_empty() {
        return error(400, "um.user.username.required", "Username is mandatory");
    }
    if username.chars().count() > 255 {
        return error(
            400,
            "um.user.username.length",
            "Username is at most 255 characters",
        );
    }
    let email = text("email").unwrap_or("");
    if let Err(a) = email_checked(email) {
        return a;
    }
    if !text("password").is_some_and(password_ok) {
        return error(
            400,
            "um.user.password.invalid",
            "Password is mandatory: 8 to 15 characters of a-z A-Z 0-9 @ - _ ! # $ % & .",
        );
    }
    let roles = match required_roles(&body) {
        Ok(roles) => roles,
        Err(a) => return a,
    };
    let wanted = username.to_lowercase();
    if world.cr_usernames.contains_key(&wanted) {
        return error(
            409,
            "um.user.username.exists",
            format!("Username {username} already exists"),
        );
    }
    let id = world
        .control_room
        .records()
        .iter()
        .filter_map(|u| u["id"].as_i64())
        .max()
        .unwrap_or(0)
        + 1;
    let now = now_iso();
    let optional = |k: &str| text(k).map_or(Value::Null, |v| json!(v));
    let user = json!({
        "id": id,
        "email": email,
        "username": username,
        "domain": optional("domain"),
        "firstName": optional("firstName"),
        "lastName": optional("lastName"),
        "version": 0,
        "principalId": id,
        "deleted": false,
        "roles": roles,
        "sysAssignedRoles": [],
        "groupNames": [],
        "permissions": [],
        "licenseFeatures": body.get("licenseFeatures").cloned().filter(Value::is_array).unwrap_or(json!([])),
        "emailVerified": false,
        "passwordSet": true,
        "questionsSet": false,
        "enableAutoLogin": body.get("enableAutoLogin").and_then(Value::as_bool).unwrap_or(false),
        "disabled": body.get("disabled").and_then(Value::as_bool).unwrap_or(false),
        "clientRegistered": false,
        "description": text("description").unwrap_or(""),
        "createdBy": 1,
        "createdOn": now,
        "updatedBy": 1,
        "updatedOn": now,
        "publicKey": null,
        "appType": null,
        "routingName": null,
        "appUrl": null,
    });
    let Value::Object(record) = user else {
        unreachable!("a JSON object literal")
    };
    world.cr_usernames.insert(wanted, id.to_string());
    world.control_room.push(id.to_string(), record.clone());
    Answer::json(201, Value::Object(record))
}

/// An update and a create both need an e-mail with an @.
fn email_checked(email: &str) -> Result<(), Answer> {
    if email.contains('@') {
        Ok(())
    } else {
        Err(error(
            400,
            "um.user.email.invalid",
            "Email is mandatory and must include @",
        ))
    }
}

/// An update and a create both need at least one role, each one the Control Room has.
fn required_roles(body: &serde_json::Map<String, Value>) -> Result<Vec<Value>, Answer> {
    match body.get("roles").and_then(Value::as_array) {
        Some(list) if !list.is_empty() => list.iter().map(resolve_role).collect(),
        _ => Err(error(
            400,
            "um.user.roles.required",
            "A user needs at least one role",
        )),
    }
}
