#![no_main]
// See rvs::fuzzing::control_requests.
libfuzzer_sys::fuzz_target!(|data: &[u8]| rvs::fuzzing::control_requests(data));
