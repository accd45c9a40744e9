//! What the control plane knows about itself, for the admin API and
//! metrics: the config in force and its last rejection, and every
//! connected Envoy with what it accepted or rejected per type.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use serde::Serialize;

use crate::config::Problem;

/// Per-type xDS state of one stream.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TypeStatus {
    pub sent_version: Option<String>,
    pub acked_version: Option<String>,
    pub last_nack: Option<String>,
    pub nacks: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct StreamStatus {
    pub node_id: String,
    pub protocol: &'static str,
    pub connected_unix_ms: u128,
    /// By short type name (`CDS`, `EDS`, ...).
    pub types: BTreeMap<&'static str, TypeStatus>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProblemView {
    pub path: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl From<&Problem> for ProblemView {
    fn from(p: &Problem) -> Self {
        ProblemView { path: p.path.clone(), line: p.pos.line, column: p.pos.col, message: p.message.clone() }
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ConfigStatus {
    pub path: Option<String>,
    /// Loads that were accepted, including the first.
    pub generation: u64,
    pub loaded_unix_ms: u128,
    /// Set while the file on disk is invalid and the previous config serves.
    pub rejected: Option<Vec<ProblemView>>,
}

impl ConfigStatus {
    fn accept(&mut self, path: Option<String>) {
        self.path = path;
        self.generation += 1;
        self.loaded_unix_ms = unix_ms();
        self.rejected = None;
    }

    fn refuse(&mut self, problems: &[Problem]) {
        self.rejected = Some(problems.iter().map(ProblemView::from).collect());
    }
}

#[derive(Debug, Default)]
pub struct Counters {
    pub config_reloads: AtomicU64,
    pub config_rejections: AtomicU64,
    pub xds_responses: AtomicU64,
    pub xds_nacks: AtomicU64,
    pub xds_streams_total: AtomicU64,
    pub snapshots: AtomicU64,
    pub reports: AtomicU64,
    pub policy_reloads: AtomicU64,
    pub policy_rejections: AtomicU64,
}

impl Counters {
    pub fn inc(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }
}

#[derive(Debug, Default)]
struct Inner {
    config: ConfigStatus,
    policy: ConfigStatus,
    streams: BTreeMap<u64, StreamStatus>,
    next_stream: u64,
}

/// Shared, cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Status {
    inner: Arc<Mutex<Inner>>,
    pub counters: Arc<Counters>,
}

pub fn unix_ms() -> u128 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0)
}

impl Status {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A poisoned lock only means a panic elsewhere mid-update; the data
        // is plain status and still worth showing.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn config_loaded(&self, path: Option<String>) {
        self.lock().config.accept(path);
        Counters::inc(&self.counters.config_reloads);
    }

    pub fn config_rejected(&self, problems: &[Problem]) {
        self.lock().config.refuse(problems);
        Counters::inc(&self.counters.config_rejections);
    }

    pub fn config(&self) -> ConfigStatus {
        self.lock().config.clone()
    }

    pub fn policy_loaded(&self, path: Option<String>) {
        self.lock().policy.accept(path);
        Counters::inc(&self.counters.policy_reloads);
    }

    pub fn policy_rejected(&self, problems: &[Problem]) {
        self.lock().policy.refuse(problems);
        Counters::inc(&self.counters.policy_rejections);
    }

    pub fn policy(&self) -> ConfigStatus {
        self.lock().policy.clone()
    }

    pub fn stream_opened(&self, protocol: &'static str) -> u64 {
        let mut g = self.lock();
        g.next_stream += 1;
        let id = g.next_stream;
        g.streams.insert(id, StreamStatus { node_id: String::new(), protocol, connected_unix_ms: unix_ms(), types: BTreeMap::new() });
        Counters::inc(&self.counters.xds_streams_total);
        id
    }

    pub fn stream_closed(&self, id: u64) {
        self.lock().streams.remove(&id);
    }

    /// Updates one stream's status in place.
    pub fn update_stream(&self, id: u64, f: impl FnOnce(&mut StreamStatus)) {
        if let Some(s) = self.lock().streams.get_mut(&id) {
            f(s);
        }
    }

    pub fn streams(&self) -> Vec<StreamStatus> {
        self.lock().streams.values().cloned().collect()
    }
}
