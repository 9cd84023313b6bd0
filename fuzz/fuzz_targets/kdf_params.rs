#![no_main]
//! Fuzz target: see `peervault_chaos::fuzz::kdf_params`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| peervault_chaos::fuzz::kdf_params(data));
