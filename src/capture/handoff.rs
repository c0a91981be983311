//! The one-slot, newest-wins hand-off between the capture thread and
//! inference.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender, TrySendError};

use crate::frame::Frame;

/// The capture side.
pub struct Handoff {
    tx: Sender<Frame>,
    /// A second receiver, used only to take out a frame that inference has
    /// not picked up yet, so the newest one can take its place.
    evict: Receiver<Frame>,
    dropped: Arc<AtomicU64>,
}

/// The inference side.
#[derive(Clone)]
pub struct HandoffReceiver {
    rx: Receiver<Frame>,
    dropped: Arc<AtomicU64>,
}

/// Creates a connected pair.
pub fn handoff() -> (Handoff, HandoffReceiver) {
    let (tx, rx) = bounded(1);
    let dropped = Arc::new(AtomicU64::new(0));
    (
        Handoff {
            tx,
            evict: rx.clone(),
            dropped: dropped.clone(),
        },
        HandoffReceiver { rx, dropped },
    )
}

impl Handoff {
    /// Offers a frame without blocking; an older frame still waiting is
    /// dropped and counted. Dropping the `Handoff` ends the stream.
    pub fn push(&self, frame: Frame) {
        let mut frame = frame;
        loop {
            match self.tx.try_send(frame) {
                // Disconnected cannot happen while `evict` lives; nothing to do.
                Ok(()) | Err(TrySendError::Disconnected(_)) => return,
                Err(TrySendError::Full(back)) => {
                    frame = back;
                    if self.evict.try_recv().is_ok() {
                        self.dropped.fetch_add(1, Ordering::Relaxed);
                    }
                    // Inference may have taken the old frame meanwhile; either
                    // way the slot is free now or on the next try.
                }
            }
        }
    }

    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// What a wait for the next frame gives.
pub enum Next {
    Frame(Frame),
    /// Nothing arrived within the timeout; the source is still there.
    Idle,
    /// The source has ended and every frame has been taken.
    Ended,
}

impl HandoffReceiver {
    pub fn next(&self, timeout: Duration) -> Next {
        match self.rx.recv_timeout(timeout) {
            Ok(f) => Next::Frame(f),
            Err(RecvTimeoutError::Timeout) => Next::Idle,
            Err(RecvTimeoutError::Disconnected) => Next::Ended,
        }
    }

    /// Frames dropped so far because inference was busy.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opencv::core::Mat;
    use std::time::{Instant, SystemTime};

    fn frame(seq: u64) -> Frame {
        Frame {
            seq,
            captured_at: SystemTime::now(),
            captured: Instant::now(),
            decode: Duration::ZERO,
            image: Mat::default(),
        }
    }

    #[test]
    fn newest_frame_wins_and_drops_are_counted() {
        let (tx, rx) = handoff();
        for seq in 0..5 {
            tx.push(frame(seq));
        }
        match rx.next(Duration::from_millis(10)) {
            Next::Frame(f) => assert_eq!(f.seq, 4),
            _ => panic!("expected a frame"),
        }
        assert_eq!(rx.dropped(), 4);
        assert!(matches!(rx.next(Duration::from_millis(10)), Next::Idle));
    }

    #[test]
    fn receiver_sees_the_end_after_the_last_frame() {
        let (tx, rx) = handoff();
        tx.push(frame(0));
        drop(tx);
        assert!(matches!(rx.next(Duration::from_millis(10)), Next::Frame(_)));
        assert!(matches!(rx.next(Duration::from_millis(10)), Next::Ended));
    }

    #[test]
    fn push_never_blocks_without_a_reader() {
        let (tx, rx) = handoff();
        drop(rx);
        let start = Instant::now();
        for seq in 0..100 {
            tx.push(frame(seq));
        }
        assert!(start.elapsed() < Duration::from_secs(1));
    }
}
