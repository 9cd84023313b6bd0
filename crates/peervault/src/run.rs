//! Running a node in the foreground: start-up, the optional REPL, and shutdown.
//!
//! Order of events: settle the quota (asking on first interactive start), start
//! the node (which settles the vault's key, warning loudly about an older data
//! dir's public default), open the control socket, then wait for `quit`, Ctrl-C or SIGTERM. Shutdown closes the
//! control socket first, gives requests in flight a grace period, then drops the
//! node, which releases the data dir.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use peervault_node::{HumanSize, KeyOrigin, KeySource, Node, QuotaConfig, QuotaSource, parse_size};
use tokio::sync::oneshot;

use crate::cli::settings::NodeSettings;
use crate::control::server::ControlServer;
use crate::control::socket::socket_path;
use crate::repl;

/// Time requests in flight get to finish at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// File name of the REPL history inside the data dir.
const HISTORY_FILE: &str = "repl_history";

fn warn_insecure_key(data_dir: &std::path::Path) {
    eprintln!(
        "WARNING: {} was created before vaults had keys of their own: it uses the public\n\
         WARNING: default key, so anyone who reaches this node can join the vault and read it.\n\
         WARNING: Move the files to a vault with a key of its own: start a node on a new data dir\n\
         WARNING: (it makes a random key), copy the files over with `get` and `put`, retire this one.",
        data_dir.display()
    );
}

/// What the start-up banner says about the vault's key.
fn describe_key(node: &Node, data_dir: &std::path::Path) -> String {
    let kept = data_dir.join(peervault_node::keyring::VAULT_KEY_FILE);
    match (node.key_origin(), node.key_source()) {
        (KeyOrigin::Created, _) => format!("new, random, kept in {}", kept.display()),
        (KeyOrigin::Kept, KeySource::Joined) => format!("joined, kept in {}", kept.display()),
        (KeyOrigin::Kept, _) => format!("kept in {}", kept.display()),
        (KeyOrigin::Joined, _) => format!("from the join code, kept in {}", kept.display()),
        (KeyOrigin::Given, KeySource::Passphrase) => {
            "passphrase (Argon2id with this vault's salt)".to_string()
        }
        (KeyOrigin::Given, _) => "given with --key".to_string(),
        (KeyOrigin::LegacyDefault, _) => "the public default (insecure: see the warning)".into(),
    }
}

/// Asks for the quota on the first interactive start, as the original does.
fn prompt_for_quota(settings: &NodeSettings) -> anyhow::Result<Option<u64>> {
    let data_dir = &settings.common.data_dir;
    if settings.node.quota_bytes.is_some()
        || !settings.interactive
        || !std::io::stdin().is_terminal()
        || QuotaConfig::load(data_dir)?.is_some()
    {
        return Ok(None);
    }
    println!("=== Storage Quota Configuration ===");
    println!("No quota is set yet for {}.", data_dir.display());
    println!("Choose how much disk space this node may use for the vault.");
    println!();
    let stdin = std::io::stdin();
    loop {
        print!("Enter maximum storage size (e.g., 1GB, 500MB, 10GB): ");
        std::io::stdout().flush()?;
        let mut line = String::new();
        if stdin.lock().read_line(&mut line)? == 0 {
            return Ok(None);
        }
        match parse_size(&line) {
            Ok(0) => println!("The quota must be larger than zero."),
            Ok(bytes) => {
                println!("Storage quota set to: {} ({bytes} bytes)", HumanSize(bytes));
                return Ok(Some(bytes));
            }
            Err(e) => println!("{e}"),
        }
    }
}

fn describe_quota(node: &Node) -> String {
    let total = HumanSize(node.quota().total_bytes);
    match node.quota_source() {
        QuotaSource::File => format!("{total} (from .quota_config.json)"),
        QuotaSource::Configured => format!("{total} (saved to .quota_config.json)"),
        QuotaSource::Default => {
            format!("{total} (default; change it with --quota SIZE or 'quota set SIZE')")
        }
    }
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = ctrl_c.await;
        }
    }
}

