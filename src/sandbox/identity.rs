//! UiPath Identity Server as the sandbox models it, after UiPath's OpenAPI file: `GET/PUT
//! /api/User/{userId}`, `GET /api/User/users/{partitionGlobalId}`, `POST /connect/token`.
//! Rejections come in all three documented shapes: 200 with `succeeded: false` (a password too
//! short, an unknown group), 400 with `succeeded: false` (changing an e-mail, which Automation
//! Cloud does not support), and the 400 validation problem (a wrong JSON type, a non-UUID id).
//! Omitted fields are left as they are.

use std::time::Instant;

use axum::http::Method;
use serde_json::{json, Map, Value};

use super::store::{now_iso, World, GROUPS};
use super::{
    make_jwt, unix_now, Answer, Call, SandboxConfig, CLIENT_ID, CLIENT_SECRET, IDENTITY_TOKEN,
    PARTITION,
};

fn problem(field: &str, message: String) -> Answer {
    let trace: String = (0..32)
        .map(|_| fastrand::alphanumeric().to_ascii_lowercase())
        .collect();
    Answer::json(
        400,
        json!({
            "errors": {field: [message]},
            "type": "https://tools.ietf.org/html/rfc7231#section-6.5.1",
            "title": "One or more validation errors occurred.",
            "status": 400,
            "traceId": format!("00-{trace}-{}-00", &trace[..16]),
        }),
    )
}

fn refused(status: u16, code: &str, description: String) -> Answer {
    Answer::json(
        status,
        json!({"succeeded": false, "errors": [{"code": code, "description": description}]}),
    )
}

pub fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

fn authorized(world: &World, call: &Call) -> bool {
    let Some(token) = call
        .header("authorization")
        .and_then(|h| h.strip_prefix("Bearer "))
    else {
        return false;
    };
    token == IDENTITY_TOKEN
        || world
            .identity_tokens
            .get(token)
            .is_some_and(|expires| *expires > Instant::now())
}

pub fn handle(world: &mut World, config: &SandboxConfig, call: &Call) -> Answer {
    if call.path == "/connect/token" {
        return if call.method == Method::POST {
            token(world, config, call)
        } else {
            Answer::empty(405)
        };
    }
    if !authorized(world, call) {
        return Answer::empty(401)
            .with_header("www-authenticate", "Bearer error=\"invalid_token\"");
    }
    let segments: Vec<&str> = call.path.trim_start_matches('/').split('/').collect();
    match (call.method, segments.as_slice()) {
        (&Method::GET, ["api", "User", "users", partition]) => search(world, call, partition),
        (&Method::GET, ["api", "User", id]) => get_user(world, id),
        (&Method::PUT, ["api", "User", id]) => update_user(world, call, id),
        _ => Answer::empty(404),
    }
}

fn token(world: &mut World, config: &SandboxConfig, call: &Call) -> Answer {
    let form: std::collections::HashMap<String, String> = url::form_urlencoded::parse(call.body)
        .into_owned()
        .collect();
    let field = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
    if field("grant_type") != "client_credentials" {
        return Answer::json(400, json!({"error": "unsupported_grant_type"}));
    }
    if field("client_id") != CLIENT_ID || field("client_secret") != CLIENT_SECRET {
        return Answer::json(400, json!({"error": "invalid_client"}));
    }
    let lifetime = config.token_lifetime;
    let access = make_jwt(json!({
        "iss": "https://sandbox/identity_",
        "client_id": CLIENT_ID,
        "prt_id": PARTITION,
        "scope": field("scope").split(' ').collect::<Vec<_>>(),
        "iat": unix_now(),
        "exp": unix_now() + lifetime.as_secs(),
    }));
    world
        .identity_tokens
        .insert(access.clone(), Instant::now() + lifetime);
    Answer::json(
        200,
        json!({"access_token": access, "expires_in": lifetime.as_secs(), "token_type": "Bearer", "scope": field("scope")}),
    )
}

fn get_user(world: &World, id: &str) -> Answer {
    if !is_uuid(id) {
        return problem("userId", format!("The value '{id}' is not valid."));
    }
    match world.identity.get(&id.to_lowercase()) {
        Some(user) => Answer::json(200, Value::Object(user.clone())),
        None => Answer::empty(404),
    }
}

