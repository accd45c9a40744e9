//! The breaker's shared-data encoding: fixed size, versioned, and decoded
//! without trusting the bytes (another filter version may have written them).
//!
//! Shared data keys can never be deleted, so breakers live in a fixed table
//! of slots rather than under one key per host (hosts churn; the table does
//! not grow). A host's slots are `hash(host) + 0..PROBES`; each value
//! carries its host, and a slot whose breaker is back to the default state
//! may be taken over by another host.

use crate::breaker::{Breaker, State};

pub const LEN: usize = 22;
const VERSION: u8 = 1;

pub fn encode(b: &Breaker) -> [u8; LEN] {
    let mut out = [0u8; LEN];
    out[0] = VERSION;
    let (tag, until, trips, a, s) = match b.state {
        State::Closed { consecutive_failures } => (0u8, 0u64, 0u32, consecutive_failures, 0u32),
        State::Open { until_ms, trips } => (1, until_ms, trips, 0, 0),
        State::HalfOpen { trips, admitted, successes } => (2, 0, trips, admitted, successes),
    };
    out[1] = tag;
    out[2..10].copy_from_slice(&until.to_le_bytes());
    out[10..14].copy_from_slice(&trips.to_le_bytes());
    out[14..18].copy_from_slice(&a.to_le_bytes());
    out[18..22].copy_from_slice(&s.to_le_bytes());
    out
}

/// `None` for anything that is not a breaker this version wrote.
pub fn decode(bytes: &[u8]) -> Option<Breaker> {
    if bytes.len() != LEN || bytes[0] != VERSION {
        return None;
    }
    let u64_at = |i: usize| bytes.get(i..i + 8).and_then(|s| s.try_into().ok()).map(u64::from_le_bytes);
    let u32_at = |i: usize| bytes.get(i..i + 4).and_then(|s| s.try_into().ok()).map(u32::from_le_bytes);
    let (until, trips, a, s) = (u64_at(2)?, u32_at(10)?, u32_at(14)?, u32_at(18)?);
    let state = match bytes[1] {
        0 => State::Closed { consecutive_failures: a },
        1 => State::Open { until_ms: until, trips },
        2 => State::HalfOpen { trips, admitted: a, successes: s },
        _ => return None,
    };
    Some(Breaker { state })
}

/// Slots in the table: the most keys the filter ever creates for breakers.
pub const SLOTS: u32 = 16_384;
/// Slots tried per host before giving up on sharing its breaker.
pub const PROBES: u32 = 8;

/// The shared-data key of a host's `probe`-th slot.
pub fn slot_key(prefix: &str, host: &str, probe: u32) -> String {
    // FNV-1a: stable across builds and processes, unlike std's hasher.
    let mut h: u32 = 0x811c_9dc5;
    for b in host.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    format!("{prefix}{:04x}", h.wrapping_add(probe) % SLOTS)
}

/// A slot's value: the breaker, then the host it belongs to.
pub fn encode_slot(b: &Breaker, host: &str) -> Vec<u8> {
    let mut v = encode(b).to_vec();
    v.extend_from_slice(host.as_bytes());
    v
}

/// `None` for bytes this version did not write.
pub fn decode_slot(bytes: &[u8]) -> Option<(Breaker, &str)> {
    if bytes.len() < LEN {
        return None;
    }
    let b = decode(&bytes[..LEN])?;
    let host = std::str::from_utf8(&bytes[LEN..]).ok()?;
    Some((b, host))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        for state in [
            State::Closed { consecutive_failures: 3 },
            State::Open { until_ms: u64::MAX, trips: 7 },
            State::HalfOpen { trips: 2, admitted: 1, successes: 1 },
        ] {
            let b = Breaker { state };
            assert_eq!(decode(&encode(&b)), Some(b));
        }
    }

    #[test]
    fn slots_are_stable_bounded_and_carry_their_host() {
        let k0 = slot_key("p:", "127.0.0.1:9001", 0);
        assert_eq!(k0, slot_key("p:", "127.0.0.1:9001", 0));
        assert_ne!(k0, slot_key("p:", "127.0.0.1:9001", 1));
        let distinct: std::collections::BTreeSet<String> = (0..100_000).map(|i| slot_key("p:", &format!("10.{}.{}.{}:80", i / 65536, i / 256 % 256, i % 256), 0)).collect();
        assert!(distinct.len() <= SLOTS as usize, "keys are bounded by the table");
        let b = Breaker { state: State::Open { until_ms: 5, trips: 1 } };
        let v = encode_slot(&b, "h:1");
        assert_eq!(decode_slot(&v), Some((b, "h:1")));
        assert_eq!(decode_slot(b"short"), None);
        let mut bad = v.clone();
        bad.push(0xff);
        assert_eq!(decode_slot(&bad), None, "host must be UTF-8");
    }

    #[test]
    fn rejects_foreign_bytes() {
        assert_eq!(decode(b""), None);
        assert_eq!(decode(&[0u8; LEN]), None, "wrong version");
        let mut bad = encode(&Breaker::default());
        bad[1] = 9;
        assert_eq!(decode(&bad), None);
        assert_eq!(decode(&[1u8; LEN + 1]), None);
    }
}
