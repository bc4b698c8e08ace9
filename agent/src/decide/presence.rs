//! Region occupancy: is someone in this bed / dialysis chair, and since when.
//!
//! Two per-frame signals, then time:
//! 1. **Person boxes by area.** A point test (box centre, feet) fails for people lying down: a lying
//!    person's box is wide and its centre may sit on the bed's edge. So a box is judged by how much of
//!    it lies in the region (`inside`) and how much of the region it covers (`cover`), both computed
//!    exactly (the polygon clipped by the box, Sutherland–Hodgman, shoelace area).
//! 2. **Difference from the empty region.** The detector misses people under blankets. The region's
//!    look is compared with a reference frame taken when it was known empty, after normalising both for
//!    brightness, so lights going on or off do not count as a person.
//!
//! A frame's raw verdict then goes through `OccupancyTracker`: it must hold for a while before the
//! state flips (a nurse walking past does not fill a bed; a patient fetching water does not empty it),
//! and the flip is backdated to when the raw signal started, so the timeline says when the patient
//! really left. Time counts, not frames: presence cameras decode keyframes only (one every 1–4 s).
//!
//! Mistakes are not symmetric here: "empty" may end up as an accusation (a hanging bed, a short
//! dialysis), "occupied" only as a missed one. Where a rule must guess, it guesses occupied.

use std::collections::VecDeque;
use std::time::{Duration, SystemTime};

use image::RgbImage;
use serde::Serialize;

use crate::analyze::boxes::{self, BBox};
use crate::analyze::person_detector::Person;

/// Thresholds of the occupancy rules (config `[presence]`); see each default for why.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PresenceSettings {
    /// Person detections below this score are ignored for presence. Default 0.35, the detector's own
    /// threshold; raise it to ask presence for surer detections than other uses.
    pub min_score: f32,
    /// Share of a person box that must lie in the region. Default 0.5: more of the person is on the
    /// bed than off it. Lying in bed gives 0.8–1; sitting up in bed (head and shoulders above the bed
    /// in the picture) about 0.6; a nurse standing beside the bed, whose box only clips the edge, 0.1–0.35.
    pub min_inside: f64,
    /// Share of the region the box must cover at the same time. Default 0.1: a person in a bed covers
    /// 30–70 % of it; this rules out small boxes that fall inside a region only by perspective (someone
    /// far behind the bed) and a hand or head reaching over the edge.
    pub min_cover: f64,
    /// A box covering this share of the region counts whatever `inside` says. Default 0.6: a region
    /// drawn tight around a chair seat, with the seated patient's box overhanging it on every side.
    pub full_cover: f64,
    /// When the detector sees nobody, a region this different from its empty reference (0..1, see
    /// `RegionSignature::changed`) still counts as occupied. Default 0.12, about a quarter of the region
    /// changed by half its brightness. Measured on the tests' synthetic bed: sensor noise (±10 grey
    /// levels) 0.003, the room 30 % darker 0.0002, 30 % brighter with the sheet clipping at white 0.04,
    /// a body-sized striped blanket over 45 % of the bed 0.19. Set it from real empty/occupied frames.
    pub changed_occupied: f64,
    /// Raw-occupied must hold this long before the region becomes Occupied. Default 20 s: longer than
    /// someone walking past or leaning over (a few seconds), short enough to catch a patient who
    /// lies down only for a roll-call.
    pub enter_secs: u64,
    /// Raw-empty must hold this long before the region becomes Empty. Default 60 s: a patient getting
    /// up for a minute is not absent, and a missed detection or two (blankets, occlusion by staff)
    /// does not empty a bed.
    pub leave_secs: u64,
    /// Frames further apart than this mean the camera was not watching: the time between is Unknown.
    /// Default 30 s: several missed keyframes (1–4 s apart) are tolerated, an outage is not counted
    /// as presence or absence.
    pub max_gap_secs: u64,
    /// How much timeline is kept. Default 24 h: longer than any dialysis session and the span between
    /// roll-calls; older intervals are dropped.
    pub horizon_secs: u64,
    /// A picture whose colourfulness (mean chroma over mean luma, see [`LightingLook`]) is below this is
    /// the camera's night infrared mode. Default 0.02: an IR picture is grey (the camera zeroes chroma;
    /// H.264 leaves ±1 level), a day picture of a white-walled ward 0.05–0.15.
    pub night_max_colour: f64,
    /// A picture this colourful or more is day colour. Default 0.035. Between the two the condition
    /// does not change (a colour picture dimming into dusk does not flicker between references).
    pub day_min_colour: f64,
    /// A region's empty reference no longer fitting (the bed or chair moved) must be seen this long
    /// before `region_reference_stale` is raised, and fitting again this long before it is cleared.
    /// Default 30 s: longer than a nurse standing in front of the bed, well under `leave_secs` +
    /// a roll-call's tolerance.
    pub stale_secs: u64,
    /// The regions are beds (a ward camera): a person sitting upright on the bed's edge with the legs
    /// down to the floor — a box reaching well below the bed — is beside it, not in it (a visitor, a
    /// nurse perched on it). For chairs (a dialysis room) sitting is the occupancy. Not config: the
    /// runtime sets it from the camera's role. Default false.
    pub beds: bool,
}

