//! Fuzz target: the TLS record walker and handshake analysis on arbitrary client/server bytes.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| meshsniff::fuzzing::check_tls(data));
