//! Little networks for tests: network namespaces, veth pairs, bridges and NAT
//! routers, built by the test that needs them and removed when it ends. Nothing
//! here touches the host's own interfaces or addresses; every address is in a
//! private range that exists only inside the namespaces.

use std::process::Command;

/// Runs `ip args...`.
pub fn ip(args: &[&str]) -> Result<(), String> {
    run("ip", args)
}

/// Runs a command, failing with its stderr.
pub fn run(program: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("{program}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Runs `program args...` inside namespace `ns`.
pub fn in_ns(ns: &str, program: &str, args: &[&str]) -> Result<(), String> {
    let mut full = vec!["netns", "exec", ns, program];
    full.extend_from_slice(args);
    ip(&full)
}

/// Why this machine cannot build namespaced networks, if it cannot. `tools` are
/// other commands the test needs (e.g. `iptables`).
pub fn missing_capability(tag: &str, tools: &[&str]) -> Option<String> {
    if Command::new("ip").arg("-V").output().is_err() {
        return Some("`ip` (iproute2) is not installed".into());
    }
    for tool in tools {
        if Command::new(tool).arg("--version").output().is_err() {
            return Some(format!("`{tool}` is not installed"));
        }
    }
    let probe = format!("pv{tag}{}probe", std::process::id());
    match ip(&["netns", "add", &probe]) {
        Ok(()) => {
            let _ = ip(&["netns", "del", &probe]);
            None
        }
        Err(e) => Some(format!(
            "cannot create network namespaces (root is needed): {e}"
        )),
    }
}

/// Namespaces made by one test, deleted (with their links) when dropped.
#[derive(Default)]
pub struct Namespaces {
    names: Vec<String>,
}

impl Namespaces {
    /// Adds a namespace `pv<tag><pid><name>` with its loopback up.
    pub fn add(&mut self, tag: &str, name: &str) -> Result<String, String> {
        let ns = format!("pv{tag}{}{name}", std::process::id());
        ip(&["netns", "add", &ns])?;
        self.names.push(ns.clone());
        ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        Ok(ns)
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for ns in self.names.iter().rev() {
            let _ = ip(&["netns", "del", ns]);
        }
    }
}

/// A veth pair: `a_name` in `a`, `b_name` in `b`, each with an address (CIDR)
/// unless `None`, both up.
pub fn link(
    a: &str,
    a_name: &str,
    a_addr: Option<&str>,
    b: &str,
    b_name: &str,
    b_addr: Option<&str>,
) -> Result<(), String> {
    ip(&[
        "-n", a, "link", "add", a_name, "type", "veth", "peer", "name", b_name, "netns", b,
    ])?;
    for (ns, name, addr) in [(a, a_name, a_addr), (b, b_name, b_addr)] {
        if let Some(addr) = addr {
            ip(&["-n", ns, "addr", "add", addr, "dev", name])?;
        }
        ip(&["-n", ns, "link", "set", name, "up"])?;
    }
    Ok(())
}
