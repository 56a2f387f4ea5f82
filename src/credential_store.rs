//! The OS credential store as the place a profile's secret is kept: Windows Credential
//! Manager, the macOS Keychain, and on Linux the kernel's key store (keyutils). A profile says
//! `keyring = "client_secret"` (or `token`, `password`, `api_key`); the secret itself is put
//! there with `bulkedit secret set --profile NAME`, under service `bulkedit` and the profile's
//! name as the account, and never touches a file, a command line or shell history.

use crate::error::Error;

/// The service every entry is filed under; the account is the profile's name.
pub const SERVICE: &str = "bulkedit";

/// Which of a platform's secrets a profile keeps in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// hub's Open API or cloud token, or any platform's bearer token (`BULKEDIT_TOKEN`).
    Token,
    /// identity's external application secret (`BULKEDIT_CLIENT_SECRET`).
    ClientSecret,
    /// control-room's password (`BULKEDIT_PASSWORD`).
    Password,
    /// control-room's API key (`BULKEDIT_API_KEY`).
    ApiKey,
}

impl Stored {
    pub const ALL: [Stored; 4] = [
        Stored::Token,
        Stored::ClientSecret,
        Stored::Password,
        Stored::ApiKey,
    ];

    /// The profile's value: `token`, `client_secret`, `password`, `api_key` (`-` for `_`
    /// allowed, any case).
    pub fn parse(text: &str) -> Option<Self> {
        let t = text.trim().to_ascii_lowercase().replace('-', "_");
        Stored::ALL.into_iter().find(|s| s.key() == t)
    }

    pub fn key(self) -> &'static str {
        match self {
            Stored::Token => "token",
            Stored::ClientSecret => "client_secret",
            Stored::Password => "password",
            Stored::ApiKey => "api_key",
        }
    }

    /// What a person calls it.
    pub fn what(self) -> &'static str {
        match self {
            Stored::Token => "token",
            Stored::ClientSecret => "client secret",
            Stored::Password => "password",
            Stored::ApiKey => "API key",
        }
    }

    /// The environment variable it takes the place of.
    pub fn variable(self) -> &'static str {
        match self {
            Stored::Token => "BULKEDIT_TOKEN",
            Stored::ClientSecret => "BULKEDIT_CLIENT_SECRET",
            Stored::Password => "BULKEDIT_PASSWORD",
            Stored::ApiKey => "BULKEDIT_API_KEY",
        }
    }
}

/// A profile's entry in the store: whose, and which secret it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub profile: String,
    pub holds: Stored,
}

/// The store's name on this system, as its users know it.
pub fn store_name() -> &'static str {
    if cfg!(target_os = "windows") {
        "Windows Credential Manager"
    } else if cfg!(target_os = "macos") {
        "the macOS Keychain"
    } else if cfg!(target_os = "linux") {
        "the Linux kernel key store (keyutils)"
    } else {
        "the OS credential store"
    }
}

/// What a person should know of how long the store keeps a secret.
pub fn lifetime() -> Option<&'static str> {
    cfg!(target_os = "linux").then_some(
        "the kernel keeps it in memory, not on disk: it is gone after a reboot, or after a few \
         days in which no run uses it (store it again then)",
    )
}

/// The store's entry for a profile. Only the native stores of Windows, macOS and Linux are
/// built in; elsewhere the `keyring` crate would fall back to a store in memory that forgets
/// everything when bulkedit ends, which is refused rather than pretended.
fn entry(profile: &str) -> Result<keyring::Entry, Error> {
    if !cfg!(any(
        target_os = "windows",
        target_os = "macos",
        target_os = "linux"
    )) {
        return Err(unavailable(
            "bulkedit knows the credential stores of Windows, macOS and Linux only",
        ));
    }
    #[cfg(target_os = "linux")]
    {
        static SESSION: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
        SESSION
            .get_or_init(own_session_keyring)
            .clone()
            .map_err(unavailable)?;
    }
    keyring::Entry::new(SERVICE, profile).map_err(|e| failed(profile, e))
}

/// The `keyring` crate reaches kernel keys through the session keyring, by number. A process
/// started outside a login session (cron, a CI job, a container, a service) has no session
/// keyring of its own: the kernel lends it the user's, whose keys it may add but not read back
/// (keyrings(7), "possession"). Such a process joins a session keyring of its own first, as
/// `pam_keyinit` does at a login. What it stores outlives it in the user's persistent keyring
/// (persistent-keyring(7)), which the crate links every key into and each later run reaches
/// through its own session keyring; without one a stored secret would die with the process,
/// and the store is refused rather than pretended.
#[cfg(target_os = "linux")]
fn own_session_keyring() -> Result<(), String> {
    const GET_KEYRING_ID: libc::c_long = 0;
    const JOIN_SESSION_KEYRING: libc::c_long = 1;
    const GET_PERSISTENT: libc::c_long = 22;
    const SESSION: libc::c_long = -3;
    const USER_SESSION: libc::c_long = -5;
    let keyctl = |op: libc::c_long, a: libc::c_long, b: libc::c_long| {
        // SAFETY: these keyctl operations take integers (or, to join, a null name) and read
        // no memory of this process.
        let r = unsafe { libc::syscall(libc::SYS_keyctl, op, a, b) };
        if r < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(r)
        }
    };
    let kernel = |e: std::io::Error| format!("the kernel's key store answered: {e}");
    let session = keyctl(GET_KEYRING_ID, SESSION, 0).map_err(kernel)?;
    let user_session = keyctl(GET_KEYRING_ID, USER_SESSION, 0).map_err(kernel)?;
    if session != user_session {
        // A login session's keyring: the crate's way works as it is.
        return Ok(());
    }
    keyctl(JOIN_SESSION_KEYRING, 0, 0).map_err(kernel)?;
    keyctl(GET_PERSISTENT, -1, SESSION)
        .map(|_| ())
        .map_err(|e| {
            format!(
                "this process has no login session keyring and the kernel keeps no persistent \
             keyring ({e}), so a secret stored now would be gone when bulkedit ends"
            )
        })
}

