//! `vigil bench search`: 1:N search over synthetic 128-d embeddings.
//!
//! `--rounds N` repeats the measurement; `--compare` also times the previous implementation (bfloat16
//! scan, threads spawned per query, kept below as [`Bf16Baseline`]) on the same gallery and queries,
//! alternating which goes first each round, so both see the same machine noise. `--cold` reads 64 MB
//! between queries (untimed), evicting the gallery from the caches as video decoding would.

use std::time::Instant;

use serde::Serialize;

use vigil::gallery::search::{Match, SearchIndex};
use vigil::gallery::{Entry, PersonKind};

/// Latency percentiles of one round, milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Round {
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// One implementation's figures: each round, and the median of each percentile over the rounds.
#[derive(Debug, Serialize)]
pub struct Figures {
    pub median_p50_ms: f64,
    pub median_p90_ms: f64,
    pub median_p99_ms: f64,
    pub median_max_ms: f64,
    /// Queries that were copies (plus noise) of an enrolled embedding and found it (all rounds).
    pub recall_of_planted: f64,
    pub rounds: Vec<Round>,
}

#[derive(Debug, Serialize)]
pub struct SearchBench {
    pub entries: usize,
    /// Timed queries per round (after `warmup` untimed ones).
    pub queries: usize,
    pub warmup: usize,
    pub rounds: usize,
    /// Caches flushed (64 MB read) before each query.
    pub cold: bool,
    /// The current search (`SearchIndex`).
    pub int8: Figures,
    /// The previous search, with `--compare`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bf16_baseline: Option<Figures>,
    /// With `--compare`: queries whose match differed between the two (id or distance).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disagreements: Option<usize>,
    /// SHA-256 of every query's match (id, role, exact distance), unfiltered and among physicians: two
    /// machines' searches agree exactly iff these do (x86-64 with AVX2 against ARM64 with NEON in
    /// tests/arm64.rs).
    pub results_sha256: String,
}

/// xorshift: reproducible synthetic embeddings without a dependency (the search and gallery benches).
pub(super) struct Rng(pub(super) u64);

impl Rng {
    pub(super) fn next(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        // Uniform in ±0.15, every mantissa bit used (dlib embeddings: |v| ≲ 0.3).
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.3
    }
}

const WARMUP: usize = 20;

pub fn search(entries: usize, queries: usize, rounds: usize, compare: bool, cold: bool) -> SearchBench {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let gallery: Vec<Entry> = (0..entries)
        .map(|i| Entry {
            id: format!("p-{i}"),
            role: if i % 10 == 0 { PersonKind::Physician } else { PersonKind::Patient },
            embeddings: vec![(0..128).map(|_| rng.next()).collect()],
            quality: 1.0,
            enrolled_at: String::new(),
        })
        .collect();
    let index = SearchIndex::build(&gallery);
    let baseline = compare.then(|| Bf16Baseline::build(&gallery));
    let targets: Vec<usize> = (0..queries).map(|q| (q * 7919) % entries).collect();
    let query_set: Vec<Vec<f32>> =
        targets.iter().map(|t| gallery[*t].embeddings[0].iter().map(|v| v + rng.next() * 0.05).collect()).collect();
    let flush = cold.then(|| vec![1u64; 8 << 20]);
    let flush = flush.as_deref();
    let planted = |results: &[Option<Match>]| {
        results.iter().zip(&targets).filter(|(m, t)| m.as_ref().is_some_and(|m| m.id == gallery[**t].id)).count()
    };

    let (mut new_rounds, mut old_rounds) = (Vec::new(), Vec::new());
    let (mut new_found, mut old_found, mut disagreements) = (0, 0, 0);
    for round in 0..rounds {
        let run_new = || time(&query_set, flush, |q| index.best(q, None));
        let mut new = None;
        let mut old = None;
        // Alternate which goes first: caches and the neighbour's compile jobs favour neither.
        if round % 2 == 1 {
            new = Some(run_new());
        }
        if let Some(b) = &baseline {
            old = Some(time(&query_set, flush, |q| b.best(q)));
        }
        if new.is_none() {
            new = Some(run_new());
        }
        let (stats, results) = new.unwrap_or_default();
        new_found += planted(&results);
        new_rounds.push(stats);
        if let Some((stats, old_results)) = old {
            old_found += planted(&old_results);
            disagreements += results.iter().zip(&old_results).filter(|(a, b)| a != b).count();
            old_rounds.push(stats);
        }
    }
    // Untimed. `{:?}` prints each distance in the shortest form that reads back to the same bits.
    let mut matches = String::new();
    for q in &query_set {
        for role in [None, Some(PersonKind::Physician)] {
            matches.push_str(&format!("{:?}\n", index.best(q, role)));
        }
    }
    let total = (queries * rounds) as f64;
    SearchBench {
        entries,
        queries,
        warmup: WARMUP,
        rounds,
        cold,
        int8: figures(new_rounds, new_found as f64 / total),
        bf16_baseline: compare.then(|| figures(old_rounds, old_found as f64 / total)),
        disagreements: compare.then_some(disagreements),
        results_sha256: vigil::hashing::sha256_hex(matches.as_bytes()),
    }
}