impl Default for PresenceSettings {
    fn default() -> Self {
        PresenceSettings {
            min_score: 0.35,
            min_inside: 0.5,
            min_cover: 0.1,
            full_cover: 0.6,
            changed_occupied: 0.12,
            enter_secs: 20,
            leave_secs: 60,
            max_gap_secs: 30,
            horizon_secs: 86_400,
            night_max_colour: 0.02,
            day_min_colour: 0.035,
            stale_secs: 30,
            beds: false,
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// Geometry

/// A region of the picture in pixels (mapped from the config's normalised points), any simple polygon.
#[derive(Debug, Clone, PartialEq)]
pub struct Polygon {
    points: Vec<[f64; 2]>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PolygonError {
    #[error("polygon needs ≥3 points, got {0}")]
    TooFewPoints(usize),
    #[error("point {0} is not an [x, y] pair of finite numbers")]
    NotAPoint(usize),
    #[error("polygon has no area")]
    NoArea,
}

impl Polygon {
    /// Maps normalised points (0..1, origin top left) onto a `width`×`height` frame.
    pub fn from_normalised(points: &[[f64; 2]], width: u32, height: u32) -> Result<Polygon, PolygonError> {
        if points.len() < 3 {
            return Err(PolygonError::TooFewPoints(points.len()));
        }
        if let Some(i) = points.iter().position(|p| !p[0].is_finite() || !p[1].is_finite()) {
            return Err(PolygonError::NotAPoint(i));
        }
        let (w, h) = (f64::from(width), f64::from(height));
        let polygon = Polygon { points: points.iter().map(|p| [p[0] * w, p[1] * h]).collect() };
        if polygon.area() <= 0.0 {
            return Err(PolygonError::NoArea);
        }
        Ok(polygon)
    }

    /// The same from the config's form, `[[x, y], …]` (`cameras.regions.<name>`).
    pub fn from_config(points: &[Vec<f64>], width: u32, height: u32) -> Result<Polygon, PolygonError> {
        let pairs: Vec<[f64; 2]> = points
            .iter()
            .enumerate()
            .map(|(i, p)| match p.as_slice() {
                [x, y] => Ok([*x, *y]),
                _ => Err(PolygonError::NotAPoint(i)),
            })
            .collect::<Result<_, _>>()?;
        Polygon::from_normalised(&pairs, width, height)
    }

    /// Corners in pixels, in the configured order.
    pub fn points(&self) -> &[[f64; 2]] {
        &self.points
    }

    /// Area in square pixels.
    pub fn area(&self) -> f64 {
        shoelace(&self.points)
    }

    /// Smallest axis-aligned box holding the polygon, in pixels.
    pub fn bounds(&self) -> BBox {
        let mut b = [f64::MAX, f64::MAX, f64::MIN, f64::MIN];
        for p in &self.points {
            b = [b[0].min(p[0]), b[1].min(p[1]), b[2].max(p[0]), b[3].max(p[1])];
        }
        b.map(|v| v as f32)
    }

    /// Whether a point lies inside (even-odd rule).
    pub fn contains(&self, x: f64, y: f64) -> bool {
        let n = self.points.len();
        let mut inside = false;
        for i in 0..n {
            let (a, b) = (self.points[i], self.points[(i + n - 1) % n]);
            if (a[1] > y) != (b[1] > y) && x < a[0] + (y - a[1]) * (b[0] - a[0]) / (b[1] - a[1]) {
                inside = !inside;
            }
        }
        inside
    }

    /// Exact area of the polygon inside an axis-aligned box: the polygon clipped by the box's four
    /// half-planes (Sutherland–Hodgman; correct for concave polygons too, whose clipped outline may
    /// run along the box edge twice, adding no area), then its shoelace area.
    pub fn intersection_area(&self, b: &BBox) -> f64 {
        let [x1, y1, x2, y2] = b.map(f64::from);
        if x2 <= x1 || y2 <= y1 {
            return 0.0;
        }
        let mut clipped = self.points.clone();
        for (axis, bound, keep_above) in [(0, x1, true), (0, x2, false), (1, y1, true), (1, y2, false)] {
            clipped = clip(&clipped, axis, bound, keep_above);
            if clipped.len() < 3 {
                return 0.0;
            }
        }
        shoelace(&clipped)
    }
}

fn shoelace(points: &[[f64; 2]]) -> f64 {
    let n = points.len();
    let twice: f64 = (0..n)
        .map(|i| {
            let (a, b) = (points[i], points[(i + 1) % n]);
            a[0] * b[1] - b[0] * a[1]
        })
        .sum();
    twice.abs() / 2.0
}

/// One Sutherland–Hodgman step: keeps the part of the polygon where `p[axis]` is ≥ `bound`
/// (`keep_above`) or ≤ it.
fn clip(points: &[[f64; 2]], axis: usize, bound: f64, keep_above: bool) -> Vec<[f64; 2]> {
    let inside = |p: [f64; 2]| if keep_above { p[axis] >= bound } else { p[axis] <= bound };
    let cross = |a: [f64; 2], b: [f64; 2]| {
        let t = (bound - a[axis]) / (b[axis] - a[axis]);
        let mut p = [a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1])];
        p[axis] = bound;
        p
    };
    let mut out = Vec::with_capacity(points.len() + 2);
    for (i, &cur) in points.iter().enumerate() {
        let prev = points[(i + points.len() - 1) % points.len()];
        match (inside(prev), inside(cur)) {
            (true, true) => out.push(cur),
            (true, false) => out.push(cross(prev, cur)),
            (false, true) => {
                out.push(cross(prev, cur));
                out.push(cur);
            }
            (false, false) => {}
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------------
// Signal 1: person boxes

/// How one person box sits on a region.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Overlap {
    /// Share of the person box inside the region, 0..1.
    pub inside: f64,
    /// Share of the region covered by the person box, 0..1.
    pub cover: f64,
    pub score: f32,
    /// An upright box (taller than wide) reaching below the region by a fifth of its height or more:
    /// someone sitting on the edge with the feet on the floor, or standing in front.
    pub beside: bool,
}

/// How much a box of someone beside the region is widened (share of its width, of its height on each
/// side) before the cells under it are left out of the difference. Measured on the tests' visitor: the
/// detector's box leaves a fifth of the body's width outside on each side.
const EXPLAINED_MARGIN: [f32; 2] = [0.25, 0.1];

/// A box taller than this times its width is upright (sitting or standing, not lying).
const UPRIGHT: f32 = 1.2;
/// ... and one reaching this share of its height below the region's lowest point has its feet on the
/// floor in front of it.
const FEET_BELOW: f32 = 0.2;

impl Overlap {
    pub fn of(region: &Polygon, person: &Person) -> Overlap {
        let common = region.intersection_area(&person.bbox);
        let ratio = |whole: f64| if whole > 0.0 { (common / whole).min(1.0) } else { 0.0 };
        let [x1, y1, x2, y2] = person.bbox;
        let (w, h) = (x2 - x1, y2 - y1);
        let below = y2 - region.bounds()[3];
        Overlap {
            inside: ratio(f64::from(boxes::area(&person.bbox))),
            cover: ratio(region.area()),
            score: person.score,
            beside: h > UPRIGHT * w && below >= FEET_BELOW * h,
        }
    }

    /// Whether this box alone puts a person in the region (thresholds: `PresenceSettings`).
    pub fn occupies(&self, settings: &PresenceSettings) -> bool {
        self.score >= settings.min_score
            && !(settings.beds && self.beside)
            && ((self.inside >= settings.min_inside && self.cover >= settings.min_cover)
                || self.cover >= settings.full_cover)
    }
}

/// The detector's verdict on a region, with the box that decided it (or, when none did, the one
/// covering the region most, for diagnostics).
pub fn detector_occupied(region: &Polygon, persons: &[Person], settings: &PresenceSettings) -> (bool, Option<Overlap>) {
    let overlaps: Vec<Overlap> = persons
        .iter()
        .map(|p| Overlap::of(region, p))
        .filter(|o| o.inside > 0.0 && o.score >= settings.min_score)
        .collect();
    if let Some(o) = overlaps.iter().filter(|o| o.occupies(settings)).max_by(|a, b| a.cover.total_cmp(&b.cover)) {
        return (true, Some(*o));
    }
    (false, overlaps.into_iter().max_by(|a, b| a.cover.total_cmp(&b.cover)))
}

// ---------------------------------------------------------------------------------------------------
// Signal 2: difference from the empty reference

/// Cells along the longer side of a region's bounding box: coarse enough to average away sensor noise
/// and small misregistration, fine enough to see a body (a bed is ~6 cells wide across a lying person).
const GRID_CELLS: usize = 24;
/// A cell belongs to the region when at least this share of it is inside the polygon.
const CELL_IN_REGION: f64 = 0.5;
/// At most this many pixels are read along each side of a cell (a stride beyond that).
const CELL_SAMPLES: usize = 8;
/// Below this mean luma (grey levels) a region is too dark to compare (lights off, no IR).
const TOO_DARK: f64 = 8.0;

/// A region's look: the luma of a coarse grid over its bounding box, cells outside the polygon left
/// out, each divided by the mean over the region (relative brightness, so a global change of light
/// divides out). Store one of the empty region instead of a whole reference frame.
#[derive(Debug, Clone, PartialEq)]
pub struct RegionSignature {
    frame: (u32, u32),
    /// The grid: top left corner, cell size (pixels), cells per row.
    origin: [f64; 2],
    cell: [f64; 2],
    columns: usize,
    /// Relative brightness per grid cell, None outside the polygon.
    cells: Vec<Option<f64>>,
}

impl RegionSignature {
    /// None when the region is outside the frame, smaller than a cell, or too dark to compare.
    pub fn of(img: &RgbImage, region: &Polygon) -> Option<RegionSignature> {
        let (w, h) = (f64::from(img.width()), f64::from(img.height()));
        let b = region.bounds().map(f64::from);
        let (x0, y0, x1, y1) = (b[0].clamp(0.0, w), b[1].clamp(0.0, h), b[2].clamp(0.0, w), b[3].clamp(0.0, h));
        let (bw, bh) = (x1 - x0, y1 - y0);
        if bw < 1.0 || bh < 1.0 {
            return None;
        }
        let longer = bw.max(bh);
        let gw = ((GRID_CELLS as f64 * bw / longer).round() as usize).max(1);
        let gh = ((GRID_CELLS as f64 * bh / longer).round() as usize).max(1);
        let (cw, ch) = (bw / gw as f64, bh / gh as f64);
        let mut cells = Vec::with_capacity(gw * gh);
        for gy in 0..gh {
            for gx in 0..gw {
                let cell =
                    [x0 + gx as f64 * cw, y0 + gy as f64 * ch, x0 + (gx + 1) as f64 * cw, y0 + (gy + 1) as f64 * ch];
                let in_region = region.intersection_area(&cell.map(|v| v as f32)) >= CELL_IN_REGION * cw * ch;
                cells.push(in_region.then(|| mean_luma(img, cell)));
            }
        }
        let values: Vec<f64> = cells.iter().flatten().copied().collect();
        let mean = values.iter().sum::<f64>() / values.len().max(1) as f64;
        if values.is_empty() || mean < TOO_DARK {
            return None;
        }
        Some(RegionSignature {
            frame: (img.width(), img.height()),
            origin: [x0, y0],
            cell: [cw, ch],
            columns: gw,
            cells: cells.into_iter().map(|c| c.map(|v| v / mean)).collect(),
        })
    }

    /// How different two looks of the same region are, 0..1: the mean absolute difference of relative
    /// brightness per cell, each cell's capped at 1 (a cell that doubled or went dark counts fully).
    /// None when they are of different frame sizes (a reference from another stream resolution).
    pub fn changed(&self, other: &RegionSignature) -> Option<f64> {
        self.changed_outside(other, &[])
    }

    /// The same, leaving out the cells whose centre lies in one of `explained` (the boxes of people
    /// beside the region, whose bodies account for the change there). None also when every cell is
    /// left out.
    pub fn changed_outside(&self, other: &RegionSignature, explained: &[BBox]) -> Option<f64> {
        if self.frame != other.frame || self.cells.len() != other.cells.len() {
            return None;
        }
        let centre = |i: usize| {
            let (gx, gy) = ((i % self.columns) as f64 + 0.5, (i / self.columns) as f64 + 0.5);
            ((self.origin[0] + gx * self.cell[0]) as f32, (self.origin[1] + gy * self.cell[1]) as f32)
        };
        let kept: Vec<(f64, f64)> = self
            .cells
            .iter()
            .zip(&other.cells)
            .enumerate()
            .filter(|(i, _)| {
                let (x, y) = centre(*i);
                !explained.iter().any(|b| b[0] <= x && x < b[2] && b[1] <= y && y < b[3])
            })
            .filter_map(|(_, (a, b))| Some(((*a)?, (*b)?)))
            .collect();
        if kept.is_empty() {
            return None;
        }
        // Brightness relative to the kept cells: a dark body left out must not make the rest of the
        // region look brighter than its reference (with nothing left out both means are 1 already).
        let n = kept.len() as f64;
        let (ma, mb) = kept.iter().fold((0.0, 0.0), |(sa, sb), (a, b)| (sa + a / n, sb + b / n));
        if ma <= 0.0 || mb <= 0.0 {
            return None;
        }
        Some(kept.iter().map(|(a, b)| (a / ma - b / mb).abs().min(1.0)).sum::<f64>() / n)
    }
}

/// BT.601 luma averaged over (a sample of) the pixels of a cell `[x1, y1, x2, y2]`.
fn mean_luma(img: &RgbImage, cell: [f64; 4]) -> f64 {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let (x0, y0) = ((cell[0] as usize).min(w - 1), (cell[1] as usize).min(h - 1));
    let (x1, y1) = ((cell[2].ceil() as usize).clamp(x0 + 1, w), (cell[3].ceil() as usize).clamp(y0 + 1, h));
    let (sx, sy) = (((x1 - x0) / CELL_SAMPLES).max(1), ((y1 - y0) / CELL_SAMPLES).max(1));
    let raw = img.as_raw();
    let (mut sum, mut n) = (0.0, 0usize);
    for y in (y0..y1).step_by(sy) {
        for x in (x0..x1).step_by(sx) {
            let i = (y * w + x) * 3;
            sum += 0.299 * f64::from(raw[i]) + 0.587 * f64::from(raw[i + 1]) + 0.114 * f64::from(raw[i + 2]);
            n += 1;
        }
    }
    sum / n as f64
}

/// How different the region looks in `current` from `reference` (a frame taken when it was empty),
/// 0..1; None when either cannot be compared (see `RegionSignature`).
pub fn region_change(current: &RgbImage, reference: &RgbImage, region: &Polygon) -> Option<f64> {
    RegionSignature::of(current, region)?.changed(&RegionSignature::of(reference, region)?)
}

// ---------------------------------------------------------------------------------------------------
// Lighting: day colour or night infrared, from the picture

/// The lighting a camera's picture was taken in. An empty reference only fits pictures of its own
/// condition: in infrared, sheets, blankets and skin reflect differently and the scene is lit from the
/// camera, so a day reference compared with a night picture differs everywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Lighting {
    /// Colour, lit by daylight or the room's lights.
    Day,
    /// The camera's night mode: infrared illumination, a grey picture.
    NightIr,
}

impl Lighting {
    pub const ALL: [Lighting; 2] = [Lighting::Day, Lighting::NightIr];

    pub fn as_str(self) -> &'static str {
        match self {
            Lighting::Day => "day",
            Lighting::NightIr => "night_ir",
        }
    }

    fn index(self) -> usize {
        match self {
            Lighting::Day => 0,
            Lighting::NightIr => 1,
        }
    }
}

/// Cells along the longer side of the grid the lighting is judged on: chroma is taken from each cell's
/// mean colour, so per-pixel sensor noise (which is as strong in a grey picture) averages away.
const LIGHTING_CELLS: usize = 32;

/// How colourful and how bright a picture is: what tells the night infrared mode from day colour. An
/// IR camera's night picture has no chroma at all, whatever its brightness; a dim colour picture keeps
/// its chroma in proportion to its brightness — so chroma is judged relative to brightness, never by
/// the clock (night mode follows the light, not the hour).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LightingLook {
    /// Mean over cells of the cell's chroma (max − min of its mean R, G, B), grey levels.
    pub chroma: f64,
    /// Mean luma, grey levels.
    pub luma: f64,
}

impl LightingLook {
    pub fn of(img: &RgbImage) -> LightingLook {
        let (w, h) = (img.width() as usize, img.height() as usize);
        if w == 0 || h == 0 {
            return LightingLook { chroma: 0.0, luma: 0.0 };
        }
        let longer = w.max(h);
        let (gw, gh) = ((LIGHTING_CELLS * w / longer).max(1), (LIGHTING_CELLS * h / longer).max(1));
        let raw = img.as_raw();
        let (mut chroma, mut luma) = (0.0, 0.0);
        for gy in 0..gh {
            for gx in 0..gw {
                let (x0, x1) = (gx * w / gw, ((gx + 1) * w / gw).max(gx * w / gw + 1));
                let (y0, y1) = (gy * h / gh, ((gy + 1) * h / gh).max(gy * h / gh + 1));
                let (sx, sy) = (((x1 - x0) / CELL_SAMPLES).max(1), ((y1 - y0) / CELL_SAMPLES).max(1));
                let (mut sum, mut n) = ([0.0f64; 3], 0usize);
                for y in (y0..y1).step_by(sy) {
                    for x in (x0..x1).step_by(sx) {
                        let i = (y * w + x) * 3;
                        for c in 0..3 {
                            sum[c] += f64::from(raw[i + c]);
                        }
                        n += 1;
                    }
                }
                let mean = sum.map(|v| v / n as f64);
                chroma += mean.iter().copied().fold(f64::MIN, f64::max) - mean.iter().copied().fold(f64::MAX, f64::min);
                luma += 0.299 * mean[0] + 0.587 * mean[1] + 0.114 * mean[2];
            }
        }
        let cells = (gw * gh) as f64;
        LightingLook { chroma: chroma / cells, luma: luma / cells }
    }

