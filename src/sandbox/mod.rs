//! The built-in stand-in for the three vendors' servers: one loopback HTTP server answering
//! Automation Hub, Identity and Control Room calls with the vendors' paths, headers, bodies,
//! status codes and error shapes, over an in-memory user store seeded the same way every time,
//! with latency, rate limits and faults on demand. `/_sandbox/*` lets tests see what happened.

mod control_room;
mod delay;
mod faults;
mod hub;
mod identity;
mod store;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, Method, Request, StatusCode};
use axum::response::Response;
use base64::Engine;
use serde_json::{json, Value};

pub use faults::Faults;
use store::World;

use crate::secrets::Secrets;

pub const HUB_PATH: &str = "/sandbox-org/sandbox-tenant/automationhub_";
pub const IDENTITY_PATH: &str = "/sandbox-org/identity_";
pub const HUB_TOKEN: &str = "sandbox-tenant/sandbox-token";
pub const HUB_CLOUD_TOKEN: &str = "sandbox-cloud-token";
pub const IDENTITY_TOKEN: &str = "sandbox-identity-token";
pub const CLIENT_ID: &str = "sandbox-client";
pub const CLIENT_SECRET: &str = "sandbox-secret";
pub const PARTITION: &str = "00000000-0000-4000-8000-000000000000";
pub const CR_USERNAME: &str = "sandbox";
pub const CR_PASSWORD: &str = "sandbox-password";
pub const CR_API_KEY: &str = "sandbox-api-key";

#[derive(Debug, Clone)]
pub struct SandboxConfig {
    pub listen: SocketAddr,
    /// Seeded users per platform.
    pub users: usize,
    pub faults: Faults,
    /// Lifetime of Control Room JWTs and of Identity client-credential tokens.
    pub token_lifetime: Duration,
    /// When set, Open API calls must carry this `x-ah-openapi-app-key`.
    pub hub_app_key: Option<String>,
    /// Serve HTTPS with this certificate chain and private key (PEM) instead of plain HTTP.
    pub tls: Option<(Vec<u8>, Vec<u8>)>,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            listen: "127.0.0.1:0".parse().expect("a socket address"),
            users: 100,
            faults: Faults::default(),
            token_lifetime: Duration::from_secs(20 * 60),
            hub_app_key: None,
            tls: None,
        }
    }
}

/// The well-known credentials for one platform, as `apply --sandbox` uses them.
pub fn default_secrets(platform: &str) -> Secrets {
    match platform {
        "hub" => Secrets {
            token: Some(HUB_TOKEN.into()),
            ..Secrets::default()
        },
        "identity" => Secrets {
            client_id: Some(CLIENT_ID.into()),
            client_secret: Some(CLIENT_SECRET.into()),
            partition: Some(PARTITION.into()),
            ..Secrets::default()
        },
        _ => Secrets {
            username: Some(CR_USERNAME.into()),
            password: Some(CR_PASSWORD.into()),
            ..Secrets::default()
        },
    }
}

/// One request as the sandbox saw it, for `/_sandbox/requests`.
#[derive(Debug, Clone)]
pub struct Seen {
    pub at: Duration,
    pub method: String,
    pub path: String,
    pub status: u16,
}

/// A request kept whole (`Sandbox::capture`): what a load tool needs to send it again.
#[derive(Debug, Clone)]
pub struct Captured {
    pub method: String,
    /// The path with its query, as sent.
    pub target: String,
    /// Every header as sent, `host` and `content-length` aside.
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    pub status: u16,
}

/// Everything the handlers share.
pub struct App {
    pub config: SandboxConfig,
    pub world: Mutex<World>,
    pub faults: faults::FaultState,
    pub started: Instant,
    delays: delay::Delays,
    seen: Mutex<Vec<Seen>>,
    /// Whether requests are kept whole, for a bench to send the same ones again.
    capturing: std::sync::atomic::AtomicBool,
    captured: Mutex<Vec<Captured>>,
}

/// At most this many requests are remembered for `/_sandbox/requests`.
const MAX_SEEN: usize = 2_000_000;

impl App {
    fn new(config: SandboxConfig) -> Self {
        App {
            world: Mutex::new(World::seeded(config.users)),
            faults: faults::FaultState::new(&config.faults),
            config,
            started: Instant::now(),
            delays: delay::Delays::start(),
            seen: Mutex::new(Vec::new()),
            capturing: Default::default(),
            captured: Mutex::new(Vec::new()),
        }
    }

