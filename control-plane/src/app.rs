//! Wiring: discovery feeds the registry, the registry becomes a snapshot,
//! the snapshot is served over ADS; the admin API shows all of it.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::TcpListenerStream;
use tracing::{error, info, warn};

use crate::admin::{self, AdminState};
use crate::config::filter::FilterSettings;
use crate::config::policy::Policy;
use crate::config::{Config, EnvoySettings, HealthSettings, PolicySource, Problem};
use crate::discovery::static_file::{self, FileEvent};
use crate::health::probe::Prober;
use crate::health::{Board, Checker, HealthMap};
use crate::registry::{Fleet, Registry};
use crate::reports::{PassiveView, ReportBatch};
use crate::status::{unix_ms, Counters, Status};
use crate::xds::resources::{build_snapshot, cluster_name, Inputs};
use crate::xds::server::AdsServer;
use crate::xds::SnapshotCache;

const STATIC_SOURCE: &str = "static";

/// Where the servers actually listen (ports may have been 0 in the config).
#[derive(Debug, Clone, Serialize)]
pub struct Bound {
    pub xds: SocketAddr,
    pub admin: SocketAddr,
}

/// Keeps the registry, the Envoy settings and the published snapshot in step.
struct Pipeline {
    registry: Registry,
    settings: EnvoySettings,
    filter: Option<FilterSettings>,
    /// Where filters send reports: the admin API as Envoy can reach it.
    reports_to: SocketAddr,
    /// `--filter-wasm`: overrides the config's `filter.wasm`.
    wasm_override: Option<PathBuf>,
    /// Resolves a relative `filter.wasm`.
    config_dir: PathBuf,
    passive: PassiveView,
    cache: SnapshotCache,
    fleet_tx: watch::Sender<Arc<Fleet>>,
    passive_tx: watch::Sender<Arc<PassiveView>>,
    status: Status,
    /// The checker's latest verdicts.
    health: Arc<HealthMap>,
    health_settings_tx: watch::Sender<Arc<HealthSettings>>,
    /// Hosts with recent filter reports: probed at the normal interval.
    busy_tx: watch::Sender<Arc<BTreeSet<SocketAddr>>>,
    /// The last good policy; an invalid edit leaves it in force.
    policy: Policy,
    /// The filter's configuration for `policy`, already checked by the
    /// filter's own parser.
    filter_json: String,
    /// The policy file, when the config names one.
    policy_path: Option<PathBuf>,
    /// The config file's own `health:` section (a policy file may replace it).
    config_health: HealthSettings,
}

/// A host some filter reported on within this long counts as having traffic.
const BUSY_WINDOW_MS: u64 = 60_000;

impl Pipeline {
    fn publish(&mut self) {
        let fleet = self.registry.fleet();
        let now = unix_ms() as u64;
        let known: BTreeSet<SocketAddr> = fleet.services.values().flat_map(|s| s.endpoints.iter().map(|e| e.socket_addr())).collect();
        self.passive.prune(&known, now);
        let ejected: BTreeSet<SocketAddr> = self.passive.ejected(now).into_keys().collect();
        let busy: BTreeSet<SocketAddr> = self
            .passive
            .hosts
            .iter()
            .filter(|(_, nodes)| nodes.values().any(|v| v.reported_unix_ms + BUSY_WINDOW_MS > now))
            .map(|(h, _)| *h)
            .collect();
        self.busy_tx.send_if_modified(|b| replace_if_changed(b, busy));
        let inputs = Inputs {
            envoy: &self.settings,
            fleet: &fleet,
            filter: self.filter.as_ref(),
            filter_json: &self.filter_json,
            reports_to: Some(self.reports_to),
            ejected: &ejected,
            health: &self.health,
            policy: &self.policy,
        };
        self.passive_tx.send_replace(Arc::new(self.passive.clone()));
        match build_snapshot(&inputs) {
            Ok(snap) => {
                if self.cache.set(snap) {
                    Counters::inc(&self.status.counters.snapshots);
                    info!(services = fleet.services.len(), endpoints = fleet.endpoint_count(), "published new xDS snapshot");
                }
                // Only a real change wakes the checker (it re-reads the fleet).
                self.fleet_tx.send_if_modified(|f| replace_if_changed(f, fleet));
            }
            // Cannot happen with the builder's own naming; if it does, the
            // previous snapshot keeps serving.
            Err(e) => error!(error = %e, "built an inconsistent snapshot; keeping the previous one"),
        }
    }

