//! The `peervault` binary as a library: command line, node runner, REPL, control
//! socket and client commands. `main.rs` only calls [`cli::main`].
//!
//! The control module is public so that tools (the benchmark, tests) can drive a
//! running node exactly as the subcommands do.

pub mod atomic_file;
pub mod cli;
mod commands;
pub mod control;
mod demo;
pub mod http;
pub mod log_output;
mod ops;
mod progress;
mod repl;
mod run;
pub mod ui;
