//! The one HTTP client every worker shares: the rate limiter, retries with backoff and jitter,
//! `Retry-After` pausing the whole pool, and token renewal on 401. Each thread that sends has
//! connections of its own, driven on that thread while it waits. Platforms build requests and
//! read replies; they never retry or sleep themselves.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime};

use reqwest::{Client, Method};
use serde_json::Value;
use url::Url;

use super::rate::{Limiter, Rate};

/// Statuses worth another try: the server may answer differently in a moment.
pub const RETRYABLE: [u16; 5] = [408, 429, 502, 503, 504];

#[derive(Debug, Clone)]
pub struct HttpSettings {
    pub rate: Rate,
    /// Further tries after the first, for retryable statuses and transport errors.
    pub retries: u32,
    pub timeout: Duration,
    /// A private CA (PEM) trusted beside the system's roots.
    pub ca_cert: Option<Vec<u8>>,
    /// Whether the service is reached over TLS. An `http://` one never is (a redirect is not
    /// followed), so the system's roots, which take milliseconds to load, are not loaded, and
    /// an `https://` request would be refused.
    pub tls: bool,
    pub concurrency: usize,
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
    /// The longest `Retry-After` obeyed; a longer one stops the run instead of sleeping for days.
    pub max_pause: Duration,
    /// The longest answer read; this API's largest (a page of users) is far smaller.
    pub max_body: usize,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            rate: Rate::per_second(10.0),
            retries: 5,
            timeout: Duration::from_secs(30),
            ca_cert: None,
            tls: true,
            concurrency: 4,
            backoff_base: Duration::from_millis(500),
            backoff_cap: Duration::from_secs(30),
            max_pause: Duration::from_secs(300),
            max_body: 64 * 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone)]
pub enum Body {
    Json(Vec<u8>),
    Form(String),
}

#[derive(Debug, Clone)]
pub struct Request {
    pub method: Method,
    pub url: Url,
    pub headers: Vec<(&'static str, String)>,
    pub body: Option<Body>,
}

impl Request {
    pub fn new(method: Method, url: Url) -> Self {
        Request {
            method,
            url,
            headers: Vec::new(),
            body: None,
        }
    }
    pub fn get(url: Url) -> Self {
        Request::new(Method::GET, url)
    }
    pub fn json(mut self, body: &impl serde::Serialize) -> Self {
        self.body = Some(Body::Json(
            serde_json::to_vec(body).expect("JSON values serialize"),
        ));
        self
    }
    pub fn form(mut self, pairs: &[(&str, &str)]) -> Self {
        let encoded = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        self.body = Some(Body::Form(encoded));
        self
    }
}

/// A final answer from the server (after any retries).
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: String,
    /// Requests sent for this call, retries included.
    pub attempts: u32,
    /// An earlier try of this write reached the server and its answer was lost: this answer
    /// may be to a change already made (a refusal to make it twice, say).
    pub after_lost_answer: bool,
}

impl Reply {
    pub fn json(&self) -> Option<Value> {
        serde_json::from_str(&self.body).ok()
    }
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

#[derive(Debug, Clone)]
pub enum CallError {
    /// No answer: connection refused or reset, timeout, TLS failure; retries ran out.
    /// `maybe_applied`: the last try was a write that reached the server before its answer was
    /// lost, so the server may have made the change.
    Transport {
        message: String,
        attempts: u32,
        maybe_applied: bool,
    },
    /// A 401 that renewing the token did not cure: the run must stop.
    Unauthorized { message: String, attempts: u32 },
    /// The server asked every client to wait longer than `--max-pause`: the run must stop.
    PauseTooLong { wait: Duration, attempts: u32 },
    /// Ctrl-C came before this request could start.
    Interrupted { attempts: u32 },
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Transport { message, .. } | CallError::Unauthorized { message, .. } => {
                f.write_str(message)
            }
            CallError::PauseTooLong { wait, .. } => write!(
                f,
                "the server asked to wait {} before any further request, longer than \
                 --max-pause allows; stopping rather than waiting (run again later with \
                 --resume, or raise --max-pause)",
                human_duration(*wait)
            ),
            CallError::Interrupted { .. } => f.write_str("interrupted before the request was sent"),
        }
    }
}

