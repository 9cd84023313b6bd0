//! Fault injection for PeerVault, on 127.0.0.1 only.
//!
//! * [`proxy`]: a TCP proxy in front of every node that delays, drops, stalls,
//!   resets or partitions its connections on command;
//! * [`cluster`]: real `peervault` processes behind those proxies, with SIGKILL,
//!   SIGSTOP/SIGCONT and restarts;
//! * [`checker`]: a seeded random workload of puts, overwrites, reads and deletes
//!   while faults are injected, and the checks that must hold once they heal.
//!
//! `peervault-chaos run --seed N` runs the checker; `RELIABILITY.md` records what
//! was run and what it found. Every loop here is bounded: by operation counts, by
//! per-operation timeouts, and by settling deadlines.

pub mod checker;
pub mod cluster;
pub mod fuzz;
pub mod proxy;
