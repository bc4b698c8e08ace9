//! An evidence manifest as `vigil verify` parses it.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| vigil::fuzzing::manifest(data));
