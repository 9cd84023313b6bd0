#![no_main]
//! Fuzz target: see `peervault_chaos::fuzz::control_frame`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| peervault_chaos::fuzz::control_frame(data));
