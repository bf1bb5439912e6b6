//! Change capture, at least once: the triggers write every change to an outbox table in the
//! changing transaction (supabase/migrations/20250127000600_change_outbox.sql), and nothing else:
//! no NOTIFY, whose instance-wide lock at commit would serialize every writer
//! (20250127001100_change_capture_without_notify.sql). This task watches the outbox's sequence
//! every `wake` (one cheap query) and reads the outbox after its stored cursor, in sequence
//! order, when the sequence moved, when the worker acknowledged something, and every `poll`;
//! forwards the changes per workspace (see [`forward`]); and moves the cursor only past changes
//! the worker acknowledged (see [`progress`] for the gap rule). Each workspace has at most
//! [`LANE_MAX`] changes on its lane: beyond that its further changes are parked (only their
//! sequences are kept, read again when its lane has room), so a workspace the worker refuses or
//! KV throttles holds its own lane and nobody else's. It reconnects by itself, prunes delivered
//! rows, and measures the backlog for `/health`. It also keeps change capture's clock (see
//! [`clock`]) and posts it to the webhook (at most every `CHANGE_CAPTURE_CLOCK_MS`), so the worker knows
//! until when the scope states it reads may be trusted. One consumer per cursor at a time: the others
//! wait on a session advisory lock, which PostgreSQL releases when its holder's connection ends
//! (so `DATABASE_URL` must not be a transaction-mode pooler: `crate::db_target`).

pub mod clock;
pub mod forward;
pub mod outbox;
pub mod progress;
pub mod room;
pub mod settings;
pub mod status;

use crate::layers::runtime::now;
use anyhow::Context;
use clock::Clock;
use forward::{Ack, Forwarder, Lanes};
use outbox::Change;
use progress::Progress;
use room::Room;
use settings::CaptureSettings;
use status::Phase;
use std::collections::HashSet;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_postgres::Client;

/// Rows asked for per read.
const READ_BATCH: i64 = 500;
/// The most changes of one workspace on its lane (sent, not yet acknowledged); the rest of its
/// changes wait parked. Memory: at most this many changes' JSON per workspace with changes.
pub const LANE_MAX: usize = 1_000;
/// Reads pause while this many changes are taken and not yet acknowledged, parked ones included
/// (their sequences only): an outage's backlog stays in the outbox, not in memory.
const MAX_TAKEN: usize = 100_000;
/// Reads (and gap checks) in one round at most.
const MAX_READS_PER_STEP: usize = 20;
/// Delivered rows deleted per statement when pruning.
const PRUNE_CHUNK: i64 = 5_000;
/// The longest one round of reading, acknowledging and pruning may take before the connection is
/// given up and opened again.
const STEP_TIMEOUT: Duration = Duration::from_secs(60);

