//! The one HTTP client every worker shares: the rate limiter, retries with backoff and jitter,
//! `Retry-After` pausing the whole pool, and token renewal on 401. Platforms build requests and
//! read replies; they never retry or sleep themselves.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use reqwest::blocking::Client;
use reqwest::Method;
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
    pub concurrency: usize,
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            rate: Rate::per_second(10.0),
            retries: 5,
            timeout: Duration::from_secs(30),
            ca_cert: None,
            concurrency: 4,
            backoff_base: Duration::from_millis(500),
            backoff_cap: Duration::from_secs(30),
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
    Transport { message: String, attempts: u32 },
    /// A 401 that renewing the token did not cure: the run must stop.
    Unauthorized { message: String, attempts: u32 },
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

pub struct Http {
    client: Client,
    limiter: Limiter,
    settings: HttpSettings,
    /// Set by a `Retry-After`: no worker sends before this instant.
    paused_until: Mutex<Option<Instant>>,
    log: Option<LogSink>,
    sent: AtomicU64,
}

impl Http {
    pub fn new(settings: HttpSettings, log: Option<LogSink>) -> Result<Self, String> {
        // reqwest is built without a crypto provider of its own; rustls's ring is the one.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout.min(Duration::from_secs(10)))
            .pool_max_idle_per_host(settings.concurrency.max(1))
            .tcp_nodelay(true)
            .user_agent(concat!("bulkedit/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = &settings.ca_cert {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| format!("--ca-cert: not a PEM certificate: {e}"))?;
            if certs.is_empty() {
                return Err("--ca-cert: the file holds no PEM certificate".into());
            }
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let client = builder
            .build()
            .map_err(|e| format!("cannot set up HTTPS: {}", error_chain(&e)))?;
        Ok(Http {
            client,
            limiter: Limiter::new(settings.rate),
            settings,
            paused_until: Mutex::new(None),
            log,
            sent: AtomicU64::new(0),
        })
    }

    /// Requests sent so far, retries included.
    pub fn requests_sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Sends `req`, retrying as the policy says, renewing the token once on a 401.
    pub fn send(&self, req: &Request, auth: &dyn Auth) -> Result<Reply, CallError> {
        let mut attempts = 0u32;
        let mut renewed = false;
        loop {
            self.wait_for_pause();
            self.limiter.wait();
            auth.before_request(self);
            let generation = auth.generation();
            attempts += 1;
            self.sent.fetch_add(1, Ordering::Relaxed);
            let started = Instant::now();
            let result = self.execute(req, auth);
            let retries_left = attempts <= self.settings.retries;
            match result {
                // An untrusted certificate will be as untrusted in a moment: no retry.
                Err(Unanswered {
                    message,
                    tls_refused: true,
                }) => {
                    self.log_line(req, &format!("failed: {message}"), started, attempts);
                    return Err(CallError::Transport { message, attempts });
                }
                Err(Unanswered { message, .. }) => {
                    self.log_line(req, &format!("failed: {message}"), started, attempts);
                    if !retries_left {
                        return Err(CallError::Transport {
                            message: format!("{message} (gave up after {attempts} attempts)"),
                            attempts,
                        });
                    }
                    std::thread::sleep(self.backoff(attempts));
                }
                Ok((status, retry_after, body)) => {
                    self.log_line(req, &status.to_string(), started, attempts);
                    if status == 401 {
                        if !renewed {
                            match auth.renew(self, generation) {
                                Ok(true) => {
                                    renewed = true;
                                    continue;
                                }
                                Ok(false) => {}
                                Err(m) => {
                                    return Err(CallError::Unauthorized {
                                        message: format!("the server refused the credentials and renewing them failed: {m}"),
                                        attempts,
                                    })
                                }
                            }
                        }
                        return Err(CallError::Unauthorized {
                            message: format!(
                                "the server refused the credentials (401){}",
                                short_reason(&body)
                                    .map(|r| format!(": {r}"))
                                    .unwrap_or_default()
                            ),
                            attempts,
                        });
                    }
                    if RETRYABLE.contains(&status) && retries_left {
                        match retry_after {
                            Some(wait) => {
                                self.pause_pool(wait);
                                self.wait_for_pause();
                            }
                            None => std::thread::sleep(self.backoff(attempts)),
                        }
                        continue;
                    }
                    return Ok(Reply {
                        status,
                        body,
                        attempts,
                    });
                }
            }
        }
    }

    fn execute(
        &self,
        req: &Request,
        auth: &dyn Auth,
    ) -> Result<(u16, Option<Duration>, String), Unanswered> {
        let mut builder = self
            .client
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
        let response = builder
            .send()
            .map_err(|e| describe_transport(&e, self.settings.timeout))?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let body = response
            .text()
            .map_err(|e| describe_transport(&e, self.settings.timeout))?;
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

    fn pause_pool(&self, wait: Duration) {
        let until = Instant::now() + wait;
        let mut paused = self.paused_until.lock().unwrap_or_else(|e| e.into_inner());
        if paused.is_none_or(|p| p < until) {
            *paused = Some(until);
        }
    }

    fn wait_for_pause(&self) {
        loop {
            let until = *self.paused_until.lock().unwrap_or_else(|e| e.into_inner());
            match until {
                Some(u) if u > Instant::now() => std::thread::sleep(u - Instant::now()),
                _ => return,
            }
        }
    }

    fn log_line(&self, req: &Request, what: &str, started: Instant, attempt: u32) {
        if let Some(log) = &self.log {
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

/// A request that got no usable answer, and whether TLS itself refused the server (which no
/// retry cures).
struct Unanswered {
    message: String,
    tls_refused: bool,
}

fn describe_transport(e: &reqwest::Error, timeout: Duration) -> Unanswered {
    if e.is_timeout() {
        return Unanswered {
            message: format!("no answer within {} s (timeout)", timeout.as_secs_f64()),
            tls_refused: false,
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
            tls_refused: true,
        };
    }
    Unanswered {
        message: format!("could not reach the server: {chain}"),
        tls_refused: false,
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
