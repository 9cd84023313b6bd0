//! `peervault send <name> <peer>` and `peervault fetch <name> <peer>`: copies to or
//! from one named peer (a number from `peers`, a peer id, or an address).

use std::process::ExitCode;

use crate::control::client::Client;
use crate::control::proto::{Request, Response};

pub async fn send(client: &Client, name: &str, peer: &str) -> anyhow::Result<ExitCode> {
    let request = Request::Send {
        name: name.to_string(),
        peer: peer.to_string(),
    };
    let reply = client.call(&request).await?;
    let Response::Sent { name, peer } = reply else {
        return Err(super::unexpected(reply));
    };
    say!("File '{name}' sent to {peer}: it holds a complete, durable copy");
    Ok(ExitCode::SUCCESS)
}

pub async fn fetch(client: &Client, name: &str, peer: &str) -> anyhow::Result<ExitCode> {
    let request = Request::Fetch {
        name: name.to_string(),
        peer: peer.to_string(),
    };
    let reply = client.call(&request).await?;
    let Response::Fetched { name, peer, chunks } = reply else {
        return Err(super::unexpected(reply));
    };
    say!("File '{name}' fetched from {peer} ({chunks} chunks copied); this node now holds it");
    Ok(ExitCode::SUCCESS)
}
