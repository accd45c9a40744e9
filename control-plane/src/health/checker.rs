//! The probing task: keeps one record per endpoint of the current fleet,
//! probes each when its time comes (at most `concurrency` at once), feeds
//! the outcomes to the state machine and the score, and publishes the
//! health map only when a verdict changed, so a steady fleet causes no
//! snapshot rebuilds and no xDS pushes.
//!
//! The due times sit in one ordered queue, so a loop iteration costs
//! O(log n) per probe whatever the fleet size. Probes run as separate
//! tasks and report back over a channel; an endpoint has at most one
//! probe in flight, and its legacy MCP session travels with it.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch, Semaphore};
use tokio::time::Instant;
use tracing::{debug, info};

use super::board::{Board, Detail};
use super::probe::{ProbeError, Prober, Session, Success, Target};
use super::schedule::{next_delay, Rng};
use super::score::{is_strained, probe_score, ActiveVerdict, Resources};
use super::state::{EndpointState, Outcome, Thresholds};
use super::{EndpointKey, HealthMap};
use crate::config::{HealthSettings, HealthTiming};
use crate::registry::Fleet;

/// Probe outcomes the error rate is computed over.
const ERROR_WINDOW: u32 = 10;

/// The inputs and outputs of the checker.
pub struct Checker {
    pub prober: Prober,
    pub settings: watch::Receiver<Arc<HealthSettings>>,
    pub fleet: watch::Receiver<Arc<Fleet>>,
    /// Hosts some filter reported traffic for recently; others are idle.
    pub busy: watch::Receiver<Arc<BTreeSet<SocketAddr>>>,
    pub out: watch::Sender<Arc<HealthMap>>,
    pub board: Board,
    pub seed: u64,
}

struct Record {
    target: Target,
    timing: HealthTiming,
    state: EndpointState,
    /// `None` while a probe is in flight (the probe holds it).
    session: Option<Session>,
    due: Instant,
    /// Bumped when the record is replaced, so late results are dropped.
    generation: u64,
    /// The last outcomes, newest in bit 0 (1 = failed), and how many.
    outcomes: u32,
    outcome_count: u32,
    latency_ewma: Option<Duration>,
    resources: Resources,
    verdict: ActiveVerdict,
}

struct Done {
    key: EndpointKey,
    generation: u64,
    session: Session,
    result: Result<Success, ProbeError>,
}

