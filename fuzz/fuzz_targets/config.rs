//! A configuration file (parse, validate, roll-call schedule).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| vigil::fuzzing::config(data));
