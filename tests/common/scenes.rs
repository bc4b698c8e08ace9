//! Synthetic ward / dialysis-room scenes with ground truth, for bed and chair occupancy (issue 8).
//!
//! A fixed room is drawn once (wall, tiled floor, a bed with a checked sheet and a pillow, a dialysis
//! chair); people are cut out of ultralytics' bus.jpg (three standing pedestrians, installed by
//! models/fetch as samples `ultralytics-assets`) and composed into it on a timeline: someone sitting in
//! the chair, someone lying in the bed under a blanket, a nurse walking along the bed, the lights
//! dimming. Every frame gets its own sensor noise. Because the timeline is data, the ground truth of
//! every region at every second is known exactly.
//!
//! Everything is placed in normalised coordinates, so a scene can be rendered at any size; 1280×720 is
//! what the presence tests use.
#![allow(dead_code)]

use std::path::Path;

use image::imageops::{self, FilterType};
use image::{Rgb, RgbImage, Rgba, RgbaImage};
use vigil::decide::presence::Polygon;

use super::media::{add_noise, encode_clip, scale_brightness};

pub const BED: &str = "bed";
pub const CHAIR: &str = "chair";

/// Sensor noise, ± grey levels per pixel and frame.
pub const NOISE: i32 = 8;

/// The pedestrians' boxes in bus.jpg (810×1080), `[x1, y1, x2, y2]`: cream coat, black coat.
const BUS_CREAM: [u32; 4] = [52, 396, 221, 893];
const BUS_BLACK: [u32; 4] = [206, 397, 360, 854];

/// What happens during an event. Only sitting and lying occupy a region.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Action {
    /// A patient seated in the dialysis chair (upper body above the seat), region `chair`.
    SitInChair,
    /// A patient lying in the bed, head on the pillow, a blanket over the legs, region `bed`.
    LieInBed,
    /// A nurse walking along the front of the bed at constant speed, overlapping its edge: occupies
    /// nothing.
    WalkPastBed { rightwards: bool },
    /// The whole picture scaled by this factor (0.7 = 30 % darker): occupies nothing.
    Dim(f32),
    /// The camera in its night infrared mode: a grey picture lit from the camera (brighter in the
    /// middle), materials reflecting infrared rather than colour, more sensor noise. Occupies nothing.
    NightIr,
    /// The bed pushed sideways by `dx` (normalised width) with everything on it; the region stays where
    /// it was drawn. Occupies nothing: whoever lies in the moved bed is in `LieInBed`.
    MoveBed { dx: f64 },
    /// A visitor sitting on the front edge of the bed, legs down to the floor: beside the bed's
    /// occupant, not in the bed. Occupies nothing.
    SitOnBedEdge,
}

/// `action` holds during `[from, to)` seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Event {
    pub action: Action,
    pub from: f64,
    pub to: f64,
}

impl Event {
    /// The region this event puts a person in, if any.
    pub fn occupies(&self) -> Option<&'static str> {
        match self.action {
            Action::SitInChair => Some(CHAIR),
            Action::LieInBed => Some(BED),
            _ => None,
        }
    }

    fn active(&self, t: f64) -> bool {
        self.from <= t && t < self.to
    }
}

/// A bed or chair as the camera configuration would draw it: normalised `[x, y]` corners.
#[derive(Debug, Clone, PartialEq)]
pub struct Region {
    pub name: &'static str,
    pub points: Vec<[f64; 2]>,
}

/// A room, who is where when, and the pictures it makes.
pub struct Scene {
    pub width: u32,
    pub height: u32,
    /// Length of the timeline in seconds.
    pub duration: f64,
    pub regions: Vec<Region>,
    pub events: Vec<Event>,
    /// Colour of the blanket over the lying patient's legs; None: no blanket. Default a mid blue.
    pub blanket: Option<[u8; 3]>,
    /// The blanket covers the lying patient up to the chin, not only the legs (default false).
    pub covered: bool,
    room: RgbImage,
    /// The room with the bed pushed by each `MoveBed` of the events (keyed by `dx` in thousandths).
    moved_rooms: Vec<(i64, RgbImage)>,
    sitter: RgbaImage,
    lying: RgbaImage,
    nurse: RgbaImage,
}

