//! Network addresses as users write them.
//!
//! The original accepts Go-style `host:port` (`:3000`, `localhost:3000`,
//! `203.0.113.5:3000`); libp2p speaks multiaddrs (`/ip4/0.0.0.0/tcp/3000`). Every
//! address flag (`-addr`, `-bootstrap`, `-advertise`) accepts both, and this module
//! turns either into one [`Endpoint`]. An empty host (`:3000`) means every interface
//! when listening. Bad input gets an error that names the problem.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use multiaddr::{Multiaddr, Protocol};

/// Why an address did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid address {input:?}: {reason} (examples: :3000, localhost:3000, 10.0.0.5:4000, /ip4/10.0.0.5/tcp/4000)"
)]
pub struct AddrError {
    input: String,
    reason: String,
}

/// The host part of an endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// No host given (`:3000`): all interfaces.
    Unspecified,
    Ip(IpAddr),
    /// A DNS name, resolved when dialling.
    Name(String),
}

/// A TCP endpoint, possibly with the peer id expected there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: Host,
    pub port: u16,
    /// `/p2p/<peer id>` if the address named one.
    pub peer_id: Option<libp2p_identity::PeerId>,
}

fn parse_port(input: &str, port: &str) -> Result<u16, AddrError> {
    let err = |reason: String| AddrError {
        input: input.to_string(),
        reason,
    };
    if port.is_empty() {
        return Err(err("the port is missing".into()));
    }
    port.parse::<u16>()
        .map_err(|_| err(format!("the port {port:?} is not a number from 0 to 65535")))
}

impl Endpoint {
    /// Parses `host:port`, `:port`, `[ipv6]:port` or a TCP multiaddr.
    pub fn parse(input: &str) -> Result<Self, AddrError> {
        let text = input.trim();
        let err = |reason: &str| AddrError {
            input: input.to_string(),
            reason: reason.to_string(),
        };
        if text.is_empty() {
            return Err(err("it is empty"));
        }
        if text.starts_with('/') {
            let addr: Multiaddr = text
                .parse()
                .map_err(|e| err(&format!("not a valid multiaddr ({e})")))?;
            return Self::from_multiaddr(input, &addr);
        }
        let (host, port) = if let Some(rest) = text.strip_prefix('[') {
            let (ip, port) = rest
                .split_once("]:")
                .ok_or_else(|| err("an IPv6 address must be written [addr]:port"))?;
            let ip: IpAddr = ip
                .parse()
                .map_err(|_| err("the IPv6 address is not valid"))?;
            (Host::Ip(ip), port)
        } else {
            let (host, port) = text
                .rsplit_once(':')
                .ok_or_else(|| err("the port is missing; write host:port or :port"))?;
            let host = if host.is_empty() {
                Host::Unspecified
            } else if host.contains(':') {
                return Err(err("an IPv6 address must be written [addr]:port"));
            } else if let Ok(ip) = host.parse::<IpAddr>() {
                Host::Ip(ip)
            } else if host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
            {
                Host::Name(host.to_ascii_lowercase())
            } else {
                return Err(err("the host is neither an IP address nor a DNS name"));
            };
            (host, port)
        };
        Ok(Self {
            host,
            port: parse_port(input, port)?,
            peer_id: None,
        })
    }

    fn from_multiaddr(input: &str, addr: &Multiaddr) -> Result<Self, AddrError> {
        let err = |reason: &str| AddrError {
            input: input.to_string(),
            reason: reason.to_string(),
        };
        let mut host = None;
        let mut port = None;
        let mut peer_id = None;
        for protocol in addr.iter() {
            match protocol {
                Protocol::Ip4(ip) if host.is_none() => host = Some(Host::Ip(IpAddr::V4(ip))),
                Protocol::Ip6(ip) if host.is_none() => host = Some(Host::Ip(IpAddr::V6(ip))),
                Protocol::Dns(name) | Protocol::Dns4(name) | Protocol::Dns6(name)
                    if host.is_none() =>
                {
                    host = Some(Host::Name(name.to_string()))
                }
                Protocol::Tcp(p) if host.is_some() && port.is_none() => port = Some(p),
                Protocol::P2p(id) if port.is_some() => peer_id = Some(id),
                _ => {
                    return Err(err(
                        "only /ip4, /ip6 or /dns followed by /tcp (and optionally /p2p) are supported",
                    ));
                }
            }
        }
        let host = host.ok_or_else(|| err("it names no host"))?;
        let port = port.ok_or_else(|| err("it names no /tcp port"))?;
        let host = match host {
            Host::Ip(ip) if ip.is_unspecified() => Host::Unspecified,
            other => other,
        };
        Ok(Self {
            host,
            port,
            peer_id,
        })
    }

