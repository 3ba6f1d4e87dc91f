//! What `logferry collect` exports: a snapshot the collect loop fills a few
//! times a second (never per record), turned into metric families by
//! `prometheus-client` when `/metrics` is scraped, and the rule behind
//! `/health`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::exemplar::Exemplar;
use prometheus_client::metrics::{MetricType, TypedMetric};

use crate::metrics::family::{counters, gauges, labels, Labels};
use crate::metrics::{Exposition, Registry};

/// Upper bounds (seconds) of the fsync latency buckets: from a cached
/// write on fast storage (~100 µs) to a stalled disk (seconds).
pub const FSYNC_BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.5,
];

/// fsync latencies, as a classic histogram: counts per bucket (the last
/// is +Inf), the sum and the count. Kept by the writer as plain integers,
/// so an fsync costs an array increment, not a metrics call.
#[derive(Debug, Clone, Default)]
pub struct FsyncStats {
    pub buckets: [u64; FSYNC_BUCKETS.len() + 1],
    pub sum_seconds: f64,
    pub count: u64,
}

impl FsyncStats {
    pub fn observe(&mut self, d: Duration) {
        let s = d.as_secs_f64();
        let i = FSYNC_BUCKETS
            .iter()
            .position(|b| s <= *b)
            .unwrap_or(FSYNC_BUCKETS.len());
        self.buckets[i] += 1;
        self.sum_seconds += s;
        self.count += 1;
    }
}

/// The histogram family `prometheus-client` encodes from [`FsyncStats`].
#[derive(Debug)]
struct FsyncHistogram(FsyncStats);

impl TypedMetric for FsyncHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for FsyncHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        // Per-bucket (not cumulative) counts: the encoder accumulates.
        let buckets: Vec<(f64, u64)> = FSYNC_BUCKETS
            .iter()
            .copied()
            .chain([f64::INFINITY])
            .zip(self.0.buckets.iter().copied())
            .collect();
        encoder.encode_histogram::<NoLabelSet>(
            self.0.sum_seconds,
            self.0.count,
            &buckets,
            None::<&HashMap<usize, Exemplar<NoLabelSet, f64>>>,
        )
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

/// Records handled from one topic.
#[derive(Debug, Default, Clone, Copy)]
pub struct TopicCounts {
    /// Written at their source offset.
    pub attributed: u64,
    /// Appended to `_unattributed` (including undecodable attribution).
    pub unattributed: u64,
}

/// One assigned partition's lag, from librdkafka's statistics.
#[derive(Debug, Clone)]
pub struct PartitionLag {
    pub topic: String,
    pub partition: i32,
    /// High watermark minus the committed offset.
    pub lag: i64,
}

/// Open holes in the index, as of this collector's last sync.
#[derive(Debug, Clone, Copy, Default)]
pub struct HoleSummary {
    pub holes: u64,
    /// Holes open longer than the gap timeout.
    pub gaps: u64,
    /// Unix seconds when the oldest open hole was first seen.
    pub oldest_since: Option<u64>,
    /// Generations in the index.
    pub generations: u64,
}

#[derive(Debug, Clone)]
pub struct CollectSnapshot {
    pub topics: Vec<(String, TopicCounts)>,
    pub bytes_written: u64,
    pub fsync: FsyncStats,
    pub commits: u64,
    pub beyond_max_hole: u64,
    pub unwritable: u64,
    pub corrupt: u64,
    pub split_generations: u64,
    pub lag: Vec<PartitionLag>,
    pub holes: HoleSummary,
    /// Unix seconds now, for hole ages.
    pub now: u64,
    /// Since when OUT cannot be written, and why.
    pub disk_full: Option<(Instant, String)>,
    pub health: Result<(), String>,
    /// When the loop filled it.
    pub taken: Instant,
}

/// The stall rule: commits keep coming while records wait for one.
#[derive(Debug)]
pub struct StallRule {
    max_stall: Duration,
    progress_at: Instant,
    commits: u64,
}

impl StallRule {
    pub fn new(max_stall: Duration, now: Instant) -> Self {
        StallRule {
            max_stall,
            progress_at: now,
            commits: 0,
        }
    }

