//! Plain CPU references in f64 for every GPU kernel (llm.c style: one obvious loop nest per
//! layer, forward next to backward). Tests compare the WGSL kernels against these.
pub mod controller;
pub mod conv;
pub mod network;
pub mod ops;
