//! The circuit breaker for one host (or one cluster), as a plain state
//! machine with time passed in.
//!
//! Closed ─(trip)─▶ Open ─(timeout)─▶ HalfOpen ─(enough successes)─▶ Closed
//!                   ▲                    │
//!                   └────(any failure)───┘
//!
//! A trip comes from consecutive failures, from a failure or slow-call rate
//! over a minimum volume, or from phi-accrual suspicion. The open period
//! doubles with each trip that follows a failed half-open probe, up to a
//! maximum, and starts over once the breaker closes.

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreakerSettings {
    /// Trip after this many failures in a row.
    pub consecutive_failures: u32,
    /// Trip when this fraction of the window failed (0..=1)...
    pub failure_rate: f64,
    /// ...or this fraction was slow...
    pub slow_call_rate: f64,
    /// ...once the window holds at least this many calls.
    pub min_calls: u32,
    /// Trip when phi reaches this.
    pub phi_threshold: f64,
    /// First open period, ms.
    pub open_base_ms: u64,
    /// Longest open period, ms.
    pub open_max_ms: u64,
    /// Probe requests let through per half-open period.
    pub half_open_probes: u32,
    /// Successful probes needed to close (at most `half_open_probes`).
    pub successes_to_close: u32,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        BreakerSettings {
            consecutive_failures: 5,
            failure_rate: 0.5,
            slow_call_rate: 0.9,
            min_calls: 20,
            phi_threshold: 8.0,
            open_base_ms: 2_000,
            open_max_ms: 60_000,
            half_open_probes: 3,
            successes_to_close: 2,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Closed { consecutive_failures: u32 },
    Open { until_ms: u64, trips: u32 },
    HalfOpen { trips: u32, admitted: u32, successes: u32 },
}

impl State {
    pub fn name(&self) -> &'static str {
        match self {
            State::Closed { .. } => "closed",
            State::Open { .. } => "open",
            State::HalfOpen { .. } => "half_open",
        }
    }
}

/// Why a breaker opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TripReason {
    ConsecutiveFailures,
    FailureRate,
    SlowCallRate,
    Phi,
    ProbeFailed,
}

impl TripReason {
    pub fn name(self) -> &'static str {
        match self {
            TripReason::ConsecutiveFailures => "consecutive_failures",
            TripReason::FailureRate => "failure_rate",
            TripReason::SlowCallRate => "slow_call_rate",
            TripReason::Phi => "phi",
            TripReason::ProbeFailed => "probe_failed",
        }
    }
}

/// A state change, for metrics and reports.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Transition {
    pub from: State,
    pub to: State,
    pub reason: Option<TripReason>,
}

/// What to do with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// Allowed as one of the half-open probes.
    Probe,
    /// Fail fast; the host may be tried again after this long.
    Reject { retry_after_ms: u64 },
}

/// What the detectors saw, for `assess`.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Signals {
    pub calls: u32,
    pub failure_rate: f64,
    pub slow_rate: f64,
    pub phi: f64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Breaker {
    pub state: State,
}

impl Default for Breaker {
    fn default() -> Self {
        Breaker { state: State::Closed { consecutive_failures: 0 } }
    }
}

fn open_for(trips: u32, s: &BreakerSettings) -> u64 {
    let shift = trips.saturating_sub(1).min(32);
    s.open_base_ms.saturating_mul(1u64 << shift).min(s.open_max_ms.max(s.open_base_ms))
}

impl Breaker {
    fn go(&mut self, to: State, reason: Option<TripReason>) -> Option<Transition> {
        let from = self.state;
        self.state = to;
        Some(Transition { from, to, reason })
    }

    fn trip(&mut self, now_ms: u64, trips: u32, reason: TripReason, s: &BreakerSettings) -> Option<Transition> {
        self.go(State::Open { until_ms: now_ms.saturating_add(open_for(trips, s)), trips }, Some(reason))
    }

    /// Moves Open to HalfOpen once the open period is over.
    pub fn poll(&mut self, now_ms: u64) -> Option<Transition> {
        match self.state {
            State::Open { until_ms, trips } if now_ms >= until_ms => {
                self.go(State::HalfOpen { trips, admitted: 0, successes: 0 }, None)
            }
            _ => None,
        }
    }

