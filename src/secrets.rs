//! Credentials come from the environment, a file or the OS credential store (a profile's
//! `keyring`), never from a command-line value (other users can read a process's arguments),
//! and never appear in output: everything that leaves the process passes through
//! [`Secrets::redact`].

use std::path::Path;
use std::sync::{Arc, Mutex};

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
    /// Tokens the run obtained (a Control Room JWT, an identity access token), shared by
    /// every clone so that whatever redacts knows them as soon as they exist.
    pub learned: Arc<Mutex<Vec<String>>>,
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

/// Where a run's secrets come from besides the `BULKEDIT_*` variables: `--token-file`, and
/// what a profile names (a variable, the OS credential store, a user name or client id).
#[derive(Debug, Default, Clone, Copy)]
pub struct Sources<'a> {
    pub token_file: Option<&'a Path>,
    pub token_env: Option<&'a str>,
    pub store: Option<&'a crate::credential_store::Entry>,
    pub username: Option<&'a str>,
    pub client_id: Option<&'a str>,
}

impl Secrets {
    /// Reads `BULKEDIT_*` variables; `--token-file`, or a profile's `token_env` (the name of
    /// the variable holding this tenant's token), takes the place of `BULKEDIT_TOKEN`; a
    /// profile's secret in the OS credential store takes the place of the variable it is named
    /// for, and its `username` and `client_id` of theirs.
    pub fn gather(sources: &Sources) -> Result<Self, Error> {
        use crate::credential_store::{self, Stored};
        let Sources {
            token_file,
            token_env,
            store,
            username,
            client_id,
        } = *sources;
        // Read from the store once, and only when a profile says so.
        let stored = match store {
            Some(entry) => Some((entry.holds, credential_store::get(entry)?)),
            None => None,
        };
        let from_store = |kind: Stored| {
            stored
                .as_ref()
                .filter(|(holds, _)| *holds == kind)
                .map(|(_, secret)| secret.clone())
        };
        let or_env = |kind: Stored, name: &str| from_store(kind).or_else(|| env(name));
        let given = |value: Option<&str>, name: &str| {
            value
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_string)
                .or_else(|| env(name))
        };
        let token = match (token_file, token_env, from_store(Stored::Token)) {
            (Some(path), _, _) => Some(read_token_file(path)?),
            (None, _, Some(token)) => Some(token),
            // A profile naming a variable that is not set is an error, not a quiet fall back
            // to BULKEDIT_TOKEN, which may hold another tenant's token.
            (None, Some(name), None) => Some(env(name).ok_or_else(|| {
                Error::Credentials(format!(
                    "the profile takes the token from the environment variable {name}, \
                     which is not set (or empty)"
                ))
            })?),
            (None, None, None) => env("BULKEDIT_TOKEN"),
        };
        Ok(Secrets {
            token,
            app_key: env("BULKEDIT_APP_KEY"),
            client_id: given(client_id, "BULKEDIT_CLIENT_ID"),
            client_secret: or_env(Stored::ClientSecret, "BULKEDIT_CLIENT_SECRET"),
            username: given(username, "BULKEDIT_USERNAME"),
            password: or_env(Stored::Password, "BULKEDIT_PASSWORD"),
            api_key: or_env(Stored::ApiKey, "BULKEDIT_API_KEY"),
            partition: env("BULKEDIT_PARTITION"),
            learned: Arc::default(),
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

    /// A token obtained during the run: redacted from now on like a configured secret.
    pub fn learn(&self, value: &str) {
        let mut learned = self.learned.lock().unwrap_or_else(|e| e.into_inner());
        if !learned.iter().any(|v| v == value) {
            learned.push(value.to_string());
        }
    }

    /// Every secret value held, for redaction.
    pub(crate) fn values(&self) -> Vec<String> {
        let learned = self.learned.lock().unwrap_or_else(|e| e.into_inner());
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
        .chain(learned.iter().map(String::as_str))
        .filter(|v| v.len() >= 4)
        .map(str::to_string)
        .collect()
    }

    /// The text with every secret value replaced by `***`, as written and in the forms a
    /// server echoes it in: URL-encoded (a form body, a query) and JSON-escaped.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for v in self.values() {
            for form in encodings(&v) {
                if out.contains(form.as_str()) {
                    out = out.replace(form.as_str(), "***");
                }
            }
        }
        out
    }
}

/// A secret as written, and as URL-encoding and JSON-escaping write it when they differ.
fn encodings(value: &str) -> Vec<String> {
    let mut forms = vec![value.to_string()];
    let form: String = url::form_urlencoded::byte_serialize(value.as_bytes()).collect();
    let path = form.replace('+', "%20");
    let json = serde_json::to_string(value).unwrap_or_default();
    let json = json.get(1..json.len().saturating_sub(1)).unwrap_or("");
    for f in [form.as_str(), path.as_str(), json] {
        if !f.is_empty() && !forms.iter().any(|x| x == f) {
            forms.push(f.to_string());
        }
    }
    forms
}

/// The token in a `--token-file`: one line, a BOM (Notepad writes one) and surrounding
/// whitespace aside. A second line is refused: it is not clear which is the token.
fn read_token_file(path: &Path) -> Result<String, Error> {
    let shown = path.display();
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Credentials(format!("--token-file {shown}: cannot read: {e}")))?;
    let mut lines = text
        .trim_start_matches('\u{feff}')
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty());
    let token = lines
        .next()
        .ok_or_else(|| Error::Credentials(format!("--token-file {shown}: the file is empty")))?;
    if lines.next().is_some() {
        return Err(Error::Credentials(format!(
            "--token-file {shown}: the file holds more than one line; it must hold the token alone"
        )));
    }
    Ok(token.to_string())
}

/// A warning when a token file can be read by other users of the machine.
pub fn token_file_warning(path: &Path) -> Option<String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).ok()?.permissions().mode();
        (mode & 0o077 != 0).then(|| {
            format!(
                "--token-file {}: other users of this machine can read it (mode {:o}); \
                 chmod 600 it",
                path.display(),
                mode & 0o777
            )
        })
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
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

    #[test]
    fn redact_catches_url_encoded_and_json_escaped_forms_and_learned_tokens() {
        let s = Secrets {
            password: Some("p@ss w\"rd/1".into()),
            ..Secrets::default()
        };
        assert_eq!(
            s.redact("password=p%40ss+w%22rd%2F1&x=1"),
            "password=***&x=1"
        );
        assert_eq!(
            s.redact(r#"{"password":"p@ss w\"rd/1"}"#),
            r#"{"password":"***"}"#
        );
        let clone = s.clone();
        s.learn("eyJhbGciOi.jwt-obtained.later");
        assert_eq!(
            clone.redact("token eyJhbGciOi.jwt-obtained.later"),
            "token ***"
        );
    }

    #[test]
    fn a_token_file_may_have_a_bom_and_a_newline_but_not_two_lines() {
        let dir = tempfile::tempdir().unwrap();
        let one = dir.path().join("one");
        std::fs::write(&one, "\u{feff}tenant/token\r\n").unwrap();
        assert_eq!(read_token_file(&one).unwrap(), "tenant/token");
        let two = dir.path().join("two");
        std::fs::write(&two, "tenant/token\nsecond\n").unwrap();
        let e = read_token_file(&two).unwrap_err().to_string();
        assert!(e.contains("more than one line") && e.contains("two"), "{e}");
        assert!(!e.contains("tenant/token"), "{e}");
    }
}
