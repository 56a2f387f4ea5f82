//! `bulkedit secret set|check|delete --profile NAME`: a profile's secret put into, looked
//! for in, or taken out of the OS credential store. The secret is typed at a prompt that does
//! not show it, or piped on standard input: never on a command line (other users can read a
//! process's arguments), in a file or in shell history. Nothing here ever prints it.

use std::io::{IsTerminal, Read, Write};

use crate::credential_store::{self, Stored, SERVICE};
use crate::error::Error;
use crate::profile;

/// What `bulkedit secret` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Store the profile's secret (typed, or read from standard input), replacing any before.
    Set,
    /// Say whether a secret is stored for the profile.
    Check,
    /// Remove the profile's secret from the store.
    Delete,
}

/// Runs `bulkedit secret` and returns the exit code.
pub fn run(action: Action, profile_name: &str) -> Result<i32, Error> {
    let name = profile_name.trim();
    if name.is_empty() {
        return Err(Error::usage(
            "give --profile NAME: the profile whose secret it is",
        ));
    }
    let store = credential_store::store_name();
    let say = |text: String| {
        let _ = writeln!(std::io::stderr().lock(), "bulkedit: {text}");
    };
    match action {
        Action::Set => {
            let holds = stored_kind(name)?;
            let secret = read_secret(name, holds)?;
            credential_store::set(name, &secret)?;
            say(format!(
                "stored the {} of profile '{name}' in {store} (service {SERVICE}, account \
                 {name}){}",
                holds.what(),
                credential_store::lifetime()
                    .map(|l| format!("; {l}"))
                    .unwrap_or_default()
            ));
            Ok(0)
        }
        Action::Check => {
            if credential_store::is_stored(name)? {
                say(format!(
                    "a secret is stored for profile '{name}' in {store} (service {SERVICE}, \
                     account {name})"
                ));
                Ok(0)
            } else {
                Err(Error::Credentials(format!(
                    "no secret is stored for profile '{name}' in {store}; store it with: \
                     bulkedit secret set --profile {name}"
                )))
            }
        }
        Action::Delete => {
            if credential_store::delete(name)? {
                say(format!(
                    "removed the secret of profile '{name}' from {store}"
                ));
            } else {
                say(format!(
                    "no secret was stored for profile '{name}' in {store}: nothing to remove"
                ));
            }
            Ok(0)
        }
    }
}

/// Which secret the profile says the store holds for it: `secret set` asks for that one, by
/// its name, and refuses a profile that does not keep one there (the secret would sit in the
/// store unused while the run looked for it elsewhere).
fn stored_kind(name: &str) -> Result<Stored, Error> {
    let profile = profile::load(name)?;
    profile.keyring.ok_or_else(|| {
        let suggested = match profile.platform.as_deref() {
            Some("identity") => "client_secret",
            Some("control-room") => "api_key\" (or \"password",
            _ => "token",
        };
        let path = profile::config_path()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| "the configuration file".into());
        Error::usage(format!(
            "profile '{name}' does not keep its secret in the OS credential store: add \
             keyring = \"{suggested}\" to [profile.{name}] in {path}, then run this again"
        ))
    })
}

/// The secret, from a prompt that does not echo when a person is at a terminal, else from
/// standard input (one line; a BOM and surrounding whitespace aside).
fn read_secret(name: &str, holds: Stored) -> Result<String, Error> {
    let secret = if std::io::stdin().is_terminal() {
        let term = console::Term::stderr();
        let _ = write!(
            std::io::stderr().lock(),
            "The {} of profile '{name}' (typing is not shown; Enter to finish): ",
            holds.what()
        );
        term.read_secure_line()
            .map_err(|e| Error::usage(format!("cannot read from the terminal: {e}")))?
    } else {
        let mut text = String::new();
        std::io::stdin()
            .lock()
            .read_to_string(&mut text)
            .map_err(|e| {
                Error::usage(format!("cannot read the secret from standard input: {e}"))
            })?;
        let mut lines = text
            .trim_start_matches('\u{feff}')
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty());
        let first = lines.next().unwrap_or("").to_string();
        if lines.next().is_some() {
            return Err(Error::usage(
                "standard input holds more than one line; give the secret alone, on one line",
            ));
        }
        first
    };
    let secret = secret.trim().to_string();
    // A bug that panicked from here on would not show it either.
    crate::crash::hold_secrets(&crate::secrets::Secrets {
        token: Some(secret.clone()),
        ..Default::default()
    });
    if secret.is_empty() {
        return Err(Error::usage(format!(
            "no {} given: nothing was stored",
            holds.what()
        )));
    }
    Ok(secret)
}
