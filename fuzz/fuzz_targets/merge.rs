//! Fuzz target: the pcapng block reader and merger of `kubectl meshsniff -l` on two arbitrary
//! "exec streams"; whatever is written must read back as a whole capture.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| meshsniff::fuzzing::check_merge(data));
