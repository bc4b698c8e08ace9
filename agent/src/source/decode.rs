//! Decoding on demand: which encoded frames of a camera reach its decoder.
//!
//! Decoding every frame of a 1080p25 stream costs about 14 % of a core; decoding its keyframes alone
//! (one a GOP, 0.5 fps at a 2 s GOP) costs about 1.7 %. A camera whose analysis needs frames only now
//! and then (a settlement window with no watch open, a dialysis room between identity windows) decodes
//! keyframes while idle and every frame while a duty needs them. Its analysis says which, each turn,
//! through the camera's [`DecodeControl`]; the pipeline obeys it from the next encoded frame on.
//!
//! The gate in front of the decoder is the pure state machine [`DecodeGate`], tested here without
//! GStreamer. What it does with each encoded unit (access unit, in decode order):
//! - a keyframe always passes, and starts a new GOP: the store is emptied;
//! - in keyframes mode a delta unit is dropped, but kept in the GOP store (refcounted buffers, no copy),
//!   bounded by [`StoreLimits`] (8 MB, 4 s): past that the GOP cannot be replayed and is forgotten;
//! - in full mode a delta unit passes; if deltas of this GOP were stored, they are pushed first (the
//!   GOP replay): the decoder, which holds the GOP's keyframe, catches up with the stream in a burst
//!   (≈ 6 ms a 1080p P-frame), so the first frame after a switch to full comes in a fraction of a
//!   second, not at the next keyframe (up to a GOP later);
//! - from full to keyframes, deltas are dropped from the next unit on (always safe).
//!
//! Whatever the mode, a delta unit reaches the decoder only if the decoder holds every unit of its GOP
//! before it: after a gap in the units' sequence numbers (the leaky queue in front of the decoder
//! dropped some because decoding fell behind) or a store that overflowed, deltas are dropped until the
//! next keyframe. H.264 decoders otherwise output the frames in between built on missing references —
//! smeared, corrupt pictures that analysis would take for real ones.
//!
//! Replay is in arrival (decode) order, so B-frames are replayed correctly. An open-GOP stream whose
//! recovery-point I-frames are not flagged as keyframes by the parser is decoded as one long GOP (its
//! deltas are never replayable past the store's bounds; it waits for a real keyframe).

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

use super::settings::Decode;

/// What the decoder is given at the moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeMode {
    /// Keyframes only (deltas stored for a replay, not decoded).
    Keyframes,
    /// Every frame.
    Full,
}

impl DecodeMode {
    fn from_u8(v: u8) -> DecodeMode {
        if v == 0 { DecodeMode::Keyframes } else { DecodeMode::Full }
    }

    fn as_u8(self) -> u8 {
        match self {
            DecodeMode::Keyframes => 0,
            DecodeMode::Full => 1,
        }
    }
}

/// The decode mode a camera's analysis asks for, shared (in an `Arc`) between the analysis thread that
/// sets it and the pipeline's streaming thread that reads it for every encoded unit. It outlives
/// pipeline restarts: a rebuilt pipeline starts in the current mode. Only cameras with
/// [`Decode::OnDemand`] obey it. Also counts what the gate did, for metrics and benchmarks.
#[derive(Debug)]
pub struct DecodeControl {
    mode: AtomicU8,
    switches: AtomicU64,
    replays: AtomicU64,
    replayed_units: AtomicU64,
    unreplayable: AtomicU64,
    gaps: AtomicU64,
}

impl DecodeControl {
    pub fn new(mode: DecodeMode) -> DecodeControl {
        DecodeControl {
            mode: AtomicU8::new(mode.as_u8()),
            switches: AtomicU64::new(0),
            replays: AtomicU64::new(0),
            replayed_units: AtomicU64::new(0),
            unreplayable: AtomicU64::new(0),
            gaps: AtomicU64::new(0),
        }
    }

