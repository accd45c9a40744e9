//! What every VM of one "Envoy process" shares: the clock, the shared-data
//! store (per `vm_id`, guarded by CAS) and the stats store. Several worker
//! VMs instantiated against one `Shared` see the same breakers, as Envoy's
//! worker threads do.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

/// Cheap to clone: every clone is the same process.
#[derive(Clone, Default)]
pub struct Shared(Arc<Mutex<Process>>);

#[derive(Default)]
pub struct Process {
    /// Wall clock, nanoseconds since the Unix epoch, moved only by the test.
    pub now_ns: u64,
    data: HashMap<Vec<u8>, (Vec<u8>, u32)>,
    last_cas: u32,
    /// Metric values by name, as Envoy's stats store keeps them.
    pub metrics: BTreeMap<String, u64>,
}

/// Envoy's `proxy_set_shared_data` outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetOutcome {
    Stored,
    CasMismatch,
}

impl Process {
    pub fn get(&self, key: &[u8]) -> Option<(Vec<u8>, u32)> {
        self.data.get(key).cloned()
    }

    /// Envoy's semantics: `cas == 0` writes unconditionally; otherwise the
    /// write succeeds only if the stored value still has that CAS. A
    /// missing key is always created. Every write gets a fresh, non-zero CAS.
    pub fn set(&mut self, key: &[u8], value: &[u8], cas: u32) -> SetOutcome {
        if let Some((_, current)) = self.data.get(key) {
            if cas != 0 && cas != *current {
                return SetOutcome::CasMismatch;
            }
        }
        self.last_cas = self.last_cas.wrapping_add(1).max(1);
        self.data.insert(key.to_vec(), (value.to_vec(), self.last_cas));
        SetOutcome::Stored
    }

    /// Stores bytes without CAS checks (for tests that plant foreign data).
    pub fn plant(&mut self, key: &[u8], value: &[u8]) {
        self.set(key, value, 0);
    }

    pub fn keys(&self) -> Vec<Vec<u8>> {
        self.data.keys().cloned().collect()
    }
}

impl Shared {
    /// Locks the process state. A poisoned lock (a test panicked while
    /// holding it) is still usable: the state is plain data.
    pub fn lock(&self) -> MutexGuard<'_, Process> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn now_ms(&self) -> u64 {
        self.lock().now_ns / 1_000_000
    }

    pub fn set_time_ms(&self, ms: u64) {
        self.lock().now_ns = ms.saturating_mul(1_000_000);
    }

    pub fn advance_ms(&self, ms: u64) {
        let mut p = self.lock();
        p.now_ns = p.now_ns.saturating_add(ms.saturating_mul(1_000_000));
    }

    /// A metric's value by name (`None` if no VM defined it).
    pub fn metric(&self, name: &str) -> Option<u64> {
        self.lock().metrics.get(name).copied()
    }

    pub fn shared_data(&self, key: &str) -> Option<(Vec<u8>, u32)> {
        self.lock().get(key.as_bytes())
    }
}
