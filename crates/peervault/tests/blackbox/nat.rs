//! Nodes behind NAT: two "home" nodes, each behind its own router that
//! masquerades (iptables) onto a shared "internet", and a relay node there. The
//! homes find each other through the relay, connect through it, and either punch
//! a hole for a direct connection (routers that keep ports: the usual home NAT)
//! or stay relayed (routers that pick random ports, where no hole can be punched).
//! Both ways, files cross in both directions.
//!
//! Everything lives in namespaces the test creates and removes. It needs root,
//! `ip` and `iptables`; without them it fails under `CI=true` and is skipped
//! (saying why) elsewhere.

use std::time::{Duration, Instant};

use crate::harness::{NO_KEY, TestNode, hash_file, write_random_file};
use crate::netlab::{Namespaces, in_ns, ip, link, missing_capability};

const MIB: u64 = 1024 * 1024;

/// The test network: the internet (holding the relay), two routers, two homes.
struct Internet {
    _namespaces: Namespaces,
    public: String,
    homes: [String; 2],
}

/// How the routers translate addresses.
#[derive(Clone, Copy)]
enum Nat {
    /// Ports kept where possible (Linux's default masquerade): holes can be punched.
    KeepsPorts,
    /// A random port for every connection (a "symmetric" NAT): no hole can be.
    RandomPorts,
}

fn build(tag: &str, nat: Nat) -> Result<Internet, String> {
    let mut ns = Namespaces::default();
    let id = std::process::id();
    let net = 100
        + (id % 50)
        + if matches!(nat, Nat::KeepsPorts) {
            0
        } else {
            50
        };
    let wan = |host: u32| format!("10.{net}.0.{host}");
    let public = ns.add(tag, "pub")?;
    ip(&["-n", &public, "link", "add", "br0", "type", "bridge"])?;
    ip(&[
        "-n",
        &public,
        "addr",
        "add",
        &format!("{}/24", wan(1)),
        "dev",
        "br0",
    ])?;
    ip(&["-n", &public, "link", "set", "br0", "up"])?;
    let mut homes = Vec::new();
    for k in 1..=2u32 {
        let router = ns.add(tag, &format!("r{k}"))?;
        let home = ns.add(tag, &format!("h{k}"))?;
        let port = format!("w{k}");
        link(
            &router,
            "wan",
            Some(&format!("{}/24", wan(1 + k))),
            &public,
            &port,
            None,
        )?;
        ip(&["-n", &public, "link", "set", &port, "master", "br0"])?;
        let lan = format!("192.168.{}.", 10 + k);
        link(
            &router,
            "lan",
            Some(&format!("{lan}1/24")),
            &home,
            "eth0",
            Some(&format!("{lan}2/24")),
        )?;
        ip(&[
            "-n",
            &home,
            "route",
            "add",
            "default",
            "via",
            &format!("{lan}1"),
        ])?;
        in_ns(&router, "sysctl", &["-q", "-w", "net.ipv4.ip_forward=1"])?;
        let mut rule = vec![
            "-t",
            "nat",
            "-A",
            "POSTROUTING",
            "-o",
            "wan",
            "-j",
            "MASQUERADE",
        ];
        if matches!(nat, Nat::RandomPorts) {
            rule.push("--random-fully");
        }
        in_ns(&router, "iptables", &rule)?;
        // Like a home router's firewall: unsolicited connections from outside are
        // dropped silently (not answered with a reset), to the router and beyond.
        for chain in ["INPUT", "FORWARD"] {
            in_ns(
                &router,
                "iptables",
                &[
                    "-A",
                    chain,
                    "-i",
                    "wan",
                    "-m",
                    "conntrack",
                    "--ctstate",
                    "NEW",
                    "-j",
                    "DROP",
                ],
            )?;
        }
        homes.push(home);
    }
    Ok(Internet {
        _namespaces: ns,
        public,
        homes: [homes[0].clone(), homes[1].clone()],
    })
}

fn internet(tag: &str, nat: Nat) -> Option<Internet> {
    if let Some(why) = missing_capability(tag, &["iptables"]) {
        assert!(
            std::env::var_os("CI").is_none(),
            "NAT test cannot run: {why}"
        );
        eprintln!("skipping the NAT test: {why}");
        return None;
    }
    Some(build(tag, nat).expect("building the test network"))
}

fn peer_entry(node: &TestNode, peer: &str) -> Option<serde_json::Value> {
    let peers: Vec<serde_json::Value> =
        serde_json::from_str(&node.ok(&["peers", "--json"])).unwrap();
    peers.into_iter().find(|p| p["peer_id"] == peer)
}

