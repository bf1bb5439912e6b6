//! Raw query strings to a validated [`ContactQuery`]: parse once at the edge, trust afterwards.

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

/// The list filters of the spec. Every filter but `Archived` excludes archived contacts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Filter {
    All,
    Open,
    Closed,
    Unassigned,
    AssignedToMe,
    HighPriority,
    MediumPriority,
    LowPriority,
    Favorites,
    Archived,
}

impl Filter {
    /// Every filter, in the spec's order.
    pub const ALL: [Filter; 10] = [
        Filter::All,
        Filter::Open,
        Filter::Closed,
        Filter::Unassigned,
        Filter::AssignedToMe,
        Filter::HighPriority,
        Filter::MediumPriority,
        Filter::LowPriority,
        Filter::Favorites,
        Filter::Archived,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Filter::All => "all",
            Filter::Open => "open",
            Filter::Closed => "closed",
            Filter::Unassigned => "unassigned",
            Filter::AssignedToMe => "assigned_to_me",
            Filter::HighPriority => "high_priority",
            Filter::MediumPriority => "medium_priority",
            Filter::LowPriority => "low_priority",
            Filter::Favorites => "favorites",
            Filter::Archived => "archived",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, QueryError> {
        Self::ALL.into_iter().find(|f| f.as_str() == raw).ok_or_else(|| {
            let names: Vec<_> = Self::ALL.iter().map(|f| f.as_str()).collect();
            QueryError::new("filter", format!("filter must be one of {}", names.join(", ")))
        })
    }

    /// Whether the filter's meaning depends on who asks (so its results are per user).
    pub fn is_user_relative(self) -> bool {
        matches!(self, Filter::AssignedToMe | Filter::Favorites)
    }

    /// What the filter means, as conditions on a contact, for the user `caller`.
    pub fn conditions(self, caller: &UserId) -> Vec<Condition> {
        let live = Condition::Archived(false);
        match self {
            Filter::All => vec![live],
            Filter::Open => vec![live, Condition::Status(ConversationStatus::Open)],
            Filter::Closed => vec![live, Condition::Status(ConversationStatus::Closed)],
            Filter::Unassigned => vec![live, Condition::Unassigned],
            Filter::AssignedToMe => vec![live, Condition::AssignedTo(caller.clone())],
            Filter::HighPriority => vec![live, Condition::Priority(Priority::High)],
            Filter::MediumPriority => vec![live, Condition::Priority(Priority::Medium)],
            Filter::LowPriority => vec![live, Condition::Priority(Priority::Low)],
            Filter::Favorites => vec![live, Condition::FavoriteOf(caller.clone())],
            Filter::Archived => vec![Condition::Archived(true)],
        }
    }
}

/// `conversation_status` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConversationStatus {
    Open,
    Closed,
}

impl ConversationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "Open",
            Self::Closed => "Closed",
        }
    }
}

/// `priority` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Priority {
    High,
    Medium,
    Low,
}

impl Priority {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::High => "high",
            Self::Medium => "medium",
            Self::Low => "low",
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
}

