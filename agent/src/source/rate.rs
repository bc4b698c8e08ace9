//! The analysis rate of a camera that decodes every frame, honoured exactly — fractional rates
//! included (`analysis_fps = 0.2` is one frame every 5 s, `2.5` is five frames every 2 s).
//!
//! GStreamer's `videorate max-rate` takes whole frames per second, and passes everything when the
//! decoder reports a variable frame rate (0/1), as many cameras do. So the pipeline keeps it as a cheap
//! first cut (at the rate rounded up) and this gate, on the frames' timestamps, makes the rate exact.

use std::time::Duration;

/// Lets through at most `fps` frames per second of stream time, and on average exactly that many when
/// the stream brings more.
#[derive(Debug, Clone)]
pub struct RateGate {
    interval: Duration,
    /// Stream time from which the next frame may pass.
    due: Option<Duration>,
}

impl RateGate {
    /// A gate for `fps` frames per second (> 0).
    pub fn new(fps: f64) -> RateGate {
        assert!(fps > 0.0 && fps.is_finite(), "a frame rate must be above 0, got {fps}");
        RateGate { interval: Duration::from_secs_f64(1.0 / fps), due: None }
    }

    /// Whether the frame with timestamp `pts` goes to analysis.
    pub fn admit(&mut self, pts: Duration) -> bool {
        match self.due {
            // The first frame, or time went backwards (a new segment, a looped file): start again here.
            None => {}
            Some(due) if pts + self.interval < due => {}
            Some(due) if pts < due => return false,
            Some(due) => {
                // Keep to the schedule (due + interval) so the average rate is exact, unless the stream
                // paused for longer than an interval: then the schedule restarts from this frame.
                let next = due + self.interval;
                self.due = Some(if next <= pts { pts + self.interval } else { next });
                return true;
            }
        }
        self.due = Some(pts + self.interval);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Timestamps of `seconds` of a stream at `source_fps`, starting at 1000 h as test encoders do.
    fn stream(source_fps: f64, seconds: f64) -> impl Iterator<Item = Duration> {
        let start = Duration::from_secs(1000 * 3600);
        (0..(source_fps * seconds) as u64).map(move |i| start + Duration::from_secs_f64(i as f64 / source_fps))
    }

    fn passed(fps: f64, source_fps: f64, seconds: f64) -> Vec<Duration> {
        let mut gate = RateGate::new(fps);
        stream(source_fps, seconds).filter(|&t| gate.admit(t)).collect()
    }

    #[test]
    fn fractional_rates_are_honoured() {
        // 0.2 fps from 25 fps: one frame every 5 s (it was one per second before the gate).
        let frames = passed(0.2, 25.0, 60.0);
        assert_eq!(frames.len(), 12, "{frames:?}");
        assert!(frames.windows(2).all(|w| w[1] - w[0] == Duration::from_secs(5)), "{frames:?}");
        // 2.5 fps from a stream already cut to 3 fps by videorate: 150 frames a minute, not 180.
        assert_eq!(passed(2.5, 3.0, 60.0).len(), 150);
        // 0.5 fps from 30 fps.
        assert_eq!(passed(0.5, 30.0, 60.0).len(), 30);
    }

    #[test]
    fn whole_rates_and_slower_streams() {
        assert_eq!(passed(5.0, 25.0, 60.0).len(), 300);
        assert_eq!(passed(2.0, 25.0, 60.0).len(), 120);
        // A stream slower than the rate passes whole.
        assert_eq!(passed(5.0, 2.0, 60.0).len(), 120);
    }

    #[test]
    fn a_pause_or_a_jump_back_restarts_the_schedule() {
        let mut gate = RateGate::new(1.0);
        let s = Duration::from_secs;
        assert!(gate.admit(s(100)));
        assert!(!gate.admit(s(100) + Duration::from_millis(500)));
        // 30 s without frames: the next passes, and the one after waits a full second, not a burst.
        assert!(gate.admit(s(130)));
        assert!(!gate.admit(s(130) + Duration::from_millis(400)));
        assert!(gate.admit(s(131)));
        // A looped file starts its timestamps again.
        assert!(gate.admit(s(5)));
        assert!(!gate.admit(s(5) + Duration::from_millis(100)));
    }
}
