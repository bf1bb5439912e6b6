//! Posting changes to the worker's `/api/cache/webhook`: per workspace one batch after another,
//! in sequence order (the worker carries cached pages across each batch from the generation the
//! last one made, so two batches of one workspace must not race); different workspaces at once,
//! so one busy or failing workspace never delays another. A batch is retried with exponential
//! backoff until the worker answers 2xx, and only then acknowledged.

use super::outbox::Change;
use super::status::CaptureStatus;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

/// The first retry's wait; each next one doubles, up to the forwarder's `retry_max`.
const FIRST_RETRY: Duration = Duration::from_millis(100);
/// The most changes in one webhook call.
pub const BATCH_MAX: usize = 100;

/// Where changes go.
#[derive(Clone)]
pub struct Forwarder {
    pub url: String,
    pub secret: String,
    pub client: reqwest::Client,
    /// The longest wait between two tries.
    pub retry_max: Duration,
    pub status: Arc<CaptureStatus>,
}

impl Forwarder {
    pub fn new(url: String, secret: String, retry_max: Duration, status: Arc<CaptureStatus>) -> Self {
        let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("an HTTP client builds");
        Self { url, secret, client, retry_max, status }
    }

    /// Posts a batch until the worker answers 2xx.
    async fn deliver(&self, batch: &[Change]) {
        let payload = format!("[{}]", batch.iter().map(|change| change.json.as_str()).collect::<Vec<_>>().join(","));
        let mut wait = FIRST_RETRY;
        for attempt in 1u64.. {
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
                Ok(response) => tracing::warn!(status = %response.status(), attempt, changes = batch.len(), "change capture: webhook refused a batch; retrying"),
                Err(err) => tracing::warn!(error = %err, attempt, changes = batch.len(), "change capture: webhook unreachable; retrying"),
            }
            self.status.webhook_failures.increment();
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(self.retry_max);
        }
    }
}

/// One connection's lanes: a task per workspace, all ended when this is dropped. Acknowledged
/// batches' sequences go to the `acks` channel.
pub struct Lanes {
    forwarder: Forwarder,
    acks: mpsc::UnboundedSender<Vec<i64>>,
    lanes: HashMap<String, mpsc::UnboundedSender<Vec<Change>>>,
    tasks: JoinSet<()>,
}

impl Lanes {
    pub fn new(forwarder: Forwarder, acks: mpsc::UnboundedSender<Vec<i64>>) -> Self {
        Self { forwarder, acks, lanes: HashMap::new(), tasks: JoinSet::new() }
    }

    /// Queues changes (in sequence order) on their workspaces' lanes, in batches of at most
    /// [`BATCH_MAX`].
    pub fn send(&mut self, changes: Vec<Change>) {
        for (workspace, changes) in by_workspace(changes) {
            for batch in changes.chunks(BATCH_MAX) {
                let lane = match self.lanes.get(&workspace) {
                    Some(lane) if !lane.is_closed() => lane,
                    _ => {
                        let lane = self.lane();
                        self.lanes.entry(workspace.clone()).insert_entry(lane).into_mut()
                    }
                };
                lane.send(batch.to_vec()).expect("a lane runs while its sender lives");
            }
        }
    }

    fn lane(&mut self) -> mpsc::UnboundedSender<Vec<Change>> {
        let (sender, mut batches) = mpsc::unbounded_channel::<Vec<Change>>();
        let (forwarder, acks) = (self.forwarder.clone(), self.acks.clone());
        self.tasks.spawn(async move {
            while let Some(batch) = batches.recv().await {
                forwarder.deliver(&batch).await;
                forwarder.status.delivered.add(batch.len() as u64);
                if acks.send(batch.iter().map(|change| change.seq).collect()).is_err() {
                    return;
                }
            }
        });
        sender
    }
}

/// Changes grouped by workspace, each group in the order given (the groups in order of first
/// appearance).
pub fn by_workspace(changes: Vec<Change>) -> Vec<(String, Vec<Change>)> {
    let mut groups: Vec<(String, Vec<Change>)> = Vec::new();
    for change in changes {
        match groups.iter_mut().find(|(w, _)| *w == change.workspace) {
            Some((_, group)) => group.push(change),
            None => groups.push((change.workspace.clone(), vec![change])),
        }
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(seq: i64, workspace: &str) -> Change {
        Change { seq, workspace: workspace.into(), json: format!("{{\"outbox_seq\":{seq}}}") }
    }

    #[test]
    fn changes_split_by_workspace_in_sequence_order() {
        let groups = by_workspace(vec![change(1, "a"), change(2, "b"), change(3, "a"), change(4, "")]);
        let seqs: Vec<(String, Vec<i64>)> = groups.into_iter().map(|(w, changes)| (w, changes.iter().map(|c| c.seq).collect())).collect();
        assert_eq!(seqs, vec![("a".into(), vec![1, 3]), ("b".into(), vec![2]), (String::new(), vec![4])]);
    }
}
