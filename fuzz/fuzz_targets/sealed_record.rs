#![no_main]
//! Fuzz target: see `peervault_chaos::fuzz::sealed_record`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| peervault_chaos::fuzz::sealed_record(data));
