//! The admin HTTP API: liveness, a JSON status of everything the control
//! plane knows, and Prometheus metrics.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use tokio::sync::watch;

use crate::health::board::Detail;
use crate::health::score as health_score;
use crate::health::{Board, EdsVerdict, EndpointKey};
use crate::registry::Fleet;
use crate::reports::{PassiveView, ReportBatch};
use crate::status::{ConfigStatus, Counters, Status, StreamStatus};
use crate::xds::resources::{cluster_name, route_prefix};
use crate::xds::SnapshotCache;

#[derive(Clone)]
pub struct AdminState {
    pub status: Status,
    pub cache: SnapshotCache,
    pub fleet: watch::Receiver<Arc<Fleet>>,
    pub passive: watch::Receiver<Arc<PassiveView>>,
    /// Reports from the filters go to the pipeline through here.
    pub reports: tokio::sync::mpsc::Sender<ReportBatch>,
    /// The health checker's per-endpoint figures and counters.
    pub health: Board,
}

pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/status", get(status))
        .route("/metrics", get(metrics))
        .route("/v1/reports", axum::routing::post(ingest_reports))
        .with_state(state)
}

#[derive(Serialize)]
struct EndpointView {
    address: String,
    weight: u32,
    protocol: crate::config::Protocol,
    metadata: BTreeMap<String, String>,
    standby: bool,
    /// What Envoy is told: health and weight after probes and ejections.
    eds: EdsVerdict,
    /// The latest probe figures (absent until the first probe, or with
    /// health checks off).
    probe: Option<Detail>,
}

#[derive(Serialize)]
struct ServiceView {
    name: String,
    route: String,
    cluster: String,
    path: String,
    endpoints: Vec<EndpointView>,
}

/// `POST /v1/reports`: a batch of breaker state changes from one Envoy's filter.
async fn ingest_reports(State(st): State<AdminState>, body: axum::body::Bytes) -> (axum::http::StatusCode, String) {
    use axum::http::StatusCode;
    let batch: ReportBatch = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(error = %e, "malformed filter report");
            return (StatusCode::BAD_REQUEST, format!("bad report: {e}\n"));
        }
    };
    Counters::inc(&st.status.counters.reports);
    match st.reports.try_send(batch) {
        Ok(()) => (StatusCode::ACCEPTED, "accepted\n".into()),
        // Backpressure: the filter keeps the batch and retries with backoff.
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "busy\n".into()),
    }
}

#[derive(Serialize)]
struct StatusView {
    config: ConfigStatus,
    /// The policy in force: its file, generation and any refused edit.
    policy: ConfigStatus,
    services: Vec<ServiceView>,
    /// Hosts some Envoy's filter holds open, per Envoy.
    passive: PassiveView,
    snapshot: BTreeMap<&'static str, usize>,
    streams: Vec<StreamStatus>,
}

async fn status(State(st): State<AdminState>) -> Json<StatusView> {
    let fleet = st.fleet.borrow().clone();
    let now = crate::status::unix_ms() as u64;
    let passive_now = st.passive.borrow().clone();
    let services = fleet
        .services
        .values()
        .map(|s| ServiceView {
            name: s.name.to_string(),
            route: route_prefix(&s.name),
            cluster: cluster_name(&s.name),
            path: s.path.clone(),
            endpoints: s
                .endpoints
                .iter()
                .map(|e| {
                    let probe = st.health.detail(&EndpointKey { service: s.name.clone(), addr: e.socket_addr() });
                    let active = probe.as_ref().map(|d| d.verdict).unwrap_or_default();
                    EndpointView {
                        address: e.socket_addr().to_string(),
                        weight: e.weight,
                        protocol: e.protocol,
                        metadata: e.metadata.clone(),
                        standby: e.standby,
                        eds: health_score::verdict(active, passive_now.is_ejected(&e.socket_addr(), now), e.weight),
                        probe,
                    }
                })
                .collect(),
        })
        .collect();
    let snapshot = st.cache.current().counts().into_iter().map(|(t, n)| (t.short(), n)).collect();
    let passive = (**st.passive.borrow()).clone();
    Json(StatusView { config: st.status.config(), policy: st.status.policy(), services, passive, snapshot, streams: st.status.streams() })
}

