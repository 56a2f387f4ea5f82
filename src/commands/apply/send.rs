//! The sending pass: every row of the file, in order, goes either to a worker (a valid row
//! while the run goes on) or straight to the journal (invalid, duplicate, or after a stop).
//! Three kinds of thread: this one reads and dispatches, the pool's workers carry rows out,
//! and one writer journals each outcome as it arrives.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};

use crossbeam_channel::{bounded, Receiver, Sender};

use crate::check::{self, verdict};
use crate::engine::http::printable;
use crate::engine::pool::{self, Stop, StopReason};
use crate::engine::{FieldChange, Outcome, Status};
use crate::error::Error;
use crate::platform::Edit;
use crate::read::{self, Cells, Row};
use crate::report::journal::{Journal, Resumed, Sending};
use crate::report::summary::Summary;
use crate::report::{self, ReportRow};
use crate::rules::FieldError;

use super::prepare::{Connected, Survey, Target};
use super::progress::Progress;
use super::{stop_message, ApplyArgs};
use crate::commands::read_ahead;

/// A valid row on its way to a worker, or a user missing from the roster.
struct Job {
    line: u64,
    cells: Cells,
    edit: Edit,
    /// A user `--deactivate-missing` deactivates, not a row of the file.
    leaver: bool,
}

/// A row's outcome on its way to the journal.
struct Done {
    line: u64,
    cells: Cells,
    outcome: Outcome,
    errors: Vec<FieldError>,
}

/// What `--resume` did with the rows an earlier run had seen.
#[derive(Debug, Default, Clone, Copy)]
pub struct ResumeCounts {
    /// Rows finished earlier, with the same cells: not sent again.
    pub carried: u64,
    /// Rows finished earlier under this row number whose cells changed since: sent again.
    pub sent_again: u64,
}

/// What the sending pass leaves for the final report.
pub struct Sent {
    pub summary: Summary,
    pub resumed: ResumeCounts,
    /// The broken cells of invalid rows, kept only for a workbook report, which marks them
    /// (a CSV report's `error` column already says it all).
    pub field_errors: HashMap<u64, Vec<FieldError>>,
}

/// Everything the workers and the dispatcher share.
pub struct Run<'a> {
    pub args: &'a ApplyArgs,
    /// Where each write is noted before it is sent.
    pub sending: &'a Sending,
    pub survey: &'a Survey,
    pub target: &'a Target,
    pub connected: &'a Connected,
    pub stop: &'a Stop,
    pub interrupted: &'a AtomicBool,
}

impl Run<'_> {
    fn skipped(&self, why: StopReason) -> Outcome {
        Outcome::with_error(Status::Skipped, stop_message(why))
    }

    /// One valid row through the platform's session.
    fn carry_out(&self, job: &Job, panic_row: Option<u64>) -> Outcome {
        let Some(session) = self.connected.session.as_deref() else {
            return self.skipped(self.stop.reason());
        };
        if panic_row == Some(job.line) {
            panic!(
                "test panic holding {}",
                self.target.secrets.values().join(" ")
            );
        }
        let before_write = |status, changes: &[FieldChange]| {
            let line = Outcome {
                changes: changes.to_vec(),
                ..Outcome::new(status)
            };
            self.sending
                .note(&ReportRow {
                    line: job.line,
                    outcome: &line,
                    cells: &job.cells,
                    field_errors: &[],
                })
                .map_err(|e| {
                    format!(
                        "not sent: the note of this write could not be kept in {} ({e})",
                        self.sending.path.display()
                    )
                })
        };
        let mut outcome = if job.leaver {
            session.deactivate(&job.edit, self.args.dry_run, &before_write)
        } else {
            session.apply(&job.edit, job.line, self.args.dry_run, &before_write)
        };
        if !job.leaver {
            let survey = self.survey;
            if let Some(earlier) = survey
                .earlier
                .in_flight(&survey.columns, job.line, &job.cells)
            {
                outcome = made_earlier(outcome, earlier);
            }
        }
        outcome.error = shown(&self.target.secrets.redact(&outcome.error));
        outcome
    }
}

/// A row an earlier attempt was writing when it stopped without the answer: when the user is
/// now as the row wants it, that write was made, and the row says what it did (so the undo
/// file puts it back). A user it was creating exists now: still `created`, whatever this
/// attempt had left to change.
fn made_earlier(now: Outcome, earlier: &Outcome) -> Outcome {
    let made = matches!(
        (earlier.status, now.status),
        (Status::Created, Status::Unchanged | Status::Updated) | (_, Status::Unchanged)
    );
    if !made {
        return now;
    }
    Outcome {
        status: earlier.status,
        changes: earlier.changes.clone(),
        ..now
    }
}

