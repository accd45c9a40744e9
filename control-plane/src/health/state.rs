//! The rise/fall state machine of one endpoint, fed one probe outcome at a
//! time. Pure: time is passed in, so every transition is testable.
//!
//! Why hysteresis: one lost probe must not pull an endpoint (Envoy would
//! drop its connections and the next probe would bring it back), and one
//! lucky probe must not put a broken endpoint back. So it takes `fall`
//! failures in a row to go down and `rise` successes in a row to come back.
//!
//! Flap damping: an endpoint that came back several times within the flap
//! window must prove itself for longer before it returns again (its `rise`
//! is multiplied, up to `MAX_RISE_FACTOR`). Going down is never delayed
//! beyond `fall`: sending traffic to a dead host costs more than idling a
//! live one.

use std::collections::VecDeque;

use serde::Serialize;

/// What the control plane believes about an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    /// Not probed yet (or probes are off).
    Unknown,
    Healthy,
    /// Answers, but slowly or under strain: traffic only if too few are healthy.
    Degraded,
    Unhealthy,
}

impl Health {
    /// A fixed label for metrics and logs.
    pub fn label(self) -> &'static str {
        match self {
            Health::Unknown => "unknown",
            Health::Healthy => "healthy",
            Health::Degraded => "degraded",
            Health::Unhealthy => "unhealthy",
        }
    }

    pub const ALL: [Health; 4] = [Health::Unknown, Health::Healthy, Health::Degraded, Health::Unhealthy];
}

/// The result of one probe as the state machine sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Answered correctly and in good time.
    Good,
    /// Answered correctly but slower than acceptable or under strain.
    Strained,
    /// No answer, a wrong answer, or a backend error.
    Failed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    pub rise: u32,
    pub fall: u32,
    /// Returns to service counted for damping happen within this many ms.
    pub flap_window_ms: u64,
}

/// The most a flapping endpoint's `rise` is multiplied by.
pub const MAX_RISE_FACTOR: u32 = 4;
/// Comebacks remembered for damping.
const FLAP_MEMORY: usize = 8;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointState {
    health: Health,
    /// Outcomes in a row that argue for the same thing.
    good_run: u32,
    strained_run: u32,
    fail_run: u32,
    /// Answers (good or strained) in a row.
    answer_run: u32,
    /// When the endpoint last came back from Unhealthy (ms), newest last.
    comebacks: VecDeque<u64>,
}

impl Default for EndpointState {
    fn default() -> Self {
        EndpointState { health: Health::Unknown, good_run: 0, strained_run: 0, fail_run: 0, answer_run: 0, comebacks: VecDeque::new() }
    }
}

impl EndpointState {
    pub fn health(&self) -> Health {
        self.health
    }

    /// Failed probes in a row (drives backoff).
    pub fn consecutive_failures(&self) -> u32 {
        self.fail_run
    }

    /// Successes needed to come back, damped for flapping endpoints.
    pub fn required_rise(&self, t: &Thresholds, now_ms: u64) -> u32 {
        let recent = self.comebacks.iter().filter(|&&c| now_ms.saturating_sub(c) < t.flap_window_ms).count() as u32;
        // The first comeback in a window is normal; each further one doubles.
        let factor = if recent <= 1 { 1 } else { (1u32 << (recent - 1).min(5)).min(MAX_RISE_FACTOR) };
        t.rise.saturating_mul(factor)
    }

    /// Applies one outcome; returns the new health if it changed.
    pub fn observe(&mut self, outcome: Outcome, t: &Thresholds, now_ms: u64) -> Option<Health> {
        self.answer_run = if outcome == Outcome::Failed { 0 } else { self.answer_run + 1 };
        match outcome {
            Outcome::Good => {
                self.good_run += 1;
                self.strained_run = 0;
                self.fail_run = 0;
            }
            Outcome::Strained => {
                self.strained_run += 1;
                self.good_run = 0;
                self.fail_run = 0;
            }
            Outcome::Failed => {
                self.fail_run += 1;
                self.good_run = 0;
                self.strained_run = 0;
            }
        }
        let next = match (self.health, outcome) {
            // A first answer settles an unknown endpoint at once: it was
            // already receiving traffic as "unknown".
            (Health::Unknown, Outcome::Good) => Health::Healthy,
            (Health::Unknown, Outcome::Strained) => Health::Degraded,
            (Health::Unknown | Health::Healthy | Health::Degraded, Outcome::Failed) if self.fail_run >= t.fall => Health::Unhealthy,
            (Health::Healthy, Outcome::Strained) if self.strained_run >= t.fall => Health::Degraded,
            (Health::Degraded, Outcome::Good) if self.good_run >= t.rise => Health::Healthy,
            (Health::Unhealthy, Outcome::Good | Outcome::Strained) if self.answer_run >= self.required_rise(t, now_ms) => {
                if outcome == Outcome::Good {
                    Health::Healthy
                } else {
                    Health::Degraded
                }
            }
            (h, _) => h,
        };
        if next == self.health {
            return None;
        }
        if self.health == Health::Unhealthy {
            self.comebacks.push_back(now_ms);
            if self.comebacks.len() > FLAP_MEMORY {
                self.comebacks.pop_front();
            }
        }
        self.health = next;
        Some(next)
    }
}

