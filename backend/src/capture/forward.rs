//! Posting changes to the worker's `/api/cache/webhook`: per workspace one batch after another,
//! in sequence order (the worker carries cached pages across each batch from the generation the
//! last one made, so two batches of one workspace must not race); different workspaces at once,
//! so one busy or failing workspace never delays another. A batch is retried with exponential
//! backoff until the worker answers 2xx, and only then acknowledged.
//!
//! Batches are cut to fit one Worker invocation. Platform rule relied on: a Worker invocation
//! may make at most 1,000 KV operations (https://developers.cloudflare.com/kv/platform/limits/,
//! "Operations/Worker invocation": 1000, `waitUntil` work included) and, on the Free plan, 50
//! subrequests. The worker writes a call's scope states in one read and one conditional write of
//! the workspace's state home (retried when another invalidation came first) and its applied mark
//! in KV; what grows with the boards a call names is the refresh-ahead it schedules for their
//! hot pages. So a call names at most [`BATCH_MAX_BOARDS`] boards, besides at most [`BATCH_MAX`]
//! changes. A change that reaches every board of its workspace goes alone.

use super::outbox::{Change, Reach};
use std::collections::BTreeSet;
use super::status::CaptureStatus;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

/// The first retry's wait; each next one doubles, up to the forwarder's `retry_max`.
const FIRST_RETRY: Duration = Duration::from_millis(100);
/// The most changes in one webhook call (the worker's own limit per call is 100 events).
pub const BATCH_MAX: usize = 100;
/// The most boards one webhook call names (see the module doc).
pub const BATCH_MAX_BOARDS: usize = 10;

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

    /// One call to the worker's webhook with `body` (JSON), authenticated with the secret.
    async fn post(&self, body: String) -> reqwest::Result<reqwest::Response> {
        self.client.post(&self.url).header("X-Webhook-Secret", &self.secret).header("Content-Type", "application/json").body(body).send().await
    }

    /// Posts a batch until the worker answers 2xx.
    async fn deliver(&self, batch: &[Change]) {
        let payload = format!("[{}]", batch.iter().map(|change| change.json.as_str()).collect::<Vec<_>>().join(","));
        let mut wait = FIRST_RETRY;
        for attempt in 1u64.. {
            let sent = self.post(payload.clone()).await;
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

impl Forwarder {
    /// Posts change capture's clock, `{"applied_through": ms, "behind": {workspace: ms}}`, once;
    /// why it failed, if it did.
    pub async fn post_clock(&self, reading: &super::clock::Reading) -> Result<(), String> {
        let sent = self.post(serde_json::to_string(reading).expect("a clock reading serializes")).await;
        match sent {
            Ok(response) if response.status().is_success() => {
                self.status.clock_posted(reading.applied_through);
                Ok(())
            }
            Ok(response) => Err(format!("the worker refused it: {}", response.status())),
            Err(err) => Err(format!("the worker is unreachable: {err}")),
        }
    }
}

/// An acknowledgement: the workspace whose lane delivered a batch, and the batch's sequences.
pub type Ack = (String, Vec<i64>);

/// One connection's lanes: a task per workspace, all ended when this is dropped. Acknowledged
/// batches go to the `acks` channel.
pub struct Lanes {
    forwarder: Forwarder,
    acks: mpsc::UnboundedSender<Ack>,
    lanes: HashMap<String, mpsc::UnboundedSender<Vec<Change>>>,
    tasks: JoinSet<()>,
}

impl Lanes {
    pub fn new(forwarder: Forwarder, acks: mpsc::UnboundedSender<Ack>) -> Self {
        Self { forwarder, acks, lanes: HashMap::new(), tasks: JoinSet::new() }
    }

    /// Queues one workspace's changes (in sequence order) on its lane, in [`batches`].
    pub fn send(&mut self, workspace: &str, changes: Vec<Change>) {
        for batch in batches(changes) {
            let lane = match self.lanes.get(workspace) {
                Some(lane) if !lane.is_closed() => lane,
                _ => {
                    let lane = self.lane(workspace.to_owned());
                    self.lanes.entry(workspace.to_owned()).insert_entry(lane).into_mut()
                }
            };
            lane.send(batch).expect("a lane runs while its sender lives");
        }
    }

    fn lane(&mut self, workspace: String) -> mpsc::UnboundedSender<Vec<Change>> {
        let (sender, mut batches) = mpsc::unbounded_channel::<Vec<Change>>();
        let (forwarder, acks) = (self.forwarder.clone(), self.acks.clone());
        self.tasks.spawn(async move {
            while let Some(batch) = batches.recv().await {
                forwarder.deliver(&batch).await;
                forwarder.status.delivered.add(batch.len() as u64);
                if acks.send((workspace.clone(), batch.iter().map(|change| change.seq).collect())).is_err() {
                    return;
                }
            }
        });
        sender
    }
}

/// One workspace's changes (in sequence order) cut into webhook calls, in order: each at most
/// [`BATCH_MAX`] changes naming at most [`BATCH_MAX_BOARDS`] boards; a change reaching every
/// board alone.
pub fn batches(changes: Vec<Change>) -> Vec<Vec<Change>> {
    let mut out: Vec<Vec<Change>> = Vec::new();
    let mut batch: Vec<Change> = Vec::new();
    let mut boards: BTreeSet<String> = BTreeSet::new();
    for change in changes {
        let fits = match &change.reach {
            Reach::All => batch.is_empty(),
            Reach::These(these) => {
                let alone_before = batch.first().is_some_and(|first| first.reach == Reach::All);
                let named = boards.len() + these.iter().filter(|board| !boards.contains(*board)).count();
                !alone_before && batch.len() < BATCH_MAX && (batch.is_empty() || named <= BATCH_MAX_BOARDS)
            }
        };
        if !fits {
            out.push(std::mem::take(&mut batch));
            boards.clear();
        }
        if let Reach::These(these) = &change.reach {
            boards.extend(these.iter().cloned());
        }
        batch.push(change);
    }
    if !batch.is_empty() {
        out.push(batch);
    }
    out
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
        Change { seq, workspace: workspace.into(), json: format!("{{\"outbox_seq\":{seq}}}"), reach: Reach::These(vec!["b".into()]) }
    }

    fn on(seq: i64, reach: Reach) -> Change {
        Change { reach, ..change(seq, "a") }
    }

    fn seqs(batches: Vec<Vec<Change>>) -> Vec<Vec<i64>> {
        batches.into_iter().map(|batch| batch.iter().map(|change| change.seq).collect()).collect()
    }

    #[test]
    fn a_batch_names_at_most_batch_max_boards() {
        let changes: Vec<Change> = (0..25).map(|i| on(i, Reach::These(vec![format!("board-{i}")]))).collect();
        let cut = batches(changes);
        assert_eq!(cut.iter().map(Vec::len).collect::<Vec<_>>(), vec![10, 10, 5]);
        // Changes on boards already named cost nothing more; a move names two boards.
        let two = |i: i64, a: &str, b: &str| on(i, Reach::These(vec![a.into(), b.into()]));
        let cut = seqs(batches(vec![two(1, "x", "y"), two(2, "x", "y"), on(3, Reach::These((0..9).map(|i| format!("z{i}")).collect())), on(4, Reach::These(vec!["z0".into()]))]));
        assert_eq!(cut, vec![vec![1, 2], vec![3, 4]]);
    }

    #[test]
    fn a_change_reaching_every_board_goes_alone_and_order_is_kept() {
        let b = |i: i64| on(i, Reach::These(vec!["b".into()]));
        let cut = seqs(batches(vec![b(1), b(2), on(3, Reach::All), b(4), on(5, Reach::All), on(6, Reach::All)]));
        assert_eq!(cut, vec![vec![1, 2], vec![3], vec![4], vec![5], vec![6]]);
        let many: Vec<Change> = (0..250).map(b).collect();
        assert_eq!(batches(many).iter().map(Vec::len).collect::<Vec<_>>(), vec![100, 100, 50]);
    }

    #[test]
    fn changes_split_by_workspace_in_sequence_order() {
        let groups = by_workspace(vec![change(1, "a"), change(2, "b"), change(3, "a"), change(4, "")]);
        let seqs: Vec<(String, Vec<i64>)> = groups.into_iter().map(|(w, changes)| (w, changes.iter().map(|c| c.seq).collect())).collect();
        assert_eq!(seqs, vec![("a".into(), vec![1, 3]), ("b".into(), vec![2]), (String::new(), vec![4])]);
    }
}