    fn apply(&mut self, cfg: &Config) {
        self.settings = cfg.envoy.clone();
        self.filter = cfg.filter.clone().map(|mut f| {
            if let Some(w) = &self.wasm_override {
                f.wasm = w.clone();
            }
            f.resolve(&self.config_dir);
            f
        });
        self.registry.set(STATIC_SOURCE, cfg.backends.clone());
        self.config_health = cfg.health.clone();
        match &cfg.policy {
            PolicySource::Default => self.set_policy(Policy::default(), None),
            PolicySource::Inline(p) => self.set_policy((**p).clone(), None),
            PolicySource::File(path) => {
                let path = if path.is_relative() { self.config_dir.join(path) } else { path.clone() };
                self.policy_path = Some(path.clone());
                self.reload_policy_file();
                return;
            }
        }
        self.publish();
    }

    /// Puts a validated policy in force (and its `health:`, if it has one).
    /// The filter's JSON is made and checked by the filter's own parser
    /// here, once, so Envoy is never sent a config it would refuse.
    fn set_policy(&mut self, policy: Policy, path: Option<&std::path::Path>) {
        let filter_json = policy.filter_json(cluster_name);
        if let Err(e) = only1mcp_filter::config::Config::from_json(filter_json.as_bytes()) {
            error!(error = %e, "policy refused: it does not translate into a filter config");
            self.status.policy_rejected(&[Problem { path: String::new(), pos: Default::default(), message: e }]);
            return;
        }
        let health = policy.health.clone().unwrap_or_else(|| self.config_health.clone());
        self.health_settings_tx.send_if_modified(|h| replace_if_changed(h, health));
        self.policy = policy;
        self.filter_json = filter_json;
        self.status.policy_loaded(path.map(|p| p.display().to_string()));
    }

    /// Re-reads the policy file; an invalid one is refused and the last
    /// good policy stays in force, in the control plane and in Envoy.
    fn reload_policy_file(&mut self) {
        let Some(path) = self.policy_path.clone() else { return };
        match Policy::load(&path) {
            Ok(p) => {
                info!(path = %path.display(), "policy loaded");
                self.set_policy(p, Some(&path));
            }
            Err(e) => {
                error!(error = %e, "policy edit refused; the last good policy stays in force");
                self.status.policy_rejected(&e.problems());
            }
        }
        self.publish();
    }

    fn report(&mut self, batch: &ReportBatch) {
        for r in &batch.reports {
            info!(node = batch.node, host = %r.host, state = ?r.state, reason = r.reason, "filter report");
        }
        if self.passive.apply(batch, unix_ms() as u64) {
            self.publish();
        }
    }

    /// When the earliest ejection ends (the snapshot must be rebuilt then).
    fn next_expiry(&self) -> Option<tokio::time::Instant> {
        let now = unix_ms() as u64;
        let at = self.passive.next_expiry(now)?;
        Some(tokio::time::Instant::now() + std::time::Duration::from_millis(at.saturating_sub(now)))
    }
}

fn replace_if_changed<T: PartialEq>(slot: &mut Arc<T>, new: T) -> bool {
    if **slot == new {
        return false;
    }
    *slot = Arc::new(new);
    true
}

