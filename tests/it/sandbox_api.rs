//! The sandbox as the vendors' stand-in: the seed pages' own requests, sent as raw HTTP (not
//! through bulkedit's client), get the seed pages' own responses; authentication behaves as the
//! vendors document it; and every fault and limit shows up exactly as set.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::{self, http_client};
use bulkedit::sandbox::{Faults, Sandbox, SandboxConfig};
use reqwest::blocking::Client;
use serde_json::{json, Value};

fn client() -> Client {
    http_client()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

fn start(config: SandboxConfig) -> Sandbox {
    Sandbox::start(config).expect("the sandbox starts")
}

fn hub_url(sb: &Sandbox, rest: &str) -> String {
    format!("{}/api/v1/openapi{rest}", sb.url_for("hub"))
}

fn seed_text(name: &str) -> String {
    std::fs::read_to_string(common::seed(name)).unwrap()
}

/// The first JSON object that follows `after` in a seed page.
fn seed_json(name: &str, after: &str) -> Value {
    let text = seed_text(name);
    let start = text
        .find(after)
        .unwrap_or_else(|| panic!("{after} in {name}"))
        + after.len();
    let rest = &text[start..];
    let open = rest.find('{').unwrap();
    let mut depth = 0;
    for (i, c) in rest[open..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return serde_json::from_str(&rest[open..open + i + 1]).unwrap();
                }
            }
            _ => {}
        }
    }
    panic!("no JSON object after {after} in {name}")
}

#[test]
fn hub_seed_request_gets_the_seed_response() {
    let sb = start(SandboxConfig::default());
    let mut body = seed_json("000_b20393d409914f0c.txt", "data-raw '");
    // The seed's example user is Jane Doe; the sandbox's users are its seeded ones.
    body["user_email"] = json!("user00001@example.com");
    let r = client()
        .post(hub_url(&sb, "/edituser"))
        .header("Content-Type", "application/json")
        .header("Authorization", "Bearer sandbox-tenant/sandbox-token")
        .header("x-ah-openapi-auth", "openapi-token")
        .body(body.to_string())
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    let expected = seed_json("000_b20393d409914f0c.txt", "Response");
    assert_eq!(r.json::<Value>().unwrap(), expected);
    let state = sb.state();
    let user = &state["hub"][0];
    assert_eq!(user["user_department"], "newdptvalue");
    assert_eq!(user["user_business_unit"], "newbuvalue");
    assert_eq!(
        user["user_roles"],
        json!([{"role_id": 6, "category_id": 0}, {"role_id": 4, "category_id": 0}, {"role_id": 5, "category_id": 3}])
    );
}

#[test]
fn hub_authentication_modes_are_never_mixed() {
    let sb = start(SandboxConfig {
        hub_app_key: Some("the-app-key".into()),
        ..SandboxConfig::default()
    });
    let roles = |headers: &[(&str, &str)]| {
        let mut req = client().get(hub_url(&sb, "/roles"));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.send().unwrap().status().as_u16()
    };
    let open = ("Authorization", "Bearer sandbox-tenant/sandbox-token");
    let cloud = ("Authorization", "Bearer sandbox-cloud-token");
    let mode = ("x-ah-openapi-auth", "openapi-token");
    let key = ("x-ah-openapi-app-key", "the-app-key");
    assert_eq!(roles(&[open, mode, key]), 200);
    assert_eq!(
        roles(&[open, mode]),
        401,
        "the app key is required when the token has one"
    );
    assert_eq!(
        roles(&[open, key]),
        401,
        "an Open API token needs x-ah-openapi-auth"
    );
    assert_eq!(roles(&[cloud]), 200);
    assert_eq!(
        roles(&[cloud, mode]),
        401,
        "a cloud token with x-ah-openapi-auth is refused"
    );
    assert_eq!(
        roles(&[("Authorization", "Bearer sandbox-tenant/wrong"), mode, key]),
        401
    );
    assert_eq!(roles(&[]), 401);
    let r = client().get(hub_url(&sb, "/roles")).send().unwrap();
    assert_eq!(
        r.json::<Value>().unwrap(),
        json!({"message": "Unauthorized", "statusCode": 401})
    );
}

#[test]
fn hub_users_are_searched_and_paged() {
    let sb = start(SandboxConfig {
        users: 25,
        ..SandboxConfig::default()
    });
    let get = |q: &str| -> Value {
        client()
            .get(format!("{}?{q}", hub_url(&sb, "/users")))
            .header("Authorization", "Bearer sandbox-cloud-token")
            .send()
            .unwrap()
            .json()
            .unwrap()
    };
    let page = get("inviteStatus=all&limit=10&page=3");
    assert_eq!(page["data"]["totalItems"], 25);
    assert_eq!(page["data"]["totalPages"], 3);
    assert_eq!(page["data"]["users"].as_array().unwrap().len(), 5);
    assert_eq!(
        page["data"]["users"][0]["user_email"],
        "user00021@example.com"
    );
    let found = get("s=USER00007@example.com&inviteStatus=all");
    assert_eq!(found["data"]["users"].as_array().unwrap().len(), 1);
}