/// How a platform authenticates its requests. Renewal is the platform's business; when to
/// renew (before expiry, once on a 401) is the engine's.
pub trait Auth: Send + Sync {
    /// The headers that carry the current credentials.
    fn headers(&self) -> Vec<(&'static str, String)>;
    /// Changes whenever the token does, so that many workers hitting 401 renew it once.
    fn generation(&self) -> u64 {
        0
    }
    /// Gets a new token after a 401 seen under `seen` generation. `Ok(false)`: the credentials
    /// cannot be renewed (a fixed token).
    fn renew(&self, _http: &Http, _seen: u64) -> Result<bool, String> {
        Ok(false)
    }
    /// Renews a token that is about to expire; called before each request.
    fn before_request(&self, _http: &Http) {}
}

/// An `Auth` for calls that need none (the token endpoints themselves).
pub struct NoAuth;
impl Auth for NoAuth {
    fn headers(&self) -> Vec<(&'static str, String)> {
        Vec::new()
    }
}

pub type LogSink = Arc<dyn Fn(&str) + Send + Sync>;

/// What the client tells the run and hears from it, beside the requests themselves.
#[derive(Clone, Default)]
pub struct Hooks {
    /// `-v`: one line per request.
    pub log: Option<LogSink>,
    /// Lines a person should see whatever the verbosity (a long pause, and why).
    pub notice: Option<LogSink>,
    /// Set by Ctrl-C: no request starts after it, and a pause in progress ends.
    pub interrupted: Arc<AtomicBool>,
}

pub struct Http {
    /// What every thread's connections are made with: the TLS roots, read once.
    tls: rustls::ClientConfig,
    /// Names this client among the connections a thread holds ([`THREAD_CONNECTIONS`]), for
    /// as long as it lives.
    alive: Arc<()>,
    limiter: Limiter,
    settings: HttpSettings,
    /// Set by a `Retry-After`: no worker starts a request before this instant.
    paused_until: Mutex<Option<Instant>>,
    hooks: Hooks,
    sent: AtomicU64,
}

/// A pause longer than this is announced, so that a run that seems stuck says why.
const ANNOUNCED_PAUSE: Duration = Duration::from_secs(5);

impl Http {
    /// The rate every request of this client keeps to.
    pub fn rate(&self) -> Rate {
        self.settings.rate
    }

    pub fn new(settings: HttpSettings, hooks: Hooks) -> Result<Self, String> {
        let tls = tls_config(&settings)?;
        // Made once now, so that a setting that cannot be used is said before any row is read.
        Connections::new(&settings, &tls)?;
        Ok(Http {
            tls,
            alive: Arc::new(()),
            limiter: Limiter::new(settings.rate),
            settings,
            paused_until: Mutex::new(None),
            hooks,
            sent: AtomicU64::new(0),
        })
    }

    /// Requests sent so far, retries included.
    pub fn requests_sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    fn interrupted(&self) -> bool {
        self.hooks.interrupted.load(Ordering::SeqCst)
    }

