//! Change capture: LISTEN on PostgreSQL's `contact_list_cache` channel (filled by the triggers in
//! supabase/migrations) and forward every notification to the worker's `/api/cache/webhook`,
//! reconnecting by itself. Changes made while disconnected are not replayed: their lists stay
//! cached until their TTL (180 s) at most.

use anyhow::Context;
use futures_util::StreamExt;
use std::time::Duration;
use tokio_postgres::{AsyncMessage, NoTls};

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

    /// Posts one change, trying three times.
    async fn forward(&self, payload: String) {
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
        tracing::error!("a change could not be forwarded; its lists stay cached until their TTL");
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
    while let Some(payload) = changes.recv().await {
        forwarder.forward(payload).await;
    }
    pump.abort();
    drop(client);
    Ok(())
}
