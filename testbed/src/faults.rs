//! Faults the fake Thulium API injects on demand, per request.
//!
//! Faults are picked when a request arrives, under a lock that is never held
//! across an await, so injecting them costs nothing when none are queued.

use std::collections::VecDeque;
use std::time::Duration;

use serde::Serialize;

/// What to do to one request instead of (or on top of) answering it normally.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum Fault {
    /// Answer this status with the error JSON, storing nothing.
    Status(u16),
    /// Answer this status with the documented error JSON carrying `message`
    /// (`{"request_id": ..., "errors": [{"message": ..., "code": status}]}`),
    /// storing nothing: a rejection in the API's own words.
    Reject { status: u16, message: String },
    /// 429 with `Retry-After: secs`, storing nothing.
    TooManyRequests { retry_after_secs: u64 },
    /// Reset the TCP connection (RST) without answering, storing nothing.
    Reset,
    /// Handle the request (store the reply), then reset without answering:
    /// the client cannot know that its post went through.
    AcceptThenDrop,
    /// Handle the request (store the reply), then answer only after this
    /// long, meant to exceed the client's timeout.
    AcceptThenDelay(Duration),
    /// Wait this long, then answer normally.
    Latency(Duration),
    /// For `GET tickets/{id}`: answer this status with the error JSON.
    GetFails(u16),
}

impl Fault {
    /// Whether the fault is meant for GETs rather than POSTs.
    pub fn is_for_get(&self) -> bool {
        matches!(self, Fault::GetFails(_))
    }
}

/// Queued one-shot faults and the "every k-th POST" rule.
#[derive(Debug, Default)]
pub(crate) struct FaultPlan {
    /// One-shot faults, in order; `Some(ticket)` limits one to that ticket.
    queue: VecDeque<(Option<u64>, Fault)>,
    /// Fail every k-th POST with the fault.
    every: Option<(u64, Fault)>,
    /// POSTs seen so far (for `every`).
    posts: u64,
}

impl FaultPlan {
    pub(crate) fn push(&mut self, ticket: Option<u64>, count: usize, fault: Fault) {
        for _ in 0..count {
            self.queue.push_back((ticket, fault.clone()));
        }
    }

    pub(crate) fn set_every(&mut self, k: u64, fault: Fault) {
        self.every = (k > 0).then_some((k, fault));
    }

    pub(crate) fn clear(&mut self) {
        self.queue.clear();
        self.every = None;
    }

    pub(crate) fn pending(&self) -> usize {
        self.queue.len()
    }

    /// The fault for a request to `ticket` (`None` for other paths), if any.
    pub(crate) fn take(&mut self, is_post: bool, ticket: Option<u64>) -> Option<Fault> {
        if is_post {
            self.posts += 1;
        }
        let matches = |(t, f): &(Option<u64>, Fault)| {
            f.is_for_get() != is_post && (t.is_none() || *t == ticket)
        };
        if let Some(i) = self.queue.iter().position(matches) {
            return self.queue.remove(i).map(|(_, f)| f);
        }
        match &self.every {
            Some((k, fault)) if is_post && self.posts.is_multiple_of(*k) => Some(fault.clone()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_is_per_method_and_ticket() {
        let mut plan = FaultPlan::default();
        plan.push(Some(7), 1, Fault::Status(500));
        plan.push(None, 1, Fault::GetFails(503));
        assert_eq!(plan.take(true, Some(1)), None);
        assert_eq!(plan.take(false, Some(1)), Some(Fault::GetFails(503)));
        assert_eq!(plan.take(true, Some(7)), Some(Fault::Status(500)));
        assert_eq!(plan.take(true, Some(7)), None);
    }

    #[test]
    fn every_kth_post() {
        let mut plan = FaultPlan::default();
        plan.set_every(3, Fault::Reset);
        let hits: Vec<bool> = (0..6).map(|_| plan.take(true, Some(1)).is_some()).collect();
        assert_eq!(hits, [false, false, true, false, false, true]);
        assert_eq!(plan.take(false, Some(1)), None);
    }
}