/// Sends every row not already done, journaling each outcome as it arrives.
pub fn send(run: &Run, journal: &mut Journal, progress: &Progress) -> Result<Sent, Error> {
    let args = run.args;
    // The first pass consumed the rows; platform and layout are kept, only the rows are read again.
    let rows = crate::check::open_sheet(&args.file, args.sheet.as_deref())?.rows;
    let (job_tx, job_rx) = bounded::<Job>(args.connection.concurrency * 4);
    let (done_tx, done_rx) = bounded::<Done>(args.connection.concurrency * 64);
    let panic_row = test_panic_row();
    let carry_out = |job: &Job| run.carry_out(job, panic_row);
    let skipped = |why| run.skipped(why);
    let finish = |job: Job, outcome| Done {
        line: job.line,
        cells: job.cells,
        outcome,
        errors: Vec::new(),
    };
    let work = pool::Work {
        carry_out: &carry_out,
        skipped: &skipped,
        finish: &finish,
    };
    let keep_errors = report::is_xlsx(&run.survey.report_path);
    let journal_path = journal.path.clone();
    std::thread::scope(|scope| -> Result<Sent, Error> {
        pool::start(
            scope,
            args.connection.concurrency,
            &job_rx,
            &done_tx,
            run.stop,
            &work,
        );
        drop(job_rx);
        let writer = scope.spawn(move || write_journal(done_rx, journal, progress, keep_errors));
        let mut resumed = ResumeCounts::default();
        let read_error = dispatch(run, rows, &job_tx, &done_tx, &mut resumed).err();
        drop(job_tx);
        drop(done_tx);
        // Something was sent by then: the run says how to finish, and does not exit as one
        // that could not start.
        let mut sent = writer
            .join()
            .expect("the journal writer does not panic")
            .map_err(|e| Error::ReportLost {
                journal: journal_path.clone(),
                message: e.to_string(),
            })?;
        sent.resumed = resumed;
        match read_error {
            Some(e) => Err(Error::usage(format!(
                "{e} (the rows before it are in {})",
                journal_path.display()
            ))),
            None => Ok(sent),
        }
    })
}

/// Every row of the file, in order, to a worker or straight to the journal. Stops early only
/// when the file cannot be read further, or nobody takes rows any more.
fn dispatch(
    run: &Run,
    rows: read::Rows,
    job_tx: &Sender<Job>,
    done_tx: &Sender<Done>,
    resumed: &mut ResumeCounts,
) -> Result<(), Error> {
    let survey = run.survey;
    let (platform, layout) = (survey.platform.as_ref(), &survey.layout);
    for chunk in read_ahead(rows) {
        let chunk = chunk?;
        let results = check::check_chunk(platform, layout, &chunk);
        for (row, result) in chunk.into_iter().zip(results) {
            if run.interrupted.load(Ordering::SeqCst) {
                run.stop.stop(StopReason::Interrupted);
            }
            // A plan's users to deactivate come after the rows, with the other leavers.
            if check::is_planned_leaver(layout, &row) {
                continue;
            }
            let Row { line, cells, .. } = row;
            // A row an earlier run finished keeps its outcome, under its row number now.
            match survey.earlier.look_up(&survey.columns, line, &cells) {
                Resumed::Done(earlier) => {
                    let done = Done {
                        line,
                        cells,
                        outcome: earlier.clone(),
                        errors: Vec::new(),
                    };
                    resumed.carried += 1;
                    if done_tx.send(done).is_err() {
                        return Ok(());
                    }
                    continue;
                }
                Resumed::Changed => resumed.sent_again += 1,
                Resumed::New => {}
            }
            let duplicate = survey
                .dups
                .get(line)
                .or_else(|| run.connected.twins.get(&line).cloned());
            let (edit, outcome, errors) = verdict(result, duplicate, Status::Skipped);
            let done = match edit {
                Ok(edit) if run.stop.is_running() => {
                    let job = Job {
                        line,
                        cells,
                        edit,
                        leaver: false,
                    };
                    if job_tx.send(job).is_err() {
                        return Ok(());
                    }
                    continue;
                }
                Ok(_) => Done {
                    line,
                    cells,
                    outcome: run.skipped(run.stop.reason()),
                    errors,
                },
                Err(()) => Done {
                    line,
                    cells,
                    outcome,
                    errors,
                },
            };
            if done_tx.send(done).is_err() {
                return Ok(());
            }
        }
    }
    dispatch_missing(run, job_tx, done_tx);
    Ok(())
}

