//! The vendor-neutral machinery that sends rows: the retrying, rate-limited HTTP transport
//! shared by every worker, and the worker pool that turns rows into outcomes.

pub mod http;
pub mod pool;
pub mod rate;

use std::fmt;

pub use http::{Auth, CallError, Http, HttpSettings, Reply, Request};
pub use rate::Rate;

/// What became of one input row; the report's `status` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Status {
    Valid,
    Invalid,
    Updated,
    Unchanged,
    WouldUpdate,
    /// `--create`: the user did not exist and was (would be) created.
    Created,
    WouldCreate,
    /// `--deactivate-missing`: an active user missing from the roster.
    Deactivated,
    WouldDeactivate,
    /// A plan's row whose user moved since the plan was made: nothing sent.
    Drifted,
    NotFound,
    Failed,
    Skipped,
}

impl Status {
    pub const ALL: [Status; 13] = [
        Status::Valid,
        Status::Invalid,
        Status::Updated,
        Status::Unchanged,
        Status::WouldUpdate,
        Status::Created,
        Status::WouldCreate,
        Status::Deactivated,
        Status::WouldDeactivate,
        Status::Drifted,
        Status::NotFound,
        Status::Failed,
        Status::Skipped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Valid => "valid",
            Status::Invalid => "invalid",
            Status::Updated => "updated",
            Status::Unchanged => "unchanged",
            Status::WouldUpdate => "would-update",
            Status::Created => "created",
            Status::WouldCreate => "would-create",
            Status::Deactivated => "deactivated",
            Status::WouldDeactivate => "would-deactivate",
            Status::Drifted => "drifted",
            Status::NotFound => "not-found",
            Status::Failed => "failed",
            Status::Skipped => "skipped",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Rows in these states go to the failures file, to be fixed and run again.
    pub fn needs_attention(self) -> bool {
        matches!(
            self,
            Status::Invalid | Status::NotFound | Status::Failed | Status::Skipped
        )
    }

    /// The row changed something on the server.
    pub fn is_write(self) -> bool {
        matches!(
            self,
            Status::Updated | Status::Created | Status::Deactivated
        )
    }

    /// `--resume` does not send these again: a user created once is never created twice.
    pub fn is_done(self) -> bool {
        matches!(
            self,
            Status::Updated | Status::Unchanged | Status::Created | Status::Deactivated
        )
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One field a row changed (or would change), as cells of an input sheet: `field` is the field
/// table's name (the column `template` writes), `before` and `after` the values in the form
/// `apply` reads them back (an empty `before` was empty on the server). The report's `changes`
/// column shows these; the undo file and a plan's drift check read them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldChange {
    pub field: String,
    pub before: String,
    pub after: String,
    /// A value never shown or put back (a password): only that it changes.
    pub hidden: bool,
}

/// One row's result, as the report shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub status: Status,
    /// What went wrong, and only that.
    pub error: String,
    /// What the row changes (or would), field by field.
    pub changes: Vec<FieldChange>,
    pub http_status: Option<u16>,
    /// HTTP requests sent for this row, reads and retries included.
    pub attempts: u32,
    /// Set when the run must stop after this row, and why (a second 401, a pause too long).
    pub stops_run: Option<pool::StopReason>,
}

impl Outcome {
    pub fn new(status: Status) -> Self {
        Outcome {
            status,
            error: String::new(),
            changes: Vec::new(),
            http_status: None,
            attempts: 0,
            stops_run: None,
        }
    }

    pub fn with_error(status: Status, error: impl Into<String>) -> Self {
        Outcome {
            error: error.into(),
            ..Outcome::new(status)
        }
    }

    /// The last HTTP status seen for this row; none when no request was needed (a user found
    /// in the list read up front).
    pub fn http(mut self, status: u16, attempts: u32) -> Self {
        if attempts > 0 {
            self.http_status = Some(status);
        }
        self.attempts = attempts;
        self
    }

    /// A transport call that did not produce a usable answer.
    pub fn from_call_error(e: CallError, attempts_before: u32) -> Self {
        match e {
            CallError::Transport {
                message, attempts, ..
            } => Outcome {
                attempts: attempts_before + attempts,
                ..Outcome::with_error(Status::Failed, message)
            },
            CallError::Unauthorized { message, attempts } => Outcome {
                attempts: attempts_before + attempts,
                http_status: Some(401),
                stops_run: Some(pool::StopReason::Auth),
                ..Outcome::with_error(Status::Failed, message)
            },
            e @ CallError::PauseTooLong { attempts, .. } => Outcome {
                attempts: attempts_before + attempts,
                http_status: Some(429),
                stops_run: Some(pool::StopReason::ServerPause),
                ..Outcome::with_error(Status::Failed, e.to_string())
            },
            CallError::Interrupted { attempts } => Outcome {
                attempts: attempts_before + attempts,
                stops_run: Some(pool::StopReason::Interrupted),
                ..Outcome::with_error(Status::Skipped, "not sent: the run was interrupted")
            },
        }
    }
}
