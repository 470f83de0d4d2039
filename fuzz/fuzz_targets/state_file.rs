#![no_main]
// See rvs::fuzzing::state_file.
libfuzzer_sys::fuzz_target!(|data: &[u8]| rvs::fuzzing::state_file(data));
