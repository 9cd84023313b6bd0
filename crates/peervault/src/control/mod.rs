//! The local control API: a Unix socket in the data dir, owner-only.
//!
//! Client subcommands (`put`, `get`, `ls`, ...) are separate processes; they reach
//! the node that owns a data dir through this socket. See [`proto`] for the wire
//! format.

pub mod client;
pub mod proto;
pub mod server;
pub mod socket;
