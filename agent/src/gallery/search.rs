//! 1:N search: the nearest enrolled embedding to a query, by brute force over a flat, contiguous matrix —
//! no index to maintain, predictable.
//!
//! The scan is memory-bound (100,000 × 128 f32 = 51 MB), so it reads an **int8 copy** (12.8 MB; it fits
//! the 32 MB L3 of the VM we measured on): one global symmetric scale `s = 127 / max |v|` over the
//! gallery, the query rounded with the same scale (kept in i16, so it is never clipped in practice).
//! Squared distances in code units are exact integers (AVX2: sign-extend to i16, subtract,
//! `_mm256_madd_epi16`, accumulate i32, selected at run time with `is_x86_feature_detected!`; ARM64: NEON,
//! always present there — sign-extend to i16, subtract, widening multiply-accumulate `smlal` into i32;
//! elsewhere a plain-Rust loop. All three give bit-identical results, tested, on ARM64 under qemu-user
//! (docs/arm64.md). The NEON kernel is not timed on a real ARM64 board yet; it exists because LLVM
//! leaves the plain loop scalar at the dev profile's opt-level 2 and, at 3, widens every code to i32
//! (about twice the instructions of `smlal` on i16). Each
//! thread keeps its [`CANDIDATES`] best rows (role filter applied there), and those are re-ranked by the
//! exact f32 distance: the reported match and distance are exactly the f32 nearest among the candidates.
//!
//! Error bound: every component is off by at most `0.5 / s` in the gallery and in the query, so the
//! quantised Euclidean distance of any row is within `ε = √128 / s` of the true one (triangle
//! inequality). Hence if the true best row beats every other row by more than `2ε`
//! ([`SearchIndex::winner_margin`]), it is strictly first in the quantised order and is returned — for
//! any candidate count; the re-ranking of 16 candidates per thread only makes closer calls right too.
//! For dlib-scale embeddings (max |v| ≈ 0.15–0.3) `2ε` ≈ 0.03–0.05, against dlib's 0.6 match threshold.
//!
//! Large galleries are split in chunks of `CHUNK_ROWS` (4,096) rows that the calling thread and a persistent
//! pool of helper threads (cores − 1, at most 3, idle threads sleep) claim one by one, so a late-waking
//! helper does not hold the query up (spawning threads per query, as before, cost more in the tail than it
//! saved).
//!
//! Measured at 100,000 rows on the 2-core x86-64 VM, old and new in the same runs (docs/benchmarks.md,
//! `vigil bench search --compare`, medians of 5 runs): the previous bfloat16 scan with threads spawned per
//! query p50 1.17 / p99 2.17 ms, this one p50 0.20 / p99 0.28 ms (cold caches: 1.38 / 2.57 against
//! 0.49 / 0.61 ms); int8 on one thread alone p99 ≈ 0.41 ms. An earlier note here said 8/16-bit integer
//! copies were slower (3.7–4.3 ms, without a vector kernel); with the `madd` kernel int8 is the fastest.
//!
//! Queries with a non-finite component or one beyond ±[`QUERY_LIMIT`] code units (31× the gallery's
//! largest value), and galleries with non-finite values, fall back to an exact f32 scan.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::{Entry, PersonKind};

pub struct SearchIndex {
    /// Row-major, 128 floats per embedding.
    data: Vec<f32>,
    /// The int8 copy scanned, shared with the helper threads; `None` if the gallery has non-finite values.
    quant: Option<Arc<Quantised>>,
    /// For each row, the index of its entry.
    owner: Vec<u32>,
    ids: Vec<String>,
    roles: Vec<PersonKind>,
}

/// The best match of a query.
#[derive(Debug, Clone, PartialEq)]
pub struct Match {
    pub id: String,
    pub role: PersonKind,
    pub distance: f32,
}

