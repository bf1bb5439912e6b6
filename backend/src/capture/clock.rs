//! Change capture's clock: for each workspace, a time (PostgreSQL's clock, milliseconds since the
//! epoch) before which every change of the workspace committed has been delivered to the worker,
//! which wrote it to the workspace's state home before acknowledging it. The worker trusts the
//! scope states it reads until this time plus the staleness bound (`states_fresh_until` in the
//! core), so an answer is never older than the bound, however far change capture lags: past it,
//! the workspace's pages come from the database.
//!
//! Pure bookkeeping, no I/O. Each observation offers a candidate, a time and the sequence
//! through which every change committed before that time lies:
//! - a complete read of the outbox, at its statement's time (taken before its snapshot): every
//!   change committed before then was in the read or an earlier one, so at or below the highest
//!   sequence seen;
//! - a look at the sequence's last value that finds nothing drawn past what was read: every change
//!   committed before it is at or below that value.
//!
//! A reading is one time for every workspace, the latest candidate whose changes were all read,
//! and, for the few workspaces with changes taken and not yet delivered (on their lanes or
//! parked), the latest candidate before their first such change. So a workspace the worker
//! refuses is behind alone: every other workspace's clock goes on.

use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

/// The most workspaces a reading names as behind; past them, the time for every workspace is
/// held back to the next one's.
pub const MAX_BEHIND: usize = 100;

/// What is posted to the worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reading {
    /// Every change committed before this, in any workspace not in `behind`, was delivered.
    pub applied_through: u64,
    /// Workspaces whose clock is earlier, with it.
    pub behind: BTreeMap<String, u64>,
}

#[derive(Debug, Default)]
pub struct Clock {
    /// Oldest first; times and sequences both increasing.
    candidates: VecDeque<(u64, i64)>,
    /// Taken and not yet delivered, by workspace.
    pending: HashMap<String, BTreeSet<i64>>,
    last: Option<Reading>,
}

impl Clock {
    /// Every change committed before `at` has a sequence at or below `through`.
    pub fn offer(&mut self, at: u64, through: i64) {
        if self.candidates.back().is_some_and(|&(last_at, _)| at <= last_at) {
            return;
        }
        let through = self.candidates.back().map_or(through, |&(_, last)| last.max(through));
        self.candidates.push_back((at, through));
    }

    /// `workspace`'s changes `seqs` were taken for delivery (sent or parked).
    pub fn taken(&mut self, workspace: &str, seqs: impl IntoIterator<Item = i64>) {
        self.pending.entry(workspace.to_owned()).or_default().extend(seqs);
    }

    /// `workspace`'s changes `seqs` were delivered (or will never be).
    pub fn delivered(&mut self, workspace: &str, seqs: &[i64]) {
        if let Some(pending) = self.pending.get_mut(workspace) {
            for seq in seqs {
                pending.remove(seq);
            }
            if pending.is_empty() {
                self.pending.remove(workspace);
            }
        }
    }

    /// The latest candidate whose changes all lie below `seq` (0 when none).
    fn before(&self, seq: i64) -> u64 {
        self.candidates.iter().rev().find(|&&(_, through)| through < seq).map_or(0, |&(at, _)| at)
    }