fn unavailable(reason: impl std::fmt::Display) -> Error {
    Error::Credentials(format!(
        "the OS credential store is not available here: {reason}. Keep the secret in an \
         environment variable (token_env) or a file only you can read (token_file) instead"
    ))
}

/// An error of the store, in words that never carry the secret (`keyring`'s `BadEncoding`
/// holds its bytes, and `Ambiguous` the entries).
fn failed(profile: &str, e: keyring::Error) -> Error {
    match e {
        keyring::Error::PlatformFailure(why) | keyring::Error::NoStorageAccess(why) => {
            unavailable(format!("{} answered: {why}", store_name()))
        }
        keyring::Error::NoEntry => not_stored(profile),
        keyring::Error::BadEncoding(_) => Error::Credentials(format!(
            "the secret of profile '{profile}' in {} is not text; store it again with \
             bulkedit secret set --profile {profile}",
            store_name()
        )),
        keyring::Error::TooLong(what, limit) => Error::Credentials(format!(
            "{} takes at most {limit} characters for its {what}",
            store_name()
        )),
        keyring::Error::Invalid(what, why) => {
            Error::Credentials(format!("{}: the {what} {why}", store_name()))
        }
        keyring::Error::Ambiguous(found) => Error::Credentials(format!(
            "{} holds {} entries for service {SERVICE}, account {profile}: remove all but one",
            store_name(),
            found.len()
        )),
        other => unavailable(other),
    }
}

fn not_stored(profile: &str) -> Error {
    Error::Credentials(format!(
        "no secret is stored for profile '{profile}' in {} (service {SERVICE}, account \
         {profile}); store it with: bulkedit secret set --profile {profile}",
        store_name()
    ))
}

/// The secret a profile keeps in the store.
pub fn get(entry_of: &Entry) -> Result<String, Error> {
    let profile = entry_of.profile.as_str();
    let secret = entry(profile)?
        .get_password()
        .map_err(|e| failed(profile, e))?;
    let secret = secret.trim().to_string();
    if secret.is_empty() {
        return Err(not_stored(profile));
    }
    Ok(secret)
}

/// Stores (or replaces) a profile's secret.
pub fn set(profile: &str, secret: &str) -> Result<(), Error> {
    entry(profile)?.set_password(secret).map_err(|e| match e {
        // The kernel's store says "no such key" for a key it refused to keep.
        keyring::Error::NoEntry => unavailable(format!("{} refused to keep it", store_name())),
        e => failed(profile, e),
    })
}

/// Removes a profile's secret; `false` when there was none.
pub fn delete(profile: &str) -> Result<bool, Error> {
    match entry(profile)?.delete_credential() {
        Ok(()) => Ok(true),
        Err(keyring::Error::NoEntry) => Ok(false),
        Err(e) => Err(failed(profile, e)),
    }
}

/// Whether a secret is stored for a profile, without reading it out of the store's answer
/// further than to see that it is there.
pub fn is_stored(profile: &str) -> Result<bool, Error> {
    match entry(profile)?.get_password() {
        Ok(secret) => Ok(!secret.trim().is_empty()),
        Err(keyring::Error::NoEntry) => Ok(false),
        Err(e) => Err(failed(profile, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_profile_names_what_the_store_holds_in_the_words_of_the_variables() {
        assert_eq!(Stored::parse("client-secret"), Some(Stored::ClientSecret));
        assert_eq!(Stored::parse(" API_KEY "), Some(Stored::ApiKey));
        assert_eq!(Stored::parse("secret"), None);
        for s in Stored::ALL {
            assert_eq!(Stored::parse(s.key()), Some(s));
            assert!(s.variable().ends_with(&s.key().to_ascii_uppercase()));
        }
    }

    #[test]
    fn a_store_error_never_carries_the_secret() {
        let e = failed(
            "acme",
            keyring::Error::BadEncoding(b"hunter22-bytes".to_vec()),
        );
        assert!(!e.to_string().contains("hunter22"), "{e}");
        assert!(e.to_string().contains("secret set --profile acme"), "{e}");
    }
}
