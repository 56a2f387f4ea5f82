//! The end-of-run summary on stderr: counts per status, the most common errors, time, rate and
//! where the reports are.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::engine::{Outcome, Status};
use crate::rules::FieldError;

/// What a workbook report's first sheet says of the run: the facts `apply --summary-json`
/// writes, as far as the command that ran knows them. Plain values, so that the report needs
/// nothing of the commands.
#[derive(Debug, Clone)]
pub struct RunFacts {
    /// The command that ran: `apply` or `validate`.
    pub command: &'static str,
    pub input: PathBuf,
    pub platform: String,
    /// Where the rows went (`apply`): the service's address, or `sandbox`.
    pub target: Option<String>,
    /// Whether nothing was written (`apply`).
    pub dry_run: Option<bool>,
    pub started: SystemTime,
    pub took: Duration,
    pub summary: Summary,
    /// HTTP requests sent (`apply`).
    pub requests: Option<u64>,
    /// The undo file, when the run wrote one.
    pub undo: Option<PathBuf>,
    pub exit_code: i32,
}

/// Distinct error texts kept for "most common errors"; more would only cost memory.
const MAX_DISTINCT: usize = 10_000;

#[derive(Debug, Default, Clone)]
pub struct Summary {
    counts: [u64; Status::ALL.len()],
    errors: HashMap<String, u64>,
}

impl Summary {
    #[inline]
    pub fn add(&mut self, outcome: &Outcome, field_errors: &[FieldError]) {
        self.counts[outcome.status as usize] += 1;
        if field_errors.is_empty() {
            if outcome.status.needs_attention() && !outcome.error.is_empty() {
                self.count_error(&outcome.error);
            }
        } else {
            for e in field_errors {
                self.count_error(&e.to_string());
            }
        }
    }

    /// Adds the counts of another summary, as if its rows had been added after this one's.
    pub fn merge(&mut self, other: &Summary) {
        for (mine, theirs) in self.counts.iter_mut().zip(other.counts) {
            *mine += theirs;
        }
        for (text, n) in &other.errors {
            self.count_error_times(text, *n);
        }
    }

    fn count_error(&mut self, text: &str) {
        // Rows naming the same user differ only in which rows they name: one line for all.
        let grouped;
        let text = match text.find("the same user is also on row") {
            Some(i) => {
                grouped = format!("{}the same user is on more than one row", &text[..i]);
                grouped.as_str()
            }
            None => text,
        };
        self.count_error_times(text, 1);
    }

    fn count_error_times(&mut self, text: &str, times: u64) {
        if let Some(n) = self.errors.get_mut(text) {
            *n += times;
        } else if self.errors.len() < MAX_DISTINCT {
            self.errors.insert(text.to_string(), times);
        }
    }

    pub fn count(&self, status: Status) -> u64 {
        self.counts[status as usize]
    }

    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Exit code 1 when any row needs attention (invalid, not-found, failed); skipped rows are
    /// the caller's business (they mean the run stopped).
    pub fn any_problem(&self) -> bool {
        [
            Status::Invalid,
            Status::NotFound,
            Status::Failed,
            Status::Drifted,
        ]
        .iter()
        .any(|s| self.count(*s) > 0)
    }

    pub fn top_errors(&self, n: usize) -> Vec<(&str, u64)> {
        let mut v: Vec<(&str, u64)> = self.errors.iter().map(|(k, c)| (k.as_str(), *c)).collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        v.truncate(n);
        v
    }

    /// `failures`: the failures file, and what to do with it.
    pub fn render(
        &self,
        elapsed: Duration,
        sent: Option<u64>,
        report: &Path,
        failures: Option<(&Path, &str)>,
    ) -> String {
        let mut out = String::new();
        let total = self.total();
        if total == 0 {
            out.push_str("no data rows: nothing to do\n");
        } else {
            let parts: Vec<String> = Status::ALL
                .iter()
                .filter(|s| self.count(**s) > 0)
                .map(|s| format!("{} {}", self.count(*s), s))
                .collect();
            out.push_str(&format!(
                "{}: {}\n",
                counted(total, "row"),
                parts.join(", ")
            ));
        }
        let top = self.top_errors(5);
        if !top.is_empty() {
            out.push_str("most common errors:\n");
            for (text, n) in top {
                let short: String = text.chars().take(160).collect();
                out.push_str(&format!("  {n:>6}  {short}\n"));
            }
        }
        let secs = elapsed.as_secs_f64();
        match sent {
            Some(requests) if secs > 0.0 => out.push_str(&format!(
                "took {secs:.1} s: {} rows/s, {requests} requests ({}/s)\n",
                format_rate(total as f64 / secs),
                format_rate(requests as f64 / secs)
            )),
            _ => out.push_str(&format!(
                "took {secs:.2} s ({} rows/s)\n",
                format_rate(total as f64 / secs.max(1e-9))
            )),
        }
        out.push_str(&format!("report: {}\n", report.display()));
        if let Some((f, what)) = failures {
            out.push_str(&format!("failures: {} ({what})\n", f.display()));
        }
        out
    }
}

fn format_rate(r: f64) -> String {
    crate::engine::rate::shown(r)
}

/// What the failures file is for, in a sheet's run.
pub const FIX_AND_RUN_AGAIN: &str = "fix these rows and run it again";

/// `1 row`, `2 rows`: a count and its noun, as a person would write them.
pub fn counted(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}