/// Consumes for ever, reconnecting with backoff (1 s doubling to 10 s).
pub async fn run(database_url: String, forwarder: Forwarder, settings: CaptureSettings) {
    let mut backoff = Duration::from_secs(1);
    loop {
        match consume(&database_url, &forwarder, &settings, &mut backoff).await {
            Ok(()) => tracing::warn!("change capture: connection closed"),
            Err(err) => tracing::warn!(error = format!("{err:#}"), "change capture: not consuming"),
        }
        forwarder.status.set_phase(Phase::Down);
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}

/// One connection's life: take the consumer's lock, then read, forward and acknowledge until the
/// connection ends.
async fn consume(database_url: &str, forwarder: &Forwarder, settings: &CaptureSettings, backoff: &mut Duration) -> anyhow::Result<()> {
    let (mut client, connection) = crate::db::connect(database_url).await.context("connecting for change capture")?;
    let mut driver = tokio::spawn(async move {
        if let Err(err) = connection.await {
            tracing::warn!(error = %err, "change capture: connection error");
        }
    });
    let result = tokio::select! {
        result = session(&mut client, forwarder, settings, backoff) => result,
        _ = &mut driver => Ok(()),
    };
    driver.abort();
    result
}

async fn session(client: &mut Client, forwarder: &Forwarder, settings: &CaptureSettings, backoff: &mut Duration) -> anyhow::Result<()> {
    let consumer = settings.consumer.as_str();
    // The consumer's lock goes with this connection: PostgreSQL is to notice within about a
    // minute when this side vanishes without closing it (a partition), so a standby takes over.
    client
        .batch_execute("set tcp_keepalives_idle = 30; set tcp_keepalives_interval = 10; set tcp_keepalives_count = 3")
        .await
        .context("setting keepalives")?;
    outbox::cursor(client, consumer).await?;
    let locked = "select pg_try_advisory_lock(hashtext('contact_list_cache_outbox'), hashtext($1))";
    while !client.query_one(locked, &[&consumer]).await.context("taking the consumer's lock")?.get::<_, bool>(0) {
        forwarder.status.set_phase(Phase::Standby);
        measure(client, forwarder, consumer).await?;
        tokio::time::sleep(settings.poll).await;
    }
    *backoff = Duration::from_secs(1);
    let cursor = outbox::cursor(client, consumer).await?;
    tracing::info!(consumer, cursor, wake_ms = settings.wake.as_millis() as u64, "change capture: consuming the outbox");
    forwarder.status.set_phase(Phase::Consuming);
    let (acks_sender, mut acks) = mpsc::unbounded_channel();
    let (clock_sender, clock_posts) = tokio::sync::watch::channel(None);
    let poster = tokio::spawn(post_clock(forwarder.clone(), clock_posts, settings.clock_every));
    let _poster = AbortOnDrop(poster);
    let mut state = State {
        progress: Progress::new(cursor),
        stored: cursor,
        lanes: Lanes::new(forwarder.clone(), acks_sender),
        room: Room::new(LANE_MAX),
        next_prune: Instant::now() + settings.prune_every,
        next_measure: Instant::now(),
        clock: Clock::default(),
        seen_through: cursor,
        clock_sender,
    };
    let (mut seen, _) = outbox::last_seq(client).await?;
    let mut ticks = tokio::time::interval(settings.wake);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::time::timeout(STEP_TIMEOUT, state.step(client, forwarder, settings))
            .await
            .map_err(|_| anyhow::anyhow!("a round took over {STEP_TIMEOUT:?}"))??;
        // Until something to do: an acknowledgement, the sequence moving, or the periodic poll.
        let poll_at = Instant::now() + settings.poll;
        loop {
            tokio::select! {
                Some(ack) = acks.recv() => {
                    state.acknowledged(ack);
                    break;
                }
                _ = ticks.tick() => {
                    if Instant::now() >= poll_at {
                        break;
                    }
                    let (last, at) = outbox::last_seq(client).await?;
                    if last != seen {
                        seen = last;
                        break;
                    }
                    if last <= state.progress.read_through() {
                        state.clock.offer(at, last);
                        state.tick_clock();
                    } else {
                        // Drawn and not read (a transaction still running, or rolled back): only
                        // a read can move the clock past it.
                        break;
                    }
                }
            }
        }
        while let Ok(ack) = acks.try_recv() {
            state.acknowledged(ack);
        }
    }
}

/// A consuming connection's state.
struct State {
    progress: Progress,
    /// The cursor as stored.
    stored: i64,
    lanes: Lanes,
    /// What is on each workspace's lane, and what waits parked.
    room: Room,
    next_prune: Instant,
    next_measure: Instant,
    clock: Clock,
    /// Every sequence up to here was taken, or seen by a complete read (and is on the clock's
    /// books), or was not committed when read.
    seen_through: i64,
    clock_sender: tokio::sync::watch::Sender<Option<clock::Reading>>,
}

impl State {
    /// The worker acknowledged a batch of `workspace`'s.
    fn acknowledged(&mut self, (workspace, seqs): Ack) {
        self.room.done(&workspace, seqs.len());
        self.clock.delivered(&workspace, &seqs);
        self.progress.delivered(seqs);
        self.tick_clock();
    }

    /// Moves change capture's clock as far as what was read and delivered allows, and has it
    /// posted.
    fn tick_clock(&mut self) {
        if let Some(reading) = self.clock.reading(self.seen_through) {
            self.clock_sender.send_replace(Some(reading));
        }
    }

    /// Sends changes just taken (in sequence order) to their lanes, parking those of a workspace
    /// whose lane is full or that has parked changes already (see [`Room`]).
    fn route(&mut self, changes: Vec<Change>) {
        for (workspace, changes) in forward::by_workspace(changes) {
            self.clock.taken(&workspace, changes.iter().map(|change| change.seq));
            let sent = self.room.admit(&workspace, changes);
            if !sent.is_empty() {
                self.lanes.send(&workspace, sent);
            }
        }
    }

