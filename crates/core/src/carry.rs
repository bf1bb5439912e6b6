//! Carrying a cached page across a contact write instead of reading it again. Change capture
//! sends each write's row before and after; for a page of the generation just superseded, most
//! writes provably leave the page as it was, or change one contact in place on it (a new name,
//! status or priority that keeps it in the list at the same position). Then the page of the new
//! generation is the old one, with that contact's row replaced: no database read. Any write that
//! may move contacts across the page (one entering or leaving the list, a changed sort key, a
//! search the new name may match) is not carried: the page is read again, as before.
//!
//! A cursor page is carried by the same rules: a write that keeps every contact where it was in
//! the list keeps the page's rows, and its edge rows' sort keys (so its `nextCursor` and
//! `prevCursor`) too; one that may move contacts is read again, like a numbered page.
//!
//! Carrying is idempotent per write: a page that already shows the write (read after it
//! committed) comes out the same, so a page of the superseded generation is a safe start
//! whenever the writes carried are every write between that generation and the new one.

use crate::envelope::{Contact, ContactListResponse};
use crate::generation::Generation;
use crate::invalidation::RowChange;
use crate::filter::{Filter, Meaning};
use crate::query::{BoardId, Condition, ContactQuery, UserId, WorkspaceId};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The KV key of the carry record of one board's lists of one filter:
/// `carry:<workspace>:<board>:<filter>`.
pub fn carry_key(workspace: &WorkspaceId, board: &BoardId, filter: Filter) -> String {
    format!("carry:{workspace}:{board}:{}", filter.as_str())
}

/// The most updates one record carries; past them, the record starts again (and pages read
/// rarely are read from the database again). A record of this many takes about 30 KB.
pub const MAX_CARRIED_UPDATES: usize = 50;

/// The most later starts one record keeps (see [`CarryRecord::later`]): a missing page costs a
/// KV read per start tried.
pub const MAX_LATER_STARTS: usize = 2;

/// What a scope's invalidations changed since a generation whose pages may be carried to the
/// current one. Kept beside the scope's state (read only when a page of the current generation
/// is missing, never on a hit) and rewritten with it by every invalidation that names its
/// updates. One that does not (an API call, an insert, a delete) writes none: the record stored
/// then leads to a generation no longer current, and carries nothing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CarryRecord {
    /// The generation the record leads to.
    pub to: String,
    /// The generation whose pages the updates apply to.
    pub from: String,
    pub updates: Vec<ContactUpdate>,
    /// Later starts, oldest first: a generation made by an update that may have moved contacts
    /// in the scope's lists (whose pages before it then rarely carry past it), and the index of
    /// the first of `updates` after it. Its pages, read or refreshed after that update, carry
    /// with the updates that follow.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub later: Vec<(String, usize)>,
}

impl CarryRecord {
    /// The record after an invalidation from `previous` (the generation current before it) to
    /// `next` with `updates` of `filter`'s lists, `last` the record stored. The updates
    /// accumulate while the last record led to `previous`, so a burst of writes carries the
    /// pages of the generation before its first write; when the last record leads elsewhere (an
    /// invalidation that named no updates came between) they start again from `previous`, whose
    /// pages were read after every write before this one. An update that may move contacts in
    /// these lists makes `next` a later start (at most [`MAX_LATER_STARTS`]); past
    /// [`MAX_CARRIED_UPDATES`], the oldest start goes with the updates before the next one, or,
    /// with no later start, they start again from `previous`.
    pub fn after(last: Option<CarryRecord>, previous: &Generation, next: &Generation, filter: Filter, updates: &[ContactUpdate]) -> Self {
        let chained = last.filter(|last| last.to == previous.as_str());
        let mut record = match chained {
            Some(last) => Self { to: next.to_string(), ..last },
            None => Self { to: next.to_string(), from: previous.to_string(), updates: Vec::new(), later: Vec::new() },
        };
        record.updates.extend_from_slice(updates);
        let moves = updates.iter().any(|update| update.may_move(filter));
        if moves {
            record.later.push((next.to_string(), record.updates.len()));
        }
        while record.updates.len() > MAX_CARRIED_UPDATES || record.later.len() > MAX_LATER_STARTS {
            if record.later.is_empty() {
                // No later start to fall back to: start again from `previous`.
                record.from = previous.to_string();
                record.updates = updates.to_vec();
                break;
            }
            let (from, first) = record.later.remove(0);
            record.updates.drain(..first);
            record.later.iter_mut().for_each(|(_, at)| *at -= first);
            record.from = from;
        }
        record
    }