    /// Chroma relative to brightness; None when the picture is too dark to tell.
    pub fn colourfulness(&self) -> Option<f64> {
        (self.luma >= TOO_DARK).then(|| self.chroma / self.luma)
    }
}

/// Follows a camera's lighting condition from frame to frame, with hysteresis: a picture between
/// `night_max_colour` and `day_min_colour`, or too dark to tell, keeps the condition it had.
#[derive(Debug, Clone)]
pub struct LightingJudge {
    night_max: f64,
    day_min: f64,
    current: Option<Lighting>,
}

impl LightingJudge {
    pub fn new(settings: &PresenceSettings) -> LightingJudge {
        LightingJudge { night_max: settings.night_max_colour, day_min: settings.day_min_colour, current: None }
    }

    /// The condition of a picture taken in isolation (a reference being stored): nearer which bound.
    pub fn classify(&self, img: &RgbImage) -> Lighting {
        match LightingLook::of(img).colourfulness() {
            Some(c) if c < (self.night_max + self.day_min) / 2.0 => Lighting::NightIr,
            _ => Lighting::Day,
        }
    }

    /// The condition of the next frame of the stream.
    pub fn observe(&mut self, img: &RgbImage) -> Lighting {
        let look = LightingLook::of(img);
        let next = match (look.colourfulness(), self.current) {
            (Some(c), _) if c < self.night_max => Lighting::NightIr,
            (Some(c), _) if c >= self.day_min => Lighting::Day,
            (_, Some(current)) => current,
            (Some(_), None) => self.classify(img),
            (None, None) => Lighting::Day,
        };
        self.current = Some(next);
        next
    }

    pub fn current(&self) -> Option<Lighting> {
        self.current
    }
}

// ---------------------------------------------------------------------------------------------------
// Staleness: does the empty reference still fit the furniture?

/// Cells along the longer side of the structure grid around a region: a bed is ~50 cells long, its
/// frame, mattress edge and legs a cell or two wide.
const STRUCTURE_CELLS: usize = 64;
/// The grid reaches this share of the region's longer side beyond it on every side: how far a moved
/// bed or chair is looked for.
const STRUCTURE_MARGIN: f64 = 0.2;
/// A shifted reference must fit the picture by this much more (normalised correlation, 0..1) than the
/// reference where it was taken. Measured on the tests' ward (tests/presence_scenes.rs): with the bed in
/// place the best shift beats the home fit by at most 0.10 (a patient covered to the chin; 0.07 at
/// night, 0.02 with a visitor); the empty bed pushed a tenth of the picture's width, by 0.24.
const STALE_GAIN: f64 = 0.15;
/// ... and fit by at least this much on its own: the furniture is recognisably there, elsewhere
/// (0.98 for the pushed bed; a bed with someone in it fits 0.2–0.35 anywhere).
const STALE_MIN_FIT: f64 = 0.45;

/// A region's structure: the luma gradients of a grid over the region's box and a margin around it.
/// A person lying or sitting in a bed adds and hides edges but leaves the bed's frame, legs and
/// outline where they were; a bed that was pushed takes them all along, and the reference then fits
/// the picture better shifted than in place.
#[derive(Debug, Clone, PartialEq)]
pub struct RegionStructure {
    frame: (u32, u32),
    grid: (usize, usize),
    cell: (f64, f64),
    /// The region's own box, in cells of the grid: `[x0, y0, x1, y1)`.
    inner: [usize; 4],
    /// Horizontal and vertical luma differences per cell.
    gradients: Vec<[f32; 2]>,
}

/// How well a region's reference structure fits a picture.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct StructureFit {
    /// Normalised correlation of the gradients where the reference was taken, -1..1.
    pub home: f64,
    /// The best correlation over the shifts looked at.
    pub best: f64,
    /// The shift that gave it, pixels `[dx, dy]` (where the furniture seems to be now).
    pub shift: [f64; 2],
}

impl StructureFit {
    /// Whether the reference fits clearly better elsewhere than in place: the furniture moved.
    pub fn moved(&self) -> bool {
        self.shift != [0.0, 0.0] && self.best - self.home >= STALE_GAIN && self.best >= STALE_MIN_FIT
    }

    /// Whether it fits in place: recognisably, and nothing shifted fits notably better. A patient lying
    /// in a moved bed blurs every fit (measured: 0.25 in place, 0.30 shifted) into neither: that frame
    /// neither clears nor confirms the staleness.
    pub fn in_place(&self) -> bool {
        self.best - self.home < STALE_GAIN / 5.0 && self.home >= STALE_MIN_FIT
    }
}

