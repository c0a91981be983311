//! Box geometry shared by the MTCNN stages: non-maximum suppression,
//! squaring and regression, in the reference's pixel conventions.
//!
//! MTCNN comes from MATLAB, where a box `[x1, y1, x2, y2]` covers the pixels
//! `x1..=x2`, so widths and areas carry a `+ 1`. Keeping that convention is
//! what makes kao's boxes match the reference's to the pixel.

/// A box `[x1, y1, x2, y2]` in source pixels.
pub type Bbox = [f64; 4];

/// How two boxes' overlap is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overlap {
    /// Intersection over union.
    Union,
    /// Intersection over the smaller box: also suppresses a box nested
    /// inside a larger one, which O-Net's final pass wants.
    Min,
}

/// Greedy non-maximum suppression. Returns the indices kept, best score
/// first. A box is dropped when its overlap with a kept box exceeds
/// `threshold`.
pub fn nms(boxes: &[Bbox], scores: &[f64], threshold: f64, method: Overlap) -> Vec<usize> {
    debug_assert_eq!(boxes.len(), scores.len());
    // Ascending stable sort, taken from the back: among equal scores the
    // later box wins, as in the reference.
    let mut order: Vec<usize> = (0..boxes.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let area = |b: &Bbox| (b[2] - b[0] + 1.0) * (b[3] - b[1] + 1.0);

    let mut keep = Vec::new();
    while let Some(best) = order.pop() {
        keep.push(best);
        let a = &boxes[best];
        order.retain(|&other| {
            let b = &boxes[other];
            let w = (a[2].min(b[2]) - a[0].max(b[0]) + 1.0).max(0.0);
            let h = (a[3].min(b[3]) - a[1].max(b[1]) + 1.0).max(0.0);
            let inter = w * h;
            let overlap = match method {
                Overlap::Union => inter / (area(a) + area(b) - inter),
                Overlap::Min => inter / area(a).min(area(b)),
            };
            // Written so that a NaN overlap drops the box, as the reference does.
            overlap <= threshold
        });
    }
    keep
}

/// Grows a box to the square around its centre whose side is its longer
/// side (MTCNN's `rerec`; widths here have no `+ 1`).
pub fn square(b: Bbox) -> Bbox {
    let w = b[2] - b[0];
    let h = b[3] - b[1];
    let side = w.max(h);
    let x1 = b[0] + w * 0.5 - side * 0.5;
    let y1 = b[1] + h * 0.5 - side * 0.5;
    [x1, y1, x1 + side, y1 + side]
}

/// Applies a refinement network's offsets, relative to the box size.
pub fn regress(b: Bbox, reg: [f64; 4]) -> Bbox {
    let w = b[2] - b[0] + 1.0;
    let h = b[3] - b[1] + 1.0;
    [
        b[0] + reg[0] * w,
        b[1] + reg[1] * h,
        b[2] + reg[2] * w,
        b[3] + reg[3] * h,
    ]
}

/// Truncates every coordinate toward zero, as the reference does before
/// cropping.
pub fn truncate(b: Bbox) -> Bbox {
    b.map(f64::trunc)
}

/// Intersection over union of two boxes in continuous coordinates, used to
/// compare detections with each other (not part of the MTCNN algorithm).
pub fn iou(a: &Bbox, b: &Bbox) -> f64 {
    let w = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let h = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = w * h;
    let union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter;
    if union > 0.0 {
        inter / union
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nms_keeps_best_of_overlapping_and_all_disjoint() {
        let boxes = [
            [0.0, 0.0, 9.0, 9.0],
            [1.0, 1.0, 10.0, 10.0],
            [50.0, 50.0, 59.0, 59.0],
        ];
        let scores = [0.8, 0.9, 0.7];
        // Boxes 0 and 1 overlap with IoU 81/119 = 0.68.
        assert_eq!(nms(&boxes, &scores, 0.5, Overlap::Union), vec![1, 2]);
        assert_eq!(nms(&boxes, &scores, 0.7, Overlap::Union), vec![1, 0, 2]);
    }

    #[test]
    fn nms_min_suppresses_a_box_nested_in_a_larger_one() {
        let boxes = [[0.0, 0.0, 99.0, 99.0], [10.0, 10.0, 29.0, 29.0]];
        let scores = [0.9, 0.95];
        // IoU is 400/10000 = 0.04, but intersection over the smaller box is 1.
        assert_eq!(nms(&boxes, &scores, 0.7, Overlap::Union).len(), 2);
        assert_eq!(nms(&boxes, &scores, 0.7, Overlap::Min), vec![1]);
    }

    #[test]
    fn nms_of_nothing_is_nothing() {
        assert!(nms(&[], &[], 0.5, Overlap::Union).is_empty());
    }

    #[test]
    fn nms_tie_goes_to_the_later_box() {
        let boxes = [[0.0, 0.0, 9.0, 9.0], [0.0, 0.0, 9.0, 9.0]];
        assert_eq!(nms(&boxes, &[0.5, 0.5], 0.5, Overlap::Union), vec![1]);
    }

    #[test]
    fn square_keeps_centre_and_takes_longer_side() {
        let s = square([10.0, 20.0, 30.0, 60.0]);
        assert_eq!(s, [0.0, 20.0, 40.0, 60.0]);
        assert_eq!((s[0] + s[2]) / 2.0, 20.0);
    }

    #[test]
    fn regress_scales_offsets_by_inclusive_size() {
        // Width and height are 10 with the +1 convention.
        let b = regress([0.0, 0.0, 9.0, 9.0], [0.1, -0.2, 0.5, 1.0]);
        assert_eq!(b, [1.0, -2.0, 14.0, 19.0]);
    }

    #[test]
    fn truncate_goes_toward_zero() {
        assert_eq!(truncate([-1.7, 1.7, -0.2, 2.0]), [-1.0, 1.0, -0.0, 2.0]);
    }

    #[test]
    fn iou_of_identical_disjoint_and_half_overlapping() {
        let a = [0.0, 0.0, 10.0, 10.0];
        assert_eq!(iou(&a, &a), 1.0);
        assert_eq!(iou(&a, &[20.0, 20.0, 30.0, 30.0]), 0.0);
        assert!((iou(&a, &[5.0, 0.0, 15.0, 10.0]) - 1.0 / 3.0).abs() < 1e-12);
    }
}
