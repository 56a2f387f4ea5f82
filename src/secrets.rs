//! Credentials come from the environment or a file, never from a command-line value (other
//! users can read a process's arguments), and never appear in output: everything that leaves
//! the process passes through [`Secrets::redact`].

use std::path::Path;

use crate::error::Error;

#[derive(Clone, Default)]
pub struct Secrets {
    pub token: Option<String>,
    pub app_key: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub api_key: Option<String>,
    pub partition: Option<String>,
}

// Debug must not print the values.
impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secrets { *** }")
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

impl Secrets {
    /// Reads `BULKEDIT_*` variables; `--token-file` takes the place of `BULKEDIT_TOKEN`.
    pub fn from_env(token_file: Option<&Path>) -> Result<Self, Error> {
        let token = match token_file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    Error::Credentials(format!("--token-file {}: cannot read: {e}", path.display()))
                })?;
                let token = text.trim().to_string();
                if token.is_empty() {
                    return Err(Error::Credentials(format!(
                        "--token-file {}: the file is empty",
                        path.display()
                    )));
                }
                Some(token)
            }
            None => env("BULKEDIT_TOKEN"),
        };
        Ok(Secrets {
            token,
            app_key: env("BULKEDIT_APP_KEY"),
            client_id: env("BULKEDIT_CLIENT_ID"),
            client_secret: env("BULKEDIT_CLIENT_SECRET"),
            username: env("BULKEDIT_USERNAME"),
            password: env("BULKEDIT_PASSWORD"),
            api_key: env("BULKEDIT_API_KEY"),
            partition: env("BULKEDIT_PARTITION"),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.token.is_none()
            && self.client_id.is_none()
            && self.client_secret.is_none()
            && self.username.is_none()
            && self.password.is_none()
            && self.api_key.is_none()
    }

    /// Every secret value held, for redaction.
    pub(crate) fn values(&self) -> Vec<&str> {
        [
            &self.token,
            &self.app_key,
            &self.client_secret,
            &self.password,
            &self.api_key,
        ]
        .into_iter()
        .flatten()
        .map(String::as_str)
        // A hub token `{tenant}/{token}`: the token part alone is secret too.
        .chain(
            self.token
                .as_deref()
                .and_then(|t| t.split_once('/'))
                .map(|(_, t)| t),
        )
        .filter(|v| v.len() >= 4)
        .collect()
    }

    /// The text with every secret value replaced by `***`.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for v in self.values() {
            if out.contains(v) {
                out = out.replace(v, "***");
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_hides_every_secret_and_the_token_half_of_a_hub_token() {
        let s = Secrets {
            token: Some("tenant-1/abcdef123".into()),
            password: Some("hunter22".into()),
            ..Secrets::default()
        };
        assert_eq!(s.redact("x tenant-1/abcdef123 y"), "x *** y");
        assert_eq!(s.redact("abcdef123 and hunter22"), "*** and ***");
        assert_eq!(format!("{s:?}"), "Secrets { *** }");
    }
}
