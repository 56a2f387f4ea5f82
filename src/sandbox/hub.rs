//! Automation Hub Open API as the sandbox models it: `POST /edituser`, `POST /adduser`,
//! `GET /users`, `GET /roles`, with the Open API token mode and the cloud token mode, never mixed.
//!
//! Where the docs are silent the sandbox chooses, and says so here: an unknown e-mail on
//! `edituser` is a 404; `user_roles` replaces the user's roles; errors are
//! `{"message", "statusCode"}` like the success bodies; `adduser` answers an e-mail that exists
//! with 409 and creates users with invite status 1 (pending) unless told otherwise. The user status table is not enforced
//! here: UiPath's own example request (seed 000) sends `user_is_active: 0` with
//! `user_invite_status: 1`, a pair the table does not list, and shows it accepted. `bulkedit`
//! itself refuses such rows before sending, as SPEC.md asks.

use axum::http::Method;
use serde_json::value::RawValue;
use serde_json::{json, Value};

use super::store::{World, HUB_ROLES};
use super::{Answer, Call, SandboxConfig, HUB_CLOUD_TOKEN, HUB_TOKEN};

fn error(status: u16, message: impl Into<String>) -> Answer {
    Answer::json(
        status,
        json!({"message": message.into(), "statusCode": status}),
    )
}

/// Either an Open API token with its header (and app key, when one is configured), or a cloud
/// access token alone.
fn authorized(call: &Call, config: &SandboxConfig) -> Result<(), Answer> {
    let unauthorized = || error(401, "Unauthorized");
    let bearer = call
        .header("authorization")
        .and_then(|h| h.strip_prefix("Bearer "))
        .ok_or_else(unauthorized)?;
    let openapi_header = call.header("x-ah-openapi-auth");
    if bearer == HUB_TOKEN {
        if openapi_header != Some("openapi-token") {
            return Err(unauthorized());
        }
        if let Some(key) = &config.hub_app_key {
            if call.header("x-ah-openapi-app-key") != Some(key.as_str()) {
                return Err(unauthorized());
            }
        }
        Ok(())
    } else if bearer == HUB_CLOUD_TOKEN && openapi_header.is_none() {
        Ok(())
    } else {
        Err(unauthorized())
    }
}

pub fn handle(world: &mut World, config: &SandboxConfig, call: &Call) -> Answer {
    if let Err(refused) = authorized(call, config) {
        return refused;
    }
    match (call.method, call.path) {
        (&Method::POST, "/edituser") => edit_user(world, call),
        (&Method::POST, "/adduser") => add_user(world, call),
        (&Method::GET, "/users") => users(world, call),
        (&Method::GET, "/roles") => Answer::json(
            200,
            json!({
                "message": "Success",
                "statusCode": 200,
                "data": HUB_ROLES.iter().map(|(id, name)| json!({
                    "role_id": id,
                    "role_name": name,
                    "role_slug": name.to_lowercase().replace(' ', "-"),
                })).collect::<Vec<_>>(),
            }),
        ),
        _ => error(404, format!("Cannot {} {}", call.method, call.path)),
    }
}

const TEXT: [&str; 6] = [
    "user_first_name",
    "user_last_name",
    "user_location",
    "user_department",
    "user_business_unit",
    "user_job_title",
];

/// A user body as `edituser` and `adduser` take it, checked field by field.
struct UserBody {
    email: String,
    body: serde_json::Map<String, Value>,
    active: Option<i64>,
    invite: Option<i64>,
    roles: Option<Vec<Value>>,
}

fn user_body(call: &Call) -> Result<UserBody, Answer> {
    let Some(Value::Object(body)) = call.json() else {
        return Err(error(400, "The request body must be a JSON object"));
    };
    let Some(email) = body.get("user_email").and_then(Value::as_str) else {
        return Err(error(400, "user_email is required"));
    };
    let email = email.to_string();
    for f in TEXT {
        match body.get(f) {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) if s.chars().count() <= 255 => {}
            Some(Value::String(_)) => {
                return Err(error(400, format!("{f} must be at most 255 characters")))
            }
            Some(_) => return Err(error(400, format!("{f} must be a string"))),
        }
    }
    let number = |f: &str| -> Result<Option<i64>, Answer> {
        match body.get(f) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_i64()
                .map(Some)
                .ok_or_else(|| error(400, format!("{f} must be a number"))),
        }
    };
    let active = match number("user_is_active")? {
        Some(a @ 0..=1) => Some(a),
        Some(_) => return Err(error(400, "user_is_active must be 0 or 1")),
        None => None,
    };
    let invite = match number("user_invite_status")? {
        Some(i @ 0..=3) => Some(i),
        Some(_) => return Err(error(400, "user_invite_status must be 0, 1, 2 or 3")),
        None => None,
    };
    let roles = match body.get("user_roles") {
        None | Some(Value::Null) => None,
        Some(Value::Array(list)) => {
            let mut roles = Vec::new();
            for r in list {
                let id = r.get("role_id").and_then(Value::as_u64);
                let cat = r.get("category_id").and_then(Value::as_u64).unwrap_or(0);
                match id {
                    Some(id) if HUB_ROLES.iter().any(|(k, _)| u64::from(*k) == id) => {
                        roles.push(json!({"role_id": id, "category_id": cat}))
                    }
                    Some(id) => return Err(error(400, format!("Invalid role_id: {id}"))),
                    None => {
                        return Err(error(
                            400,
                            "Each entry of user_roles needs a numeric role_id",
                        ))
                    }
                }
            }
            Some(roles)
        }
        Some(_) => return Err(error(400, "user_roles must be an array")),
    };
    Ok(UserBody {
        email,
        body,
        active,
        invite,
        roles,
    })
}

