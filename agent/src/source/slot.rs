//! Latest-frame hand-over from a camera to analysis: one slot, overwritten by each new frame. When
//! analysis lags, the frame it did not take is dropped and counted; memory stays one frame per camera
//! (and the last one analysed, handed back with [`FrameSlot::keep`] so the console can [`FrameSlot::peek`]
//! at the picture without copying every frame or taking one from analysis).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use super::Frame;

#[derive(Default)]
pub struct FrameSlot {
    frame: Mutex<Option<Frame>>,
    ready: Condvar,
    delivered: AtomicU64,
    dropped: AtomicU64,
    /// The frame analysis finished with last.
    last: Mutex<Option<Frame>>,
}

impl FrameSlot {
    /// Puts the newest frame, replacing (and counting as dropped) one analysis has not taken yet.
    pub fn put(&self, frame: Frame) {
        let mut slot = self.frame.lock().unwrap_or_else(|e| e.into_inner());
        if slot.replace(frame).is_some() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        self.delivered.fetch_add(1, Ordering::Relaxed);
        self.ready.notify_one();
    }

    /// Takes the newest frame, waiting up to `timeout` for one.
    pub fn take(&self, timeout: Duration) -> Option<Frame> {
        let slot = self.frame.lock().unwrap_or_else(|e| e.into_inner());
        let (mut slot, _) =
            self.ready.wait_timeout_while(slot, timeout, |f| f.is_none()).unwrap_or_else(|e| e.into_inner());
        slot.take()
    }

    /// Hands back a frame analysis is done with: [`FrameSlot::peek`] shows it until a newer one comes.
    pub fn keep(&self, frame: Frame) {
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Some(frame);
    }

    /// A copy of the newest frame (waiting for analysis, else the last analysed), leaving it where it is.
    pub fn peek(&self) -> Option<Frame> {
        if let Some(frame) = self.frame.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            return Some(frame.clone());
        }
        self.last.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// `f` of the newest frame (as [`FrameSlot::peek`] would return it), without copying it.
    pub fn inspect<T>(&self, f: impl FnOnce(&Frame) -> T) -> Option<T> {
        if let Some(frame) = self.frame.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            return Some(f(frame));
        }
        self.last.lock().unwrap_or_else(|e| e.into_inner()).as_ref().map(f)
    }

    /// Frames put so far.
    pub fn delivered(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed)
    }

    /// Frames replaced before analysis took them.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    fn frame(seq: u64) -> Frame {
        Frame { image: image::RgbImage::new(2, 2), captured: SystemTime::now(), seq, keyframe: true }
    }

    #[test]
    fn keeps_only_the_newest_frame_and_counts_the_rest() {
        let slot = FrameSlot::default();
        for seq in 0..5 {
            slot.put(frame(seq));
        }
        assert_eq!(slot.take(Duration::ZERO).map(|f| f.seq), Some(4));
        assert!(slot.take(Duration::from_millis(10)).is_none());
        assert_eq!((slot.delivered(), slot.dropped()), (5, 4));
    }

    /// A peek shows the newest frame without taking it; after analysis, the one it handed back.
    #[test]
    fn a_peek_leaves_the_frame_for_analysis() {
        let slot = FrameSlot::default();
        assert!(slot.peek().is_none());
        slot.put(frame(1));
        assert_eq!(slot.peek().map(|f| f.seq), Some(1));
        let taken = slot.take(Duration::ZERO).expect("still there after the peek");
        assert!(slot.peek().is_none(), "taken, not handed back yet");
        slot.keep(taken);
        assert_eq!(slot.peek().map(|f| f.seq), Some(1));
        slot.put(frame(2));
        assert_eq!(slot.peek().map(|f| f.seq), Some(2));
    }
}
