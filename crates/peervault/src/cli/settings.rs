//! Settings: the command line, an optional TOML file, and defaults, merged and validated.
//!
//! Precedence: command line (and `PEERVAULT_KEY`), then the `--config` file, then
//! defaults. Every value is validated here, once, so that the rest of the program
//! works with typed settings and a bad value fails at start with a message that names
//! the flag or the config key.

use std::path::{Path, PathBuf};
use std::time::Duration;

use peervault_net::{Endpoint, NetSettings};
use peervault_node::invitations::InvitationCode;
use peervault_node::{
    DEFAULT_MAX_PEERS, DEFAULT_PEX_INTERVAL, DEFAULT_REPLICAS, DEFAULT_SYNC_INTERVAL,
    DEFAULT_TOMBSTONE_RETENTION, JoinCode, KeyInput, MaintenanceConfig, NodeConfig, Replicas,
    parse_size,
};
use serde::Deserialize;

use super::args::{Cli, GlobalArgs, LogFormat, NodeArgs};

/// Listen address when none is given.
pub const DEFAULT_ADDR: &str = ":3000";

/// The contents of a `--config` file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    pub addr: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub log_level: Option<String>,
    pub log_format: Option<LogFormat>,
    pub verbose: Option<bool>,
    pub debug: Option<bool>,
    pub key: Option<String>,
    pub join: Option<String>,
    pub http_allow_host: Option<StringList>,
    pub interactive: Option<bool>,
    pub quota: Option<String>,
    pub transfer_memory: Option<String>,
    pub rekey_rate: Option<String>,
    pub max_upload_rate: Option<String>,
    pub max_download_rate: Option<String>,
    pub advertise: Option<String>,
    pub advertise_only: Option<bool>,
    pub relay: Option<bool>,
    pub bootstrap: Option<StringList>,
    pub public_ip: Option<bool>,
    pub metrics: Option<String>,
    pub s3: Option<String>,
    pub s3_domain: Option<String>,
    pub discover_local: Option<bool>,
    pub discover_pex: Option<bool>,
    pub replicas: Option<Scalar>,
    pub redundancy: Option<String>,
    pub pex_interval: Option<String>,
    pub gc_interval: Option<String>,
    pub gc_delay: Option<String>,
    pub gc_grace: Option<String>,
    pub repair_delay: Option<String>,
    pub tombstone_retention: Option<String>,
    pub keep_versions: Option<u32>,
    pub version_retention: Option<String>,
    pub max_peers: Option<usize>,
    pub sync_interval: Option<String>,
}

/// `bootstrap = ["a:1", "b:2"]` or `bootstrap = "a:1,b:2"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum StringList {
    List(Vec<String>),
    Joined(String),
}

impl StringList {
    /// The items, whichever way they were written.
    fn items(&self) -> Vec<String> {
        match self {
            StringList::List(items) => items.clone(),
            StringList::Joined(text) => text.split(',').map(str::to_string).collect(),
        }
    }
}

/// `replicas = 3` or `replicas = "all"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Scalar {
    Number(u64),
    Text(String),
}

/// Settings shared by the node and the client commands.
#[derive(Debug, Clone)]
pub struct CommonSettings {
    pub addr: Endpoint,
    pub data_dir: PathBuf,
    /// True if the data dir was derived from the port rather than given.
    pub data_dir_is_default: bool,
    /// Log filter directive.
    pub log_filter: String,
    pub log_format: LogFormat,
}

/// Everything a node needs to start.
#[derive(Debug, Clone)]
pub struct NodeSettings {
    pub common: CommonSettings,
    /// The node's configuration as `Node::start` takes it: data dir, key
    /// (`--key`, `--join`, or the data dir's), quota (`None` asks on a first
    /// interactive start, else keeps the saved one), the network's part (listen
    /// address from `common.addr`), replicas, timings. One type: the binary adds
    /// nothing to copy over.
    pub node: NodeConfig,
    pub interactive: bool,
    pub metrics: Option<Endpoint>,
    /// Where the S3 gateway listens, and its virtual-host domain.
    pub s3: Option<Endpoint>,
    pub s3_domain: Option<String>,
    /// Host names the HTTP server answers to besides its address and localhost.
    pub http_allow_host: Vec<String>,
    pub demo: bool,
    /// Where the config file came from, for messages.
    pub config_path: Option<PathBuf>,
}