    /// The generations whose pages carry to `current`, newest first, each with the updates to
    /// apply (none when the record does not lead to `current`).
    pub fn starts(&self, current: &Generation) -> Vec<(&str, &[ContactUpdate])> {
        if self.to != current.as_str() {
            return Vec::new();
        }
        let first = std::iter::once((self.from.as_str(), 0));
        let later = self.later.iter().map(|(generation, at)| (generation.as_str(), *at));
        let mut starts: Vec<_> = first
            .chain(later)
            .filter(|(generation, _)| *generation != self.to)
            .map(|(generation, at)| (generation, &self.updates[at.min(self.updates.len())..]))
            .collect();
        starts.reverse();
        starts
    }
}

/// A contact updated where it was: same board, same column (a move is not carried).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(into = "StoredUpdate", from = "StoredUpdate")]
pub struct ContactUpdate {
    pub old: Value,
    pub new: Value,
}

/// A [`ContactUpdate`] as a carry record keeps it: the row after the update in full and, of the
/// row before, only what differs from it (a field's old value, or that it had no such field):
/// about half the size of both rows.
#[derive(Serialize, Deserialize)]
struct StoredUpdate {
    new: Value,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    was: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    absent: Vec<String>,
    /// The row before in full, when either row is not an object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    old: Option<Value>,
}

impl From<ContactUpdate> for StoredUpdate {
    fn from(ContactUpdate { old, new }: ContactUpdate) -> Self {
        let (Value::Object(before), Some(after)) = (&old, new.as_object()) else {
            return Self { new, was: Map::new(), absent: Vec::new(), old: Some(old) };
        };
        let was = before.iter().filter(|(field, value)| after.get(*field) != Some(value)).map(|(f, v)| (f.clone(), v.clone())).collect();
        let absent = after.keys().filter(|field| !before.contains_key(*field)).cloned().collect();
        Self { new, was, absent, old: None }
    }
}

impl From<StoredUpdate> for ContactUpdate {
    fn from(StoredUpdate { new, was, absent, old }: StoredUpdate) -> Self {
        if let Some(old) = old {
            return Self { old, new };
        }
        let mut before = new.as_object().cloned().unwrap_or_default();
        for field in &absent {
            before.remove(field);
        }
        before.extend(was);
        Self { old: Value::Object(before), new }
    }
}

impl ContactUpdate {
    /// The update a row change is, if it is a `contacts` UPDATE that kept its id, board and column.
    pub fn from_change(change: &RowChange) -> Option<Self> {
        if change.table != "contacts" || change.kind != "UPDATE" {
            return None;
        }
        let (old, new) = (change.old_record.clone()?, change.record.clone()?);
        let kept = ["id", "board_id", "board_column_id", "workspace_id"].iter().all(|field| old.get(field).is_some_and(|v| Some(v) == new.get(field)));
        kept.then_some(Self { old, new })
    }

    fn id(&self) -> Option<&str> {
        self.new.get("id")?.as_str()
    }

    fn board(&self) -> Option<&str> {
        self.new.get("board_id")?.as_str()
    }
}

impl ContactUpdate {
    /// Whether the update may add the contact to `filter`'s lists or take it out of them, for
    /// some caller, or move it in a list sorted by time: then pages of those lists shift and are
    /// read again, not carried. A field missing from either row may have changed. (A new name
    /// moves the contact only in name-sorted lists and searches, which are read again when asked
    /// for; it is not counted here.)
    pub fn may_move(&self, filter: Filter) -> bool {
        let differs = |field: &str| match (self.old.get(field), self.new.get(field)) {
            (Some(old), Some(new)) => old != new,
            _ => true,
        };
        let unassigned = |row: &Value| row.get("assigned_user_id").map(Value::is_null);
        let moves_in_time = differs("created_at") || differs("last_message_time");
        moves_in_time
            || filter.meaning().into_iter().any(|meaning| match meaning {
                Meaning::Archived(_) => differs("archived"),
                Meaning::Status(_) => differs("conversation_status"),
                Meaning::Priority(_) => differs("priority"),
                Meaning::Unassigned => unassigned(&self.old).is_none() || unassigned(&self.old) != unassigned(&self.new),
                Meaning::AssignedToCaller => differs("assigned_user_id"),
                Meaning::FavoriteOfCaller => false,
            })
    }
}