    fn record(&self, method: &Method, path: &str, status: u16) {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.len() < MAX_SEEN {
            seen.push(Seen {
                at: self.started.elapsed(),
                method: method.to_string(),
                path: path.to_string(),
                status,
            });
        }
    }

    pub fn world(&self) -> std::sync::MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A running sandbox; stopped when dropped.
pub struct Sandbox {
    addr: SocketAddr,
    tls: bool,
    app: Arc<App>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sandbox {
    /// Binds, starts serving on a thread of its own and returns once connections are accepted.
    pub fn start(config: SandboxConfig) -> std::io::Result<Sandbox> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("sandbox")
            .enable_all()
            .build()?;
        let listener = runtime.block_on(tokio::net::TcpListener::bind(config.listen))?;
        let addr = listener.local_addr()?;
        let tls = config
            .tls
            .as_ref()
            .map(|(cert, key)| tls_acceptor(cert, key))
            .transpose()?;
        let tls_on = tls.is_some();
        let app = Arc::new(App::new(config));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let served = Arc::clone(&app);
        let thread = std::thread::Builder::new()
            .name("sandbox-server".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let router = axum::Router::new().fallback(handle).with_state(served);
                    match tls {
                        None => {
                            let _ = axum::serve(listener, router)
                                .with_graceful_shutdown(async {
                                    let _ = rx.await;
                                })
                                .await;
                        }
                        Some(acceptor) => serve_tls(listener, acceptor, router, rx).await,
                    }
                });
                // Handlers still sleeping (latency, slow answers) must not hold the stop up.
                runtime.shutdown_timeout(Duration::from_millis(100));
            })?;
        Ok(Sandbox {
            addr,
            tls: tls_on,
            app,
            shutdown: Some(tx),
            thread: Some(thread),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn base_url(&self) -> String {
        format!("{}://{}", self.scheme(), self.addr)
    }

    fn scheme(&self) -> &'static str {
        if self.tls {
            "https"
        } else {
            "http"
        }
    }

    /// The `--url` for a platform.
    pub fn url_for(&self, platform: &str) -> url::Url {
        let path = match platform {
            "hub" => HUB_PATH,
            "identity" => IDENTITY_PATH,
            _ => "",
        };
        url::Url::parse(&format!("{}://{}{path}", self.scheme(), self.addr)).expect("a valid URL")
    }

    /// When the sandbox started: [`Seen::at`] counts from here.
    pub fn started(&self) -> Instant {
        self.app.started
    }

    /// The users of every platform, as `/_sandbox/state` shows them.
    pub fn state(&self) -> Value {
        self.app.world().state()
    }

    /// From now on, keeps every vendor call whole (method, path, headers, body): a bench sends
    /// a client's own requests again with another tool, to compare the two.
    pub fn capture(&self, on: bool) {
        self.app
            .capturing
            .store(on, std::sync::atomic::Ordering::SeqCst);
    }

    /// The calls kept since [`Sandbox::capture`] was turned on, in the order answered.
    pub fn captured(&self) -> Vec<Captured> {
        self.app
            .captured
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Every request seen so far.
    pub fn requests(&self) -> Vec<Seen> {
        self.app
            .seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn tls_acceptor(cert_pem: &[u8], key_pem: &[u8]) -> std::io::Result<tokio_rustls::TlsAcceptor> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let invalid = |e: &dyn std::fmt::Display| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string())
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| invalid(&e))?;
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| invalid(&e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid(&e))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| invalid(&e))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// HTTPS: each accepted connection is wrapped in TLS, then served by the same router.
async fn serve_tls(
    listener: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    router: axum::Router,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    loop {
        let (tcp, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(_) => continue,
            },
            _ = &mut stop => return,
        };
        let acceptor = acceptor.clone();
        let service = hyper_util::service::TowerToHyperService::new(router.clone());
        tokio::spawn(async move {
            // A client that refuses the certificate ends the handshake; nothing to serve.
            if let Ok(stream) = acceptor.accept(tcp).await {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            }
        });
    }
}

