//! Operator commands beyond `run`: models on still images and benchmarks.

pub mod bench;
pub mod bench_cameras;
pub mod bench_delivery;
pub mod bench_evidence;
pub mod bench_gallery;
pub mod bench_search;
pub mod detect;
pub mod enroll;