    /// Sends `req`, retrying as the policy says, renewing the token once on a 401.
    pub fn send(&self, req: &Request, auth: &dyn Auth) -> Result<Reply, CallError> {
        let mut attempts = 0u32;
        let mut renewed = false;
        let mut lost_answer = false;
        loop {
            // After Ctrl-C no request starts; one that waits out a pause is given up too
            // (nothing of it reached the server, or the server asked it to wait).
            if self.interrupted() || !self.wait_for_turn() {
                return Err(CallError::Interrupted { attempts });
            }
            auth.before_request(self);
            let generation = auth.generation();
            attempts += 1;
            self.sent.fetch_add(1, Ordering::Relaxed);
            let started = Instant::now();
            let result = self.execute(req, auth);
            let retries_left = attempts <= self.settings.retries;
            let (status, retry_after, body) = match result {
                Ok(answer) => answer,
                // An untrusted certificate or a redirect is the same in a moment: no retry.
                Err(Unanswered {
                    message,
                    final_: true,
                    maybe_applied,
                }) => {
                    self.log_line(req, &format!("failed: {message}"), started, attempts);
                    return Err(CallError::Transport {
                        message,
                        attempts,
                        maybe_applied,
                    });
                }
                Err(Unanswered {
                    message,
                    maybe_applied,
                    ..
                }) => {
                    self.log_line(req, &format!("failed: {message}"), started, attempts);
                    lost_answer |= maybe_applied;
                    if !retries_left {
                        return Err(CallError::Transport {
                            message: format!("{message} (gave up after {attempts} attempts)"),
                            attempts,
                            maybe_applied,
                        });
                    }
                    std::thread::sleep(self.backoff(attempts));
                    continue;
                }
            };
            self.log_line(req, &status.to_string(), started, attempts);
            if status == 401 {
                if renewed {
                    return Err(unauthorized(&body, attempts));
                }
                match auth.renew(self, generation) {
                    Ok(true) => {
                        renewed = true;
                        continue;
                    }
                    Ok(false) => return Err(unauthorized(&body, attempts)),
                    Err(m) => {
                        return Err(CallError::Unauthorized {
                            message: format!(
                                "the server refused the credentials and renewing them failed: {m}"
                            ),
                            attempts,
                        })
                    }
                }
            }
            if RETRYABLE.contains(&status) && retries_left {
                match retry_after {
                    Some(wait) if wait > self.settings.max_pause => {
                        return Err(CallError::PauseTooLong { wait, attempts })
                    }
                    Some(wait) => self.pause_pool(wait, status),
                    None => std::thread::sleep(self.backoff(attempts)),
                }
                continue;
            }
            return Ok(Reply {
                status,
                body,
                attempts,
                after_lost_answer: lost_answer,
            });
        }
    }

    /// This thread's connections for this client, made at its first request from it.
    fn connections(&self) -> Result<Rc<Connections>, Unanswered> {
        THREAD_CONNECTIONS.with(|held| {
            let mut held = held.borrow_mut();
            // Those of a client that is gone are closed.
            held.retain(|(client, _)| client.strong_count() > 0);
            let me = Arc::downgrade(&self.alive);
            if let Some((_, c)) = held.iter().find(|(client, _)| client.ptr_eq(&me)) {
                return Ok(Rc::clone(c));
            }
            let made = Rc::new(
                Connections::new(&self.settings, &self.tls).map_err(|message| Unanswered {
                    message,
                    final_: true,
                    maybe_applied: false,
                })?,
            );
            held.push((me, Rc::clone(&made)));
            Ok(made)
        })
    }

    fn execute(
        &self,
        req: &Request,
        auth: &dyn Auth,
    ) -> Result<(u16, Option<Duration>, String), Unanswered> {
        let connections = self.connections()?;
        connections
            .runtime
            .block_on(self.exchange(&connections.client, req, auth))
    }

    /// One request and its answer, on this thread's connections.
    async fn exchange(
        &self,
        client: &Client,
        req: &Request,
        auth: &dyn Auth,
    ) -> Result<(u16, Option<Duration>, String), Unanswered> {
        let mut builder = client
            .request(req.method.clone(), req.url.clone())
            .header("accept", "application/json");
        for (name, value) in auth.headers().iter().chain(req.headers.iter()) {
            builder = builder.header(*name, value);
        }
        builder = match &req.body {
            Some(Body::Json(bytes)) => builder
                .header("content-type", "application/json")
                .body(bytes.clone()),
            Some(Body::Form(text)) => builder
                .header("content-type", "application/x-www-form-urlencoded")
                .body(text.clone()),
            None => builder,
        };
        let timeout = self.settings.timeout;
        let response = builder
            .send()
            .await
            .map_err(|e| describe_transport(&e, timeout, req))?;
        let status = response.status().as_u16();
        if (300..400).contains(&status) {
            return Err(redirected(status, response.headers()));
        }
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let body = read_capped(response, self.settings.max_body)
            .await
            .map_err(|e| match e {
                // The server had answered: a write was made, only its answer was lost.
                BodyError::Read(io) if req.method != Method::GET => Unanswered {
                    message: format!(
                        "the connection dropped after the request was sent; the server may have \
                     applied it ({io})"
                    ),
                    final_: false,
                    maybe_applied: true,
                },
                e => e.into(),
            })?;
        Ok((status, retry_after, body))
    }

    /// Exponential backoff from the base, doubled per attempt, ±25% jitter, capped.
    pub fn backoff(&self, attempt: u32) -> Duration {
        backoff(
            self.settings.backoff_base,
            self.settings.backoff_cap,
            attempt,
            fastrand::f64(),
        )
    }

