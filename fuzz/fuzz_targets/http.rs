//! Fuzz target: the HTTP/1.x and h2c readers (HPACK included) on arbitrary client/server bytes.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| meshsniff::fuzzing::check_http(data));