// The room's layout, normalised.
const WALL_BOTTOM: f64 = 0.42;
const BED_X: [f64; 2] = [0.12, 0.62];
const MATTRESS_Y: [f64; 2] = [0.50, 0.62];
const SEAT: [f64; 4] = [0.76, 0.58, 0.90, 0.64];
/// Where the lying body's underside rests (sunk a little into the mattress).
const BODY_BOTTOM: f64 = 0.58;
const NURSE_FEET: f64 = 0.93;
const NURSE_HEIGHT: f64 = 0.60;
const NURSE_X: [f64; 2] = [0.06, 0.56];

impl Scene {
    /// The standard ward scene, 300 s: 70 s of empty room first (the tracker's first decision needs
    /// `leave_secs` of it), then
    /// - 70–78 a nurse walks past the empty bed,
    /// - 85–115 the room is 30 % darker, nobody there,
    /// - 120–200 a patient sits in the chair,
    /// - 140–230 a patient lies in the bed,
    /// - 180–188 the nurse walks past the occupied bed the other way,
    /// - 230–300 everything empty again (longer than `leave_secs`, so the bed is seen to empty).
    pub fn ward(width: u32, height: u32) -> Scene {
        let ev = |action, from, to| Event { action, from, to };
        Scene::new(
            width,
            height,
            300.0,
            vec![
                ev(Action::WalkPastBed { rightwards: true }, 70.0, 78.0),
                ev(Action::Dim(0.7), 85.0, 115.0),
                ev(Action::SitInChair, 120.0, 200.0),
                ev(Action::LieInBed, 140.0, 230.0),
                ev(Action::WalkPastBed { rightwards: false }, 180.0, 188.0),
            ],
        )
    }

    /// The ward room with any timeline. Loads bus.jpg from the samples (run scripts/setup first).
    pub fn new(width: u32, height: u32, duration: f64, events: Vec<Event>) -> Scene {
        let bus = image::open(super::samples("ultralytics-assets").join("bus.jpg")).expect("bus.jpg").to_rgb8();
        let (w, h) = (f64::from(width), f64::from(height));
        // Seated: head to hips of the black coat (the upper 58 %), as tall as the chair's back.
        let sitter = {
            let [x1, y1, x2, y2] = BUS_BLACK;
            let upper = [x1, y1, x2, y1 + (f64::from(y2 - y1) * 0.58) as u32];
            scaled_to_height(&cutout(&bus, upper), (0.34 * h) as u32)
        };
        // Lying: the cream coat turned head-left, as long as the mattress.
        let lying = {
            let upright = cutout(&bus, BUS_CREAM);
            let turned = imageops::rotate270(&upright);
            let length = ((BED_X[1] - BED_X[0] - 0.04) * w) as u32;
            let thick = (f64::from(turned.height()) * f64::from(length) / f64::from(turned.width())) as u32;
            imageops::resize(&turned, length, thick.max(1), FilterType::Triangle)
        };
        let nurse = scaled_to_height(&cutout(&bus, BUS_BLACK), (NURSE_HEIGHT * h) as u32);
        let regions = vec![
            // The mattress and the space above it a lying body fills.
            Region { name: BED, points: vec![[0.12, 0.30], [0.63, 0.30], [0.63, 0.66], [0.12, 0.66]] },
            // Seat, back and the space a seated person's upper body fills.
            Region { name: CHAIR, points: vec![[0.74, 0.22], [0.94, 0.22], [0.94, 0.70], [0.74, 0.70]] },
        ];
        let moved_rooms = events
            .iter()
            .filter_map(|e| match e.action {
                Action::MoveBed { dx } => Some((milli(dx), draw_room_with_bed_at(width, height, dx))),
                _ => None,
            })
            .collect();
        Scene {
            width,
            height,
            duration,
            regions,
            events,
            blanket: Some([100, 135, 180]),
            covered: false,
            room: draw_room(width, height),
            moved_rooms,
            sitter,
            lying,
            nurse,
        }
    }