/// The flags a client command needs to reach this node (none for the defaults).
fn client_flags(settings: &NodeSettings) -> String {
    if !settings.common.data_dir_is_default {
        format!(" --data-dir {}", settings.common.data_dir.display())
    } else if settings.common.addr.port != 3000 {
        format!(" --addr :{}", settings.common.addr.port)
    } else {
        String::new()
    }
}

/// Runs a node until it is told to stop.
pub async fn run_node(settings: NodeSettings) -> anyhow::Result<ExitCode> {
    if settings.demo {
        return crate::demo::run().await;
    }
    let data_dir = settings.common.data_dir.clone();
    let mut config = settings.node.clone();
    if config.quota_bytes.is_none() {
        config.quota_bytes = prompt_for_quota(&settings)?;
    }
    let node = Node::start(config).await.map_err(anyhow::Error::new)?;
    let status = node.status().await?;
    if node.key_origin() == KeyOrigin::LegacyDefault {
        warn_insecure_key(&data_dir);
    }

    println!("PeerVault node {} started", node.peer_id());
    println!("  Listening:  {}", status.listen_addrs.join(", "));
    if !status.advertised_addrs.is_empty() {
        println!("  Advertised: {}", status.advertised_addrs.join(", "));
    }
    println!(
        "  Data dir:   {}{}",
        data_dir.display(),
        if settings.common.data_dir_is_default {
            " (default for this port)"
        } else {
            ""
        }
    );
    println!("  Vault key:  {}", describe_key(&node, &data_dir));
    println!("  Quota:      {}", describe_quota(&node));
    match node.redundancy() {
        Some(r) => println!(
            "  Redundancy: {r} (each chunk in {} shards on {} nodes, any {} rebuild it)",
            r.total(),
            r.total(),
            r.data()
        ),
        None => println!(
            "  Replicas:   {} (copies of each file, counting this node)",
            node.replicas()
        ),
    }
    if !settings.node.net.bootstrap.is_empty() {
        let names: Vec<String> = settings
            .node
            .net
            .bootstrap
            .iter()
            .map(ToString::to_string)
            .collect();
        println!(
            "  Bootstrap:  {} (retried until they answer)",
            names.join(", ")
        );
    }
    let mut discovery = Vec::new();
    if settings.node.net.discover_local {
        discovery.push("mDNS on the local network".to_string());
    }
    if settings.node.net.discover_pex {
        discovery.push(format!(
            "peer exchange every {}",
            humantime::format_duration(settings.node.net.pex_interval)
        ));
    }
    discovery.push("DHT".to_string());
    println!("  Discovery:  {}", discovery.join(", "));
    let m = &settings.node.maintenance;
    println!(
        "  GC:         first in {}, then every {}; repair after {} without a holder",
        humantime::format_duration(m.gc_delay),
        humantime::format_duration(m.gc_interval),
        humantime::format_duration(m.repair_delay)
    );
    println!("  Versions:   {}", versions_line(&settings.node.versions));
    println!("  Control:    {}", socket_path(&data_dir).display());
    let http_stop = tokio_util::sync::CancellationToken::new();
    if let Some(endpoint) = &settings.metrics {
        let token = crate::http::load_or_create_token(&data_dir)?;
        let (bound, _) = crate::http::serve(
            node.clone(),
            endpoint,
            token.clone(),
            settings.http_allow_host.clone(),
            http_stop.clone(),
        )
        .await?;
        let shown = if bound.ip().is_unspecified() {
            std::net::SocketAddr::from(([127, 0, 0, 1], bound.port()))
        } else {
            bound
        };
        println!("  Dashboard:  http://{shown}/?token={token}");
        println!(
            "  Metrics:    http://{shown}/metrics, /metrics/json, /metrics/human, /health (no token needed)"
        );
    }

    let _s3 = match &settings.s3 {
        Some(endpoint) => Some(start_s3(&node, endpoint, settings.s3_domain.clone()).await?),
        None => None,
    };

    if node.key_origin() == KeyOrigin::Created {
        println!(
            "A new vault. To add a node: run `peervault invite{}` here, then start the other \
             node with `peervault -join CODE`.",
            client_flags(&settings)
        );
    }
    if !settings.interactive {
        println!(
            "Use `peervault put|get|ls|rm|status` from another terminal; Ctrl-C stops the node."
        );
    }
    std::io::stdout().flush()?;

    let control = ControlServer::start(node.clone()).await.with_context(|| {
        format!(
            "cannot open the control socket {}",
            socket_path(&data_dir).display()
        )
    })?;

    if settings.interactive {
        let (done_tx, done_rx) = oneshot::channel();
        let (repl_node, rt) = (node.clone(), tokio::runtime::Handle::current());
        let history = data_dir.join(HISTORY_FILE);
        std::thread::Builder::new()
            .name("repl".into())
            .spawn(move || {
                if let Err(e) = repl::run(repl_node, rt, &history) {
                    eprintln!("error: {}", crate::ui::error_text(&e));
                }
                let _ = done_tx.send(());
            })
            .context("cannot start the REPL thread")?;
        tokio::select! {
            _ = done_rx => {}
            _ = wait_for_signal() => println!(),
        }
    } else {
        wait_for_signal().await;
    }

    println!("Stopping the node...");
    http_stop.cancel();
    control.stop(SHUTDOWN_GRACE).await;
    node.shutdown(SHUTDOWN_GRACE).await;
    drop(node);
    println!("PeerVault node stopped.");
    Ok(ExitCode::SUCCESS)
}