fn edit_user(world: &mut World, call: &Call) -> Answer {
    let u = match user_body(call) {
        Ok(u) => u,
        Err(refused) => return refused,
    };
    let Some(user) = world.hub.get_mut(&u.email.trim().to_lowercase()) else {
        return error(404, format!("User {} was not found", u.email));
    };
    for f in TEXT {
        if let Some(Value::String(s)) = u.body.get(f) {
            user.insert(f.into(), Value::String(s.clone()));
        }
    }
    if let Some(a) = u.active {
        user.insert("user_is_active".into(), json!(a));
    }
    if let Some(i) = u.invite {
        user.insert("user_invite_status".into(), json!(i));
    }
    if let Some(r) = u.roles {
        user.insert("user_roles".into(), Value::Array(r));
    }
    Answer::json(
        201,
        json!({"message": "Resource Updated", "statusCode": 201, "data": {"message": "Sync Successful."}}),
    )
}

/// `adduser`: the e-mail, first and last name are needed; invite status 3 (active) cannot be
/// given at creation; roles default to Standard User. An e-mail that exists is a 409.
fn add_user(world: &mut World, call: &Call) -> Answer {
    let u = match user_body(call) {
        Ok(u) => u,
        Err(refused) => return refused,
    };
    let key = u.email.trim().to_lowercase();
    if !key.contains('@') {
        return error(400, "user_email must be an e-mail address");
    }
    for f in ["user_first_name", "user_last_name"] {
        let given = u.body.get(f).and_then(Value::as_str);
        if given.is_none_or(|s| s.trim().is_empty()) {
            return error(400, format!("{f} is required"));
        }
    }
    if u.invite == Some(3) {
        return error(
            400,
            "user_invite_status 3 (active) is not allowed when adding a user",
        );
    }
    if world.hub.get(&key).is_some() {
        return error(409, format!("User {} already exists", u.email));
    }
    let mut user = serde_json::Map::new();
    user.insert("user_email".into(), json!(u.email.trim()));
    for f in TEXT {
        let v = u.body.get(f).and_then(Value::as_str).unwrap_or("");
        user.insert(f.into(), json!(v));
    }
    user.insert("user_is_active".into(), json!(u.active.unwrap_or(1)));
    user.insert("user_invite_status".into(), json!(u.invite.unwrap_or(1)));
    let roles = u
        .roles
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| vec![json!({"role_id": 8, "category_id": 0})]);
    user.insert("user_roles".into(), Value::Array(roles));
    world.hub.push(key, user);
    Answer::json(
        201,
        json!({"message": "Resource Updated", "statusCode": 201, "data": {"message": "Sync Successful."}}),
    )
}

fn users(world: &World, call: &Call) -> Answer {
    let search = call
        .query
        .get("s")
        .map(|s| s.trim().to_lowercase())
        .unwrap_or_default();
    let filter = call
        .query
        .get("inviteStatus")
        .map(String::as_str)
        .unwrap_or("all");
    let limit: usize = call
        .query
        .get("limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(20);
    let page: usize = call
        .query
        .get("page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(1);
    if !(1..=1000).contains(&limit) || page == 0 {
        return error(400, "limit must be 1 to 1000 and page 1 or more");
    }
    let wanted = |(_, u): &(usize, &super::store::Record)| {
        let invite = u["user_invite_status"].as_i64().unwrap_or(0);
        let active = u["user_is_active"].as_i64().unwrap_or(0);
        let status_ok = match filter {
            "active" => invite == 3 && active == 1,
            "inactive" => active == 0,
            "pending" => (invite == 1 || invite == 2) && active == 1,
            _ => true,
        };
        status_ok
            && (search.is_empty()
                || ["user_email", "user_first_name", "user_last_name"]
                    .iter()
                    .any(|f| {
                        u[*f]
                            .as_str()
                            .is_some_and(|v| v.to_lowercase().contains(&search))
                    }))
    };
    let skip = (page - 1) * limit;
    // The whole list unfiltered is a slice, as an indexed server would serve it: a page of a
    // big tenant costs the page, not the tenant.
    let everyone = search.is_empty() && !["active", "inactive", "pending"].contains(&filter);
    let users = &world.hub;
    let (total, (page_users, size)) = if everyone {
        let all = users.records().len();
        (all, users.texts(skip.min(all)..(skip + limit).min(all)))
    } else {
        let matches: Vec<usize> = users
            .records()
            .iter()
            .enumerate()
            .filter(wanted)
            .map(|(i, _)| i)
            .collect();
        let total = matches.len();
        (
            total,
            users.texts(matches.into_iter().skip(skip).take(limit)),
        )
    };
    #[derive(serde::Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Data<'a> {
        page: usize,
        page_size: usize,
        total_items: usize,
        total_pages: usize,
        users: Vec<&'a RawValue>,
    }
    #[derive(serde::Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Listed<'a> {
        message: &'static str,
        status_code: u16,
        data: Data<'a>,
    }
    Answer::written(
        200,
        &Listed {
            message: "Success",
            status_code: 200,
            data: Data {
                page,
                page_size: limit,
                total_items: total,
                total_pages: total.div_ceil(limit),
                users: page_users,
            },
        },
        size + 200,
    )
}
