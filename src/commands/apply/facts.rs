//! `--summary-json FILE`: the run's facts for a change ticket or a scheduler that reads them
//! rather than parsing the summary on stderr. Written whether the run finished, stopped or
//! could not start, so a job always finds out what happened.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde_json::{json, Map, Value};

use crate::engine::Status;
use crate::error::Error;
use crate::report::summary::{RunFacts, Summary};

/// What the run learned as it went; what it never reached stays empty.
#[derive(Default)]
pub struct Facts {
    pub platform: Option<String>,
    pub target: Option<String>,
    pub summary: Option<Summary>,
    pub requests: Option<u64>,
    pub report: Option<PathBuf>,
    pub failures: Option<PathBuf>,
    pub undo: Option<PathBuf>,
}

impl Facts {
    /// The JSON document: counts per status, when, how long, how fast, where, and how it
    /// ended.
    pub fn to_json(
        &self,
        dry_run: bool,
        exit_code: i32,
        error: Option<&Error>,
        started: SystemTime,
        took: Duration,
    ) -> Value {
        let time = |t: SystemTime| {
            chrono::DateTime::<chrono::Utc>::from(t)
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        };
        let secs = took.as_secs_f64();
        let path = |p: &Option<PathBuf>| p.as_deref().map(|p| p.display().to_string());
        let mut counts = Map::new();
        let mut rows = 0;
        if let Some(summary) = &self.summary {
            for status in Status::ALL {
                let n = summary.count(status);
                if n > 0 {
                    counts.insert(status.as_str().to_string(), json!(n));
                }
            }
            rows = summary.total();
        }
        json!({
            "platform": self.platform,
            "target": self.target,
            "dry_run": dry_run,
            "started": time(started),
            "ended": time(started + took),
            "duration_seconds": (secs * 1000.0).round() / 1000.0,
            "rows": rows,
            "counts": counts,
            "rows_per_second": if secs > 0.0 { ((rows as f64 / secs) * 10.0).round() / 10.0 } else { 0.0 },
            "requests": self.requests,
            "report": path(&self.report),
            "failures": path(&self.failures),
            "undo": path(&self.undo),
            "exit_code": exit_code,
            "error": error.map(|e| crate::crash::redact(&e.to_string())),
        })
    }

    /// The same facts for a workbook report's first sheet, known once every row is in the
    /// report: `undo`, the undo file the run is about to write.
    pub fn for_workbook(
        &self,
        input: &Path,
        dry_run: bool,
        exit_code: i32,
        started: SystemTime,
        took: Duration,
        undo: Option<PathBuf>,
    ) -> RunFacts {
        RunFacts {
            command: "apply",
            input: input.to_path_buf(),
            platform: self.platform.clone().unwrap_or_default(),
            target: self.target.clone(),
            dry_run: Some(dry_run),
            started,
            took,
            summary: self.summary.clone().unwrap_or_default(),
            requests: self.requests,
            undo,
            exit_code,
        }
    }
}

/// Writes the document whole or not at all.
pub fn write(path: &Path, doc: &Value) -> Result<(), Error> {
    let file = crate::report::AtomicFile::new(path);
    let text = serde_json::to_vec_pretty(doc).expect("JSON of plain values");
    let written = std::fs::write(&file.tmp, text).and_then(|()| file.commit());
    written.map_err(|e| {
        file.abandon();
        Error::output(path, "summary", e)
    })
}