    /// Holds every worker back for `wait`, as a `Retry-After` asks (it speaks for the whole
    /// client, not the one request that got it).
    fn pause_pool(&self, wait: Duration, status: u16) {
        // `wait` is at most `max_pause`, so the sum cannot overflow.
        let until = Instant::now() + wait;
        let mut paused = self.paused_until.lock().unwrap_or_else(|e| e.into_inner());
        if paused.is_none_or(|p| p < until) {
            *paused = Some(until);
            if wait >= ANNOUNCED_PAUSE {
                if let Some(notice) = &self.hooks.notice {
                    notice(&format!(
                        "the server answered {status} and asked to wait {}: every request \
                         pauses until then (Ctrl-C stops the run)",
                        human_duration(wait)
                    ));
                }
            }
        }
    }

    /// Waits until this request may start: no pause in force and the rate limiter's go,
    /// checked in that order and again after the limiter (a pause may begin while a request
    /// waits its turn). False when Ctrl-C ended the wait.
    fn wait_for_turn(&self) -> bool {
        loop {
            if !self.wait_for_pause() {
                return false;
            }
            self.limiter.wait();
            if self.pause_left().is_none() {
                return true;
            }
        }
    }

    fn pause_left(&self) -> Option<Duration> {
        let until = (*self.paused_until.lock().unwrap_or_else(|e| e.into_inner()))?;
        until
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
    }

    /// Sleeps out a pause in short steps, so that Ctrl-C ends it. False when it did.
    fn wait_for_pause(&self) -> bool {
        while let Some(left) = self.pause_left() {
            if self.interrupted() {
                return false;
            }
            std::thread::sleep(left.min(Duration::from_millis(100)));
        }
        !self.interrupted()
    }

    fn log_line(&self, req: &Request, what: &str, started: Instant, attempt: u32) {
        if let Some(log) = &self.hooks.log {
            log(&format!(
                "{} {} -> {} in {} ms (attempt {})",
                req.method,
                req.url,
                what,
                started.elapsed().as_millis(),
                attempt
            ));
        }
    }
}

fn unauthorized(body: &str, attempts: u32) -> CallError {
    CallError::Unauthorized {
        message: format!(
            "the server refused the credentials (401){}",
            short_reason(body)
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
        ),
        attempts,
    }
}

/// A 3xx is never followed: the credentials would go along to wherever it points.
fn redirected(status: u16, headers: &reqwest::header::HeaderMap) -> Unanswered {
    let location = headers
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(|l| printable(l).chars().take(300).collect::<String>())
        .unwrap_or_else(|| "nowhere named".into());
    Unanswered {
        message: format!(
            "the server answered {status}, redirecting to {location}; bulkedit follows no \
             redirect, so that no credential goes to an address you did not give: check that \
             --url is the service root (a login page or a proxy answers like this)"
        ),
        final_: true,
        maybe_applied: false,
    }
}

/// The body as text, refusing one longer than `max` bytes rather than holding it all.
async fn read_capped(mut response: reqwest::Response, max: usize) -> Result<String, BodyError> {
    // Sized once from the announced length: a page of a thousand users read into a buffer
    // that doubles as it fills is copied a dozen times, each time into fresh memory.
    let announced = response
        .content_length()
        .unwrap_or(0)
        .min(u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1));
    let mut bytes = Vec::with_capacity(usize::try_from(announced).unwrap_or(0));
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| BodyError::Read(std::io::Error::other(error_chain(&e))))?
    {
        if bytes.len() + chunk.len() > max {
            return Err(BodyError::TooLong(max));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(String::from_utf8(bytes)
        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
}

thread_local! {
    /// The connections this thread sends on, for each client it has sent from (one in a run),
    /// and the event loop that drives them while the thread waits for an answer. Shared by all
    /// threads, one loop handed every request and answer across threads twice, which made each
    /// write slower than wrk's on the same server. They close when the thread ends, so the
    /// threads that read the user list leave no connection open behind them.
    static THREAD_CONNECTIONS: RefCell<Vec<(Weak<()>, Rc<Connections>)>> =
        const { RefCell::new(Vec::new()) };
}

/// One thread's connections to the server, and the event loop that drives them while that
/// thread waits for an answer.
struct Connections {
    runtime: tokio::runtime::Runtime,
    client: Client,
}

impl Connections {
    fn new(settings: &HttpSettings, tls: &rustls::ClientConfig) -> Result<Self, String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(|e| format!("cannot start the HTTP client: {e}"))?;
        let client = Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout.min(Duration::from_secs(10)))
            .pool_max_idle_per_host(settings.concurrency.max(1))
            .tcp_nodelay(true)
            // A redirect would carry the credentials to an address nobody configured.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("bulkedit/", env!("CARGO_PKG_VERSION")))
            .tls_backend_preconfigured(tls.clone())
            .build()
            .map_err(|e| format!("cannot set up HTTPS: {}", error_chain(&e)))?;
        Ok(Connections { runtime, client })
    }
}

