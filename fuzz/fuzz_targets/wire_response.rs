#![no_main]
//! Fuzz target: see `peervault_chaos::fuzz::wire_response`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| peervault_chaos::fuzz::wire_response(data));
