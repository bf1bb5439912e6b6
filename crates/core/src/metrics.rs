//! Request metrics over a rolling window: the spec's `/metrics` figures and its "Cache Analytics",
//! per-layer hits and misses, latency percentiles, and the Prometheus exposition of the same
//! numbers. Pure: the caller records samples and passes `now`.

use crate::layer::{CacheLayer, CacheStatus};
use crate::time::UnixMillis;
use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write;

/// What one request did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sample {
    pub at: UnixMillis,
    /// Milliseconds spent answering.
    pub millis: u64,
    /// Where a list or counts answer came from and how (`None` for other routes).
    pub answer: Option<(CacheStatus, CacheLayer)>,
    /// The caches looked up, in order, and whether each hit.
    pub lookups: Vec<(CacheLayer, bool)>,
    /// A 5xx answer, or a layer that failed on the way.
    pub error: bool,
    pub kv_operations: u32,
    pub redis_operations: u32,
    pub database_queries: u32,
    pub state_home: StateHomeCalls,
}

/// Calls to the state home (the workspace's Durable Object holding scope states and carry
/// records): reads, conditional writes, and writes refused because another came first.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StateHomeCalls {
    pub reads: u64,
    pub writes: u64,
    pub conflicts: u64,
}

/// Samples of the last `window_ms`, at most `capacity` of them (the oldest are dropped first).
#[derive(Debug, Clone)]
pub struct Recorder {
    since: UnixMillis,
    window_ms: u64,
    capacity: usize,
    samples: VecDeque<Sample>,
}

/// How much the numbers cover.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scope {
    /// `isolate`: one worker instance in one location, since it started.
    pub kind: &'static str,
    pub since: String,
    pub window_seconds: u64,
    pub samples: usize,
}

/// The spec's `metrics` object.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SpecMetrics {
    pub requests_per_minute: f64,
    pub cache_hit_rate: f64,
    pub average_response_time: f64,
    pub kv_operations: u64,
    pub errors: u64,
}

/// The spec's "Cache Analytics" object.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CacheAnalytics {
    pub total_requests: u64,
    pub cache_hits: u64,
    pub cache_misses: u64,
    pub hit_rate: f64,
    pub average_response_time: f64,
    pub p95_response_time: f64,
    pub kv_operations: u64,
    pub redis_operations: u64,
    pub database_queries: u64,
}

/// Hits and misses of one cache layer, and answers served by each layer.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LayerCounts {
    pub hits: u64,
    pub misses: u64,
    pub served: u64,
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Latency {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
}

/// Everything `/metrics` reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Snapshot {
    pub scope: Scope,
    pub metrics: SpecMetrics,
    pub analytics: CacheAnalytics,
    pub layers: BTreeMap<&'static str, LayerCounts>,
    pub latency: Latency,
    pub state_home: StateHomeCalls,
}

impl Recorder {
    pub fn new(since: UnixMillis, window_ms: u64, capacity: usize) -> Self {
        Self { since, window_ms, capacity, samples: VecDeque::new() }
    }

    pub fn record(&mut self, sample: Sample) {
        if self.samples.len() == self.capacity {
            self.samples.pop_front();
        }
        self.samples.push_back(sample);
    }