    /// A night on the ward, 300 s: the camera in infrared throughout but for the first 40 s (day
    /// colour, the lights then go off and the camera switches), a nurse passing the empty bed at 60,
    /// a patient lying in bed 110–220 (the nurse passing again 160–168), empty again to the end.
    pub fn night(width: u32, height: u32) -> Scene {
        let ev = |action, from, to| Event { action, from, to };
        Scene::new(
            width,
            height,
            300.0,
            vec![
                ev(Action::NightIr, 40.0, 300.0),
                ev(Action::WalkPastBed { rightwards: true }, 60.0, 68.0),
                ev(Action::LieInBed, 110.0, 220.0),
                ev(Action::WalkPastBed { rightwards: false }, 160.0, 168.0),
            ],
        )
    }

    /// The bed moved, 440 s: a patient lies in the bed 70–110; at 180 the bed is pushed a tenth of the
    /// picture to the right (its region stays where it was drawn), a patient lies in the moved bed
    /// 220–280, and at 320 the bed is pushed back.
    pub fn moved_bed(width: u32, height: u32) -> Scene {
        let ev = |action, from, to| Event { action, from, to };
        Scene::new(
            width,
            height,
            440.0,
            vec![
                ev(Action::LieInBed, 70.0, 110.0),
                ev(Action::MoveBed { dx: 0.1 }, 180.0, 320.0),
                ev(Action::LieInBed, 220.0, 280.0),
            ],
        )
    }

    /// A visitor on the bed, 360 s: the visitor sits on the edge of the empty bed 70–130; the patient
    /// lies in bed 160–270 and the visitor sits beside them 190–240; empty again to the end (longer
    /// than `leave_secs`).
    pub fn visitor(width: u32, height: u32) -> Scene {
        let ev = |action, from, to| Event { action, from, to };
        Scene::new(
            width,
            height,
            360.0,
            vec![
                ev(Action::SitOnBedEdge, 70.0, 130.0),
                ev(Action::LieInBed, 160.0, 270.0),
                ev(Action::SitOnBedEdge, 190.0, 240.0),
            ],
        )
    }

    /// A patient covered to the chin with a white blanket (the sheet's colour), 300 s: in bed 80–220,
    /// a nurse passing at 150.
    pub fn covered(width: u32, height: u32) -> Scene {
        let ev = |action, from, to| Event { action, from, to };
        let mut scene = Scene::new(
            width,
            height,
            300.0,
            vec![ev(Action::LieInBed, 80.0, 220.0), ev(Action::WalkPastBed { rightwards: true }, 150.0, 158.0)],
        );
        scene.blanket = Some([226, 229, 234]);
        scene.covered = true;
        scene
    }

    /// Whether the camera is in infrared at second `t`.
    pub fn night_at(&self, t: f64) -> bool {
        self.events.iter().any(|e| e.action == Action::NightIr && e.active(t))
    }

    /// The region's polygon in pixels of this scene's frames.
    pub fn polygon(&self, region: &str) -> Polygon {
        let r = self.regions.iter().find(|r| r.name == region).unwrap_or_else(|| panic!("no region {region}"));
        Polygon::from_normalised(&r.points, self.width, self.height).unwrap()
    }

    /// Ground truth: whether someone is in `region` at second `t`.
    pub fn occupied(&self, region: &str, t: f64) -> bool {
        self.events.iter().any(|e| e.occupies() == Some(region) && e.active(t))
    }

    /// Ground truth of every region at second `t`.
    pub fn truth(&self, t: f64) -> Vec<(&'static str, bool)> {
        self.regions.iter().map(|r| (r.name, self.occupied(r.name, t))).collect()
    }

    /// Whether `t` lies within `margin` seconds of a change of `region`'s ground truth (where a
    /// sampled, hysteretic tracker is expected to be off by a frame or so).
    pub fn near_transition(&self, region: &str, t: f64, margin: f64) -> bool {
        self.events
            .iter()
            .filter(|e| e.occupies() == Some(region))
            .any(|e| (t - e.from).abs() <= margin || (t - e.to).abs() <= margin)
    }

