//! Fuzz target: QUIC Initial header removal, decryption and CRYPTO frame reassembly.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| meshsniff::fuzzing::check_quic(data));
