#![no_main]
//! Fuzz target: see `peervault_chaos::fuzz::pex_message`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| peervault_chaos::fuzz::pex_message(data));
