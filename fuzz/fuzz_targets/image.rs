//! A photo: format sniffing, limits, JPEG/PNG decoding and the EXIF orientation.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| vigil::fuzzing::image(data));