const DIM: usize = 128;
/// Below this many embeddings one thread is faster than waking others.
const PARALLEL_ROWS: usize = 20_000;
/// Rows per chunk claimed by a thread (512 KB of codes).
const CHUNK_ROWS: usize = 4096;
/// Rows whose code distances are computed in one kernel call before the best-K bookkeeping.
const BLOCK_ROWS: usize = 64;
/// Best rows kept per thread for the exact re-ranking.
pub const CANDIDATES: usize = 16;
/// Largest |query code|: with |gallery code| ≤ 127 every difference fits in ±4095, so 128 squares fit
/// in an i32 (128 × 4095² = 2,146,435,200 < 2³¹).
pub const QUERY_LIMIT: f32 = 3968.0;

struct Quantised {
    /// Row-major int8 codes, `round(v · scale)`.
    codes: Vec<i8>,
    /// Kind of person of each row (of its owner), checked only for rows that enter a thread's best-K.
    row_role: Vec<PersonKind>,
    scale: f32,
}

/// Squared Euclidean distance of two embeddings (also used by `vigil bench search`'s baseline).
pub fn squared_distance(a: &[f32], b: &[f32]) -> f32 {
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

/// Squared distances (in code units) from `query` to each row of `codes`, into `out`: portable version.
fn code_distances_portable(codes: &[i8], query: &[i16; DIM], out: &mut [i32]) {
    debug_assert_eq!(codes.len(), out.len() * DIM);
    for (row, o) in codes.chunks_exact(DIM).zip(out.iter_mut()) {
        let mut acc = [0i32; 16];
        for (c, q) in row.chunks_exact(16).zip(query.chunks_exact(16)) {
            for i in 0..16 {
                let d = i32::from(c[i]) - i32::from(q[i]);
                acc[i] += d * d;
            }
        }
        *o = acc.iter().sum();
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::DIM;

    /// Same as [`super::code_distances_portable`] (bit for bit: integer arithmetic, no overflow).
    ///
    /// # Safety
    /// The CPU must support AVX2, and `codes.len() == out.len() * DIM`.
    #[target_feature(enable = "avx2")]
    pub unsafe fn code_distances(codes: &[i8], query: &[i16; DIM], out: &mut [i32]) {
        assert_eq!(codes.len(), out.len() * DIM);
        unsafe {
            let qp = query.as_ptr() as *const __m256i;
            let q = [
                _mm256_loadu_si256(qp),
                _mm256_loadu_si256(qp.add(1)),
                _mm256_loadu_si256(qp.add(2)),
                _mm256_loadu_si256(qp.add(3)),
                _mm256_loadu_si256(qp.add(4)),
                _mm256_loadu_si256(qp.add(5)),
                _mm256_loadu_si256(qp.add(6)),
                _mm256_loadu_si256(qp.add(7)),
            ];
            let base = codes.as_ptr();
            let rows = out.len();
            // One row: 8 × (16 codes → i16, minus the query, pairwise squares summed into i32 lanes).
            let row_acc = |row: *const i8| {
                let mut acc = _mm256_setzero_si256();
                for (i, qi) in q.iter().enumerate() {
                    let g = _mm256_cvtepi8_epi16(_mm_loadu_si128(row.add(i * 16) as *const __m128i));
                    let d = _mm256_sub_epi16(g, *qi);
                    acc = _mm256_add_epi32(acc, _mm256_madd_epi16(d, d));
                }
                acc
            };
            let mut r = 0;
            while r + 4 <= rows {
                let a0 = row_acc(base.add(r * DIM));
                let a1 = row_acc(base.add((r + 1) * DIM));
                let a2 = row_acc(base.add((r + 2) * DIM));
                let a3 = row_acc(base.add((r + 3) * DIM));
                // Horizontal sums of four rows at once: lane k of the result is row k.
                let s = _mm256_hadd_epi32(_mm256_hadd_epi32(a0, a1), _mm256_hadd_epi32(a2, a3));
                let sum = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256::<1>(s));
                _mm_storeu_si128(out.as_mut_ptr().add(r) as *mut __m128i, sum);
                r += 4;
            }
            while r < rows {
                let a = row_acc(base.add(r * DIM));
                let h = _mm_add_epi32(_mm256_castsi256_si128(a), _mm256_extracti128_si256::<1>(a));
                let h = _mm_add_epi32(h, _mm_shuffle_epi32::<0b01_00_11_10>(h));
                let h = _mm_add_epi32(h, _mm_shuffle_epi32::<0b10_11_00_01>(h));
                out[r] = _mm_cvtsi128_si32(h);
                r += 1;
            }
        }
    }
}

#[cfg(target_arch = "aarch64")]
mod neon {
    use std::arch::aarch64::*;

    use super::DIM;

    /// Same as [`super::code_distances_portable`] (bit for bit: integer arithmetic, no overflow). NEON is
    /// part of the ARMv8-A base architecture, so there is nothing to detect. Per 16 codes: widen to two
    /// i16 vectors, subtract the query, square and accumulate into i32 lanes with the widening
    /// multiply-accumulate (`smlal`/`smlal2`); four accumulators so consecutive rows overlap.
    pub fn code_distances(codes: &[i8], query: &[i16; DIM], out: &mut [i32]) {
        assert_eq!(codes.len(), out.len() * DIM);
        // SAFETY: NEON is enabled for every aarch64 target Rust builds for; the query loads read its
        // 16 × 8 lanes, and row `r` reads codes[r·DIM .. (r+1)·DIM], in bounds by the assert above.
        unsafe {
            let qp = query.as_ptr();
            let mut q = [vdupq_n_s16(0); DIM / 8];
            for (i, qi) in q.iter_mut().enumerate() {
                *qi = vld1q_s16(qp.add(i * 8));
            }
            for (r, o) in out.iter_mut().enumerate() {
                let row = codes.as_ptr().add(r * DIM);
                let mut acc = [vdupq_n_s32(0); 4];
                for i in 0..DIM / 16 {
                    let c = vld1q_s8(row.add(i * 16));
                    let lo = vsubq_s16(vmovl_s8(vget_low_s8(c)), q[2 * i]);
                    let hi = vsubq_s16(vmovl_high_s8(c), q[2 * i + 1]);
                    acc[0] = vmlal_s16(acc[0], vget_low_s16(lo), vget_low_s16(lo));
                    acc[1] = vmlal_high_s16(acc[1], lo, lo);
                    acc[2] = vmlal_s16(acc[2], vget_low_s16(hi), vget_low_s16(hi));
                    acc[3] = vmlal_high_s16(acc[3], hi, hi);
                }
                *o = vaddvq_s32(vaddq_s32(vaddq_s32(acc[0], acc[1]), vaddq_s32(acc[2], acc[3])));
            }
        }
    }
}

/// Squared code distances, with the fastest kernel this CPU has.
fn code_distances(codes: &[i8], query: &[i16; DIM], out: &mut [i32]) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") && !tests::portable_only() {
        // SAFETY: AVX2 was detected at run time; the lengths are checked inside.
        unsafe { avx2::code_distances(codes, query, out) };
        return;
    }
    #[cfg(target_arch = "aarch64")]
    if !tests::portable_only() {
        neon::code_distances(codes, query, out);
        return;
    }
    code_distances_portable(codes, query, out)
}

