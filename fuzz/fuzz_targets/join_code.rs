#![no_main]
//! Fuzz target: see `peervault_chaos::fuzz::join_code`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| peervault_chaos::fuzz::join_code(data));
