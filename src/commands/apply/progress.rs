//! The progress of a run: a bar when a person watches stderr, a plain line every ten seconds
//! when a log file or a scheduler does.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use crate::commands::Console;
use crate::engine::Status;
use crate::report::summary::Summary;

/// A progress bar when a person watches stderr, a plain line every ten seconds otherwise.
pub struct Progress<'c> {
    console: &'c Console,
    bar: Option<indicatif::ProgressBar>,
    started: Instant,
    last_line: std::sync::Mutex<Instant>,
    total: u64,
}

impl<'c> Progress<'c> {
    pub fn new(console: &'c Console, total: u64, verbose: bool) -> Self {
        let bar = (!console.quiet && !verbose && std::io::stderr().is_terminal()).then(|| {
            let bar = indicatif::ProgressBar::new(total);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{bar:30} {pos}/{len} rows  {rate} rows/s  ETA {eta}  {msg}",
                )
                .expect("the template is valid")
                .with_key("rate", rate_key),
            );
            bar
        });
        console.set_bar(bar.clone());
        Progress {
            console,
            bar,
            started: Instant::now(),
            last_line: std::sync::Mutex::new(Instant::now()),
            total,
        }
    }

    pub fn tick(&self, summary: &Summary) {
        let ok = summary.count(Status::Updated)
            + summary.count(Status::Unchanged)
            + summary.count(Status::WouldUpdate)
            + summary.count(Status::Created)
            + summary.count(Status::WouldCreate)
            + summary.count(Status::Deactivated)
            + summary.count(Status::WouldDeactivate);
        let bad = summary.count(Status::Failed)
            + summary.count(Status::NotFound)
            + summary.count(Status::Invalid);
        match &self.bar {
            Some(bar) => {
                bar.inc(1);
                bar.set_message(format!("ok {ok}  failed {bad}"));
            }
            None if !self.console.quiet => {
                let mut last = self.last_line.lock().unwrap_or_else(|e| e.into_inner());
                if last.elapsed() >= Duration::from_secs(10) {
                    *last = Instant::now();
                    let done = summary.total();
                    let rate = done as f64 / self.started.elapsed().as_secs_f64().max(1e-9);
                    self.console.info(&format!(
                        "{done}/{} rows, {} rows/s, {ok} ok, {bad} failed",
                        self.total,
                        crate::engine::rate::shown(rate)
                    ));
                }
            }
            None => {}
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        self.console.set_bar(None);
    }
}

/// The bar's rate, as the summary shows rates (indicatif's own has four decimals).
pub fn rate_key(state: &indicatif::ProgressState, out: &mut dyn std::fmt::Write) {
    let _ = out.write_str(&crate::engine::rate::shown(state.per_sec()));
}