fn search(world: &World, call: &Call, partition: &str) -> Answer {
    if !partition.eq_ignore_ascii_case(PARTITION) {
        return Answer::empty(404);
    }
    let term = call
        .query
        .get("searchTerm")
        .map(|s| s.to_lowercase())
        .unwrap_or_default();
    let top: usize = match call.query.get("top").map(|t| t.parse::<usize>()) {
        None => 10,
        Some(Ok(t)) if t <= 1000 => t,
        _ => return problem("top", "The field top must be between 0 and 1000.".into()),
    };
    let skip: usize = call
        .query
        .get("skip")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let matches: Vec<&Map<String, Value>> = world
        .identity
        .list
        .iter()
        .filter(|u| {
            term.is_empty()
                || ["email", "userName", "name", "surname", "displayName"]
                    .iter()
                    .any(|f| {
                        u[*f]
                            .as_str()
                            .is_some_and(|v| v.to_lowercase().contains(&term))
                    })
        })
        .collect();
    let total = matches.len();
    let results: Vec<&Map<String, Value>> = matches.into_iter().skip(skip).take(top).collect();
    Answer::json(200, json!({"totalCount": total, "results": results}))
}

fn update_user(world: &mut World, call: &Call, id: &str) -> Answer {
    if !is_uuid(id) {
        return problem("userId", format!("The value '{id}' is not valid."));
    }
    let Some(Value::Object(body)) = call.json() else {
        return problem("command", "The command field is required.".into());
    };
    // Types first, as ASP.NET's model binding does.
    for f in ["name", "surname", "displayName", "email", "password"] {
        match body.get(f) {
            None | Some(Value::Null) | Some(Value::String(_)) => {}
            Some(_) => {
                return problem(
                    f,
                    format!("The JSON value could not be converted to System.String. Path: $.{f}"),
                )
            }
        }
        if let Some(Value::String(s)) = body.get(f) {
            if s.chars().count() > 255 && f != "password" {
                return problem(
                    f,
                    format!("The field {f} must be a string with a maximum length of 255."),
                );
            }
        }
    }
    for f in [
        "isActive",
        "bypassBasicAuthRestriction",
        "invitationAccepted",
    ] {
        match body.get(f) {
            None | Some(Value::Null) | Some(Value::Bool(_)) => {}
            Some(_) => return problem(f, format!("The JSON value could not be converted to System.Nullable`1[System.Boolean]. Path: $.{f}")),
        }
    }
    let mut groups: [Vec<String>; 2] = [Vec::new(), Vec::new()];
    for (slot, f) in ["groupIDsToAdd", "groupIDsToRemove"].iter().enumerate() {
        match body.get(*f) {
            None | Some(Value::Null) => {}
            Some(Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    match item.as_str() {
                        Some(g) if is_uuid(g) => groups[slot].push(g.to_lowercase()),
                        _ => return problem(&format!("{f}[{i}]"), format!("The JSON value could not be converted to System.Guid. Path: $.{f}[{i}]")),
                    }
                }
            }
            Some(_) => return problem(f, format!("The JSON value could not be converted to System.Collections.Generic.List`1[System.Guid]. Path: $.{f}")),
        }
    }
    let Some(user) = world.identity.get_mut(&id.to_lowercase()) else {
        return refused(400, "UserNotFound", format!("User {id} was not found."));
    };
    if let Some(Value::String(email)) = body.get("email") {
        let current = user["email"].as_str().unwrap_or("");
        if !email.eq_ignore_ascii_case(current) {
            return refused(
                400,
                "EmailChangeNotSupported",
                "Changing the email of a user is not supported. Invite the new email address instead.".into(),
            );
        }
    }
    if let Some(Value::String(p)) = body.get("password") {
        if p.chars().count() < 8 {
            return refused(
                200,
                "PasswordTooShort",
                "Passwords must be at least 8 characters.".into(),
            );
        }
    }
    for g in groups.iter().flatten() {
        if !GROUPS.iter().any(|(gid, _)| gid == g) {
            return refused(200, "GroupNotFound", format!("Group {g} was not found."));
        }
    }
    for f in [
        "name",
        "surname",
        "displayName",
        "isActive",
        "bypassBasicAuthRestriction",
        "invitationAccepted",
    ] {
        if let Some(v) = body.get(f).filter(|v| !v.is_null()) {
            user.insert(f.into(), v.clone());
        }
    }
    let mut member: Vec<String> = user["groupIDs"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|g| g.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    for g in &groups[0] {
        if !member.contains(g) {
            member.push(g.clone());
        }
    }
    member.retain(|g| !groups[1].contains(g));
    user.insert("groupIDs".into(), json!(member));
    user.insert("lastModificationTime".into(), json!(now_iso()));
    Answer::json(200, json!({"succeeded": true, "errors": []}))
}