    /// Decides whether a request may go to this host.
    pub fn decide(&mut self, now_ms: u64, s: &BreakerSettings) -> (Decision, Option<Transition>) {
        let t = self.poll(now_ms);
        let d = match &mut self.state {
            State::Closed { .. } => Decision::Allow,
            State::Open { until_ms, .. } => Decision::Reject { retry_after_ms: until_ms.saturating_sub(now_ms) },
            State::HalfOpen { admitted, .. } => {
                if *admitted < s.half_open_probes {
                    *admitted += 1;
                    Decision::Probe
                } else {
                    Decision::Reject { retry_after_ms: s.open_base_ms }
                }
            }
        };
        (d, t)
    }

    /// Records a completed call. `failure` is a backend failure as
    /// classified; calls that were not the backend's fault are not recorded.
    pub fn record(&mut self, now_ms: u64, failure: bool, s: &BreakerSettings) -> Option<Transition> {
        match self.state {
            State::Closed { consecutive_failures } => {
                if !failure {
                    self.state = State::Closed { consecutive_failures: 0 };
                    return None;
                }
                let n = consecutive_failures.saturating_add(1);
                if n >= s.consecutive_failures {
                    return self.trip(now_ms, 1, TripReason::ConsecutiveFailures, s);
                }
                self.state = State::Closed { consecutive_failures: n };
                None
            }
            // A call that started before the breaker opened; it changes nothing.
            State::Open { .. } => None,
            State::HalfOpen { trips, admitted, successes } => {
                if failure {
                    return self.trip(now_ms, trips.saturating_add(1), TripReason::ProbeFailed, s);
                }
                let successes = successes + 1;
                if successes >= s.successes_to_close {
                    return self.go(State::Closed { consecutive_failures: 0 }, None);
                }
                self.state = State::HalfOpen { trips, admitted, successes };
                None
            }
        }
    }

    /// Trips a closed breaker when the windowed rates or phi say so.
    pub fn assess(&mut self, now_ms: u64, sig: Signals, s: &BreakerSettings) -> Option<Transition> {
        if !matches!(self.state, State::Closed { .. }) {
            return None;
        }
        if sig.phi >= s.phi_threshold {
            return self.trip(now_ms, 1, TripReason::Phi, s);
        }
        if sig.calls >= s.min_calls.max(1) {
            if sig.failure_rate >= s.failure_rate {
                return self.trip(now_ms, 1, TripReason::FailureRate, s);
            }
            if sig.slow_rate >= s.slow_call_rate {
                return self.trip(now_ms, 1, TripReason::SlowCallRate, s);
            }
        }
        None
    }

