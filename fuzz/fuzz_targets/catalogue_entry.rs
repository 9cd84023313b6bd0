#![no_main]
//! Fuzz target: see `peervault_chaos::fuzz::catalogue_entry`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| peervault_chaos::fuzz::catalogue_entry(data));