/// A setting that failed validation.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("invalid value for {origin}: {message}")]
    Invalid { origin: String, message: String },
    #[error("cannot read the config file {path}: {source}")]
    ReadConfig {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the config file {path} is not valid: {message}")]
    ParseConfig { path: PathBuf, message: String },
}

fn invalid(origin: &str, message: impl ToString) -> SettingsError {
    SettingsError::Invalid {
        origin: origin.to_string(),
        message: message.to_string(),
    }
}

/// Names a value's origin for messages: `--addr` or `addr in config.toml`.
fn origin(flag: &str, from_cli: bool, config: Option<&Path>) -> String {
    match (from_cli, config) {
        (true, _) | (false, None) => format!("--{flag}"),
        (false, Some(path)) => format!("{} in {}", flag.replace('-', "_"), path.display()),
    }
}

/// Reads a `--config` file.
pub fn load_config_file(path: &Path) -> Result<ConfigFile, SettingsError> {
    let text = std::fs::read_to_string(path).map_err(|source| SettingsError::ReadConfig {
        path: path.to_path_buf(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| SettingsError::ParseConfig {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// `$XDG_DATA_HOME/peervault/node_port_<port>` (or `./peervault-data/...` if the
/// home directory is unknown, as for some service accounts).
pub fn default_data_dir(port: u16) -> PathBuf {
    let base = directories::BaseDirs::new()
        .map(|dirs| dirs.data_dir().join("peervault"))
        .unwrap_or_else(|| PathBuf::from("peervault-data"));
    base.join(format!("node_port_{port}"))
}

fn parse_duration(origin: &str, text: &str) -> Result<Duration, SettingsError> {
    let duration = humantime::parse_duration(text.trim()).map_err(|e| {
        invalid(
            origin,
            format!("{text:?} is not a duration ({e}); examples: 30s, 5m, 1h"),
        )
    })?;
    if duration.is_zero() {
        return Err(invalid(origin, "the duration must be longer than zero"));
    }
    Ok(duration)
}

fn parse_replicas(origin: &str, value: &Scalar) -> Result<Replicas, SettingsError> {
    let text = match value {
        Scalar::Number(n) => n.to_string(),
        Scalar::Text(t) => t.trim().to_ascii_lowercase(),
    };
    if text == "all" {
        return Ok(Replicas::All);
    }
    match text.parse::<u32>() {
        Ok(n) if n >= 1 => Ok(Replicas::Count(n)),
        _ => Err(invalid(
            origin,
            format!("{text:?} is not a number of copies (1 or more) or \"all\""),
        )),
    }
}

fn parse_endpoint(origin: &str, text: &str) -> Result<Endpoint, SettingsError> {
    Endpoint::parse(text).map_err(|e| invalid(origin, e))
}

/// Picks the CLI value if given, else the config file's, and names where it came from.
fn pick<T>(
    cli: Option<T>,
    file: Option<T>,
    flag: &str,
    config: Option<&Path>,
) -> Option<(T, String)> {
    match (cli, file) {
        (Some(v), _) => Some((v, origin(flag, true, config))),
        (None, Some(v)) => Some((v, origin(flag, false, config))),
        (None, None) => None,
    }
}

fn common(
    global: &GlobalArgs,
    file: &ConfigFile,
    config: Option<&Path>,
    interactive: bool,
) -> Result<CommonSettings, SettingsError> {
    let addr = match pick(global.addr.clone(), file.addr.clone(), "addr", config) {
        Some((text, origin)) => parse_endpoint(&origin, &text)?,
        None => parse_endpoint("--addr", DEFAULT_ADDR)?,
    };
    let (data_dir, data_dir_is_default) = match pick(
        global.data_dir.clone(),
        file.data_dir.clone(),
        "data-dir",
        config,
    ) {
        Some((dir, origin)) => {
            if dir.as_os_str().is_empty() {
                return Err(invalid(&origin, "the path is empty"));
            }
            // Absolute, so messages, status and the quota file name one place.
            let dir = std::path::absolute(&dir).map_err(|e| invalid(&origin, e))?;
            (dir, false)
        }
        None => {
            let dir = default_data_dir(addr.port);
            (std::path::absolute(&dir).unwrap_or(dir), true)
        }
    };
    let debug =
        global.verbose || global.debug || file.verbose == Some(true) || file.debug == Some(true);
    let log_filter = match pick(
        global.log_level.clone(),
        file.log_level.clone(),
        "log-level",
        config,
    ) {
        Some((level, origin)) => {
            tracing_subscriber::EnvFilter::try_new(&level).map_err(|e| {
                invalid(
                    &origin,
                    format!("{level:?} is not a log level or filter ({e}); try info or debug"),
                )
            })?;
            level
        }
        None if debug => "debug".to_string(),
        None => match std::env::var("RUST_LOG") {
            Ok(filter) if !filter.is_empty() => filter,
            _ if interactive => "warn".to_string(),
            _ => "info".to_string(),
        },
    };
    let log_format = global.log_format.or(file.log_format).unwrap_or_default();
    Ok(CommonSettings {
        log_format,
        addr,
        data_dir,
        data_dir_is_default,
        log_filter,
    })
}

/// Settings for a client command (only the shared options matter).
pub fn client_settings(cli: &Cli) -> Result<CommonSettings, SettingsError> {
    let file = match &cli.global.config {
        Some(path) => load_config_file(path)?,
        None => ConfigFile::default(),
    };
    common(&cli.global, &file, cli.global.config.as_deref(), false)
}

/// Where the vault's key comes from: `--key` (a passphrase or 64 hex digits),
/// `--join` (a code from `peervault invite`), or else the data dir.
fn key_input(
    node: &NodeArgs,
    file: &ConfigFile,
    config: Option<&Path>,
) -> Result<KeyInput, SettingsError> {
    let key = pick(node.key.clone(), file.key.clone(), "key", config)
        .map(|(text, origin)| (text, origin.replace("--key", "--key (or PEERVAULT_KEY)")));
    let join = pick(node.join.clone(), file.join.clone(), "join", config)
        .map(|(text, origin)| (text, origin.replace("--join", "--join (or PEERVAULT_JOIN)")));
    match (key, join) {
        (Some((_, key_origin)), Some((_, join_origin))) => Err(invalid(
            &join_origin,
            format!(
                "give either {key_origin} or the join code, not both: a join code brings the vault's key"
            ),
        )),
        (Some((text, origin)), None) => {
            if text.trim().is_empty() {
                return Err(invalid(
                    &origin,
                    "the key is empty: give 64 hex digits or a passphrase",
                ));
            }
            KeyInput::parse_key(&text).map_err(|e| invalid(&origin, e))
        }
        (None, Some((text, origin))) if InvitationCode::is_invitation(&text) => {
            InvitationCode::parse(&text)
                .map(KeyInput::Invitation)
                .map_err(|e| invalid(&origin, e))
        }
        (None, Some((text, origin))) => JoinCode::parse(&text)
            .map(KeyInput::Join)
            .map_err(|e| invalid(&origin, e)),
        (None, None) => Ok(KeyInput::Stored),
    }
}

/// Settings for running a node.
/// A size given as `picked` (text and where it came from), of at least `min`
/// bytes; `too_small` says why a smaller one is refused.
fn size_setting(
    picked: Option<(String, String)>,
    min: u64,
    too_small: impl Fn(&str) -> String,
) -> Result<Option<u64>, SettingsError> {
    let Some((text, origin)) = picked else {
        return Ok(None);
    };
    let bytes = parse_size(&text).map_err(|e| invalid(&origin, e))?;
    if bytes < min {
        return Err(invalid(&origin, too_small(&text)));
    }
    Ok(Some(bytes))
}

pub fn node_settings(cli: &Cli) -> Result<NodeSettings, SettingsError> {
    let config_path = cli.global.config.clone();
    let config = config_path.as_deref();
    let file = match config {
        Some(path) => load_config_file(path)?,
        None => ConfigFile::default(),
    };
    let node: &NodeArgs = &cli.node;
    let interactive = node.interactive || file.interactive == Some(true);
    // The prompt and the demo's story are the output: logs default to warnings.
    let common = common(&cli.global, &file, config, interactive || node.demo)?;
    let flag = |cli_set: bool, file_value: Option<bool>| cli_set || file_value == Some(true);

    let quota = size_setting(
        pick(node.quota.clone(), file.quota.clone(), "quota", config),
        1,
        |_| "a quota of 0 bytes would refuse every file".to_string(),
    )?;
    let transfer_memory = size_setting(
        pick(
            node.transfer_memory.clone(),
            file.transfer_memory.clone(),
            "transfer-memory",
            config,
        ),
        peervault_node::MIN_TRANSFER_MEMORY,
        |text| {
            format!(
                "{text} cannot hold the buffers of one transfer; give at least {}",
                peervault_node::HumanSize(peervault_node::MIN_TRANSFER_MEMORY)
            )
        },
    )?
    .unwrap_or(peervault_node::DEFAULT_TRANSFER_MEMORY);
    let rekey_rate = size_setting(
        pick(
            node.rekey_rate.clone(),
            file.rekey_rate.clone(),
            "rekey-rate",
            config,
        ),
        1024 * 1024,
        |text| format!("{text} would take days for a few gigabytes; give at least 1MB"),
    )?
    .unwrap_or(peervault_node::rekey::DEFAULT_REKEY_RATE);
    let mut limits = peervault_node::RateLimits::default();
    for (flag, file_value, key, slot) in [
        (
            &node.max_upload_rate,
            &file.max_upload_rate,
            "max-upload-rate",
            &mut limits.upload_bytes_per_second,
        ),
        (
            &node.max_download_rate,
            &file.max_download_rate,
            "max-download-rate",
            &mut limits.download_bytes_per_second,
        ),
    ] {
        if let Some((text, origin)) = pick(flag.clone(), file_value.clone(), key, config) {
            *slot = crate::ui::parse_rate(&text).map_err(|e| invalid(&origin, e))?;
        }
    }
    let advertise = match pick(
        node.advertise.clone(),
        file.advertise.clone(),
        "advertise",
        config,
    ) {
        Some((text, origin)) => Some(parse_endpoint(&origin, &text)?),
        None => None,
    };
    let bootstrap_texts: Option<(Vec<String>, String)> = if !node.bootstrap.is_empty() {
        Some((node.bootstrap.clone(), origin("bootstrap", true, config)))
    } else {
        file.bootstrap
            .as_ref()
            .map(|list| (list.items(), origin("bootstrap", false, config)))
    };
    let bootstrap = match bootstrap_texts {
        Some((items, origin)) => items
            .iter()
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .map(|s| parse_endpoint(&origin, s))
            .collect::<Result<Vec<_>, _>>()?,
        None => Vec::new(),
    };
    let metrics = match pick(
        node.metrics.clone(),
        file.metrics.clone(),
        "metrics",
        config,
    ) {
        Some((text, origin)) => Some(parse_endpoint(&origin, &text)?),
        None => None,
    };
    let s3 = match pick(node.s3.clone(), file.s3.clone(), "s3", config) {
        Some((text, origin)) => Some(parse_endpoint(&origin, &text)?),
        None => None,
    };
    let s3_domain = pick(
        node.s3_domain.clone(),
        file.s3_domain.clone(),
        "s3-domain",
        config,
    )
    .map(|(domain, _)| domain);
    let replicas = match pick(
        node.replicas.clone().map(Scalar::Text),
        file.replicas.clone(),
        "replicas",
        config,
    ) {
        Some((value, origin)) => parse_replicas(&origin, &value)?,
        None => Replicas::Count(DEFAULT_REPLICAS),
    };
    let redundancy = match pick(
        node.redundancy.clone(),
        file.redundancy.clone(),
        "redundancy",
        config,
    ) {
        Some((text, origin)) => match peervault_node::Keeping::parse(&text) {
            Ok(keeping) => keeping.redundancy(None),
            Err(e) => return Err(invalid(&origin, e)),
        },
        None => None,
    };
    let duration = |cli: &Option<String>, file: &Option<String>, flag: &str, default| match pick(
        cli.clone(),
        file.clone(),
        flag,
        config,
    ) {
        Some((text, origin)) => parse_duration(&origin, &text),
        None => Ok(default),
    };
    let defaults = MaintenanceConfig::default();
    let pex_interval = duration(
        &node.pex_interval,
        &file.pex_interval,
        "pex-interval",
        DEFAULT_PEX_INTERVAL,
    )?;
    let sync_interval = duration(
        &node.sync_interval,
        &file.sync_interval,
        "sync-interval",
        DEFAULT_SYNC_INTERVAL,
    )?;
    let maintenance = MaintenanceConfig {
        gc_interval: duration(
            &node.gc_interval,
            &file.gc_interval,
            "gc-interval",
            defaults.gc_interval,
        )?,
        gc_delay: duration(
            &node.gc_delay,
            &file.gc_delay,
            "gc-delay",
            defaults.gc_delay,
        )?,
        gc_grace: duration(
            &node.gc_grace,
            &file.gc_grace,
            "gc-grace",
            defaults.gc_grace,
        )?,
        repair_delay: duration(
            &node.repair_delay,
            &file.repair_delay,
            "repair-delay",
            defaults.repair_delay,
        )?,
    };
    let tombstone_retention = duration(
        &node.tombstone_retention,
        &file.tombstone_retention,
        "tombstone-retention",
        DEFAULT_TOMBSTONE_RETENTION,
    )?;
    let mut versions = peervault_node::Retention::default();
    if let Some((n, _)) = pick(
        node.keep_versions,
        file.keep_versions,
        "keep-versions",
        config,
    ) {
        versions.keep_versions = n;
    }
    if let Some((text, origin)) = pick(
        node.version_retention.clone(),
        file.version_retention.clone(),
        "version-retention",
        config,
    ) {
        versions.keep_for = match text.trim() {
            "0" => Duration::ZERO,
            text => humantime::parse_duration(text).map_err(|e| {
                invalid(
                    &origin,
                    format!("{text:?} is not a duration ({e}); examples: 30d, 12h, 0"),
                )
            })?,
        };
    }
    let max_peers = match pick(node.max_peers, file.max_peers, "max-peers", config) {
        Some((0, origin)) => {
            return Err(invalid(
                &origin,
                "at least 1 peer is needed to join a vault",
            ));
        }
        Some((n, _)) => n,
        None => DEFAULT_MAX_PEERS,
    };
    let advertise_only = flag(node.advertise_only, file.advertise_only);
    if advertise_only && advertise.is_none() {
        return Err(invalid(
            &origin("advertise-only", node.advertise_only, config),
            "it needs an address to announce: give --advertise too",
        ));
    }
    let mut net = NetSettings::new(vec![common.addr.clone()]);
    net.advertise = advertise;
    net.advertise_only = advertise_only;
    net.relay_server = flag(node.relay, file.relay);
    net.bootstrap = bootstrap;
    net.public_ip = flag(node.public_ip, file.public_ip);
    net.discover_local = flag(node.discover_local, file.discover_local);
    net.discover_pex = flag(node.discover_pex, file.discover_pex);
    net.pex_interval = pex_interval;
    net.max_peers = max_peers;
    let mut node_config = NodeConfig::new(common.data_dir.clone(), key_input(node, &file, config)?);
    node_config.quota_bytes = quota;
    node_config.net = net;
    node_config.replicas = replicas;
    node_config.redundancy = redundancy;
    node_config.maintenance = maintenance;
    node_config.tombstone_retention = tombstone_retention;
    node_config.versions = versions;
    node_config.sync_interval = sync_interval;
    node_config.limits = limits;
    node_config.transfer_memory = transfer_memory;
    node_config.rekey_rate = rekey_rate;
    Ok(NodeSettings {
        common,
        node: node_config,
        interactive,
        metrics,
        s3,
        s3_domain,
        http_allow_host: match (&node.http_allow_host[..], &file.http_allow_host) {
            ([], Some(list)) => list.items(),
            (given, _) => given.to_vec(),
        }
        .into_iter()
        .map(|h| h.trim().to_ascii_lowercase())
        .filter(|h| !h.is_empty())
        .collect(),
        demo: node.demo,
        config_path,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::args::normalise_args;
    use clap::Parser;

    fn cli(args: &[&str]) -> Cli {
        Cli::try_parse_from(normalise_args(args.iter().map(std::ffi::OsString::from))).unwrap()
    }

    #[test]
    fn defaults() {
        let s = node_settings(&cli(&["peervault"])).unwrap();
        assert_eq!(s.common.addr.port, 3000);
        assert!(s.common.data_dir.ends_with("peervault/node_port_3000"));
        assert!(s.common.data_dir_is_default);
        assert_eq!(s.node.replicas, Replicas::Count(3));
        assert_eq!(s.node.maintenance.gc_interval, Duration::from_secs(3600));
        assert_eq!(s.node.maintenance.gc_delay, Duration::from_secs(300));
        assert_eq!(s.node.maintenance.gc_grace, Duration::from_secs(600));
        assert_eq!(s.node.maintenance.repair_delay, Duration::from_secs(600));
    }

    #[test]
    fn the_default_data_dir_differs_per_port() {
        let a = client_settings(&cli(&["peervault", "-addr", ":4000", "ls"])).unwrap();
        let b = client_settings(&cli(&["peervault", "ls", "--addr", ":5000"])).unwrap();
        assert!(a.data_dir.ends_with("node_port_4000"));
        assert!(b.data_dir.ends_with("node_port_5000"));
    }

    #[test]
    fn bad_values_name_the_flag() {
        for (args, words) in [
            (&["peervault", "-addr", ":99999"][..], "--addr"),
            (&["peervault", "--quota", "lots"], "--quota"),
            (&["peervault", "--quota", "0"], "refuse every file"),
            (
                &["peervault", "--transfer-memory", "1MB"],
                "give at least 8.00 MB",
            ),
            (&["peervault", "--replicas", "0"], "--replicas"),
            (&["peervault", "--gc-interval", "soon"], "--gc-interval"),
            (&["peervault", "-bootstrap", "a:1,nope"], "--bootstrap"),
            (&["peervault", "--log-level", "[[["], "--log-level"),
            (
                &["peervault", "--version-retention", "ages"],
                "--version-retention",
            ),
        ] {
            let e = node_settings(&cli(args)).unwrap_err().to_string();
            assert!(e.contains(words), "{args:?}: {e}");
        }
    }

    #[test]
    fn config_file_fills_in_and_flags_win() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("peervault.toml");
        std::fs::write(
            &path,
            "addr = \":4100\"\nquota = \"5GB\"\nbootstrap = \"localhost:3000,localhost:3001\"\nreplicas = \"all\"\ninteractive = true\nkeep_versions = 3\nversion_retention = \"7d\"\ntransfer_memory = \"128MB\"\n",
        )
        .unwrap();
        let p = path.to_str().unwrap();
        let s = node_settings(&cli(&["peervault", "--config", p])).unwrap();
        assert_eq!(s.common.addr.port, 4100);
        assert_eq!(s.node.quota_bytes, Some(5 << 30));
        assert_eq!(s.node.transfer_memory, 128 << 20);
        assert_eq!(s.node.net.bootstrap.len(), 2);
        assert_eq!(s.node.replicas, Replicas::All);
        assert!(s.interactive);
        assert_eq!(s.node.versions.keep_versions, 3);
        assert_eq!(s.node.versions.keep_for, Duration::from_secs(7 * 86_400));
        let s = node_settings(&cli(&[
            "peervault",
            "--config",
            p,
            "-addr",
            ":4200",
            "--keep-versions",
            "0",
            "--version-retention",
            "0",
        ]))
        .unwrap();
        assert_eq!(s.common.addr.port, 4200);
        assert_eq!(s.node.versions, peervault_node::Retention::NONE);
    }

    #[test]
    fn config_file_errors_are_clear() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "adr = \":1\"\n").unwrap();
        let e = node_settings(&cli(&["peervault", "--config", path.to_str().unwrap()]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("not valid") && e.contains("adr"), "{e}");
        std::fs::write(&path, "quota = \"huge\"\n").unwrap();
        let e = node_settings(&cli(&["peervault", "--config", path.to_str().unwrap()]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("quota in"), "{e}");
        let e = node_settings(&cli(&[
            "peervault",
            "--config",
            "/nonexistent/peervault.toml",
        ]))
        .unwrap_err()
        .to_string();
        assert!(e.contains("cannot read"), "{e}");
    }
}