    /// The endpoint as a multiaddr (unspecified host becomes `0.0.0.0`).
    pub fn to_multiaddr(&self) -> Multiaddr {
        let mut addr = Multiaddr::empty();
        match &self.host {
            Host::Unspecified => addr.push(Protocol::Ip4(Ipv4Addr::UNSPECIFIED)),
            Host::Ip(IpAddr::V4(ip)) => addr.push(Protocol::Ip4(*ip)),
            Host::Ip(IpAddr::V6(ip)) => addr.push(Protocol::Ip6(*ip)),
            Host::Name(name) => addr.push(Protocol::Dns(name.clone().into())),
        }
        addr.push(Protocol::Tcp(self.port));
        if let Some(id) = self.peer_id {
            addr.push(Protocol::P2p(id));
        }
        addr
    }
}

impl Endpoint {
    /// Multiaddrs to dial for this endpoint: a DNS name is resolved now (through the
    /// system resolver, so `/etc/hosts` applies), an empty host means this machine.
    pub async fn resolve_for_dial(&self) -> std::io::Result<Vec<Multiaddr>> {
        let with_port = |ip: IpAddr| {
            let mut addr = Multiaddr::empty();
            addr.push(match ip {
                IpAddr::V4(v4) => Protocol::Ip4(v4),
                IpAddr::V6(v6) => Protocol::Ip6(v6),
            });
            addr.push(Protocol::Tcp(self.port));
            addr
        };
        Ok(match &self.host {
            Host::Unspecified => vec![with_port(IpAddr::V4(Ipv4Addr::LOCALHOST))],
            Host::Ip(ip) => vec![with_port(*ip)],
            Host::Name(name) => {
                let mut addrs: Vec<Multiaddr> = tokio::net::lookup_host((name.as_str(), self.port))
                    .await?
                    .map(|sa| with_port(sa.ip()))
                    .collect();
                addrs.dedup();
                addrs
            }
        })
    }

    /// The multiaddr to listen on: an empty host means every interface; a DNS name
    /// is resolved to its first address.
    pub async fn resolve_for_listen(&self) -> std::io::Result<Multiaddr> {
        match &self.host {
            Host::Name(_) => self
                .resolve_for_dial()
                .await?
                .into_iter()
                .next()
                .ok_or_else(|| {
                    std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        format!("{self} resolves to no address"),
                    )
                }),
            _ => Ok(self.to_multiaddr()),
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            Host::Unspecified => write!(f, ":{}", self.port),
            Host::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]:{}", self.port),
            Host::Ip(ip) => write!(f, "{ip}:{}", self.port),
            Host::Name(name) => write!(f, "{name}:{}", self.port),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_style_addresses() {
        let e = Endpoint::parse(":3000").unwrap();
        assert_eq!((e.host.clone(), e.port), (Host::Unspecified, 3000));
        assert_eq!(e.to_string(), ":3000");
        assert_eq!(e.to_multiaddr().to_string(), "/ip4/0.0.0.0/tcp/3000");
        let e = Endpoint::parse("localhost:4000").unwrap();
        assert_eq!(e.host, Host::Name("localhost".into()));
        assert_eq!(e.to_multiaddr().to_string(), "/dns/localhost/tcp/4000");
        let e = Endpoint::parse("203.0.113.5:3000").unwrap();
        assert_eq!(e.to_multiaddr().to_string(), "/ip4/203.0.113.5/tcp/3000");
        let e = Endpoint::parse("[::1]:5000").unwrap();
        assert_eq!(e.to_string(), "[::1]:5000");
    }

    #[test]
    fn multiaddrs() {
        let e = Endpoint::parse("/ip4/127.0.0.1/tcp/3000").unwrap();
        assert_eq!(e.to_string(), "127.0.0.1:3000");
        let e = Endpoint::parse("/ip4/0.0.0.0/tcp/3000").unwrap();
        assert_eq!(e.host, Host::Unspecified);
        let e = Endpoint::parse("/dns4/seed.example.com/tcp/3000").unwrap();
        assert_eq!(e.host, Host::Name("seed.example.com".into()));
        assert!(Endpoint::parse("/ip4/1.2.3.4/udp/3000").is_err());
    }

    #[tokio::test]
    async fn resolution_for_dial_and_listen() {
        let any = Endpoint::parse(":4000").unwrap();
        assert_eq!(
            any.resolve_for_dial().await.unwrap()[0].to_string(),
            "/ip4/127.0.0.1/tcp/4000"
        );
        assert_eq!(
            any.resolve_for_listen().await.unwrap().to_string(),
            "/ip4/0.0.0.0/tcp/4000"
        );
        let local = Endpoint::parse("localhost:4001").unwrap();
        let addrs = local.resolve_for_dial().await.unwrap();
        assert!(
            addrs
                .iter()
                .any(|a| a.to_string() == "/ip4/127.0.0.1/tcp/4001"),
            "{addrs:?}"
        );
    }

    #[test]
    fn bad_addresses_name_the_problem() {
        for (input, words) in [
            ("", "empty"),
            ("3000", "port is missing"),
            (":70000", "0 to 65535"),
            (":http", "0 to 65535"),
            ("host:", "port is missing"),
            ("::1:3000", "IPv6"),
            ("bad host:3000", "neither"),
            ("/ip4/1.2.3.4", "no /tcp"),
        ] {
            let e = Endpoint::parse(input).unwrap_err().to_string();
            assert!(e.contains(words), "{input:?}: {e}");
        }
    }
}
