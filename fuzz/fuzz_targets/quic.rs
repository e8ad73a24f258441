//! Fuzz target: QUIC Initial header removal, decryption and CRYPTO frame reassembly, on
//! length-prefixed client datagrams (seeded from captures/ by `fuzz/seeds.py`).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| meshsniff::fuzzing::check_quic_datagrams(data));
