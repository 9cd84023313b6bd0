#![no_main]
//! Fuzz target: see `peervault_chaos::fuzz::quota_file`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| peervault_chaos::fuzz::quota_file(data));
