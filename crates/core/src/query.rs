//! Raw query strings to a validated [`ContactQuery`]: parse once at the edge, trust afterwards.

use crate::cursor::{Cursor, Keyset};
use crate::filter::{ConversationStatus, Filter, Meaning, Priority};
use std::fmt;

/// A parameter that cannot be used, naming it: answered as 400 with
/// `{"code": "invalid_parameter", "message", "field"}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct QueryError {
    pub field: String,
    pub message: String,
}

impl QueryError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into() }
    }
}

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Parses a UUID (any case, optionally braced by nothing else) into its canonical
            /// lowercase form; `field` names the parameter in the error.
            pub fn parse(field: &str, raw: &str) -> Result<Self, QueryError> {
                canonical_uuid(raw)
                    .map(Self)
                    .ok_or_else(|| QueryError::new(field, format!("{field} must be a UUID")))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            /// Only a UUID deserializes, in its canonical form.
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let raw = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                Self::parse(stringify!($name), &raw).map_err(serde::de::Error::custom)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

uuid_id!(
    /// A board's id.
    BoardId
);
uuid_id!(
    /// A workspace's id.
    WorkspaceId
);
uuid_id!(
    /// A user's id (the JWT's `sub`).
    UserId
);
uuid_id!(
    /// A board column's id.
    ColumnId
);

/// `8-4-4-4-12` hex digits, lowercased; `None` for anything else.
fn canonical_uuid(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    let well_formed = bytes.len() == 36
        && bytes.iter().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => *b == b'-',
            _ => b.is_ascii_hexdigit(),
        });
    well_formed.then(|| raw.to_ascii_lowercase())
}

/// Filters as the API names them, and as conditions for one caller.
impl Filter {
    pub fn parse(raw: &str) -> Result<Self, QueryError> {
        Self::ALL.into_iter().find(|f| f.as_str() == raw).ok_or_else(|| {
            let names: Vec<_> = Self::ALL.iter().map(|f| f.as_str()).collect();
            QueryError::new("filter", format!("filter must be one of {}", names.join(", ")))
        })
    }

    /// What the filter means, as conditions on a contact, for the user `caller`.
    pub fn conditions(self, caller: &UserId) -> Vec<Condition> {
        self.meaning().into_iter().map(|meaning| meaning.for_caller(caller)).collect()
    }

    /// The name of the counter the database keeps of this filter's list for `caller` on each
    /// board (`contact_list_counts.list`, kept by supabase/migrations/…_list_counts.sql).
    pub fn counter(self, caller: &UserId) -> String {
        match self {
            Filter::AssignedToMe => format!("assigned:{caller}"),
            Filter::Favorites => format!("favorites:{caller}"),
            other => other.as_str().to_owned(),
        }
    }
}

impl Meaning {
    /// The condition this means when `caller` asks.
    pub fn for_caller(self, caller: &UserId) -> Condition {
        match self {
            Self::Archived(archived) => Condition::Archived(archived),
            Self::Status(status) => Condition::Status(status),
            Self::Priority(priority) => Condition::Priority(priority),
            Self::Unassigned => Condition::Unassigned,
            Self::AssignedToCaller => Condition::AssignedTo(caller.clone()),
            Self::FavoriteOfCaller => Condition::FavoriteOf(caller.clone()),
        }
    }
}

/// One condition a listed contact must meet; a query is their conjunction. The PostgREST and
/// SQL translations both start from these, so the two read paths cannot disagree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    Archived(bool),
    Status(ConversationStatus),
    Priority(Priority),
    Unassigned,
    AssignedTo(UserId),
    FavoriteOf(UserId),
    Column(ColumnId),
    Search(SearchTerm),
}

/// The field a list is sorted by; ties are always broken by `id` in the same direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SortField {
    CreatedAt,
    LastMessageTime,
    Name,
}

impl SortField {
    pub const ALL: [SortField; 3] = [SortField::CreatedAt, SortField::LastMessageTime, SortField::Name];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::CreatedAt => "created_at",
            Self::LastMessageTime => "last_message_time",
            Self::Name => "name",
        }
    }

    /// Whether the column can be null (nulls then sort last in both directions).
    pub fn nullable(self) -> bool {
        matches!(self, Self::LastMessageTime)
    }

    fn parse(raw: &str) -> Result<Self, QueryError> {
        Self::ALL.into_iter().find(|f| f.as_str() == raw).ok_or_else(|| {
            QueryError::new("sortBy", "sortBy must be one of created_at, last_message_time, name")
        })
    }
}

/// Sort direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SortOrder {
    Asc,
    Desc,
}

impl SortOrder {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Asc => "asc",
            Self::Desc => "desc",
        }
    }

    fn parse(raw: &str) -> Result<Self, QueryError> {
        match raw {
            "asc" => Ok(Self::Asc),
            "desc" => Ok(Self::Desc),
            _ => Err(QueryError::new("sortOrder", "sortOrder must be asc or desc")),
        }
    }
}

/// A 1-based page number, at most [`Page::MAX`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Page(u32);

