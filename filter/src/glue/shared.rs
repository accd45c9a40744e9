//! State shared by every worker of this Envoy: each host's breaker and
//! each cluster's known hosts, in proxy-wasm shared data, updated with
//! compare-and-swap.

use proxy_wasm::hostcalls;

use super::KEY_PREFIX;
use crate::breaker::{Breaker, Transition};
use crate::encoding::{decode_slot, encode_slot, slot_key, PROBES};

/// Where a host's breaker is (or would go) in the slot table.
pub(super) struct Slot {
    key: String,
    cas: Option<u32>,
}

/// Loads a host's shared breaker (default: closed) and the slot to write
/// it to: its own, else the first free or reclaimable one in its probe
/// sequence. `None` when all its slots hold other hosts' live breakers
/// (the breaker then works per worker only).
pub(super) fn load_breaker(host: &str) -> (Breaker, Option<Slot>) {
    let mut free = None;
    for probe in 0..PROBES {
        let key = slot_key(KEY_PREFIX, host, probe);
        match hostcalls::get_shared_data(&key) {
            // Never used: the host is not stored further along.
            Ok((None, cas)) => return (Breaker::default(), free.or(Some(Slot { key, cas }))),
            Ok((Some(bytes), cas)) => match decode_slot(&bytes) {
                Some((b, h)) if h == host => return (b, Some(Slot { key, cas })),
                Some((b, _)) if b != Breaker::default() => {}
                // Another host back to default, or bytes we do not know: reusable.
                _ => {
                    if free.is_none() {
                        free = Some(Slot { key, cas });
                    }
                }
            },
            Err(_) => return (Breaker::default(), None),
        }
    }
    (Breaker::default(), free)
}

/// Applies `f` to a host's shared breaker with compare-and-swap, retrying
/// when another worker got there first. Returns the transition, if any,
/// and the breaker as it now stands.
pub(super) fn update_breaker(host: &str, f: impl Fn(&mut Breaker) -> Option<Transition>) -> (Option<Transition>, Breaker) {
    let mut last = Breaker::default();
    for _ in 0..4 {
        let (mut b, slot) = load_breaker(host);
        let before = b;
        let t = f(&mut b);
        if b == before {
            return (t, b);
        }
        let Some(slot) = slot else {
            log::warn!("no shared slot for {host}: its breaker is per worker");
            return (t, b);
        };
        match hostcalls::set_shared_data(&slot.key, Some(&encode_slot(&b, host)), slot.cas) {
            Ok(()) => return (t, b),
            Err(_) => last = before, // CAS mismatch: reload and retry
        }
    }
    (None, last)
}

pub(super) const MEMBERS_PREFIX: &str = "only1mcp:members:";
/// Hosts remembered per cluster (shared and per worker).
pub(super) const MAX_MEMBERS: usize = 64;

/// The hosts any worker has seen for a cluster, and the CAS token.
pub(super) fn load_members(cluster: &str) -> (Vec<String>, Option<u32>) {
    match hostcalls::get_shared_data(&format!("{MEMBERS_PREFIX}{cluster}")) {
        Ok((Some(bytes), cas)) => {
            let text = String::from_utf8_lossy(&bytes);
            (text.split('\n').filter(|h| !h.is_empty()).map(String::from).collect(), cas)
        }
        Ok((None, cas)) => (Vec::new(), cas),
        Err(_) => (Vec::new(), None),
    }
}

/// Adds a host to a cluster's shared list (bounded, CAS, best effort).
pub(super) fn publish_member(cluster: &str, host: &str) {
    for _ in 0..4 {
        let (mut hosts, cas) = load_members(cluster);
        if hosts.iter().any(|h| h == host) || hosts.len() >= MAX_MEMBERS {
            return;
        }
        hosts.push(host.to_string());
        if hostcalls::set_shared_data(&format!("{MEMBERS_PREFIX}{cluster}"), Some(hosts.join("\n").as_bytes()), cas).is_ok() {
            return;
        }
    }
}

/// How long a worker trusts its copy of a host's shared breaker. Reading
/// shared data on every request costs more than the rest of the filter;
/// another worker's trip is seen within this long.
pub(super) const CACHE_MS: u64 = 100;