/// The query parameters the API knows; others are ignored (they cannot change the answer).
const KNOWN: [&str; 8] = ["page", "pageSize", "filter", "search", "assignedTo", "sortBy", "sortOrder", "columnId"];

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
        Ok(Self {
            board_id,
            page: get("page").map_or(Ok(Page(1)), Page::parse)?,
            page_size: get("pageSize").map_or(Ok(PageSize::DEFAULT), PageSize::parse)?,
            filter: get("filter").map_or(Ok(Filter::All), Filter::parse)?,
            search: get("search").map_or(Ok(None), SearchTerm::parse)?,
            assigned_to: get("assignedTo").map(|raw| UserId::parse("assignedTo", raw)).transpose()?,
            sort_by: get("sortBy").map_or(Ok(SortField::CreatedAt), SortField::parse)?,
            sort_order: get("sortOrder").map_or(Ok(SortOrder::Desc), SortOrder::parse)?,
            column_id: get("columnId").map(|raw| ColumnId::parse("columnId", raw)).transpose()?,
        })
    }

    /// Every condition a listed contact meets (the board aside), for the user `caller`.
    pub fn conditions(&self, caller: &UserId) -> Vec<Condition> {
        let mut conditions = self.filter.conditions(caller);
        conditions.extend(self.assigned_to.clone().map(Condition::AssignedTo));
        conditions.extend(self.column_id.clone().map(Condition::Column));
        conditions.extend(self.search.clone().map(Condition::Search));
        conditions
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
        out.append_pair("page", &self.page.get().to_string())
            .append_pair("pageSize", &self.page_size.get().to_string())
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
        out.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOARD: &str = "b6495e04-5abb-e13f-48ee-5435e1e75895";
    const USER: &str = "d6d77053-92bc-7af6-3332-8bea8c4c6904";

    fn parse(query: &str) -> Result<ContactQuery, QueryError> {
        ContactQuery::parse(BOARD, query)
    }

    #[test]
    fn defaults_follow_the_spec() {
        let q = parse("").unwrap();
        assert_eq!(q.page.get(), 1);
        assert_eq!(q.page_size.get(), 50);
        assert_eq!(q.filter, Filter::All);
        assert_eq!(q.sort_by, SortField::CreatedAt);
        assert_eq!(q.sort_order, SortOrder::Desc);
        assert_eq!((&q.search, &q.assigned_to, &q.column_id), (&None, &None, &None));
        assert_eq!(q.offset(), 0);
    }

    #[test]
    fn every_parameter_is_read() {
        let q = parse(&format!(
            "page=3&pageSize=20&filter=high_priority&search=%20Ann+Lee%20&assignedTo={USER}\
             &sortBy=name&sortOrder=asc&columnId={}",
            USER.to_uppercase()
        ))
        .unwrap();
        assert_eq!(q.page.get(), 3);
        assert_eq!(q.offset(), 40);
        assert_eq!(q.page_size.get(), 20);
        assert_eq!(q.filter, Filter::HighPriority);
        assert_eq!(q.search.unwrap().as_str(), "Ann Lee");
        assert_eq!(q.assigned_to.unwrap().as_str(), USER);
        assert_eq!(q.sort_by, SortField::Name);
        assert_eq!(q.sort_order, SortOrder::Asc);
        assert_eq!(q.column_id.unwrap().as_str(), USER, "UUIDs are lowercased");
    }

    #[test]
    fn every_invalid_value_names_its_parameter() {
        let cases = [
            ("page=0", "page"),
            ("page=-1", "page"),
            ("page=10001", "page"),
            ("page=1.5", "page"),
            ("pageSize=0", "pageSize"),
            ("pageSize=101", "pageSize"),
            ("pageSize=abc", "pageSize"),
            ("filter=everything", "filter"),
            ("filter=OPEN", "filter"),
            ("sortBy=email", "sortBy"),
            ("sortOrder=up", "sortOrder"),
            ("assignedTo=bob", "assignedTo"),
            ("columnId=col_1", "columnId"),
            ("search=%00", "search"),
            ("page=1&page=2", "page"),
        ];
        for (query, field) in cases {
            assert_eq!(parse(query).unwrap_err().field, field, "{query}");
        }
        let long = format!("search={}", "a".repeat(101));
        assert_eq!(parse(&long).unwrap_err().field, "search");
        assert_eq!(ContactQuery::parse("board_123", "").unwrap_err().field, "boardId");
    }

    #[test]
    fn empty_values_mean_the_default_and_unknown_parameters_are_ignored() {
        assert_eq!(parse("page=&filter=&search=+&utm_source=x&_t=1").unwrap(), parse("").unwrap());
    }

    #[test]
    fn parameter_order_does_not_matter() {
        let a = parse("filter=open&page=2&sortBy=name").unwrap();
        let b = parse("sortBy=name&page=2&filter=open").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.canonical_query_string(), b.canonical_query_string());
        assert_eq!(
            a.canonical_query_string(),
            "page=2&pageSize=50&filter=open&sortBy=name&sortOrder=desc"
        );
    }

    #[test]
    fn filters_mean_what_the_spec_says() {
        let me = UserId::parse("sub", USER).unwrap();
        assert_eq!(Filter::All.conditions(&me), vec![Condition::Archived(false)]);
        assert_eq!(Filter::Archived.conditions(&me), vec![Condition::Archived(true)]);
        assert_eq!(
            Filter::AssignedToMe.conditions(&me),
            vec![Condition::Archived(false), Condition::AssignedTo(me.clone())]
        );
        assert!(Filter::ALL.iter().all(|f| f.conditions(&me).contains(&Condition::Archived(*f == Filter::Archived))));
        let user_relative: Vec<_> = Filter::ALL.into_iter().filter(|f| f.is_user_relative()).collect();
        assert_eq!(user_relative, vec![Filter::AssignedToMe, Filter::Favorites]);
        for filter in Filter::ALL {
            assert_eq!(Filter::parse(filter.as_str()), Ok(filter));
        }
    }

    #[test]
    fn extra_parameters_add_conditions() {
        let me = UserId::parse("sub", USER).unwrap();
        let q = parse(&format!("filter=open&assignedTo={USER}&columnId={USER}&search=x")).unwrap();
        assert_eq!(q.conditions(&me).len(), 5);
    }
}
