#![no_main]
//! Fuzz target: see `peervault_chaos::fuzz::wire_request`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| peervault_chaos::fuzz::wire_request(data));
