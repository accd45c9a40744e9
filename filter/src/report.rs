//! Breaker state changes on their way to the control plane: a small queue
//! (latest change per host wins, bounded), batching, and exponential
//! backoff while the control plane cannot be reached. Sending never blocks
//! a request; the glue calls `next_batch` from its tick.

use std::collections::BTreeMap;

use crate::breaker::{State, Transition};

/// Hosts with an unsent change, at most; the oldest entries are dropped.
pub const MAX_PENDING: usize = 512;
const BACKOFF_MIN_MS: u64 = 200;
const BACKOFF_MAX_MS: u64 = 10_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub host: String,
    pub cluster: String,
    pub state: &'static str,
    pub reason: &'static str,
    pub open_for_ms: u64,
    /// Order of arrival, so a retried batch never overwrites a newer change.
    seq: u64,
}

#[derive(Debug, Default)]
pub struct Reporter {
    pending: BTreeMap<String, Item>,
    in_flight: Option<Vec<Item>>,
    backoff_ms: u64,
    next_send_ms: u64,
    seq: u64,
}

impl Reporter {
    pub fn push(&mut self, host: &str, cluster: &str, t: &Transition, now_ms: u64) {
        let (state, open_for_ms) = match t.to {
            State::Open { until_ms, .. } => ("open", until_ms.saturating_sub(now_ms)),
            State::HalfOpen { .. } => ("half_open", 0),
            State::Closed { .. } => ("closed", 0),
        };
        self.seq += 1;
        let item = Item {
            host: host.to_string(),
            cluster: cluster.to_string(),
            state,
            reason: t.reason.map(|r| r.name()).unwrap_or(""),
            open_for_ms,
            seq: self.seq,
        };
        self.pending.insert(host.to_string(), item);
        while self.pending.len() > MAX_PENDING {
            let oldest = self.pending.iter().min_by_key(|(_, i)| i.seq).map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                self.pending.remove(&k);
            }
        }
    }

    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// The JSON body to send now, if anything is due and nothing is in flight.
    pub fn next_batch(&mut self, node: &str, now_ms: u64) -> Option<String> {
        if self.in_flight.is_some() || self.pending.is_empty() || now_ms < self.next_send_ms {
            return None;
        }
        let items: Vec<Item> = std::mem::take(&mut self.pending).into_values().collect();
        let reports: Vec<String> = items
            .iter()
            .map(|i| {
                format!(
                    r#"{{"host":{},"cluster":{},"state":"{}","reason":"{}","open_for_ms":{}}}"#,
                    json_str(&i.host),
                    json_str(&i.cluster),
                    i.state,
                    i.reason,
                    i.open_for_ms
                )
            })
            .collect();
        self.in_flight = Some(items);
        Some(format!(r#"{{"node":{},"reports":[{}]}}"#, json_str(node), reports.join(",")))
    }

    /// The control plane took the batch.
    pub fn sent(&mut self) {
        self.in_flight = None;
        self.backoff_ms = 0;
        self.next_send_ms = 0;
    }

    /// The batch did not arrive: keep it (unless a newer change replaced an
    /// entry) and wait longer before the next try.
    pub fn failed(&mut self, now_ms: u64) {
        for item in self.in_flight.take().unwrap_or_default() {
            match self.pending.get(&item.host) {
                Some(newer) if newer.seq > item.seq => {}
                _ => {
                    self.pending.insert(item.host.clone(), item);
                }
            }
        }
        self.backoff_ms = (self.backoff_ms * 2).clamp(BACKOFF_MIN_MS, BACKOFF_MAX_MS);
        self.next_send_ms = now_ms.saturating_add(self.backoff_ms);
    }
}

fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::breaker::TripReason;

    fn open(until: u64) -> Transition {
        Transition { from: State::Closed { consecutive_failures: 4 }, to: State::Open { until_ms: until, trips: 1 }, reason: Some(TripReason::ConsecutiveFailures) }
    }
    fn closed() -> Transition {
        Transition { from: State::HalfOpen { trips: 1, admitted: 2, successes: 2 }, to: State::Closed { consecutive_failures: 0 }, reason: None }
    }

    #[test]
    fn batches_latest_change_per_host() {
        let mut r = Reporter::default();
        r.push("127.0.0.1:1", "mcp_a", &open(3000), 1000);
        r.push("127.0.0.1:2", "mcp_a", &open(2000), 1000);
        r.push("127.0.0.1:1", "mcp_a", &closed(), 1500);
        let body = r.next_batch("envoy-1", 1500).unwrap();
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["node"], "envoy-1");
        assert_eq!(v["reports"].as_array().unwrap().len(), 2);
        assert_eq!(v["reports"][0]["state"], "closed");
        assert_eq!(v["reports"][1]["open_for_ms"], 1000);
        assert_eq!(v["reports"][1]["reason"], "consecutive_failures");
        assert_eq!(r.next_batch("envoy-1", 1500), None, "one batch in flight");
        r.sent();
        assert_eq!(r.next_batch("envoy-1", 1500), None, "nothing pending");
    }

    #[test]
    fn failures_back_off_and_keep_newer_changes() {
        let mut r = Reporter::default();
        r.push("h", "c", &open(5000), 0);
        assert!(r.next_batch("n", 0).is_some());
        r.push("h", "c", &closed(), 10); // newer than the batch in flight
        r.failed(10);
        assert_eq!(r.next_batch("n", 100), None, "backing off");
        let body = r.next_batch("n", 210).unwrap();
        assert!(body.contains(r#""state":"closed""#), "{body}");
        r.failed(210);
        assert_eq!(r.next_batch("n", 500), None, "backoff doubled to 400 ms");
        assert!(r.next_batch("n", 610).is_some());
        for i in 0..20 {
            r.failed(1000 * i);
            let _ = r.next_batch("n", u64::MAX);
        }
        r.failed(0);
        assert_eq!(r.next_batch("n", BACKOFF_MAX_MS - 1), None);
        assert!(r.next_batch("n", BACKOFF_MAX_MS).is_some(), "capped");
    }

    #[test]
    fn queue_is_bounded_and_json_is_escaped() {
        let mut r = Reporter::default();
        for i in 0..(MAX_PENDING + 10) {
            r.push(&format!("h{i}"), "c", &closed(), 0);
        }
        assert_eq!(r.pending(), MAX_PENDING);
        let mut r = Reporter::default();
        r.push("a\"b", "c\\d", &closed(), 0);
        let body = r.next_batch("n\n", 0).unwrap();
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["reports"][0]["host"], "a\"b");
        assert_eq!(v["node"], "n\n");
    }
}
