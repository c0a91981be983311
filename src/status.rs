//! The daemon's running state, shared by the pipeline threads (which write
//! it) and everything that reports on it (logs, clients, health, metrics).
//! Counters are atomics so the hot path never waits on a reader.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Instant, SystemTime};

use serde::{Deserialize, Serialize};

/// Upper bounds (ms) of the latency histogram buckets, Prometheus-style.
pub const LATENCY_BUCKETS_MS: [f64; 14] = [
    1.0, 2.0, 5.0, 10.0, 20.0, 35.0, 50.0, 75.0, 100.0, 150.0, 250.0, 500.0, 1000.0, 2500.0,
];

/// Where the source stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceState {
    /// Being opened.
    Starting,
    /// Delivering frames.
    Up,
    /// Failed or vanished; may come back.
    Lost,
    /// A file that ended and is not looped.
    Ended,
}

impl SourceState {
    /// The name used in messages, logs and `systemctl status`.
    pub fn name(self) -> &'static str {
        match self {
            SourceState::Starting => "starting",
            SourceState::Up => "up",
            SourceState::Lost => "lost",
            SourceState::Ended => "ended",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceStatus {
    pub state: SourceState,
    pub uri: String,
    /// Why it is in this state, for people.
    pub detail: String,
    pub since_unix_ms: f64,
}

/// A cumulative latency histogram.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Histogram {
    /// Count per bucket of [`LATENCY_BUCKETS_MS`] (not cumulative), then +Inf.
    pub counts: Vec<u64>,
    pub sum_ms: f64,
    pub count: u64,
}

impl Histogram {
    pub fn observe(&mut self, ms: f64) {
        if self.counts.is_empty() {
            self.counts = vec![0; LATENCY_BUCKETS_MS.len() + 1];
        }
        let i = LATENCY_BUCKETS_MS
            .iter()
            .position(|b| ms <= *b)
            .unwrap_or(LATENCY_BUCKETS_MS.len());
        self.counts[i] += 1;
        self.sum_ms += ms;
        self.count += 1;
    }
}

pub struct Status {
    pub started: Instant,
    pub frames_captured: AtomicU64,
    pub frames_processed: AtomicU64,
    /// Dropped because inference was busy (newest frame wins).
    pub frames_dropped: AtomicU64,
    /// Frames inference failed on (logged and skipped).
    pub frames_failed: AtomicU64,
    pub faces_detected: AtomicU64,
    source: Mutex<SourceStatus>,
    last_frame: Mutex<Option<Instant>>,
    /// Per stage (`decode`, `queue`, detector stages, `total`).
    latencies: Mutex<BTreeMap<String, Histogram>>,
    /// Frames per second over the last summary window.
    fps_milli: AtomicU64,
}

impl Status {
    pub fn new(uri: &str) -> Status {
        Status {
            started: Instant::now(),
            frames_captured: AtomicU64::new(0),
            frames_processed: AtomicU64::new(0),
            frames_dropped: AtomicU64::new(0),
            frames_failed: AtomicU64::new(0),
            faces_detected: AtomicU64::new(0),
            source: Mutex::new(SourceStatus {
                state: SourceState::Starting,
                uri: uri.into(),
                detail: "opening".into(),
                since_unix_ms: crate::frame::unix_ms(SystemTime::now()),
            }),
            last_frame: Mutex::new(None),
            latencies: Mutex::new(BTreeMap::new()),
            fps_milli: AtomicU64::new(0),
        }
    }

    pub fn set_source(&self, state: SourceState, detail: impl Into<String>) {
        let mut s = lock(&self.source);
        if s.state != state {
            s.since_unix_ms = crate::frame::unix_ms(SystemTime::now());
        }
        s.state = state;
        s.detail = detail.into();
    }

    pub fn source(&self) -> SourceStatus {
        lock(&self.source).clone()
    }

    /// The source's state alone, without copying its strings.
    pub fn source_state(&self) -> SourceState {
        lock(&self.source).state
    }

    /// Points the status at a new source (after a reload).
    pub fn set_source_uri(&self, uri: &str) {
        lock(&self.source).uri = uri.into();
    }

    /// Records one processed frame.
    pub fn frame_processed(&self, faces: usize, stages: &[(String, f64)]) {
        self.frames_processed.fetch_add(1, Ordering::Relaxed);
        self.faces_detected
            .fetch_add(faces as u64, Ordering::Relaxed);
        *lock(&self.last_frame) = Some(Instant::now());
        let mut h = lock(&self.latencies);
        for (stage, ms) in stages {
            h.entry(stage.clone()).or_default().observe(*ms);
        }
    }

    /// Seconds since the last processed frame; `None` before the first.
    pub fn since_last_frame(&self) -> Option<f64> {
        lock(&self.last_frame).map(|t| t.elapsed().as_secs_f64())
    }

    pub fn latencies(&self) -> BTreeMap<String, Histogram> {
        lock(&self.latencies).clone()
    }

    pub fn set_fps(&self, fps: f64) {
        self.fps_milli
            .store((fps * 1000.0) as u64, Ordering::Relaxed);
    }

    pub fn fps(&self) -> f64 {
        self.fps_milli.load(Ordering::Relaxed) as f64 / 1000.0
    }

    pub fn get(&self, counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// Locks, shrugging off poisoning: the data are counters, still usable
/// after a panic elsewhere.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_puts_values_in_the_first_bucket_that_holds_them() {
        let mut h = Histogram::default();
        h.observe(0.5);
        h.observe(1.0);
        h.observe(30.0);
        h.observe(1e6);
        assert_eq!(h.counts[0], 2);
        assert_eq!(h.counts[5], 1); // 35 ms bucket
        assert_eq!(h.counts[LATENCY_BUCKETS_MS.len()], 1); // +Inf
        assert_eq!(h.count, 4);
    }

    #[test]
    fn source_state_changes_move_the_since_time() {
        let s = Status::new("x");
        assert_eq!(s.source().state, SourceState::Starting);
        s.set_source(SourceState::Up, "ok");
        let t = s.source().since_unix_ms;
        s.set_source(SourceState::Up, "still ok");
        assert_eq!(s.source().since_unix_ms, t);
        assert_eq!(s.source().detail, "still ok");
    }
}