    /// `waiting`: records consumed since the last successful commit.
    pub fn observe(&mut self, now: Instant, commits: u64, waiting: u64) -> Result<(), String> {
        if commits != self.commits || waiting == 0 {
            self.progress_at = now;
        }
        self.commits = commits;
        let stalled = now.saturating_duration_since(self.progress_at);
        if stalled >= self.max_stall {
            return Err(format!(
                "no offset commit for {} s while {waiting} records wait (max_stall {} s)",
                stalled.as_secs(),
                self.max_stall.as_secs_f64()
            ));
        }
        Ok(())
    }
}

/// `collect`'s [`Exposition`]: the latest snapshot, replaced by the loop.
#[derive(Debug)]
pub struct CollectExposition {
    snapshot: Mutex<Option<CollectSnapshot>>,
    max_stall: Duration,
    started: Instant,
    /// Reloads applied and refused (updated by the loop directly).
    pub reloads: crate::metrics::ReloadStatus,
}

impl CollectExposition {
    pub fn new(max_stall: Duration) -> Self {
        CollectExposition {
            snapshot: Mutex::new(None),
            max_stall,
            started: Instant::now(),
            reloads: crate::metrics::ReloadStatus::default(),
        }
    }

    pub fn max_stall(&self) -> Duration {
        self.max_stall
    }

    pub fn publish(&self, snapshot: CollectSnapshot) {
        *self.snapshot.lock().unwrap_or_else(|p| p.into_inner()) = Some(snapshot);
    }

