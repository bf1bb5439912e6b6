//! What to invalidate: events (API calls and database changes) mapped to the generation scopes
//! they affect, and cache key patterns confined to one workspace.

use crate::generation::Scope;
use crate::filter::{ConversationStatus, Facts, Filter, Priority};
use crate::query::{BoardId, WorkspaceId};
use serde::Deserialize;
use std::collections::BTreeSet;

/// Characters a pattern may use after its workspace: key characters and the `*` wildcard. Redis
/// glob syntax beyond `*` (`?`, `[...]`, `\`) and hash-tag braces are refused.
fn allowed_tail_char(ch: char) -> bool {
    ch.is_ascii_alphanumeric() || matches!(ch, ':' | '-' | '_' | '.' | '*')
}

/// The longest pattern accepted.
pub const MAX_PATTERN_LEN: usize = 300;

/// A validated invalidation pattern: a Redis `MATCH` glob inside one workspace's keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPattern {
    pub workspace: WorkspaceId,
    /// The glob in the stored keys' format (workspace in a hash tag).
    pub glob: String,
}

/// Why a pattern was refused (answered as 400 naming `pattern`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("pattern {0}")]
pub struct PatternError(&'static str);

impl KeyPattern {
    /// Parses `contacts:<workspace>…` or `counts:<workspace>…`, with the workspace written bare
    /// (the spec's form, `contacts:ws:open:*`) or in braces (the stored form). What follows the
    /// workspace must be empty, `*`, or start with `:`.
    pub fn parse(raw: &str) -> Result<Self, PatternError> {
        if raw.len() > MAX_PATTERN_LEN {
            return Err(PatternError("is too long"));
        }
        let (namespace, rest) = ["contacts:", "counts:"]
            .iter()
            .find_map(|ns| raw.strip_prefix(ns).map(|rest| (*ns, rest)))
            .ok_or(PatternError("must start with contacts: or counts:"))?;
        let (workspace, tail) = match rest.strip_prefix('{') {
            Some(braced) => {
                let end = braced.find('}').ok_or(PatternError("has an unclosed {"))?;
                (&braced[..end], &braced[end + 1..])
            }
            None => rest.split_at(rest.len().min(36)),
        };
        let workspace = WorkspaceId::parse("pattern", workspace)
            .map_err(|_| PatternError("must name one workspace by its id, without wildcards"))?;
        if !(tail.is_empty() || tail == "*" || tail.starts_with(':')) {
            return Err(PatternError("must continue after the workspace with : or *"));
        }
        if !tail.chars().all(allowed_tail_char) {
            return Err(PatternError("may contain only letters, digits, : - _ . and *"));
        }
        Ok(Self { glob: format!("{namespace}{{{workspace}}}{tail}"), workspace })
    }

    /// The glob covering every key of a workspace in `namespace` (`contacts` or `counts`).
    pub fn whole_workspace(namespace: &str, workspace: &WorkspaceId) -> Self {
        Self { glob: format!("{namespace}:{{{workspace}}}*"), workspace: workspace.clone() }
    }
}

impl KeyPattern {
    /// The scopes a pattern covers: the filter named after the workspace (`contacts:ws:open:*`),
    /// every list scope for any other `contacts:` pattern, the counts for `counts:` patterns.
    pub fn scopes(&self) -> Vec<Scope> {
        let after = |prefix: &str| self.glob.strip_prefix(&format!("{prefix}:{{{}}}", self.workspace)).map(str::to_owned);
        if after("counts").is_some() {
            return vec![Scope::Counts];
        }
        let tail = after("contacts").unwrap_or_default();
        let named = tail.strip_prefix(':').and_then(|t| t.split(':').next()).and_then(|f| Filter::parse(f).ok());
        match named {
            Some(filter) => vec![Scope::List(filter)],
            None => Scope::all_lists(),
        }
    }
}

/// What is known of a contact before or after a change. Missing fields are unknown, and an
/// unknown field is assumed to take any value, so the mapping errs towards invalidating more.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct ContactState {
    #[serde(default, alias = "status")]
    pub conversation_status: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub priority: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub assigned_user_id: Option<Option<String>>,
    #[serde(default)]
    pub archived: Option<bool>,
}

