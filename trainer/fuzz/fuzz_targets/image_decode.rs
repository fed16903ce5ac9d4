//! Fuzz target: `tsc_trainer::fuzzing::image_decode` (its doc says what it checks).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tsc_trainer::fuzzing::image_decode(data));