/// What the start banner says of the versions kept.
fn versions_line(kept: &peervault_node::Retention) -> String {
    let secs = kept.keep_for.as_secs();
    let time = match secs {
        s if s > 0 && s % 86_400 == 0 => format!("{} days", s / 86_400),
        _ => humantime::format_duration(kept.keep_for).to_string(),
    };
    match (kept.keep_versions, kept.keep_for.is_zero()) {
        (0, true) => "none kept (an overwrite or a delete frees its space at once)".into(),
        (0, false) => format!("every old version from the last {time} (undelete, restore)"),
        (n, true) => format!("the last {n} old versions of each file (undelete, restore)"),
        (n, false) => format!(
            "the last {n} old versions of each file, and every one from the last {time} (undelete, restore)"
        ),
    }
}

/// Starts the S3 gateway on `endpoint` and says where it is.
async fn start_s3(
    node: &Node,
    endpoint: &peervault_net::Endpoint,
    domain: Option<String>,
) -> anyhow::Result<peervault_s3::S3Gateway> {
    use peervault_net::Host;
    let addr = match &endpoint.host {
        Host::Unspecified => format!("0.0.0.0:{}", endpoint.port),
        Host::Ip(ip) => std::net::SocketAddr::new(*ip, endpoint.port).to_string(),
        Host::Name(name) => format!("{name}:{}", endpoint.port),
    };
    let config = peervault_s3::GatewayConfig { addr, domain };
    let gateway = peervault_s3::S3Gateway::start(node.clone(), &config).await?;
    let bound = gateway.local_addr();
    let shown = if bound.ip().is_unspecified() {
        std::net::SocketAddr::from(([127, 0, 0, 1], bound.port()))
    } else {
        bound
    };
    let keys = peervault_s3::keys::list(node)
        .await
        .map(|k| k.len())
        .unwrap_or(0);
    println!(
        "  S3:         http://{shown} (path style; {}; `peervault s3 keys create NAME` makes one)",
        crate::ui::plural(keys, "access key")
    );
    Ok(gateway)
}
