//! The breaker's shared-data encoding: fixed size, versioned, and decoded
//! without trusting the bytes (another filter version may have written them).

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
    fn rejects_foreign_bytes() {
        assert_eq!(decode(b""), None);
        assert_eq!(decode(&[0u8; LEN]), None, "wrong version");
        let mut bad = encode(&Breaker::default());
        bad[1] = 9;
        assert_eq!(decode(&bad), None);
        assert_eq!(decode(&[1u8; LEN + 1]), None);
    }
}
