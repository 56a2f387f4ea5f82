//! A bearer token that expires and can be renewed, shared by every worker: renewed once when
//! many workers see it fail, and ahead of expiry so that a long run never hits a dead token.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub struct Token {
    pub value: String,
    /// How long it lives from now, when known.
    pub lifetime: Option<Duration>,
}

impl Token {
    /// A token whose lifetime is the JWT's: `exp - iat` counted from when it was received, so
    /// that a local clock off from the server's does not shorten it (or renew it before every
    /// request); `exp` against the local clock only when the token has no `iat`.
    pub fn from_jwt(value: String) -> Self {
        let claims = super::jwt_claims(&value);
        let claim = |name: &str| {
            claims
                .as_ref()
                .and_then(|c| c.get(name).and_then(serde_json::Value::as_u64))
        };
        let lifetime = match (claim("iat"), claim("exp")) {
            (Some(iat), Some(exp)) => Some(Duration::from_secs(exp.saturating_sub(iat))),
            (None, Some(exp)) => {
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_secs();
                Some(Duration::from_secs(exp.saturating_sub(now)))
            }
            _ => None,
        };
        Token { value, lifetime }
    }
}

struct State {
    value: String,
    expires: Option<Instant>,
    lifetime: Option<Duration>,
}

pub struct RenewingToken {
    state: RwLock<State>,
    generation: AtomicU64,
    renewing: Mutex<()>,
    /// Told every token obtained, so that a server echoing one is redacted.
    secrets: Option<crate::secrets::Secrets>,
}

impl RenewingToken {
    pub fn new(token: Token) -> Self {
        RenewingToken {
            state: RwLock::new(State {
                value: token.value,
                expires: token.lifetime.map(|l| Instant::now() + l),
                lifetime: token.lifetime,
            }),
            generation: AtomicU64::new(0),
            renewing: Mutex::new(()),
            secrets: None,
        }
    }

    /// Tells `secrets` this token and every one it is renewed with.
    pub fn learning(mut self, secrets: crate::secrets::Secrets) -> Self {
        secrets.learn(&self.value());
        self.secrets = Some(secrets);
        self
    }

    pub fn value(&self) -> String {
        self.state
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .value
            .clone()
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Within the last quarter of its life (at most the last minute).
    pub fn expiring_soon(&self) -> bool {
        let s = self.state.read().unwrap_or_else(|e| e.into_inner());
        match (s.expires, s.lifetime) {
            (Some(expires), Some(lifetime)) => {
                let margin = (lifetime / 4).min(Duration::from_secs(60));
                Instant::now() + margin >= expires
            }
            _ => false,
        }
    }

    /// Replaces the token with what `fetch` returns, unless another worker already replaced
    /// the one seen at `seen`.
    pub fn renew(
        &self,
        seen: u64,
        fetch: impl FnOnce(&str) -> Result<Token, String>,
    ) -> Result<bool, String> {
        let _one_at_a_time = self.renewing.lock().unwrap_or_else(|e| e.into_inner());
        if self.generation() != seen {
            return Ok(true);
        }
        let old = self.value();
        let token = fetch(&old)?;
        if let Some(secrets) = &self.secrets {
            secrets.learn(&token.value);
        }
        let mut s = self.state.write().unwrap_or_else(|e| e.into_inner());
        s.value = token.value;
        s.expires = token.lifetime.map(|l| Instant::now() + l);
        s.lifetime = token.lifetime;
        self.generation.fetch_add(1, Ordering::AcqRel);
        Ok(true)
    }
}
