//! A signed command as it arrives over MQTT (docs/mqtt-api.md).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| vigil::fuzzing::command(data));