/// What a handler answers.
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
    /// A JSON body, turned into text only after the store's lock is let go: a page of a
    /// thousand users takes a while to write, and other requests need not wait for it.
    pub json: Option<Value>,
    pub headers: Vec<(&'static str, String)>,
}

impl Answer {
    pub fn json(status: u16, body: Value) -> Self {
        Answer {
            status,
            body: Vec::new(),
            json: Some(body),
            headers: vec![("content-type", "application/json; charset=utf-8".into())],
        }
    }
    /// A JSON body written straight from borrowed records, about `size` bytes long: a page
    /// of a thousand users is not copied into a new value first, nor into a buffer that
    /// doubles as it fills (under the store's lock, either held every other request up).
    pub fn written(status: u16, body: &impl serde::Serialize, size: usize) -> Self {
        let mut text = Vec::with_capacity(size);
        serde_json::to_writer(&mut text, body).expect("JSON values serialize");
        Answer {
            status,
            body: text,
            json: None,
            headers: vec![("content-type", "application/json; charset=utf-8".into())],
        }
    }
    pub fn empty(status: u16) -> Self {
        Answer {
            status,
            body: Vec::new(),
            json: None,
            headers: Vec::new(),
        }
    }
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
}

/// One request, as the platform handlers see it.
pub struct Call<'a> {
    pub method: &'a Method,
    /// The path after the platform's prefix, e.g. `/api/User/…` or `/v1/usermanagement/…`.
    pub path: &'a str,
    pub query: HashMap<String, String>,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

impl Call<'_> {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(self.body).ok()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Hub,
    Identity,
    ControlRoom,
    Observe,
    Unknown,
}

/// Which platform a path belongs to, and the rest of the path after its prefix.
pub fn route(path: &str) -> (Route, &str) {
    if let Some(rest) = path.strip_prefix("/_sandbox/") {
        return (Route::Observe, rest);
    }
    if let Some(i) = path.find("/api/v1/openapi/") {
        if path[..i].ends_with("automationhub_") {
            return (Route::Hub, &path[i + "/api/v1/openapi".len()..]);
        }
    }
    for marker in ["/api/User", "/api/Group", "/connect/token"] {
        if let Some(i) = path.find(marker) {
            let prefix = &path[..i];
            if prefix.ends_with("/identity_") || prefix.ends_with("/identity") {
                return (Route::Identity, &path[i..]);
            }
        }
    }
    if path.starts_with("/v1/authentication") || path.starts_with("/v1/usermanagement/") {
        return (Route::ControlRoom, path);
    }
    (Route::Unknown, path)
}

fn respond(answer: Answer) -> Response {
    let mut builder = Response::builder()
        .status(StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR));
    for (name, value) in answer.headers {
        if let Ok(v) = HeaderValue::from_str(&value) {
            builder = builder.header(name, v);
        }
    }
    let body = match answer.json {
        Some(v) => serde_json::to_vec(&v).expect("JSON values serialize"),
        None => answer.body,
    };
    builder.body(Body::from(body)).expect("a valid response")
}

/// A response whose body breaks off: the client sees the connection drop mid-answer.
fn reset_response() -> Response {
    let stream = futures_util::stream::once(async {
        Err::<Bytes, std::io::Error>(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "sandbox: connection reset",
        ))
    });
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .body(Body::from_stream(stream))
        .expect("a valid response")
}

/// Each call runs to its end whether or not its client is still there: a real server makes
/// the change of a request whose client was killed mid-call, and a test of `--resume` must
/// meet that, not a change silently dropped with the connection.
async fn handle(
    axum::extract::State(app): axum::extract::State<Arc<App>>,
    req: Request<Body>,
) -> Response {
    match tokio::spawn(serve(app, req)).await {
        Ok(response) => response,
        Err(e) => respond(Answer::json(
            500,
            json!({"message": format!("sandbox: {e}")}),
        )),
    }
}

