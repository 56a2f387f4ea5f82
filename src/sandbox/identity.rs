//! UiPath Identity Server as the sandbox models it, after UiPath's OpenAPI file: `GET/PUT
//! /api/User/{userId}`, `POST /api/User`, `GET /api/User/users/{partitionGlobalId}`,
//! `GET /api/Group/{partitionGlobalId}`, `POST /connect/token`.
//! Rejections come in all three documented shapes: 200 with `succeeded: false` (a password too
//! short, an unknown group), 400 with `succeeded: false` (changing an e-mail, which Automation
//! Cloud does not support), and the 400 validation problem (a wrong JSON type, a non-UUID id).
//! Omitted fields are left as they are.

use std::time::Instant;

use axum::http::Method;
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};

use super::store::{now_iso, World, BUILT_IN_GROUPS, GROUPS};
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
        (&Method::POST, ["api", "User"]) => create_user(world, call),
        (&Method::GET, ["api", "Group", partition]) => groups(partition),
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
    let users = &world.identity;
    let matches: Vec<usize> = users
        .records()
        .iter()
        .enumerate()
        .filter(|(_, u)| {
            term.is_empty()
                || ["email", "userName", "name", "surname", "displayName"]
                    .iter()
                    .any(|f| {
                        u[*f]
                            .as_str()
                            .is_some_and(|v| v.to_lowercase().contains(&term))
                    })
        })
        .map(|(i, _)| i)
        .collect();
    let total = matches.len();
    let (results, size) = users.texts(matches.into_iter().skip(skip).take(top));
    #[derive(serde::Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Found<'a> {
        total_count: usize,
        results: Vec<&'a RawValue>,
    }
    Answer::written(
        200,
        &Found {
            total_count: total,
            results,
        },
        size + 100,
    )
}