/// Distinguishes a field that is absent (`None`) from one that is `null` (`Some(None)`).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

impl ContactState {
    /// Whether every field the filters read is known.
    fn is_known(&self) -> bool {
        self.conversation_status.is_some() && self.priority.is_some() && self.assigned_user_id.is_some() && self.archived.is_some()
    }

    /// What this state says of the fields the filters read; a value that is not one the API
    /// knows counts as unknown.
    fn facts(&self) -> Facts {
        Facts {
            archived: self.archived,
            status: self.conversation_status.as_deref().and_then(ConversationStatus::parse),
            priority: match &self.priority {
                Some(Some(raw)) => Priority::parse(raw).map(Some),
                Some(None) => Some(None),
                None => None,
            },
            assigned: self.assigned_user_id.as_ref().map(Option::is_some),
        }
    }

    /// The filters whose lists may hold a contact in this state (`favorites` aside: it depends
    /// on who favorited it, which a contact's row does not say).
    pub fn filters(&self) -> BTreeSet<Filter> {
        let facts = self.facts();
        Filter::ALL.into_iter().filter(|f| *f != Filter::Favorites && f.may_hold(&facts)).collect()
    }
}

/// The spec's invalidation events, with what each needs to know.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type")]
pub enum Event {
    #[serde(rename = "contact:created")]
    ContactCreated {
        #[serde(default, flatten)]
        contact: ContactState,
    },
    #[serde(rename = "contact:updated")]
    ContactUpdated {
        #[serde(default)]
        old: Option<ContactState>,
        #[serde(default, rename = "new")]
        new: Option<ContactState>,
    },
    #[serde(rename = "contact:deleted")]
    ContactDeleted {
        #[serde(default, flatten)]
        contact: Option<ContactState>,
    },
    #[serde(rename = "contact:moved")]
    ContactMoved,
    #[serde(rename = "contact:assigned")]
    ContactAssigned,
    #[serde(rename = "contact:unassigned")]
    ContactUnassigned,
    #[serde(rename = "contact:favorited")]
    ContactFavorited,
    #[serde(rename = "board:updated")]
    BoardUpdated,
    #[serde(rename = "board:deleted")]
    BoardDeleted,
    #[serde(rename = "column:created")]
    ColumnCreated,
    #[serde(rename = "column:deleted")]
    ColumnDeleted,
}

impl Event {
    /// The generation scopes this event makes stale. This is the table in docs/invalidation-and-freshness.md.
    pub fn scopes(&self) -> BTreeSet<Scope> {
        let lists = |filters: BTreeSet<Filter>| filters.into_iter().map(Scope::List).collect::<BTreeSet<_>>();
        let with_counts = |mut scopes: BTreeSet<Scope>| {
            scopes.insert(Scope::Counts);
            scopes
        };
        match self {
            Event::ContactCreated { contact } => with_counts(lists(contact.filters())),
            Event::ContactUpdated { old: Some(old), new: Some(new) } => {
                let mut filters = old.filters();
                filters.extend(new.filters());
                filters.insert(Filter::Favorites);
                // A change the filters do not read (a new name, say) changes no count.
                if old.is_known() && old == new { lists(filters) } else { with_counts(lists(filters)) }
            }
            Event::ContactUpdated { .. } | Event::ContactDeleted { contact: None } => Scope::all().into_iter().collect(),
            Event::ContactDeleted { contact: Some(contact) } => {
                let mut filters = contact.filters();
                filters.insert(Filter::Favorites);
                with_counts(lists(filters))
            }
            Event::ContactMoved | Event::BoardDeleted => Scope::all().into_iter().collect(),
            Event::ContactAssigned | Event::ContactUnassigned => {
                with_counts(lists([Filter::Unassigned, Filter::AssignedToMe].into()))
            }
            Event::ContactFavorited => with_counts(lists([Filter::Favorites].into())),
            Event::BoardUpdated | Event::ColumnDeleted => Scope::all_lists().into_iter().collect(),
            Event::ColumnCreated => BTreeSet::new(),
        }
    }
}

