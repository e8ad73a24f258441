//! Fuzz target: one direction's TCP reassembly fed arbitrary segment orders and overlaps.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| meshsniff::fuzzing::check_reassembly(data));
