//! Cursors: opaque tokens naming the edge row of a page (its sort key and id), bound to the list
//! they came from, and the keyset reads they stand for.
//!
//! A token is base64url (no padding) of `version | direction | id (16 bytes) | key` followed by
//! a 16-byte tag: SHA-256 of the list's binding ([`ContactQuery::binding`]: board, page size,
//! filter, sort, order, search, `assignedTo`, `columnId`) and the bytes before it. A token changed
//! in transit, or given to another list, fails the tag and is refused (400 naming `cursor`).
//! The tag is not keyed: a client able to compute it can forge a cursor, but a forged cursor
//! only places the page at another position of a list the caller may read anyway (every value
//! in it is validated and bound as a parameter), which numbered pages reach too.
//!
//! A cursor page is read by keyset, `(sort key, id)` past the edge row in the list's order,
//! through the same index as the first page: its cost is the page, not its depth. Nulls (only
//! `last_message_time` has them) sort last in both directions, so a list is two runs, the rows
//! with a value then the rows without; a page that crosses from one to the other reads both
//! ([`Keyset::runs`]).

use crate::envelope::Contact;
use crate::query::{ContactQuery, QueryError, SortField, SortOrder};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sha2::{Digest, Sha256};

/// Which way from its edge row a cursor reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// The rows after the edge row (`nextCursor`).
    After,
    /// The rows before it (`prevCursor`), read backwards and served in the list's order.
    Before,
}

/// A decoded cursor: its direction and edge row. Only [`Cursor::decode`] (against the list's
/// binding) and the page answers make one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Cursor {
    pub direction: Direction,
    /// The edge row's sort key as the database wrote it; `None` only for a null
    /// `last_message_time`.
    pub key: Option<String>,
    /// The edge row's id, a canonical UUID.
    pub id: String,
}

const VERSION: u8 = 1;
const TAG_BYTES: usize = 16;
/// The longest token accepted (a name of about 3 KB).
pub const MAX_TOKEN_CHARS: usize = 4096;

fn malformed() -> QueryError {
    QueryError::new("cursor", "cursor is not a cursor this API gave")
}

fn foreign() -> QueryError {
    QueryError::new("cursor", "cursor was not given for this list: it was changed, or comes from another list (filter, search, sort, order, page size or board)")
}

impl Cursor {
    /// The cursor of `contact` as the edge row of a page sorted by `field`, reading `direction`.
    pub fn at(contact: &Contact, field: SortField, direction: Direction) -> Self {
        let key = match field {
            SortField::CreatedAt => Some(contact.created_at.clone()),
            SortField::LastMessageTime => contact.last_message_time.clone(),
            SortField::Name => Some(contact.name.clone()),
        };
        Self { direction, key, id: contact.id.clone() }
    }

    /// The token for this cursor in the list bound by `binding`.
    pub fn encode(&self, binding: &str) -> String {
        let mut bytes = vec![VERSION, if self.direction == Direction::After { b'a' } else { b'b' }];
        // Ids come from the database's uuid column (or a decoded cursor), so always parse.
        bytes.extend_from_slice(&uuid_bytes(&self.id).unwrap_or([0; 16]));
        match &self.key {
            None => bytes.push(0),
            Some(key) => {
                bytes.push(1);
                bytes.extend_from_slice(key.as_bytes());
            }
        }
        let tag = tag(binding, &bytes);
        bytes.extend_from_slice(&tag);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// The cursor `raw` names, if it was made for the list bound by `binding` and sorted by
    /// `field`; otherwise an error naming `cursor`.
    pub fn decode(raw: &str, binding: &str, field: SortField) -> Result<Self, QueryError> {
        if raw.len() > MAX_TOKEN_CHARS {
            return Err(malformed());
        }
        let bytes = URL_SAFE_NO_PAD.decode(raw).map_err(|_| malformed())?;
        if bytes.len() < 2 + 16 + 1 + TAG_BYTES || bytes[0] != VERSION {
            return Err(malformed());
        }
        let (payload, given) = bytes.split_at(bytes.len() - TAG_BYTES);
        if !crate::secure::secrets_match(&tag(binding, payload), given) {
            return Err(foreign());
        }
        let direction = match payload[1] {
            b'a' => Direction::After,
            b'b' => Direction::Before,
            _ => return Err(malformed()),
        };
        let id = uuid_text(&payload[2..18]);
        let key = match (payload[18], &payload[19..]) {
            (0, []) => None,
            (1, key) => Some(std::str::from_utf8(key).map_err(|_| malformed())?.to_owned()),
            _ => return Err(malformed()),
        };
        let valid = match (field, &key) {
            (SortField::LastMessageTime, None) => true,
            (SortField::CreatedAt | SortField::LastMessageTime, Some(time)) => is_timestamp(time),
            (SortField::Name, Some(name)) => !name.contains('\0'),
            (_, None) => false,
        };
        if !valid {
            return Err(malformed());
        }
        Ok(Self { direction, key, id })
    }
}

fn tag(binding: &str, payload: &[u8]) -> [u8; TAG_BYTES] {
    let mut hash = Sha256::new();
    hash.update(b"contact-list-cursor\0");
    hash.update(binding.as_bytes());
    hash.update(b"\0");
    hash.update(payload);
    let digest = hash.finalize();
    let mut tag = [0; TAG_BYTES];
    tag.copy_from_slice(&digest[..TAG_BYTES]);
    tag
}

fn uuid_bytes(id: &str) -> Option<[u8; 16]> {
    let hex: Vec<u8> = id.bytes().filter(|b| *b != b'-').collect();
    if hex.len() != 32 {
        return None;
    }
    let mut out = [0; 16];
    for (i, pair) in hex.chunks(2).enumerate() {
        out[i] = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(out)
}

fn uuid_text(bytes: &[u8]) -> String {
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
}

/// `YYYY-MM-DDTHH:MM:SS[.ffffff](Z|±HH[:MM])`, as PostgreSQL writes a `timestamptz` in JSON (and
/// reads it back exactly).
fn is_timestamp(raw: &str) -> bool {
    let b = raw.as_bytes();
    let digits = |range: std::ops::Range<usize>| b.get(range).is_some_and(|s| s.iter().all(u8::is_ascii_digit));
    let shape = b.len() >= 20
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19);
    if !shape {
        return false;
    }
    let mut rest = &raw[19..];
    if let Some(fraction) = rest.strip_prefix('.') {
        let n = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if !(1..=6).contains(&n) {
            return false;
        }
        rest = &fraction[n..];
    }
    match rest.as_bytes() {
        [b'Z'] => true,
        [b'+' | b'-', h1, h2] => h1.is_ascii_digit() && h2.is_ascii_digit(),
        [b'+' | b'-', h1, h2, b':', m1, m2] => [h1, h2, m1, m2].iter().all(|d| d.is_ascii_digit()),
        _ => false,
    }
}

/// Which rows of the sort field a run reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rows {
    /// Every row (the field has no nulls).
    All,
    /// The rows with a value.
    Values,
    /// The rows without one (ordered by id alone).
    Nulls,
}

