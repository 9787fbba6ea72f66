//! The metrics listener's connections: a bounded number (they share the daemon's file
//! descriptors with IMAP and the API), and when every slot is taken the connection that
//! has waited longest without sending its request makes room for the newcomer. A
//! timeout alone would let idle connections, reopened as fast as they are closed, lock
//! `/healthz` out for good; a newcomer, whose request follows at once, is always heard.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio_util::sync::CancellationToken;

pub(crate) struct ConnectionSlots {
    max: usize,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    next_id: u64,
    /// Connections still waiting for their request, oldest first.
    waiting: VecDeque<(u64, CancellationToken)>,
    /// Connections being answered: never dropped, their answer is bounded in time.
    answering: usize,
}

impl ConnectionSlots {
    pub(crate) fn new(max: usize) -> Arc<ConnectionSlots> {
        Arc::new(ConnectionSlots {
            max,
            state: Mutex::default(),
        })
    }

    /// A slot for a new connection: a free one, or the slot of the connection that has
    /// waited longest for its request (told to close). `None` while every slot is being
    /// answered.
    pub(crate) fn admit(self: &Arc<Self>) -> Option<Slot> {
        let mut state = self.lock();
        if state.waiting.len() + state.answering >= self.max {
            let (_, oldest) = state.waiting.pop_front()?;
            oldest.cancel();
        }
        let id = state.next_id;
        state.next_id += 1;
        let evicted = CancellationToken::new();
        state.waiting.push_back((id, evicted.clone()));
        Some(Slot {
            slots: Arc::clone(self),
            id,
            evicted,
            answering: false,
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One connection's place; given back when dropped.
pub(crate) struct Slot {
    slots: Arc<ConnectionSlots>,
    id: u64,
    evicted: CancellationToken,
    answering: bool,
}

impl Slot {
    /// Resolves when a newcomer took this idle connection's place.
    pub(crate) async fn evicted(&self) {
        self.evicted.cancelled().await
    }

    /// The request has come: from now on the connection keeps its slot until answered.
    /// `false` when it was evicted just before.
    pub(crate) fn answering(&mut self) -> bool {
        let mut state = self.slots.lock();
        let Some(at) = state.waiting.iter().position(|(id, _)| *id == self.id) else {
            return false;
        };
        state.waiting.remove(at);
        state.answering += 1;
        self.answering = true;
        true
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut state = self.slots.lock();
        if self.answering {
            state.answering -= 1;
        } else if let Some(at) = state.waiting.iter().position(|(id, _)| *id == self.id) {
            state.waiting.remove(at);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn evicted(slot: &Slot) -> bool {
        slot.evicted.is_cancelled()
    }

    #[test]
    fn a_newcomer_takes_the_place_of_the_oldest_idle_connection() {
        let slots = ConnectionSlots::new(3);
        let first = slots.admit().expect("free");
        let mut second = slots.admit().expect("free");
        let third = slots.admit().expect("free");
        assert!(second.answering());
        let fourth = slots.admit().expect("the oldest idle one makes room");
        assert!(evicted(&first) && !evicted(&second) && !evicted(&third));
        let fifth = slots.admit().expect("the next oldest idle one makes room");
        assert!(evicted(&third) && !evicted(&fourth) && !evicted(&fifth));
        // An evicted connection that read its request too late is not answered.
        let mut first = first;
        assert!(!first.answering());
        drop(first);
        let state = slots.lock();
        assert_eq!((state.waiting.len(), state.answering), (2, 1));
    }

    #[test]
    fn connections_being_answered_are_never_dropped_and_slots_come_back() {
        let slots = ConnectionSlots::new(2);
        let mut a = slots.admit().expect("free");
        let mut b = slots.admit().expect("free");
        assert!(a.answering() && b.answering());
        assert!(slots.admit().is_none(), "every slot is being answered");
        drop(a);
        let c = slots.admit().expect("a slot came back");
        assert!(!evicted(&b) && !evicted(&c));
        drop((b, c));
        let state = slots.lock();
        assert_eq!((state.waiting.len(), state.answering), (0, 0));
    }
}
