//! Named profiles: one TOML table per tenant holding its connection settings, so an admin with
//! five tenants types `--profile acme` instead of a URL and a rate every time.
//!
//! A profile never holds a secret (the file is often synced, backed up or pasted into a ticket):
//! it may name a token file or the environment variable that holds the token, or say that its
//! secret is in the OS credential store (`keyring`); a key or value that looks like a secret
//! makes the whole file refused, naming the line and key.

use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::de::{DeTable, DeValue};

use crate::credential_store::Stored;
use crate::engine::Rate;
use crate::error::Error;

/// Overrides where the configuration file is read from (and makes tests hermetic).
pub const CONFIG_VAR: &str = "BULKEDIT_CONFIG";

/// What a profile may set. Every key is optional; a flag given on the command line wins.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Profile {
    pub name: String,
    pub platform: Option<String>,
    pub url: Option<String>,
    pub rate: Option<Rate>,
    pub concurrency: Option<usize>,
    pub partition: Option<String>,
    pub token_file: Option<PathBuf>,
    /// The name of an environment variable holding the token, never the token.
    pub token_env: Option<String>,
    pub ca_cert: Option<PathBuf>,
    pub allow_http: Option<bool>,
    /// Which secret of this profile is in the OS credential store (under its name).
    pub keyring: Option<Stored>,
    /// control-room's user name and identity's client id: not secrets, but part of who the
    /// run logs in as, so that a profile with its secret in the store needs nothing else.
    pub username: Option<String>,
    pub client_id: Option<String>,
}

const KEYS: &[&str] = &[
    "platform",
    "url",
    "rate",
    "concurrency",
    "partition",
    "token_file",
    "token_env",
    "ca_cert",
    "allow_http",
    "keyring",
    "username",
    "client_id",
];

/// `<config dir>/bulkedit/config.toml` in the platform's usual place (`~/.config` on Linux and
/// macOS, `%APPDATA%` on Windows), or `BULKEDIT_CONFIG` when set.
pub fn config_path() -> Result<PathBuf, Error> {
    if let Some(p) = std::env::var_os(CONFIG_VAR).filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    use etcetera::BaseStrategy;
    let base = etcetera::choose_base_strategy().map_err(|e| {
        Error::usage(format!(
            "cannot find the configuration directory ({e}); set {CONFIG_VAR} to the file"
        ))
    })?;
    Ok(base.config_dir().join("bulkedit").join("config.toml"))
}

/// Reads the profile `name` from the configuration file.
pub fn load(name: &str) -> Result<Profile, Error> {
    let path = config_path()?;
    let text = std::fs::read_to_string(&path).map_err(|e| {
        Error::usage(format!(
            "profile '{name}': cannot read the configuration file {} ({e}); create it with a \
             [profile.{name}] table (see bulkedit apply --help), or set {CONFIG_VAR}",
            path.display()
        ))
    })?;
    let mut profiles = parse(&path, &text)?;
    match profiles.iter().position(|p| p.name == name) {
        Some(i) => Ok(profiles.swap_remove(i)),
        None => {
            let mut known: Vec<&str> = profiles.iter().map(|p| p.name.as_str()).collect();
            known.sort_unstable();
            Err(Error::usage(format!(
                "no profile '{name}' in {}; {}",
                path.display(),
                if known.is_empty() {
                    "it defines none".to_string()
                } else {
                    format!("the profiles there are: {}", known.join(", "))
                }
            )))
        }
    }
}