    /// Whether this host may take traffic now (without admitting a probe).
    pub fn available(&self, now_ms: u64, s: &BreakerSettings) -> bool {
        match self.state {
            State::Closed { .. } => true,
            State::Open { until_ms, .. } => now_ms >= until_ms,
            State::HalfOpen { admitted, .. } => admitted < s.half_open_probes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s() -> BreakerSettings {
        BreakerSettings { consecutive_failures: 3, min_calls: 10, open_base_ms: 1000, open_max_ms: 5000, half_open_probes: 2, successes_to_close: 2, ..Default::default() }
    }

    fn closed(n: u32) -> State {
        State::Closed { consecutive_failures: n }
    }

    #[test]
    fn closed_counts_consecutive_failures_and_success_resets() {
        let s = s();
        let mut b = Breaker::default();
        assert_eq!(b.record(0, true, &s), None);
        assert_eq!(b.record(0, true, &s), None);
        assert_eq!(b.state, closed(2));
        assert_eq!(b.record(0, false, &s), None);
        assert_eq!(b.state, closed(0));
        b.record(0, true, &s);
        b.record(0, true, &s);
        let t = b.record(10, true, &s).unwrap();
        assert_eq!(t.reason, Some(TripReason::ConsecutiveFailures));
        assert_eq!(b.state, State::Open { until_ms: 1010, trips: 1 });
    }

    #[test]
    fn open_rejects_then_half_opens_after_timeout() {
        let s = s();
        let mut b = Breaker { state: State::Open { until_ms: 1000, trips: 1 } };
        assert_eq!(b.decide(400, &s), (Decision::Reject { retry_after_ms: 600 }, None));
        assert!(!b.available(999, &s));
        assert!(b.available(1000, &s));
        assert_eq!(b.record(500, true, &s), None, "late results do not move an open breaker");
        let (d, t) = b.decide(1000, &s);
        assert_eq!(d, Decision::Probe);
        assert_eq!(t.unwrap().to, State::HalfOpen { trips: 1, admitted: 0, successes: 0 });
        assert_eq!(b.state, State::HalfOpen { trips: 1, admitted: 1, successes: 0 });
    }

    #[test]
    fn half_open_admits_a_limited_number_of_probes() {
        let s = s();
        let mut b = Breaker { state: State::HalfOpen { trips: 1, admitted: 0, successes: 0 } };
        assert_eq!(b.decide(0, &s).0, Decision::Probe);
        assert_eq!(b.decide(0, &s).0, Decision::Probe);
        assert_eq!(b.decide(0, &s).0, Decision::Reject { retry_after_ms: 1000 });
        assert!(!b.available(0, &s));
    }

    #[test]
    fn half_open_closes_after_enough_successes() {
        let s = s();
        let mut b = Breaker { state: State::HalfOpen { trips: 3, admitted: 2, successes: 0 } };
        assert_eq!(b.record(0, false, &s), None);
        let t = b.record(0, false, &s).unwrap();
        assert_eq!(t.to, closed(0));
        assert_eq!(b.state, closed(0));
        // Closing starts the backoff over.
        for _ in 0..3 {
            b.record(0, true, &s);
        }
        assert_eq!(b.state, State::Open { until_ms: 1000, trips: 1 });
    }

    #[test]
    fn half_open_failure_reopens_with_doubled_timeout_up_to_max() {
        let s = s();
        let mut b = Breaker { state: State::HalfOpen { trips: 1, admitted: 1, successes: 0 } };
        let t = b.record(100, true, &s).unwrap();
        assert_eq!(t.reason, Some(TripReason::ProbeFailed));
        assert_eq!(b.state, State::Open { until_ms: 2100, trips: 2 });
        let mut b = Breaker { state: State::HalfOpen { trips: 2, admitted: 1, successes: 1 } };
        b.record(0, true, &s);
        assert_eq!(b.state, State::Open { until_ms: 4000, trips: 3 });
        let mut b = Breaker { state: State::HalfOpen { trips: 3, admitted: 1, successes: 0 } };
        b.record(0, true, &s);
        assert_eq!(b.state, State::Open { until_ms: 5000, trips: 4 }, "capped at open_max_ms");
        let mut b = Breaker { state: State::HalfOpen { trips: u32::MAX, admitted: 1, successes: 0 } };
        b.record(u64::MAX - 1, true, &s);
        assert!(matches!(b.state, State::Open { until_ms: u64::MAX, .. }), "no overflow");
    }

    #[test]
    fn assess_trips_on_rates_with_volume_and_on_phi() {
        let s = s();
        let mut b = Breaker::default();
        let few = Signals { calls: 9, failure_rate: 1.0, slow_rate: 1.0, phi: 0.0 };
        assert_eq!(b.assess(0, few, &s), None, "below the minimum volume");
        let fail = Signals { calls: 10, failure_rate: 0.5, ..Default::default() };
        assert_eq!(b.assess(0, fail, &s).unwrap().reason, Some(TripReason::FailureRate));
        let mut b = Breaker::default();
        let slow = Signals { calls: 10, slow_rate: 0.95, ..Default::default() };
        assert_eq!(b.assess(0, slow, &s).unwrap().reason, Some(TripReason::SlowCallRate));
        let mut b = Breaker::default();
        let hung = Signals { calls: 0, phi: 8.5, ..Default::default() };
        assert_eq!(b.assess(0, hung, &s).unwrap().reason, Some(TripReason::Phi));
        let healthy = Signals { calls: 100, failure_rate: 0.1, slow_rate: 0.1, phi: 2.0 };
        let mut b = Breaker::default();
        assert_eq!(b.assess(0, healthy, &s), None);
        // Only a closed breaker is assessed.
        let mut open = Breaker { state: State::Open { until_ms: 5, trips: 1 } };
        assert_eq!(open.assess(0, hung, &s), None);
    }

    #[test]
    fn closed_allows_everything() {
        let s = s();
        let mut b = Breaker::default();
        for t in 0..100 {
            assert_eq!(b.decide(t, &s), (Decision::Allow, None));
        }
    }
}