    /// The picture at second `t`, with sensor noise seeded by `t` (same `t`, same picture).
    pub fn render(&self, t: f64) -> RgbImage {
        let mut img = self.compose(t);
        if self.night_at(t) {
            infrared(&mut img);
            add_noise(&mut img, NOISE * 3 / 2, (t * 1000.0).round() as u64);
        } else {
            add_noise(&mut img, NOISE, (t * 1000.0).round() as u64);
        }
        img
    }

    /// Frame `i` of a clip at `fps`.
    pub fn frame(&self, i: usize, fps: u32) -> RgbImage {
        self.render(i as f64 / f64::from(fps))
    }

    /// The empty room in normal light, with noise of its own: the reference a region's empty look is
    /// taken from.
    pub fn empty_reference(&self) -> RgbImage {
        let mut img = self.room.clone();
        add_noise(&mut img, NOISE, u64::MAX / 3);
        img
    }

    /// The empty room in the camera's night infrared mode: the night reference.
    pub fn empty_reference_night(&self) -> RgbImage {
        let mut img = self.room.clone();
        infrared(&mut img);
        add_noise(&mut img, NOISE * 3 / 2, u64::MAX / 5);
        img
    }

    /// Encodes the whole timeline as an H.264 MP4 at `fps`, a keyframe every 2 s (ward cameras
    /// decode keyframes only).
    pub fn encode(&self, path: &Path, fps: u32) {
        let count = (self.duration * f64::from(fps)).round() as usize;
        encode_clip(path, self.width, self.height, fps, count, 2 * fps, |i| self.frame(i, fps));
    }

