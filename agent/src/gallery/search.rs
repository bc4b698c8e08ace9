//! 1:N search: the nearest enrolled embedding to a query, by brute force over a flat, contiguous matrix —
//! no index to maintain, predictable. The scan is memory-bound (100,000 × 128 f32 = 51 MB, ~1.8 ms here),
//! so it reads a bfloat16 copy (half the bytes; widening is a shift, cheap on any CPU; relative error
//! ≤ 0.4 % per component, far below the gap between people) and reports the exact f32 distance of the row
//! it picks; large galleries are split across the cores. (8/16-bit integer copies were measured slower:
//! baseline x86-64 lacks a cheap widening multiply for them.)

use super::{Entry, Role};

pub struct SearchIndex {
    /// Row-major, 128 floats per embedding.
    data: Vec<f32>,
    /// The same in bfloat16 (the upper half of each f32, rounded): half the bytes to scan.
    scan: Vec<u16>,
    /// For each row, the index of its entry.
    owner: Vec<u32>,
    ids: Vec<String>,
    roles: Vec<Role>,
}

/// The best match of a query.
#[derive(Debug, Clone, PartialEq)]
pub struct Match {
    pub id: String,
    pub role: Role,
    pub distance: f32,
}

const DIM: usize = 128;
/// Below this many embeddings one thread is faster than spawning more.
const PARALLEL_ROWS: usize = 20_000;

fn to_bf16(v: f32) -> u16 {
    let bits = v.to_bits();
    // Round to nearest (ties away): add half of the dropped part before truncating.
    ((bits + 0x8000) >> 16) as u16
}

fn squared_distance_bf16(a: &[f32], b: &[u16]) -> f32 {
    let mut acc = [0f32; 8];
    for (ca, cb) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
        for i in 0..8 {
            let d = ca[i] - f32::from_bits(u32::from(cb[i]) << 16);
            acc[i] += d * d;
        }
    }
    acc.iter().sum()
}

fn squared_distance(a: &[f32], b: &[f32]) -> f32 {
    // Eight independent accumulators let the compiler use SIMD lanes without reassociation.
    let mut acc = [0f32; 8];
    for (ca, cb) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
        for i in 0..8 {
            let d = ca[i] - cb[i];
            acc[i] += d * d;
        }
    }
    acc.iter().sum()
}

impl SearchIndex {
    pub fn build(entries: &[Entry]) -> SearchIndex {
        let mut index =
            SearchIndex { data: Vec::new(), scan: Vec::new(), owner: Vec::new(), ids: Vec::new(), roles: Vec::new() };
        for (i, entry) in entries.iter().enumerate() {
            index.ids.push(entry.id.clone());
            index.roles.push(entry.role);
            for e in entry.embeddings.iter().filter(|e| e.len() == DIM) {
                index.data.extend_from_slice(e);
                index.scan.extend(e.iter().map(|v| to_bf16(*v)));
                index.owner.push(i as u32);
            }
        }
        index
    }

    pub fn len(&self) -> usize {
        self.owner.len()
    }

    pub fn is_empty(&self) -> bool {
        self.owner.is_empty()
    }

    /// The nearest embedding's person, optionally among one role only.
    pub fn best(&self, query: &[f32], role: Option<Role>) -> Option<Match> {
        assert_eq!(query.len(), DIM);
        let rows = self.owner.len();
        let scan = |from: usize, to: usize| {
            let mut best = (f32::INFINITY, usize::MAX);
            for (offset, chunk) in self.scan[from * DIM..to * DIM].chunks_exact(DIM).enumerate() {
                let d = squared_distance_bf16(query, chunk);
                let row = from + offset;
                if d < best.0 && role.is_none_or(|r| self.roles[self.owner[row] as usize] == r) {
                    best = (d, row);
                }
            }
            best
        };
        let threads =
            if rows >= PARALLEL_ROWS { std::thread::available_parallelism().map_or(1, |n| n.get()).min(4) } else { 1 };
        let best = if threads == 1 {
            scan(0, rows)
        } else {
            let per = rows.div_ceil(threads);
            std::thread::scope(|s| {
                let handles: Vec<_> =
                    (0..threads).map(|t| s.spawn(move || scan(t * per, ((t + 1) * per).min(rows)))).collect();
                handles
                    .into_iter()
                    .filter_map(|h| h.join().ok())
                    .fold((f32::INFINITY, usize::MAX), |a, b| if b.0 < a.0 { b } else { a })
            })
        };
        (best.1 != usize::MAX).then(|| {
            let owner = self.owner[best.1] as usize;
            // Report the exact distance of the row found (bfloat16 only chose it).
            let exact = squared_distance(query, &self.data[best.1 * DIM..(best.1 + 1) * DIM]);
            Match { id: self.ids[owner].clone(), role: self.roles[owner], distance: exact.sqrt() }
        })
    }

    /// Distance from the query to a given person's nearest embedding.
    pub fn distance_to(&self, query: &[f32], id: &str) -> Option<f32> {
        let owner = self.ids.iter().position(|i| i == id)? as u32;
        self.data
            .chunks_exact(DIM)
            .zip(&self.owner)
            .filter(|(_, o)| **o == owner)
            .map(|(row, _)| squared_distance(query, row))
            .reduce(f32::min)
            .map(f32::sqrt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_nearest_person_and_filters_by_role() {
        let mk = |id: &str, role, v: f32| Entry {
            id: id.into(),
            role,
            embeddings: vec![vec![v; DIM]],
            quality: 1.0,
            enrolled_at: String::new(),
        };
        let index = SearchIndex::build(&[
            mk("a", Role::Patient, 0.0),
            mk("b", Role::Physician, 0.1),
            mk("c", Role::Patient, 0.5),
        ]);
        let q = vec![0.09; DIM];
        let m = index.best(&q, None).unwrap();
        assert_eq!(m.id, "b");
        assert!((m.distance - (0.01f32 * 0.01 * DIM as f32).sqrt()).abs() < 1e-4);
        assert_eq!(index.best(&q, Some(Role::Patient)).unwrap().id, "a");
        assert!((index.distance_to(&q, "c").unwrap() - (0.41f32 * 0.41 * DIM as f32).sqrt()).abs() < 1e-3);
    }
}
