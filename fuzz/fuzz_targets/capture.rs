//! Fuzz target: capture reader + decoder + reassembly + classification, with invariants.
//! Seed: `fuzz/seed.sh` copies captures/*.pcap* into the corpus.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| meshsniff::fuzzing::check_capture(data));