/// Starts the relay and both homes, waits until the homes are connected to each
/// other, exchanges a file each way, and returns the path the homes' connection
/// ended on.
fn homes_exchange_files(tag: &str, nat: Nat, settle_on: &str) -> String {
    let Some(net) = internet(tag, nat) else {
        return settle_on.to_string();
    };
    let dir = tempfile::tempdir().unwrap();
    // As users run it: every node on the default port, on every interface (so
    // each also listens on its own 127.0.0.1:3000), no key given. The relay makes
    // the vault's key; the homes join with its code, whose addresses include the
    // relay's 127.0.0.1:3000, which from a home leads back to that home itself.
    let relay = TestNode::start_in_netns(
        &net.public,
        &dir.path().join("relay"),
        NO_KEY,
        &["--addr", ":3000", "--relay", "--replicas", "1"],
    );
    let homes: Vec<TestNode> = (0..2)
        .map(|k| {
            // One invitation per device.
            let code = relay.ok(&["invite"]).trim().to_string();
            TestNode::start_in_netns(
                &net.homes[k],
                &dir.path().join(format!("home{k}")),
                NO_KEY,
                &["--addr", ":3000", "--join", &code, "--replicas", "1"],
            )
        })
        .collect();
    let ids: Vec<String> = homes.iter().map(TestNode::peer_id).collect();
    let started = Instant::now();
    // Each home learns it is behind NAT, reserves a slot on the relay, and dials
    // the other through it.
    let deadline = Instant::now() + Duration::from_secs(90);
    while peer_entry(&homes[0], &ids[1]).is_none() || peer_entry(&homes[1], &ids[0]).is_none() {
        assert!(
            Instant::now() < deadline,
            "the homes never met:\n--- home 0\n{}\n--- home 1\n{}\n--- relay\n{}",
            homes[0].log(),
            homes[1].log(),
            relay.log()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let met = started.elapsed();
    for (k, home) in homes.iter().enumerate() {
        let log = home.log();
        assert!(
            !log.contains("network key mismatch"),
            "home {k} took itself or a member for a stranger:\n{log}"
        );
    }
    for home in &homes {
        let status: serde_json::Value =
            serde_json::from_str(&home.ok(&["status", "--json"])).unwrap();
        assert!(
            status["reachability"]
                .as_str()
                .unwrap()
                .starts_with("private"),
            "{status}"
        );
        assert!(
            status["relayed_addrs"][0]
                .as_str()
                .unwrap()
                .contains("/p2p-circuit"),
            "{status}"
        );
    }
    // Let the path settle: a hole is punched within seconds of meeting, or not.
    let deadline = Instant::now() + Duration::from_secs(20);
    let path = loop {
        let path = peer_entry(&homes[0], &ids[1])
            .map(|p| p["path"].as_str().unwrap_or_default().to_string())
            .unwrap_or_default();
        if path == settle_on || Instant::now() > deadline {
            break path;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    eprintln!(
        "NAT test ({tag}): the homes met through the relay after {met:?}; their connection is {path}"
    );
    if path != settle_on {
        for (k, home) in homes.iter().enumerate() {
            let punching: Vec<String> = home
                .log()
                .lines()
                .filter(|l| {
                    l.contains("hole")
                        || l.contains("reachab")
                        || l.contains("relay")
                        || l.contains("connected")
                })
                .map(str::to_string)
                .collect();
            eprintln!("home {k}:\n{}", punching.join("\n"));
        }
    }

    // A file each way: with one copy each, the bytes must cross between the homes.
    for (writer, reader, seed) in [(0, 1, 1u64), (1, 0, 2)] {
        let name = format!("from-home-{writer}.bin");
        let input = dir.path().join(&name);
        let hash = write_random_file(&input, 3 * MIB + 11, seed);
        homes[writer].ok(&["put", input.to_str().unwrap()]);
        let deadline = Instant::now() + Duration::from_secs(30);
        while !homes[reader]
            .ls()
            .iter()
            .any(|f| f["name"] == name.as_str())
        {
            assert!(
                Instant::now() < deadline,
                "home {reader} never listed {name}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        let copy = dir.path().join(format!("copy-{name}"));
        homes[reader].ok(&["get", &name, "-o", copy.to_str().unwrap()]);
        assert_eq!(hash_file(&copy), hash, "{name} read on home {reader}");
        let entry = homes[reader]
            .ls()
            .into_iter()
            .find(|f| f["name"] == name.as_str());
        assert_eq!(entry.unwrap()["local"], false, "the reader holds no copy");
        // Replication crosses the same path: the writer copies the file to the
        // other home, which then holds it.
        let sent = homes[writer].ok(&["send", &name, &ids[reader]]);
        assert!(sent.contains("sent to"), "{sent}");
        let entry = homes[reader]
            .ls()
            .into_iter()
            .find(|f| f["name"] == name.as_str());
        assert_eq!(entry.unwrap()["local"], true, "the copy arrived");
    }
    let status: serde_json::Value =
        serde_json::from_str(&homes[0].ok(&["status", "--json"])).unwrap();
    assert!(
        status["paths"][&path].as_u64().unwrap_or(0) >= 1,
        "{status}"
    );
    assert!(homes[0].ok(&["status"]).contains("Connections:"));
    path
}

#[test]
fn homes_behind_port_keeping_nats_punch_a_hole_and_exchange_files() {
    let path = homes_exchange_files("nk", Nat::KeepsPorts, "hole-punched");
    assert_eq!(path, "hole-punched");
}

#[test]
fn homes_behind_random_port_nats_stay_relayed_and_still_exchange_files() {
    let path = homes_exchange_files("nr", Nat::RandomPorts, "relayed");
    assert_eq!(path, "relayed");
}