    /// The noiseless picture at second `t`.
    fn compose(&self, t: f64) -> RgbImage {
        let (w, h) = (f64::from(self.width), f64::from(self.height));
        let active: Vec<&Event> = self.events.iter().filter(|e| e.active(t)).collect();
        let bed_dx = active
            .iter()
            .find_map(|e| match e.action {
                Action::MoveBed { dx } => Some(dx),
                _ => None,
            })
            .unwrap_or(0.0);
        let mut img = match self.moved_rooms.iter().find(|(k, _)| *k == milli(bed_dx)) {
            Some((_, room)) if bed_dx != 0.0 => room.clone(),
            _ => self.room.clone(),
        };
        // Back to front: the bed's occupant, the chair's, then the nurse in front of the bed.
        if active.iter().any(|e| e.action == Action::LieInBed) {
            let x = ((BED_X[0] + 0.02 + bed_dx) * w) as i64;
            let y = (BODY_BOTTOM * h) as i64 - i64::from(self.lying.height());
            paste(&mut img, &self.lying, x, y);
            // The blanket: over the legs (right half of the body), from just below the hips' top
            // down over the mattress edge, with folds.
            if let Some(colour) = self.blanket {
                // Covered: from the shoulders (a fifth of the body's length from the head) down.
                let share = if self.covered { 18 } else { 45 };
                let bx = x + i64::from(self.lying.width()) * share / 100;
                let by = y + i64::from(self.lying.height()) / 5;
                let (bx2, by2) = (((BED_X[1] - 0.005 + bed_dx) * w) as i64, ((MATTRESS_Y[1] + 0.015) * h) as i64);
                fill(&mut img, [bx, by, bx2, by2], |px, py| {
                    let fold = if (px - bx + (py - by) / 3) % 48 < 6 { 18 } else { 0 };
                    let shade = ((py - by) * 20 / (by2 - by).max(1)) as i32;
                    Rgb(colour.map(|c| (i32::from(c) - fold - shade).clamp(0, 255) as u8))
                });
            }
        }
        if active.iter().any(|e| e.action == Action::SitInChair) {
            let cx = ((SEAT[0] + SEAT[2]) / 2.0 * w) as i64;
            let x = cx - i64::from(self.sitter.width()) / 2;
            let y = ((SEAT[1] + 0.01) * h) as i64 - i64::from(self.sitter.height());
            paste(&mut img, &self.sitter, x, y);
            // The armrest in front of the seated hips.
            fill(&mut img, px_box([0.77, 0.55, 0.89, 0.575], w, h), |_, _| Rgb([50, 95, 105]));
        }
        if active.iter().any(|e| e.action == Action::SitOnBedEdge) {
            // Seated on the mattress's front edge left of the middle, facing the camera: the upper body
            // above the mattress, trousers and shoes down to the floor in front of the bed frame.
            let cx = ((BED_X[0] + 0.30 + bed_dx) * w) as i64;
            let hips = (0.585 * h) as i64;
            let half = i64::from(self.sitter.width()) / 2;
            fill(
                &mut img,
                [cx - half * 7 / 10, hips - (0.02 * h) as i64, cx + half * 7 / 10, hips + (0.05 * h) as i64],
                |_, _| Rgb([38, 40, 48]),
            );
            for leg in [cx - half / 2, cx + half / 10] {
                fill(&mut img, [leg, hips + (0.04 * h) as i64, leg + half * 4 / 10, (0.80 * h) as i64], |_, y| {
                    Rgb([40 + (y % 9) as u8, 42, 52])
                });
                fill(&mut img, [leg - half / 10, (0.80 * h) as i64, leg + half / 2, (0.825 * h) as i64], |_, _| {
                    Rgb([25, 22, 20])
                });
            }
            paste(&mut img, &self.sitter, cx - half, hips - i64::from(self.sitter.height()));
        }
        for e in active.iter().filter(|e| matches!(e.action, Action::WalkPastBed { .. })) {
            let Action::WalkPastBed { rightwards } = e.action else { unreachable!() };
            let mut p = ((t - e.from) / (e.to - e.from)).clamp(0.0, 1.0);
            if !rightwards {
                p = 1.0 - p;
            }
            let x = ((NURSE_X[0] + p * (NURSE_X[1] - NURSE_X[0])) * w) as i64;
            let y = (NURSE_FEET * h) as i64 - i64::from(self.nurse.height());
            paste(&mut img, &self.nurse, x, y);
        }
        for e in &active {
            if let Action::Dim(factor) = e.action {
                scale_brightness(&mut img, factor);
            }
        }
        img
    }
}

/// The person in `bbox`, with an elliptical soft-edged alpha so the street around them (the corners
/// of the box) is left behind. Bits of the bus between arms and legs come along: the lying patient
/// therefore differs from the sheet a little more than a real one in a gown would.
fn cutout(photo: &RgbImage, bbox: [u32; 4]) -> RgbaImage {
    let [x1, y1, x2, y2] = bbox;
    let crop = imageops::crop_imm(photo, x1, y1, x2 - x1, y2 - y1).to_image();
    let (w, h) = (f64::from(crop.width()), f64::from(crop.height()));
    RgbaImage::from_fn(crop.width(), crop.height(), |x, y| {
        let dx = (f64::from(x) + 0.5 - w / 2.0) / (0.56 * w);
        let dy = (f64::from(y) + 0.5 - h / 2.0) / (0.54 * h);
        let d = (dx * dx + dy * dy).sqrt();
        let alpha = ((1.0 - d) / 0.12).clamp(0.0, 1.0);
        let [r, g, b] = crop.get_pixel(x, y).0;
        Rgba([r, g, b, (alpha * 255.0).round() as u8])
    })
}

fn scaled_to_height(img: &RgbaImage, height: u32) -> RgbaImage {
    let width = (f64::from(img.width()) * f64::from(height) / f64::from(img.height())).round() as u32;
    imageops::resize(img, width.max(1), height.max(1), FilterType::Triangle)
}