/// What a page becomes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Carried {
    /// The writes do not change it.
    Unchanged,
    /// The page with the written contacts' rows replaced.
    Patched(String),
}

/// `body` (a page of `query`, as `caller` reads it) after `updates` in order, or `None` when one
/// of them may change more than a row in place (the page must be read from the database).
pub fn carry(body: &str, query: &ContactQuery, caller: &UserId, updates: &[ContactUpdate]) -> Option<Carried> {
    let mut page: Option<ContactListResponse> = None;
    for update in updates {
        if update.board() != Some(query.board_id.as_str()) {
            continue;
        }
        let parsed = match page.as_mut() {
            Some(parsed) => parsed,
            None => page.insert(serde_json::from_str(body).ok()?),
        };
        apply(parsed, query, caller, update)?;
    }
    match page {
        None => Some(Carried::Unchanged),
        Some(page) => {
            let patched = serde_json::to_string(&page).ok()?;
            Some(if patched == body { Carried::Unchanged } else { Carried::Patched(patched) })
        }
    }
}

/// One update on a parsed page; `None` when it cannot be carried.
fn apply(page: &mut ContactListResponse, query: &ContactQuery, caller: &UserId, update: &ContactUpdate) -> Option<()> {
    let id = update.id()?;
    let conditions = query.conditions(caller);
    let listed_before = listed(&conditions, &update.old)?;
    let listed_after = listed(&conditions, &update.new)?;
    let on_page = page.data.contacts.iter().position(|contact| contact.id == id);
    if listed_before != listed_after {
        return None; // it enters or leaves the list: the contacts after it move
    }
    if !listed_after {
        // In the list neither before nor after: the page cannot show it.
        return on_page.is_none().then_some(());
    }
    let sort = query.sort_by.as_str();
    if update.old.get(sort)? != update.new.get(sort)? {
        return None; // it moves within the list
    }
    match on_page {
        None => Some(()),
        Some(at) => {
            page.data.contacts[at] = patched(&page.data.contacts[at], update)?;
            Some(())
        }
    }
}

/// Whether a row is in the list of `conditions`: `Some(true)` may also mean "in it for the same
/// reason before and after" (who favorited a contact is not in its row, and a contacts update
/// does not change it). `None` when the row cannot tell (a search, a missing field).
fn listed(conditions: &[Condition], row: &Value) -> Option<bool> {
    let text = |field: &str| -> Option<Option<&str>> {
        match row.get(field)? {
            Value::Null => Some(None),
            Value::String(s) => Some(Some(s.as_str())),
            _ => None,
        }
    };
    let mut all = true;
    for condition in conditions {
        let holds = match condition {
            Condition::Archived(archived) => row.get("archived")?.as_bool()? == *archived,
            Condition::Status(status) => text("conversation_status")? == Some(status.as_str()),
            Condition::Priority(priority) => text("priority")? == Some(priority.as_str()),
            Condition::Unassigned => text("assigned_user_id")?.is_none(),
            Condition::AssignedTo(user) => text("assigned_user_id")? == Some(user.as_str()),
            Condition::Column(column) => text("board_column_id")? == Some(column.as_str()),
            Condition::FavoriteOf(_) => true,
            Condition::Search(_) => return None,
        };
        all &= holds;
    }
    Some(all)
}

/// The listed contact with the update's new row. Timestamps are kept as the page has them and
/// must not have changed: the database encodes them per session, so a new one is read again.
fn patched(listed: &Contact, update: &ContactUpdate) -> Option<Contact> {
    let (old, new) = (&update.old, &update.new);
    let unchanged = |field: &str| old.get(field).is_some() && old.get(field) == new.get(field);
    if !unchanged("created_at") || !unchanged("last_message_time") {
        return None;
    }
    let text = |field: &str| -> Option<Option<String>> {
        match new.get(field)? {
            Value::Null => Some(None),
            Value::String(s) => Some(Some(s.clone())),
            _ => None,
        }
    };
    Some(Contact {
        id: listed.id.clone(),
        name: text("name")??,
        email: text("email")?,
        phone: text("phone")?,
        conversation_status: text("conversation_status")??,
        priority: text("priority")?,
        last_message_time: listed.last_message_time.clone(),
        assigned_user_id: text("assigned_user_id")?,
        board_column_id: text("board_column_id")?,
        created_at: listed.created_at.clone(),
    })
}

#[cfg(test)]
mod tests;
