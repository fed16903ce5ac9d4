//! Fuzzes `Model::parse` on the bytes as they are: see `tsc_core::fuzzing::parse_raw`.
//! Random mutations rarely keep the CRC-32 valid, so this mostly reaches the framing
//! checks; `parse_fixed` repairs the framing first. Run: `scripts/fuzz.sh` (docs/CORE.md).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tsc_core::fuzzing::parse_raw(data));