/// How the server's certificate is checked: the system's roots (and `--ca-cert`'s), read
/// once for every thread. An `http://` service is never reached over TLS, so its roots are
/// not read at all (and an `https://` answer would be refused).
fn tls_config(settings: &HttpSettings) -> Result<rustls::ClientConfig, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("cannot set up HTTPS: {e}"))?;
    let extra: Vec<CertificateDer<'static>> = match &settings.ca_cert {
        Some(pem) => {
            let certs = CertificateDer::pem_slice_iter(pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("--ca-cert: not a PEM certificate: {e}"))?;
            if certs.is_empty() {
                return Err("--ca-cert: the file holds no PEM certificate".into());
            }
            certs
        }
        None => Vec::new(),
    };
    let config = if !settings.tls && extra.is_empty() {
        builder
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth()
    } else {
        let verifier = if extra.is_empty() {
            rustls_platform_verifier::Verifier::new(provider)
        } else {
            rustls_platform_verifier::Verifier::new_with_extra_roots(extra, provider)
        }
        .map_err(|e| format!("cannot set up HTTPS: {e}"))?;
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth()
    };
    Ok(config)
}

/// `base * 2^(attempt-1)`, times a factor in [0.75, 1.25), capped at `cap`.
pub fn backoff(base: Duration, cap: Duration, attempt: u32, unit_random: f64) -> Duration {
    let exp = base.as_secs_f64() * 2f64.powi(attempt.saturating_sub(1).min(30) as i32);
    let jittered = exp * (0.75 + 0.5 * unit_random);
    Duration::from_secs_f64(jittered.min(cap.as_secs_f64()))
}

/// `Retry-After` as delay-seconds or as an HTTP date.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(
        when.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// A request that got no usable answer, and whether that is final: TLS refused the server, or
/// it redirected elsewhere; no retry cures either.
struct Unanswered {
    message: String,
    final_: bool,
    /// A write reached the server: it may have made the change.
    maybe_applied: bool,
}

/// Why a body could not be read whole.
enum BodyError {
    Read(std::io::Error),
    TooLong(usize),
}

impl From<BodyError> for Unanswered {
    fn from(e: BodyError) -> Self {
        match e {
            BodyError::TooLong(max) => Unanswered {
                message: format!(
                    "the answer is longer than {} MB and was not read (not an answer this API \
                     gives: check --url)",
                    max / (1024 * 1024)
                ),
                final_: true,
                maybe_applied: false,
            },
            BodyError::Read(io) => Unanswered {
                message: format!("the connection dropped while the answer came: {io}"),
                final_: false,
                maybe_applied: false,
            },
        }
    }
}

fn describe_transport(e: &reqwest::Error, timeout: Duration, req: &Request) -> Unanswered {
    // A write that may have reached the server says so: the row's outcome is then unknown
    // rather than simply failed.
    let sent = !e.is_connect() && req.method != Method::GET;
    let may_apply = if sent {
        "; the request was sent and the server may have applied it"
    } else {
        ""
    };
    if e.is_timeout() {
        return Unanswered {
            message: format!(
                "no answer within {} s (timeout){may_apply}",
                timeout.as_secs_f64()
            ),
            final_: false,
            maybe_applied: sent,
        };
    }
    // reqwest's own text names the URL; keep the cause, which is what helps.
    let chain = error_chain(e);
    if tls_refused(e) {
        return Unanswered {
            message: format!(
                "the server's TLS certificate is not trusted ({chain}); if a private CA signed \
                 it, pass that CA with --ca-cert"
            ),
            final_: true,
            maybe_applied: false,
        };
    }
    let message = if sent {
        format!("the connection dropped after the request was sent; the server may have applied it ({chain})")
    } else {
        format!("could not reach the server: {chain}")
    };
    Unanswered {
        message,
        final_: false,
        maybe_applied: sent,
    }
}

