//! Change capture: LISTEN on PostgreSQL's `contact_list_cache` channel (filled by the triggers in
//! supabase/migrations) and forward the notifications to the worker's `/api/cache/webhook`,
//! reconnecting by itself. Notifications that arrive within [`BATCH_WINDOW`] of each other go in
//! one batch (a JSON array), and up to [`IN_FLIGHT`] batches are forwarded at once, so a burst of
//! writes never queues behind one slow call. Changes made while disconnected are not replayed:
//! their lists stay cached until their TTL (180 s) at most.

use anyhow::Context;
use futures_util::StreamExt;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio_postgres::{AsyncMessage, NoTls};

/// How long a batch waits for more notifications after its first.
const BATCH_WINDOW: Duration = Duration::from_millis(20);
/// The most notifications in one batch.
const BATCH_MAX: usize = 100;
/// The most batches being forwarded at once.
const IN_FLIGHT: usize = 8;

/// The NOTIFY channel the triggers use.
pub const CHANNEL: &str = "contact_list_cache";

/// Where notifications go.
#[derive(Clone)]
pub struct Forwarder {
    pub url: String,
    pub secret: String,
    pub client: reqwest::Client,
}

impl Forwarder {
    pub fn new(url: String, secret: String) -> Self {
        let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().expect("an HTTP client builds");
        Self { url, secret, client }
    }

    /// Posts a batch of changes (their JSON, as notified), trying three times.
    async fn forward(&self, changes: Vec<String>) {
        let payload = format!("[{}]", changes.join(","));
        for attempt in 1..=3u32 {
            let sent = self
                .client
                .post(&self.url)
                .header("X-Webhook-Secret", &self.secret)
                .header("Content-Type", "application/json")
                .body(payload.clone())
                .send()
                .await;
            match sent {
                Ok(response) if response.status().is_success() => return,
                Ok(response) => tracing::warn!(status = %response.status(), attempt, "webhook refused a change"),
                Err(err) => tracing::warn!(error = %err, attempt, "webhook unreachable"),
            }
            tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
        }
        tracing::error!(changes = changes.len(), "changes could not be forwarded; their lists stay cached until their TTL");
    }
}

/// Listens forever, reconnecting with backoff (1 s doubling to 10 s).
pub async fn run(database_url: String, forwarder: Forwarder) {
    let mut backoff = Duration::from_secs(1);
    loop {
        match listen(&database_url, &forwarder, &mut backoff).await {
            Ok(()) => tracing::warn!("change capture: connection closed"),
            Err(err) => tracing::warn!(error = %err, "change capture: not listening"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}

async fn listen(database_url: &str, forwarder: &Forwarder, backoff: &mut Duration) -> anyhow::Result<()> {
    let (client, mut connection) = tokio_postgres::connect(database_url, NoTls).await.context("connecting to listen")?;
    let (sender, mut changes) = tokio::sync::mpsc::unbounded_channel::<String>();
    let pump = tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(note)) => {
                    if sender.send(note.payload().to_owned()).is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(err) => {
                    tracing::warn!(error = %err, "change capture: connection error");
                    break;
                }
            }
        }
    });
    client.batch_execute(&format!("LISTEN {CHANNEL}")).await.context("LISTEN")?;
    tracing::info!(channel = CHANNEL, "change capture: listening");
    *backoff = Duration::from_secs(1);
    let in_flight = Arc::new(Semaphore::new(IN_FLIGHT));
    while let Some(first) = changes.recv().await {
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + BATCH_WINDOW;
        while batch.len() < BATCH_MAX {
            match tokio::time::timeout_at(deadline, changes.recv()).await {
                Ok(Some(payload)) => batch.push(payload),
                Ok(None) | Err(_) => break,
            }
        }
        let permit = Arc::clone(&in_flight).acquire_owned().await.expect("the semaphore is never closed");
        let forwarder = forwarder.clone();
        tokio::spawn(async move {
            forwarder.forward(batch).await;
            drop(permit);
        });
    }
    pump.abort();
    drop(client);
    Ok(())
}
