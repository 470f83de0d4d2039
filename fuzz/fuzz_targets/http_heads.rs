#![no_main]
// See rvs::fuzzing::http_heads.
libfuzzer_sys::fuzz_target!(|data: &[u8]| rvs::fuzzing::http_heads(data));