fn identity_token(sb: &Sandbox) -> String {
    let r: Value = client()
        .post(format!("{}/connect/token", sb.url_for("identity")))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials&client_id=sandbox-client&client_secret=sandbox-secret&scope=PM.User%20PM.User.Write")
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(r["token_type"], "Bearer");
    r["access_token"].as_str().unwrap().to_string()
}

fn identity_put(sb: &Sandbox, token: &str, id: &str, body: &Value) -> (u16, Value) {
    let r = client()
        .put(format!("{}/api/User/{id}", sb.url_for("identity")))
        .header("Authorization", format!("Bearer {token}"))
        .header("Content-Type", "application/json")
        .body(body.to_string())
        .send()
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().unwrap_or(Value::Null))
}

#[test]
fn identity_seed_request_gets_the_seed_response() {
    let sb = start(SandboxConfig::default());
    let mut body = seed_json("003_e44ec33d21ffccb0.txt", "--data-raw '");
    // The seed names placeholder ids (her-1909, gryff-01); UiPath's OpenAPI declares UUIDs.
    body["email"] = json!("user00001@example.com");
    body["groupIDsToAdd"] = json!([
        "10000000-0000-4000-8000-000000000002",
        "10000000-0000-4000-8000-000000000003"
    ]);
    let (status, answer) = identity_put(
        &sb,
        "sandbox-identity-token",
        "00000000-0000-4000-8000-000000000001",
        &body,
    );
    assert_eq!(status, 200);
    assert_eq!(
        answer,
        seed_json(
            "003_e44ec33d21ffccb0.txt",
            "Here is the response for a successful call:"
        )
    );
    let user = &sb.state()["identity"][0];
    assert_eq!(user["name"], "Hermione");
    assert_eq!(user["surname"], "Granger-Weasley");
    assert_eq!(user["bypassBasicAuthRestriction"], false);
    assert_eq!(user["groupIDs"].as_array().unwrap().len(), 3);
    assert_eq!(
        user["displayName"], "First00001 Last00001",
        "omitted fields are left alone"
    );
}

#[test]
fn identity_rejections_come_in_all_three_documented_shapes() {
    let sb = start(SandboxConfig::default());
    let token = identity_token(&sb);
    let id = "00000000-0000-4000-8000-000000000002";
    // The validation problem, as seed 003 shows it.
    let (status, answer) = identity_put(
        &sb,
        &token,
        id,
        &json!({"bypassBasicAuthRestriction": "hello"}),
    );
    assert_eq!(status, 400);
    let seed = seed_json("003_e44ec33d21ffccb0.txt", "400 Bad Request");
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&answer), keys(&seed));
    assert_eq!(answer["title"], seed["title"]);
    assert_eq!(answer["type"], seed["type"]);
    assert!(answer["errors"]["bypassBasicAuthRestriction"][0].is_string());
    assert!(answer["traceId"].as_str().unwrap().starts_with("00-"));
    // 400 with succeeded: false.
    let (status, answer) = identity_put(
        &sb,
        &token,
        id,
        &json!({"email": "someone.else@example.com"}),
    );
    assert_eq!((status, answer["succeeded"].clone()), (400, json!(false)));
    assert_eq!(answer["errors"][0]["code"], "EmailChangeNotSupported");
    // 200 with succeeded: false.
    let (status, answer) = identity_put(&sb, &token, id, &json!({"password": "short"}));
    assert_eq!((status, answer["succeeded"].clone()), (200, json!(false)));
    assert_eq!(answer["errors"][0]["code"], "PasswordTooShort");
    let (status, answer) = identity_put(
        &sb,
        &token,
        id,
        &json!({"groupIDsToAdd": ["20000000-0000-4000-8000-000000000009"]}),
    );
    assert_eq!(
        (status, answer["errors"][0]["code"].clone()),
        (200, json!("GroupNotFound"))
    );
    // Nothing of those was applied.
    assert_eq!(sb.state()["identity"][1]["email"], "user00002@example.com");
}

#[test]
fn identity_tokens_expire_and_wrong_credentials_are_refused() {
    let _timed = common::timed();
    let sb = start(SandboxConfig {
        token_lifetime: Duration::from_secs(1),
        ..SandboxConfig::default()
    });
    let token = identity_token(&sb);
    let claims = bulkedit::platform::jwt_claims(&token).unwrap();
    assert_eq!(claims["prt_id"], "00000000-0000-4000-8000-000000000000");
    let get = |t: &str| {
        client()
            .get(format!(
                "{}/api/User/00000000-0000-4000-8000-000000000001",
                sb.url_for("identity")
            ))
            .header("Authorization", format!("Bearer {t}"))
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(get(&token), 200);
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(get(&token), 401);
    let r = client()
        .post(format!("{}/connect/token", sb.url_for("identity")))
        .body("grant_type=client_credentials&client_id=sandbox-client&client_secret=nope")
        .header("Content-Type", "application/x-www-form-urlencoded")
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().unwrap(),
        json!({"error": "invalid_client"})
    );
}