    fn latest(&self) -> Option<CollectSnapshot> {
        self.snapshot
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// What one consumer session counted so far: each session (a new
/// consumer after a full disk) starts from 0, so [`Observer`] adds the
/// ended sessions' figures to keep the counters monotonic.
#[derive(Debug, Clone, Default)]
pub struct SessionFigures {
    pub topics: HashMap<String, TopicCounts>,
    pub bytes_written: u64,
    pub fsync: FsyncStats,
    pub commits: u64,
    /// Records consumed and not committed yet.
    pub waiting: u64,
    /// None until a sync of this session wrote something.
    pub holes: Option<HoleSummary>,
    /// Lines more than `max_hole` past the end of their output, kept in
    /// `_unattributed` instead.
    pub beyond_max_hole: u64,
    /// Attributed records whose output cannot be created where the
    /// attribution points, kept in `_unattributed` instead.
    pub unwritable: u64,
    /// Records whose attribution does not decode (in `_unattributed`).
    pub corrupt: u64,
    /// Generations seen on several partitions of a topic this collector
    /// holds only part of (counted once per session each).
    pub split_generations: u64,
    pub lag: Vec<PartitionLag>,
}

impl SessionFigures {
    fn add(&mut self, other: &SessionFigures) {
        for (t, c) in &other.topics {
            let mine = self.topics.entry(t.clone()).or_default();
            mine.attributed += c.attributed;
            mine.unattributed += c.unattributed;
        }
        self.bytes_written += other.bytes_written;
        for (a, b) in self.fsync.buckets.iter_mut().zip(other.fsync.buckets) {
            *a += b;
        }
        self.fsync.sum_seconds += other.fsync.sum_seconds;
        self.fsync.count += other.fsync.count;
        self.commits += other.commits;
        self.beyond_max_hole += other.beyond_max_hole;
        self.unwritable += other.unwritable;
        self.corrupt += other.corrupt;
        self.split_generations += other.split_generations;
    }
}

/// The collect loop's side: turns session figures into snapshots at most
/// [`PUBLISH_EVERY`], judging health as it goes.
#[derive(Debug)]
pub struct Observer {
    exposition: Arc<CollectExposition>,
    /// Counters of the sessions that ended.
    ended: SessionFigures,
    holes: HoleSummary,
    stall: StallRule,
    next: Instant,
}

/// How often the loop publishes: a scrape sees figures at most this old.
pub const PUBLISH_EVERY: Duration = Duration::from_millis(250);

impl Observer {
    /// `holes`: the index as found at start.
    pub fn new(exposition: Arc<CollectExposition>, holes: HoleSummary) -> Self {
        let now = Instant::now();
        Observer {
            stall: StallRule::new(exposition.max_stall(), now),
            exposition,
            ended: SessionFigures::default(),
            holes,
            next: now,
        }
    }

    pub fn due(&self, now: Instant) -> bool {
        now >= self.next
    }

    /// Publish the current session's figures (`disk_full`: since when and
    /// why OUT cannot be written, when it cannot).
    pub fn publish(
        &mut self,
        now: Instant,
        current: &SessionFigures,
        disk_full: Option<(Instant, String)>,
    ) {
        self.next = now + PUBLISH_EVERY;
        if let Some(h) = current.holes {
            self.holes = h;
        }
        let mut total = self.ended.clone();
        total.add(current);
        let health = self.stall.observe(now, total.commits, current.waiting);
        let mut topics: Vec<(String, TopicCounts)> = total.topics.into_iter().collect();
        topics.sort_by(|a, b| a.0.cmp(&b.0));
        self.exposition.publish(CollectSnapshot {
            topics,
            bytes_written: total.bytes_written,
            fsync: total.fsync,
            commits: total.commits,
            beyond_max_hole: total.beyond_max_hole,
            unwritable: total.unwritable,
            corrupt: total.corrupt,
            split_generations: total.split_generations,
            lag: current.lag.clone(),
            holes: self.holes,
            now: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            disk_full,
            health,
            taken: now,
        });
    }

    /// A session ended: keep its counters.
    pub fn end_session(&mut self, last: &SessionFigures) {
        if let Some(h) = last.holes {
            self.holes = h;
        }
        self.ended.add(last);
    }
}

fn one<T>(v: T) -> [(Labels, T); 1] {
    [(Labels::new(), v)]
}

impl Exposition for CollectExposition {
    fn register(&self, r: &mut Registry) {
        self.reloads.register(r);
        let Some(s) = self.latest() else { return };
        counters(
            r,
            "logferry_collect_records",
            "Records consumed and handled, by topic and kind (attributed: written at their source offset; unattributed: appended to _unattributed)",
            s.topics.iter().flat_map(|(t, c)| {
                [("attributed", c.attributed), ("unattributed", c.unattributed)]
                    .into_iter()
                    .map(|(kind, v)| {
                        (
                            labels([("topic", t.clone()), ("kind", kind.to_string())]),
                            v,
                        )
                    })
            }),
        );
        counters(
            r,
            "logferry_collect_bytes_written",
            "Bytes written to output files (lines with their newlines)",
            one(s.bytes_written),
        );
        r.register(
            "logferry_collect_fsync_seconds",
            "Latency of each output file fsync before a commit",
            FsyncHistogram(s.fsync.clone()),
        );
        counters(
            r,
            "logferry_collect_commits",
            "Offset commits that succeeded (each after the outputs were fsynced)",
            one(s.commits),
        );
        counters(
            r,
            "logferry_collect_beyond_max_hole",
            "Attributed lines whose offset lies more than max_hole past the end of their generation's output, kept in _unattributed instead of written",
            one(s.beyond_max_hole),
        );
        counters(
            r,
            "logferry_collect_unwritable",
            "Attributed records whose output file cannot be created where the attribution points (a name clash, a path too long), kept in _unattributed instead",
            one(s.unwritable),
        );
        counters(
            r,
            "logferry_collect_corrupt_attribution",
            "Records whose source attribution (key form or lf header) does not decode, kept in _unattributed",
            one(s.corrupt),
        );
        counters(
            r,
            "logferry_collect_split_generations",
            "Generations seen arriving on several partitions of a topic while this collector held only some of its partitions: other group members write the rest (fine with one shared OUT)",
            one(s.split_generations),
        );
        gauges(
            r,
            "logferry_collect_consumer_lag",
            "Records in the partition past the committed offset (high watermark minus committed; librdkafka statistics)",
            s.lag.iter().map(|l| {
                (
                    labels([
                        ("topic", l.topic.clone()),
                        ("partition", l.partition.to_string()),
                    ]),
                    l.lag as f64,
                )
            }),
        );
        gauges(
            r,
            "logferry_collect_open_holes",
            "Byte ranges missing between written lines, in any generation",
            one(s.holes.holes as f64),
        );
        gauges(
            r,
            "logferry_collect_open_gaps",
            "Holes open longer than gap_timeout",
            one(s.holes.gaps as f64),
        );
        gauges(
            r,
            "logferry_collect_oldest_gap_seconds",
            "Age of the oldest open hole (a gap once older than gap_timeout); 0 when none",
            one(s
                .holes
                .oldest_since
                .map_or(0.0, |t| s.now.saturating_sub(t) as f64)),
        );
        gauges(
            r,
            "logferry_collect_generations",
            "Source generations in the output index",
            one(s.holes.generations as f64),
        );
        gauges(
            r,
            "logferry_collect_disk_full",
            "1 while OUT cannot be written (consuming stopped, probed every second)",
            one(f64::from(u8::from(s.disk_full.is_some()))),
        );
        gauges(
            r,
            "logferry_up_seconds",
            "Seconds since logferry started",
            one(self.started.elapsed().as_secs_f64()),
        );
    }

    fn health(&self) -> Result<(), String> {
        let Some(s) = self.latest() else {
            return Ok(()); // Starting: nothing has had time to stall.
        };
        if let Some((since, why)) = &s.disk_full {
            return Err(format!(
                "cannot write the output directory for {} s: {why}",
                since.elapsed().as_secs()
            ));
        }
        let age = s.taken.elapsed();
        if age >= self.max_stall.max(Duration::from_secs(5)) {
            return Err(format!(
                "the collect loop has not reported for {} s",
                age.as_secs()
            ));
        }
        s.health
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn waiting_without_commits_is_a_stall_and_idle_is_not() {
        let t0 = Instant::now();
        let mut h = StallRule::new(10 * S, t0);
        assert!(h.observe(t0 + 100 * S, 0, 0).is_ok());
        assert!(h.observe(t0 + 105 * S, 0, 7).is_ok());
        let err = h.observe(t0 + 111 * S, 0, 7).unwrap_err();
        assert!(err.contains("7 records wait"), "{err}");
        assert!(h.observe(t0 + 112 * S, 1, 7).is_ok());
    }

    #[test]
    fn a_full_disk_is_unhealthy_until_a_session_resumes() {
        let x = Arc::new(CollectExposition::new(60 * S));
        let mut o = Observer::new(x.clone(), HoleSummary::default());
        let idle = SessionFigures::default();
        assert!(x.health().is_ok(), "starting is healthy");
        let t = Instant::now();
        o.publish(t, &idle, Some((t, "No space left on device".into())));
        let err = x.health().unwrap_err();
        assert!(err.contains("No space left"), "{err}");
        o.publish(t, &idle, None);
        assert!(x.health().is_ok());
    }

    #[test]
    fn counters_survive_sessions() {
        let x = Arc::new(CollectExposition::new(60 * S));
        let mut o = Observer::new(x.clone(), HoleSummary::default());
        let mut f = SessionFigures {
            bytes_written: 10,
            commits: 2,
            beyond_max_hole: 1,
            unwritable: 5,
            corrupt: 7,
            split_generations: 3,
            ..SessionFigures::default()
        };
        f.topics.insert(
            "t".into(),
            TopicCounts {
                attributed: 3,
                unattributed: 1,
            },
        );
        o.end_session(&f);
        o.publish(Instant::now(), &f, None);
        let s = x.latest().unwrap();
        assert_eq!((s.bytes_written, s.commits), (20, 4));
        assert_eq!((s.beyond_max_hole, s.split_generations), (2, 6));
        let mut r = Registry::default();
        x.register(&mut r);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &r).unwrap();
        assert!(
            text.contains("logferry_collect_beyond_max_hole_total 2"),
            "{text}"
        );
        assert!(
            text.contains("logferry_collect_split_generations_total 6"),
            "{text}"
        );
        assert!(
            text.contains("logferry_collect_unwritable_total 10"),
            "{text}"
        );
        assert!(
            text.contains("logferry_collect_corrupt_attribution_total 14"),
            "{text}"
        );
        assert_eq!(s.topics[0].1.attributed, 6);
    }

    #[test]
    fn fsync_buckets_and_encoding() {
        let mut f = FsyncStats::default();
        f.observe(Duration::from_micros(50));
        f.observe(Duration::from_millis(3));
        f.observe(Duration::from_secs(9));
        assert_eq!(f.count, 3);
        assert_eq!(f.buckets[0], 1);
        assert_eq!(f.buckets[5], 1);
        assert_eq!(f.buckets[FSYNC_BUCKETS.len()], 1);
        let mut r = Registry::default();
        r.register("x_fsync_seconds", "h", FsyncHistogram(f));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &r).unwrap();
        assert!(text.contains("# TYPE x_fsync_seconds histogram"), "{text}");
        assert!(text.contains("x_fsync_seconds_count 3"), "{text}");
        assert!(
            text.contains("x_fsync_seconds_bucket{le=\"+Inf\"} 3"),
            "{text}"
        );
        assert!(
            text.contains("x_fsync_seconds_bucket{le=\"0.005\"} 2"),
            "{text}"
        );
    }
}
