//! Latency, limits and faults, each set by a flag. Which request gets which fault follows from
//! `--seed` and the request's place in the order of arrival, so a run repeats itself.

use std::collections::VecDeque;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use axum::http::Method;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota};
use serde_json::json;

use super::{Answer, Route};

#[derive(Debug, Clone)]
pub struct Faults {
    pub seed: u64,
    /// Added to every vendor call.
    pub latency: Duration,
    /// A server-side limit in requests per second, answered with 429 and `Retry-After`.
    pub rate: Option<f64>,
    /// Send `Retry-After` as an HTTP date rather than seconds.
    pub retry_after_date: bool,
    /// Fraction of calls answered 502, 503 or 504.
    pub fail_rate: f64,
    /// Fraction of calls answered 429 with `Retry-After: retry_after`.
    pub throttle_rate: f64,
    pub retry_after: Duration,
    /// Fraction of calls whose connection drops after the server acted, before the answer.
    pub reset_rate: f64,
    /// Fraction of calls answered only after `slow` (set it past the client's timeout).
    pub slow_rate: f64,
    pub slow: Duration,
    /// UiPath's published Identity limits: 160 PUT and 300 GET per 5 minutes.
    pub identity_limits: bool,
    /// Fraction of Control Room PUTs that find the user changed by someone else since it was
    /// read: its version moves on and the PUT gets 409.
    pub conflict_rate: f64,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            seed: 0,
            latency: Duration::ZERO,
            rate: None,
            retry_after_date: false,
            fail_rate: 0.0,
            throttle_rate: 0.0,
            retry_after: Duration::from_secs(1),
            reset_rate: 0.0,
            slow_rate: 0.0,
            slow: Duration::from_secs(35),
            identity_limits: false,
            conflict_rate: 0.0,
        }
    }
}

pub const IDENTITY_WINDOW: Duration = Duration::from_secs(300);
pub const IDENTITY_PUT_LIMIT: usize = 160;
pub const IDENTITY_GET_LIMIT: usize = 300;

pub struct FaultState {
    counter: AtomicU64,
    limiter: Option<DefaultDirectRateLimiter>,
    identity_puts: Mutex<VecDeque<Instant>>,
    identity_gets: Mutex<VecDeque<Instant>>,
}

/// What to do to one request.
pub struct Plan {
    pub latency: Duration,
    /// Answer this instead of serving the request.
    pub refuse: Option<Answer>,
    pub reset: bool,
    pub slow: Duration,
    /// Someone else edits the user first (Control Room PUTs).
    pub conflict: bool,
}

/// A well-mixed 64-bit hash (SplitMix64), to draw a number in [0, 1) per request and fault.
fn draw(seed: u64, n: u64, which: u64) -> f64 {
    let mut z = seed
        .wrapping_add(n.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .wrapping_add(which.wrapping_mul(0xD1B5_4A32_D192_ED03));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

impl FaultState {
    pub fn new(faults: &Faults) -> Self {
        let limiter = faults.rate.filter(|r| *r > 0.0).map(|r| {
            let period = Duration::from_secs_f64(1.0 / r);
            // A second's worth of burst: the server tolerates the jitter of a polite client.
            let burst = NonZeroU32::new(r.ceil().max(1.0) as u32).unwrap_or(NonZeroU32::MIN);
            DefaultDirectRateLimiter::direct(
                Quota::with_period(period)
                    .expect("positive")
                    .allow_burst(burst),
            )
        });
        FaultState {
            counter: AtomicU64::new(0),
            limiter,
            identity_puts: Mutex::new(VecDeque::new()),
            identity_gets: Mutex::new(VecDeque::new()),
        }
    }

    fn too_many(&self, faults: &Faults, wait: Duration) -> Answer {
        // Whole seconds, rounded up: a client that obeys never comes back too early.
        let secs = wait.as_secs_f64().ceil() as u64;
        let value = if faults.retry_after_date {
            httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(secs))
        } else {
            secs.to_string()
        };
        Answer::json(
            429,
            json!({"message": "Too Many Requests", "statusCode": 429}),
        )
        .with_header("retry-after", value)
    }

    /// A sliding window of `limit` calls per five minutes.
    fn window(&self, calls: &Mutex<VecDeque<Instant>>, limit: usize) -> Option<Duration> {
        let mut calls = calls.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        while calls
            .front()
            .is_some_and(|t| now.duration_since(*t) >= IDENTITY_WINDOW)
        {
            calls.pop_front();
        }
        if calls.len() >= limit {
            let oldest = *calls.front().expect("the window is full");
            return Some(IDENTITY_WINDOW - now.duration_since(oldest));
        }
        calls.push_back(now);
        None
    }

    pub fn plan(&self, faults: &Faults, route: Route, method: &Method) -> Plan {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let mut plan = Plan {
            latency: faults.latency,
            refuse: None,
            reset: false,
            slow: Duration::ZERO,
            conflict: false,
        };
        if let Some(limiter) = &self.limiter {
            if let Err(not_until) = limiter.check() {
                plan.refuse = Some(self.too_many(
                    faults,
                    not_until.wait_time_from(DefaultClock::default().now()),
                ));
                return plan;
            }
        }
        if faults.identity_limits && route == Route::Identity {
            let wait = match *method {
                Method::PUT => self.window(&self.identity_puts, IDENTITY_PUT_LIMIT),
                Method::GET => self.window(&self.identity_gets, IDENTITY_GET_LIMIT),
                _ => None,
            };
            if let Some(wait) = wait {
                plan.refuse = Some(self.too_many(faults, wait));
                return plan;
            }
        }
        if draw(faults.seed, n, 1) < faults.throttle_rate {
            plan.refuse = Some(self.too_many(faults, faults.retry_after));
            return plan;
        }
        if draw(faults.seed, n, 2) < faults.fail_rate {
            let (status, text) = match (draw(faults.seed, n, 3) * 3.0) as u32 {
                0 => (502, "Bad Gateway"),
                1 => (503, "Service Unavailable"),
                _ => (504, "Gateway Timeout"),
            };
            plan.refuse = Some(Answer {
                status,
                body: format!("<html><body><h1>{status} {text}</h1></body></html>").into_bytes(),
                json: None,
                headers: vec![("content-type", "text/html".into())],
            });
            return plan;
        }
        plan.conflict = route == Route::ControlRoom
            && *method == Method::PUT
            && draw(faults.seed, n, 6) < faults.conflict_rate;
        plan.reset = draw(faults.seed, n, 4) < faults.reset_rate;
        if !plan.reset && draw(faults.seed, n, 5) < faults.slow_rate {
            plan.slow = faults.slow;
        }
        plan
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_are_uniform_enough_and_repeatable() {
        let n = 100_000;
        let hits = (0..n).filter(|i| draw(7, *i, 2) < 0.2).count();
        assert!((19_000..21_000).contains(&hits), "{hits}");
        assert_eq!(draw(7, 42, 1), draw(7, 42, 1));
        assert_ne!(draw(7, 42, 1), draw(8, 42, 1));
    }
}
