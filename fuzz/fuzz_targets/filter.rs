//! Fuzz target: the capture-filter compiler on arbitrary text, and its program on arbitrary
//! packets.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| meshsniff::fuzzing::check_filter(data));
