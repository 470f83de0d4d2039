#![no_main]
// See rvs::fuzzing::sync_message.
libfuzzer_sys::fuzz_target!(|data: &[u8]| rvs::fuzzing::sync_message(data));
