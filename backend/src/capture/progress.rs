//! Which outbox rows the consumer may take and how far its cursor may move: pure bookkeeping,
//! no I/O, so the gap and lane rules are unit-tested with plain numbers.
//!
//! Sequences are handed out when a trigger runs, not when its transaction commits, so a reader
//! can see 7 before 6 commits. A reader that moved its cursor past 6 then would never read it.
//! The rule here: rows are taken in sequence order, each the next after the last taken; at a
//! missing sequence (a gap) the reader stops and remembers the snapshot it read with. Every
//! sequence below the highest one that snapshot saw was drawn by a transaction that had already
//! written its row change (the triggers run after it, so it had a transaction id) and had either
//! committed (then its row was seen), rolled back, or was still running, i.e. was in the
//! snapshot's list of running transactions. Once none of those is running any more (asked of
//! PostgreSQL with `pg_xact_status`), the gap is settled: what fills it is visible to the next
//! read, and what is still missing never will be (a rollback, or the sequence's jump after a
//! crash). So no committed change is skipped, and no time window is guessed. One escape: after
//! `gap_wait` a gap passes anyway (with a warning), so an unrelated session idle in a transaction
//! cannot stall change capture for ever.

use std::collections::BTreeSet;

/// An unsettled gap: reads stop before it until every transaction running at `snapshot` ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gap {
    /// The highest sequence the snapshot saw: every missing one below it is settled with it.
    pub below: i64,
    /// The snapshot (`pg_current_snapshot()` as text) the gap was seen in.
    pub snapshot: String,
    /// When it was seen (milliseconds since the epoch), for `gap_wait`.
    pub seen_at: u64,
}

/// The consumer's position: what was taken, what was delivered, and a gap if one stops reads.
#[derive(Debug)]
pub struct Progress {
    /// Every sequence up to here was taken for delivery or is a settled gap.
    read_through: i64,
    /// Missing sequences up to here are settled: rows at or below it are taken as they come.
    passable: i64,
    /// Taken and not yet delivered.
    outstanding: BTreeSet<i64>,
    pub gap: Option<Gap>,
}

impl Progress {
    /// Starting after `cursor`, the stored position.
    pub fn new(cursor: i64) -> Self {
        Self { read_through: cursor, passable: cursor, outstanding: BTreeSet::new(), gap: None }
    }

    /// Reads ask for rows after this.
    pub fn read_through(&self) -> i64 {
        self.read_through
    }

    /// Taken and not yet delivered.
    pub fn in_flight(&self) -> usize {
        self.outstanding.len()
    }

    /// The gap was settled: missing sequences below its `below` may be passed.
    pub fn settle(&mut self) {
        if let Some(gap) = self.gap.take() {
            self.passable = self.passable.max(gap.below);
        }
    }

    /// Of `seqs` (rows read after [`Self::read_through`], in order, `complete` when the read
    /// returned every such row rather than a full batch), how many to take from the front; a gap
    /// before the rest is remembered with `snapshot`, read at `now`.
    pub fn take(&mut self, seqs: &[i64], complete: bool, snapshot: &str, now: u64) -> usize {
        let mut taken = 0;
        for &seq in seqs {
            if seq != self.read_through + 1 && seq > self.passable {
                if self.gap.is_none() {
                    let below = seqs.last().copied().unwrap_or(seq);
                    self.gap = Some(Gap { below, snapshot: snapshot.to_owned(), seen_at: now });
                }
                break;
            }
            self.read_through = self.read_through.max(seq);
            self.outstanding.insert(seq);
            taken += 1;
        }
        // Every row at or below `passable` was in this read: the settled gaps are passed.
        if taken == seqs.len() && complete || taken < seqs.len() {
            self.read_through = self.read_through.max(self.passable);
        }
        taken
    }

    /// The worker acknowledged these.
    pub fn delivered(&mut self, seqs: impl IntoIterator<Item = i64>) {
        for seq in seqs {
            self.outstanding.remove(&seq);
        }
    }

    /// The cursor: every change at or below it was delivered (or never existed).
    pub fn delivered_through(&self) -> i64 {
        self.outstanding.first().map_or(self.read_through, |first| first - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consecutive_rows_are_taken_and_the_cursor_follows_deliveries() {
        let mut progress = Progress::new(10);
        assert_eq!(progress.take(&[11, 12, 13], true, "s", 0), 3);
        assert_eq!((progress.read_through(), progress.delivered_through()), (13, 10));
        progress.delivered([12, 13]);
        assert_eq!(progress.delivered_through(), 10, "11 is not delivered: the cursor may not pass it");
        progress.delivered([11]);
        assert_eq!(progress.delivered_through(), 13);
    }

    #[test]
    fn one_workspace_delivered_ahead_of_another_holds_the_cursor_at_the_slower_one() {
        let mut progress = Progress::new(0);
        progress.take(&[1, 2, 3, 4], true, "s", 0);
        progress.delivered([2, 4]);
        assert_eq!(progress.delivered_through(), 0);
        progress.delivered([1]);
        assert_eq!(progress.delivered_through(), 2);
        assert_eq!(progress.in_flight(), 1);
    }

    #[test]
    fn a_gap_stops_reads_until_it_is_settled() {
        let mut progress = Progress::new(5);
        assert_eq!(progress.take(&[6, 8, 9], true, "100:104:101,102", 7), 1);
        assert_eq!(progress.gap, Some(Gap { below: 9, snapshot: "100:104:101,102".into(), seen_at: 7 }));
        assert_eq!(progress.read_through(), 6);
        // Still unsettled: the same rows are read again and 8 is still not taken.
        assert_eq!(progress.take(&[8, 9], true, "100:105:101", 8), 0);
        assert_eq!(progress.gap.as_ref().map(|gap| gap.seen_at), Some(7), "the first snapshot is kept");
        progress.settle();
        // 7 committed meanwhile and is read with the rest.
        assert_eq!(progress.take(&[7, 8, 9], true, "s", 9), 3);
        assert_eq!(progress.read_through(), 9);
        assert!(progress.gap.is_none());
    }

    #[test]
    fn a_settled_gap_that_never_fills_is_passed() {
        let mut progress = Progress::new(0);
        assert_eq!(progress.take(&[1, 3, 4], true, "s", 0), 1);
        progress.settle();
        // 2 rolled back: it never appears.
        assert_eq!(progress.take(&[3, 4], true, "s", 1), 2);
        progress.delivered([1, 3, 4]);
        assert_eq!(progress.delivered_through(), 4);
    }

    #[test]
    fn settling_does_not_pass_rows_a_full_batch_did_not_return() {
        let mut progress = Progress::new(0);
        progress.take(&[2, 50], true, "s", 0);
        progress.settle();
        // A batch of two returned 2 and 3; 4..=50 are beyond it and must still be read.
        assert_eq!(progress.take(&[2, 3], false, "s", 1), 2);
        assert_eq!(progress.read_through(), 3);
        assert_eq!(progress.take(&[50], true, "s", 2), 1);
        assert_eq!(progress.read_through(), 50);
    }

    #[test]
    fn gaps_beyond_a_settled_one_need_their_own_settling() {
        let mut progress = Progress::new(0);
        progress.take(&[2, 3], true, "s", 0);
        progress.settle();
        assert_eq!(progress.take(&[2, 3, 5], true, "t", 1), 2);
        assert_eq!(progress.gap.as_ref().map(|gap| (gap.below, gap.snapshot.as_str())), Some((5, "t")));
        assert_eq!(progress.read_through(), 3);
    }
}
