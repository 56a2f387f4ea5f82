//! A small misbehaving HTTP/1.1 server on 127.0.0.1: it answers whatever a test scripts
//! (redirects, web pages, endless bodies, long pauses, dropped connections, echoes) and keeps
//! every request it received, with the moment it arrived, for the test to check.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A request as the server received it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub at: Instant,
    pub method: String,
    /// Path and query, as sent.
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The whole request as text, for searching it.
    pub fn text(&self) -> String {
        let mut t = format!("{} {}\n", self.method, self.target);
        for (k, v) in &self.headers {
            t.push_str(&format!("{k}: {v}\n"));
        }
        t.push_str(&self.body);
        t
    }
}

/// What the server does with a request.
pub enum Answer {
    Reply {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// A 200 whose chunked body never ends (until the client hangs up, or a bound far past
    /// anything a client should read).
    Endless,
    /// Closes the connection without a word, after reading the request.
    Drop,
}

impl Answer {
    pub fn json(status: u16, body: &serde_json::Value) -> Answer {
        Answer::Reply {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.to_string().into_bytes(),
        }
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Answer {
        if let Answer::Reply { headers, .. } = &mut self {
            headers.push((name.into(), value.into()));
        }
        self
    }

    pub fn html(status: u16, body: &str) -> Answer {
        Answer::Reply {
            status,
            headers: vec![("content-type".into(), "text/html".into())],
            body: body.as_bytes().to_vec(),
        }
    }
}

type Handler = dyn Fn(&Seen) -> Answer + Send + Sync;

pub struct Rogue {
    pub port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
}

impl Rogue {
    pub fn start(handler: impl Fn(&Seen) -> Answer + Send + Sync + 'static) -> Rogue {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        listener.set_nonblocking(true).expect("non-blocking");
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let handler: Arc<Handler> = Arc::new(handler);
        {
            let (seen, stop) = (Arc::clone(&seen), Arc::clone(&stop));
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            let (seen, handler) = (Arc::clone(&seen), Arc::clone(&handler));
                            std::thread::spawn(move || serve(stream, &seen, &*handler));
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            });
        }
        Rogue { port, seen, stop }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Rogue {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn serve(stream: TcpStream, seen: &Mutex<Vec<Seen>>, handler: &Handler) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(60)));
    let mut reader = BufReader::new(stream.try_clone().expect("a second handle"));
    let mut out = stream;
    while let Some(request) = read_request(&mut reader) {
        seen.lock().unwrap().push(request.clone());
        let answered = match handler(&request) {
            Answer::Reply {
                status,
                headers,
                body,
            } => {
                let mut head = format!(
                    "HTTP/1.1 {status} Scripted\r\ncontent-length: {}\r\n",
                    body.len()
                );
                for (k, v) in headers {
                    head.push_str(&format!("{k}: {v}\r\n"));
                }
                head.push_str("\r\n");
                out.write_all(head.as_bytes())
                    .and_then(|()| out.write_all(&body))
                    .and_then(|()| out.flush())
            }
            Answer::Endless => {
                let _ = out.write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-type: application/json\r\n\r\n");
                let chunk = format!("{:x}\r\n{}\r\n", 64 * 1024, "[".repeat(64 * 1024));
                // Far past any cap a client should have; a client without one is still ended.
                for _ in 0..(4 * 1024) {
                    if out.write_all(chunk.as_bytes()).is_err() {
                        break;
                    }
                }
                let _ = out.shutdown(Shutdown::Both);
                return;
            }
            Answer::Drop => {
                let _ = out.shutdown(Shutdown::Both);
                return;
            }
        };
        if answered.is_err() {
            return;
        }
    }
}