impl RegionStructure {
    /// None when the region (with its margin) is outside the frame or too small for a grid.
    pub fn of(img: &RgbImage, region: &Polygon) -> Option<RegionStructure> {
        let (w, h) = (f64::from(img.width()), f64::from(img.height()));
        let b = region.bounds().map(f64::from);
        let margin = STRUCTURE_MARGIN * (b[2] - b[0]).max(b[3] - b[1]);
        let (x0, y0) = ((b[0] - margin).clamp(0.0, w), (b[1] - margin).clamp(0.0, h));
        let (x1, y1) = ((b[2] + margin).clamp(0.0, w), (b[3] + margin).clamp(0.0, h));
        let (bw, bh) = (x1 - x0, y1 - y0);
        if bw < 8.0 || bh < 8.0 {
            return None;
        }
        let longer = bw.max(bh);
        let gw = ((STRUCTURE_CELLS as f64 * bw / longer).round() as usize).max(3);
        let gh = ((STRUCTURE_CELLS as f64 * bh / longer).round() as usize).max(3);
        let (cw, ch) = (bw / gw as f64, bh / gh as f64);
        let luma: Vec<f64> = (0..gh)
            .flat_map(|gy| (0..gw).map(move |gx| (gx, gy)))
            .map(|(gx, gy)| {
                let cell =
                    [x0 + gx as f64 * cw, y0 + gy as f64 * ch, x0 + (gx + 1) as f64 * cw, y0 + (gy + 1) as f64 * ch];
                mean_luma(img, cell)
            })
            .collect();
        let at = |x: usize, y: usize| luma[y * gw + x];
        let gradients = (0..gh)
            .flat_map(|gy| (0..gw).map(move |gx| (gx, gy)))
            .map(|(gx, gy)| {
                let dx = at((gx + 1).min(gw - 1), gy) - at(gx.saturating_sub(1), gy);
                let dy = at(gx, (gy + 1).min(gh - 1)) - at(gx, gy.saturating_sub(1));
                [dx as f32, dy as f32]
            })
            .collect();
        let cell_of =
            |v: f64, origin: f64, size: f64, n: usize| (((v - origin) / size).round().max(0.0) as usize).min(n);
        let inner = [
            cell_of(b[0].clamp(0.0, w), x0, cw, gw),
            cell_of(b[1].clamp(0.0, h), y0, ch, gh),
            cell_of(b[2].clamp(0.0, w), x0, cw, gw),
            cell_of(b[3].clamp(0.0, h), y0, ch, gh),
        ];
        if inner[2] <= inner[0] || inner[3] <= inner[1] {
            return None;
        }
        Some(RegionStructure { frame: (img.width(), img.height()), grid: (gw, gh), cell: (cw, ch), inner, gradients })
    }

    /// How this (reference) structure fits `current`, in place and shifted by up to the margin (not
    /// searched when the fit in place leaves no room for a shift to fit better by `STALE_GAIN`: `best`
    /// is then the fit in place). None for structures of different frames or grids, or a reference
    /// without any edge (a blank wall).
    pub fn fit(&self, current: &RegionStructure) -> Option<StructureFit> {
        if self.frame != current.frame || self.grid != current.grid || self.inner != current.inner {
            return None;
        }
        let (gw, gh) = self.grid;
        let [ix0, iy0, ix1, iy1] = self.inner;
        let norm_ref: f64 = (iy0..iy1)
            .flat_map(|y| (ix0..ix1).map(move |x| (x, y)))
            .map(|(x, y)| {
                let g = self.gradients[y * gw + x];
                f64::from(g[0] * g[0] + g[1] * g[1])
            })
            .sum();
        if norm_ref <= f64::EPSILON {
            return None;
        }
        let score = |sx: isize, sy: isize| -> f64 {
            let (mut dot, mut norm) = (0.0f64, 0.0f64);
            for y in iy0..iy1 {
                for x in ix0..ix1 {
                    let r = self.gradients[y * gw + x];
                    let c = current.gradients[(y as isize + sy) as usize * gw + (x as isize + sx) as usize];
                    dot += f64::from(r[0] * c[0] + r[1] * c[1]);
                    norm += f64::from(c[0] * c[0] + c[1] * c[1]);
                }
            }
            if norm <= f64::EPSILON { 0.0 } else { dot / (norm_ref * norm).sqrt() }
        };
        let home = score(0, 0);
        let mut fit = StructureFit { home, best: home, shift: [0.0, 0.0] };
        if home > 1.0 - STALE_GAIN {
            // No shift can beat this by `STALE_GAIN` (a correlation is at most 1): the furniture is in
            // place, and the search — the bulk of the cost, run on every keyframe of an empty bed — is
            // skipped.
            return Some(fit);
        }
        for sy in -(iy0 as isize)..=(gh - iy1) as isize {
            for sx in -(ix0 as isize)..=(gw - ix1) as isize {
                if (sx, sy) == (0, 0) {
                    continue;
                }
                let s = score(sx, sy);
                if s > fit.best {
                    fit = StructureFit { home, best: s, shift: [sx as f64 * self.cell.0, sy as f64 * self.cell.1] };
                }
            }
        }
        Some(fit)
    }
}

/// What a stale reference report says: the region's empty reference (of this lighting) no longer fits
/// the furniture, and the region is not judged from it until it does again or a new one is taken.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StaleReference {
    pub region: String,
    pub lighting: Lighting,
    /// What no longer fits: "structure" (the region's edges are found shifted).
    pub what: &'static str,
    /// The reference's fit in place (normalised gradient correlation) when raised.
    pub fit: f64,
    /// Its best fit shifted, and the shift in pixels: where the furniture seems to be now.
    pub shifted_fit: f64,
    pub shift_px: [f64; 2],
    /// Since when the reference has not fitted (the first frame of the run).
    #[serde(with = "super::humantime_serde_compat")]
    pub since: SystemTime,
}

/// A change of a region's staleness.
#[derive(Debug, Clone, PartialEq)]
pub enum Staleness {
    Raised(StaleReference),
    Cleared { region: String, lighting: Lighting },
}

/// Decides, over time, whether a region's reference is stale: the per-frame "moved" verdict must
/// hold `stale_secs` (frames in which someone is near the region, whose body may hide or fake edges,
/// and frames that are neither clearly moved nor clearly in place, neither count nor break the run),
/// and "fits in place" the same to clear it.
#[derive(Debug, Clone, Default)]
struct StaleJudge {
    /// The current run of per-frame verdicts: (moved, first frame, fit of the latest frame).
    run: Option<(bool, SystemTime, StructureFit)>,
    stale: Option<StaleReference>,
}

impl StaleJudge {
    fn observe(&mut self, fit: StructureFit, t: SystemTime, hold: Duration) -> Option<bool> {
        let moved = match (fit.moved(), fit.in_place()) {
            (true, _) => true,
            (false, true) => false,
            (false, false) => return None,
        };
        let started = match self.run {
            Some((m, started, _)) if m == moved => started,
            _ => t,
        };
        self.run = Some((moved, started, fit));
        let held = t.duration_since(started).unwrap_or_default() >= hold;
        (held && moved != self.stale.is_some()).then_some(moved)
    }
}

/// A frame's raw verdict on one region and what it rested on.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct FrameEvidence {
    /// The person box that decided, or the one covering the region most.
    pub best: Option<Overlap>,
    pub detector: bool,
    /// Difference from the empty reference, when there is one and it was needed.
    pub changed: Option<f64>,
    pub occupied: bool,
}

/// Combines the two signals. The detector decides when it sees someone. When it sees nobody, a
/// region that differs strongly from its empty look still counts as occupied: a patient under a
/// blanket is often missed by the detector but changes the bed's shading and outline. Without a
/// reference the detector alone decides.
pub fn frame_evidence(
    region: &Polygon,
    persons: &[Person],
    changed: Option<f64>,
    settings: &PresenceSettings,
) -> FrameEvidence {
    let (detector, best) = detector_occupied(region, persons, settings);
    let occupied = detector || changed.is_some_and(|c| c >= settings.changed_occupied);
    FrameEvidence { best, detector, changed, occupied }
}

// ---------------------------------------------------------------------------------------------------
// Time: hysteresis and the timeline

/// What is known about a region at one time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Occupancy {
    Occupied,
    Empty,
    /// No decision: before the first one, or while the camera was not delivering frames.
    Unknown,
}

/// A stretch of time `[from, to)` in one state.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Interval {
    pub state: Occupancy,
    #[serde(with = "super::humantime_serde_compat")]
    pub from: SystemTime,
    #[serde(with = "super::humantime_serde_compat")]
    pub to: SystemTime,
}

/// The region's state changed to `to`, effective from `at` (backdated to when the signal started).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct StateChange {
    pub from: Occupancy,
    pub to: Occupancy,
    #[serde(with = "super::humantime_serde_compat")]
    pub at: SystemTime,
}

/// The occupancy of one region over time, from raw per-frame verdicts.
///
/// A raw value must hold `enter_secs` (occupied) or `leave_secs` (empty) before the state follows it,
/// and the new state then starts when the raw value started. The state is Unknown until the first
/// decision and from a frame followed by a gap longer than `max_gap_secs` until the next decision.
/// Known time ends at the last frame: queries treat later time as Unknown until frames arrive. The
/// last `leave_secs` / `enter_secs` before the latest frame may still be revised by a backdated change.
#[derive(Debug, Clone)]
pub struct OccupancyTracker {
    settings: PresenceSettings,
    /// Finished intervals, oldest first, none older than the horizon.
    closed: VecDeque<Interval>,
    state: Occupancy,
    /// Start of the current state; it lasts until `last_frame`.
    since: SystemTime,
    last_frame: Option<SystemTime>,
    /// The current raw value and the time of the first frame that showed it.
    run: Option<(bool, SystemTime)>,
}

impl OccupancyTracker {
    pub fn new(settings: PresenceSettings) -> OccupancyTracker {
        OccupancyTracker {
            settings,
            closed: VecDeque::new(),
            state: Occupancy::Unknown,
            since: SystemTime::UNIX_EPOCH,
            last_frame: None,
            run: None,
        }
    }