#[test]
fn identity_search_is_fuzzy_paged_and_bounded() {
    let sb = start(SandboxConfig::default());
    let search = |q: &str| -> (u16, Value) {
        let r = client()
            .get(format!(
                "{}/api/User/users/00000000-0000-4000-8000-000000000000?{q}",
                sb.url_for("identity")
            ))
            .header("Authorization", "Bearer sandbox-identity-token")
            .send()
            .unwrap();
        (r.status().as_u16(), r.json().unwrap_or(Value::Null))
    };
    let (_, all) = search("top=1000");
    assert_eq!(all["totalCount"], 100);
    let (_, some) = search("searchTerm=user0001&top=5&skip=0");
    assert_eq!(
        some["totalCount"], 10,
        "user00010 to user00019: a fuzzy match"
    );
    assert_eq!(some["results"].as_array().unwrap().len(), 5);
    assert_eq!(search("top=1001").0, 400);
}

fn cr_login(sb: &Sandbox, body: Value) -> (u16, Value) {
    let r = client()
        .post(format!("{}/v1/authentication", sb.base_url()))
        .json(&body)
        .send()
        .unwrap();
    (r.status().as_u16(), r.json().unwrap_or(Value::Null))
}

fn cr_token(sb: &Sandbox) -> String {
    let (status, body) = cr_login(
        sb,
        json!({"username": "sandbox", "password": "sandbox-password"}),
    );
    assert_eq!(status, 200);
    body["token"].as_str().unwrap().to_string()
}

