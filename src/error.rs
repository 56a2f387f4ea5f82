//! The program's one error type: what failed, with its context as fields, and the exit code
//! that failure means. Every command returns it; `cli` prints it in one place.

use std::fmt;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The command line asks for something that cannot be done.
    #[error("{0}")]
    Usage(String),
    /// The input cannot be read, or its header cannot be used. `row` is the row a person sees
    /// in Excel, `column` the header of the cell, when the problem has one.
    #[error("{}", Located { path, row: *row, column: column.as_deref(), message })]
    Input {
        path: PathBuf,
        row: Option<u64>,
        column: Option<String>,
        message: String,
    },
    /// The report could not be written in the middle of a run: sending stopped, and what was
    /// sent is in the journal.
    #[error(
        "{}: cannot write the report ({message}); sending stopped. Every outcome known so far \
         is in {}: make room on the disk (or close the file where it is open) and run the same \
         command again with --resume",
        journal.display(),
        journal.display()
    )]
    ReportLost { journal: PathBuf, message: String },
    /// A file the command writes (the report, its failures file, the journal, a template).
    #[error("{}: cannot write the {what}: {message}", path.display())]
    Output {
        path: PathBuf,
        what: &'static str,
        message: String,
    },
    /// `--url` is not an address the run may send to, or does not answer like the platform.
    #[error("{message}")]
    Url { url: String, message: String },
    /// Credentials are missing or unreadable on this machine.
    #[error("{0}")]
    Credentials(String),
    /// The server refused the credentials or their permissions.
    #[error("{0}")]
    Authentication(String),
    /// The server answered, but not with what the run needs to start (a list it cannot read).
    #[error("{message}")]
    Server { url: String, message: String },
    /// The configuration file (profiles) cannot be used: named with the line and key, so it
    /// can be fixed in a text editor. The message never repeats a value (it may be a secret).
    #[error("{}", ConfigAt { path, line: *line, key: key.as_deref(), message })]
    Config {
        path: PathBuf,
        line: Option<u64>,
        key: Option<String>,
        message: String,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn usage(message: impl Into<String>) -> Self {
        Error::Usage(message.into())
    }

    pub fn input(path: &Path, message: impl Into<String>) -> Self {
        Error::Input {
            path: path.to_path_buf(),
            row: None,
            column: None,
            message: message.into(),
        }
    }

    pub fn report(path: &Path, e: impl fmt::Display) -> Self {
        Error::output(path, "report", e)
    }

    pub fn output(path: &Path, what: &'static str, e: impl fmt::Display) -> Self {
        Error::Output {
            path: path.to_path_buf(),
            what,
            message: e.to_string(),
        }
    }

    pub fn url(url: impl fmt::Display, message: impl Into<String>) -> Self {
        Error::Url {
            url: url.to_string(),
            message: message.into(),
        }
    }

    pub fn server(url: impl fmt::Display, message: impl Into<String>) -> Self {
        Error::Server {
            url: url.to_string(),
            message: message.into(),
        }
    }

    /// 3: the report was lost mid-run, after rows were sent. 2: anything else, which stops a
    /// command before it sends anything.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::ReportLost { .. } => 3,
            _ => 2,
        }
    }

    /// The same error with every secret in its text replaced: what a server echoed can hold one.
    pub fn redacted(self, redact: impl Fn(&str) -> String) -> Self {
        match self {
            Error::Usage(m) => Error::Usage(redact(&m)),
            Error::Credentials(m) => Error::Credentials(redact(&m)),
            Error::Authentication(m) => Error::Authentication(redact(&m)),
            Error::Url { url, message } => Error::Url {
                url,
                message: redact(&message),
            },
            Error::Server { url, message } => Error::Server {
                url,
                message: redact(&message),
            },
            Error::Input {
                path,
                row,
                column,
                message,
            } => Error::Input {
                path,
                row,
                column,
                message: redact(&message),
            },
            Error::ReportLost { journal, message } => Error::ReportLost {
                journal,
                message: redact(&message),
            },
            Error::Output {
                path,
                what,
                message,
            } => Error::Output {
                path,
                what,
                message: redact(&message),
            },
            Error::Config {
                path,
                line,
                key,
                message,
            } => Error::Config {
                path,
                line,
                key,
                message: redact(&message),
            },
        }
    }
}

/// `file: row 4, column 'Email': message`, each part only when known.
struct Located<'a> {
    path: &'a Path,
    row: Option<u64>,
    column: Option<&'a str>,
    message: &'a str,
}

impl fmt::Display for Located<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.path.display())?;
        match (self.row, self.column) {
            (Some(r), Some(c)) => write!(f, "row {r}, column '{c}': ")?,
            (Some(r), None) => write!(f, "row {r}: ")?,
            (None, Some(c)) => write!(f, "column '{c}': ")?,
            (None, None) => {}
        }
        f.write_str(self.message)
    }
}

/// `config.toml: line 3, key 'token': message`, each part only when known.
struct ConfigAt<'a> {
    path: &'a Path,
    line: Option<u64>,
    key: Option<&'a str>,
    message: &'a str,
}

impl fmt::Display for ConfigAt<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.path.display())?;
        match (self.line, self.key) {
            (Some(l), Some(k)) => write!(f, "line {l}, key '{k}': ")?,
            (Some(l), None) => write!(f, "line {l}: ")?,
            (None, Some(k)) => write!(f, "key '{k}': ")?,
            (None, None) => {}
        }
        f.write_str(self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_input_error_names_the_file_row_and_column_it_knows() {
        let e = Error::Input {
            path: "users.csv".into(),
            row: Some(4),
            column: Some("Email".into()),
            message: "the quote is never closed".into(),
        };
        assert_eq!(
            e.to_string(),
            "users.csv: row 4, column 'Email': the quote is never closed"
        );
        assert_eq!(
            Error::input(Path::new("users.csv"), "cannot open").to_string(),
            "users.csv: cannot open"
        );
        assert_eq!(e.exit_code(), 2);
    }

    #[test]
    fn only_a_report_lost_after_sending_exits_3_and_all_else_2() {
        let lost = Error::ReportLost {
            journal: "r.csv".into(),
            message: "disk full".into(),
        };
        assert_eq!(lost.exit_code(), 3);
        assert!(lost.to_string().contains("--resume"), "{lost}");
        for e in [
            Error::Authentication("401".into()),
            Error::server("https://x", "cannot list"),
            Error::usage("x"),
            Error::Credentials("x".into()),
            Error::url("https://x", "x"),
            Error::report(Path::new("r.csv"), "disk full"),
        ] {
            assert_eq!(e.exit_code(), 2, "{e:?}");
        }
    }
}