    /// Feeds one frame's raw verdict. Returns the state change this frame caused, if any (after a
    /// camera gap, the latest of them: the gap's Unknown is in the timeline). Frames older than the
    /// latest one are ignored.
    pub fn observe(&mut self, t: SystemTime, raw_occupied: bool) -> Option<StateChange> {
        let mut change = None;
        match self.last_frame {
            None => self.since = t,
            Some(last) if t < last => return None,
            Some(last) if t.duration_since(last).unwrap_or_default() > secs(self.settings.max_gap_secs) => {
                change = self.switch(Occupancy::Unknown, last);
                self.run = None;
            }
            Some(_) => {}
        }
        self.last_frame = Some(t);
        let (value, started) = match self.run {
            Some((v, started)) if v == raw_occupied => (v, started),
            _ => (raw_occupied, t),
        };
        self.run = Some((value, started));
        let (target, hold) = if value {
            (Occupancy::Occupied, self.settings.enter_secs)
        } else {
            (Occupancy::Empty, self.settings.leave_secs)
        };
        if self.state != target && t.duration_since(started).unwrap_or_default() >= secs(hold) {
            change = self.switch(target, started.max(self.since));
        }
        self.prune(t);
        change
    }

    /// A frame on which the region cannot be judged (its reference is stale): the state is Unknown from
    /// `since` (the start of what made it so, not before the current state began) and must be decided
    /// afresh afterwards.
    pub fn observe_unknown(&mut self, t: SystemTime, since: SystemTime) -> Option<StateChange> {
        match self.last_frame {
            None => self.since = t,
            Some(last) if t < last => return None,
            Some(_) => {}
        }
        self.last_frame = Some(t);
        self.run = None;
        let change = self.switch(Occupancy::Unknown, since.max(self.since).min(t));
        self.prune(t);
        change
    }

    /// The raw per-frame value of the latest frames and since when it has held, before the hysteresis:
    /// a patient who lay down a few seconds ago is raw-occupied while the state still says Empty.
    pub fn raw(&self) -> Option<(bool, SystemTime)> {
        self.run
    }

    /// The current state (as of the latest frame).
    pub fn state(&self) -> Occupancy {
        self.state
    }

    pub fn last_frame(&self) -> Option<SystemTime> {
        self.last_frame
    }

    /// The state at `t`: Unknown outside the kept timeline.
    pub fn state_at(&self, t: SystemTime) -> Occupancy {
        if self.last_frame.is_some_and(|last| t >= self.since && t <= last) {
            return self.state;
        }
        self.closed.iter().find(|i| i.from <= t && t < i.to).map_or(Occupancy::Unknown, |i| i.state)
    }

    /// Seconds of `[from, to)` the region was Occupied.
    pub fn occupied_secs(&self, from: SystemTime, to: SystemTime) -> f64 {
        self.secs_in(Occupancy::Occupied, from, to)
    }

    /// Seconds of `[from, to)` the region was Empty.
    pub fn empty_secs(&self, from: SystemTime, to: SystemTime) -> f64 {
        self.secs_in(Occupancy::Empty, from, to)
    }

    /// Seconds of `[from, to)` nothing was known (no decision yet, camera not delivering, after the
    /// latest frame, or before the horizon).
    pub fn unknown_secs(&self, from: SystemTime, to: SystemTime) -> f64 {
        let total = to.duration_since(from).unwrap_or_default().as_secs_f64();
        (total - self.occupied_secs(from, to) - self.empty_secs(from, to)).max(0.0)
    }

    /// The kept timeline, oldest first, the current state last (ending at the latest frame).
    pub fn timeline(&self) -> impl Iterator<Item = Interval> + '_ {
        let current = self
            .last_frame
            .map(|last| Interval { state: self.state, from: self.since, to: last })
            .filter(|i| i.to > i.from);
        self.closed.iter().copied().chain(current)
    }

    fn secs_in(&self, state: Occupancy, from: SystemTime, to: SystemTime) -> f64 {
        self.timeline()
            .filter(|i| i.state == state)
            .map(|i| i.to.min(to).duration_since(i.from.max(from)).unwrap_or_default().as_secs_f64())
            .sum()
    }

    /// Ends the current state at `at` and starts `state` there.
    fn switch(&mut self, state: Occupancy, at: SystemTime) -> Option<StateChange> {
        if state == self.state {
            return None;
        }
        let change = StateChange { from: self.state, to: state, at };
        if at > self.since {
            self.closed.push_back(Interval { state: self.state, from: self.since, to: at });
            self.since = at;
        } else if let Some(prev) = self.closed.back().filter(|p| p.state == state && p.to == self.since) {
            // The state being left lasted no time: continue the one before it.
            self.since = prev.from;
            self.closed.pop_back();
        }
        self.state = state;
        Some(change)
    }

    fn prune(&mut self, now: SystemTime) {
        let Some(horizon) = now.checked_sub(secs(self.settings.horizon_secs)) else { return };
        while self.closed.front().is_some_and(|i| i.to <= horizon) {
            self.closed.pop_front();
        }
    }
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

// ---------------------------------------------------------------------------------------------------
// One region, both signals, over time

/// What one frame did to a region.
#[derive(Debug, Clone, PartialEq)]
pub struct RegionUpdate {
    pub evidence: FrameEvidence,
    pub change: Option<StateChange>,
    /// The lighting the frame was judged in (which reference it was compared with).
    pub lighting: Lighting,
    /// The region's reference became stale, or fits again, with this frame.
    pub staleness: Option<Staleness>,
    /// How the reference's structure fitted this frame, when it was judged (nobody near the region).
    pub fit: Option<StructureFit>,
}

/// A region's empty look in one lighting condition.
#[derive(Debug, Clone)]
struct Reference {
    signature: RegionSignature,
    /// None when the region has no edges to follow (a blank area): its staleness is not judged.
    structure: Option<RegionStructure>,
}

/// A bed or chair on a camera: its polygon, its empty look per lighting condition (when known), whether
/// that still fits, and its occupancy timeline.
#[derive(Debug, Clone)]
pub struct RegionMonitor {
    pub name: String,
    pub polygon: Polygon,
    pub tracker: OccupancyTracker,
    settings: PresenceSettings,
    /// Per [`Lighting`] (its `index`).
    references: [Option<Reference>; 2],
    judges: [StaleJudge; 2],
    last_lighting: Option<Lighting>,
}

impl RegionMonitor {
    pub fn new(name: &str, polygon: Polygon, settings: PresenceSettings) -> RegionMonitor {
        RegionMonitor {
            name: name.into(),
            polygon,
            tracker: OccupancyTracker::new(settings),
            settings,
            references: [None, None],
            judges: [StaleJudge::default(), StaleJudge::default()],
            last_lighting: None,
        }
    }

    /// Takes the region's empty look in `lighting` from a frame in which it is known to be empty (staff
    /// confirmed). Returns false when the region cannot be compared in this frame (too dark, outside the
    /// frame). A new reference is fresh: whatever staleness the old one had is forgotten.
    pub fn set_reference(&mut self, lighting: Lighting, empty_frame: &RgbImage) -> bool {
        let i = lighting.index();
        self.references[i] = RegionSignature::of(empty_frame, &self.polygon)
            .map(|signature| Reference { signature, structure: RegionStructure::of(empty_frame, &self.polygon) });
        self.judges[i] = StaleJudge::default();
        self.references[i].is_some()
    }

    pub fn has_reference(&self, lighting: Lighting) -> bool {
        self.references[lighting.index()].is_some()
    }

    /// The stale report of the reference of `lighting`, while it is stale.
    pub fn stale(&self, lighting: Lighting) -> Option<&StaleReference> {
        self.judges[lighting.index()].stale.as_ref()
    }

    /// Judges one analysed frame, taken in `lighting`, and feeds the verdict to the timeline. The
    /// reference of that lighting is compared only when the detector sees nobody in the region and the
    /// reference still fits; when it does not (the furniture moved), the region is Unknown — an
    /// empty verdict from a reference that no longer fits could become an accusation — unless the
    /// detector sees someone in it.
    pub fn observe(&mut self, frame: &RgbImage, persons: &[Person], lighting: Lighting, t: SystemTime) -> RegionUpdate {
        let i = lighting.index();
        if self.last_lighting != Some(lighting) {
            // A run of verdicts does not span frames of the other condition.
            self.judges[i].run = None;
            self.last_lighting = Some(lighting);
        }
        let mut evidence = frame_evidence(&self.polygon, persons, None, &self.settings);
        let mut staleness = None;
        let mut structure_fit = None;
        if let Some(reference) = &self.references[i] {
            if let Some(structure) = &reference.structure {
                if !self.someone_near(persons) {
                    let fit = RegionStructure::of(frame, &self.polygon).and_then(|c| structure.fit(&c));
                    structure_fit = fit;
                    let hold = secs(self.settings.stale_secs);
                    let judge = &mut self.judges[i];
                    match fit.and_then(|fit| judge.observe(fit, t, hold).map(|moved| (moved, fit))) {
                        Some((true, fit)) => {
                            let since = judge.run.map_or(t, |(_, started, _)| started);
                            let report = StaleReference {
                                region: self.name.clone(),
                                lighting,
                                what: "structure",
                                fit: fit.home,
                                shifted_fit: fit.best,
                                shift_px: fit.shift,
                                since,
                            };
                            judge.stale = Some(report.clone());
                            staleness = Some(Staleness::Raised(report));
                        }
                        Some((false, _)) => {
                            judge.stale = None;
                            staleness = Some(Staleness::Cleared { region: self.name.clone(), lighting });
                        }
                        None => {}
                    }
                }
            }
            if !evidence.detector && self.judges[i].stale.is_none() {
                // People seen beside the region (a nurse in front, a visitor on the edge) explain the
                // change where they are: the rest of the region decides.
                // A detector's box is tight around the body: loose clothes, a bag, the shadow spill
                // over, so each is widened a little.
                let explained: Vec<BBox> = persons
                    .iter()
                    .filter(|p| p.score >= self.settings.min_score)
                    .filter(|p| self.polygon.intersection_area(&p.bbox) > 0.0)
                    .map(|p| {
                        let [x1, y1, x2, y2] = p.bbox;
                        let (mx, my) = (EXPLAINED_MARGIN[0] * (x2 - x1), EXPLAINED_MARGIN[1] * (y2 - y1));
                        [x1 - mx, y1 - my, x2 + mx, y2 + my]
                    })
                    .collect();
                let changed = RegionSignature::of(frame, &self.polygon)
                    .and_then(|s| s.changed_outside(&reference.signature, &explained));
                evidence = frame_evidence(&self.polygon, persons, changed, &self.settings);
            }
        }
        let change = match &self.judges[i].stale {
            Some(stale) if !evidence.detector => self.tracker.observe_unknown(t, stale.since),
            _ => self.tracker.observe(t, evidence.occupied),
        };
        RegionUpdate { evidence, change, lighting, staleness, fit: structure_fit }
    }

