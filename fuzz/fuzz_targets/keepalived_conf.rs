#![no_main]
// See rvs::fuzzing::keepalived_conf.
libfuzzer_sys::fuzz_target!(|data: &[u8]| rvs::fuzzing::keepalived_conf(data));
