#![no_main]
//! Fuzz target: see `peervault_chaos::fuzz::chunk_blob`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| peervault_chaos::fuzz::chunk_blob(data));
