//! `vigil bench search`: 1:N search over synthetic 128-d embeddings.

use std::time::Instant;

use serde::Serialize;

use crate::gallery::search::SearchIndex;
use crate::gallery::{Entry, Role};

#[derive(Debug, Serialize)]
pub struct SearchBench {
    pub entries: usize,
    pub queries: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Queries that were copies (plus noise) of an enrolled embedding and found it.
    pub recall_of_planted: f64,
}

/// xorshift: reproducible synthetic data without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        // Roughly normal (sum of uniforms), scaled like dlib embeddings (|v| ≈ 1).
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.3
    }
}

pub fn search(entries: usize, queries: usize) -> SearchBench {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let gallery: Vec<Entry> = (0..entries)
        .map(|i| Entry {
            id: format!("p-{i}"),
            role: if i % 10 == 0 { Role::Physician } else { Role::Patient },
            embeddings: vec![(0..128).map(|_| rng.next()).collect()],
            quality: 1.0,
            enrolled_at: String::new(),
        })
        .collect();
    let index = SearchIndex::build(&gallery);
    let mut times = Vec::with_capacity(queries);
    let mut found = 0;
    for q in 0..queries {
        let target = (q * 7919) % entries;
        let query: Vec<f32> = gallery[target].embeddings[0].iter().map(|v| v + rng.next() * 0.05).collect();
        let t = Instant::now();
        let best = index.best(&query, None);
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        if best.is_some_and(|m| m.id == gallery[target].id) {
            found += 1;
        }
    }
    times.sort_by(f64::total_cmp);
    let pct = |p: f64| times[((times.len() as f64 - 1.0) * p).round() as usize];
    SearchBench {
        entries,
        queries,
        p50_ms: pct(0.5),
        p99_ms: pct(0.99),
        max_ms: times[times.len() - 1],
        recall_of_planted: found as f64 / queries as f64,
    }
}
