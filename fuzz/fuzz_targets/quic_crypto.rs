//! Fuzz target: what follows QUIC Initial decryption (frame parsing, CRYPTO reassembly, the
//! ClientHello parse and JA4). The input is plaintext; the glue seals each packet with the real
//! Initial keys, so AEAD never stops the fuzzer. Invariants in `fuzzing::check_quic_crypto`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    meshsniff::fuzzing::check_quic_crypto(data);
});