    /// The numbers over the window ending at `now`.
    pub fn snapshot(&mut self, now: UnixMillis) -> Snapshot {
        let horizon = now.0.saturating_sub(self.window_ms);
        while self.samples.front().is_some_and(|s| s.at.0 < horizon) {
            self.samples.pop_front();
        }
        let samples = &self.samples;
        let total = samples.len() as u64;
        let sum = |f: fn(&Sample) -> u64| samples.iter().map(f).sum::<u64>();
        let lists: Vec<&Sample> = samples.iter().filter(|s| s.answer.is_some()).collect();
        let hits = lists.iter().filter(|s| matches!(s.answer, Some((CacheStatus::Hit, _)))).count() as u64;
        let misses = lists.len() as u64 - hits;
        let mut latencies: Vec<u64> = samples.iter().map(|s| s.millis).collect();
        latencies.sort_unstable();
        let average = if total == 0 { 0.0 } else { round2(sum(|s| s.millis) as f64 / total as f64) };
        let covered_ms = now.since(self.since).clamp(1, self.window_ms);
        let mut layers: BTreeMap<&'static str, LayerCounts> = BTreeMap::new();
        for layer in [CacheLayer::L0, CacheLayer::Kv, CacheLayer::Redis, CacheLayer::Database, CacheLayer::BackendFallback] {
            layers.insert(layer.as_str(), LayerCounts::default());
        }
        for sample in samples {
            for (layer, hit) in &sample.lookups {
                let counts = layers.get_mut(layer.as_str()).expect("every layer is listed");
                if *hit {
                    counts.hits += 1;
                } else {
                    counts.misses += 1;
                }
            }
            if let Some((_, layer)) = sample.answer {
                layers.get_mut(layer.as_str()).expect("every layer is listed").served += 1;
            }
        }
        let kv_operations = sum(|s| u64::from(s.kv_operations));
        Snapshot {
            scope: Scope {
                kind: "isolate",
                since: self.since.to_string(),
                window_seconds: self.window_ms / 1000,
                samples: samples.len(),
            },
            metrics: SpecMetrics {
                requests_per_minute: round2(total as f64 * 60_000.0 / covered_ms as f64),
                cache_hit_rate: rate(hits, misses),
                average_response_time: average,
                kv_operations,
                errors: sum(|s| u64::from(s.error)),
            },
            analytics: CacheAnalytics {
                total_requests: total,
                cache_hits: hits,
                cache_misses: misses,
                hit_rate: rate(hits, misses),
                average_response_time: average,
                p95_response_time: percentile(&latencies, 95.0),
                kv_operations,
                redis_operations: sum(|s| u64::from(s.redis_operations)),
                database_queries: sum(|s| u64::from(s.database_queries)),
            },
            layers,
            latency: Latency {
                p50: percentile(&latencies, 50.0),
                p95: percentile(&latencies, 95.0),
                p99: percentile(&latencies, 99.0),
            },
            state_home: StateHomeCalls {
                reads: sum(|s| s.state_home.reads),
                writes: sum(|s| s.state_home.writes),
                conflicts: sum(|s| s.state_home.conflicts),
            },
        }
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn rate(hits: u64, misses: u64) -> f64 {
    if hits + misses == 0 {
        0.0
    } else {
        round2(hits as f64 / (hits + misses) as f64)
    }
}

/// The nearest-rank percentile of sorted values (0 for none).
pub fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1] as f64
}

/// The snapshot in the Prometheus text exposition format (version 0.0.4).
pub fn prometheus(snapshot: &Snapshot, edge_location: &str) -> String {
    let mut out = String::new();
    let labels = format!("edge_location=\"{}\"", escape_label(edge_location));
    let mut metric = |name: &str, kind: &str, help: &str, samples: &[(String, f64)]| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (extra, value) in samples {
            let sep = if extra.is_empty() { "" } else { "," };
            let _ = writeln!(out, "{name}{{{labels}{sep}{extra}}} {value}");
        }
    };
    let a = &snapshot.analytics;
    let one = |v: f64| vec![(String::new(), v)];
    metric("contact_cache_requests", "gauge", "Requests in the window.", &one(a.total_requests as f64));
    metric("contact_cache_requests_per_minute", "gauge", "Requests per minute over the window.", &one(snapshot.metrics.requests_per_minute));
    metric("contact_cache_hits", "gauge", "List answers served from a cache in the window.", &one(a.cache_hits as f64));
    metric("contact_cache_misses", "gauge", "List answers not served from a cache in the window.", &one(a.cache_misses as f64));
    metric("contact_cache_hit_ratio", "gauge", "Cache hits over cache hits and misses.", &one(a.hit_rate));
    metric("contact_cache_errors", "gauge", "Answers with errors in the window.", &one(snapshot.metrics.errors as f64));
    metric("contact_cache_kv_operations", "gauge", "Workers KV reads and writes in the window.", &one(a.kv_operations as f64));
    metric("contact_cache_redis_operations", "gauge", "Calls to the backend's Redis cache in the window.", &one(a.redis_operations as f64));
    metric("contact_cache_database_queries", "gauge", "Queries to Supabase or the backend fallback in the window.", &one(a.database_queries as f64));
    let home = snapshot.state_home;
    metric("contact_cache_state_home_reads", "gauge", "Reads of the state home (scope states, carry records) in the window.", &one(home.reads as f64));
    metric("contact_cache_state_home_writes", "gauge", "Conditional writes to the state home in the window.", &one(home.writes as f64));
    metric("contact_cache_state_home_conflicts", "gauge", "State home writes refused because another came first, in the window.", &one(home.conflicts as f64));
    let per_layer = |pick: fn(&LayerCounts) -> u64| -> Vec<(String, f64)> {
        snapshot.layers.iter().map(|(layer, c)| (format!("layer=\"{layer}\""), pick(c) as f64)).collect()
    };
    metric("contact_cache_layer_hits", "gauge", "Lookups that hit, per cache layer, in the window.", &per_layer(|c| c.hits));
    metric("contact_cache_layer_misses", "gauge", "Lookups that missed, per cache layer, in the window.", &per_layer(|c| c.misses));
    metric("contact_cache_layer_served", "gauge", "Answers served, per layer, in the window.", &per_layer(|c| c.served));
    let quantiles: Vec<(String, f64)> = [("0.5", snapshot.latency.p50), ("0.95", snapshot.latency.p95), ("0.99", snapshot.latency.p99)]
        .iter()
        .map(|(q, v)| (format!("quantile=\"{q}\""), *v))
        .collect();
    metric("contact_cache_response_time_milliseconds", "gauge", "Response time percentiles over the window, in milliseconds.", &quantiles);
    out
}