async fn serve(app: Arc<App>, req: Request<Body>) -> Response {
    // Latency counts from the request's arrival, not from when its body was read.
    let arrived = Instant::now();
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let query: HashMap<String, String> = parts
        .uri
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    let body = match axum::body::to_bytes(body, 16 * 1024 * 1024).await {
        Ok(b) => b,
        Err(_) => {
            return respond(Answer::json(
                413,
                json!({"message": "Request body too large"}),
            ))
        }
    };
    let (which, rest) = route(&path);
    if which == Route::Observe {
        if parts.method == Method::POST && rest == "revoke-tokens" {
            // Every issued token stops working at once, as after a key rotation.
            let mut world = app.world();
            world.identity_tokens.clear();
            world.cr_tokens.clear();
            return respond(Answer::json(200, json!({"revoked": true})));
        }
        return respond(observe(&app, rest, &query));
    }
    let call = Call {
        method: &parts.method,
        path: rest,
        query,
        headers: &parts.headers,
        body: &body,
    };
    let plan = app.faults.plan(&app.config.faults, which, &parts.method);
    if !plan.latency.is_zero() {
        app.delays.until(arrived + plan.latency).await;
    }
    if let Some(answer) = plan.refuse {
        app.record(&parts.method, &path, answer.status);
        return respond(answer);
    }
    let answer = {
        let mut world = app.world();
        match which {
            Route::Hub => hub::handle(&mut world, &app.config, &call),
            Route::Identity => identity::handle(&mut world, &app.config, &call),
            Route::ControlRoom => {
                if plan.conflict {
                    control_room::someone_else_edits(&mut world, rest);
                }
                control_room::handle(&mut world, &app.config, &call)
            }
            _ => Answer::json(404, json!({"message": format!("No route for {path}")})),
        }
    };
    app.record(&parts.method, &path, answer.status);
    if app.capturing.load(std::sync::atomic::Ordering::Relaxed) {
        let headers = parts
            .headers
            .iter()
            .filter(|(name, _)| *name != "host" && *name != "content-length")
            .map(|(name, v)| {
                (
                    name.to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into(),
                )
            })
            .collect();
        let kept = Captured {
            method: parts.method.to_string(),
            target: parts
                .uri
                .path_and_query()
                .map_or(path.clone(), |p| p.to_string()),
            headers,
            body: body.clone(),
            status: answer.status,
        };
        app.captured
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(kept);
    }
    if plan.slow > Duration::ZERO {
        tokio::time::sleep(plan.slow).await;
    }
    if plan.reset {
        // The change is made; only the answer is lost, as when a connection drops.
        return reset_response();
    }
    respond(answer)
}

fn observe(app: &App, what: &str, query: &HashMap<String, String>) -> Answer {
    match what {
        "state" => Answer::json(200, app.world().state()),
        "requests" => {
            let seen = app.seen.lock().unwrap_or_else(|e| e.into_inner());
            let path_filter = query.get("path").map(String::as_str);
            let method_filter = query.get("method").map(|m| m.to_ascii_uppercase());
            let list: Vec<Value> = seen
                .iter()
                .filter(|s| path_filter.is_none_or(|p| s.path.contains(p)))
                .filter(|s| method_filter.as_deref().is_none_or(|m| s.method == m))
                .map(|s| json!({"t_ms": s.at.as_secs_f64() * 1000.0, "method": s.method, "path": s.path, "status": s.status}))
                .collect();
            Answer::json(200, Value::Array(list))
        }
        "stats" => {
            let seen = app.seen.lock().unwrap_or_else(|e| e.into_inner());
            let mut per_second: std::collections::BTreeMap<u64, u64> = Default::default();
            let mut by_status: std::collections::BTreeMap<String, u64> = Default::default();
            for s in seen.iter() {
                *per_second.entry(s.at.as_secs()).or_default() += 1;
                *by_status.entry(s.status.to_string()).or_default() += 1;
            }
            Answer::json(
                200,
                json!({
                    "requests": seen.len(),
                    "by_status": by_status,
                    "per_second": per_second.into_iter().map(|(s, n)| json!([s, n])).collect::<Vec<_>>(),
                }),
            )
        }
        _ => Answer::json(
            404,
            json!({"message": "unknown sandbox endpoint; try /_sandbox/state, /_sandbox/stats or /_sandbox/requests"}),
        ),
    }
}

/// A JWT the way vendors issue them: header, claims, signature (random: the sandbox checks
/// tokens against the ones it issued, not by signature).
pub fn make_jwt(claims: Value) -> String {
    let enc = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = enc.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let body = enc.encode(serde_json::to_vec(&claims).expect("claims serialize"));
    let sig: Vec<u8> = (0..32).map(|_| fastrand::u8(..)).collect();
    format!("{header}.{body}.{}", enc.encode(sig))
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}
