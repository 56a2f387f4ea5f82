//! The roles and groups a run takes away from users, counted for the summary's warning: an
//! admin reading "12 users lose Program Manager" sees at once what a sheet removes.

use std::collections::BTreeMap;

use crate::engine::{Outcome, Status};
use crate::platform::Platform;
use crate::report::summary::counted;

pub struct Losses<'a> {
    platform: &'a dyn Platform,
    /// Users who lose each role or group, by its name as the changes show it.
    lost: BTreeMap<String, u64>,
}

impl<'a> Losses<'a> {
    pub fn new(platform: &'a dyn Platform) -> Self {
        Losses {
            platform,
            lost: BTreeMap::new(),
        }
    }

    /// Takes one final report line.
    pub fn add(&mut self, outcome: &Outcome) {
        if !matches!(outcome.status, Status::Updated | Status::WouldUpdate) {
            return;
        }
        for change in &outcome.changes {
            for item in self.platform.taken_away(change) {
                *self.lost.entry(item).or_default() += 1;
            }
        }
    }

    /// `12 users lose Program Manager; 1 user loses Everyone`, most first; `None` when no
    /// row takes anything away.
    pub fn warning(&self, dry_run: bool) -> Option<String> {
        if self.lost.is_empty() {
            return None;
        }
        let mut lost: Vec<(&String, &u64)> = self.lost.iter().collect();
        lost.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let parts: Vec<String> = lost
            .iter()
            .map(|(item, &n)| {
                let verb = match (dry_run, n) {
                    (true, _) => "would lose",
                    (false, 1) => "loses",
                    (false, _) => "lose",
                };
                format!("{} {verb} {item}", counted(n, "user"))
            })
            .collect();
        Some(parts.join("; "))
    }
}
