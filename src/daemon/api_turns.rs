//! A turn at the API: the only way to reach the client, so no request goes out without
//! one of the `thulium.concurrency` slots of its kind (writing or reading).

use crate::mail::decide::CustomerResponse;
use crate::thulium::new_ticket::NewTicketRequest;
use crate::thulium::{ApiError, Gate, ThuliumClient, Ticket};
use tokio::sync::SemaphorePermit;

/// A turn at writing to the API (posting, uploading, opening tickets), held until dropped.
pub(crate) struct WriteTurn<'a> {
    pub(super) api: &'a ThuliumClient,
    /// `None` only if the slots were closed, which they never are.
    pub(super) _slot: Option<SemaphorePermit<'a>>,
}

impl WriteTurn<'_> {
    pub(crate) async fn post_customer_response(
        &self,
        ticket: u64,
        req: &CustomerResponse,
        gate: &Gate,
    ) -> Result<(), ApiError> {
        self.api.post_customer_response(ticket, req, gate).await
    }

    pub(crate) async fn upload(
        &self,
        filename: &str,
        body: reqwest::Body,
        size: u64,
    ) -> Result<String, ApiError> {
        self.api.upload(filename, body, size).await
    }

    pub(crate) async fn create_ticket(
        &self,
        req: &NewTicketRequest,
        gate: &Gate,
    ) -> Result<u64, ApiError> {
        self.api.create_ticket(req, gate).await
    }
}

/// A turn at reading tickets (verify_sender, read-backs, the clock), held until dropped.
pub(crate) struct ReadTurn<'a> {
    pub(super) api: &'a ThuliumClient,
    /// `None` only if the slots were closed, which they never are.
    pub(super) _slot: Option<SemaphorePermit<'a>>,
}

impl ReadTurn<'_> {
    pub(crate) async fn get_ticket(&self, ticket: u64) -> Result<Ticket, ApiError> {
        self.api.get_ticket(ticket).await
    }

    pub(crate) async fn find_tickets(
        &self,
        create_date_from: &str,
        ticket_queue_id: Option<u64>,
        offset: usize,
    ) -> Result<Vec<Ticket>, ApiError> {
        self.api
            .find_tickets(create_date_from, ticket_queue_id, offset)
            .await
    }
}
