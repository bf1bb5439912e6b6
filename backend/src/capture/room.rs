//! Room on each workspace's lane: how many of its changes are sent and not yet acknowledged, and
//! which of its changes wait parked (by sequence only) because its lane is full. Pure
//! bookkeeping, no I/O, so the lane rule is unit-tested with plain numbers: a workspace never
//! has more than `limit` changes on its lane, and its changes go out in sequence order (once one
//! is parked, the later ones are parked behind it).

use super::outbox::Change;
use std::collections::{HashMap, VecDeque};

#[derive(Debug)]
pub struct Room {
    limit: usize,
    on_lane: HashMap<String, usize>,
    parked: HashMap<String, VecDeque<i64>>,
}

impl Room {
    pub fn new(limit: usize) -> Self {
        Self { limit, on_lane: HashMap::new(), parked: HashMap::new() }
    }

    /// Of one workspace's changes just taken (in sequence order), those to send now (counted on
    /// its lane); the others are parked.
    pub fn admit(&mut self, workspace: &str, changes: Vec<Change>) -> Vec<Change> {
        let on_lane = self.on_lane.get(workspace).copied().unwrap_or(0);
        let room = if self.parked.contains_key(workspace) { 0 } else { self.limit.saturating_sub(on_lane) };
        let mut changes = changes.into_iter();
        let sent: Vec<Change> = changes.by_ref().take(room).collect();
        let rest: VecDeque<i64> = changes.map(|change| change.seq).collect();
        if !rest.is_empty() {
            self.parked.entry(workspace.to_owned()).or_default().extend(rest);
        }
        if !sent.is_empty() {
            *self.on_lane.entry(workspace.to_owned()).or_default() += sent.len();
        }
        sent
    }

    /// Parked sequences whose lanes now have room, the earliest first, at most `most` per
    /// workspace: taken out of parking and counted on their lanes (a sequence that turns out not
    /// to exist is given back with [`Self::done`]).
    pub fn due(&mut self, most: usize) -> Vec<(String, Vec<i64>)> {
        let mut due = Vec::new();
        for (workspace, parked) in &mut self.parked {
            let on_lane = self.on_lane.entry(workspace.clone()).or_default();
            let n = self.limit.saturating_sub(*on_lane).min(parked.len()).min(most);
            if n > 0 {
                *on_lane += n;
                due.push((workspace.clone(), parked.drain(..n).collect()));
            }
        }
        self.parked.retain(|_, parked| !parked.is_empty());
        due.sort();
        due
    }

    /// `n` of `workspace`'s changes on its lane were acknowledged (or will never be sent).
    pub fn done(&mut self, workspace: &str, n: usize) {
        if let Some(on_lane) = self.on_lane.get_mut(workspace) {
            *on_lane = on_lane.saturating_sub(n);
            if *on_lane == 0 {
                self.on_lane.remove(workspace);
            }
        }
    }

    /// Changes parked, over every workspace.
    pub fn parked(&self) -> usize {
        self.parked.values().map(VecDeque::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::outbox::Reach;

    fn changes(seqs: std::ops::RangeInclusive<i64>, workspace: &str) -> Vec<Change> {
        seqs.map(|seq| Change { seq, workspace: workspace.into(), json: String::new(), reach: Reach::All }).collect()
    }

    fn seqs(changes: &[Change]) -> Vec<i64> {
        changes.iter().map(|change| change.seq).collect()
    }

    #[test]
    fn a_full_lane_parks_only_its_own_workspace() {
        let mut room = Room::new(3);
        assert_eq!(seqs(&room.admit("a", changes(1..=5, "a"))), vec![1, 2, 3]);
        assert_eq!(room.parked(), 2);
        // Another workspace is not held back by a's full lane.
        assert_eq!(seqs(&room.admit("b", changes(6..=7, "b"))), vec![6, 7]);
        // a's later changes queue behind its parked ones, even once its lane has room.
        room.done("a", 3);
        assert_eq!(seqs(&room.admit("a", changes(8..=8, "a"))), Vec::<i64>::new());
        assert_eq!(room.due(100), vec![("a".to_owned(), vec![4, 5, 8])]);
        assert_eq!(room.parked(), 0);
        assert_eq!(room.due(100), vec![], "a's lane is full again (3 sent)");
    }

    #[test]
    fn parked_changes_go_out_as_room_frees_the_earliest_first() {
        let mut room = Room::new(2);
        room.admit("a", changes(1..=6, "a"));
        assert_eq!(room.due(10), vec![]);
        room.done("a", 1);
        assert_eq!(room.due(10), vec![("a".to_owned(), vec![3])]);
        room.done("a", 2);
        assert_eq!(room.due(1), vec![("a".to_owned(), vec![4])], "at most `most` at a time");
        assert_eq!(room.due(10), vec![("a".to_owned(), vec![5])]);
        room.done("a", 2);
        assert_eq!(room.due(10), vec![("a".to_owned(), vec![6])]);
        room.done("a", 1);
        assert!(room.on_lane.is_empty() && room.parked.is_empty(), "a drained workspace leaves nothing behind");
    }
}