/// The field types ASP.NET's model binding checks before the command runs.
fn typed(body: &Map<String, Value>) -> Result<(), Answer> {
    for f in ["name", "surname", "displayName", "email", "password"] {
        match body.get(f) {
            None | Some(Value::Null) | Some(Value::String(_)) => {}
            Some(_) => {
                return Err(problem(
                    f,
                    format!("The JSON value could not be converted to System.String. Path: $.{f}"),
                ))
            }
        }
        if let Some(Value::String(s)) = body.get(f) {
            if s.chars().count() > 255 && f != "password" {
                return Err(problem(
                    f,
                    format!("The field {f} must be a string with a maximum length of 255."),
                ));
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
            Some(_) => return Err(problem(f, format!("The JSON value could not be converted to System.Nullable`1[System.Boolean]. Path: $.{f}"))),
        }
    }
    Ok(())
}

fn update_user(world: &mut World, call: &Call, id: &str) -> Answer {
    if !is_uuid(id) {
        return problem("userId", format!("The value '{id}' is not valid."));
    }
    let body = match command(call) {
        Ok(body) => body,
        Err(refused) => return refused,
    };
    if let Err(refused) = typed(&body) {
        return refused;
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

/// The body of a command. JSON that does not parse gets the answer ASP.NET gives with
/// Newtonsoft.Json reading it (seed 003): the validation problem keyed by the member whose
/// value broke, with Newtonsoft's message and where in the text it broke.
fn command(call: &Call) -> Result<Map<String, Value>, Answer> {
    match serde_json::from_slice::<Value>(call.body) {
        Ok(Value::Object(body)) => Ok(body),
        Err(e) if !call.body.iter().all(u8::is_ascii_whitespace) => Err(unparsable(call.body, &e)),
        _ => Err(problem("command", "The command field is required.".into())),
    }
}

/// Newtonsoft's words for a body that is not JSON, keyed by its path to where it broke.
fn unparsable(body: &[u8], e: &serde_json::Error) -> Answer {
    let text = String::from_utf8_lossy(body);
    let (line, column) = (e.line().max(1), e.column().max(1));
    let offset: usize = text
        .split_inclusive('\n')
        .take(line - 1)
        .map(str::len)
        .sum::<usize>()
        + column
        - 1;
    let offset = offset.min(text.len());
    let at = text.get(offset..).and_then(|rest| rest.chars().next());
    let path = json_path(text.get(..offset).unwrap_or(&text));
    let shown = at.map(String::from).unwrap_or_default();
    let what = e.to_string();
    let message = if e.is_eof() || at.is_none() {
        "Unexpected end when reading JSON.".to_string()
    } else if what.starts_with("expected `,` or") {
        format!("After parsing a value an unexpected character was encountered: {shown}.")
    } else if what.starts_with("key must be a string") {
        format!("Invalid property identifier character: {shown}.")
    } else {
        format!("Unexpected character encountered while parsing value: {shown}.")
    };
    problem(
        &path,
        format!("{message} Path '{path}', line {line}, position {column}."),
    )
}

/// The Newtonsoft path (`a`, `a.b`, `a[2]`) of the place the JSON text `before` ends at.
fn json_path(before: &str) -> String {
    enum Level {
        Object(Option<String>),
        Array(usize),
    }
    let mut stack: Vec<Level> = Vec::new();
    let mut expect_key = false;
    let mut chars = before.chars();
    while let Some(c) = chars.next() {
        match c {
            '{' => {
                stack.push(Level::Object(None));
                expect_key = true;
            }
            '[' => stack.push(Level::Array(0)),
            '}' | ']' => {
                stack.pop();
            }
            ',' => match stack.last_mut() {
                Some(Level::Array(i)) => *i += 1,
                Some(Level::Object(_)) => expect_key = true,
                None => {}
            },
            '"' => {
                let mut s = String::new();
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => {
                            if let Some(escaped) = chars.next() {
                                s.push(escaped);
                            }
                        }
                        c => s.push(c),
                    }
                }
                if expect_key {
                    if let Some(Level::Object(key)) = stack.last_mut() {
                        *key = Some(s);
                    }
                    expect_key = false;
                }
            }
            _ => {}
        }
    }
    let mut path = String::new();
    for level in &stack {
        match level {
            Level::Object(Some(key)) => {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
            }
            Level::Object(None) => {}
            Level::Array(i) => path.push_str(&format!("[{i}]")),
        }
    }
    path
}

/// `GET /api/Group/{partitionGlobalId}`: every group of the organization, a bare array.
fn groups(partition: &str) -> Answer {
    if !partition.eq_ignore_ascii_case(PARTITION) {
        return Answer::empty(404);
    }
    let list: Vec<Value> = GROUPS
        .iter()
        .enumerate()
        .map(|(i, (id, name))| {
            json!({
                "id": id,
                "name": name,
                "type": if i < BUILT_IN_GROUPS { "builtIn" } else { "custom" },
                "partitionGlobalId": PARTITION,
                "creationTime": "2024-01-01T00:00:00Z",
            })
        })
        .collect();
    Answer::json(200, Value::Array(list))
}

/// `POST /api/User` (`CreateUserCommand`): the client may choose the id; the partition must
/// be the organization's; a user name or e-mail that exists, an unknown group or a short
/// password are refused as `IdentityResult`s, in ASP.NET Identity's own codes. Every new user
/// is in `Everyone`, as in an organization.
fn create_user(world: &mut World, call: &Call) -> Answer {
    let body = match command(call) {
        Ok(body) => body,
        Err(refused) => return refused,
    };
    if let Err(refused) = typed(&body) {
        return refused;
    }
    let text = |f: &str| body.get(f).and_then(Value::as_str).map(str::trim);
    for f in ["id", "partitionGlobalId"] {
        match body.get(f) {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) if is_uuid(s) => {}
            Some(_) => {
                return problem(
                    f,
                    format!("The JSON value could not be converted to System.Guid. Path: $.{f}"),
                )
            }
        }
    }
    let mut groups = vec![GROUPS[0].0.to_string()];
    match body.get("groupIDs") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                match item.as_str() {
                    Some(g) if is_uuid(g) => {
                        let g = g.to_lowercase();
                        if !GROUPS.iter().any(|(gid, _)| *gid == g) {
                            return refused(200, "GroupNotFound", format!("Group {g} was not found."));
                        }
                        if !groups.contains(&g) {
                            groups.push(g);
                        }
                    }
                    _ => return problem(&format!("groupIDs[{i}]"), format!("The JSON value could not be converted to System.Guid. Path: $.groupIDs[{i}]")),
                }
            }
        }
        Some(_) => return problem("groupIDs", "The JSON value could not be converted to System.Collections.Generic.List`1[System.Guid]. Path: $.groupIDs".into()),
    }
    if !text("partitionGlobalId").is_some_and(|p| p.eq_ignore_ascii_case(PARTITION)) {
        return refused(
            400,
            "PartitionNotFound",
            "The partition was not found.".into(),
        );
    }
    let user_name = text("userName").unwrap_or("");
    if user_name.is_empty() {
        return refused(
            400,
            "InvalidUserName",
            format!("Username '{user_name}' is invalid, can only contain letters or digits."),
        );
    }
    let email = text("email").unwrap_or("");
    if !email.contains('@') {
        return refused(400, "InvalidEmail", format!("Email '{email}' is invalid."));
    }
    let taken = |f: &str, wanted: &str| {
        world.identity.records().iter().any(|u| {
            u.get(f)
                .and_then(Value::as_str)
                .is_some_and(|v| v.eq_ignore_ascii_case(wanted))
        })
    };
    if taken("userName", user_name) {
        return refused(
            400,
            "DuplicateUserName",
            format!("Username '{user_name}' is already taken."),
        );
    }
    if taken("email", email) {
        return refused(
            400,
            "DuplicateEmail",
            format!("Email '{email}' is already taken."),
        );
    }
    if let Some(p) = text("password") {
        if p.chars().count() < 8 {
            return refused(
                200,
                "PasswordTooShort",
                "Passwords must be at least 8 characters.".into(),
            );
        }
    }
    let id = match text("id") {
        Some(id) => id.to_lowercase(),
        None => {
            let n = fastrand::u64(..) & 0xffff_ffff_ffff;
            format!("00000000-0000-4000-9000-{n:012x}")
        }
    };
    if world.identity.get(&id).is_some() {
        return refused(
            400,
            "DuplicateUserId",
            format!("A user with id {id} already exists."),
        );
    }
    let name = text("name").unwrap_or("");
    let surname = text("surname").unwrap_or("");
    let display = text("displayName")
        .map(str::to_string)
        .unwrap_or_else(|| format!("{name} {surname}").trim().to_string());
    let flag = |f: &str, default: bool| body.get(f).and_then(Value::as_bool).unwrap_or(default);
    let legacy = world.identity.records().len() + 1;
    let record = json!({
        "id": id,
        "userName": user_name,
        "email": email,
        "emailConfirmed": false,
        "name": name,
        "surname": surname,
        "displayName": display,
        "creationTime": now_iso(),
        "lastModificationTime": null,
        "lastLoginTime": null,
        "groupIDs": groups,
        "legacyId": legacy,
        "isActive": flag("isActive", true),
        "bypassBasicAuthRestriction": flag("bypassBasicAuthRestriction", false),
        "type": text("type").unwrap_or("User"),
        "invitationAccepted": flag("invitationAccepted", false),
    });
    if let Value::Object(record) = record {
        world.identity.push(id, record);
    }
    Answer::json(200, json!({"succeeded": true, "errors": []}))
}
