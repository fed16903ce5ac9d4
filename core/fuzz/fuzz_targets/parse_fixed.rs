//! Fuzzes the model parser past the CRC-32: `tsc_core::fuzzing::parse_fixed` rewrites the
//! length field and the checksum, then parses, runs inference and folding on what parses.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tsc_core::fuzzing::parse_fixed(data));
