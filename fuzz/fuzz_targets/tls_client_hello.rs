#![no_main]
// See rvs::fuzzing::tls_client_hello.
libfuzzer_sys::fuzz_target!(|data: &[u8]| rvs::fuzzing::tls_client_hello(data));
