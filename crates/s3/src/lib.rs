//! An S3-compatible gateway onto a PeerVault node.
//!
//! The tools people already trust with their files (restic, rclone, the AWS
//! CLI and SDKs) speak S3. With this gateway on a node (`peervault start -s3
//! ADDR`), all of them can use the vault, and what they store is encrypted,
//! replicated and readable from any node like every other file.
//!
//! The protocol (routing, SigV4 in headers and presigned URLs, aws-chunked
//! bodies, XML) is the `s3s` crate's; this crate maps S3's operations onto the
//! node's narrow object API ([`peervault_node::objects`]) and nothing else:
//!
//! - a bucket is a top-level folder: object `KEY` of bucket `B` is the file
//!   `B/KEY`, so `peervault ls`/`get` see what S3 clients write and the other
//!   way round ([`names`]);
//! - access keys live in the vault, so every node's gateway accepts them
//!   ([`keys`]);
//! - multipart uploads stream each part into the vault and complete by
//!   composing a manifest of the parts' chunks ([`multipart`]).
//!
//! TLS is left to a reverse proxy in front (see the README).

mod digests;
mod errors;
mod gateway;
pub mod keys;
mod listing;
mod multipart;
mod names;

use std::net::SocketAddr;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use peervault_node::Node;
use s3s::service::S3ServiceBuilder;
use tokio::net::TcpListener;

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("the S3 address {addr} cannot be used: {source} (choose another with -s3 ADDR)")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the S3 domain {domain:?} is not a domain name: {reason}")]
    Domain { domain: String, reason: String },
}

/// How the gateway is reached.
#[derive(Clone, Debug, Default)]
pub struct GatewayConfig {
    /// Where to listen, e.g. `127.0.0.1:9000`.
    pub addr: String,
    /// For virtual-host style (`BUCKET.DOMAIN`) besides path style.
    pub domain: Option<String>,
}

/// A running gateway; it stops when dropped.
#[derive(Debug)]
pub struct S3Gateway {
    local_addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl S3Gateway {
    /// Binds `config.addr` and serves the S3 API of `node` there.
    pub async fn start(node: Node, config: &GatewayConfig) -> Result<S3Gateway, ServeError> {
        let listener =
            TcpListener::bind(&config.addr)
                .await
                .map_err(|source| ServeError::Bind {
                    addr: config.addr.clone(),
                    source,
                })?;
        let local_addr = listener.local_addr().map_err(|source| ServeError::Bind {
            addr: config.addr.clone(),
            source,
        })?;
        let mut builder = S3ServiceBuilder::new(gateway::Gateway { node: node.clone() });
        builder.set_auth(keys::VaultKeys::new(node));
        if let Some(domain) = &config.domain {
            let host = s3s::host::SingleDomain::new(domain).map_err(|e| ServeError::Domain {
                domain: domain.clone(),
                reason: e.to_string(),
            })?;
            builder.set_host(host);
        }
        let service = builder.build();
        let task = tokio::spawn(async move {
            let http = ConnBuilder::new(TokioExecutor::new());
            loop {
                let socket = match listener.accept().await {
                    Ok((socket, _)) => socket,
                    Err(e) => {
                        tracing::warn!("S3 gateway: accepting a connection: {e}");
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let _ = socket.set_nodelay(true);
                let service = service.clone();
                let service = hyper::service::service_fn(move |request| {
                    let service = service.clone();
                    async move { close_after_refused_body(&service, request).await }
                });
                let connection = http
                    .serve_connection(TokioIo::new(socket), service)
                    .into_owned();
                tokio::spawn(async move {
                    if let Err(e) = connection.await {
                        tracing::debug!("S3 connection ended: {e}");
                    }
                });
            }
        });
        Ok(S3Gateway { local_addr, task })
    }

    /// The address it listens on (the port chosen, if 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
}

/// Serves `request`, closing the connection after a refusal of a request
/// that has a body: a body the gateway did not read (a failed precondition,
/// a bad signature) would otherwise be taken for the next request on the
/// connection, which then fails for no reason of its own.
async fn close_after_refused_body(
    service: &s3s::service::S3Service,
    request: hyper::Request<hyper::body::Incoming>,
) -> Result<s3s::HttpResponse, s3s::HttpError> {
    use hyper::body::Body as _;
    let has_body = !request.body().is_end_stream();
    let mut response = hyper::service::Service::call(service, request).await?;
    if has_body && !response.status().is_success() {
        response.headers_mut().insert(
            hyper::header::CONNECTION,
            hyper::header::HeaderValue::from_static("close"),
        );
    }
    Ok(response)
}

impl Drop for S3Gateway {
    fn drop(&mut self) {
        self.task.abort();
    }
}