/// Every profile in a configuration file, in file order; the whole file is refused at the
/// first key that is unknown, of the wrong type, or looks like a secret.
pub fn parse(path: &Path, text: &str) -> Result<Vec<Profile>, Error> {
    let text = text.trim_start_matches('\u{feff}'); // Notepad's BOM
    let at = |span: Range<usize>, key: Option<&str>, message: String| Error::Config {
        path: path.to_path_buf(),
        line: Some(line_of(text, span.start)),
        key: key.map(str::to_string),
        message,
    };
    let root = DeTable::parse(text).map_err(|e| Error::Config {
        path: path.to_path_buf(),
        line: e.span().map(|s| line_of(text, s.start)),
        key: None,
        message: format!("not valid TOML: {}", e.message().trim()),
    })?;
    // Secrets first, wherever they are: nothing else about the file matters if it holds one.
    refuse_secrets(root.get_ref(), false, &at)?;
    let mut profiles = Vec::new();
    for (key, value) in root.get_ref() {
        if key.get_ref() != "profile" {
            return Err(at(
                key.span(),
                Some(key.get_ref()),
                "unknown key; profiles are tables named [profile.NAME]".into(),
            ));
        }
        let DeValue::Table(table) = value.get_ref() else {
            return Err(at(
                key.span(),
                Some("profile"),
                "must be a table of profiles, [profile.NAME]".into(),
            ));
        };
        for (name, body) in table {
            let name_str = name.get_ref().to_string();
            let DeValue::Table(body) = body.get_ref() else {
                return Err(at(
                    name.span(),
                    Some(&name_str),
                    "a profile is a table: [profile.NAME] with its keys below".into(),
                ));
            };
            profiles.push(profile(name_str, body, &at)?);
        }
    }
    Ok(profiles)
}

fn profile(
    name: String,
    body: &DeTable<'_>,
    at: &impl Fn(Range<usize>, Option<&str>, String) -> Error,
) -> Result<Profile, Error> {
    let mut p = Profile {
        name,
        ..Profile::default()
    };
    for (key, value) in body {
        let k = key.get_ref().as_ref();
        let err = |message: String| at(value.span(), Some(k), message);
        let text = || match value.get_ref() {
            DeValue::String(s) if !s.trim().is_empty() => Ok(s.trim().to_string()),
            _ => Err(err("must be a non-empty string in quotes".into())),
        };
        match k {
            "platform" => {
                let v = text()?;
                if !crate::platform::NAMES.contains(&v.as_str()) {
                    return Err(err(format!(
                        "'{v}' is not a platform (use {})",
                        crate::platform::NAMES.join(", ")
                    )));
                }
                p.platform = Some(v);
            }
            "url" => p.url = Some(text()?),
            "rate" => p.rate = Some(text()?.parse().map_err(err)?),
            "concurrency" => {
                let n = match value.get_ref() {
                    DeValue::Integer(i) if i.radix() == 10 => i.as_str().parse::<usize>().ok(),
                    _ => None,
                };
                p.concurrency = Some(
                    n.filter(|n| (1..=512).contains(n))
                        .ok_or_else(|| err("must be a whole number from 1 to 512".into()))?,
                );
            }
            "partition" => p.partition = Some(text()?),
            "token_file" => p.token_file = Some(PathBuf::from(text()?)),
            "token_env" => {
                let v = text()?;
                if !v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    // The value is not repeated: it may be the token itself, typed here.
                    return Err(err(
                        "is not the name of an environment variable (letters, digits and _); \
                         token_env names the variable that holds the token (like \
                         ACME_HUB_TOKEN), never the token"
                            .into(),
                    ));
                }
                p.token_env = Some(v);
            }
            "ca_cert" => p.ca_cert = Some(PathBuf::from(text()?)),
            "allow_http" => match value.get_ref() {
                DeValue::Boolean(b) => p.allow_http = Some(*b),
                _ => return Err(err("must be true or false".into())),
            },
            "keyring" => {
                let v = text()?;
                p.keyring = Some(Stored::parse(&v).ok_or_else(|| {
                    // The value is not repeated: it may be the secret itself, typed here.
                    err(format!(
                        "says which secret the OS credential store holds for this profile: \
                         token, client_secret, password or api_key; the secret itself goes in \
                         with bulkedit secret set --profile {}",
                        p.name
                    ))
                })?);
            }
            "username" => p.username = Some(text()?),
            "client_id" => p.client_id = Some(text()?),
            _ => {
                return Err(at(
                    key.span(),
                    Some(k),
                    format!("unknown key (a profile may set {})", KEYS.join(", ")),
                ))
            }
        }
    }
    if p.keyring == Some(Stored::Token) && (p.token_file.is_some() || p.token_env.is_some()) {
        // Two sources for one token: refuse rather than pick one the user did not mean.
        return Err(at(
            body.iter()
                .find(|(k, _)| k.get_ref() == "keyring")
                .map_or(0..0, |(_, v)| v.span()),
            Some("keyring"),
            format!(
                "profile '{}' keeps its token in the OS credential store and also names {}; \
                 keep one",
                p.name,
                if p.token_file.is_some() {
                    "a token_file"
                } else {
                    "a token_env"
                }
            ),
        ));
    }
    if p.token_file.is_some() && p.token_env.is_some() {
        // Two sources for one token: refuse rather than pick one the user did not mean.
        return Err(at(
            body.iter()
                .find(|(k, _)| k.get_ref() == "token_env")
                .map_or(0..0, |(_, v)| v.span()),
            Some("token_env"),
            format!(
                "profile '{}' sets both token_file and token_env; keep one",
                p.name
            ),
        ));
    }
    Ok(p)
}

