//! The outbox's statements (tables in supabase/migrations/20250127000600_change_outbox.sql),
//! on the change capture's own connection.

use anyhow::Context;
use contact_list_cache_core::invalidation::RowChange;
use tokio_postgres::{Client, Row};

/// One change as read: its sequence, its workspace ("" when its rows name none), its JSON as
/// forwarded (the payload with `outbox_seq` added) and the boards it reaches.
#[derive(Debug, Clone)]
pub struct Change {
    pub seq: i64,
    pub workspace: String,
    pub json: String,
    pub reach: Reach,
}

/// The boards a change reaches, as the worker will read it (`RowChange::boards`): what a
/// webhook call costs the worker's invocation grows with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reach {
    These(Vec<String>),
    /// Every board of its workspace (a favorite names no board), or not known.
    All,
}

impl Change {
    fn from_row(row: &Row) -> Self {
        let json: String = row.get(2);
        let reach = match serde_json::from_str::<RowChange>(&json).ok().and_then(|change| change.boards()) {
            Some(boards) => Reach::These(boards.iter().map(|board| board.as_str().to_owned()).collect()),
            None => Reach::All,
        };
        Self { seq: row.get(0), workspace: row.get(1), json, reach }
    }
}

/// The statement reading changes: sequence, workspace, forwarded JSON.
const SELECT_CHANGES: &str = "select seq, coalesce(payload->'record'->>'workspace_id', payload->'old_record'->>'workspace_id', ''), \
     (payload || jsonb_build_object('outbox_seq', seq))::text from public.contact_list_cache_outbox";

/// The outbox sequence's last value (0 before its first): the triggers draw from it, so it moves
/// when a change is written, committed or not yet. Watching it is the consumer's wake-up: no
/// NOTIFY on the write path (supabase/migrations/20250127001100_change_capture_without_notify.sql).
pub async fn last_seq(client: &Client) -> anyhow::Result<i64> {
    let row = client
        .query_one("select coalesce(pg_sequence_last_value('public.contact_list_cache_outbox_seq_seq'::regclass), 0)", &[])
        .await
        .context("reading the outbox sequence")?;
    Ok(row.get(0))
}

/// The changes with these sequences, in order (a parked workspace's, read again when its lane
/// has room; none of them can have been pruned: the cursor is below them).
pub async fn read_seqs(client: &Client, seqs: &[i64]) -> anyhow::Result<Vec<Change>> {
    let rows = client
        .query(&format!("{SELECT_CHANGES} where seq = any($1) order by seq"), &[&seqs])
        .await
        .context("reading parked changes")?;
    Ok(rows.iter().map(Change::from_row).collect())
}

/// A read: the rows after a sequence, in order, and the snapshot they were read in.
pub struct Read {
    pub changes: Vec<Change>,
    pub snapshot: String,
}

/// What is not delivered yet, by the stored cursor.
#[derive(Debug, Clone, Copy, Default)]
pub struct Backlog {
    pub cursor: i64,
    /// Changes after the cursor (counted up to [`BACKLOG_COUNT_CAP`]).
    pub undelivered: u64,
    /// When the oldest of them was written (milliseconds since the epoch).
    pub oldest_at: Option<u64>,
}

/// Counting the backlog stops here, so a long outage's backlog stays cheap to report.
pub const BACKLOG_COUNT_CAP: i64 = 100_000;

/// Makes sure `consumer` has a cursor row and answers its sequence.
pub async fn cursor(client: &Client, consumer: &str) -> anyhow::Result<i64> {
    client
        .execute("insert into public.contact_list_cache_cursor (consumer) values ($1) on conflict (consumer) do nothing", &[&consumer])
        .await
        .context("creating the outbox cursor")?;
    let row = client
        .query_one("select seq from public.contact_list_cache_cursor where consumer = $1", &[&consumer])
        .await
        .context("reading the outbox cursor")?;
    Ok(row.get(0))
}

/// Moves `consumer`'s cursor forward to `seq` (never back).
pub async fn advance(client: &Client, consumer: &str, seq: i64) -> anyhow::Result<()> {
    client
        .execute("update public.contact_list_cache_cursor set seq = $2, updated_at = now() where consumer = $1 and seq < $2", &[&consumer, &seq])
        .await
        .context("moving the outbox cursor")?;
    Ok(())
}

/// Up to `limit` changes after `after`, in sequence order, with the snapshot that saw them (one
/// repeatable-read transaction, so the snapshot is exactly the rows').
pub async fn read(client: &mut Client, after: i64, limit: i64) -> anyhow::Result<Read> {
    let transaction = client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .context("starting an outbox read")?;
    let snapshot: String = transaction.query_one("select pg_current_snapshot()::text", &[]).await.context("reading the snapshot")?.get(0);
    let rows = transaction
        .query(&format!("{SELECT_CHANGES} where seq > $1 order by seq limit $2"), &[&after, &limit])
        .await
        .context("reading the outbox")?;
    transaction.commit().await.context("ending an outbox read")?;
    let changes = rows.iter().map(Change::from_row).collect();
    Ok(Read { changes, snapshot })
}

/// Whether every transaction running at `snapshot` has ended (committed or rolled back).
pub async fn settled(client: &Client, snapshot: &str) -> anyhow::Result<bool> {
    let row = client
        .query_one(
            "select coalesce(bool_and(pg_xact_status(running) is distinct from 'in progress'), true) \
             from pg_snapshot_xip($1::text::pg_snapshot) as running",
            &[&snapshot],
        )
        .await
        .context("asking whether a gap's transactions ended")?;
    Ok(row.get(0))
}

/// Deletes delivered rows (at or below every consumer's cursor), a bounded number at a time;
/// answers how many went.
pub async fn prune(client: &Client, chunk: i64) -> anyhow::Result<u64> {
    let mut removed = 0;
    loop {
        let n = client
            .execute(
                "delete from public.contact_list_cache_outbox where seq in (select seq from public.contact_list_cache_outbox \
                 where seq <= (select coalesce(min(seq), 0) from public.contact_list_cache_cursor) order by seq limit $1)",
                &[&chunk],
            )
            .await
            .context("pruning the outbox")?;
        removed += n;
        if n < chunk as u64 {
            return Ok(removed);
        }
    }
}

/// The changes after `consumer`'s cursor: how many, and how old the oldest is.
pub async fn backlog(client: &Client, consumer: &str) -> anyhow::Result<Backlog> {
    let row = client
        .query_one(
            "with c as (select coalesce((select seq from public.contact_list_cache_cursor where consumer = $1), 0) as seq) \
             select c.seq, \
               (select count(*) from (select 1 from public.contact_list_cache_outbox o where o.seq > c.seq limit $2) as n), \
               (select floor(extract(epoch from o.created_at) * 1000)::bigint from public.contact_list_cache_outbox o \
                  where o.seq > c.seq order by o.seq limit 1) \
             from c",
            &[&consumer, &BACKLOG_COUNT_CAP],
        )
        .await
        .context("measuring the outbox backlog")?;
    Ok(Backlog {
        cursor: row.get(0),
        undelivered: row.get::<_, i64>(1).max(0) as u64,
        oldest_at: row.get::<_, Option<i64>>(2).map(|at| at.max(0) as u64),
    })
}