/// The users missing from the roster, after every row of the file: each report line has no
/// row number and shows the user's key in the file's key column.
fn dispatch_missing(run: &Run, job_tx: &Sender<Job>, done_tx: &Sender<Done>) {
    let survey = run.survey;
    let (fields, layout) = (survey.platform.fields(), &survey.layout);
    for (n, leaver) in run.connected.missing.users.iter().enumerate() {
        let (edit, shown) = (&leaver.edit, &leaver.shown);
        if run.interrupted.load(Ordering::SeqCst) {
            run.stop.stop(StopReason::Interrupted);
        }
        let mut cells = vec![String::new(); layout.headers.len()];
        if let Some(key) = shown {
            let field = fields.iter().position(|f| f.name == key.field);
            if let Some(col) = field.and_then(|f| layout.field_col[f]) {
                cells[col] = key.value.clone();
            }
        }
        let line = report::NO_ROW + n as u64;
        let cells = Cells::from(cells);
        let sent = if let Some(why) = &leaver.drifted {
            let done = Done {
                line,
                cells,
                outcome: Outcome::with_error(Status::Drifted, why.clone()),
                errors: Vec::new(),
            };
            done_tx.send(done).is_ok()
        } else if run.stop.is_running() {
            let job = Job {
                line,
                cells,
                edit: edit.clone(),
                leaver: true,
            };
            job_tx.send(job).is_ok()
        } else {
            let done = Done {
                line,
                cells,
                outcome: run.skipped(run.stop.reason()),
                errors: Vec::new(),
            };
            done_tx.send(done).is_ok()
        };
        if !sent {
            return;
        }
    }
    // Users an earlier attempt was deactivating when it stopped, and whom this attempt did
    // not find active: the deactivation was made, and keeps its line.
    for (cells, earlier) in &survey.earlier.leavers_in_flight {
        let listed = run.connected.missing.users.iter().any(|leaver| {
            leaver.shown.as_ref().is_some_and(|key| {
                let field = fields.iter().position(|f| f.name == key.field);
                field
                    .and_then(|f| layout.field_col[f])
                    .and_then(|col| cells.get(col))
                    == Some(key.value.as_str())
            })
        });
        if listed {
            continue;
        }
        let done = Done {
            line: report::NO_ROW,
            cells: cells.clone(),
            outcome: earlier.clone(),
            errors: Vec::new(),
        };
        if done_tx.send(done).is_err() {
            return;
        }
    }
}

/// The journal writer: every outcome reaches the disk as it arrives (outcomes that arrive
/// together share one write).
fn write_journal(
    done_rx: Receiver<Done>,
    journal: &mut Journal,
    progress: &Progress,
    keep_errors: bool,
) -> std::io::Result<Sent> {
    let mut sent = Sent {
        summary: Summary::default(),
        resumed: ResumeCounts::default(),
        field_errors: HashMap::new(),
    };
    for done in done_rx.iter() {
        journal.record(&ReportRow {
            line: done.line,
            outcome: &done.outcome,
            cells: &done.cells,
            field_errors: &done.errors,
        })?;
        if done_rx.is_empty() {
            journal.flush()?;
        }
        sent.summary.add(&done.outcome, &done.errors);
        progress.tick(&sent.summary);
        if keep_errors && !done.errors.is_empty() {
            sent.field_errors.insert(done.line, done.errors);
        }
    }
    journal.flush()?;
    Ok(sent)
}

/// A row's error as a report cell shows it: printable, and cut to a length a person reads.
/// Called after redaction, so a cut never leaves part of a secret behind.
fn shown(error: &str) -> String {
    const MAX: usize = 500;
    let text = printable(error);
    match text.char_indices().nth(MAX) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text,
    }
}

/// A test hook: `BULKEDIT_TEST_PANIC_ROW=N` makes the worker that carries out row N panic with
/// every credential in the message, as a bug that formatted them would. The tests prove the
/// row is reported and no credential is shown.
fn test_panic_row() -> Option<u64> {
    std::env::var("BULKEDIT_TEST_PANIC_ROW")
        .ok()
        .and_then(|v| v.parse().ok())
}
