//! Running figures for the periodic log summary: frame rate and latency
//! percentiles.

use std::time::{Duration, Instant};

/// Latencies of the frames processed since the last summary.
pub struct Window {
    started: Instant,
    latencies_ms: Vec<f64>,
    faces: usize,
}

/// What a window adds up to.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub frames: usize,
    pub fps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub faces_per_frame: f64,
}

impl Default for Window {
    fn default() -> Self {
        Window {
            started: Instant::now(),
            latencies_ms: Vec::new(),
            faces: 0,
        }
    }
}

impl Window {
    pub fn record(&mut self, latency_ms: f64, faces: usize) {
        self.latencies_ms.push(latency_ms);
        self.faces += faces;
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Summarises and starts a new window.
    pub fn take(&mut self) -> Summary {
        let secs = self.started.elapsed().as_secs_f64().max(1e-9);
        let mut l = std::mem::take(&mut self.latencies_ms);
        l.sort_by(f64::total_cmp);
        let n = l.len();
        let summary = Summary {
            frames: n,
            fps: n as f64 / secs,
            p50_ms: percentile(&l, 50.0),
            p99_ms: percentile(&l, 99.0),
            faces_per_frame: if n > 0 {
                self.faces as f64 / n as f64
            } else {
                0.0
            },
        };
        self.faces = 0;
        self.started = Instant::now();
        summary
    }
}

/// Nearest-rank percentile of sorted values; 0 when there are none.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&v, 100.0), 100.0);
        assert_eq!(percentile(&[7.0], 99.0), 7.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
    }

    #[test]
    fn window_counts_and_resets() {
        let mut w = Window::default();
        w.record(10.0, 1);
        w.record(30.0, 2);
        let s = w.take();
        assert_eq!(s.frames, 2);
        assert_eq!(s.p50_ms, 10.0);
        assert_eq!(s.p99_ms, 30.0);
        assert_eq!(s.faces_per_frame, 1.5);
        assert_eq!(w.take().frames, 0);
    }
}
