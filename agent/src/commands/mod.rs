//! Operator commands beyond `run`: models on still images and benchmarks.

pub mod bench;
pub mod detect;
