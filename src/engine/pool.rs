//! The worker pool: `--concurrency` threads take jobs from one bounded queue, carry each out
//! and hand its outcome on, until the queue ends. Why a run stops taking work (Ctrl-C, refused
//! credentials, `--max-errors`) is decided here, the same way for every platform.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::thread::Scope;

use crossbeam_channel::{Receiver, Sender};

use super::{Outcome, Status};

/// Why a run stopped taking rows; the first reason given wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    Running = 0,
    Interrupted = 1,
    MaxErrors = 2,
    Auth = 3,
    /// The server asked for a pause longer than `--max-pause`.
    ServerPause = 4,
}

/// Whether the run goes on, shared by whoever hands out jobs and every worker.
pub struct Stop {
    reason: AtomicU8,
    errors_seen: AtomicU64,
    /// Failed or not-found rows after which the run stops; 0 never stops.
    max_errors: u64,
}

impl Stop {
    pub fn new(max_errors: u64) -> Self {
        Stop {
            reason: AtomicU8::new(StopReason::Running as u8),
            errors_seen: AtomicU64::new(0),
            max_errors,
        }
    }

    pub fn reason(&self) -> StopReason {
        match self.reason.load(Ordering::SeqCst) {
            1 => StopReason::Interrupted,
            2 => StopReason::MaxErrors,
            3 => StopReason::Auth,
            4 => StopReason::ServerPause,
            _ => StopReason::Running,
        }
    }

    pub fn is_running(&self) -> bool {
        self.reason() == StopReason::Running
    }

    /// Stops the run for `why`, unless it has stopped already.
    pub fn stop(&self, why: StopReason) {
        let _ = self.reason.compare_exchange(
            StopReason::Running as u8,
            why as u8,
            Ordering::SeqCst,
            Ordering::SeqCst,
        );
    }

    /// Takes a finished job into account: refused credentials stop the run, and failed or
    /// not-found rows count toward `--max-errors`. Counted where outcomes are made, so no
    /// worker takes a row past the limit.
    pub fn observe(&self, outcome: &Outcome) {
        if let Some(why) = outcome.stops_run {
            self.stop(why);
        }
        if matches!(outcome.status, Status::Failed | Status::NotFound)
            && self.max_errors > 0
            && self.errors_seen.fetch_add(1, Ordering::SeqCst) + 1 >= self.max_errors
        {
            self.stop(StopReason::MaxErrors);
        }
    }
}

/// What the workers do with a job.
pub struct Work<'a, J, D> {
    /// Carries a job out while the run goes on. A panic in it costs only that job, which is
    /// reported failed.
    pub carry_out: &'a (dyn Fn(&J) -> Outcome + Sync),
    /// The outcome of a job taken after the run stopped.
    pub skipped: &'a (dyn Fn(StopReason) -> Outcome + Sync),
    /// What is handed on (to the journal) for a job and its outcome.
    pub finish: &'a (dyn Fn(J, Outcome) -> D + Sync),
}

/// Starts `concurrency` workers in `scope`; they end when `jobs` is closed and empty, and
/// each sends what `finish` makes of every job it took to `done`.
pub fn start<'scope, J: Send + 'scope, D: Send + 'scope>(
    scope: &'scope Scope<'scope, '_>,
    concurrency: usize,
    jobs: &Receiver<J>,
    done: &Sender<D>,
    stop: &'scope Stop,
    work: &'scope Work<'scope, J, D>,
) {
    for _ in 0..concurrency.max(1) {
        let jobs = jobs.clone();
        let done = done.clone();
        scope.spawn(move || {
            for job in jobs {
                let outcome = if stop.is_running() {
                    crate::crash::caught(|| (work.carry_out)(&job)).unwrap_or_else(|m| {
                        Outcome::with_error(
                            Status::Failed,
                            format!(
                                "internal error while carrying out this row (a bug in \
                                 bulkedit; please report it): {m}"
                            ),
                        )
                    })
                } else {
                    (work.skipped)(stop.reason())
                };
                stop.observe(&outcome);
                if done.send((work.finish)(job, outcome)).is_err() {
                    // Nobody takes outcomes any more: the run is over.
                    return;
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Jobs `0..jobs` through `workers` workers; what `finish` made of each, in order.
    fn run_jobs<D: Send + Ord>(
        workers: usize,
        jobs: u32,
        stop: &Stop,
        work: &Work<u32, D>,
    ) -> Vec<D> {
        let (tx, rx) = crossbeam_channel::bounded::<u32>(4);
        let (done_tx, done_rx) = crossbeam_channel::unbounded();
        std::thread::scope(|scope| {
            start(scope, workers, &rx, &done_tx, stop, work);
            for job in 0..jobs {
                tx.send(job).unwrap();
            }
            drop(tx);
        });
        drop(done_tx);
        let mut seen: Vec<D> = done_rx.iter().collect();
        seen.sort();
        seen
    }

    #[test]
    fn every_job_ends_once_and_max_errors_stops_the_rest() {
        let stop = Stop::new(3);
        let carry_out = |_: &u32| Outcome::new(Status::Failed);
        let skipped = |why: StopReason| {
            assert_eq!(why, StopReason::MaxErrors);
            Outcome::new(Status::Skipped)
        };
        let finish = |job: u32, o: Outcome| (job, o.status);
        let work = Work {
            carry_out: &carry_out,
            skipped: &skipped,
            finish: &finish,
        };
        let seen = run_jobs(1, 10, &stop, &work);
        assert_eq!(seen.len(), 10, "every job once");
        let failed = seen.iter().filter(|(_, s)| *s == Status::Failed).count();
        assert_eq!(failed, 3, "one worker: exactly --max-errors rows fail");
        assert_eq!(stop.reason(), StopReason::MaxErrors);
    }

    #[test]
    fn a_panicking_job_is_reported_failed_and_the_others_go_on() {
        let stop = Stop::new(0);
        let carry_out = |job: &u32| {
            assert!(*job != 2, "a bug on job 2");
            Outcome::new(Status::Updated)
        };
        let skipped = |_: StopReason| Outcome::new(Status::Skipped);
        let finish = |job: u32, o: Outcome| (job, o.status, o.error);
        let work = Work {
            carry_out: &carry_out,
            skipped: &skipped,
            finish: &finish,
        };
        let seen = run_jobs(2, 5, &stop, &work);
        assert_eq!(seen.len(), 5);
        assert_eq!(seen[2].1, Status::Failed);
        assert!(seen[2].2.contains("a bug on job 2"), "{:?}", seen[2]);
        assert!(seen
            .iter()
            .filter(|s| s.0 != 2)
            .all(|s| s.1 == Status::Updated));
        assert!(stop.is_running());
    }
}