/// The `CANDIDATES` smallest (code distance, row) seen, sorted ascending.
struct BestK {
    items: [(i32, u32); CANDIDATES],
    len: usize,
}

impl BestK {
    fn new() -> BestK {
        BestK { items: [(i32::MAX, u32::MAX); CANDIDATES], len: 0 }
    }

    /// Rows at or above this code distance cannot enter.
    fn bound(&self) -> i32 {
        if self.len < CANDIDATES { i32::MAX } else { self.items[CANDIDATES - 1].0 }
    }

    fn insert(&mut self, d: i32, row: u32) {
        let mut i = self.len.min(CANDIDATES - 1);
        self.len = (self.len + 1).min(CANDIDATES);
        while i > 0 && self.items[i - 1].0 > d {
            self.items[i] = self.items[i - 1];
            i -= 1;
        }
        self.items[i] = (d, row);
    }

    fn rows(&self) -> impl Iterator<Item = u32> + '_ {
        self.items[..self.len].iter().map(|(_, r)| *r)
    }
}

impl Quantised {
    /// Scans rows `from..to` into `best`.
    fn scan(&self, query: &[i16; DIM], role: Option<PersonKind>, from: usize, to: usize, best: &mut BestK) {
        let mut dist = [0i32; BLOCK_ROWS];
        let mut start = from;
        while start < to {
            let end = (start + BLOCK_ROWS).min(to);
            let out = &mut dist[..end - start];
            code_distances(&self.codes[start * DIM..end * DIM], query, out);
            let mut bound = best.bound();
            for (k, d) in out.iter().enumerate() {
                if *d < bound {
                    let row = start + k;
                    if role.is_none_or(|r| self.row_role[row] == r) {
                        best.insert(*d, row as u32);
                        bound = best.bound();
                    }
                }
            }
            start = end;
        }
    }

