#![no_main]
//! Fuzz target: see `peervault_chaos::fuzz::channel_identity`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| peervault_chaos::fuzz::channel_identity(data));
