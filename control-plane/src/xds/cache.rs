//! The one current snapshot every ADS stream serves, with change
//! notification. Setting an identical snapshot wakes nobody.

use std::sync::Arc;

use tokio::sync::watch;

use super::{Snapshot, TypeUrl};

#[derive(Debug, Clone)]
pub struct SnapshotCache {
    tx: Arc<watch::Sender<Arc<Snapshot>>>,
}

impl Default for SnapshotCache {
    fn default() -> Self {
        SnapshotCache::new(Snapshot::default())
    }
}

impl SnapshotCache {
    pub fn new(initial: Snapshot) -> SnapshotCache {
        let (tx, _) = watch::channel(Arc::new(initial));
        SnapshotCache { tx: Arc::new(tx) }
    }

    /// Publishes a snapshot; returns whether anything changed.
    pub fn set(&self, snap: Snapshot) -> bool {
        self.tx.send_if_modified(|current| {
            let same = TypeUrl::ALL.into_iter().all(|t| {
                let a = current.of_type(t);
                let b = snap.of_type(t);
                a.len() == b.len() && a.iter().zip(b.iter()).all(|((na, ra), (nb, rb))| na == nb && ra.version == rb.version)
            });
            if !same {
                *current = Arc::new(snap);
            }
            !same
        })
    }

    pub fn current(&self) -> Arc<Snapshot> {
        self.tx.borrow().clone()
    }

    pub fn subscribe(&self) -> watch::Receiver<Arc<Snapshot>> {
        self.tx.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::super::snapshot::tests::res;
    use super::super::snapshot::References;
    use super::*;

    #[test]
    fn identical_snapshot_wakes_nobody() {
        let s = |c: &str| Snapshot::new([res(TypeUrl::Cluster, "a", c), res(TypeUrl::ClusterLoadAssignment, "a", c)], References::default()).unwrap();
        let cache = SnapshotCache::new(s("1"));
        let mut rx = cache.subscribe();
        rx.borrow_and_update();
        assert!(!cache.set(s("1")));
        assert!(!rx.has_changed().unwrap());
        assert!(cache.set(s("2")));
        assert!(rx.has_changed().unwrap());
    }
}