#[test]
fn control_room_seed_request_gets_the_seed_response() {
    let sb = start(SandboxConfig::default());
    let token = cr_token(&sb);
    let url = format!("{}/v1/usermanagement/users/27", sb.base_url());
    let put = |body: &Value| {
        let r = client()
            .put(&url)
            .header("X-Authorization", &token)
            .json(body)
            .send()
            .unwrap();
        (r.status().as_u16(), r.json::<Value>().unwrap())
    };
    // The seed's request carries version 2: bring user 27 there first.
    let current: Value = client()
        .get(&url)
        .header("X-Authorization", &token)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(current["version"], 1);
    assert_eq!(put(&current).0, 200);
    let request = seed_json("002_7dc8985421abf009.txt", "Request body");
    let (status, answer) = put(&request);
    assert_eq!(status, 200, "{answer}");
    let seed = seed_json("002_7dc8985421abf009.txt", "Response body:");
    let keys = |v: &Value| {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(
        keys(&answer),
        keys(&seed),
        "the user object has the seed's fields"
    );
    assert_eq!(answer["username"], "docsusermd2");
    assert_eq!(answer["email"], "aamd@aa.com");
    assert_eq!(
        answer["roles"],
        json!([{"id": 27, "name": "RoleBotDocsMD6", "version": 0}])
    );
    assert_eq!(answer["version"], 3);
    // The same (now stale) version again is a conflict.
    assert_eq!(put(&request).0, 409);
}

#[test]
fn control_room_put_replaces_and_requires_username_email_and_a_role() {
    let sb = start(SandboxConfig::default());
    let token = cr_token(&sb);
    let url = format!("{}/v1/usermanagement/users/5", sb.base_url());
    let current: Value = client()
        .get(&url)
        .header("X-Authorization", &token)
        .send()
        .unwrap()
        .json()
        .unwrap();
    let put = |body: Value| {
        let r = client()
            .put(&url)
            .header("X-Authorization", &token)
            .json(&body)
            .send()
            .unwrap();
        (r.status().as_u16(), r.json::<Value>().unwrap())
    };
    for field in ["username", "email", "roles"] {
        let mut body = current.clone();
        body.as_object_mut().unwrap().remove(field);
        let (status, answer) = put(body);
        assert_eq!(status, 400, "{field}");
        assert!(
            answer["message"].is_string() && answer["code"].is_string(),
            "{answer}"
        );
    }
    let mut body = current.clone();
    body["email"] = json!("no-at-sign");
    assert_eq!(put(body).0, 400);
    // Fields left out are cleared: PUT replaces the user.
    let (status, answer) = put(
        json!({"username": "user00005", "email": "user00005@example.com", "roles": [{"name": "AAE_Basic"}]}),
    );
    assert_eq!(status, 200);
    assert_eq!(answer["firstName"], Value::Null);
}

#[test]
fn control_room_tokens_expire_renew_and_log_in_with_an_api_key() {
    let _timed = common::timed();
    let sb = start(SandboxConfig {
        token_lifetime: Duration::from_secs(2),
        ..SandboxConfig::default()
    });
    let (status, body) = cr_login(
        &sb,
        json!({"username": "sandbox", "apiKey": "sandbox-api-key"}),
    );
    assert_eq!(status, 200);
    let token = body["token"].as_str().unwrap().to_string();
    let exp = bulkedit::platform::jwt_claims(&token).unwrap()["exp"]
        .as_u64()
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(
        (now + 1..=now + 2).contains(&exp),
        "exp {exp} is two seconds from {now}"
    );
    assert_eq!(
        cr_login(&sb, json!({"username": "sandbox", "password": "wrong"})).0,
        401
    );
    let get = |t: &str| {
        client()
            .get(format!("{}/v1/usermanagement/users/1", sb.base_url()))
            .header("X-Authorization", t)
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(get(&token), 200);
    let renewed: Value = client()
        .post(format!("{}/v1/authentication/token", sb.base_url()))
        .json(&json!({"token": token}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let renewed = renewed["token"].as_str().unwrap().to_string();
    assert_ne!(renewed, token);
    std::thread::sleep(Duration::from_millis(2100));
    assert_eq!(get(&token), 401);
    assert_eq!(get(&renewed), 401);
    assert_eq!(get("not-a-token"), 401);
}

#[test]
fn control_room_list_filters_by_username() {
    let sb = start(SandboxConfig::default());
    let token = cr_token(&sb);
    let list = |body: Value| -> Value {
        client()
            .post(format!("{}/v1/usermanagement/users/list", sb.base_url()))
            .header("X-Authorization", &token)
            .json(&body)
            .send()
            .unwrap()
            .json()
            .unwrap()
    };
    let one = list(
        json!({"filter": {"operator": "eq", "field": "username", "value": "user00042"}, "page": {"offset": 0, "length": 100}}),
    );
    assert_eq!(one["page"]["totalFilter"], 1);
    assert_eq!(one["list"][0]["id"], 42);
    let some = list(json!({"filter": {"operator": "and", "operands": [
        {"operator": "substring", "field": "username", "value": "user0001"},
        {"operator": "ne", "field": "id", "value": "10"}]}, "page": {"offset": 0, "length": 3}}));
    assert_eq!(some["page"]["totalFilter"], 9);
    assert_eq!(some["list"].as_array().unwrap().len(), 3);
    assert_eq!(some["page"]["total"], 100);
}

fn faulty(faults: Faults) -> Sandbox {
    start(SandboxConfig {
        faults,
        ..SandboxConfig::default()
    })
}

fn roles_status(c: &Client, sb: &Sandbox) -> Result<(u16, Option<String>), reqwest::Error> {
    let r = c
        .get(hub_url(sb, "/roles"))
        .header("Authorization", "Bearer sandbox-cloud-token")
        .send()?;
    let status = r.status().as_u16();
    let retry_after = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    r.bytes()?;
    Ok((status, retry_after))
}

#[test]
fn failures_come_at_the_set_fraction_in_the_same_order_for_the_same_seed() {
    let run = |seed| {
        let sb = faulty(Faults {
            seed,
            fail_rate: 0.3,
            ..Faults::default()
        });
        let c = client();
        (0..400)
            .map(|_| roles_status(&c, &sb).unwrap().0)
            .collect::<Vec<u16>>()
    };
    let a = run(7);
    let failed = a.iter().filter(|s| [502, 503, 504].contains(s)).count();
    assert!((90..=150).contains(&failed), "{failed} of 400 at 30%");
    for s in [502, 503, 504] {
        assert!(a.contains(&s), "{s} occurs");
    }
    assert_eq!(a, run(7), "the same seed gives the same faults");
    assert_ne!(a, run(8));
}

#[test]
fn throttling_answers_429_with_retry_after_in_seconds_or_as_a_date() {
    let _timed = common::timed();
    let sb = faulty(Faults {
        throttle_rate: 1.0,
        retry_after: Duration::from_secs(3),
        ..Faults::default()
    });
    assert_eq!(
        roles_status(&client(), &sb).unwrap(),
        (429, Some("3".into()))
    );
    let sb = faulty(Faults {
        throttle_rate: 1.0,
        retry_after: Duration::from_secs(3),
        retry_after_date: true,
        ..Faults::default()
    });
    let (status, after) = roles_status(&client(), &sb).unwrap();
    assert_eq!(status, 429);
    let when = httpdate::parse_http_date(&after.unwrap()).unwrap();
    let wait = when
        .duration_since(std::time::SystemTime::now())
        .unwrap_or_default();
    assert!(
        wait <= Duration::from_secs(3) && wait >= Duration::from_secs(1),
        "{wait:?}"
    );
}

#[test]
fn a_server_rate_limit_refuses_what_exceeds_it() {
    let _timed = common::timed();
    let sb = faulty(Faults {
        rate: Some(20.0),
        ..Faults::default()
    });
    let c = client();
    let statuses: Vec<u16> = (0..60).map(|_| roles_status(&c, &sb).unwrap().0).collect();
    let ok = statuses.iter().filter(|s| **s == 200).count();
    // A burst of one second's worth, then nothing faster than the rate.
    assert!((20..=25).contains(&ok), "{ok} accepted of 60 sent at once");
    assert!(statuses.contains(&429));
}

#[test]
fn latency_is_added_to_every_call() {
    let sb = faulty(Faults {
        latency: Duration::from_millis(150),
        ..Faults::default()
    });
    let c = client();
    let t = Instant::now();
    roles_status(&c, &sb).unwrap();
    assert!(t.elapsed() >= Duration::from_millis(150));
}

#[test]
fn resets_drop_the_connection_after_the_change_is_made() {
    let sb = faulty(Faults {
        reset_rate: 1.0,
        ..Faults::default()
    });
    let body = json!({"user_email": "user00003@example.com", "user_department": "Reset"});
    let r = client()
        .post(hub_url(&sb, "/edituser"))
        .header("Authorization", "Bearer sandbox-cloud-token")
        .json(&body)
        .send()
        .and_then(|r| r.bytes());
    assert!(r.is_err(), "the answer is lost");
    assert_eq!(
        sb.state()["hub"][2]["user_department"],
        "Reset",
        "the change was made"
    );
}

#[test]
fn slow_answers_outlast_a_client_timeout() {
    let sb = faulty(Faults {
        slow_rate: 1.0,
        slow: Duration::from_millis(1500),
        ..Faults::default()
    });
    let c = http_client()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let err = roles_status(&c, &sb).unwrap_err();
    assert!(err.is_timeout(), "{err}");
}

#[test]
fn identity_published_limits_are_enforced_as_a_switch() {
    let sb = faulty(Faults {
        identity_limits: true,
        ..Faults::default()
    });
    let c = client();
    let put = || {
        c.put(format!(
            "{}/api/User/00000000-0000-4000-8000-000000000001",
            sb.url_for("identity")
        ))
        .header("Authorization", "Bearer sandbox-identity-token")
        .json(&json!({"name": "X"}))
        .send()
        .unwrap()
    };
    for i in 0..160 {
        assert_eq!(put().status(), 200, "PUT {i}");
    }
    let refused = put();
    assert_eq!(refused.status(), 429);
    let after: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((299..=300).contains(&after), "{after}");
    // GETs have their own 300.
    let get = c
        .get(format!(
            "{}/api/User/00000000-0000-4000-8000-000000000001",
            sb.url_for("identity")
        ))
        .header("Authorization", "Bearer sandbox-identity-token")
        .send()
        .unwrap();
    assert_eq!(get.status(), 200);
}

#[test]
fn tests_can_see_the_state_and_every_request() {
    let sb = start(SandboxConfig {
        users: 3,
        ..SandboxConfig::default()
    });
    let c = client();
    roles_status(&c, &sb).unwrap();
    let state: Value = c
        .get(format!("{}/_sandbox/state", sb.base_url()))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(state["hub"].as_array().unwrap().len(), 3);
    assert_eq!(
        state["identity"][2]["id"],
        "00000000-0000-4000-8000-000000000003"
    );
    assert_eq!(state["control_room"][1]["username"], "user00002");
    let stats: Value = c
        .get(format!("{}/_sandbox/stats", sb.base_url()))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(stats["requests"], 1);
    assert_eq!(stats["by_status"]["200"], 1);
    let requests: Value = c
        .get(format!("{}/_sandbox/requests", sb.base_url()))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(requests[0]["method"], "GET");
    assert!(requests[0]["path"]
        .as_str()
        .unwrap()
        .ends_with("/api/v1/openapi/roles"));
}

#[test]
fn the_sandbox_stops_when_dropped() {
    let sb = start(SandboxConfig::default());
    let addr = sb.addr();
    drop(sb);
    assert!(std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_err());
}

#[test]
fn the_sandbox_command_prints_the_url_and_credentials_for_each_platform() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("bulkedit"))
        .args([
            "sandbox",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--users",
            "5",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut text = String::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        text.push_str(&line);
        text.push('\n');
        if line.starts_with("state:") {
            break;
        }
    }
    for expected in [
        format!("--url http://127.0.0.1:{port}/sandbox-org/sandbox-tenant/automationhub_"),
        "BULKEDIT_TOKEN=sandbox-tenant/sandbox-token".into(),
        format!("--url http://127.0.0.1:{port}/sandbox-org/identity_"),
        "BULKEDIT_CLIENT_SECRET=sandbox-secret".into(),
        format!("--url http://127.0.0.1:{port}\n"),
        "BULKEDIT_PASSWORD=sandbox-password".into(),
    ] {
        assert!(text.contains(&expected), "{expected} in:\n{text}");
    }
    let state: Value = client()
        .get(format!("http://127.0.0.1:{port}/_sandbox/state"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(state["hub"].as_array().unwrap().len(), 5);
    child.kill().unwrap();
    child.wait().unwrap();
}

fn hub_post(sb: &Sandbox, rest: &str, body: &Value) -> (u16, Value) {
    let r = client()
        .post(hub_url(sb, rest))
        .header("Authorization", "Bearer sandbox-tenant/sandbox-token")
        .header("x-ah-openapi-auth", "openapi-token")
        .json(body)
        .send()
        .unwrap();
    (r.status().as_u16(), r.json().unwrap_or(Value::Null))
}

#[test]
fn hub_lists_role_names_and_adds_users_as_documented() {
    let sb = start(SandboxConfig {
        users: 3,
        ..SandboxConfig::default()
    });
    let roles: Value = client()
        .get(hub_url(&sb, "/roles"))
        .header("Authorization", "Bearer sandbox-cloud-token")
        .send()
        .unwrap()
        .json()
        .unwrap();
    let names: Vec<(u64, &str)> = roles["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["role_id"].as_u64().unwrap(),
                r["role_name"].as_str().unwrap(),
            )
        })
        .collect();
    assert!(names.contains(&(8, "Standard User")), "{names:?}");
    assert!(
        names.contains(&(101, "Citizen Developer Lead")),
        "a custom role"
    );

    let new = json!({"user_email": "new.hire@example.com", "user_first_name": "New",
                     "user_last_name": "Hire", "user_department": "IT"});
    let (status, answer) = hub_post(&sb, "/adduser", &new);
    assert_eq!((status, answer["statusCode"].clone()), (201, json!(201)));
    let state = sb.state();
    let added = &state["hub"][3];
    assert_eq!(added["user_email"], "new.hire@example.com");
    assert_eq!(added["user_department"], "IT");
    assert_eq!(
        added["user_roles"],
        json!([{"role_id": 8, "category_id": 0}]),
        "Standard User by default"
    );
    assert_eq!(added["user_invite_status"], 1);

    let (status, answer) = hub_post(
        &sb,
        "/adduser",
        &json!({"user_email": "NEW.HIRE@example.com", "user_first_name": "A", "user_last_name": "B"}),
    );
    assert_eq!(status, 409, "{answer}");
    assert_eq!(answer["statusCode"], 409);
    let (status, answer) = hub_post(
        &sb,
        "/adduser",
        &json!({"user_email": "x@example.com", "user_first_name": "A"}),
    );
    assert_eq!(
        (status, answer["message"].as_str()),
        (400, Some("user_last_name is required"))
    );
    let (status, _) = hub_post(
        &sb,
        "/adduser",
        &json!({"user_email": "x@example.com", "user_first_name": "A", "user_last_name": "B", "user_invite_status": 3}),
    );
    assert_eq!(status, 400, "invite status 3 is not allowed at creation");
    let (status, answer) = hub_post(
        &sb,
        "/adduser",
        &json!({"user_email": "x@example.com", "user_first_name": "A", "user_last_name": "B", "user_roles": [{"role_id": 77}]}),
    );
    assert_eq!(
        (status, answer["message"].as_str()),
        (400, Some("Invalid role_id: 77"))
    );
    assert_eq!(
        sb.state()["hub"].as_array().unwrap().len(),
        4,
        "nothing else was added"
    );
}

fn identity_call(
    sb: &Sandbox,
    method: reqwest::Method,
    rest: &str,
    body: Option<&str>,
) -> (u16, Value) {
    let mut req = client()
        .request(method, format!("{}{rest}", sb.url_for("identity")))
        .header("Authorization", "Bearer sandbox-identity-token");
    if let Some(b) = body {
        req = req
            .header("Content-Type", "application/json")
            .body(b.to_string());
    }
    let r = req.send().unwrap();
    (r.status().as_u16(), r.json().unwrap_or(Value::Null))
}

#[test]
fn identity_lists_built_in_and_custom_groups_and_users_carry_their_memberships() {
    let sb = start(SandboxConfig::default());
    let (status, groups) = identity_call(
        &sb,
        reqwest::Method::GET,
        "/api/Group/00000000-0000-4000-8000-000000000000",
        None,
    );
    assert_eq!(status, 200);
    let list = groups.as_array().expect("a bare array, no paging");
    let of_type = |t: &str| -> Vec<&str> {
        list.iter()
            .filter(|g| g["type"] == t)
            .map(|g| g["name"].as_str().unwrap())
            .collect()
    };
    assert_eq!(of_type("builtIn"), ["Everyone", "Administrators"]);
    assert!(of_type("custom").contains(&"Automation Developers"));
    let id_of = |name: &str| {
        list.iter().find(|g| g["name"] == name).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let state = sb.state();
    let member_of = |i: usize| -> Vec<String> {
        state["identity"][i - 1]["groupIDs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g.as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(member_of(1), [id_of("Everyone")]);
    assert_eq!(
        member_of(10),
        [id_of("Everyone"), id_of("Automation Developers")]
    );
    assert_eq!(
        member_of(50),
        [
            id_of("Everyone"),
            id_of("Administrators"),
            id_of("Automation Developers")
        ]
    );
    let (status, _) = identity_call(
        &sb,
        reqwest::Method::GET,
        "/api/Group/11111111-0000-4000-8000-000000000000",
        None,
    );
    assert_eq!(status, 404, "another organization's partition");
}

#[test]
fn identity_creates_users_with_the_id_the_client_chose_and_refuses_duplicates() {
    let sb = start(SandboxConfig {
        users: 2,
        ..SandboxConfig::default()
    });
    let id = "abcdef00-0000-4000-8000-000000000042";
    let create = |body: Value| {
        identity_call(
            &sb,
            reqwest::Method::POST,
            "/api/User",
            Some(&body.to_string()),
        )
    };
    let (status, answer) = create(json!({
        "id": id, "userName": "new.hire", "email": "new.hire@example.com", "name": "New",
        "surname": "Hire", "partitionGlobalId": "00000000-0000-4000-8000-000000000000",
        "groupIDs": ["10000000-0000-4000-8000-000000000003"], "password": "long-enough-1",
    }));
    assert_eq!(
        (status, answer),
        (200, json!({"succeeded": true, "errors": []}))
    );
    let (status, user) = identity_call(&sb, reqwest::Method::GET, &format!("/api/User/{id}"), None);
    assert_eq!(status, 200, "read back by the id the client chose");
    assert_eq!(user["email"], "new.hire@example.com");
    assert_eq!(user["displayName"], "New Hire");
    assert_eq!(
        user["groupIDs"],
        json!([
            "10000000-0000-4000-8000-000000000001",
            "10000000-0000-4000-8000-000000000003"
        ])
    );
    assert_eq!(
        sb.state()["identity"][2]["id"],
        id,
        "/_sandbox/state shows it"
    );

    let partition = "00000000-0000-4000-8000-000000000000";
    let code = |body: Value| {
        let (status, answer) = create(body);
        (
            status,
            answer["errors"][0]["code"]
                .as_str()
                .unwrap_or("")
                .to_string(),
        )
    };
    assert_eq!(
        code(
            json!({"userName": "other", "email": "USER00001@example.com", "partitionGlobalId": partition})
        ),
        (400, "DuplicateEmail".to_string())
    );
    assert_eq!(
        code(
            json!({"userName": "user00002", "email": "fresh@example.com", "partitionGlobalId": partition})
        ),
        (400, "DuplicateUserName".to_string())
    );
    assert_eq!(
        code(
            json!({"userName": "fresh", "email": "fresh@example.com", "partitionGlobalId": partition,
                    "groupIDs": ["20000000-0000-4000-8000-000000000009"]})
        ),
        (200, "GroupNotFound".to_string())
    );
    assert_eq!(
        code(json!({"userName": "fresh", "email": "fresh@example.com"})),
        (400, "PartitionNotFound".to_string())
    );
    assert_eq!(
        code(
            json!({"id": id, "userName": "fresh", "email": "fresh@example.com", "partitionGlobalId": partition})
        ),
        (400, "DuplicateUserId".to_string())
    );
    let (status, answer) = create(json!({"id": "not-a-guid", "userName": "fresh"}));
    assert_eq!(status, 400);
    assert!(answer["errors"]["id"][0].is_string(), "{answer}");
    assert_eq!(
        sb.state()["identity"].as_array().unwrap().len(),
        3,
        "only the first was created"
    );
}

#[test]
fn identity_malformed_json_gets_seed_003s_own_400_keyed_by_the_member() {
    let sb = start(SandboxConfig::default());
    let seed = seed_json("003_e44ec33d21ffccb0.txt", "400 Bad Request");
    let seed_message = seed["errors"]["bypassBasicAuthRestriction"][0]
        .as_str()
        .unwrap();
    // The seed's message places the bare `hello` on line 17 at position 35: a body indented
    // by four spaces whose member sits on its seventeenth line.
    let mut body = String::from("{\n");
    for i in 0..15 {
        body.push_str(&format!(
            "    \"extensionUserAttributesToRemove{i}\": null,\n"
        ));
    }
    body.push_str("    \"bypassBasicAuthRestriction\": hello\n}");
    let (status, answer) = identity_call(
        &sb,
        reqwest::Method::PUT,
        "/api/User/00000000-0000-4000-8000-000000000001",
        Some(&body),
    );
    assert_eq!(status, 400);
    assert_eq!(answer["title"], seed["title"]);
    assert_eq!(answer["type"], seed["type"]);
    assert_eq!(answer["status"], 400);
    assert_eq!(
        answer["errors"],
        json!({"bypassBasicAuthRestriction": [seed_message]}),
        "keyed by the member whose value broke, in Newtonsoft's words"
    );
    // The seed's own example request with the value broken: where it broke, counted in it.
    let example = seed_text("003_e44ec33d21ffccb0.txt");
    let start = example.find("--data-raw '").unwrap() + "--data-raw '".len();
    let end = start + example[start..].find("}'").unwrap() + 1;
    let broken = example[start..end].replace(
        "\"bypassBasicAuthRestriction\": false",
        "\"bypassBasicAuthRestriction\": hello",
    );
    let (line, text) = broken
        .lines()
        .enumerate()
        .find(|(_, l)| l.contains("hello"))
        .unwrap();
    let position = text.find("hello").unwrap() + 1;
    let (status, answer) = identity_call(
        &sb,
        reqwest::Method::PUT,
        "/api/User/00000000-0000-4000-8000-000000000001",
        Some(&broken),
    );
    assert_eq!(status, 400);
    assert_eq!(
        answer["errors"]["bypassBasicAuthRestriction"][0],
        format!(
            "Unexpected character encountered while parsing value: h. Path 'bypassBasicAuthRestriction', line {}, position {position}.",
            line + 1
        )
    );
    // Inside a list, the path names the item.
    let (_, answer) = identity_call(
        &sb,
        reqwest::Method::PUT,
        "/api/User/00000000-0000-4000-8000-000000000001",
        Some(r#"{"groupIDsToAdd": ["10000000-0000-4000-8000-000000000002", oops]}"#),
    );
    assert!(
        answer["errors"]["groupIDsToAdd[1]"][0]
            .as_str()
            .unwrap()
            .starts_with(
                "Unexpected character encountered while parsing value: o. Path 'groupIDsToAdd[1]'"
            ),
        "{answer}"
    );
    assert_eq!(
        sb.state()["identity"][0]["name"],
        "First00001",
        "nothing changed"
    );
}

fn cr_post(sb: &Sandbox, token: &str, rest: &str, body: &Value) -> (u16, Value) {
    let r = client()
        .post(format!("{}{rest}", sb.base_url()))
        .header("X-Authorization", token)
        .json(body)
        .send()
        .unwrap();
    (r.status().as_u16(), r.json().unwrap_or(Value::Null))
}

#[test]
fn control_room_lists_roles_and_creates_users_as_documented() {
    let sb = start(SandboxConfig {
        users: 5,
        ..SandboxConfig::default()
    });
    let token = cr_token(&sb);
    let (status, roles) = cr_post(
        &sb,
        &token,
        "/v1/usermanagement/roles/list",
        &json!({"page": {"offset": 0, "length": 100}}),
    );
    assert_eq!(status, 200);
    let names: Vec<&str> = roles["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert!(
        names.len() >= 5 && names.contains(&"AAE_Basic") && names.contains(&"Bot Runner"),
        "{names:?}"
    );
    assert_eq!(roles["page"]["total"], names.len());

    let new = json!({"username": "new.hire", "email": "new.hire@example.com", "password": "Secret-123",
                     "firstName": "New", "roles": [{"id": 4}], "licenseFeatures": ["RUNTIME"]});
    let (status, user) = cr_post(&sb, &token, "/v1/usermanagement/users", &new);
    assert_eq!(status, 201, "{user}");
    assert_eq!(user["id"], 6);
    assert_eq!(user["roles"][0]["name"], "Bot Runner");
    assert!(
        user.get("password").is_none(),
        "a password is never answered"
    );
    assert_eq!(sb.state()["control_room"][5]["username"], "new.hire");

    let (status, answer) = cr_post(
        &sb,
        &token,
        "/v1/usermanagement/users",
        &json!({"username": "NEW.HIRE", "email": "a@example.com", "password": "Secret-123", "roles": [{"id": 2}]}),
    );
    assert_eq!(
        (status, answer["code"].as_str()),
        (409, Some("um.user.username.exists"))
    );
    for (password, why) in [
        ("short", "too short"),
        ("much-too-long-password", "too long"),
        ("spaces are bad", "a space"),
    ] {
        let (status, answer) = cr_post(
            &sb,
            &token,
            "/v1/usermanagement/users",
            &json!({"username": "x", "email": "x@example.com", "password": password, "roles": [{"id": 2}]}),
        );
        assert_eq!(
            (status, answer["code"].as_str()),
            (400, Some("um.user.password.invalid")),
            "{why}"
        );
    }
    let (status, answer) = cr_post(
        &sb,
        &token,
        "/v1/usermanagement/users",
        &json!({"username": "x", "email": "x@example.com", "password": "Secret-123", "roles": [{"id": 999}]}),
    );
    assert_eq!(
        (status, answer["code"].as_str()),
        (400, Some("um.role.not.found"))
    );
    let (status, answer) = cr_post(
        &sb,
        &token,
        "/v1/usermanagement/users",
        &json!({"username": "x", "email": "x@example.com", "password": "Secret-123", "roles": []}),
    );
    assert_eq!(
        (status, answer["code"].as_str()),
        (400, Some("um.user.roles.required"))
    );
    let (status, answer) = cr_post(
        &sb,
        &token,
        "/v1/usermanagement/users",
        &json!({"username": "x", "password": "Secret-123", "roles": [{"id": 2}]}),
    );
    assert_eq!(
        (status, answer["code"].as_str()),
        (400, Some("um.user.email.invalid"))
    );
    assert_eq!(sb.state()["control_room"].as_array().unwrap().len(), 6);
}

/// What a bench sends again with another tool: calls kept whole (method, path with its query,
/// headers, body) only while capturing, and a list page shows a user as last written.
#[test]
fn captured_calls_are_kept_whole_and_pages_show_users_as_last_written() {
    let sb = start(SandboxConfig::default());
    let c = client();
    let list = |page: &str| -> Value {
        c.get(hub_url(&sb, &format!("/users?limit=2&page={page}")))
            .bearer_auth("sandbox-tenant/sandbox-token")
            .header("x-ah-openapi-auth", "openapi-token")
            .send()
            .unwrap()
            .json()
            .unwrap()
    };
    assert_eq!(list("1")["data"]["users"][0]["user_job_title"], "Analyst");
    sb.capture(true);
    let body = json!({"user_email": "user00001@example.com", "user_job_title": "Kept"});
    let answer = c
        .post(hub_url(&sb, "/edituser"))
        .bearer_auth("sandbox-tenant/sandbox-token")
        .header("x-ah-openapi-auth", "openapi-token")
        .json(&body)
        .send()
        .unwrap();
    assert_eq!(answer.status(), 201);
    sb.capture(false);
    assert_eq!(list("1")["data"]["users"][0]["user_job_title"], "Kept");
    let kept = sb.captured();
    assert_eq!(kept.len(), 1, "only while capturing");
    let write = &kept[0];
    assert_eq!((write.method.as_str(), write.status), ("POST", 201));
    assert!(
        write.target.ends_with("/api/v1/openapi/edituser"),
        "{}",
        write.target
    );
    let header = |name: &str| {
        write
            .headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(
        header("authorization"),
        Some("Bearer sandbox-tenant/sandbox-token")
    );
    assert_eq!(header("x-ah-openapi-auth"), Some("openapi-token"));
    assert_eq!(header("host"), None);
    assert_eq!(serde_json::from_slice::<Value>(&write.body).unwrap(), body);
}