/// Keys whose value would be a secret, however they are spelled (`api-key`, `Client_Secret`).
fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase().replace('-', "_");
    matches!(
        k.as_str(),
        "token" | "access_token" | "api_key" | "apikey" | "app_key" | "bearer"
    ) || k.contains("password")
        || k.contains("secret")
}

/// A JSON Web Token (a Control Room or identity access token): three base64url parts, the
/// first a JSON object (`eyJ` is `{"` encoded).
fn looks_like_jwt(value: &str) -> bool {
    let parts: Vec<&str> = value.trim().split('.').collect();
    parts.len() == 3
        && parts[0].starts_with("eyJ")
        && parts[..2].iter().all(|p| {
            p.len() >= 4
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// `names`: the keys of this table are profiles' names, which say which tenant, not what a
/// value is (`[profile.password-reset]` holds no password); their keys are checked.
fn refuse_secrets(
    table: &DeTable<'_>,
    names: bool,
    at: &impl Fn(Range<usize>, Option<&str>, String) -> Error,
) -> Result<(), Error> {
    const WHY: &str = "a profile never holds a secret; put it in the OS credential store \
                       (keyring = \"token\" and bulkedit secret set --profile NAME), in an \
                       environment variable named by token_env, or in a file named by token_file";
    for (key, value) in table {
        let k = key.get_ref().as_ref();
        if !names && is_secret_key(k) {
            return Err(at(
                key.span(),
                Some(k),
                format!("looks like a secret: {WHY}"),
            ));
        }
        match value.get_ref() {
            DeValue::String(s) if looks_like_jwt(s) => {
                return Err(at(
                    value.span(),
                    Some(k),
                    format!("the value looks like a token (a JWT): {WHY}"),
                ))
            }
            DeValue::Table(t) => refuse_secrets(t, !names && k == "profile", at)?,
            _ => {}
        }
    }
    Ok(())
}

/// The 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> u64 {
    let end = offset.min(text.len());
    1 + text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(text: &str) -> Vec<Profile> {
        parse(Path::new("config.toml"), text).unwrap()
    }

    fn parse_err(text: &str) -> String {
        parse(Path::new("config.toml"), text)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn a_profile_reads_every_connection_setting() {
        let p = parse_ok(
            "[profile.acme]\nplatform = \"hub\"\nurl = \"https://x/automationhub_\"\n\
             rate = \"5/s\"\nconcurrency = 8\npartition = \"p\"\ntoken_env = \"ACME_TOKEN\"\n\
             allow_http = false\n\n[profile.beta]\nplatform = \"identity\"\ntoken_file = \"t.txt\"\n",
        );
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].name, "acme");
        assert_eq!(p[0].platform.as_deref(), Some("hub"));
        assert_eq!(p[0].concurrency, Some(8));
        assert_eq!(p[0].rate, Some("5/s".parse().unwrap()));
        assert_eq!(p[0].token_env.as_deref(), Some("ACME_TOKEN"));
        assert_eq!(p[1].token_file, Some(PathBuf::from("t.txt")));
    }

    #[test]
    fn a_secret_key_is_refused_naming_file_line_and_key() {
        for key in [
            "token",
            "password",
            "client_secret",
            "api_key",
            "API-Key",
            "secret",
        ] {
            let e = parse_err(&format!(
                "[profile.acme]\nplatform = \"hub\"\n{key} = \"hunter22\"\n"
            ));
            assert!(
                e.starts_with(&format!(
                    "config.toml: line 3, key '{key}': looks like a secret"
                )),
                "{e}"
            );
            assert!(!e.contains("hunter22"), "{e}");
        }
    }

    #[test]
    fn a_profile_may_be_named_like_a_secret_but_holds_none() {
        let p = parse_ok("[profile.password-reset]\nplatform = \"hub\"\n");
        assert_eq!(p[0].name, "password-reset");
        let e = parse_err("[profile.password-reset]\npassword = \"hunter22\"\n");
        assert!(e.contains("line 2, key 'password'"), "{e}");
    }

    #[test]
    fn a_jwt_under_any_key_is_refused() {
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl";
        let e = parse_err(&format!("[profile.acme]\n\nurl = \"{jwt}\"\n"));
        assert!(e.contains("line 3, key 'url'") && e.contains("JWT"), "{e}");
        assert!(!e.contains(jwt), "{e}");
    }

    #[test]
    fn a_profile_may_keep_its_secret_in_the_os_credential_store_but_never_name_it_there() {
        let p = parse_ok(
            "[profile.cr]\nplatform = \"control-room\"\nusername = \"svc-bulk\"\n\
             keyring = \"API-Key\"\n[profile.id]\nclient_id = \"app\"\nkeyring = \"client_secret\"\n",
        );
        assert_eq!(p[0].keyring, Some(Stored::ApiKey));
        assert_eq!(p[0].username.as_deref(), Some("svc-bulk"));
        assert_eq!(p[1].keyring, Some(Stored::ClientSecret));
        assert_eq!(p[1].client_id.as_deref(), Some("app"));
        // The value says which secret, and is never repeated: it may be the secret itself.
        let e = parse_err("[profile.a]\nkeyring = \"hunter22-value\"\n");
        assert!(e.contains("line 2, key 'keyring'"), "{e}");
        assert!(!e.contains("hunter22"), "{e}");
        // One token from two places is refused.
        let e = parse_err("[profile.a]\ntoken_env = \"A_TOKEN\"\nkeyring = \"token\"\n");
        assert!(e.contains("key 'keyring'") && e.contains("keep one"), "{e}");
    }

    #[test]
    fn wrong_types_and_unknown_keys_name_their_line() {
        let e = parse_err("[profile.a]\nconcurrency = \"many\"\n");
        assert!(e.contains("line 2, key 'concurrency'"), "{e}");
        let e = parse_err("[profile.a]\nplatform = \"uipath\"\n");
        assert!(e.contains("'uipath' is not a platform"), "{e}");
        let e = parse_err("[profile.a]\n\nrtae = \"5/s\"\n");
        assert!(e.contains("line 3, key 'rtae': unknown key"), "{e}");
        let e = parse_err("[profile.a]\ntoken_env = \"abc def\"\n");
        assert!(e.contains("not the name of an environment variable"), "{e}");
        // A token typed where its variable's name goes is not shown back.
        let e = parse_err("[profile.a]\ntoken_env = \"acme-tenant/Xk9f.2Qz\"\n");
        assert!(e.contains("line 2, key 'token_env'"), "{e}");
        assert!(!e.contains("Xk9f"), "{e}");
        let e = parse_err("[profile.a\n");
        assert!(
            e.contains("config.toml: line 1") && e.contains("TOML"),
            "{e}"
        );
    }
}