/// Alpha-blends `sprite` onto `dst` with its top left at (x, y), clipped to the frame.
fn paste(dst: &mut RgbImage, sprite: &RgbaImage, x: i64, y: i64) {
    for (sx, sy, p) in sprite.enumerate_pixels() {
        let (dx, dy) = (x + i64::from(sx), y + i64::from(sy));
        if dx < 0 || dy < 0 || dx >= i64::from(dst.width()) || dy >= i64::from(dst.height()) || p.0[3] == 0 {
            continue;
        }
        let a = u32::from(p.0[3]);
        let d = dst.get_pixel_mut(dx as u32, dy as u32);
        for c in 0..3 {
            d.0[c] = ((u32::from(p.0[c]) * a + u32::from(d.0[c]) * (255 - a) + 127) / 255) as u8;
        }
    }
}

/// Paints the pixel box `[x1, y1, x2, y2)` (clipped) with `color(x, y)`.
fn fill(img: &mut RgbImage, b: [i64; 4], color: impl Fn(i64, i64) -> Rgb<u8>) {
    let (w, h) = (i64::from(img.width()), i64::from(img.height()));
    for y in b[1].max(0)..b[3].min(h) {
        for x in b[0].max(0)..b[2].min(w) {
            img.put_pixel(x as u32, y as u32, color(x, y));
        }
    }
}

fn px_box(n: [f64; 4], w: f64, h: f64) -> [i64; 4] {
    [(n[0] * w) as i64, (n[1] * h) as i64, (n[2] * w) as i64, (n[3] * h) as i64]
}

/// Thousandths, to key a normalised offset.
fn milli(v: f64) -> i64 {
    (v * 1000.0).round() as i64
}

/// What the camera's night infrared mode makes of a colour picture: grey, each material as it reflects
/// near infrared (fabric dyes mostly reflect it: a blue blanket turns light; red skin and the green of
/// plants brighter than by day), lit by the camera's illuminator — bright in the middle, falling off to
/// the corners — with a flatter contrast.
fn infrared(img: &mut RgbImage) {
    let (w, h) = (f64::from(img.width()), f64::from(img.height()));
    for (x, y, p) in img.enumerate_pixels_mut() {
        let [r, g, b] = p.0.map(f64::from);
        let reflect = 0.5 * r + 0.3 * g + 0.2 * b;
        let (dx, dy) = ((f64::from(x) / w - 0.5) * 2.0, (f64::from(y) / h - 0.5) * 2.0);
        let falloff = 1.0 - 0.35 * (dx * dx + dy * dy) / 2.0;
        let v = (30.0 + 0.75 * reflect * falloff).clamp(0.0, 255.0) as u8;
        p.0 = [v, v, v];
    }
}

/// The empty room: a papered wall with a window, a tiled floor, a bed (frame, checked sheet, pillow,
/// head- and footboard) on the left, a dialysis chair on the right. Deterministic.
fn draw_room(width: u32, height: u32) -> RgbImage {
    draw_room_with_bed_at(width, height, 0.0)
}

