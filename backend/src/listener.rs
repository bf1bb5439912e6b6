//! Change capture: LISTEN on PostgreSQL's `contact_list_cache` channel (filled by the triggers in
//! supabase/migrations) and forward the notifications to the worker's `/api/cache/webhook`,
//! reconnecting by itself. Notifications that arrive within [`BATCH_WINDOW`] of each other go in
//! one batch (a JSON array). Each workspace's changes are forwarded in commit order, one batch
//! at a time (the worker carries cached pages across each batch from the generation the last
//! one made, so two batches of one workspace must not race); different workspaces' batches go at
//! once, so one busy workspace never delays another. Changes made while disconnected are not
//! replayed: their lists stay cached until their TTL (180 s) at most.

use anyhow::Context;
use futures_util::StreamExt;
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_postgres::AsyncMessage;

/// How long a batch waits for more notifications after its first.
const BATCH_WINDOW: Duration = Duration::from_millis(20);
/// The most notifications in one batch.
const BATCH_MAX: usize = 100;

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
    let (client, mut connection) = crate::db::connect(database_url).await.context("connecting to listen")?;
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
    let mut lanes: HashMap<String, mpsc::UnboundedSender<Vec<String>>> = HashMap::new();
    while let Some(first) = changes.recv().await {
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + BATCH_WINDOW;
        while batch.len() < BATCH_MAX {
            match tokio::time::timeout_at(deadline, changes.recv()).await {
                Ok(Some(payload)) => batch.push(payload),
                Ok(None) | Err(_) => break,
            }
        }
        for (workspace, changes) in by_workspace(batch) {
            let lane = lanes.entry(workspace).or_insert_with(|| lane(forwarder.clone()));
            if let Err(unsent) = lane.send(changes) {
                // Its task ended (it never does while the sender lives): start another.
                let fresh = lane_for(forwarder.clone(), unsent.0);
                *lane = fresh;
            }
        }
    }
    pump.abort();
    drop(client);
    Ok(())
}

/// A batch's changes grouped by the workspace their rows name, each group in commit order
/// (changes that name none go together under "").
fn by_workspace(batch: Vec<String>) -> Vec<(String, Vec<String>)> {
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for payload in batch {
        let workspace = workspace_of(&payload).unwrap_or_default();
        match groups.iter_mut().find(|(w, _)| *w == workspace) {
            Some((_, changes)) => changes.push(payload),
            None => groups.push((workspace, vec![payload])),
        }
    }
    groups
}

/// The `workspace_id` of a change's row (after, else before).
fn workspace_of(payload: &str) -> Option<String> {
    let change: serde_json::Value = serde_json::from_str(payload).ok()?;
    ["record", "old_record"].iter().find_map(|row| change.get(row)?.get("workspace_id")?.as_str().map(str::to_owned))
}

/// A task forwarding one workspace's batches one after the other, in the order sent.
fn lane(forwarder: Forwarder) -> mpsc::UnboundedSender<Vec<String>> {
    let (sender, mut batches) = mpsc::unbounded_channel::<Vec<String>>();
    tokio::spawn(async move {
        while let Some(batch) = batches.recv().await {
            forwarder.forward(batch).await;
        }
    });
    sender
}

/// A new lane, with `first` already queued.
fn lane_for(forwarder: Forwarder, first: Vec<String>) -> mpsc::UnboundedSender<Vec<String>> {
    let sender = lane(forwarder);
    sender.send(first).expect("a new lane's task is running");
    sender
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_splits_by_workspace_in_commit_order() {
        let change = |n: u32, workspace: &str| format!(r#"{{"type":"UPDATE","table":"contacts","record":{{"n":{n},"workspace_id":"{workspace}"}}}}"#);
        let deleted = r#"{"type":"DELETE","table":"contacts","record":null,"old_record":{"workspace_id":"b"}}"#.to_owned();
        let groups = by_workspace(vec![change(1, "a"), change(2, "b"), change(3, "a"), deleted.clone(), "not json".to_owned()]);
        assert_eq!(groups, vec![
            ("a".to_owned(), vec![change(1, "a"), change(3, "a")]),
            ("b".to_owned(), vec![change(2, "b"), deleted]),
            (String::new(), vec!["not json".to_owned()]),
        ]);
    }
}