/// Runs the control plane until `shutdown` resolves.
pub async fn serve(
    config_path: Option<PathBuf>,
    ready_file: Option<PathBuf>,
    wasm_override: Option<PathBuf>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (config, initial_content) = match &config_path {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            let cfg = Config::from_yaml(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            (cfg, Some(text))
        }
        None => (Config::default(), None),
    };
    let status = Status::default();
    status.config_loaded(config_path.as_ref().map(|p| p.display().to_string()));
    let cache = SnapshotCache::default();
    let xds_listener = TcpListener::bind(config.xds).await.with_context(|| format!("binding xDS on {}", config.xds))?;
    let admin_listener = TcpListener::bind(config.admin).await.with_context(|| format!("binding admin on {}", config.admin))?;
    let bound = Bound { xds: xds_listener.local_addr()?, admin: admin_listener.local_addr()? };
    let mut reports_to = bound.admin;
    if reports_to.ip().is_unspecified() {
        reports_to.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let (fleet_tx, fleet_rx) = watch::channel(Arc::new(Fleet::default()));
    let (passive_tx, passive_rx) = watch::channel(Arc::new(PassiveView::default()));
    let (health_settings_tx, health_settings_rx) = watch::channel(Arc::new(config.health.clone()));
    let (busy_tx, busy_rx) = watch::channel(Arc::new(BTreeSet::new()));
    let (health_tx, mut health_rx) = watch::channel(Arc::new(HealthMap::new()));
    let health_board = Board::default();
    let config_dir = config_path.as_ref().and_then(|p| p.parent().map(|d| d.to_path_buf())).unwrap_or_else(|| PathBuf::from("."));
    let config_dir = std::fs::canonicalize(&config_dir).unwrap_or(config_dir);
    let mut pipeline = Pipeline {
        registry: Registry::new(),
        settings: config.envoy.clone(),
        filter: None,
        reports_to,
        wasm_override,
        config_dir,
        passive: PassiveView::default(),
        cache: cache.clone(),
        fleet_tx,
        passive_tx,
        status: status.clone(),
        health: Arc::new(HealthMap::new()),
        health_settings_tx,
        busy_tx,
        filter_json: Policy::default().filter_json(cluster_name),
        policy: Policy::default(),
        policy_path: None,
        config_health: config.health.clone(),
    };
    // At start there is no last good policy to fall back on: a bad policy
    // file stops the control plane with every problem listed.
    if let PolicySource::File(p) = &config.policy {
        let path = if p.is_relative() { pipeline.config_dir.join(p) } else { p.clone() };
        Policy::load(&path).map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    pipeline.apply(&config);
    info!(xds = %bound.xds, admin = %bound.admin, listener = %config.envoy.listener, "control plane serving");
    if let Some(path) = &ready_file {
        std::fs::write(path, serde_json::to_vec(&bound)?).with_context(|| format!("writing {}", path.display()))?;
    }

    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };

    let ads = AdsServer::new(cache.clone(), status.clone()).into_service();
    let xds_task = tokio::spawn(
        tonic::transport::Server::builder()
            .http2_keepalive_interval(Some(std::time::Duration::from_secs(30)))
            .add_service(ads)
            .serve_with_incoming_shutdown(TcpListenerStream::new(xds_listener), stopped(stop_rx.clone())),
    );
    let checker = Checker {
        prober: Prober::new().context("building the health probe HTTP client")?,
        settings: health_settings_rx,
        fleet: fleet_rx.clone(),
        busy: busy_rx,
        out: health_tx,
        board: health_board.clone(),
        seed: u64::from(std::process::id()) ^ unix_ms() as u64,
    };
    tokio::spawn(checker.run(stop_rx.clone()));
    let (reports_tx, mut reports_rx) = mpsc::channel::<ReportBatch>(64);
    let admin_app = admin::router(AdminState { status: status.clone(), cache: cache.clone(), fleet: fleet_rx, passive: passive_rx, reports: reports_tx, health: health_board });
    let admin_shutdown = stopped(stop_rx.clone());
    let admin_task = tokio::spawn(async move { axum::serve(admin_listener, admin_app).with_graceful_shutdown(admin_shutdown).await });

    let (events_tx, mut events_rx) = mpsc::channel(8);
    if let Some(path) = config_path.clone() {
        tokio::spawn(async move {
            if let Err(e) = static_file::watch(path, initial_content, events_tx).await {
                error!(error = %e, "config watcher stopped; edits will not be picked up");
            }
        });
    } else {
        drop(events_tx);
    }

    // The policy file named at start is watched; its edits are validated
    // and pushed like config edits (a different path needs a restart).
    let (policy_tx, mut policy_rx) = mpsc::channel::<std::io::Result<String>>(4);
    if let Some(path) = pipeline.policy_path.clone() {
        let initial = std::fs::read_to_string(&path).ok();
        tokio::spawn(async move {
            if let Err(e) = static_file::watch_raw(path, initial, policy_tx).await {
                error!(error = %e, "policy watcher stopped; edits will not be picked up");
            }
        });
    } else {
        drop(policy_tx);
    }

    let mut stop = stop_rx.clone();
    loop {
        let expiry = pipeline.next_expiry();
        tokio::select! {
            Some(batch) = reports_rx.recv() => pipeline.report(&batch),
            Some(_) = policy_rx.recv() => pipeline.reload_policy_file(),
            Ok(()) = health_rx.changed() => {
                pipeline.health = health_rx.borrow_and_update().clone();
                pipeline.publish();
            }
            _ = async { if let Some(at) = expiry { tokio::time::sleep_until(at).await } else { std::future::pending::<()>().await } } => {
                info!("a fleet-wide ejection ended; host back in rotation");
                pipeline.publish();
            }
            ev = events_rx.recv(), if !events_rx.is_closed() => match ev {
                Some(FileEvent::Loaded(cfg)) => {
                    if cfg.xds != config.xds || cfg.admin != config.admin {
                        warn!("xds and admin addresses are read at start only; restart to change them");
                    }
                    pipeline.apply(&cfg);
                    status.config_loaded(config_path.as_ref().map(|p| p.display().to_string()));
                    info!(backends = cfg.backends.len(), "config reloaded");
                }
                Some(FileEvent::Rejected(err)) => {
                    let problems = err.problems();
                    error!(error = %err, "config edit refused; the last good config stays in force");
                    status.config_rejected(&problems);
                }
                None => {}
            },
            _ = stop.wait_for(|s| *s) => break,
        }
    }
    let _ = xds_task.await;
    let _ = admin_task.await;
    info!("control plane stopped");
    Ok(())
}
