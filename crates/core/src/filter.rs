//! The spec's list filters and what each means, written once: `query` turns a meaning into
//! conditions for one caller (which the SQL and PostgREST translations turn into queries), and
//! the invalidation rules test it against what is known of a changed contact.

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

    /// Whether the filter's meaning depends on who asks (so its results are per user).
    pub fn is_user_relative(self) -> bool {
        matches!(self, Filter::AssignedToMe | Filter::Favorites)
    }

    /// What the filter means, relative to whoever asks. This is the one place it is written:
    /// the SQL and PostgREST translations and the invalidation rules all start from it.
    pub fn meaning(self) -> Vec<Meaning> {
        let live = Meaning::Archived(false);
        match self {
            Filter::All => vec![live],
            Filter::Open => vec![live, Meaning::Status(ConversationStatus::Open)],
            Filter::Closed => vec![live, Meaning::Status(ConversationStatus::Closed)],
            Filter::Unassigned => vec![live, Meaning::Unassigned],
            Filter::AssignedToMe => vec![live, Meaning::AssignedToCaller],
            Filter::HighPriority => vec![live, Meaning::Priority(Priority::High)],
            Filter::MediumPriority => vec![live, Meaning::Priority(Priority::Medium)],
            Filter::LowPriority => vec![live, Meaning::Priority(Priority::Low)],
            Filter::Favorites => vec![live, Meaning::FavoriteOfCaller],
            Filter::Archived => vec![Meaning::Archived(true)],
        }
    }

    /// Whether a contact known by `facts` may be in this filter's list, for some caller.
    pub fn may_hold(self, facts: &Facts) -> bool {
        self.meaning().into_iter().all(|meaning| meaning.may_hold(facts))
    }
}

/// One part of a filter's meaning, relative to whoever asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Meaning {
    Archived(bool),
    Status(ConversationStatus),
    Priority(Priority),
    Unassigned,
    AssignedToCaller,
    FavoriteOfCaller,
}

impl Meaning {
    /// Whether a contact known by `facts` may meet this, for some caller: `false` only when the
    /// facts rule it out (who favorited a contact is never among them).
    pub fn may_hold(self, facts: &Facts) -> bool {
        match self {
            Self::Archived(archived) => facts.archived.is_none_or(|known| known == archived),
            Self::Status(status) => facts.status.is_none_or(|known| known == status),
            Self::Priority(priority) => facts.priority.is_none_or(|known| known == Some(priority)),
            Self::Unassigned => facts.assigned.is_none_or(|assigned| !assigned),
            Self::AssignedToCaller => facts.assigned.is_none_or(|assigned| assigned),
            Self::FavoriteOfCaller => true,
        }
    }
}

/// What is known of a contact's fields that the filters read; `None` where unknown (any value).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Facts {
    pub archived: Option<bool>,
    pub status: Option<ConversationStatus>,
    /// `Some(None)`: known to have no priority.
    pub priority: Option<Option<Priority>>,
    /// Whether it is assigned to someone.
    pub assigned: Option<bool>,
}

/// `conversation_status` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConversationStatus {
    Open,
    Closed,
}

impl ConversationStatus {
    pub const ALL: [ConversationStatus; 2] = [Self::Open, Self::Closed];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "Open",
            Self::Closed => "Closed",
        }
    }

    /// The status stored as `raw`, if it is one.
    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
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
    pub const ALL: [Priority; 3] = [Self::High, Self::Medium, Self::Low];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::High => "high",
            Self::Medium => "medium",
            Self::Low => "low",
        }
    }

    /// The priority stored as `raw`, if it is one.
    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == raw)
    }
}