fn escape_label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sample whose caches were looked up in order until the one that answered.
    fn sample(at: u64, millis: u64, answer: Option<(CacheStatus, CacheLayer)>) -> Sample {
        let lookups = match answer {
            Some((_, CacheLayer::Kv)) => vec![(CacheLayer::Kv, true)],
            Some((_, CacheLayer::Redis)) => vec![(CacheLayer::Kv, false), (CacheLayer::Redis, true)],
            Some(_) => vec![(CacheLayer::Kv, false), (CacheLayer::Redis, false)],
            None => vec![],
        };
        Sample { at: UnixMillis(at), millis, answer, lookups, ..Sample::default() }
    }

    #[test]
    fn a_known_mix_gives_exact_numbers() {
        let mut recorder = Recorder::new(UnixMillis(0), 300_000, 1000);
        recorder.record(sample(1000, 2, Some((CacheStatus::Hit, CacheLayer::Kv))));
        recorder.record(sample(2000, 4, Some((CacheStatus::Hit, CacheLayer::Kv))));
        recorder.record(sample(3000, 20, Some((CacheStatus::Hit, CacheLayer::Redis))));
        recorder.record(sample(4000, 100, Some((CacheStatus::Miss, CacheLayer::Database))));
        recorder.record(Sample { error: true, ..sample(5000, 1, None) });
        let snap = recorder.snapshot(UnixMillis(60_000));
        assert_eq!(snap.analytics.total_requests, 5);
        assert_eq!((snap.analytics.cache_hits, snap.analytics.cache_misses), (3, 1));
        assert_eq!(snap.analytics.hit_rate, 0.75);
        assert_eq!(super::rate(2, 1), 0.67);
        assert_eq!(snap.metrics.errors, 1);
        assert_eq!(snap.metrics.requests_per_minute, 5.0);
        assert_eq!(snap.analytics.average_response_time, 25.4);
        assert_eq!(snap.layers["KV"], LayerCounts { hits: 2, misses: 2, served: 2 });
        assert_eq!(snap.layers["REDIS"], LayerCounts { hits: 1, misses: 1, served: 1 });
        assert_eq!(snap.layers["DATABASE"], LayerCounts { hits: 0, misses: 0, served: 1 });
        assert_eq!(snap.latency, Latency { p50: 4.0, p95: 100.0, p99: 100.0 });
    }

    #[test]
    fn state_home_calls_are_summed_over_the_window() {
        let mut recorder = Recorder::new(UnixMillis(0), 300_000, 1000);
        recorder.record(Sample { state_home: StateHomeCalls { reads: 2, writes: 1, conflicts: 1 }, ..sample(1000, 1, None) });
        recorder.record(Sample { state_home: StateHomeCalls { reads: 1, ..StateHomeCalls::default() }, ..sample(2000, 1, None) });
        let snap = recorder.snapshot(UnixMillis(3000));
        assert_eq!(snap.state_home, StateHomeCalls { reads: 3, writes: 1, conflicts: 1 });
        let text = prometheus(&snap, "SFO");
        assert!(text.contains("contact_cache_state_home_reads{edge_location=\"SFO\"} 3\n"));
        assert!(text.contains("contact_cache_state_home_conflicts{edge_location=\"SFO\"} 1\n"));
    }

    #[test]
    fn old_samples_leave_the_window() {
        let mut recorder = Recorder::new(UnixMillis(0), 60_000, 1000);
        recorder.record(sample(1_000, 5, None));
        recorder.record(sample(90_000, 5, None));
        assert_eq!(recorder.snapshot(UnixMillis(100_000)).analytics.total_requests, 1);
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let values: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&values, 50.0), 50.0);
        assert_eq!(percentile(&values, 95.0), 95.0);
        assert_eq!(percentile(&values, 99.0), 99.0);
        assert_eq!(percentile(&[], 99.0), 0.0);
    }

    #[test]
    fn the_prometheus_text_has_help_type_and_labels() {
        let mut recorder = Recorder::new(UnixMillis(0), 300_000, 10);
        recorder.record(sample(1000, 2, Some((CacheStatus::Hit, CacheLayer::Kv))));
        let text = prometheus(&recorder.snapshot(UnixMillis(2000)), "SFO");
        assert!(text.contains("# HELP contact_cache_hits List answers served from a cache in the window.\n# TYPE contact_cache_hits gauge\ncontact_cache_hits{edge_location=\"SFO\"} 1\n"));
        assert!(text.contains("contact_cache_layer_hits{edge_location=\"SFO\",layer=\"KV\"} 1\n"));
        assert!(text.contains("contact_cache_response_time_milliseconds{edge_location=\"SFO\",quantile=\"0.99\"} 2\n"));
    }
}
