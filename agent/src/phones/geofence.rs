//! Where a check-in may be made: is a WGS-84 point inside a ward's geofence, and if not, how far
//! outside. A circle is judged by great-circle (haversine) distance from its centre; a polygon in a local
//! equirectangular projection around its first corner (metres east and north: a ward is at most a few
//! hundred metres across, where the projection's error is centimetres), by the even-odd rule and the
//! distance to its nearest edge.
//!
//! The phone's position is a circle too (the browser's accuracy radius): a point outside by no more
//! than its accuracy may be inside, and is given the benefit of the doubt (`within_accuracy`);
//! `[phones] max_accuracy_m` stops a vague position from covering a whole district.

use super::report::{Check, CheckName, Position};
use super::settings::Geofence;

/// Mean earth radius (IUGG), metres.
pub const EARTH_RADIUS_M: f64 = 6_371_008.8;

/// Great-circle distance in metres between two `[latitude, longitude]` points in degrees.
pub fn haversine_m(a: [f64; 2], b: [f64; 2]) -> f64 {
    let (la1, la2) = (a[0].to_radians(), b[0].to_radians());
    let dlat = la2 - la1;
    let dlon = (b[1] - a[1]).to_radians();
    let h = (dlat / 2.0).sin().powi(2) + la1.cos() * la2.cos() * (dlon / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_M * h.sqrt().min(1.0).asin()
}

/// Metres east and north of `origin`, equirectangular (longitude scaled by the origin's latitude).
fn project(origin: [f64; 2], p: [f64; 2]) -> [f64; 2] {
    // Across the antimeridian the short way round.
    let dlon = (p[1] - origin[1] + 540.0).rem_euclid(360.0) - 180.0;
    let m_per_deg = EARTH_RADIUS_M * std::f64::consts::PI / 180.0;
    [dlon * m_per_deg * origin[0].to_radians().cos(), (p[0] - origin[0]) * m_per_deg]
}

/// Distance from `p` to the segment `a`–`b` in the plane.
fn segment_distance(p: [f64; 2], a: [f64; 2], b: [f64; 2]) -> f64 {
    let (dx, dy) = (b[0] - a[0], b[1] - a[1]);
    let len2 = dx * dx + dy * dy;
    let t = if len2 > 0.0 { (((p[0] - a[0]) * dx + (p[1] - a[1]) * dy) / len2).clamp(0.0, 1.0) } else { 0.0 };
    let (cx, cy) = (a[0] + t * dx, a[1] + t * dy);
    ((p[0] - cx).powi(2) + (p[1] - cy).powi(2)).sqrt()
}

/// Even-odd rule: a ray from `p` eastwards crosses the boundary an odd number of times when inside.
fn inside_polygon(p: [f64; 2], corners: &[[f64; 2]]) -> bool {
    let mut inside = false;
    for (i, a) in corners.iter().enumerate() {
        let b = corners[(i + 1) % corners.len()];
        if (a[1] > p[1]) != (b[1] > p[1]) {
            let x = a[0] + (p[1] - a[1]) / (b[1] - a[1]) * (b[0] - a[0]);
            if p[0] < x {
                inside = !inside;
            }
        }
    }
    inside
}

/// How far outside the fence `point` (`[latitude, longitude]`) lies, in metres: 0 inside. `None` for a
/// fence that is neither a circle nor a polygon of three or more corners (config validation refuses
/// those; a check never guesses).
pub fn outside_by_m(fence: &Geofence, point: [f64; 2]) -> Option<f64> {
    match (&fence.center, fence.radius_m, &fence.polygon) {
        (Some(center), Some(radius), None) => Some((haversine_m(*center, point) - radius).max(0.0)),
        (None, None, Some(corners)) if corners.len() >= 3 => {
            let origin = corners[0];
            let plane: Vec<[f64; 2]> = corners.iter().map(|c| project(origin, *c)).collect();
            let p = project(origin, point);
            if inside_polygon(p, &plane) {
                return Some(0.0);
            }
            let nearest = (0..plane.len())
                .map(|i| segment_distance(p, plane[i], plane[(i + 1) % plane.len()]))
                .fold(f64::INFINITY, f64::min);
            Some(nearest)
        }
        _ => None,
    }
}

/// The `geofence` check of a position the `position` check accepted.
pub fn judge(ward: &str, fence: &Geofence, position: &Position) -> Check {
    let name = CheckName::Geofence;
    let Some(outside) = outside_by_m(fence, [position.lat, position.lon]) else {
        return Check::failed(name, "no_geofence", format!("Ward {ward:?} has no usable geofence."));
    };
    let check = if outside == 0.0 {
        Check::passed(name, "inside", format!("The position is inside ward {ward:?}'s geofence."))
    } else if outside <= position.accuracy_m {
        Check::passed(
            name,
            "within_accuracy",
            format!(
                "The position is {outside:.0} m outside ward {ward:?}'s geofence, within its accuracy of {:.0} m.",
                position.accuracy_m
            ),
        )
    } else {
        Check::failed(
            name,
            "outside_geofence",
            format!(
                "The position is {outside:.0} m outside ward {ward:?}'s geofence, more than its accuracy of {:.0} m.",
                position.accuracy_m
            ),
        )
    };
    check.with("distance_outside_m", format!("{outside:.1}")).with("accuracy_m", format!("{:.1}", position.accuracy_m))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Metres per degree of latitude on the mean sphere.
    const M_PER_DEG: f64 = EARTH_RADIUS_M * std::f64::consts::PI / 180.0;

    /// `p` moved `north` and `east` metres.
    fn offset(p: [f64; 2], north: f64, east: f64) -> [f64; 2] {
        [p[0] + north / M_PER_DEG, p[1] + east / (M_PER_DEG * p[0].to_radians().cos())]
    }

    fn circle(center: [f64; 2], radius_m: f64) -> Geofence {
        Geofence { center: Some(center), radius_m: Some(radius_m), polygon: None }
    }

    fn polygon(corners: Vec<[f64; 2]>) -> Geofence {
        Geofence { center: None, radius_m: None, polygon: Some(corners) }
    }

    #[test]
    fn haversine_matches_known_distances() {
        // Tiananmen (Beijing) to the Bund (Shanghai): 1,067 km along the great circle.
        let d = haversine_m([39.9087, 116.3975], [31.2400, 121.4900]);
        assert!((d - 1_067_000.0).abs() < 3_000.0, "{d}");
        // One minute of latitude is a nautical mile, about 1,853 m on this sphere.
        let d = haversine_m([31.0, 121.0], [31.0 + 1.0 / 60.0, 121.0]);
        assert!((d - 1853.2).abs() < 1.0, "{d}");
        assert_eq!(haversine_m([31.2, 121.4], [31.2, 121.4]), 0.0);
    }

    /// Peking Union Medical College Hospital's east campus, Dongcheng, Beijing: a block about 250 m
    /// east–west by 200 m north–south (corners surveyed from a map, clockwise from the north-west).
    fn hospital_block() -> Vec<[f64; 2]> {
        vec![[39.9140, 116.4155], [39.9140, 116.4185], [39.9122, 116.4185], [39.9122, 116.4155]]
    }

    #[test]
    fn polygon_inside_and_outside_by_10_and_200_m() {
        let fence = polygon(hospital_block());
        let centre = [39.9131, 116.4170];
        assert_eq!(outside_by_m(&fence, centre), Some(0.0));
        // Due north of the north edge (latitude 39.9140).
        let edge = [39.9140, 116.4170];
        let ten = outside_by_m(&fence, offset(edge, 10.0, 0.0)).unwrap();
        let two_hundred = outside_by_m(&fence, offset(edge, 200.0, 0.0)).unwrap();
        assert!((ten - 10.0).abs() < 0.05, "{ten}");
        assert!((two_hundred - 200.0).abs() < 0.2, "{two_hundred}");
        // East of the east edge: longitude metres shrink with cos(latitude), the projection accounts for it.
        let east = outside_by_m(&fence, offset([39.9131, 116.4185], 0.0, 10.0)).unwrap();
        assert!((east - 10.0).abs() < 0.05, "{east}");
        // Diagonally off the south-east corner: distance to the corner.
        let corner = outside_by_m(&fence, offset([39.9122, 116.4185], -30.0, 40.0)).unwrap();
        assert!((corner - 50.0).abs() < 0.1, "{corner}");
    }

    #[test]
    fn concave_polygon_notch_is_outside() {
        // An L-shaped building: the block above without its north-east quarter.
        let fence = polygon(vec![
            [39.9140, 116.4155],
            [39.9140, 116.4170],
            [39.9131, 116.4170],
            [39.9131, 116.4185],
            [39.9122, 116.4185],
            [39.9122, 116.4155],
        ]);
        // In the notch, 30 m east of the inner wall and well over 30 m from every other edge.
        let notch = offset([39.9136, 116.4170], 0.0, 30.0);
        let d = outside_by_m(&fence, notch).unwrap();
        assert!((d - 30.0).abs() < 0.1, "{d}");
        // The two arms are inside.
        assert_eq!(outside_by_m(&fence, [39.9137, 116.4160]), Some(0.0));
        assert_eq!(outside_by_m(&fence, [39.9125, 116.4180]), Some(0.0));
    }

    #[test]
    fn circle_by_haversine() {
        let centre = [31.2105, 121.4645];
        let fence = circle(centre, 150.0);
        assert_eq!(outside_by_m(&fence, offset(centre, 100.0, 0.0)), Some(0.0));
        let d = outside_by_m(&fence, offset(centre, 0.0, 160.0)).unwrap();
        assert!((d - 10.0).abs() < 0.05, "{d}");
        let d = outside_by_m(&fence, offset(centre, -350.0, 0.0)).unwrap();
        assert!((d - 200.0).abs() < 0.1, "{d}");
    }

    #[test]
    fn accuracy_gives_the_benefit_of_the_doubt_and_no_more() {
        let fence = polygon(hospital_block());
        let edge = [39.9140, 116.4170];
        let at = |north: f64, accuracy_m: f64| {
            let p = offset(edge, north, 0.0);
            judge("w3", &fence, &Position { lat: p[0], lon: p[1], accuracy_m })
        };
        let inside = at(-20.0, 15.0);
        assert_eq!((inside.outcome, inside.reason.as_str()), (super::super::Outcome::Passed, "inside"));
        assert_eq!(inside.facts["distance_outside_m"], "0.0");
        let near = at(10.0, 15.0);
        assert_eq!((near.outcome, near.reason.as_str()), (super::super::Outcome::Passed, "within_accuracy"));
        let far = at(200.0, 15.0);
        assert_eq!((far.outcome, far.reason.as_str()), (super::super::Outcome::Failed, "outside_geofence"));
        assert_eq!(far.facts["distance_outside_m"], "200.0");
        let bad = Geofence { center: None, radius_m: None, polygon: Some(vec![edge]) };
        assert_eq!(judge("w3", &bad, &Position { lat: 0.0, lon: 0.0, accuracy_m: 5.0 }).reason, "no_geofence");
    }

    #[test]
    fn across_the_antimeridian() {
        // Taveuni, Fiji: the 180th meridian runs through the island.
        let fence = polygon(vec![[-16.80, 179.99], [-16.80, -179.99], [-16.82, -179.99], [-16.82, 179.99]]);
        assert_eq!(outside_by_m(&fence, [-16.81, 180.0]), Some(0.0));
        assert_eq!(outside_by_m(&fence, [-16.81, -179.995]), Some(0.0));
        assert!(outside_by_m(&fence, [-16.81, 179.98]).unwrap() > 1000.0);
    }
}
