//! The commands behind the command line, as library functions that tests and benches call.

pub mod apply;
pub mod export;
pub mod secret;
pub mod template;
pub mod validate;

use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use crate::engine::Rate;

use crate::credential_store::{self, Stored};
use crate::error::Error;
use crate::profile::Profile;
use crate::read::{self, Row};

/// How `apply` and `export` reach a server: one set of settings, so both connect the same way
/// and a profile fills both alike.
#[derive(Debug, Clone)]
pub struct Connection {
    pub url: Option<String>,
    pub sandbox: bool,
    /// Requests in flight at once: rows for `apply`, pages for `export`.
    pub concurrency: usize,
    pub rate: Option<Rate>,
    pub retries: u32,
    pub token_file: Option<PathBuf>,
    /// A profile's `token_env`: the variable that holds the token instead of BULKEDIT_TOKEN.
    pub token_env: Option<String>,
    /// A profile's `keyring`: its secret is in the OS credential store.
    pub store: Option<crate::credential_store::Entry>,
    /// A profile's `username` (control-room), in place of BULKEDIT_USERNAME.
    pub username: Option<String>,
    /// A profile's `client_id` (identity), in place of BULKEDIT_CLIENT_ID.
    pub client_id: Option<String>,
    pub partition: Option<String>,
    pub allow_http: bool,
    pub ca_cert: Option<PathBuf>,
    pub verbose: bool,
    pub timeout: Duration,
    /// The longest `Retry-After` waited out; a longer one stops the run.
    pub max_pause: Duration,
}

impl Connection {
    /// Fills what the command line left unsaid from `profile`, and `platform` too.
    /// `given(flag)` says whether a flag with a default (`concurrency`, `allow-http`) was
    /// typed. With `--sandbox` the profile's URL and credential source are left out: a
    /// rehearsal never takes a real tenant's token to the sandbox.
    pub fn fill_from(
        &mut self,
        profile: &Profile,
        platform: &mut Option<String>,
        given: &dyn Fn(&str) -> bool,
    ) {
        fill(platform, &profile.platform);
        fill(&mut self.rate, &profile.rate);
        if let (Some(n), false) = (profile.concurrency, given("concurrency")) {
            self.concurrency = n;
        }
        if self.sandbox {
            return;
        }
        fill(&mut self.url, &profile.url);
        fill(&mut self.partition, &profile.partition);
        fill(&mut self.ca_cert, &profile.ca_cert);
        fill(&mut self.username, &profile.username);
        fill(&mut self.client_id, &profile.client_id);
        if !given("allow_http") {
            self.allow_http |= profile.allow_http.unwrap_or(false);
        }
        // --token-file on the command line wins over each of the profile's sources.
        let typed_token_file = self.token_file.is_some();
        if !typed_token_file {
            self.token_file = profile.token_file.clone();
            self.token_env = profile.token_env.clone();
        }
        self.store = profile
            .keyring
            .filter(|holds| !(typed_token_file && *holds == Stored::Token))
            .map(|holds| credential_store::Entry {
                profile: profile.name.clone(),
                holds,
            });
    }
}

fn fill<T: Clone>(flag: &mut Option<T>, profile: &Option<T>) {
    if flag.is_none() {
        flag.clone_from(profile);
    }
}

impl Default for Connection {
    fn default() -> Self {
        Connection {
            url: None,
            sandbox: false,
            concurrency: 4,
            rate: None,
            retries: 5,
            token_file: None,
            token_env: None,
            store: None,
            username: None,
            client_id: None,
            partition: None,
            allow_http: false,
            ca_cert: None,
            verbose: false,
            timeout: Duration::from_secs(30),
            max_pause: Duration::from_secs(300),
        }
    }
}

/// Where messages for a person go: stderr, quiet or not, around a progress bar if one shows.
pub struct Console {
    pub quiet: bool,
    bar: Mutex<Option<indicatif::ProgressBar>>,
}