    fn rows(&self) -> usize {
        self.row_role.len()
    }

    /// The query in code units, or `None` if it cannot be represented (non-finite, or too large).
    fn quantise_query(&self, query: &[f32]) -> Option<[i16; DIM]> {
        let mut q = [0i16; DIM];
        for (c, v) in q.iter_mut().zip(query) {
            let x = (v * self.scale).round();
            // Also rejects NaN.
            if x.is_nan() || x.abs() > QUERY_LIMIT {
                return None;
            }
            *c = x as i16;
        }
        Some(q)
    }
}

/// One parallel query: chunks claimed one by one by the caller and whichever helpers are free.
struct Job {
    quant: Arc<Quantised>,
    query: [i16; DIM],
    role: Option<PersonKind>,
    chunks: usize,
    next: AtomicUsize,
    /// Chunks finished by helpers (mirrors `state.1`, for spinning without the lock).
    done: AtomicUsize,
    /// Candidate rows found by helpers, chunks they finished, whether one of them panicked.
    state: Mutex<(Vec<u32>, usize, bool)>,
    finished: Condvar,
}

impl Job {
    /// Claims and scans chunks until none is left; returns how many this thread scanned.
    fn work(&self, best: &mut BestK) -> usize {
        let rows = self.quant.rows();
        let mut claimed = 0;
        loop {
            let c = self.next.fetch_add(1, Ordering::Relaxed);
            if c >= self.chunks {
                return claimed;
            }
            claimed += 1;
            self.quant.scan(&self.query, self.role, c * CHUNK_ROWS, ((c + 1) * CHUNK_ROWS).min(rows), best);
        }
    }

    /// A helper's share: scan, then publish the candidates.
    fn help(&self) {
        let mut best = BestK::new();
        let mut claimed = 0;
        let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| claimed = self.work(&mut best))).is_ok();
        // A panic after claiming chunks would leave `claimed` short: count them all as done so the caller
        // never waits forever, and let it redo the search itself.
        let claimed = if ok { claimed } else { self.chunks };
        if claimed == 0 {
            return;
        }
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.0.extend(best.rows());
        state.1 += claimed;
        state.2 |= !ok;
        self.done.store(state.1, Ordering::Release);
        drop(state);
        self.finished.notify_all();
    }
}

/// Helper threads that live as long as the process and sleep when idle.
struct Pool {
    queue: Mutex<VecDeque<Arc<Job>>>,
    wake: Condvar,
    helpers: usize,
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    static STARTED: AtomicBool = AtomicBool::new(false);
    let pool = POOL.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()).min(4);
        Pool { queue: Mutex::new(VecDeque::new()), wake: Condvar::new(), helpers: cores - 1 }
    });
    if !STARTED.swap(true, Ordering::AcqRel) {
        for i in 0..pool.helpers {
            let spawned = std::thread::Builder::new().name(format!("vigil-search-{i}")).spawn(move || helper(pool));
            if spawned.is_err() {
                // Fewer helpers: the caller claims the chunks nobody takes.
                break;
            }
        }
    }
    pool
}

fn helper(pool: &'static Pool) {
    loop {
        let job = {
            let mut queue = pool.queue.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                if let Some(job) = queue.pop_front() {
                    break job;
                }
                queue = pool.wake.wait(queue).unwrap_or_else(|e| e.into_inner());
            }
        };
        job.help();
    }
}

/// How long the caller spins for helpers to finish before sleeping on the condition variable.
const SPIN: Duration = Duration::from_micros(200);

