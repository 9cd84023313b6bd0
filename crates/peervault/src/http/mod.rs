//! The node's HTTP side (`-metrics ADDR`): Prometheus metrics, the same figures as
//! JSON and as text, a health check, and a live dashboard.
//!
//! Everything is served by the node itself, dashboard included (one HTML file
//! with its script and styles inline, compiled into the binary), because nodes
//! often run where there is no internet. The handlers only read: figures come
//! from [`Node::metrics_snapshot`] and friends, which read their sources at the
//! moment of the request, so every number shown is current and true.
//!
//! **Access.** The page is the operator's, not every visitor's:
//!
//! * The dashboard, `/api/files`, `/api/cluster` (file names, sizes, hashes)
//!   and `/api/download` (contents) need the token kept
//!   in `<data dir>/http_token` (0600, made on the first start with `-metrics`),
//!   as `Authorization: Bearer TOKEN`, or once as `?token=TOKEN`, which sets an
//!   `HttpOnly`, `SameSite=Strict` cookie and redirects to the same page without
//!   it. The node prints the dashboard's address with the token at start.
//! * Every request must name this server in its `Host` header: the bound address
//!   (any IP address when bound to all interfaces), `localhost`, or a name given
//!   with `--http-allow-host`. A web page that rebinds its own DNS name to
//!   127.0.0.1 reaches the port but names itself, and is refused (421).
//! * `/metrics`, `/metrics/json`, `/metrics/human`, `/health`, `/health/live`
//!   and `/api/throughput` stay open for scrapers and load balancers; they carry
//!   counts, never file names or hashes.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Json, Response};
use axum::routing::get;
use peervault_net::{Endpoint, Host};
use peervault_node::Node;
use tokio_util::sync::CancellationToken;

use crate::ui;

const DASHBOARD: &str = include_str!("dashboard.html");

/// The Prometheus text format (version 0.0.4) content type.
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The token file in the data dir.
pub const TOKEN_FILE: &str = "http_token";
/// The cookie a `?token=` visit sets.
const TOKEN_COOKIE: &str = "peervault_token";

/// Who may use the HTTP server.
#[derive(Clone)]
pub struct Access {
    token: String,
    /// The bound IP; `None` when bound to every interface.
    bound_ip: Option<IpAddr>,
    /// Names from `--http-allow-host`, lower case.
    allowed_hosts: Vec<String>,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Access")
            .field("bound_ip", &self.bound_ip)
            .field("allowed_hosts", &self.allowed_hosts)
            .finish_non_exhaustive()
    }
}

impl Access {
    pub fn new(token: String, bound_ip: Option<IpAddr>, allowed_hosts: Vec<String>) -> Self {
        Self {
            token,
            bound_ip: bound_ip.filter(|ip| !ip.is_unspecified()),
            allowed_hosts: allowed_hosts
                .into_iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
        }
    }

    /// The token, for the address printed at start.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Whether a request's `Host` names this server.
    fn host_allowed(&self, host: &str) -> bool {
        let host = host.trim().to_ascii_lowercase();
        // Drop the port: `[::1]:9090`, `127.0.0.1:9090`, `name:9090`.
        let name = if let Some(rest) = host.strip_prefix('[') {
            rest.split(']').next().unwrap_or_default().to_string()
        } else {
            match host.rsplit_once(':') {
                Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => name.to_string(),
                _ => host.clone(),
            }
        };
        let name = name.trim_end_matches('.');
        if name == "localhost" || self.allowed_hosts.iter().any(|h| h == name) {
            return true;
        }
        // An address, not a name, cannot be rebound: any of ours will do.
        match name.parse::<IpAddr>() {
            Ok(ip) => self.bound_ip.is_none_or(|bound| bound == ip),
            Err(_) => false,
        }
    }