async fn metrics(State(st): State<AdminState>) -> impl IntoResponse {
    let c = &st.status.counters;
    let fleet = st.fleet.borrow().clone();
    let mut out = String::new();
    let mut counter = |name: &str, help: &str, v: u64| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
    };
    counter("only1mcp_config_reloads_total", "Config loads accepted.", c.config_reloads.load(Ordering::Relaxed));
    counter("only1mcp_config_rejections_total", "Config edits refused as invalid.", c.config_rejections.load(Ordering::Relaxed));
    counter("only1mcp_xds_responses_total", "xDS responses sent.", c.xds_responses.load(Ordering::Relaxed));
    counter("only1mcp_xds_nacks_total", "xDS responses Envoy rejected.", c.xds_nacks.load(Ordering::Relaxed));
    counter("only1mcp_xds_streams_total", "xDS streams opened.", c.xds_streams_total.load(Ordering::Relaxed));
    counter("only1mcp_snapshots_total", "Snapshots published.", c.snapshots.load(Ordering::Relaxed));
    counter("only1mcp_policy_reloads_total", "Policy loads accepted.", c.policy_reloads.load(Ordering::Relaxed));
    counter("only1mcp_policy_rejections_total", "Policy edits refused as invalid.", c.policy_rejections.load(Ordering::Relaxed));
    counter("only1mcp_filter_reports_total", "Report batches received from filters.", c.reports.load(Ordering::Relaxed));
    let _ = writeln!(
        out,
        "# HELP only1mcp_policy_valid 1 if the policy file on disk is in force, 0 if it was refused.\n# TYPE only1mcp_policy_valid gauge\nonly1mcp_policy_valid {}",
        u8::from(st.status.policy().rejected.is_none())
    );
    let ejected = st.passive.borrow().ejected(crate::status::unix_ms() as u64).len();
    let _ = writeln!(out, "# HELP only1mcp_hosts_ejected Hosts a filter holds open, ejected fleet-wide.\n# TYPE only1mcp_hosts_ejected gauge\nonly1mcp_hosts_ejected {ejected}");
    let _ = writeln!(
        out,
        "# HELP only1mcp_xds_streams Connected xDS streams.\n# TYPE only1mcp_xds_streams gauge\nonly1mcp_xds_streams {}",
        st.status.streams().len()
    );
    let _ = writeln!(
        out,
        "# HELP only1mcp_config_valid 1 if the config file on disk is in force, 0 if it was refused.\n# TYPE only1mcp_config_valid gauge\nonly1mcp_config_valid {}",
        u8::from(st.status.config().rejected.is_none())
    );
    let _ = writeln!(out, "# HELP only1mcp_health_probes_total Health probes by result.\n# TYPE only1mcp_health_probes_total counter");
    for (label, n) in st.health.results() {
        let _ = writeln!(out, "only1mcp_health_probes_total{{result=\"{label}\"}} {n}");
    }
    let _ = writeln!(
        out,
        "# HELP only1mcp_health_transitions_total Endpoint health changes.\n# TYPE only1mcp_health_transitions_total counter\nonly1mcp_health_transitions_total {}",
        st.health.transitions()
    );
    let _ = writeln!(out, "# HELP only1mcp_health_endpoints Probed endpoints by health.\n# TYPE only1mcp_health_endpoints gauge");
    for (label, n) in st.health.by_health() {
        let _ = writeln!(out, "only1mcp_health_endpoints{{health=\"{label}\"}} {n}");
    }
    let _ = writeln!(out, "# HELP only1mcp_endpoints Endpoints by service.\n# TYPE only1mcp_endpoints gauge");
    for s in fleet.services.values() {
        let _ = writeln!(out, "only1mcp_endpoints{{service=\"{}\"}} {}", s.name, s.endpoints.len());
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}