/// One index-ordered read of a keyset page: the rows of `rows` strictly past `past` (a sort key,
/// or none for the null run, and an id) in the scan order, in that order. The scan order is the
/// list's, or its exact reverse (nulls first) for a page read backwards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run<'a> {
    pub rows: Rows,
    pub past: Option<(Option<&'a str>, &'a str)>,
    /// Whether the scan is the list's order reversed.
    pub reversed: bool,
}

impl Run<'_> {
    /// The direction the scan reads the sort field and id in.
    pub fn scan(&self, order: SortOrder) -> SortOrder {
        match (order, self.reversed) {
            (SortOrder::Asc, false) | (SortOrder::Desc, true) => SortOrder::Asc,
            _ => SortOrder::Desc,
        }
    }
}

/// A keyset page: what to read, run after run, until the page is full.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keyset<'a> {
    pub field: SortField,
    pub order: SortOrder,
    pub cursor: &'a Cursor,
}

impl<'a> Keyset<'a> {
    /// Runs in the order they are read; the rows of all of them, in scan order, then cut to the
    /// page size (and reversed for [`Direction::Before`]) are the page.
    pub fn runs(&self) -> Vec<Run<'a>> {
        let past = Some((self.cursor.key.as_deref(), self.cursor.id.as_str()));
        let reversed = self.cursor.direction == Direction::Before;
        let run = |rows, past| Run { rows, past, reversed };
        if !self.field.nullable() {
            return vec![run(Rows::All, past)];
        }
        match (self.cursor.direction, self.cursor.key.is_some()) {
            (Direction::After, true) => vec![run(Rows::Values, past), run(Rows::Nulls, None)],
            (Direction::After, false) => vec![run(Rows::Nulls, past)],
            (Direction::Before, true) => vec![run(Rows::Values, past)],
            (Direction::Before, false) => vec![run(Rows::Nulls, past), run(Rows::Values, None)],
        }
    }
}

/// The cursors a page answers with, `(nextCursor, prevCursor)`: the next page's from its last
/// row, the previous page's from its first. A numbered page has a next cursor while rows follow
/// it (from `total`) and a previous one past page 1; a cursor page has one each way while it
/// has rows, except that a page that is not full ends its list in the direction it was read.
pub fn page_cursors(query: &ContactQuery, contacts: &[Contact], total: u64) -> (Option<String>, Option<String>) {
    let (Some(first), Some(last)) = (contacts.first(), contacts.last()) else {
        return (None, None);
    };
    let binding = query.binding();
    let full = contacts.len() >= usize::from(query.page_size.get());
    let (next, prev) = match query.cursor.as_ref().map(|cursor| cursor.direction) {
        None => (query.offset() + (contacts.len() as u64) < total, query.page.get() > 1),
        Some(Direction::After) => (full, true),
        Some(Direction::Before) => (true, full),
    };
    let next = next.then(|| Cursor::at(last, query.sort_by, Direction::After).encode(&binding));
    let prev = prev.then(|| Cursor::at(first, query.sort_by, Direction::Before).encode(&binding));
    (next, prev)
}

#[cfg(test)]
mod tests;
