//! Change capture, at least once: the triggers write every change to an outbox table in the
//! changing transaction (supabase/migrations/20250127000600_change_outbox.sql) and NOTIFY
//! `contact_list_cache` as a wake-up. This task reads the outbox after its stored cursor, in
//! sequence order, on start, on each wake-up and every `poll`; forwards the changes per workspace
//! (see [`forward`]); and moves the cursor only past changes the worker acknowledged (see
//! [`progress`] for the gap rule). It reconnects by itself, prunes delivered rows, and measures
//! the backlog for `/health`. One consumer per cursor at a time: the others wait on an advisory
//! lock, which PostgreSQL releases when its holder's connection ends.

pub mod forward;
pub mod outbox;
pub mod progress;
pub mod settings;
pub mod status;

use crate::layers::runtime::now;
use anyhow::Context;
use forward::{Forwarder, Lanes};
use futures_util::StreamExt;
use progress::Progress;
use settings::CaptureSettings;
use status::Phase;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;
use tokio_postgres::{AsyncMessage, Client};

/// The NOTIFY channel the triggers wake the consumer on.
pub const CHANNEL: &str = "contact_list_cache";
/// Rows asked for per read.
const READ_BATCH: i64 = 500;
/// Reads pause while this many changes are taken and not yet acknowledged (an outage's backlog
/// stays in the outbox, not in memory).
const MAX_IN_FLIGHT: usize = 2_000;
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

/// One connection's life: LISTEN, take the consumer's lock, then read, forward and acknowledge
/// until the connection ends.
async fn consume(database_url: &str, forwarder: &Forwarder, settings: &CaptureSettings, backoff: &mut Duration) -> anyhow::Result<()> {
    let (mut client, mut connection) = crate::db::connect(database_url).await.context("connecting for change capture")?;
    let wake = Arc::new(Notify::new());
    let woken = Arc::clone(&wake);
    let mut pump = tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(_)) => woken.notify_one(),
                Ok(_) => {}
                Err(err) => {
                    tracing::warn!(error = %err, "change capture: connection error");
                    return;
                }
            }
        }
    });
    let result = tokio::select! {
        result = session(&mut client, &wake, forwarder, settings, backoff) => result,
        _ = &mut pump => Ok(()),
    };
    pump.abort();
    result
}

async fn session(client: &mut Client, wake: &Notify, forwarder: &Forwarder, settings: &CaptureSettings, backoff: &mut Duration) -> anyhow::Result<()> {
    let consumer = settings.consumer.as_str();
    // The consumer's lock goes with this connection: PostgreSQL is to notice within about a
    // minute when this side vanishes without closing it (a partition), so a standby takes over.
    client
        .batch_execute("set tcp_keepalives_idle = 30; set tcp_keepalives_interval = 10; set tcp_keepalives_count = 3")
        .await
        .context("setting keepalives")?;
    client.batch_execute(&format!("LISTEN {CHANNEL}")).await.context("LISTEN")?;
    outbox::cursor(client, consumer).await?;
    let locked = "select pg_try_advisory_lock(hashtext('contact_list_cache_outbox'), hashtext($1))";
    while !client.query_one(locked, &[&consumer]).await.context("taking the consumer's lock")?.get::<_, bool>(0) {
        forwarder.status.set_phase(Phase::Standby);
        measure(client, forwarder, consumer).await?;
        tokio::time::sleep(settings.poll).await;
    }
    *backoff = Duration::from_secs(1);
    let cursor = outbox::cursor(client, consumer).await?;
    tracing::info!(channel = CHANNEL, consumer, cursor, "change capture: consuming the outbox");
    forwarder.status.set_phase(Phase::Consuming);
    let (acks_sender, mut acks) = mpsc::unbounded_channel();
    let mut state = State {
        progress: Progress::new(cursor),
        stored: cursor,
        lanes: Lanes::new(forwarder.clone(), acks_sender),
        next_prune: Instant::now() + settings.prune_every,
        next_measure: Instant::now(),
    };
    loop {
        tokio::time::timeout(STEP_TIMEOUT, state.step(client, forwarder, settings))
            .await
            .map_err(|_| anyhow::anyhow!("a round took over {STEP_TIMEOUT:?}"))??;
        tokio::select! {
            () = wake.notified() => {}
            Some(seqs) = acks.recv() => state.progress.delivered(seqs),
            () = tokio::time::sleep(settings.poll) => {}
        }
        while let Ok(seqs) = acks.try_recv() {
            state.progress.delivered(seqs);
        }
    }
}

/// A consuming connection's state.
struct State {
    progress: Progress,
    /// The cursor as stored.
    stored: i64,
    lanes: Lanes,
    next_prune: Instant,
    next_measure: Instant,
}

impl State {
    /// One round: settle a gap, read what there is room for, store the cursor, measure, prune.
    async fn step(&mut self, client: &mut Client, forwarder: &Forwarder, settings: &CaptureSettings) -> anyhow::Result<()> {
        let consumer = settings.consumer.as_str();
        // A gap is asked about at once (a rolled-back sequence is settled by then), and reads go
        // on past it when it is settled; a bounded number of rounds, so a step always ends.
        for _ in 0..MAX_READS_PER_STEP {
            if let Some(gap) = &self.progress.gap {
                let waited = now().0.saturating_sub(gap.seen_at);
                if outbox::settled(client, &gap.snapshot).await? {
                    self.progress.settle();
                } else if waited > settings.gap_wait.as_millis() as u64 {
                    tracing::warn!(after = self.progress.read_through(), waited_ms = waited, "change capture: passing a gap whose transactions are still running");
                    self.progress.settle();
                } else {
                    break;
                }
            }
            if self.progress.in_flight() >= MAX_IN_FLIGHT {
                break;
            }
            let read = outbox::read(client, self.progress.read_through(), READ_BATCH).await?;
            let seqs: Vec<i64> = read.changes.iter().map(|change| change.seq).collect();
            let complete = (seqs.len() as i64) < READ_BATCH;
            let taken = self.progress.take(&seqs, complete, &read.snapshot, now().0);
            self.lanes.send(read.changes.into_iter().take(taken).collect());
            if complete && self.progress.gap.is_none() {
                break;
            }
        }
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

/// Measures the backlog for `/health`.
async fn measure(client: &Client, forwarder: &Forwarder, consumer: &str) -> anyhow::Result<()> {
    let backlog = outbox::backlog(client, consumer).await?;
    forwarder.status.record_backlog(backlog, now().0);
    Ok(())
}