    /// The region's state for a roll-call: the tracker's, except that a region raw-occupied on the
    /// latest frames counts as occupied even before `enter_secs` have passed (a patient who lay down
    /// just before the roll-call is not absent; one who got up just before is still Occupied by the
    /// hysteresis). Unknown while the reference is stale and nobody is seen.
    pub fn rollcall_state(&self) -> Occupancy {
        match (self.tracker.state(), self.tracker.raw()) {
            (Occupancy::Occupied, _) | (_, Some((true, _))) => Occupancy::Occupied,
            (state, _) => state,
        }
    }

    /// Whether a person box (of a usable score) overlaps the region's box: a body there hides or adds
    /// the edges the reference is compared on, so the frame says nothing about the furniture. Boxes
    /// only in the margin around it do not count: the reference's edges are those inside the box, and
    /// a loose box of someone in the next bed would otherwise keep the region from ever being judged
    /// (tests/presence.rs: bed 3 never judged with the margin counted, once the person model changed).
    fn someone_near(&self, persons: &[Person]) -> bool {
        let b = self.polygon.bounds();
        persons.iter().any(|p| p.score >= self.settings.min_score && boxes::intersection(&p.bbox, &b) > 0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: u32 = 320;
    const H: u32 = 240;

    fn t(s: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + s)
    }

    fn person(bbox: BBox) -> Person {
        Person { bbox, score: 0.8 }
    }

    /// A bed seen from the foot end, slightly in perspective: 0.3..0.7 wide at the top, 0.25..0.75 at
    /// the bottom, 0.2..0.9 high → on 320×240 about 144 px wide and 168 px tall.
    fn bed() -> Polygon {
        Polygon::from_normalised(&[[0.3, 0.2], [0.7, 0.2], [0.75, 0.9], [0.25, 0.9]], W, H).unwrap()
    }

    #[test]
    fn areas_and_intersections_are_exact() {
        let square = Polygon::from_normalised(&[[0.0, 0.0], [0.5, 0.0], [0.5, 0.5], [0.0, 0.5]], 100, 100).unwrap();
        assert_eq!(square.area(), 2500.0);
        assert_eq!(square.intersection_area(&[25.0, 25.0, 75.0, 75.0]), 625.0);
        assert_eq!(square.intersection_area(&[60.0, 60.0, 90.0, 90.0]), 0.0);
        assert_eq!(square.intersection_area(&[-10.0, -10.0, 200.0, 200.0]), 2500.0);
        // Right triangle (0,0) (100,0) (0,100): the box [0,0,50,50] lies wholly under the hypotenuse.
        let tri = Polygon::from_normalised(&[[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]], 100, 100).unwrap();
        assert_eq!(tri.area(), 5000.0);
        assert!((tri.intersection_area(&[0.0, 0.0, 50.0, 50.0]) - 2500.0).abs() < 1e-9);
        // [50,0,100,100] holds the triangle's corner with legs 50: 1250.
        assert!((tri.intersection_area(&[50.0, 0.0, 100.0, 100.0]) - 1250.0).abs() < 1e-9);
        // A concave L: a 100×100 square minus its top-right 50×50 quarter, clipped by a box over the notch.
        let l = Polygon::from_normalised(
            &[[0.0, 0.0], [0.5, 0.0], [0.5, 0.5], [1.0, 0.5], [1.0, 1.0], [0.0, 1.0]],
            100,
            100,
        )
        .unwrap();
        assert_eq!(l.area(), 7500.0);
        assert!((l.intersection_area(&[25.0, 25.0, 75.0, 75.0]) - 1875.0).abs() < 1e-9);
        assert!(l.contains(25.0, 25.0) && !l.contains(75.0, 25.0) && l.contains(75.0, 75.0));
        assert_eq!(l.bounds(), [0.0, 0.0, 100.0, 100.0]);
    }

    #[test]
    fn polygons_from_config_are_checked() {
        let ok = Polygon::from_config(&[vec![0.1, 0.1], vec![0.9, 0.1], vec![0.5, 0.9]], 200, 100).unwrap();
        assert_eq!(ok.points()[1], [180.0, 10.0]);
        assert_eq!(Polygon::from_config(&[vec![0.1, 0.1], vec![0.9, 0.1]], 10, 10), Err(PolygonError::TooFewPoints(2)));
        assert_eq!(
            Polygon::from_config(&[vec![0.1, 0.1], vec![0.9], vec![0.5, 0.9]], 10, 10),
            Err(PolygonError::NotAPoint(1))
        );
        assert_eq!(
            Polygon::from_config(&[vec![0.1, 0.1], vec![0.2, 0.2], vec![0.3, 0.3]], 10, 10),
            Err(PolygonError::NoArea)
        );
    }

    #[test]
    fn a_person_lying_in_bed_occupies_it() {
        let s = PresenceSettings::default();
        // Lying along the bed: shoulders to feet, narrower than the bed.
        let lying = person([110.0, 70.0, 205.0, 200.0]);
        let o = Overlap::of(&bed(), &lying);
        assert!(o.inside > 0.95 && o.cover > 0.4, "{o:?}");
        assert!(detector_occupied(&bed(), &[lying], &s).0);
        // Sitting up: head and shoulders above the bed's top edge in the picture.
        let sitting = person([120.0, 20.0, 200.0, 110.0]);
        let o = Overlap::of(&bed(), &sitting);
        assert!(o.inside > 0.5 && o.inside < 0.75, "{o:?}");
        assert!(detector_occupied(&bed(), &[sitting], &s).0);
    }

    #[test]
    fn a_nurse_beside_the_bed_does_not_occupy_it() {
        let s = PresenceSettings::default();
        // Standing to the right of the bed, her box overlapping the bed's right edge.
        let nurse = person([215.0, 60.0, 265.0, 220.0]);
        let o = Overlap::of(&bed(), &nurse);
        assert!(o.inside > 0.05 && o.inside < 0.4, "{o:?}");
        let (occupied, best) = detector_occupied(&bed(), std::slice::from_ref(&nurse), &s);
        assert!(!occupied);
        assert_eq!(best, Some(o));
        // A small box inside the bed only by perspective (someone far behind it).
        let far = person([150.0, 50.0, 165.0, 80.0]);
        assert!(!detector_occupied(&bed(), &[far], &s).0);
        // Below the score threshold, a perfect box does not count.
        assert!(!detector_occupied(&bed(), &[Person { bbox: [110.0, 70.0, 205.0, 200.0], score: 0.2 }], &s).0);
        // With the nurse and the patient both there, the patient decides.
        assert!(detector_occupied(&bed(), &[nurse, person([110.0, 70.0, 205.0, 200.0])], &s).0);
    }

    #[test]
    fn a_seated_patient_overhanging_a_tight_chair_region_counts() {
        let s = PresenceSettings::default();
        let seat = Polygon::from_normalised(&[[0.4, 0.5], [0.6, 0.5], [0.6, 0.7], [0.4, 0.7]], W, H).unwrap();
        let seated = person([115.0, 60.0, 205.0, 230.0]);
        let o = Overlap::of(&seat, &seated);
        assert!(o.inside < s.min_inside && o.cover >= s.full_cover, "{o:?}");
        assert!(o.occupies(&s));
    }

    fn feed(tracker: &mut OccupancyTracker, from: u64, to: u64, step: u64, occupied: bool) -> Vec<StateChange> {
        (from..to).step_by(step as usize).filter_map(|s| tracker.observe(t(s), occupied)).collect()
    }

    #[test]
    fn a_walker_passing_for_8_seconds_never_occupies_the_bed() {
        let mut tr = OccupancyTracker::new(PresenceSettings::default());
        feed(&mut tr, 0, 120, 2, false);
        assert_eq!(tr.state(), Occupancy::Empty);
        assert!(feed(&mut tr, 120, 128, 2, true).is_empty());
        assert!(feed(&mut tr, 128, 300, 3, false).is_empty());
        assert_eq!(tr.occupied_secs(t(0), t(300)), 0.0);
        assert_eq!(tr.state_at(t(124)), Occupancy::Empty);
    }

    #[test]
    fn first_decision_is_backdated_and_before_it_nothing_is_known() {
        let mut tr = OccupancyTracker::new(PresenceSettings::default());
        assert_eq!(tr.state_at(t(0)), Occupancy::Unknown);
        let changes = feed(&mut tr, 0, 40, 4, true);
        assert_eq!(changes, vec![StateChange { from: Occupancy::Unknown, to: Occupancy::Occupied, at: t(0) }]);
        assert_eq!(tr.state_at(t(0)), Occupancy::Occupied);
        assert_eq!(tr.occupied_secs(t(0), t(36)), 36.0);
        // After the latest frame nothing is known yet.
        assert_eq!(tr.unknown_secs(t(30), t(100)), 64.0);
        assert_eq!(tr.unknown_secs(t(0) - Duration::from_secs(10), t(0)), 10.0);
    }

    #[test]
    fn a_patient_away_for_30_seconds_stays_in_bed() {
        let mut tr = OccupancyTracker::new(PresenceSettings::default());
        feed(&mut tr, 0, 600, 2, true);
        assert!(feed(&mut tr, 600, 630, 2, false).is_empty());
        assert!(feed(&mut tr, 630, 900, 2, true).is_empty());
        assert_eq!(tr.state(), Occupancy::Occupied);
        assert_eq!(tr.occupied_secs(t(0), t(898)), 898.0);
    }

    #[test]
    fn a_patient_away_for_5_minutes_is_absent_from_when_they_left() {
        let mut tr = OccupancyTracker::new(PresenceSettings::default());
        feed(&mut tr, 0, 600, 2, true);
        let changes = feed(&mut tr, 600, 900, 3, false);
        assert_eq!(changes, vec![StateChange { from: Occupancy::Occupied, to: Occupancy::Empty, at: t(600) }]);
        let back = feed(&mut tr, 900, 1000, 4, true);
        assert_eq!(back, vec![StateChange { from: Occupancy::Empty, to: Occupancy::Occupied, at: t(900) }]);
        assert_eq!(tr.state_at(t(599)), Occupancy::Occupied);
        assert_eq!(tr.state_at(t(600)), Occupancy::Empty);
        assert_eq!(tr.empty_secs(t(0), t(1000)), 300.0);
        assert_eq!(tr.occupied_secs(t(0), t(996)), 696.0);
        let states: Vec<Occupancy> = tr.timeline().map(|i| i.state).collect();
        assert_eq!(states, [Occupancy::Occupied, Occupancy::Empty, Occupancy::Occupied]);
    }

    #[test]
    fn a_camera_gap_is_unknown_and_the_state_must_be_decided_again() {
        let mut tr = OccupancyTracker::new(PresenceSettings::default());
        feed(&mut tr, 0, 100, 2, true);
        // Last frame at 98; the camera comes back at 400.
        let change = tr.observe(t(400), true);
        assert_eq!(change, Some(StateChange { from: Occupancy::Occupied, to: Occupancy::Unknown, at: t(98) }));
        let again = feed(&mut tr, 402, 440, 2, true);
        assert_eq!(again, vec![StateChange { from: Occupancy::Unknown, to: Occupancy::Occupied, at: t(400) }]);
        assert_eq!(tr.unknown_secs(t(0), t(438)), 302.0);
        assert_eq!(tr.occupied_secs(t(0), t(438)), 98.0 + 38.0);
        assert_eq!(tr.state_at(t(200)), Occupancy::Unknown);
        // Frames a few seconds apart (missed keyframes) are not a gap.
        feed(&mut tr, 440, 600, 20, true);
        assert_eq!(tr.unknown_secs(t(400), t(580)), 0.0);
        // Out-of-order frames are ignored.
        assert_eq!(tr.observe(t(10), false), None);
    }

    #[test]
    fn the_timeline_is_pruned_to_the_horizon() {
        let settings = PresenceSettings { horizon_secs: 3600, ..PresenceSettings::default() };
        let mut tr = OccupancyTracker::new(settings);
        // Alternate every 10 minutes for 5 hours.
        for block in 0..30 {
            feed(&mut tr, block * 600, (block + 1) * 600, 4, block % 2 == 0);
        }
        let intervals: Vec<Interval> = tr.timeline().collect();
        assert!(intervals.len() <= 8, "{}", intervals.len());
        assert!(intervals[0].to > t(17_996 - 3600));
        assert_eq!(tr.state_at(t(100)), Occupancy::Unknown);
        assert_eq!(tr.occupied_secs(t(16_800), t(17_400)), 600.0);
    }

    /// An empty bed in a room: a grey floor with a fine pattern, a white sheet with a pillow.
    fn room(brightness: f64) -> RgbImage {
        let b = bed();
        RgbImage::from_fn(W, H, |x, y| {
            let (fx, fy) = (f64::from(x) + 0.5, f64::from(y) + 0.5);
            let base = if b.contains(fx, fy) {
                if fy < 80.0 { 235.0 } else { 205.0 }
            } else {
                110.0 + 20.0 * f64::from((x / 8 + y / 8) % 2)
            };
            let noise = f64::from((x * 7919 + y * 104_729) % 7) - 3.0;
            let v = ((base + noise) * brightness).clamp(0.0, 255.0) as u8;
            image::Rgb([v, v, v.saturating_sub(5)])
        })
    }

    /// The room with the bed pushed `dx` pixels sideways (the region stays where it was drawn).
    fn room_with_bed_moved(dx: f64) -> RgbImage {
        let b = bed();
        RgbImage::from_fn(W, H, |x, y| {
            let (fx, fy) = (f64::from(x) + 0.5, f64::from(y) + 0.5);
            let base = if b.contains(fx - dx, fy) {
                if fy < 80.0 { 235.0 } else { 205.0 }
            } else {
                110.0 + 20.0 * f64::from((x / 8 + y / 8) % 2)
            };
            let noise = f64::from((x * 7919 + y * 104_729) % 7) - 3.0;
            let v = (base + noise).clamp(0.0, 255.0) as u8;
            image::Rgb([v, v, v.saturating_sub(5)])
        })
    }

    /// A colour picture of a ward: a beige wall, a green-grey floor, a white bed; `light` scales it.
    fn colour_room(light: f64) -> RgbImage {
        let b = bed();
        RgbImage::from_fn(W, H, |x, y| {
            let (fx, fy) = (f64::from(x) + 0.5, f64::from(y) + 0.5);
            let rgb = if b.contains(fx, fy) {
                [232.0, 234.0, 238.0]
            } else if y < H / 3 {
                [206.0, 196.0, 172.0]
            } else {
                [150.0, 160.0, 148.0]
            };
            let noise = f64::from((x * 7919 + y * 104_729) % 9) - 4.0;
            image::Rgb(rgb.map(|c| ((c + noise) * light).clamp(0.0, 255.0) as u8))
        })
    }

    /// The camera's night mode: grey, flatter, brighter in the middle.
    fn infrared(img: &RgbImage) -> RgbImage {
        RgbImage::from_fn(img.width(), img.height(), |x, y| {
            let [r, g, b] = img.get_pixel(x, y).0.map(f64::from);
            let dx = f64::from(x) / f64::from(W) - 0.5;
            let v = (30.0 + 0.7 * (0.5 * r + 0.3 * g + 0.2 * b) * (1.0 - dx * dx)).clamp(0.0, 255.0) as u8;
            image::Rgb([v, v, v])
        })
    }

    #[test]
    fn the_lighting_is_told_from_the_picture_not_the_clock() {
        let s = PresenceSettings::default();
        let day = colour_room(1.0);
        let night = infrared(&day);
        let (d, n) = (LightingLook::of(&day), LightingLook::of(&night));
        assert!(d.colourfulness().unwrap() > 2.0 * s.day_min_colour, "{d:?}");
        assert!(n.colourfulness().unwrap() < s.night_max_colour / 4.0, "{n:?}");
        let judge = LightingJudge::new(&s);
        assert_eq!(judge.classify(&day), Lighting::Day);
        assert_eq!(judge.classify(&night), Lighting::NightIr);
        // A dim colour picture keeps its chroma in proportion: still day, not night.
        assert_eq!(judge.classify(&colour_room(0.25)), Lighting::Day);
        let mut judge = LightingJudge::new(&s);
        assert_eq!(judge.current(), None);
        assert_eq!(judge.observe(&day), Lighting::Day);
        assert_eq!(judge.observe(&night), Lighting::NightIr);
        // Between the bounds (a faintly tinted grey picture) and too dark to tell: the condition stays.
        let faint = RgbImage::from_fn(W, H, |_, _| image::Rgb([141, 140, 138]));
        let c = LightingLook::of(&faint).colourfulness().unwrap();
        assert!(c > s.night_max_colour && c < s.day_min_colour, "{c}");
        assert_eq!(judge.observe(&faint), Lighting::NightIr);
        assert_eq!(judge.observe(&day), Lighting::Day);
        assert_eq!(judge.observe(&faint), Lighting::Day);
        assert_eq!(judge.observe(&RgbImage::new(W, H)), Lighting::Day);
        assert_eq!(LightingLook::of(&RgbImage::new(W, H)).colourfulness(), None);
    }

    #[test]
    fn a_region_compares_with_the_reference_of_its_lighting() {
        let mut m = RegionMonitor::new("bed-1", bed(), PresenceSettings::default());
        let day = colour_room(1.0);
        let night = infrared(&day);
        assert!(m.set_reference(Lighting::Day, &day));
        assert!(!m.has_reference(Lighting::NightIr));
        // Without a night reference the night picture is judged by the detector alone.
        let u = m.observe(&night, &[], Lighting::NightIr, t(0));
        assert_eq!(u.evidence.changed, None);
        // A day reference would have called the empty bed at night changed.
        let wrong = RegionSignature::of(&night, &bed()).unwrap().changed(&RegionSignature::of(&day, &bed()).unwrap());
        assert!(wrong.unwrap() > 0.0);
        assert!(m.set_reference(Lighting::NightIr, &night));
        let u = m.observe(&night, &[], Lighting::NightIr, t(2));
        assert!(u.evidence.changed.unwrap() < 0.01, "{:?}", u.evidence);
        assert_eq!(u.lighting, Lighting::NightIr);
        let u = m.observe(&day, &[], Lighting::Day, t(4));
        assert!(u.evidence.changed.unwrap() < 0.01, "{:?}", u.evidence);
    }

    #[test]
    fn the_structure_fits_in_place_unless_the_bed_moved() {
        let empty = room(1.0);
        let reference = RegionStructure::of(&empty, &bed()).unwrap();
        let fit = |img: &RgbImage| reference.fit(&RegionStructure::of(img, &bed()).unwrap()).unwrap();
        let same = fit(&room(1.0));
        assert!(same.home > 0.95 && !same.moved(), "{same:?}");
        let darker = fit(&room(0.6));
        assert!(!darker.moved(), "{darker:?}");
        let covered = fit(&room_with_covered_patient());
        assert!(!covered.moved(), "a patient in bed leaves the bed where it was: {covered:?}");
        let moved = fit(&room_with_bed_moved(30.0));
        assert!(moved.moved(), "{moved:?}");
        assert!((moved.shift[0] - 30.0).abs() <= 6.0 && moved.shift[1].abs() <= 6.0, "{moved:?}");
        // Different frame sizes do not compare.
        let small = RegionStructure::of(&RgbImage::new(W / 2, H / 2), &bed()).unwrap();
        assert_eq!(reference.fit(&small), None);
    }

    #[test]
    fn a_moved_bed_is_stale_and_unknown_until_it_fits_again() {
        let settings = PresenceSettings { stale_secs: 30, ..PresenceSettings::default() };
        let mut m = RegionMonitor::new("bed-1", bed(), settings);
        assert!(m.set_reference(Lighting::Day, &room(1.0)));
        let (empty, moved) = (room(1.0), room_with_bed_moved(30.0));
        let mut stale = Vec::new();
        fn feed(
            m: &mut RegionMonitor,
            img: &RgbImage,
            persons: &[Person],
            from: u64,
            to: u64,
        ) -> Vec<(u64, Staleness)> {
            (from..to)
                .step_by(3)
                .filter_map(|s| m.observe(img, persons, Lighting::Day, t(s)).staleness.map(|x| (s, x)))
                .collect()
        }
        stale.extend(feed(&mut m, &empty, &[], 0, 120));
        assert_eq!(m.tracker.state(), Occupancy::Empty);
        // Pushed at 120: 30 s of frames later, the reference is stale and the bed Unknown from the push.
        stale.extend(feed(&mut m, &moved, &[], 120, 150));
        assert!(stale.is_empty());
        stale.extend(feed(&mut m, &moved, &[], 150, 160));
        let [(at, Staleness::Raised(report))] = stale.as_slice() else { panic!("{stale:?}") };
        assert_eq!((*at, report.since, report.lighting, report.what), (150, t(120), Lighting::Day, "structure"));
        assert!(
            report.shifted_fit - report.fit >= STALE_GAIN && (report.shift_px[0] - 30.0).abs() <= 6.0,
            "{report:?}"
        );
        assert_eq!(m.stale(Lighting::Day), Some(report));
        assert_eq!(m.tracker.state(), Occupancy::Unknown);
        assert_eq!(m.tracker.state_at(t(125)), Occupancy::Unknown, "backdated to the push");
        assert_eq!(m.tracker.state_at(t(100)), Occupancy::Empty);
        assert_eq!(m.rollcall_state(), Occupancy::Unknown, "never absent on a stale reference");
        // Someone standing near the bed: the frames say nothing about the furniture either way.
        let nurse = person([215.0, 60.0, 265.0, 220.0]);
        stale.clear();
        stale.extend(feed(&mut m, &empty, std::slice::from_ref(&nurse), 160, 260));
        assert!(stale.is_empty() && m.stale(Lighting::Day).is_some());
        // Pushed back: fits again 30 s later, then is judged again (empty after leave_secs).
        stale.extend(feed(&mut m, &empty, &[], 260, 300));
        assert!(matches!(stale.as_slice(), [(290, Staleness::Cleared { .. })]), "{stale:?}");
        stale.extend(feed(&mut m, &empty, &[], 300, 400));
        assert_eq!(m.tracker.state(), Occupancy::Empty);
        // A new reference taken where the bed now stands is fresh.
        assert!(m.set_reference(Lighting::Day, &moved));
        assert_eq!(m.stale(Lighting::Day), None);
    }

    #[test]
    fn a_patient_who_lay_down_just_before_the_rollcall_is_not_absent() {
        let mut m = RegionMonitor::new("bed-1", bed(), PresenceSettings::default());
        assert!(m.set_reference(Lighting::Day, &room(1.0)));
        for s in (0..200).step_by(2) {
            m.observe(&room(1.0), &[], Lighting::Day, t(s));
        }
        assert_eq!(m.rollcall_state(), Occupancy::Empty);
        for s in (200..208).step_by(2) {
            m.observe(&room_with_covered_patient(), &[], Lighting::Day, t(s));
        }
        assert_eq!(m.tracker.state(), Occupancy::Empty, "enter_secs (20) not reached yet");
        assert_eq!(m.rollcall_state(), Occupancy::Occupied, "but in bed on the latest frames");
    }

    #[test]
    fn a_visitor_sitting_on_the_bed_edge_does_not_fill_a_bed_but_does_a_chair() {
        let beds = PresenceSettings { beds: true, ..PresenceSettings::default() };
        // Upright, from the middle of the bed down to the floor in front of it (the bed ends at 216).
        let visitor = person([125.0, 130.0, 175.0, 240.0]);
        let o = Overlap::of(&bed(), &visitor);
        assert!(o.beside && o.inside >= beds.min_inside && o.cover >= beds.min_cover, "{o:?}");
        assert!(!o.occupies(&beds));
        assert!(o.occupies(&PresenceSettings::default()), "in a chair, sitting is the occupancy");
        // Lying in bed is not beside it.
        assert!(!Overlap::of(&bed(), &person([110.0, 70.0, 205.0, 200.0])).beside);
        // The cells under the visitor are left out of the difference: the empty bed around them decides.
        let mut img = room(1.0);
        for y in 130..240u32 {
            for x in 125..175u32 {
                img.put_pixel(x, y, image::Rgb([40, 42, 50]));
            }
        }
        let (current, reference) =
            (RegionSignature::of(&img, &bed()).unwrap(), RegionSignature::of(&room(1.0), &bed()).unwrap());
        assert!(current.changed(&reference).unwrap() > beds.changed_occupied, "the visitor's body alone");
        assert!(current.changed_outside(&reference, &[visitor.bbox]).unwrap() < beds.changed_occupied / 4.0);
    }

    /// The same bed with a patient under a striped blanket: a body-shaped block down the middle.
    fn room_with_covered_patient() -> RgbImage {
        let mut img = room(1.0);
        for y in 75..205u32 {
            for x in 118..200u32 {
                let v = if (y / 6) % 2 == 0 { 95 } else { 150 };
                img.put_pixel(x, y, image::Rgb([v, v + 10, v + 30]));
            }
        }
        img
    }

    #[test]
    fn the_reference_difference_catches_a_covered_patient_not_a_lighting_change() {
        let s = PresenceSettings::default();
        let empty = room(1.0);
        let same = region_change(&room(1.0), &empty, &bed()).unwrap();
        let darker = region_change(&room(0.7), &empty, &bed()).unwrap();
        let brighter = region_change(&room(1.3), &empty, &bed()).unwrap();
        let covered = region_change(&room_with_covered_patient(), &empty, &bed()).unwrap();
        assert!(same < 0.01, "{same}");
        assert!(darker < s.changed_occupied / 4.0, "{darker}");
        // Brighter, the sheet clips at white: the pattern changes a little, not enough.
        assert!(brighter < s.changed_occupied / 2.0, "{brighter}");
        assert!(covered > s.changed_occupied * 1.4, "{covered}");
        // Combined: no person box, but the blanket counts; the darker empty bed does not.
        assert!(frame_evidence(&bed(), &[], Some(covered), &s).occupied);
        assert!(!frame_evidence(&bed(), &[], Some(darker), &s).occupied);
        assert!(!frame_evidence(&bed(), &[], None, &s).occupied);
        // A region outside the frame or a black frame cannot be compared.
        let off = Polygon::from_normalised(&[[1.1, 0.0], [1.5, 0.0], [1.5, 0.5]], W, H).unwrap();
        assert_eq!(region_change(&empty, &empty, &off), None);
        assert_eq!(region_change(&RgbImage::new(W, H), &empty, &bed()), None);
        assert_eq!(region_change(&RgbImage::new(W / 2, H / 2), &empty, &bed()), None);
    }

    #[test]
    fn a_monitor_fills_a_bed_from_the_blanket_and_empties_it_when_the_sheet_is_back() {
        let mut m = RegionMonitor::new("bed-1", bed(), PresenceSettings::default());
        assert!(m.set_reference(Lighting::Day, &room(1.0)));
        let covered = room_with_covered_patient();
        let empty_dim = room(0.75);
        let mut changes = Vec::new();
        for s in (0..120).step_by(3) {
            changes.extend(m.observe(&covered, &[], Lighting::Day, t(s)).change);
        }
        let update = m.observe(&empty_dim, &[person([215.0, 60.0, 265.0, 220.0])], Lighting::Day, t(120));
        assert!(!update.evidence.occupied && !update.evidence.detector && update.evidence.changed.is_some());
        for s in (123..300).step_by(3) {
            changes.extend(m.observe(&empty_dim, &[], Lighting::Day, t(s)).change);
        }
        assert_eq!(
            changes,
            vec![
                StateChange { from: Occupancy::Unknown, to: Occupancy::Occupied, at: t(0) },
                StateChange { from: Occupancy::Occupied, to: Occupancy::Empty, at: t(120) },
            ]
        );
        // With a person box in the bed the reference is not consulted.
        let u = m.observe(&empty_dim, &[person([110.0, 70.0, 205.0, 200.0])], Lighting::Day, t(301));
        assert!(u.evidence.detector && u.evidence.changed.is_none());
    }
}