    /// Reads parked changes again for the lanes that have room.
    async fn unpark(&mut self, client: &Client) -> anyhow::Result<()> {
        for (workspace, seqs) in self.room.due(READ_BATCH as usize) {
            let changes = outbox::read_seqs(client, &seqs).await?;
            let found: HashSet<i64> = changes.iter().map(|change| change.seq).collect();
            // A parked sequence that is gone cannot be delivered: it never existed for the worker
            // (rows are pruned only at or below the cursor, which is below it).
            let gone: Vec<i64> = seqs.iter().copied().filter(|seq| !found.contains(seq)).collect();
            self.room.done(&workspace, gone.len());
            self.clock.delivered(&workspace, &gone);
            self.progress.delivered(gone);
            if !changes.is_empty() {
                self.lanes.send(&workspace, changes);
            }
        }
        Ok(())
    }

    /// One round: send parked changes there is room for, settle a gap, read what there is room
    /// for, move change capture's clock, store the cursor, measure, prune.
    async fn step(&mut self, client: &mut Client, forwarder: &Forwarder, settings: &CaptureSettings) -> anyhow::Result<()> {
        let consumer = settings.consumer.as_str();
        self.unpark(client).await?;
        // A gap is asked about at once (a rolled-back sequence is settled by then), and reads go
        // on past it when it is settled; a bounded number of rounds, so a step always ends.
        for _ in 0..MAX_READS_PER_STEP {
            // Held at a gap, the outbox is still read once: what committed past it puts only
            // its own workspaces behind on the clock (and what filled the gap is taken).
            let mut held = false;
            if let Some(gap) = &self.progress.gap {
                let waited = now().0.saturating_sub(gap.seen_at);
                if outbox::settled(client, &gap.snapshot).await? {
                    self.progress.settle();
                } else if waited > settings.gap_wait.as_millis() as u64 {
                    tracing::warn!(after = self.progress.read_through(), waited_ms = waited, "change capture: passing a gap whose transactions are still running");
                    self.progress.settle();
                } else {
                    held = true;
                }
            }
            if self.progress.in_flight() >= MAX_TAKEN {
                break;
            }
            let read = outbox::read(client, self.progress.read_through(), READ_BATCH).await?;
            let seqs: Vec<i64> = read.changes.iter().map(|change| change.seq).collect();
            let complete = (seqs.len() as i64) < READ_BATCH;
            let taken = self.progress.take(&seqs, complete, &read.snapshot, now().0);
            if complete {
                // Seen and not taken (past a gap): committed, not delivered, their workspaces
                // behind; a gap's own sequences were not committed when read.
                for change in read.changes.iter().skip(taken) {
                    self.clock.taken(&change.workspace, [change.seq]);
                }
                let seen = seqs.last().copied().unwrap_or_default().max(self.progress.read_through());
                self.seen_through = self.seen_through.max(seen);
                self.clock.offer(read.at, seen);
            }
            self.route(read.changes.into_iter().take(taken).collect());
            if held || complete && self.progress.gap.is_none() {
                break;
            }
        }
        self.tick_clock();
        let through = self.progress.delivered_through();
        if through > self.stored {
            outbox::advance(client, consumer, through).await?;
            self.stored = through;
        }
        if Instant::now() >= self.next_measure {
            measure(client, forwarder, consumer).await?;
            self.next_measure = Instant::now() + settings.poll.min(Duration::from_secs(1));
        }
        if Instant::now() >= self.next_prune {
            let pruned = outbox::prune(client, PRUNE_CHUNK).await?;
            forwarder.status.pruned.add(pruned);
            self.next_prune = Instant::now() + settings.prune_every;
        }
        Ok(())
    }
}

/// Posts change capture's clock each time it moves, at most every `every`; a failed post is not
/// retried (the next one carries a later time). Logged when posts start failing and when they
/// work again, not ten times a second.
async fn post_clock(forwarder: Forwarder, mut clock: tokio::sync::watch::Receiver<Option<clock::Reading>>, every: Duration) {
    let mut failing = false;
    while clock.changed().await.is_ok() {
        let Some(reading) = clock.borrow_and_update().clone() else { continue };
        match forwarder.post_clock(&reading).await {
            Ok(()) if failing => {
                failing = false;
                tracing::info!("change capture: the worker takes its clock again");
            }
            Ok(()) => {}
            Err(err) if !failing => {
                failing = true;
                tracing::warn!(error = err, "change capture: its clock was not taken (the edge reads the database past the staleness bound); retrying");
            }
            Err(_) => {}
        }
        tokio::time::sleep(every).await;
    }
}

/// Ends a task when dropped (the clock's poster, with its connection's session).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Measures the backlog for `/health`.
async fn measure(client: &Client, forwarder: &Forwarder, consumer: &str) -> anyhow::Result<()> {
    let backlog = outbox::backlog(client, consumer).await?;
    forwarder.status.record_backlog(backlog, now().0);
    Ok(())
}
