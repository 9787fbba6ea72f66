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
    /// Handle the request (store the reply), then answer this status with the error
    /// JSON, as a gateway that timed out on a slow but successful backend does.
    AcceptThenStatus(u16),
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

/// The API's endpoints, so a fault can be aimed at one of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Endpoint {
    /// `POST tickets/{id}/customer_response`.
    CustomerResponse,
    /// `GET tickets/{id}`.
    GetTicket,
    /// `POST tickets`.
    CreateTicket,
    /// `POST temporary_files?filename=`.
    TemporaryFiles,
    /// `GET tickets` (the list).
    ListTickets,
}

impl Endpoint {
    pub fn is_post(self) -> bool {
        matches!(
            self,
            Endpoint::CustomerResponse | Endpoint::CreateTicket | Endpoint::TemporaryFiles
        )
    }
}

/// Which requests a queued fault may hit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scope {
    /// Any request of the fault's method.
    Any,
    /// Requests to this ticket (`tickets/{id}`…).
    Ticket(u64),
    /// Requests to this endpoint.
    Endpoint(Endpoint),
}

/// Queued one-shot faults and the "every k-th POST" rule.
#[derive(Debug, Default)]
pub(crate) struct FaultPlan {
    /// One-shot faults, in order, each with the requests it may hit.
    queue: VecDeque<(Scope, Fault)>,
    /// Fail every k-th POST with the fault.
    every: Option<(u64, Fault)>,
    /// POSTs seen so far (for `every`).
    posts: u64,
}

impl FaultPlan {
    pub(crate) fn push(&mut self, scope: Scope, count: usize, fault: Fault) {
        for _ in 0..count {
            self.queue.push_back((scope, fault.clone()));
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

    /// The fault for a request to `endpoint` (about `ticket`, when its path names one), if any.
    pub(crate) fn take(&mut self, endpoint: Endpoint, ticket: Option<u64>) -> Option<Fault> {
        let is_post = endpoint.is_post();
        if is_post {
            self.posts += 1;
        }
        let matches = |(scope, f): &(Scope, Fault)| {
            f.is_for_get() != is_post
                && match scope {
                    Scope::Any => true,
                    Scope::Ticket(t) => ticket == Some(*t),
                    Scope::Endpoint(e) => *e == endpoint,
                }
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

    const POST: Endpoint = Endpoint::CustomerResponse;
    const GET: Endpoint = Endpoint::GetTicket;

    #[test]
    fn queue_is_per_method_and_ticket() {
        let mut plan = FaultPlan::default();
        plan.push(Scope::Ticket(7), 1, Fault::Status(500));
        plan.push(Scope::Any, 1, Fault::GetFails(503));
        assert_eq!(plan.take(POST, Some(1)), None);
        assert_eq!(plan.take(GET, Some(1)), Some(Fault::GetFails(503)));
        assert_eq!(plan.take(POST, Some(7)), Some(Fault::Status(500)));
        assert_eq!(plan.take(POST, Some(7)), None);
    }

    #[test]
    fn queue_is_per_endpoint() {
        let mut plan = FaultPlan::default();
        plan.push(
            Scope::Endpoint(Endpoint::CreateTicket),
            1,
            Fault::AcceptThenDrop,
        );
        plan.push(
            Scope::Endpoint(Endpoint::ListTickets),
            1,
            Fault::GetFails(500),
        );
        assert_eq!(plan.take(Endpoint::TemporaryFiles, None), None);
        assert_eq!(plan.take(GET, Some(3)), None);
        assert_eq!(
            plan.take(Endpoint::CreateTicket, None),
            Some(Fault::AcceptThenDrop)
        );
        assert_eq!(
            plan.take(Endpoint::ListTickets, None),
            Some(Fault::GetFails(500))
        );
        assert_eq!(plan.pending(), 0);
    }

    #[test]
    fn every_kth_post() {
        let mut plan = FaultPlan::default();
        plan.set_every(3, Fault::Reset);
        let hits: Vec<bool> = (0..6).map(|_| plan.take(POST, Some(1)).is_some()).collect();
        assert_eq!(hits, [false, false, true, false, false, true]);
        assert_eq!(plan.take(GET, Some(1)), None);
    }
}
