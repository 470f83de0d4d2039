#![no_main]
// See rvs::fuzzing::rvsadm_restore.
libfuzzer_sys::fuzz_target!(|data: &[u8]| rvs::fuzzing::rvsadm_restore(data));
