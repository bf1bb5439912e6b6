//! Redelivered database changes. The backend's change capture delivers each change at least
//! once, stamped with its outbox sequence (`outbox_seq`), and one workspace's changes in sequence
//! order. Per workspace the worker keeps the highest sequence it applied (in KV, at
//! [`applied_key`]) and skips changes at or below it: a redelivered batch bumps no generation
//! again. Changes without a sequence (a Supabase Database Webhook's) are always applied. Losing
//! the mark (KV's eventual consistency between locations, an expired key) only means a change is
//! applied twice, which is harmless: a second generation bump supersedes the first.

use crate::query::WorkspaceId;

/// The KV key of a workspace's applied mark.
pub fn applied_key(workspace: &WorkspaceId) -> String {
    format!("applied:{workspace}")
}

/// The highest outbox sequence applied for a workspace (`None`: none known).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AppliedMark(pub Option<u64>);

impl AppliedMark {
    /// The mark as stored (a decimal number); an unreadable one is no mark, so nothing is skipped.
    pub fn parse(raw: Option<&str>) -> Self {
        Self(raw.and_then(|raw| raw.trim().parse().ok()))
    }

    /// Whether a change with sequence `seq` is still to be applied.
    pub fn admits(self, seq: Option<u64>) -> bool {
        match (seq, self.0) {
            (Some(seq), Some(mark)) => seq > mark,
            _ => true,
        }
    }

    /// The mark once `seqs` are applied, when it moved.
    pub fn after(self, seqs: impl IntoIterator<Item = Option<u64>>) -> Option<Self> {
        let highest = seqs.into_iter().flatten().max()?;
        (self.0.is_none_or(|mark| highest > mark)).then_some(Self(Some(highest)))
    }

    /// As stored.
    pub fn as_stored(self) -> String {
        self.0.map_or_else(String::new, |mark| mark.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_applied_key_is_pinned() {
        let ws = WorkspaceId::parse("ws", "11111111-1111-4111-8111-111111111111").unwrap();
        assert_eq!(applied_key(&ws), "applied:11111111-1111-4111-8111-111111111111");
    }

    #[test]
    fn a_redelivered_change_is_skipped_and_a_new_one_applied() {
        let mark = AppliedMark::parse(Some("41"));
        assert!(!mark.admits(Some(40)));
        assert!(!mark.admits(Some(41)));
        assert!(mark.admits(Some(42)));
        assert!(mark.admits(None), "a change without a sequence is always applied");
        assert!(AppliedMark::parse(None).admits(Some(1)));
        assert!(AppliedMark::parse(Some("garbage")).admits(Some(1)));
    }

    #[test]
    fn the_mark_moves_only_forward() {
        let mark = AppliedMark(Some(10));
        assert_eq!(mark.after([Some(12), None, Some(11)]), Some(AppliedMark(Some(12))));
        assert_eq!(mark.after([Some(9)]), None);
        assert_eq!(mark.after([None]), None);
        assert_eq!(AppliedMark::default().after([Some(3)]).map(AppliedMark::as_stored), Some("3".to_owned()));
    }
}