/// The same room with the bed pushed sideways by `dx` (normalised width).
fn draw_room_with_bed_at(width: u32, height: u32, dx: f64) -> RgbImage {
    let (w, h) = (f64::from(width), f64::from(height));
    let bed_x = [BED_X[0] + dx, BED_X[1] + dx];
    let wall_bottom = (WALL_BOTTOM * h) as i64;
    let mut img = RgbImage::from_fn(width, height, |x, y| {
        let (x, y) = (i64::from(x), i64::from(y));
        if y < wall_bottom {
            // Light wall, darker towards the ceiling, faint vertical paper stripes.
            let stripe = if (x / 20) % 2 == 0 { 4 } else { 0 };
            let v = 20 * (wall_bottom - y) / wall_bottom.max(1);
            Rgb([(208 - v + stripe) as u8, (200 - v + stripe) as u8, (182 - v + stripe) as u8])
        } else {
            // Floor tiles with grout lines, lighter further away.
            let grout = (x % 64) < 3 || ((y - wall_bottom) % 48) < 3;
            let v = 25 * (y - wall_bottom) / (h as i64 - wall_bottom).max(1);
            if grout { Rgb([130, 130, 126]) } else { Rgb([(178 - v) as u8, (178 - v) as u8, (170 - v) as u8]) }
        }
    });
    // Skirting board.
    fill(&mut img, px_box([0.0, WALL_BOTTOM, 1.0, WALL_BOTTOM + 0.02], w, h), |_, _| Rgb([150, 140, 120]));
    // Window with a cross bar.
    fill(&mut img, px_box([0.66, 0.08, 0.86, 0.30], w, h), |_, _| Rgb([120, 115, 105]));
    fill(&mut img, px_box([0.67, 0.10, 0.85, 0.28], w, h), |_, y| Rgb([170, 195, 225 - (y % 30) as u8]));
    fill(&mut img, px_box([0.755, 0.10, 0.765, 0.28], w, h), |_, _| Rgb([120, 115, 105]));
    // Bed: legs with wheels, metal frame, checked sheet, pillow, head- and footboard.
    for lx in [bed_x[0] + 0.02, bed_x[1] - 0.03] {
        fill(&mut img, px_box([lx, MATTRESS_Y[1], lx + 0.012, 0.78], w, h), |_, _| Rgb([105, 110, 115]));
        fill(&mut img, px_box([lx - 0.008, 0.775, lx + 0.02, 0.80], w, h), |_, _| Rgb([40, 40, 45]));
    }
    fill(&mut img, px_box([bed_x[0], MATTRESS_Y[1], bed_x[1], MATTRESS_Y[1] + 0.04], w, h), |_, _| {
        Rgb([120, 125, 132])
    });
    fill(&mut img, px_box([bed_x[0], MATTRESS_Y[0], bed_x[1], MATTRESS_Y[1]], w, h), |x, y| {
        let check = (x % 24) < 2 || (y % 24) < 2;
        if check { Rgb([200, 212, 228]) } else { Rgb([234, 236, 240]) }
    });
    let pillow = px_box([bed_x[0] + 0.015, 0.445, bed_x[0] + 0.11, 0.51], w, h);
    let (pcx, pcy) = (((pillow[0] + pillow[2]) / 2) as f64, ((pillow[1] + pillow[3]) / 2) as f64);
    let (prx, pry) = (((pillow[2] - pillow[0]) / 2) as f64, ((pillow[3] - pillow[1]) / 2) as f64);
    for y in pillow[1]..pillow[3] {
        for x in pillow[0]..pillow[2] {
            let d = ((x as f64 - pcx) / prx).powi(2) + ((y as f64 - pcy) / pry).powi(2);
            if d <= 1.0 {
                let v = (248.0 - 30.0 * d) as u8;
                img.put_pixel(x as u32, y as u32, Rgb([v, v, v.saturating_sub(6)]));
            }
        }
    }
    fill(&mut img, px_box([bed_x[0] - 0.02, 0.36, bed_x[0] + 0.005, 0.70], w, h), |_, _| Rgb([150, 128, 100]));
    fill(&mut img, px_box([bed_x[1] - 0.005, 0.46, bed_x[1] + 0.015, 0.68], w, h), |_, _| Rgb([150, 128, 100]));
    // Dialysis chair, facing left: base, seat, back, armrest; a drip stand beside it.
    fill(&mut img, px_box([0.81, SEAT[3], 0.85, 0.78], w, h), |_, _| Rgb([90, 90, 95]));
    fill(&mut img, px_box([0.77, 0.78, 0.89, 0.80], w, h), |_, _| Rgb([60, 60, 65]));
    fill(&mut img, px_box(SEAT, w, h), |_, _| Rgb([55, 105, 115]));
    fill(&mut img, px_box([0.88, 0.28, 0.92, SEAT[3]], w, h), |_, y| Rgb([55, 105 + (y % 16) as u8, 115]));
    fill(&mut img, px_box([0.77, 0.55, 0.89, 0.575], w, h), |_, _| Rgb([50, 95, 105]));
    fill(&mut img, px_box([0.955, 0.15, 0.96, 0.80], w, h), |_, _| Rgb([170, 170, 175]));
    fill(&mut img, px_box([0.945, 0.15, 0.97, 0.22], w, h), |_, _| Rgb([225, 230, 200]));
    img
}
