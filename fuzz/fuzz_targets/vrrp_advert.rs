#![no_main]
// See rvs::fuzzing::vrrp_advert.
libfuzzer_sys::fuzz_target!(|data: &[u8]| rvs::fuzzing::vrrp_advert(data));
