#![no_main]
//! Fuzz target: see `peervault_chaos::fuzz::channel_handshake`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| peervault_chaos::fuzz::channel_handshake(data));