impl Page {
    pub const MAX: u32 = 10_000;

    pub fn get(self) -> u32 {
        self.0
    }

    fn parse(raw: &str) -> Result<Self, QueryError> {
        match raw.parse::<u32>() {
            Ok(n) if (1..=Self::MAX).contains(&n) => Ok(Self(n)),
            _ => Err(QueryError::new("page", format!("page must be a whole number from 1 to {}", Self::MAX))),
        }
    }
}

/// Contacts per page, 1 to 100.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PageSize(u8);

impl PageSize {
    pub const MAX: u8 = 100;
    pub const DEFAULT: PageSize = PageSize(50);

    pub fn get(self) -> u8 {
        self.0
    }

    fn parse(raw: &str) -> Result<Self, QueryError> {
        match raw.parse::<u8>() {
            Ok(n) if (1..=Self::MAX).contains(&n) => Ok(Self(n)),
            _ => Err(QueryError::new("pageSize", format!("pageSize must be a whole number from 1 to {}", Self::MAX))),
        }
    }
}

/// A search term: trimmed, 1 to [`SearchTerm::MAX_CHARS`] characters, no control characters.
/// Matched literally (case-insensitive substring) against name, email and phone.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SearchTerm(String);

impl SearchTerm {
    pub const MAX_CHARS: usize = 100;

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether a trigram index can serve the term: it has three letters or digits in a row
    /// (pg_trgm takes trigrams from runs of them). Shorter ones would make the index scan all
    /// of itself, so they are matched by walking the list instead.
    pub fn has_trigram(&self) -> bool {
        let mut run = 0;
        self.0.chars().any(|ch| {
            run = if ch.is_alphanumeric() { run + 1 } else { 0 };
            run >= 3
        })
    }

    /// How many matches make a term narrowed by its character pairs ([`Self::short_grams`])
    /// common: a list is counted through the pairs' index only when it has fewer. Counting
    /// through that index tests the pairs of every contact it cannot tell apart (about 18 µs a
    /// contact: 3.9 s for `a`'s 217,917 matches at 1,000,000 contacts), so a common term's list
    /// is counted by one pass over the list instead (about 0.2 s for 220,000 contacts). Telling
    /// the two apart reads at most this many matches (about 20 ms for `a`).
    pub const COMMON_MATCHES: u64 = 1000;

    /// For a term without a trigram whose characters are all ASCII: its distinct lower-cased
    /// pairs of adjacent characters (the character itself for a one-character term), sorted.
    /// A contact that matches the term case-insensitively has all of them in the field it
    /// matches, lower-cased, so they narrow a search through the index of those pairs
    /// (`search_grams`, supabase/migrations/20250127001000_short_search.sql) beside its own
    /// match. `None` otherwise: a term with a trigram has the trigram indexes, and a non-ASCII
    /// character's lower case may differ between Rust and the database's locale.
    pub fn short_grams(&self) -> Option<Vec<String>> {
        if self.has_trigram() || !self.0.is_ascii() {
            return None;
        }
        let lower = self.0.to_ascii_lowercase();
        let mut grams: Vec<String> = if lower.len() == 1 {
            vec![lower]
        } else {
            // ASCII: every byte is a character, so each window of two is a pair of them.
            (0..lower.len() - 1).map(|i| lower[i..i + 2].to_owned()).collect()
        };
        grams.sort_unstable();
        grams.dedup();
        Some(grams)
    }

    /// `None` for an empty (or all-blank) term.
    fn parse(raw: &str) -> Result<Option<Self>, QueryError> {
        let term = raw.trim();
        if term.is_empty() {
            return Ok(None);
        }
        if term.chars().count() > Self::MAX_CHARS {
            return Err(QueryError::new("search", format!("search must be at most {} characters", Self::MAX_CHARS)));
        }
        if term.chars().any(char::is_control) {
            return Err(QueryError::new("search", "search must not contain control characters"));
        }
        Ok(Some(Self(term.to_owned())))
    }
}

/// A validated contact list request: everything after the parser trusts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactQuery {
    pub board_id: BoardId,
    pub page: Page,
    pub page_size: PageSize,
    pub filter: Filter,
    pub search: Option<SearchTerm>,
    pub assigned_to: Option<UserId>,
    pub sort_by: SortField,
    pub sort_order: SortOrder,
    pub column_id: Option<ColumnId>,
    /// Where the page starts, instead of its number: a cursor of this list (then `page` is 1).
    pub cursor: Option<Cursor>,
}

/// The query parameters the API knows; others are ignored (they cannot change the answer).
const KNOWN: [&str; 9] = ["page", "pageSize", "filter", "search", "assignedTo", "sortBy", "sortOrder", "columnId", "cursor"];