#[cfg(test)]
mod tests {
    use super::Health::*;
    use super::Outcome::*;
    use super::*;

    const T: Thresholds = Thresholds { rise: 2, fall: 3, flap_window_ms: 60_000 };

    /// Runs outcomes at 1 s steps from `start_ms`; returns health after each.
    fn run(s: &mut EndpointState, outcomes: &[Outcome], start_ms: u64) -> Vec<Health> {
        outcomes
            .iter()
            .enumerate()
            .map(|(i, &o)| {
                s.observe(o, &T, start_ms + i as u64 * 1000);
                s.health()
            })
            .collect()
    }

    #[test]
    fn unknown_settles_on_first_answer_and_falls_after_fall_failures() {
        assert_eq!(run(&mut EndpointState::default(), &[Good], 0), [Healthy]);
        assert_eq!(run(&mut EndpointState::default(), &[Strained], 0), [Degraded]);
        assert_eq!(run(&mut EndpointState::default(), &[Failed, Failed, Failed], 0), [Unknown, Unknown, Unhealthy]);
    }

    #[test]
    fn healthy_needs_fall_failures_in_a_row() {
        let mut s = EndpointState::default();
        let got = run(&mut s, &[Good, Failed, Failed, Good, Failed, Failed, Failed], 0);
        assert_eq!(got, [Healthy, Healthy, Healthy, Healthy, Healthy, Healthy, Unhealthy]);
        assert_eq!(s.consecutive_failures(), 3);
    }

    #[test]
    fn unhealthy_needs_rise_answers_in_a_row() {
        let mut s = EndpointState::default();
        run(&mut s, &[Failed, Failed, Failed], 0);
        let got = run(&mut s, &[Good, Failed, Good, Good], 10_000);
        assert_eq!(got, [Unhealthy, Unhealthy, Unhealthy, Healthy]);
        assert_eq!(s.consecutive_failures(), 0);
    }

    #[test]
    fn recovery_lands_on_degraded_when_the_last_answer_was_strained() {
        let mut s = EndpointState::default();
        run(&mut s, &[Failed, Failed, Failed], 0);
        assert_eq!(run(&mut s, &[Good, Strained], 10_000), [Unhealthy, Degraded]);
    }

    #[test]
    fn degraded_after_fall_strained_and_back_after_rise_good() {
        let mut s = EndpointState::default();
        let got = run(&mut s, &[Good, Strained, Strained, Strained, Good, Strained, Good, Good], 0);
        assert_eq!(got, [Healthy, Healthy, Healthy, Degraded, Degraded, Degraded, Degraded, Healthy]);
        // Degraded falls like healthy does.
        assert_eq!(run(&mut s, &[Strained, Strained, Strained, Failed, Failed, Failed], 20_000).last(), Some(&Unhealthy));
    }

    #[test]
    fn observe_reports_only_changes() {
        let mut s = EndpointState::default();
        assert_eq!(s.observe(Good, &T, 0), Some(Healthy));
        assert_eq!(s.observe(Good, &T, 1), None);
        assert_eq!(s.observe(Failed, &T, 2), None);
        assert_eq!(s.observe(Failed, &T, 3), None);
        assert_eq!(s.observe(Failed, &T, 4), Some(Unhealthy));
        assert_eq!(s.observe(Failed, &T, 5), None);
    }

    #[test]
    fn flapping_endpoint_must_prove_itself_longer() {
        let mut s = EndpointState::default();
        let down = [Failed, Failed, Failed];
        let mut now = 0;
        let mut rises = Vec::new();
        for _ in 0..4 {
            run(&mut s, &down, now);
            now += 3000;
            rises.push(s.required_rise(&T, now));
            // Count the good probes it takes to come back.
            let mut n = 0;
            while s.health() != Healthy {
                s.observe(Good, &T, now);
                now += 1000;
                n += 1;
            }
            assert_eq!(n, rises.last().copied().unwrap_or(0));
        }
        assert_eq!(rises, [2, 2, 4, 8], "1st and 2nd comeback normal, then doubling, capped at {MAX_RISE_FACTOR}x");
        // Outside the window the penalty is forgotten.
        run(&mut s, &down, now);
        assert_eq!(s.required_rise(&T, now + 120_000), 2);
        // Going down is never damped.
        let mut t = s.clone();
        run(&mut t, &[Good; 8], now + 120_000);
        assert_eq!(run(&mut t, &down, now + 130_000).last(), Some(&Unhealthy));
    }
}