/// A row change as PostgreSQL triggers and Supabase Database Webhooks describe it.
#[derive(Debug, Clone, Deserialize)]
pub struct RowChange {
    #[serde(rename = "type")]
    pub kind: String,
    pub table: String,
    #[serde(default)]
    pub schema: Option<String>,
    #[serde(default)]
    pub record: Option<serde_json::Value>,
    #[serde(default)]
    pub old_record: Option<serde_json::Value>,
    /// When the row changed, in milliseconds since the epoch by PostgreSQL's clock, as the change
    /// capture triggers stamp it (just before the commit). The staleness bound of what it
    /// supersedes runs from then, not from when the change reached the worker.
    #[serde(default)]
    pub changed_at: Option<u64>,
    /// Its sequence in the outbox, when the backend's change capture delivered it (see
    /// `crate::applied`).
    #[serde(default)]
    pub outbox_seq: Option<u64>,
}

impl RowChange {
    /// The boards whose lists the change reaches: the row's board before and after (a move
    /// reaches both), the board itself for `boards`, the column's board for `board_columns`.
    /// `None` when the row does not say (a favorite names only its contact): then every board of
    /// its workspace.
    pub fn boards(&self) -> Option<BTreeSet<BoardId>> {
        let field = match self.table.as_str() {
            "boards" => "id",
            "contacts" | "board_columns" => "board_id",
            _ => return None,
        };
        let rows = [&self.record, &self.old_record].into_iter().flatten();
        let ids: BTreeSet<BoardId> = rows.filter_map(|row| row.get(field)?.as_str().and_then(|id| BoardId::parse(field, id).ok())).collect();
        (!ids.is_empty()).then_some(ids)
    }

    /// The workspace and event a change means, or `None` for changes that affect no cached list
    /// (other tables, a new board).
    pub fn event(&self) -> Option<(WorkspaceId, Event)> {
        let row = self.record.as_ref().or(self.old_record.as_ref())?;
        let workspace = WorkspaceId::parse("workspace_id", row.get("workspace_id")?.as_str()?).ok()?;
        let state = |value: &Option<serde_json::Value>| value.as_ref().and_then(|v| serde_json::from_value::<ContactState>(v.clone()).ok());
        let changed = |field: &str| {
            let get = |v: &Option<serde_json::Value>| v.as_ref().and_then(|v| v.get(field).cloned());
            get(&self.record) != get(&self.old_record)
        };
        let event = match (self.table.as_str(), self.kind.as_str()) {
            ("contacts", "INSERT") => Event::ContactCreated { contact: state(&self.record)? },
            ("contacts", "DELETE") => Event::ContactDeleted { contact: state(&self.old_record) },
            ("contacts", "UPDATE") if changed("board_id") || changed("board_column_id") => Event::ContactMoved,
            ("contacts", "UPDATE") => Event::ContactUpdated { old: state(&self.old_record), new: state(&self.record) },
            ("contact_favorites", "INSERT" | "DELETE") => Event::ContactFavorited,
            ("boards", "UPDATE") => Event::BoardUpdated,
            ("boards", "DELETE") => Event::BoardDeleted,
            ("board_columns", "INSERT") => Event::ColumnCreated,
            ("board_columns", "DELETE") => Event::ColumnDeleted,
            _ => return None,
        };
        Some((workspace, event))
    }
}

#[cfg(test)]
mod tests;