impl ContactQuery {
    /// Parses the path's board id and the raw (percent-encoded) query string. Empty values mean
    /// the default; a parameter given twice is an error, since either reading would be a guess.
    pub fn parse(board_id: &str, query_string: &str) -> Result<Self, QueryError> {
        let board_id = BoardId::parse("boardId", board_id)?;
        let mut values: [Option<String>; KNOWN.len()] = Default::default();
        for (name, value) in form_urlencoded::parse(query_string.trim_start_matches('?').as_bytes()) {
            if let Some(slot) = KNOWN.iter().position(|known| *known == name) {
                if values[slot].is_some() {
                    return Err(QueryError::new(KNOWN[slot], format!("{} is given more than once", KNOWN[slot])));
                }
                values[slot] = Some(value.into_owned());
            }
        }
        let get = |name: &str| {
            let slot = KNOWN.iter().position(|known| *known == name).expect("a known parameter");
            values[slot].as_deref().map(str::trim).filter(|v| !v.is_empty())
        };
        let mut query = Self {
            board_id,
            page: get("page").map_or(Ok(Page(1)), Page::parse)?,
            page_size: get("pageSize").map_or(Ok(PageSize::DEFAULT), PageSize::parse)?,
            filter: get("filter").map_or(Ok(Filter::All), Filter::parse)?,
            search: get("search").map_or(Ok(None), SearchTerm::parse)?,
            assigned_to: get("assignedTo").map(|raw| UserId::parse("assignedTo", raw)).transpose()?,
            sort_by: get("sortBy").map_or(Ok(SortField::CreatedAt), SortField::parse)?,
            sort_order: get("sortOrder").map_or(Ok(SortOrder::Desc), SortOrder::parse)?,
            column_id: get("columnId").map(|raw| ColumnId::parse("columnId", raw)).transpose()?,
            cursor: None,
        };
        if let Some(raw) = get("cursor") {
            if query.page.get() != 1 {
                return Err(QueryError::new("cursor", "cursor and page cannot be given together: a cursor names where its page starts"));
            }
            query.cursor = Some(Cursor::decode(raw, &query.binding(), query.sort_by)?);
        }
        Ok(query)
    }

    /// What a cursor of this list is bound to: the board and every parameter that shapes the
    /// list and its pages, but not the page or cursor itself. A board belongs to one workspace,
    /// so this binds the workspace too.
    pub fn binding(&self) -> String {
        let mut out = form_urlencoded::Serializer::new(String::new());
        out.append_pair("board", self.board_id.as_str());
        self.list_pairs(&mut out);
        out.finish()
    }

    /// The keyset read of a cursor page; `None` for a numbered page (read by offset).
    pub fn keyset(&self) -> Option<Keyset<'_>> {
        self.cursor.as_ref().map(|cursor| Keyset { field: self.sort_by, order: self.sort_order, cursor })
    }

    fn list_pairs(&self, out: &mut form_urlencoded::Serializer<'_, String>) {
        out.append_pair("pageSize", &self.page_size.get().to_string())
            .append_pair("filter", self.filter.as_str())
            .append_pair("sortBy", self.sort_by.as_str())
            .append_pair("sortOrder", self.sort_order.as_str());
        if let Some(search) = &self.search {
            out.append_pair("search", search.as_str());
        }
        if let Some(assigned) = &self.assigned_to {
            out.append_pair("assignedTo", assigned.as_str());
        }
        if let Some(column) = &self.column_id {
            out.append_pair("columnId", column.as_str());
        }
    }

    /// Every condition a listed contact meets (the board aside), for the user `caller`.
    pub fn conditions(&self, caller: &UserId) -> Vec<Condition> {
        let mut conditions = self.filter.conditions(caller);
        conditions.extend(self.assigned_to.clone().map(Condition::AssignedTo));
        conditions.extend(self.column_id.clone().map(Condition::Column));
        conditions.extend(self.search.clone().map(Condition::Search));
        conditions
    }

    /// Whether the list is narrowed beyond its filter (a search, `assignedTo`, `columnId`): no
    /// counter holds its total, which must be counted (once per list).
    pub fn is_narrowed(&self) -> bool {
        self.search.is_some() || self.assigned_to.is_some() || self.column_id.is_some()
    }

    /// The counter holding this list's total for `caller`, unless the list is narrowed.
    pub fn counter(&self, caller: &UserId) -> Option<String> {
        (!self.is_narrowed()).then(|| self.filter.counter(caller))
    }

    /// Rows to skip before this page.
    pub fn offset(&self) -> u64 {
        u64::from(self.page.get() - 1) * u64::from(self.page_size.get())
    }

    /// Whether the answer depends on who asks.
    pub fn is_user_relative(&self) -> bool {
        self.filter.is_user_relative()
    }

    /// The normalized query string: every parameter with its effective value, in a fixed order,
    /// so equal queries print equally whatever order or defaults the request used.
    pub fn canonical_query_string(&self) -> String {
        let mut out = form_urlencoded::Serializer::new(String::new());
        match &self.cursor {
            Some(cursor) => out.append_pair("cursor", &cursor.encode(&self.binding())),
            None => out.append_pair("page", &self.page.get().to_string()),
        };
        self.list_pairs(&mut out);
        out.finish()
    }
}

#[cfg(test)]
mod tests;