    /// The clock with every sequence through `seen_through` taken, or seen and on the books
    /// ([`Self::taken`]), or not committed when read: a new reading when it moved.
    pub fn reading(&mut self, seen_through: i64) -> Option<Reading> {
        let mut applied_through = self.before(seen_through.saturating_add(1));
        if applied_through == 0 {
            return None;
        }
        let mut behind: Vec<(u64, &String)> = self
            .pending
            .iter()
            .filter_map(|(workspace, seqs)| seqs.first().map(|first| (self.before(*first).min(applied_through), workspace)))
            .filter(|(at, _)| *at < applied_through)
            .collect();
        behind.sort();
        if let Some(&(held, _)) = behind.get(MAX_BEHIND) {
            applied_through = held;
            behind.truncate(MAX_BEHIND);
        }
        let reading = Reading { applied_through, behind: behind.into_iter().filter(|(at, _)| *at < applied_through).map(|(at, w)| (w.clone(), at)).collect() };
        // Candidates older than every one still needed are dropped.
        let oldest_pending = self.pending.values().filter_map(|seqs| seqs.first()).min().copied().unwrap_or(i64::MAX).min(seen_through.saturating_add(1));
        while self.candidates.len() > 1 && self.candidates.get(1).is_some_and(|&(_, through)| through < oldest_pending) {
            self.candidates.pop_front();
        }
        if self.last.as_ref().is_some_and(|last| *last == reading || last.applied_through > reading.applied_through) {
            return None;
        }
        self.last = Some(reading.clone());
        Some(reading)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn behind(reading: &Reading) -> Vec<(&str, u64)> {
        reading.behind.iter().map(|(w, at)| (w.as_str(), *at)).collect()
    }

    #[test]
    fn the_clock_moves_when_every_change_committed_before_it_was_read_and_delivered() {
        let mut clock = Clock::default();
        assert_eq!(clock.reading(0), None, "nothing observed yet");
        // A read at 1,000 saw changes 11 and 12 of workspace a.
        clock.offer(1_000, 12);
        clock.taken("a", [11, 12]);
        let reading = clock.reading(12).unwrap();
        assert_eq!(reading.applied_through, 1_000, "every other workspace is current as of the read");
        assert_eq!(behind(&reading), vec![("a", 0)], "a's changes are not delivered: its clock is before any candidate");
        clock.delivered("a", &[11, 12]);
        clock.offer(1_050, 12);
        let reading = clock.reading(12).unwrap();
        assert_eq!((reading.applied_through, behind(&reading)), (1_050, vec![]));
        assert_eq!(clock.reading(12), None, "a reading is given once");
    }

    #[test]
    fn a_workspace_with_changes_out_is_behind_alone() {
        let mut clock = Clock::default();
        clock.offer(1_000, 10);
        clock.offer(1_100, 12);
        clock.taken("slow", [11]);
        clock.taken("quick", [12]);
        clock.offer(1_200, 12);
        clock.delivered("quick", &[12]);
        let reading = clock.reading(12).unwrap();
        assert_eq!((reading.applied_through, behind(&reading)), (1_200, vec![("slow", 1_000)]));
        // Still out much later: the others go on.
        clock.offer(5_000, 14);
        clock.taken("quick", [13, 14]);
        clock.delivered("quick", &[13, 14]);
        let reading = clock.reading(14).unwrap();
        assert_eq!((reading.applied_through, behind(&reading)), (5_000, vec![("slow", 1_000)]));
        clock.delivered("slow", &[11]);
        clock.offer(5_050, 14);
        assert_eq!(behind(&clock.reading(14).unwrap()), vec![]);
    }

    #[test]
    fn changes_not_yet_read_hold_every_workspace_back() {
        let mut clock = Clock::default();
        clock.offer(1_000, 5);
        // The sequence drew 8, not yet read: only 5 is seen through.
        clock.offer(1_100, 8);
        assert_eq!(clock.reading(5).unwrap().applied_through, 1_000);
        clock.offer(900, 9);
        assert_eq!(clock.reading(8).unwrap().applied_through, 1_100, "an observation older than the last is ignored");
    }

    #[test]
    fn past_a_gap_only_the_workspaces_seen_beyond_it_are_behind() {
        let mut clock = Clock::default();
        clock.offer(1_000, 5);
        assert_eq!(clock.reading(5).unwrap().applied_through, 1_000);
        // A read at 1,100 saw 7 and 8 (workspace b) past 6, not committed: 6 holds the cursor,
        // 7 and 8 are on the books, so every other workspace is current as of 1,100.
        clock.taken("b", [7, 8]);
        clock.offer(1_100, 8);
        let reading = clock.reading(8).unwrap();
        assert_eq!((reading.applied_through, behind(&reading)), (1_100, vec![("b", 1_000)]));
    }

    #[test]
    fn past_max_behind_workspaces_the_time_for_every_workspace_is_held_back() {
        let mut clock = Clock::default();
        for i in 0..=MAX_BEHIND as i64 {
            clock.offer(1_000 + i as u64, i);
            clock.taken(&format!("w{i:03}"), [i + 1]);
        }
        clock.offer(9_000, MAX_BEHIND as i64 + 1);
        let reading = clock.reading(MAX_BEHIND as i64 + 1).unwrap();
        assert_eq!(reading.behind.len(), MAX_BEHIND);
        assert_eq!(reading.applied_through, 1_000 + MAX_BEHIND as u64, "held at the 101st workspace's time");
        assert!(reading.behind.values().all(|at| *at < reading.applied_through));
    }
}
