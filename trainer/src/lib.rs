//! tsc-trainer: the GPU trainer. See docs/DESIGN.md.
pub mod bench;
pub mod data;
pub mod gpu;
pub mod reference;
pub mod rng;
