//! The last N outcomes of one host (failure? slow?), with running counts
//! so the rates cost nothing to read on every request.

use std::collections::VecDeque;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutcomeWindow {
    items: VecDeque<(bool, bool)>,
    failures: u32,
    slow: u32,
}

impl OutcomeWindow {
    /// Adds an outcome, dropping the oldest beyond `cap`.
    pub fn push(&mut self, failure: bool, slow: bool, cap: usize) {
        self.items.push_back((failure, slow));
        self.failures += u32::from(failure);
        self.slow += u32::from(slow);
        while self.items.len() > cap.max(1) {
            if let Some((f, s)) = self.items.pop_front() {
                self.failures -= u32::from(f);
                self.slow -= u32::from(s);
            }
        }
    }

    pub fn clear(&mut self) {
        *self = OutcomeWindow::default();
    }

    pub fn calls(&self) -> u32 {
        self.items.len() as u32
    }

    pub fn failure_rate(&self) -> f64 {
        f64::from(self.failures) / f64::from(self.calls().max(1))
    }

    pub fn slow_rate(&self) -> f64 {
        f64::from(self.slow) / f64::from(self.calls().max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_counts_match_a_recount() {
        let mut w = OutcomeWindow::default();
        let mut x: u32 = 7;
        for i in 0..1000 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            w.push(x.is_multiple_of(3), x.is_multiple_of(5), 50);
            let fails = w.items.iter().filter(|(f, _)| *f).count() as u32;
            let slows = w.items.iter().filter(|(_, s)| *s).count() as u32;
            assert_eq!((w.failures, w.slow), (fails, slows), "after {i}");
        }
        assert_eq!(w.calls(), 50);
        w.clear();
        assert_eq!((w.calls(), w.failure_rate(), w.slow_rate()), (0, 0.0, 0.0));
    }

    #[test]
    fn rates() {
        let mut w = OutcomeWindow::default();
        w.push(true, false, 4);
        w.push(false, true, 4);
        w.push(false, false, 4);
        w.push(true, true, 4);
        assert_eq!((w.failure_rate(), w.slow_rate()), (0.5, 0.5));
        w.push(false, false, 4); // drops the first failure
        assert_eq!(w.failure_rate(), 0.25);
    }
}