    fn token_matches(&self, given: &str) -> bool {
        let (a, b) = (self.token.as_bytes(), given.trim().as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

/// Reads the data dir's token, making one (32 random bytes, hex) on first use.
pub fn load_or_create_token(data_dir: &Path) -> anyhow::Result<String> {
    let path = data_dir.join(TOKEN_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) if text.trim().len() >= 32 => return Ok(text.trim().to_string()),
        Ok(_) => anyhow::bail!(
            "{} holds no usable token (32 characters or more); delete it to make a new one",
            path.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => anyhow::bail!("cannot read {}: {e}", path.display()),
    }
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness for a token: {e}"))?;
    let token = hex::encode(bytes);
    peervault_node::keyring::write_private(&path, format!("{token}\n").as_bytes())
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    Ok(token)
}

/// Binds `endpoint` and serves until `shutdown`. Returns the bound address.
pub async fn serve(
    node: Node,
    endpoint: &Endpoint,
    token: String,
    allowed_hosts: Vec<String>,
    shutdown: CancellationToken,
) -> anyhow::Result<(SocketAddr, Access)> {
    let listener = match &endpoint.host {
        Host::Unspecified => tokio::net::TcpListener::bind(("0.0.0.0", endpoint.port)).await,
        Host::Ip(ip) => tokio::net::TcpListener::bind((*ip, endpoint.port)).await,
        Host::Name(name) => tokio::net::TcpListener::bind((name.as_str(), endpoint.port)).await,
    }
    .map_err(|e| {
        anyhow::anyhow!(
            "cannot serve metrics on {endpoint}: {e} (choose another port with -metrics)"
        )
    })?;
    let bound = listener.local_addr()?;
    let access = Access::new(token, Some(bound.ip()), allowed_hosts);
    let app = router(node, access.clone());
    tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await;
        if let Err(e) = served {
            tracing::warn!("the metrics server stopped: {e}");
        }
    });
    Ok((bound, access))
}

/// The routes, on their own for tests.
pub fn router(node: Node, access: Access) -> Router {
    let access = Arc::new(access);
    let operator = Router::new()
        .route("/", get(dashboard))
        .route("/api/files", get(files))
        .route("/api/cluster", get(cluster))
        .route("/api/download", get(download))
        .route_layer(middleware::from_fn_with_state(
            access.clone(),
            require_token,
        ));
    Router::new()
        .route("/metrics", get(prometheus))
        .route("/metrics/json", get(json))
        .route("/metrics/human", get(human))
        .route("/health", get(health))
        .route("/health/live", get(live))
        .route("/api/throughput", get(throughput))
        .merge(operator)
        .layer(middleware::from_fn_with_state(access, require_host))
        .with_state(node)
}

/// Refuses requests that name another server (DNS rebinding).
async fn require_host(State(access): State<Arc<Access>>, request: Request, next: Next) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| request.uri().host())
        .map(str::to_string);
    match host {
        Some(host) if !access.host_allowed(&host) => (
            StatusCode::MISDIRECTED_REQUEST,
            format!(
                "this node does not answer to the host name {host:?}; open it by its address or \
                 localhost, or start it with --http-allow-host NAME\n"
            ),
        )
            .into_response(),
        _ => next.run(request).await,
    }
}

/// The token a request carries: `Authorization: Bearer`, or the cookie.
fn presented_token(headers: &HeaderMap) -> Option<String> {
    if let Some(bearer) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    {
        return Some(bearer.trim().to_string());
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == TOKEN_COOKIE).then(|| value.to_string())
        })
}

/// The query string without its `token` parameter.
fn without_token(uri: &Uri) -> String {
    let rest: Vec<&str> = uri
        .query()
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty() && !p.starts_with("token="))
        .collect();
    if rest.is_empty() {
        uri.path().to_string()
    } else {
        format!("{}?{}", uri.path(), rest.join("&"))
    }
}

/// Lets the operator in: the token as a bearer, as the cookie, or once in the
/// query (then it becomes the cookie, and the address loses it).
async fn require_token(
    State(access): State<Arc<Access>>,
    request: Request,
    next: Next,
) -> Response {
    // The routes only read: any other method gets its 405 from the router, with
    // or without a token.
    let reads = matches!(*request.method(), Method::GET | Method::HEAD);
    if !reads || presented_token(request.headers()).is_some_and(|t| access.token_matches(&t)) {
        return next.run(request).await;
    }
    let in_query = request.uri().query().and_then(|q| {
        q.split('&')
            .find_map(|p| p.strip_prefix("token="))
            .map(str::to_string)
    });
    if let Some(token) = in_query
        && access.token_matches(&token)
    {
        let cookie = format!(
            "{TOKEN_COOKIE}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age=31536000",
            access.token
        );
        let location = without_token(request.uri());
        let mut response = StatusCode::SEE_OTHER.into_response();
        if let (Ok(cookie), Ok(location)) = (
            HeaderValue::from_str(&cookie),
            HeaderValue::from_str(&location),
        ) {
            response.headers_mut().insert(header::SET_COOKIE, cookie);
            response.headers_mut().insert(header::LOCATION, location);
        }
        return response;
    }
    (
        StatusCode::UNAUTHORIZED,
        [
            (header::WWW_AUTHENTICATE, "Bearer"),
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
        ],
        "This page needs the node's HTTP token: open the address the node printed at start \
         (it ends in ?token=...), or send \"Authorization: Bearer TOKEN\"; the token is in the \
         file http_token in the node's data dir. /metrics and /health need none.\n",
    )
        .into_response()
}

async fn dashboard() -> Html<&'static str> {
    Html(DASHBOARD)
}

async fn prometheus(State(node): State<Node>) -> Response {
    let text = to_prometheus_text(&node.metrics_text().await);
    ([(header::CONTENT_TYPE, PROMETHEUS_TEXT)], text).into_response()
}

async fn json(State(node): State<Node>) -> Response {
    Json(node.metrics_snapshot().await).into_response()
}

async fn human(State(node): State<Node>) -> Response {
    let text = ui::metrics_block(&node.metrics_snapshot().await);
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response()
}

/// `/health/live`: 200 while the process serves, whatever the vault's state
/// (for liveness probes: `/health` answers 503 when a file is short of copies,
/// which a restart would not mend).
async fn live(State(node): State<Node>) -> Response {
    Json(serde_json::json!({
        "status": "alive",
        "uptime_seconds": node.uptime().as_secs_f64(),
    }))
    .into_response()
}