impl SearchIndex {
    pub fn build(entries: &[Entry]) -> SearchIndex {
        let mut index =
            SearchIndex { data: Vec::new(), quant: None, owner: Vec::new(), ids: Vec::new(), roles: Vec::new() };
        let mut row_role = Vec::new();
        for (i, entry) in entries.iter().enumerate() {
            index.ids.push(entry.id.clone());
            index.roles.push(entry.role);
            for e in entry.embeddings.iter().filter(|e| e.len() == DIM) {
                index.data.extend_from_slice(e);
                index.owner.push(i as u32);
                row_role.push(entry.role);
            }
        }
        if index.data.iter().all(|v| v.is_finite()) {
            let max = index.data.iter().fold(0f32, |m, v| m.max(v.abs()));
            let scale = if max > 0.0 { 127.0 / max } else { 1.0 };
            let codes = index.data.iter().map(|v| (v * scale).round().clamp(-127.0, 127.0) as i8).collect();
            index.quant = Some(Arc::new(Quantised { codes, row_role, scale }));
        }
        index
    }

    pub fn len(&self) -> usize {
        self.owner.len()
    }

    pub fn is_empty(&self) -> bool {
        self.owner.is_empty()
    }

    /// If the true nearest row is closer than every other row by more than this (Euclidean distance),
    /// the int8 scan cannot miss it: `2 · √128 / scale`, with a small allowance for f32 rounding.
    pub fn winner_margin(&self) -> Option<f32> {
        self.quant.as_ref().map(|q| 2.0 * (DIM as f32).sqrt() / q.scale * 1.0001)
    }

    /// The nearest embedding's person, optionally among one role only.
    pub fn best(&self, query: &[f32], role: Option<PersonKind>) -> Option<Match> {
        assert_eq!(query.len(), DIM);
        let row = match self.quant.as_ref().and_then(|q| Some((q, q.quantise_query(query)?))) {
            Some((quant, codes)) => self.rerank(query, &self.candidates(quant, codes, role)),
            None => self.exact_scan(query, role),
        }?;
        let owner = self.owner[row] as usize;
        let exact = squared_distance(query, &self.data[row * DIM..(row + 1) * DIM]);
        Some(Match { id: self.ids[owner].clone(), role: self.roles[owner], distance: exact.sqrt() })
    }

    /// Rows to re-rank: each thread's best `CANDIDATES` by code distance.
    fn candidates(&self, quant: &Arc<Quantised>, query: [i16; DIM], role: Option<PersonKind>) -> Vec<u32> {
        let rows = quant.rows();
        let helpers = if rows >= PARALLEL_ROWS { pool().helpers } else { 0 };
        if helpers == 0 {
            let mut best = BestK::new();
            quant.scan(&query, role, 0, rows, &mut best);
            return best.rows().collect();
        }
        let chunks = rows.div_ceil(CHUNK_ROWS);
        let job = Arc::new(Job {
            quant: Arc::clone(quant),
            query,
            role,
            chunks,
            next: AtomicUsize::new(0),
            done: AtomicUsize::new(0),
            state: Mutex::new((Vec::new(), 0, false)),
            finished: Condvar::new(),
        });
        {
            let pool = pool();
            let mut queue = pool.queue.lock().unwrap_or_else(|e| e.into_inner());
            for _ in 0..helpers.min(chunks - 1) {
                queue.push_back(Arc::clone(&job));
            }
            drop(queue);
            pool.wake.notify_all();
        }
        let mut best = BestK::new();
        let mine = job.work(&mut best);
        let theirs = chunks - mine;
        if theirs > 0 {
            let start = Instant::now();
            while job.done.load(Ordering::Acquire) < theirs && start.elapsed() < SPIN {
                for _ in 0..64 {
                    std::hint::spin_loop();
                }
            }
        }
        let mut state = job.state.lock().unwrap_or_else(|e| e.into_inner());
        while state.1 < theirs {
            state = job.finished.wait(state).unwrap_or_else(|e| e.into_inner());
        }
        if state.2 {
            // A helper panicked (it should not): redo the whole scan here.
            let mut best = BestK::new();
            quant.scan(&query, role, 0, rows, &mut best);
            return best.rows().collect();
        }
        let mut rows: Vec<u32> = best.rows().collect();
        rows.extend_from_slice(&state.0);
        rows
    }

