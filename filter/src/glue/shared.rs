//! State shared by every worker of this Envoy: each host's breaker and
//! each cluster's known hosts, in proxy-wasm shared data, updated with
//! compare-and-swap.

use proxy_wasm::hostcalls;

use super::KEY_PREFIX;
use crate::breaker::{Breaker, Transition};
use crate::encoding;

/// Loads a host's shared breaker (default: closed) and its CAS token.
pub(super) fn load_breaker(host: &str) -> (Breaker, Option<u32>) {
    match hostcalls::get_shared_data(&format!("{KEY_PREFIX}{host}")) {
        Ok((Some(bytes), cas)) => (encoding::decode(&bytes).unwrap_or_default(), cas),
        Ok((None, cas)) => (Breaker::default(), cas),
        Err(_) => (Breaker::default(), None),
    }
}

/// Applies `f` to a host's shared breaker with compare-and-swap, retrying
/// when another worker got there first. Returns the transition, if any,
/// and the breaker as it now stands.
pub(super) fn update_breaker(host: &str, f: impl Fn(&mut Breaker) -> Option<Transition>) -> (Option<Transition>, Breaker) {
    let mut last = Breaker::default();
    for _ in 0..4 {
        let (mut b, cas) = load_breaker(host);
        let before = b;
        let t = f(&mut b);
        if b == before {
            return (t, b);
        }
        match hostcalls::set_shared_data(&format!("{KEY_PREFIX}{host}"), Some(&encoding::encode(&b)), cas) {
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