async fn health(State(node): State<Node>) -> Response {
    let health = node.health().await;
    let code = if health.is_healthy() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(health)).into_response()
}

/// `/api/files[?limit=N]`: the files by name (the first `N`), with the vault's
/// file count in `X-Total-Count`.
#[derive(Debug, serde::Deserialize)]
struct FilesQuery {
    limit: Option<usize>,
}

async fn files(State(node): State<Node>, Query(query): Query<FilesQuery>) -> Response {
    match node.listing(query.limit.unwrap_or(usize::MAX)).await {
        Ok(files) => {
            let total = files.total.to_string();
            let response = ([("x-total-count", total)], Json(files)).into_response();
            // The listing is gone into the body.
            peervault_node::memory::release_free_memory();
            response
        }
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// `/api/cluster[?limit=N]`: every node the vault knows and where the first
/// `N` files' copies are (200 by default: the page shows no more).
async fn cluster(State(node): State<Node>, Query(query): Query<FilesQuery>) -> Response {
    match node.cluster(query.limit.unwrap_or(200)).await {
        Ok(view) => Json(view).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// `/api/throughput`: the last hour of traffic (bytes per second, a point
/// every 5 s), so the page's chart starts full.
async fn throughput(State(node): State<Node>) -> Response {
    Json(node.throughput()).into_response()
}

#[derive(Debug, serde::Deserialize)]
struct DownloadQuery {
    name: String,
}

/// `/api/download?name=NAME`: the file's verified bytes, as an attachment. A
/// chunk that fails midway ends the body early, so the browser reports a
/// failed download instead of keeping wrong bytes.
async fn download(State(node): State<Node>, Query(query): Query<DownloadQuery>) -> Response {
    let reader = match node.get(&query.name).await {
        Ok(reader) => reader,
        Err(e) => {
            let code = match e.kind() {
                peervault_node::ErrorKind::NotFound => StatusCode::NOT_FOUND,
                peervault_node::ErrorKind::InvalidInput => StatusCode::BAD_REQUEST,
                _ => StatusCode::SERVICE_UNAVAILABLE,
            };
            return (code, format!("{e}\n")).into_response();
        }
    };
    let size = reader.manifest().size;
    let body = axum::body::Body::from_stream(futures::StreamExt::map(reader, |piece| {
        piece.map_err(std::io::Error::other)
    }));
    // The name for the browser's file: its last part, quoted, with anything
    // that could end the header replaced (RFC 6266's filename*= for the rest).
    let base = query.name.rsplit('/').next().unwrap_or(&query.name);
    let ascii: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let encoded: String = base
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    let disposition = format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}");
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    response
}

/// Turns the OpenMetrics text `prometheus-client` writes into the classic
/// Prometheus text format that every scraper and `promtool` read: counters are
/// declared under their `_total` name, and the OpenMetrics-only `# UNIT` and
/// `# EOF` lines go.
pub fn to_prometheus_text(open_metrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = open_metrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(open_metrics.len());
    for line in open_metrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(name)
                .then(|| format!("{prefix}{name}_total {tail}"))
        });
        out.push_str(renamed.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_names_of_this_server_are_answered() {
        let any = Access::new("t".repeat(64), None, vec!["vault.example".into()]);
        for host in [
            "localhost",
            "localhost:9090",
            "LOCALHOST.:9090",
            "127.0.0.1:9090",
            "[::1]:9090",
            "10.1.2.3",
            "vault.example:443",
        ] {
            assert!(any.host_allowed(host), "{host}");
        }
        for host in [
            "evil.example",
            "evil.example:9090",
            "127.0.0.1.nip.io",
            "localhost.evil",
        ] {
            assert!(!any.host_allowed(host), "{host}");
        }
        let loopback = Access::new("t".repeat(64), Some("127.0.0.1".parse().unwrap()), vec![]);
        assert!(loopback.host_allowed("127.0.0.1:9090"));
        assert!(!loopback.host_allowed("10.1.2.3:9090"));
    }

    #[test]
    fn tokens_compare_whole() {
        let access = Access::new("abcd".repeat(16), None, vec![]);
        assert!(access.token_matches(&"abcd".repeat(16)));
        assert!(!access.token_matches(&"abcd".repeat(15)));
        assert!(!access.token_matches(""));
        let uri: Uri = "/?token=x&limit=3".parse().unwrap();
        assert_eq!(without_token(&uri), "/?limit=3");
        let uri: Uri = "/?token=x".parse().unwrap();
        assert_eq!(without_token(&uri), "/");
    }

    #[test]
    fn open_metrics_counters_become_prometheus_counters() {
        let input = "# HELP a_total_thing Things.\n# TYPE a_total_thing counter\na_total_thing_total 3\n# HELP g A gauge.\n# TYPE g gauge\n# UNIT g seconds\ng 1.5\n# EOF\n";
        let out = to_prometheus_text(input);
        assert_eq!(
            out,
            "# HELP a_total_thing_total Things.\n# TYPE a_total_thing_total counter\na_total_thing_total 3\n# HELP g A gauge.\n# TYPE g gauge\ng 1.5\n"
        );
    }
}