impl Checker {
    /// Runs until `stop` turns true.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let start = Instant::now();
        let mut rng = Rng::new(self.seed);
        let mut records: BTreeMap<EndpointKey, Record> = BTreeMap::new();
        let mut queue: BTreeSet<(Instant, EndpointKey)> = BTreeSet::new();
        let mut current = HealthMap::new();
        let (done_tx, mut done_rx) = mpsc::channel::<Done>(1024);
        let mut generation = 0u64;
        let mut settings = self.settings.borrow_and_update().clone();
        let mut permits = Arc::new(Semaphore::new(settings.concurrency as usize));
        let mut fleet_changed = true;
        loop {
            if fleet_changed {
                fleet_changed = false;
                let fleet = self.fleet.borrow_and_update().clone();
                let wanted = if settings.enabled { wanted(&fleet, &settings) } else { BTreeMap::new() };
                let mut dirty = false;
                records.retain(|k, r| {
                    let keep = wanted.get(k).is_some_and(|(t, timing)| *t == r.target && *timing == r.timing);
                    if !keep {
                        queue.remove(&(r.due, k.clone()));
                        dirty |= current.remove(k).is_some();
                        self.board.remove(k);
                    }
                    keep
                });
                let now = Instant::now();
                for (k, (target, timing)) in wanted {
                    if records.contains_key(&k) {
                        continue;
                    }
                    generation += 1;
                    // First probes spread over the jitter range, not all at once.
                    let due = now + timing.interval.mul_f64(f64::from(timing.jitter_permille) / 1000.0 * rng.next_f64());
                    queue.insert((due, k.clone()));
                    self.board.set(&k, Detail::default());
                    records.insert(k, new_record(target, timing, due, generation));
                }
                if dirty {
                    self.out.send_replace(Arc::new(current.clone()));
                }
            }

            // Launch every due probe a permit allows.
            let now = Instant::now();
            while let Some((due, key)) = queue.first().cloned() {
                if due > now {
                    break;
                }
                let Ok(permit) = permits.clone().try_acquire_owned() else { break };
                queue.pop_first();
                let Some(rec) = records.get_mut(&key) else { continue };
                let Some(mut session) = rec.session.take() else { continue };
                let (prober, target, timeout, tx, generation) =
                    (self.prober.clone(), rec.target.clone(), rec.timing.timeout, done_tx.clone(), rec.generation);
                tokio::spawn(async move {
                    let result = prober.probe(&target, &mut session, timeout).await;
                    drop(permit);
                    let _ = tx.send(Done { key, generation, session, result }).await;
                });
            }
            let next_due = queue.first().map(|(d, _)| *d);
            let sleep = async {
                match next_due {
                    // When every permit is taken, a finished probe wakes us instead.
                    Some(d) if permits.available_permits() > 0 => tokio::time::sleep_until(d).await,
                    _ => std::future::pending::<()>().await,
                }
            };

            tokio::select! {
                Some(done) = done_rx.recv() => {
                    let mut changed = false;
                    let mut next = Some(done);
                    while let Some(done) = next {
                        changed |= self.apply(done, &mut records, &mut queue, &mut current, &mut rng, start);
                        next = done_rx.try_recv().ok();
                    }
                    if changed {
                        self.out.send_replace(Arc::new(current.clone()));
                    }
                }
                _ = sleep => {}
                Ok(()) = self.fleet.changed() => fleet_changed = true,
                Ok(()) = self.settings.changed() => {
                    settings = self.settings.borrow_and_update().clone();
                    permits = Arc::new(Semaphore::new(settings.concurrency as usize));
                    fleet_changed = true;
                }
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }

    /// Applies one probe result; returns whether the published map changed.
    fn apply(
        &self,
        done: Done,
        records: &mut BTreeMap<EndpointKey, Record>,
        queue: &mut BTreeSet<(Instant, EndpointKey)>,
        current: &mut HealthMap,
        rng: &mut Rng,
        start: Instant,
    ) -> bool {
        let Some(rec) = records.get_mut(&done.key) else { return false };
        if rec.generation != done.generation {
            return false;
        }
        let now = Instant::now();
        let now_ms = now.duration_since(start).as_millis() as u64;
        rec.session = Some(done.session);
        let t = &rec.timing;
        let thresholds = Thresholds {
            rise: t.rise,
            fall: t.fall,
            flap_window_ms: t.flap_window.as_millis() as u64,
        };
        let outcome = match &done.result {
            Ok(s) => {
                rec.latency_ewma = Some(match rec.latency_ewma {
                    Some(prev) => prev.mul_f64(0.7) + s.latency.mul_f64(0.3),
                    None => s.latency,
                });
                rec.resources = s.resources;
                if is_strained(s.latency, t.acceptable_latency, s.resources) {
                    Outcome::Strained
                } else {
                    Outcome::Good
                }
            }
            Err(_) => Outcome::Failed,
        };
        rec.outcomes = (rec.outcomes << 1) | u32::from(outcome == Outcome::Failed);
        rec.outcome_count = (rec.outcome_count + 1).min(ERROR_WINDOW);
        let window_mask = (1u32 << ERROR_WINDOW) - 1;
        let error_rate = f64::from((rec.outcomes & window_mask).count_ones()) / f64::from(rec.outcome_count.max(1));
        let before = rec.verdict;
        if let Some(h) = rec.state.observe(outcome, &thresholds, now_ms) {
            let reason = done.result.as_ref().err().map(ToString::to_string).unwrap_or_default();
            info!(service = %done.key.service, addr = %done.key.addr, from = before.health.label(), to = h.label(), %reason, "endpoint health changed");
            self.board.transition();
        }
        rec.verdict = ActiveVerdict {
            health: rec.state.health(),
            score: probe_score(error_rate, rec.latency_ewma, t.acceptable_latency, rec.resources),
        };
        let idle = !self.busy.borrow().contains(&done.key.addr);
        let delay = next_delay(t, rec.state.consecutive_failures(), idle, rng);
        rec.due = now + delay;
        queue.insert((rec.due, done.key.clone()));
        if let Err(e) = &done.result {
            debug!(service = %done.key.service, addr = %done.key.addr, error = %e, "probe failed");
        }
        self.board.record(&done.key, &done.result, rec.verdict, rec.state.consecutive_failures(), rec.latency_ewma, rec.resources, delay);
        if rec.verdict != before {
            current.insert(done.key, rec.verdict);
            return true;
        }
        false
    }
}

fn new_record(target: Target, timing: HealthTiming, due: Instant, generation: u64) -> Record {
    Record {
        target,
        timing,
        state: EndpointState::default(),
        session: Some(Session::default()),
        due,
        generation,
        outcomes: 0,
        outcome_count: 0,
        latency_ewma: None,
        resources: Resources::default(),
        verdict: ActiveVerdict::default(),
    }
}

/// Every endpoint to probe, with how.
fn wanted(fleet: &Fleet, settings: &HealthSettings) -> BTreeMap<EndpointKey, (Target, HealthTiming)> {
    let mut out = BTreeMap::new();
    for svc in fleet.services.values() {
        let timing = settings.for_service(&svc.name);
        for b in &svc.endpoints {
            let target = Target { addr: b.socket_addr(), path: b.path.clone(), protocol: b.protocol, health_path: b.health_path.clone() };
            out.insert(EndpointKey { service: svc.name.clone(), addr: b.socket_addr() }, (target, timing.clone()));
        }
    }
    out
}

