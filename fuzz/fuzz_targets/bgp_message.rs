#![no_main]
// See rvs::fuzzing::bgp_message.
libfuzzer_sys::fuzz_target!(|data: &[u8]| rvs::fuzzing::bgp_message(data));