fn read_request(reader: &mut BufReader<TcpStream>) -> Option<Seen> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let at = Instant::now();
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let target = parts.next()?.to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let length = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(Seen {
        at,
        method,
        target,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// An Automation Hub that answers the calls `apply` makes for `users` with their documented
/// shapes, and `edit` for each `edituser` (numbered from 0 in the order they arrive).
pub fn hub(users: usize, edit: impl Fn(usize, &Seen) -> Answer + Send + Sync + 'static) -> Rogue {
    let list: Vec<serde_json::Value> = (1..=users)
        .map(|i| {
            serde_json::json!({
                "user_email": format!("user{i:05}@example.com"),
                "user_first_name": format!("First{i:05}"), "user_last_name": format!("Last{i:05}"),
                "user_is_active": 1, "user_invite_status": 3,
                "user_roles": [{"role_id": 8, "category_id": 0}]
            })
        })
        .collect();
    hub_with(list, edit)
}

/// An Automation Hub whose users are `list` as given, every one on the one page whatever the
/// search (a loose search, as the real one is), and `edit` for each `edituser`.
pub fn hub_with(
    list: Vec<serde_json::Value>,
    edit: impl Fn(usize, &Seen) -> Answer + Send + Sync + 'static,
) -> Rogue {
    let users = list.len();
    let edits = std::sync::atomic::AtomicUsize::new(0);
    Rogue::start(move |req| {
        let path = req.target.split('?').next().unwrap_or("");
        if path.ends_with("/roles") {
            return Answer::json(
                200,
                &serde_json::json!({"message": "Success", "statusCode": 200, "data": []}),
            );
        }
        if path.ends_with("/users") {
            return Answer::json(
                200,
                &serde_json::json!({"message": "Success", "statusCode": 200,
                "data": {"page": 1, "pageSize": 500, "totalItems": users, "totalPages": 1, "users": list}}),
            );
        }
        if path.ends_with("/edituser") {
            let n = edits.fetch_add(1, Ordering::SeqCst);
            return edit(n, req);
        }
        Answer::json(
            404,
            &serde_json::json!({"message": "Not Found", "statusCode": 404}),
        )
    })
}

/// Hub's documented success for `edituser`.
pub fn hub_updated() -> Answer {
    Answer::json(
        201,
        &serde_json::json!({"message": "Resource Updated", "statusCode": 201, "data": {"message": "Sync Successful."}}),
    )
}

/// What a live server does with a write it received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnWrite {
    /// Makes the change and answers with the vendor's success.
    Apply,
    /// Makes the change, then drops the connection: the answer is lost, not the write.
    ApplyThenDrop,
    /// Drops the connection without making the change.
    Drop,
    /// Refuses the change with the vendor's error, making none.
    Refuse,
}

/// The users a live server holds, shared with the test.
pub type Users = Arc<Mutex<Vec<serde_json::Value>>>;

/// Another admin's change: after the first whole-list read, `field` of every user is set to
/// `value`, as if someone edited them while the run goes on.
pub type OtherAdmin = Option<(&'static str, &'static str)>;

fn lower(v: &serde_json::Value) -> String {
    v.as_str().unwrap_or("").to_ascii_lowercase()
}

fn query(target: &str, name: &str) -> Option<String> {
    let q = target.split_once('?')?.1;
    url::form_urlencoded::parse(q.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// An Automation Hub that keeps its users and applies each `edituser` to them; its search
/// (`s`) matches any part of the e-mail, in any case, as the real one matches loosely.
pub fn hub_live(
    users: Vec<serde_json::Value>,
    other_admin: OtherAdmin,
    write: impl Fn(usize, &Seen) -> OnWrite + Send + Sync + 'static,
) -> (Rogue, Users) {
    let store: Users = Arc::new(Mutex::new(users));
    let edits = std::sync::atomic::AtomicUsize::new(0);
    let changed = AtomicBool::new(false);
    let shared = Arc::clone(&store);
    let rogue = Rogue::start(move |req| {
        let path = req.target.split('?').next().unwrap_or("");
        let mut users = shared.lock().unwrap();
        if path.ends_with("/roles") {
            return Answer::json(
                200,
                &serde_json::json!({"message": "Success", "statusCode": 200, "data": []}),
            );
        }
        if path.ends_with("/users") {
            let s = query(&req.target, "s")
                .unwrap_or_default()
                .to_ascii_lowercase();
            let limit: usize = query(&req.target, "limit")
                .and_then(|l| l.parse().ok())
                .unwrap_or(50);
            let page: usize = query(&req.target, "page")
                .and_then(|p| p.parse().ok())
                .unwrap_or(1);
            let hits: Vec<serde_json::Value> = users
                .iter()
                .filter(|u| lower(&u["user_email"]).contains(&s))
                .cloned()
                .collect();
            let pages = hits.len().div_ceil(limit).max(1);
            let list: Vec<_> = hits
                .iter()
                .skip((page - 1) * limit)
                .take(limit)
                .cloned()
                .collect();
            let answer = Answer::json(
                200,
                &serde_json::json!({"message": "Success", "statusCode": 200,
                "data": {"page": page, "pageSize": limit, "totalItems": hits.len(), "totalPages": pages, "users": list}}),
            );
            if s.is_empty() && !changed.swap(true, Ordering::SeqCst) {
                if let Some((field, value)) = other_admin {
                    for u in users.iter_mut() {
                        u[field] = serde_json::json!(value);
                    }
                }
            }
            return answer;
        }
        if path.ends_with("/edituser") {
            let how = write(edits.fetch_add(1, Ordering::SeqCst), req);
            let body: serde_json::Value = serde_json::from_str(&req.body).unwrap_or_default();
            if how == OnWrite::Apply || how == OnWrite::ApplyThenDrop {
                let email = lower(&body["user_email"]);
                if let Some(u) = users.iter_mut().find(|u| lower(&u["user_email"]) == email) {
                    for (k, v) in body.as_object().into_iter().flatten() {
                        u[k] = v.clone();
                    }
                }
            }
            return match how {
                OnWrite::Apply => hub_updated(),
                OnWrite::Refuse => Answer::json(
                    400,
                    &serde_json::json!({"message": "Nothing to update", "statusCode": 400}),
                ),
                _ => Answer::Drop,
            };
        }
        Answer::json(
            404,
            &serde_json::json!({"message": "Not Found", "statusCode": 404}),
        )
    });
    (rogue, store)
}

/// Hub's seeded user `i`, with a job title another admin may change.
pub fn hub_user(i: usize) -> serde_json::Value {
    serde_json::json!({
        "user_email": format!("user{i:05}@example.com"),
        "user_first_name": format!("First{i:05}"), "user_last_name": format!("Last{i:05}"),
        "user_job_title": "Developer",
        "user_is_active": 1, "user_invite_status": 3,
        "user_roles": [{"role_id": 8, "category_id": 0}]
    })
}

/// Identity's user `i`, as the sandbox seeds it.
pub fn identity_user(i: usize) -> serde_json::Value {
    serde_json::json!({
        "id": format!("00000000-0000-4000-8000-{i:012}"),
        "userName": format!("user{i:05}"), "email": format!("user{i:05}@example.com"),
        "name": format!("First{i:05}"), "surname": format!("Last{i:05}"),
        "displayName": format!("First{i:05} Last{i:05}"), "groupIDs": [], "isActive": true,
    })
}

/// An Identity Server that keeps its users and applies each `PUT /api/User/{id}` to them; its
/// search (`searchTerm`) matches any part of the e-mail, in any case, paged by `top`/`skip`.
/// Its organization has two groups, Everyone and Administrators.
pub fn identity_live(
    users: Vec<serde_json::Value>,
    other_admin: OtherAdmin,
    write: impl Fn(usize, &Seen) -> OnWrite + Send + Sync + 'static,
) -> (Rogue, Users) {
    let store: Users = Arc::new(Mutex::new(users));
    let puts = std::sync::atomic::AtomicUsize::new(0);
    let changed = AtomicBool::new(false);
    let shared = Arc::clone(&store);
    let rogue = Rogue::start(move |req| {
        let path = req.target.split('?').next().unwrap_or("").to_string();
        let mut users = shared.lock().unwrap();
        if path.contains("/api/Group/") {
            return Answer::json(
                200,
                &serde_json::json!([
                    {"id": "10000000-0000-4000-8000-000000000001", "name": "Everyone"},
                    {"id": "10000000-0000-4000-8000-000000000002", "name": "Administrators"},
                ]),
            );
        }
        if let Some(rest) = path.split("/api/User/users/").nth(1) {
            let _partition = rest;
            let term = query(&req.target, "searchTerm")
                .unwrap_or_default()
                .to_ascii_lowercase();
            let top: usize = query(&req.target, "top")
                .and_then(|l| l.parse().ok())
                .unwrap_or(50);
            let skip: usize = query(&req.target, "skip")
                .and_then(|p| p.parse().ok())
                .unwrap_or(0);
            let hits: Vec<serde_json::Value> = users
                .iter()
                .filter(|u| lower(&u["email"]).contains(&term))
                .cloned()
                .collect();
            let page: Vec<_> = hits.iter().skip(skip).take(top).cloned().collect();
            let answer = Answer::json(
                200,
                &serde_json::json!({"totalCount": hits.len(), "results": page}),
            );
            if term.is_empty() && top > 1 && !changed.swap(true, Ordering::SeqCst) {
                if let Some((field, value)) = other_admin {
                    for u in users.iter_mut() {
                        u[field] = serde_json::json!(value);
                    }
                }
            }
            return answer;
        }
        let Some(id) = path.split("/api/User/").nth(1).map(str::to_string) else {
            return Answer::json(404, &serde_json::json!({}));
        };
        let at = users
            .iter()
            .position(|u| u["id"].as_str() == Some(id.as_str()));
        match (req.method.as_str(), at) {
            ("GET", Some(at)) => Answer::json(200, &users[at]),
            ("PUT", Some(at)) => {
                let how = write(puts.fetch_add(1, Ordering::SeqCst), req);
                if how == OnWrite::Apply || how == OnWrite::ApplyThenDrop {
                    let body: serde_json::Value =
                        serde_json::from_str(&req.body).unwrap_or_default();
                    for (k, v) in body.as_object().into_iter().flatten() {
                        users[at][k] = v.clone();
                    }
                }
                match how {
                    OnWrite::Refuse => Answer::json(
                        400,
                        &serde_json::json!({"succeeded": false, "errors": [{"code": "NothingToChange", "description": "the user already has these values"}]}),
                    ),
                    OnWrite::Apply => {
                        Answer::json(200, &serde_json::json!({"succeeded": true, "errors": []}))
                    }
                    _ => Answer::Drop,
                }
            }
            _ => Answer::Reply {
                status: 404,
                headers: vec![],
                body: vec![],
            },
        }
    });
    (rogue, store)
}

/// A Control Room user as the list and the read answer it.
pub fn control_room_user(id: usize, username: &str) -> serde_json::Value {
    serde_json::json!({
        "id": id, "version": 1, "username": username, "email": format!("{}@example.com", username.to_ascii_lowercase()),
        "firstName": "F", "lastName": "L", "disabled": false,
        "roles": [{"id": 1, "name": "AAE_Basic", "version": 0}],
    })
}

/// A Control Room that keeps its users, whose `eq` filter on the user list matches loosely
/// (any part of the value, any case), paged by `offset`/`length`; a PUT replaces the user.
pub fn control_room_live(users: Vec<serde_json::Value>) -> (Rogue, Users) {
    control_room_live_with(users, None)
}

/// [`control_room_live`], with another admin setting a field of every user right after the
/// whole list is first read.
pub fn control_room_live_with(
    users: Vec<serde_json::Value>,
    other_admin: OtherAdmin,
) -> (Rogue, Users) {
    let store: Users = Arc::new(Mutex::new(users));
    let shared = Arc::clone(&store);
    let changed = AtomicBool::new(false);
    let rogue = Rogue::start(move |req| {
        let path = req.target.split('?').next().unwrap_or("");
        let mut users = shared.lock().unwrap();
        if path.ends_with("/v1/authentication") {
            return Answer::json(200, &serde_json::json!({"token": "cr-session-token"}));
        }
        if path.ends_with("/users/list") {
            let body: serde_json::Value = serde_json::from_str(&req.body).unwrap_or_default();
            let want = lower(&body["filter"]["value"]);
            let field = body["filter"]["field"]
                .as_str()
                .unwrap_or("username")
                .to_string();
            let offset = body["page"]["offset"].as_u64().unwrap_or(0) as usize;
            let length = body["page"]["length"].as_u64().unwrap_or(100) as usize;
            let hits: Vec<serde_json::Value> = users
                .iter()
                .filter(|u| lower(&u[&field]).contains(&want))
                .cloned()
                .collect();
            let page: Vec<_> = hits.iter().skip(offset).take(length).cloned().collect();
            let answer = Answer::json(
                200,
                &serde_json::json!({"page": {"offset": offset, "total": users.len(), "totalFilter": hits.len()}, "list": page}),
            );
            if want.is_empty() && length > 1 && !changed.swap(true, Ordering::SeqCst) {
                if let Some((field, value)) = other_admin {
                    for u in users.iter_mut() {
                        u[field] = serde_json::json!(value);
                    }
                }
            }
            return answer;
        }
        let id: u64 = path.rsplit('/').next().unwrap_or("").parse().unwrap_or(0);
        let Some(at) = users.iter().position(|u| u["id"].as_u64() == Some(id)) else {
            return Answer::json(404, &serde_json::json!({"code": "um.user.not.found"}));
        };
        if req.method == "PUT" {
            users[at] = serde_json::from_str(&req.body).unwrap_or_default();
        }
        Answer::json(200, &users[at])
    });
    (rogue, store)
}
