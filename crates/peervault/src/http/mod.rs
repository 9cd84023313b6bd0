//! The node's HTTP side (`-metrics ADDR`): Prometheus metrics, the same figures as
//! JSON and as text, a health check, and a live dashboard.
//!
//! Everything is served by the node itself, dashboard included (one HTML file
//! with its script and styles inline, compiled into the binary), because nodes
//! often run where there is no internet. The handlers only read: figures come
//! from [`Node::metrics_snapshot`] and friends, which read their sources at the
//! moment of the request, so every number shown is current and true.

use std::net::SocketAddr;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Json, Response};
use axum::routing::get;
use peervault_net::{Endpoint, Host};
use peervault_node::Node;
use tokio_util::sync::CancellationToken;

use crate::ui;

const DASHBOARD: &str = include_str!("dashboard.html");

/// The Prometheus text format (version 0.0.4) content type.
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Binds `endpoint` and serves until `shutdown`. Returns the bound address.
pub async fn serve(
    node: Node,
    endpoint: &Endpoint,
    shutdown: CancellationToken,
) -> anyhow::Result<SocketAddr> {
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
    let app = router(node);
    tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await;
        if let Err(e) = served {
            tracing::warn!("the metrics server stopped: {e}");
        }
    });
    Ok(bound)
}

/// The routes, on their own for tests.
pub fn router(node: Node) -> Router {
    Router::new()
        .route("/", get(dashboard))
        .route("/metrics", get(prometheus))
        .route("/metrics/json", get(json))
        .route("/metrics/human", get(human))
        .route("/health", get(health))
        .route("/api/files", get(files))
        .with_state(node)
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
    fn open_metrics_counters_become_prometheus_counters() {
        let input = "# HELP a_total_thing Things.\n# TYPE a_total_thing counter\na_total_thing_total 3\n# HELP g A gauge.\n# TYPE g gauge\n# UNIT g seconds\ng 1.5\n# EOF\n";
        let out = to_prometheus_text(input);
        assert_eq!(
            out,
            "# HELP a_total_thing_total Things.\n# TYPE a_total_thing_total counter\na_total_thing_total 3\n# HELP g A gauge.\n# TYPE g gauge\ng 1.5\n"
        );
    }
}
