//! Black-box tests: real `peervault` processes, driven only through the command
//! line, the control socket and the files they leave on disk.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

mod badinput;
mod cli;
mod crash;
mod devices;
mod erasure;
mod faults;
mod files;
mod mdns;
mod nat;
mod netlab;
mod network;
mod observability;
mod readme;
mod repl;
mod s3;
mod security;
mod transfers;
mod trees;
mod trust;
mod versions;