    /// Asks for `mode` from the next encoded unit on. Cheap and idempotent: call it every analysis turn.
    pub fn set(&self, mode: DecodeMode) {
        let old = DecodeMode::from_u8(self.mode.swap(mode.as_u8(), Ordering::Relaxed));
        if old == DecodeMode::Keyframes && mode == DecodeMode::Full {
            self.switches.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn mode(&self) -> DecodeMode {
        DecodeMode::from_u8(self.mode.load(Ordering::Relaxed))
    }

    /// Switches from keyframes to full so far.
    pub fn switches(&self) -> u64 {
        self.switches.load(Ordering::Relaxed)
    }

    /// GOP replays so far (switches to full that found stored deltas to push).
    pub fn replays(&self) -> u64 {
        self.replays.load(Ordering::Relaxed)
    }

    /// Delta units pushed to the decoder by replays.
    pub fn replayed_units(&self) -> u64 {
        self.replayed_units.load(Ordering::Relaxed)
    }

    /// GOPs whose stored deltas went past the store's bounds (a switch to full in such a GOP waits for
    /// the next keyframe).
    pub fn unreplayable(&self) -> u64 {
        self.unreplayable.load(Ordering::Relaxed)
    }

    /// Gaps in the units reaching the gate (dropped by the leaky queue before it): each makes the
    /// decoder wait for the next keyframe.
    pub fn gaps(&self) -> u64 {
        self.gaps.load(Ordering::Relaxed)
    }
}

/// Full: a pipeline no analysis steers (`vigil reference`, tests of the source alone) decodes what its
/// camera's `decode` asks for, as it did before decoding on demand. A camera's analysis makes its own,
/// starting in keyframes mode (`runtime::camera::CameraAnalysis`).
impl Default for DecodeControl {
    fn default() -> Self {
        DecodeControl::new(DecodeMode::Full)
    }
}

/// Bounds of the GOP store: at 4 Mbit/s a 2 s GOP is about 1 MB.
#[derive(Debug, Clone, Copy)]
pub struct StoreLimits {
    pub bytes: usize,
    /// Decode-time span from the GOP's keyframe to the last stored delta.
    pub span: Duration,
}

impl Default for StoreLimits {
    fn default() -> Self {
        StoreLimits { bytes: 8 << 20, span: Duration::from_secs(4) }
    }
}

/// One encoded unit as the gate sees it. `B` is the buffer (a refcounted `gst::Buffer` in the pipeline).
#[derive(Debug)]
pub struct Unit<B> {
    pub buffer: B,
    pub keyframe: bool,
    /// Position in the stream as numbered before the leaky queue (None: not numbered, gaps unseen).
    pub seq: Option<u64>,
    pub bytes: usize,
    /// Decode timestamp (or presentation timestamp when there is none).
    pub time: Option<Duration>,
}

/// What to do with a unit.
#[derive(Debug, PartialEq, Eq)]
pub enum Action<B> {
    /// Let it through to the decoder.
    Pass,
    /// Keep it from the decoder.
    Drop,
    /// Push these stored units of the GOP (in order) first, then let it through.
    Replay(Vec<B>),
}

/// The gate's state machine (see the module documentation).
#[derive(Debug)]
pub struct DecodeGate<B> {
    decode: Decode,
    control: Arc<DecodeControl>,
    limits: StoreLimits,
    /// The decoder holds every unit of the current GOP up to the last one passed (and the store holds
    /// every later one): a delta may go to the decoder.
    synced: bool,
    /// Deltas of the current GOP not given to the decoder, in decode order.
    store: Vec<B>,
    stored_bytes: usize,
    /// Decode time of the current GOP's keyframe.
    gop_start: Option<Duration>,
    next_seq: Option<u64>,
}

impl<B> DecodeGate<B> {
    pub fn new(decode: Decode, control: Arc<DecodeControl>, limits: StoreLimits) -> DecodeGate<B> {
        DecodeGate {
            decode,
            control,
            limits,
            synced: false,
            store: Vec::new(),
            stored_bytes: 0,
            gop_start: None,
            next_seq: None,
        }
    }

    /// The mode in force: the camera's fixed policy, or its control's.
    pub fn mode(&self) -> DecodeMode {
        match self.decode {
            Decode::Keyframes => DecodeMode::Keyframes,
            Decode::All => DecodeMode::Full,
            Decode::OnDemand => self.control.mode(),
        }
    }

    /// Stored deltas waiting for a replay.
    pub fn stored(&self) -> usize {
        self.store.len()
    }

    fn forget_gop(&mut self) {
        self.store.clear();
        self.stored_bytes = 0;
        self.synced = false;
    }

    /// Decides the fate of the next encoded unit (units come in decode order).
    pub fn admit(&mut self, unit: Unit<B>) -> Action<B> {
        if let Some(seq) = unit.seq {
            if self.next_seq.is_some_and(|expected| expected != seq) {
                self.control.gaps.fetch_add(1, Ordering::Relaxed);
                self.forget_gop();
            }
            self.next_seq = Some(seq.wrapping_add(1));
        }
        if unit.keyframe {
            self.store.clear();
            self.stored_bytes = 0;
            self.synced = true;
            self.gop_start = unit.time;
            return Action::Pass;
        }
        if !self.synced {
            return Action::Drop;
        }
        match self.mode() {
            DecodeMode::Full if self.store.is_empty() => Action::Pass,
            DecodeMode::Full => {
                let stored = std::mem::take(&mut self.store);
                self.stored_bytes = 0;
                self.control.replays.fetch_add(1, Ordering::Relaxed);
                self.control.replayed_units.fetch_add(stored.len() as u64, Ordering::Relaxed);
                Action::Replay(stored)
            }
            // Nothing will ever be replayed: keep nothing.
            DecodeMode::Keyframes if self.decode == Decode::Keyframes => Action::Drop,
            DecodeMode::Keyframes => {
                let span = match (self.gop_start, unit.time) {
                    (Some(start), Some(time)) => time.saturating_sub(start),
                    _ => Duration::ZERO,
                };
                if self.stored_bytes + unit.bytes > self.limits.bytes || span > self.limits.span {
                    self.control.unreplayable.fetch_add(1, Ordering::Relaxed);
                    self.forget_gop();
                } else {
                    self.stored_bytes += unit.bytes;
                    self.store.push(unit.buffer);
                }
                Action::Drop
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stream of `n` units, a keyframe every `gop`, 25 fps, 1000 bytes each; the buffer is its index.
    fn stream(n: u64, gop: u64) -> Vec<Unit<u64>> {
        (0..n)
            .map(|i| Unit {
                buffer: i,
                keyframe: i % gop == 0,
                seq: Some(i),
                bytes: 1000,
                time: Some(Duration::from_millis(40 * i)),
            })
            .collect()
    }

    /// Runs units through a gate, calling `before(i)` ahead of unit i; returns what reached the decoder,
    /// in order.
    fn run(gate: &mut DecodeGate<u64>, units: Vec<Unit<u64>>, mut before: impl FnMut(u64)) -> Vec<u64> {
        let mut decoded = Vec::new();
        for unit in units {
            let i = unit.buffer;
            before(i);
            match gate.admit(unit) {
                Action::Pass => decoded.push(i),
                Action::Drop => {}
                Action::Replay(stored) => {
                    decoded.extend(stored);
                    decoded.push(i);
                }
            }
        }
        decoded
    }

    fn gate(decode: Decode, mode: DecodeMode) -> (DecodeGate<u64>, Arc<DecodeControl>) {
        let control = Arc::new(DecodeControl::new(mode));
        (DecodeGate::new(decode, control.clone(), StoreLimits::default()), control)
    }

    #[test]
    fn fixed_policies_ignore_the_control() {
        let (mut keyframes, _) = gate(Decode::Keyframes, DecodeMode::Full);
        assert_eq!(run(&mut keyframes, stream(150, 50), |_| {}), vec![0, 50, 100]);
        assert_eq!(keyframes.stored(), 0, "a camera that never decodes deltas stores none");
        let (mut all, _) = gate(Decode::All, DecodeMode::Keyframes);
        assert_eq!(run(&mut all, stream(150, 50), |_| {}), (0..150).collect::<Vec<_>>());
    }

    #[test]
    fn a_switch_to_full_replays_the_gop_then_follows_the_stream() {
        let (mut gate, control) = gate(Decode::OnDemand, DecodeMode::Keyframes);
        let decoded = run(&mut gate, stream(150, 50), |i| {
            if i == 70 {
                control.set(DecodeMode::Full);
            }
        });
        // Keyframes 0 and 50, then at 70 the deltas 51..69 replayed, then everything.
        let expected: Vec<u64> = [0].into_iter().chain(50..150).collect();
        assert_eq!(decoded, expected);
        assert_eq!((control.switches(), control.replays(), control.replayed_units()), (1, 1, 19));
    }

    #[test]
    fn back_to_keyframes_and_to_full_again_in_the_same_gop() {
        let (mut gate, control) = gate(Decode::OnDemand, DecodeMode::Full);
        let decoded = run(&mut gate, stream(100, 50), |i| match i {
            10 => control.set(DecodeMode::Keyframes),
            20 => control.set(DecodeMode::Full),
            30 => control.set(DecodeMode::Keyframes),
            _ => {}
        });
        // Full to 9; 10..19 stored, replayed at 20; full to 29; then keyframes: 50 only.
        let expected: Vec<u64> = (0..30).chain([50]).collect();
        assert_eq!(decoded, expected);
        assert_eq!(gate.stored(), 49, "the deltas of the last GOP wait for a replay");
    }

    #[test]
    fn the_decoder_never_gets_a_delta_without_its_gop() {
        // Starting mid-GOP in full mode: nothing until the first keyframe.
        let (mut g, _) = gate(Decode::All, DecodeMode::Full);
        let units = stream(100, 50).into_iter().skip(30).collect();
        assert_eq!(run(&mut g, units, |_| {}), (50..100).collect::<Vec<_>>());

        // The leaky queue dropped 60..62: deltas wait for the next keyframe.
        let (mut g, control) = gate(Decode::All, DecodeMode::Full);
        let units = stream(150, 50).into_iter().filter(|u| !(60..63).contains(&u.buffer)).collect();
        let expected: Vec<u64> = (0..60).chain(100..150).collect();
        assert_eq!(run(&mut g, units, |_| {}), expected);
        assert_eq!(control.gaps(), 1);

        // A gap while storing: the replay would miss a unit, so the switch waits for the keyframe.
        let (mut g, control) = gate(Decode::OnDemand, DecodeMode::Keyframes);
        let units = stream(150, 50).into_iter().filter(|u| u.buffer != 60).collect();
        let decoded = run(&mut g, units, |i| {
            if i == 70 {
                control.set(DecodeMode::Full);
            }
        });
        let expected: Vec<u64> = [0, 50].into_iter().chain(100..150).collect();
        assert_eq!(decoded, expected);
        assert_eq!(control.replays(), 0);
    }

    #[test]
    fn a_gop_past_the_store_bounds_is_not_replayed() {
        // 4 s bound: a 10 s GOP (250 units) at 25 fps overflows at 4 s.
        let (mut g, control) = gate(Decode::OnDemand, DecodeMode::Keyframes);
        let decoded = run(&mut g, stream(600, 250), |i| {
            if i == 200 {
                control.set(DecodeMode::Full);
            }
        });
        let expected: Vec<u64> = [0].into_iter().chain(250..600).collect();
        assert_eq!(decoded, expected);
        assert_eq!((control.unreplayable(), control.replays()), (1, 0));

        // Byte bound.
        let control = Arc::new(DecodeControl::new(DecodeMode::Keyframes));
        let limits = StoreLimits { bytes: 10_000, span: Duration::from_secs(4) };
        let mut g = DecodeGate::new(Decode::OnDemand, control.clone(), limits);
        let decoded = run(&mut g, stream(100, 50), |i| {
            if i == 30 {
                control.set(DecodeMode::Full);
            }
        });
        assert_eq!(decoded, (0..1).chain(50..100).collect::<Vec<_>>());
        // Within the bound it replays.
        let decoded = run(
            &mut g,
            stream(100, 50).into_iter().map(|u| Unit { seq: Some(u.seq.unwrap() + 100), ..u }).collect(),
            |i| control.set(if i < 55 { DecodeMode::Keyframes } else { DecodeMode::Full }),
        );
        assert_eq!(decoded, (0..1).chain(50..100).collect::<Vec<_>>());
        assert_eq!(control.replayed_units(), 4);
    }

    #[test]
    fn switches_are_counted_once_per_change() {
        let control = DecodeControl::new(DecodeMode::Keyframes);
        for _ in 0..5 {
            control.set(DecodeMode::Full);
        }
        control.set(DecodeMode::Keyframes);
        control.set(DecodeMode::Full);
        assert_eq!((control.switches(), control.mode()), (2, DecodeMode::Full));
    }
}