    /// The exact f32 nearest among `rows` (ties: the lowest row, as a plain scan would pick).
    fn rerank(&self, query: &[f32], rows: &[u32]) -> Option<usize> {
        let mut best = (f32::INFINITY, usize::MAX);
        for &row in rows {
            let row = row as usize;
            let d = squared_distance(query, &self.data[row * DIM..(row + 1) * DIM]);
            if d < best.0 || (d == best.0 && row < best.1) {
                best = (d, row);
            }
        }
        (best.1 != usize::MAX).then_some(best.1)
    }

    /// Exact f32 scan, for what the int8 copy cannot represent.
    fn exact_scan(&self, query: &[f32], role: Option<PersonKind>) -> Option<usize> {
        let mut best = (f32::INFINITY, usize::MAX);
        for (row, (chunk, owner)) in self.data.chunks_exact(DIM).zip(&self.owner).enumerate() {
            let d = squared_distance(query, chunk);
            if d < best.0 && role.is_none_or(|r| self.roles[*owner as usize] == r) {
                best = (d, row);
            }
        }
        (best.1 != usize::MAX).then_some(best.1)
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

#[cfg(not(test))]
mod tests {
    #[inline(always)]
    pub fn portable_only() -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Set by a test to run the searches on the portable kernel (what CPUs without AVX2 or NEON use). The
    /// kernels agree bit for bit, so tests running meanwhile are unaffected.
    static PORTABLE_ONLY: AtomicBool = AtomicBool::new(false);

    pub fn portable_only() -> bool {
        PORTABLE_ONLY.load(Ordering::Relaxed)
    }

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
            mk("a", PersonKind::Patient, 0.0),
            mk("b", PersonKind::Physician, 0.1),
            mk("c", PersonKind::Patient, 0.5),
        ]);
        let q = vec![0.09; DIM];
        let m = index.best(&q, None).unwrap();
        assert_eq!(m.id, "b");
        assert!((m.distance - (0.01f32 * 0.01 * DIM as f32).sqrt()).abs() < 1e-4);
        assert_eq!(index.best(&q, Some(PersonKind::Patient)).unwrap().id, "a");
        assert!((index.distance_to(&q, "c").unwrap() - (0.41f32 * 0.41 * DIM as f32).sqrt()).abs() < 1e-3);
    }

    /// xorshift64*, seeded: reproducible galleries.
    struct Rng(u64);

    impl Rng {
        fn next_u64(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        /// Uniform in [-1, 1).
        fn unit(&mut self) -> f32 {
            (self.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        }
        /// Roughly normal, standard deviation ≈ `sd`.
        fn normal(&mut self, sd: f32) -> f32 {
            (self.unit() + self.unit() + self.unit()) * sd
        }
    }

    /// Entries with 1–3 embeddings each (people cluster), one in five a physician.
    fn gallery(rng: &mut Rng, people: usize) -> Vec<Entry> {
        (0..people)
            .map(|i| {
                let centre: Vec<f32> = (0..DIM).map(|_| rng.normal(0.05)).collect();
                let n = 1 + (rng.next_u64() % 3) as usize;
                Entry {
                    id: format!("p{i}"),
                    role: if i % 5 == 0 { PersonKind::Physician } else { PersonKind::Patient },
                    embeddings: (0..n).map(|_| centre.iter().map(|c| c + rng.normal(0.01)).collect()).collect(),
                    quality: 1.0,
                    enrolled_at: String::new(),
                }
            })
            .collect()
    }

    /// Brute force in f32 over every embedding: (id, role, distance) of the first nearest.
    fn reference(entries: &[Entry], query: &[f32], role: Option<PersonKind>) -> Option<Match> {
        let mut best: Option<(f32, &Entry)> = None;
        for entry in entries.iter().filter(|e| role.is_none_or(|r| e.role == r)) {
            for e in &entry.embeddings {
                let d = squared_distance(query, e);
                if best.is_none_or(|(b, _)| d < b) {
                    best = Some((d, entry));
                }
            }
        }
        best.map(|(d, e)| Match { id: e.id.clone(), role: e.role, distance: d.sqrt() })
    }

    fn queries(rng: &mut Rng, entries: &[Entry], n: usize) -> Vec<Vec<f32>> {
        (0..n)
            .map(|k| {
                let e = &entries[(rng.next_u64() % entries.len() as u64) as usize];
                let base = &e.embeddings[(rng.next_u64() % e.embeddings.len() as u64) as usize];
                // Noisy copies of enrolled faces (near and far), and strangers.
                match k % 3 {
                    0 => base.iter().map(|v| v + rng.normal(0.01)).collect(),
                    1 => base.iter().map(|v| v + rng.normal(0.04)).collect(),
                    _ => (0..DIM).map(|_| rng.normal(0.05)).collect(),
                }
            })
            .collect()
    }

    fn agrees_with_reference(people: usize, seed: u64, n: usize) {
        let mut rng = Rng(seed);
        let entries = gallery(&mut rng, people);
        let index = SearchIndex::build(&entries);
        assert!(index.quant.is_some());
        for (k, q) in queries(&mut rng, &entries, n).iter().enumerate() {
            for role in [None, Some(PersonKind::Patient), Some(PersonKind::Physician)] {
                assert_eq!(index.best(q, role), reference(&entries, q, role), "query {k}, role {role:?}");
            }
        }
    }

    #[test]
    fn small_galleries_agree_with_brute_force_f32() {
        for (people, seed) in [(1, 1), (2, 2), (7, 3), (100, 4), (3000, 5)] {
            agrees_with_reference(people, seed, 200);
        }
    }

    #[test]
    fn large_galleries_agree_with_brute_force_f32() {
        // ≥ 20,000 rows: the parallel path with helpers and chunks.
        agrees_with_reference(15_000, 6, 60);
        agrees_with_reference(40_000, 7, 20);
    }

    #[test]
    fn portable_kernel_agrees_with_brute_force_f32() {
        PORTABLE_ONLY.store(true, Ordering::Relaxed);
        agrees_with_reference(500, 12, 100);
        agrees_with_reference(12_000, 13, 20);
        PORTABLE_ONLY.store(false, Ordering::Relaxed);
    }

    #[test]
    fn concurrent_callers_agree_with_brute_force_f32() {
        let mut rng = Rng(8);
        let entries = gallery(&mut rng, 12_000);
        let index = SearchIndex::build(&entries);
        assert!(index.len() >= PARALLEL_ROWS);
        let qs = queries(&mut rng, &entries, 40);
        std::thread::scope(|s| {
            for t in 0..3 {
                let (entries, index, qs) = (&entries, &index, &qs);
                s.spawn(move || {
                    for q in qs.iter().skip(t) {
                        assert_eq!(index.best(q, None), reference(entries, q, None));
                    }
                });
            }
        });
    }

    #[test]
    fn unrepresentable_queries_and_galleries_fall_back_to_f32() {
        let mut rng = Rng(9);
        let mut entries = gallery(&mut rng, 50);
        let index = SearchIndex::build(&entries);
        let mut q: Vec<f32> = (0..DIM).map(|_| rng.normal(0.05)).collect();
        q[3] = 1e6; // beyond the code range
        assert!(index.quant.as_ref().unwrap().quantise_query(&q).is_none());
        assert_eq!(index.best(&q, None), reference(&entries, &q, None));
        q[3] = f32::NAN;
        assert_eq!(index.best(&q, None), None); // as before: a NaN distance never wins
        entries[4].embeddings[0][0] = f32::INFINITY;
        let index = SearchIndex::build(&entries);
        assert!(index.quant.is_none());
        let q: Vec<f32> = (0..DIM).map(|_| rng.normal(0.05)).collect();
        assert_eq!(index.best(&q, Some(PersonKind::Patient)), reference(&entries, &q, Some(PersonKind::Patient)));
        assert_eq!(SearchIndex::build(&[]).best(&q, None), None);
    }

    type Kernel = fn(&[i8], &[i16; DIM], &mut [i32]);

    /// The SIMD kernel of this CPU, if any (called directly: `PORTABLE_ONLY` must not turn it off here).
    #[cfg(target_arch = "x86_64")]
    fn simd_kernel() -> Option<Kernel> {
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: AVX2 detected.
            Some(|c, q, o| unsafe { avx2::code_distances(c, q, o) })
        } else {
            None
        }
    }

    #[cfg(target_arch = "aarch64")]
    fn simd_kernel() -> Option<Kernel> {
        Some(neon::code_distances)
    }

    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    fn simd_kernel() -> Option<Kernel> {
        None
    }

    #[test]
    fn simd_and_portable_kernels_agree_exactly() {
        let Some(simd) = simd_kernel() else {
            eprintln!("no SIMD kernel on this CPU: nothing to compare");
            return;
        };
        let mut rng = Rng(10);
        for rows in [0usize, 1, 3, 4, 5, 63, 64, 1000] {
            let mut codes: Vec<i8> = (0..rows * DIM).map(|_| ((rng.next_u64() % 255) as i16 - 127) as i8).collect();
            if let Some(c) = codes.first_mut() {
                *c = -127;
            }
            for limit in [127i16, 3968] {
                let mut query = [0i16; DIM];
                for (i, q) in query.iter_mut().enumerate() {
                    *q = if i % 2 == 0 { limit } else { (rng.next_u64() % (2 * limit as u64 + 1)) as i16 - limit };
                }
                let mut a = vec![0i32; rows];
                let mut b = vec![-1i32; rows];
                code_distances_portable(&codes, &query, &mut a);
                simd(&codes, &query, &mut b);
                assert_eq!(a, b, "{rows} rows, limit {limit}");
            }
        }
        // The worst case does not overflow: every code -127 against a query of +3968.
        let worst = vec![-127i8; 5 * DIM];
        let (mut a, mut b) = ([0i32; 5], [0i32; 5]);
        code_distances_portable(&worst, &[3968; DIM], &mut a);
        simd(&worst, &[3968; DIM], &mut b);
        assert_eq!(a, [128 * 4095 * 4095; 5]);
        assert_eq!(a, b);
    }

    #[test]
    fn quantisation_never_changes_a_winner_clear_by_the_margin() {
        // Candidate count 1 (the plain int8 argmin): whenever the f32 best beats the runner-up by more than
        // `winner_margin`, the int8 order must put it first. Queries between two enrolled rows make gaps of
        // every size, many just above the margin.
        let mut rng = Rng(11);
        let entries = gallery(&mut rng, 400);
        let index = SearchIndex::build(&entries);
        let quant = index.quant.as_ref().unwrap();
        let margin = index.winner_margin().unwrap();
        let rows = index.len();
        let (mut checked, mut close) = (0, 0);
        for _ in 0..3000 {
            let a = (rng.next_u64() % rows as u64) as usize;
            let b = (rng.next_u64() % rows as u64) as usize;
            let t = 0.5 + rng.unit() * 0.2;
            let q: Vec<f32> = (0..DIM)
                .map(|i| index.data[a * DIM + i] * t + index.data[b * DIM + i] * (1.0 - t) + rng.normal(0.002))
                .collect();
            let mut exact: Vec<(f32, usize)> = index
                .data
                .chunks_exact(DIM)
                .enumerate()
                .map(|(r, row)| (squared_distance(&q, row).sqrt(), r))
                .collect();
            exact.sort_by(|x, y| x.0.total_cmp(&y.0));
            let gap = exact[1].0 - exact[0].0;
            if gap <= margin {
                continue;
            }
            checked += 1;
            close += usize::from(gap < 2.0 * margin);
            let codes = quant.quantise_query(&q).unwrap();
            let mut d = vec![0i32; rows];
            code_distances(&quant.codes, &codes, &mut d);
            let winner = (0..rows).min_by_key(|r| d[*r]).unwrap();
            assert_eq!(winner, exact[0].1, "gap {gap} > margin {margin}");
            assert!(d.iter().enumerate().all(|(r, x)| r == winner || *x > d[winner]));
        }
        assert!(checked > 500 && close > 50, "checked {checked}, within 2× the margin {close}");
    }
}