/// Server text fit for a terminal or a report cell: control characters (an escape sequence
/// could rewrite the screen) become spaces.
pub fn printable(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// A duration as a person reads it: `45 s`, `3 min 20 s`, `2 h 5 min`.
pub fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=59 => format!("{:.1} s", d.as_secs_f64()),
        60..=3599 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {} min", s / 3600, s % 3600 / 60),
    }
}

/// Whether rustls refused the server's certificate somewhere down the error's causes. An
/// `io::Error`'s `source` skips the error it wraps (and the connector wraps one `io::Error` in
/// another), so those are unwrapped by hand.
fn tls_refused(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(e);
    while let Some(mut err) = next {
        next = err.source();
        while let Some(inner) = err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            err = inner;
        }
        if matches!(
            err.downcast_ref::<rustls::Error>(),
            Some(rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented)
        ) {
            return true;
        }
    }
    false
}

pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

/// A short reason from an error body, whatever its shape.
pub fn short_reason(body: &str) -> Option<String> {
    let v: Value = serde_json::from_str(body).ok()?;
    ["message", "title", "error_description", "error", "details"]
        .iter()
        .find_map(|k| v.get(*k).and_then(Value::as_str).filter(|s| !s.is_empty()))
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server of one keep-alive answer on 127.0.0.1, which then waits for the client to
    /// close the connection: whether it did within `wait`.
    fn closed_after_one_answer(wait: Duration) -> (Url, std::thread::JoinHandle<bool>) {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = Url::parse(&format!("http://{}/", listener.local_addr().unwrap())).unwrap();
        let server = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.ends_with(b"\r\n\r\n") {
                let n = conn.read(&mut buf).unwrap();
                request.extend_from_slice(&buf[..n]);
            }
            conn.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}")
                .unwrap();
            conn.set_read_timeout(Some(wait)).unwrap();
            matches!(conn.read(&mut buf), Ok(0))
        });
        (url, server)
    }

    #[test]
    fn a_thread_that_has_sent_closes_its_connection_when_it_ends() {
        let http = Http::new(
            HttpSettings {
                tls: false,
                ..HttpSettings::default()
            },
            Hooks::default(),
        )
        .unwrap();
        let (url, server) = closed_after_one_answer(Duration::from_secs(10));
        std::thread::scope(|s| {
            s.spawn(|| {
                let reply = http.send(&Request::get(url), &NoAuth).unwrap();
                assert_eq!((reply.status, reply.body.as_str()), (200, "{}"));
            });
        });
        // The client lives on; the thread that sent from it is gone, and so is its connection.
        assert!(server.join().unwrap(), "the connection was left open");
        drop(http);
    }

    #[test]
    fn backoff_doubles_with_jitter_and_caps() {
        let base = Duration::from_millis(500);
        let cap = Duration::from_secs(30);
        assert_eq!(backoff(base, cap, 1, 0.5), Duration::from_millis(500));
        assert_eq!(backoff(base, cap, 2, 0.5), Duration::from_millis(1000));
        assert_eq!(backoff(base, cap, 1, 0.0), Duration::from_millis(375));
        assert!(backoff(base, cap, 1, 0.999) < Duration::from_millis(625));
        assert_eq!(backoff(base, cap, 20, 0.5), cap);
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        assert_eq!(parse_retry_after("7"), Some(Duration::from_secs(7)));
        let later = SystemTime::now() + Duration::from_secs(120);
        let d = parse_retry_after(&httpdate::fmt_http_date(later)).unwrap();
        assert!(d > Duration::from_secs(100) && d <= Duration::from_secs(120));
        let past = httpdate::fmt_http_date(SystemTime::now() - Duration::from_secs(5));
        assert_eq!(parse_retry_after(&past), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon"), None);
    }
}