impl Console {
    pub fn new(quiet: bool) -> Self {
        Console {
            quiet,
            bar: Mutex::new(None),
        }
    }

    pub fn set_bar(&self, bar: Option<indicatif::ProgressBar>) {
        *self.bar.lock().unwrap_or_else(|e| e.into_inner()) = bar;
    }

    /// A line that must not tear the progress bar.
    pub fn line(&self, text: &str) {
        let bar = self.bar.lock().unwrap_or_else(|e| e.into_inner());
        match bar.as_ref() {
            Some(b) if !b.is_hidden() => b.println(text),
            _ => {
                let _ = writeln!(std::io::stderr().lock(), "{text}");
            }
        }
    }

    pub fn info(&self, text: &str) {
        if !self.quiet {
            self.line(&format!("bulkedit: {text}"));
        }
    }

    pub fn warn(&self, text: &str) {
        self.line(&format!("bulkedit: warning: {text}"));
    }

    /// The end-of-run summary is shown even with `--quiet`: it is the answer.
    pub fn summary(&self, text: &str) {
        let _ = std::io::stderr().lock().write_all(text.as_bytes());
    }
}

/// Reads rows on a thread of their own, a chunk ahead, so parsing overlaps checking. The
/// first chunks are small, so that the workers have rows to send while the rest are read.
pub fn read_ahead(rows: read::Rows) -> impl Iterator<Item = Result<Vec<Row>, Error>> {
    let (tx, rx) = crossbeam_channel::bounded(2);
    std::thread::spawn(move || {
        for chunk in crate::check::chunks(rows, 64) {
            let stop = chunk.is_err();
            if tx.send(chunk).is_err() || stop {
                break;
            }
        }
    });
    rx.into_iter()
}

/// `bulkedit rows`: the header and every row as read, one JSON object a line.
pub fn print_rows(path: &std::path::Path, sheet: Option<&str>) -> Result<(), Error> {
    let opened = crate::check::open_sheet(path, sheet)?;
    let out = std::io::stdout();
    let mut out = std::io::BufWriter::new(out.lock());
    let io = |e: std::io::Error| Error::usage(e.to_string());
    for w in &opened.warnings {
        eprintln!("bulkedit: warning: {w}");
    }
    writeln!(
        out,
        "{}",
        serde_json::json!({"row": opened.header_line, "header": opened.headers, "read_as": opened.description})
    )
    .map_err(io)?;
    for row in opened.rows {
        let row = row?;
        if row.is_blank() {
            continue;
        }
        let mut line = serde_json::json!({"row": row.line, "cells": row.cells.to_vec()});
        if !row.bad_cells.is_empty() {
            line["unreadable"] = serde_json::json!(row.bad_cells);
        }
        writeln!(out, "{line}").map_err(io)?;
    }
    out.flush().map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_store_is_left_out_with_the_sandbox_and_a_typed_token_file_wins_over_a_stored_token() {
        let p = crate::profile::parse(
            std::path::Path::new("config.toml"),
            "[profile.a]\nkeyring = \"token\"\nusername = \"u\"\n",
        )
        .unwrap()
        .remove(0);
        let never = |_: &str| false;
        let mut platform = None;
        let mut c = Connection::default();
        c.fill_from(&p, &mut platform, &never);
        assert_eq!(
            c.store,
            Some(credential_store::Entry {
                profile: "a".into(),
                holds: Stored::Token
            })
        );
        assert_eq!(c.username.as_deref(), Some("u"));
        let mut c = Connection {
            token_file: Some(PathBuf::from("typed.txt")),
            ..Connection::default()
        };
        c.fill_from(&p, &mut platform, &never);
        assert_eq!(c.store, None);
        let mut c = Connection {
            sandbox: true,
            ..Connection::default()
        };
        c.fill_from(&p, &mut platform, &never);
        assert_eq!((c.store, c.username), (None, None));
    }
}