/// Times each query (after a few untimed ones: page faults, the helper threads' first start).
fn time(
    queries: &[Vec<f32>],
    flush: Option<&[u64]>,
    mut best: impl FnMut(&[f32]) -> Option<Match>,
) -> (Round, Vec<Option<Match>>) {
    for q in queries.iter().cycle().take(WARMUP) {
        std::hint::black_box(best(q));
    }
    let mut times = Vec::with_capacity(queries.len());
    let mut results = Vec::with_capacity(queries.len());
    for q in queries {
        if let Some(buffer) = flush {
            std::hint::black_box(buffer.iter().fold(0u64, |a, b| a.wrapping_add(*b)));
        }
        let t = Instant::now();
        let m = best(q);
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        results.push(m);
    }
    times.sort_by(f64::total_cmp);
    let pct = |p: f64| times[((times.len() as f64 - 1.0) * p).round() as usize];
    (Round { p50_ms: pct(0.5), p90_ms: pct(0.9), p99_ms: pct(0.99), max_ms: times[times.len() - 1] }, results)
}

impl Default for Round {
    fn default() -> Round {
        Round { p50_ms: f64::NAN, p90_ms: f64::NAN, p99_ms: f64::NAN, max_ms: f64::NAN }
    }
}

fn figures(rounds: Vec<Round>, recall: f64) -> Figures {
    let median = |f: fn(&Round) -> f64| {
        let mut v: Vec<f64> = rounds.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
    };
    Figures {
        median_p50_ms: median(|r| r.p50_ms),
        median_p90_ms: median(|r| r.p90_ms),
        median_p99_ms: median(|r| r.p99_ms),
        median_max_ms: median(|r| r.max_ms),
        recall_of_planted: recall,
        rounds,
    }
}

/// The search before the int8 scan (kept verbatim for `--compare`): a bfloat16 copy scanned, split over
/// the cores with threads spawned per query (`std::thread::scope`) from 20,000 rows, exact f32 distance
/// of the row picked. No role filter (the benchmark does not use one).
struct Bf16Baseline {
    data: Vec<f32>,
    scan: Vec<u16>,
    ids: Vec<String>,
    roles: Vec<PersonKind>,
}

impl Bf16Baseline {
    const DIM: usize = 128;

    fn build(entries: &[Entry]) -> Bf16Baseline {
        let to_bf16 = |v: f32| ((v.to_bits() + 0x8000) >> 16) as u16;
        let mut b = Bf16Baseline { data: Vec::new(), scan: Vec::new(), ids: Vec::new(), roles: Vec::new() };
        for entry in entries {
            // The benchmark's gallery has exactly one embedding per entry: row = entry.
            b.ids.push(entry.id.clone());
            b.roles.push(entry.role);
            b.data.extend_from_slice(&entry.embeddings[0]);
            b.scan.extend(entry.embeddings[0].iter().map(|v| to_bf16(*v)));
        }
        b
    }

    fn best(&self, query: &[f32]) -> Option<Match> {
        const DIM: usize = Bf16Baseline::DIM;
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
        use vigil::gallery::search::squared_distance;
        let rows = self.ids.len();
        let scan = |from: usize, to: usize| {
            let mut best = (f32::INFINITY, usize::MAX);
            for (offset, chunk) in self.scan[from * DIM..to * DIM].chunks_exact(DIM).enumerate() {
                let d = squared_distance_bf16(query, chunk);
                if d < best.0 {
                    best = (d, from + offset);
                }
            }
            best
        };
        let threads =
            if rows >= 20_000 { std::thread::available_parallelism().map_or(1, |n| n.get()).min(4) } else { 1 };
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
            let exact = squared_distance(query, &self.data[best.1 * DIM..(best.1 + 1) * DIM]);
            Match { id: self.ids[best.1].clone(), role: self.roles[best.1], distance: exact.sqrt() }
        })
    }
}
