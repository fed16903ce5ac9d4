//! tsc-trainer: the GPU trainer. See docs/DESIGN.md.
pub mod analysis;
pub mod bench;
pub mod bench_compile;
pub mod bench_train;
pub mod config;
pub mod data;
pub mod fuzzing;
pub mod gpu;
pub mod grad;
pub mod model;
pub mod net;
pub mod reference;
pub mod report;
pub mod rng;
pub mod tools;
pub mod train;
