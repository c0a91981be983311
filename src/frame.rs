//! The unit of work: one image from a source, stamped when it left the source.

use std::time::{Duration, Instant, SystemTime};

use opencv::core::Mat;

/// One frame as it leaves a source.
pub struct Frame {
    /// Position in the source's stream, starting at 0 and never reused, so a
    /// client can see how many frames were dropped between two messages.
    pub seq: u64,
    /// Wall-clock capture time, published to clients.
    pub captured_at: SystemTime,
    /// Monotonic capture time, for latency figures that survive clock jumps.
    pub captured: Instant,
    /// How long the source took to produce (read and decode) this frame.
    pub decode: Duration,
    /// Pixels, 8-bit BGR as OpenCV delivers them.
    pub image: Mat,
}

/// Milliseconds since the Unix epoch, the form in which times are published.
pub fn unix_ms(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or(0.0)
}
