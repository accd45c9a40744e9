//! The composite verdict for one endpoint: what Envoy should think of it.
//! Pure functions, so the whole mapping is pinned by tests.
//!
//! Two steps, because the inputs change at different speeds:
//! - `probe_score` (in the checker, after every probe): recent probe error
//!   rate, latency against the acceptable bound, and resource figures the
//!   backend reported, folded into a score quantized to quarters, so noise
//!   in latency does not turn into an EDS push per probe.
//! - `verdict` (at snapshot time): the active state, the filters' passive
//!   ejections and the score become the EDS `health_status` and
//!   `load_balancing_weight`. A host any Envoy's filter ejected is
//!   unhealthy everywhere, whatever the probes say: the filters see real
//!   traffic, probes only see probes.

use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::HealthStatus;
use serde::Serialize;

use super::state::Health;

/// Resource figures a backend reported, as fractions of capacity.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Resources {
    pub cpu: Option<f64>,
    pub memory: Option<f64>,
}

/// Load below this costs nothing; from here to 100% the score drops to a quarter.
pub const RESOURCE_KNEE: f64 = 0.8;

/// Score steps: 4 = full, 1 = a quarter. Never 0: a live endpoint keeps
/// some traffic, or it could never show that it got better.
pub type Quarters = u8;

/// Folds probe figures into a score in quarters (1..=4).
pub fn probe_score(error_rate: f64, latency: Option<Duration>, acceptable: Duration, resources: Resources) -> Quarters {
    let errors = (1.0 - error_rate.clamp(0.0, 1.0)).max(0.0);
    let latency = match latency {
        Some(l) if l > acceptable && !l.is_zero() => acceptable.as_secs_f64() / l.as_secs_f64(),
        _ => 1.0,
    };
    let load = resources.cpu.into_iter().chain(resources.memory).fold(0.0_f64, f64::max);
    let resources = if load > RESOURCE_KNEE { 1.0 - 0.75 * ((load - RESOURCE_KNEE) / (1.0 - RESOURCE_KNEE)).min(1.0) } else { 1.0 };
    let score = errors * latency * resources;
    (score * 4.0).round().clamp(1.0, 4.0) as Quarters
}

/// Whether a probe's answer was slow or strained (for the state machine).
pub fn is_strained(latency: Duration, acceptable: Duration, resources: Resources) -> bool {
    let load = resources.cpu.into_iter().chain(resources.memory).fold(0.0_f64, f64::max);
    latency > acceptable || load >= 0.95
}

/// What the checker learned about an endpoint; the map it publishes holds these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct ActiveVerdict {
    pub health: Health,
    pub score: Quarters,
}

impl Default for ActiveVerdict {
    fn default() -> Self {
        ActiveVerdict { health: Health::Unknown, score: 4 }
    }
}

/// What goes into the endpoint's EDS entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct EdsVerdict {
    /// The health Envoy is told (Unknown is published as healthy: a new
    /// endpoint takes traffic until a probe says otherwise, as before
    /// health checks existed).
    pub health: Health,
    /// `load_balancing_weight`, at least 1.
    pub weight: u32,
}

impl EdsVerdict {
    pub fn eds_status(self) -> HealthStatus {
        match self.health {
            Health::Unknown | Health::Healthy => HealthStatus::Healthy,
            Health::Degraded => HealthStatus::Degraded,
            Health::Unhealthy => HealthStatus::Unhealthy,
        }
    }
}

pub fn verdict(active: ActiveVerdict, ejected: bool, base_weight: u32) -> EdsVerdict {
    let health = if ejected { Health::Unhealthy } else { active.health };
    let weight = (base_weight.max(1) * u32::from(active.score.clamp(1, 4))).div_ceil(4).max(1);
    EdsVerdict { health, weight }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: Duration = Duration::from_millis(100);

    #[test]
    fn perfect_endpoint_scores_full() {
        assert_eq!(probe_score(0.0, Some(Duration::from_millis(5)), OK, Resources::default()), 4);
        assert_eq!(probe_score(0.0, None, OK, Resources::default()), 4);
        assert_eq!(probe_score(0.0, Some(OK), OK, Resources { cpu: Some(0.8), memory: Some(0.5) }), 4);
    }

    #[test]
    fn each_input_lowers_the_score() {
        assert_eq!(probe_score(0.5, Some(OK), OK, Resources::default()), 2);
        assert_eq!(probe_score(0.0, Some(OK * 2), OK, Resources::default()), 2);
        assert_eq!(probe_score(0.0, Some(OK * 4), OK, Resources::default()), 1);
        assert_eq!(probe_score(0.0, Some(OK), OK, Resources { cpu: Some(1.0), memory: None }), 1);
        assert_eq!(probe_score(0.0, Some(OK), OK, Resources { cpu: None, memory: Some(0.9) }), 3);
        assert_eq!(probe_score(0.25, Some(OK * 2), OK, Resources::default()), 2, "factors multiply: 0.75 * 0.5");
    }

    #[test]
    fn score_never_reaches_zero_and_tolerates_bad_figures() {
        assert_eq!(probe_score(1.0, Some(OK * 100), OK, Resources { cpu: Some(5.0), memory: Some(f64::NAN) }), 1);
        assert_eq!(probe_score(-3.0, Some(Duration::ZERO), Duration::ZERO, Resources::default()), 4);
    }

    #[test]
    fn strained_means_slow_or_near_full() {
        assert!(!is_strained(OK, OK, Resources::default()));
        assert!(is_strained(OK * 2, OK, Resources::default()));
        assert!(is_strained(OK, OK, Resources { cpu: None, memory: Some(0.97) }));
    }

    #[test]
    fn verdict_maps_health_and_weight() {
        let v = |health, score, ejected, w| verdict(ActiveVerdict { health, score }, ejected, w);
        assert_eq!(v(Health::Unknown, 4, false, 3), EdsVerdict { health: Health::Unknown, weight: 3 });
        assert_eq!(v(Health::Unknown, 4, false, 3).eds_status(), HealthStatus::Healthy);
        assert_eq!(v(Health::Healthy, 2, false, 8).weight, 4);
        assert_eq!(v(Health::Healthy, 1, false, 1).weight, 1, "weight is at least 1");
        assert_eq!(v(Health::Healthy, 1, false, 3).weight, 1);
        assert_eq!(v(Health::Degraded, 4, false, 1).eds_status(), HealthStatus::Degraded);
        assert_eq!(v(Health::Unhealthy, 4, false, 1).eds_status(), HealthStatus::Unhealthy);
    }

    #[test]
    fn passive_ejection_overrides_passing_probes() {
        let healthy = ActiveVerdict { health: Health::Healthy, score: 4 };
        assert_eq!(verdict(healthy, true, 5).eds_status(), HealthStatus::Unhealthy);
        assert_eq!(verdict(ActiveVerdict::default(), true, 5).eds_status(), HealthStatus::Unhealthy);
    }
}
