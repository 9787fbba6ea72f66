//! `GET tickets` (<https://api.thulium.com/docs/api/tickets/get_tickets>): the list,
//! newest modification first ("Domyślnie posortowana po dacie modyfikacji od
//! najnowszych"), `limit` (default and most 100) and `offset`, with the page's filters.
//!
//! The page shows no example answer (every stored copy ends inside the parameters), so
//! this answers the smallest plausible shape: a bare JSON array of tickets, each with the
//! documented fields of `GET tickets/{id}` but no `messages`. Clients must read it
//! leniently. Filters the test bed cannot apply faithfully (`company_id`,
//! `custom_fields`, and `count`, whose answer the page does not show) are answered 501,
//! so no test relies on them without knowing.

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;

use super::{FakeThuliumConfig, InFlight, Opening, Shared, Ticket, arrive, json_response, lock};
use crate::contract::{Rejection, error, invalid, status, unauthorized, valid_date};
use crate::faults::{Endpoint, Fault};

/// "Maksymalna wartość: 100".
const MAX_LIMIT: usize = 100;

pub(super) async fn list_tickets(
    State(shared): State<Arc<Shared>>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let _in_flight = InFlight::enter(&shared.in_flight);
    let (mut request, fault) =
        arrive(&shared, Endpoint::ListTickets, None, &uri, &headers, None).await;
    let response = match (&fault, query) {
        (Some(Fault::GetFails(code)), _) => error(status(*code), "Injected fault"),
        _ if !request.auth_ok => unauthorized(),
        (_, Err(e)) => error(StatusCode::BAD_REQUEST, &e.body_text()),
        (_, Ok(Query(pairs))) => match Filter::parse(&pairs) {
            Ok(filter) => shared.list(&filter),
            Err((status, message)) => error(status, &message),
        },
    };
    request.status = Some(response.status().as_u16());
    shared.record(request);
    response
}

impl Shared {
    fn list(&self, filter: &Filter) -> Response {
        let tickets = lock(&self.tickets);
        let mut found: Vec<(&u64, &Ticket)> = tickets
            .iter()
            .filter(|(id, t)| filter.admits(**id, t, &self.config))
            .collect();
        found.sort_by_key(|(id, t)| std::cmp::Reverse((t.updated_ms(), **id)));
        let page: Vec<_> = found
            .into_iter()
            .skip(filter.offset)
            .take(filter.limit)
            .map(|(id, t)| t.view(*id, &self.config, false))
            .collect();
        match serde_json::to_vec(&page) {
            Ok(bytes) => json_response(StatusCode::OK, bytes),
            Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
        }
    }
}

/// The query's paging and filters.
struct Filter {
    limit: usize,
    offset: usize,
    /// `create_date_from` / `create_date_to`: the ticket's `created_at`.
    created_from: Option<String>,
    created_to: Option<String>,
    /// `date_from` / `date_to`: the ticket's `updated_at` (the page: "data modyfikacji").
    modified_from: Option<String>,
    modified_to: Option<String>,
    customer_id: Option<u64>,
    ticket_queue_id: Option<u64>,
    category_id: Option<u64>,
    user_login: Option<String>,
    source: Option<String>,
    message_id: Option<u64>,
    /// `status_id[]`, one or many; empty admits every status.
    status_ids: Vec<String>,
}

impl Filter {
    fn parse(pairs: &[(String, String)]) -> Result<Filter, Rejection> {
        let mut f = Filter {
            limit: MAX_LIMIT,
            offset: 0,
            created_from: None,
            created_to: None,
            modified_from: None,
            modified_to: None,
            customer_id: None,
            ticket_queue_id: None,
            category_id: None,
            user_login: None,
            source: None,
            message_id: None,
            status_ids: Vec::new(),
        };
        let refuse = |message: String| invalid(&message);
        let number = |key: &str, v: &str| {
            v.trim()
                .parse::<u64>()
                .map_err(|_| refuse(format!("The {key} must be an integer.")))
        };
        let date = |key: &str, v: &str| {
            let ok = valid_date(v) || (v.len() == 10 && valid_date(&format!("{v} 00:00")));
            ok.then(|| v.to_string()).ok_or_else(|| {
                refuse(format!(
                    "The {key} does not match the format Y-m-d or Y-m-d H:i."
                ))
            })
        };
        for (key, v) in pairs {
            match key.as_str() {
                "limit" => {
                    let n = number(key, v)?;
                    if n == 0 {
                        return Err(refuse("The limit must be at least 1.".into()));
                    }
                    f.limit = (n as usize).min(MAX_LIMIT);
                }
                "offset" => f.offset = number(key, v)? as usize,
                "create_date_from" => f.created_from = Some(date(key, v)?),
                "create_date_to" => f.created_to = Some(date(key, v)?),
                "date_from" => f.modified_from = Some(date(key, v)?),
                "date_to" => f.modified_to = Some(date(key, v)?),
                "customer_id" => f.customer_id = Some(number(key, v)?),
                "ticket_queue_id" => f.ticket_queue_id = Some(number(key, v)?),
                "category_id" => f.category_id = Some(number(key, v)?),
                "message_id" => f.message_id = Some(number(key, v)?),
                "user_login" => f.user_login = Some(v.clone()),
                "source" => f.source = Some(v.clone()),
                k if k == "status_id" || k.starts_with("status_id[") => {
                    number(key, v)?;
                    f.status_ids.push(v.trim().to_string());
                }
                k if k == "company_id" || k == "count" || k.starts_with("custom_fields") => {
                    return Err((
                        StatusCode::NOT_IMPLEMENTED,
                        format!("the test bed does not implement the GET tickets parameter {k}"),
                    ));
                }
                // Anything else the real API may or may not know: ignored, as APIs do.
                _ => {}
            }
        }
        Ok(f)
    }

    /// The dates compared are the ones the API writes, in its clock's zone.
    fn admits(&self, id: u64, t: &Ticket, config: &FakeThuliumConfig) -> bool {
        let view = t.view(id, config, false);
        let (source, user_login) = match &t.opening {
            Opening::Seeded => ("email", view.user_login),
            Opening::Created { ticket, .. } => (
                ticket.source.as_str(),
                ticket
                    .request
                    .get("user_login")
                    .and_then(|u| u.as_str())
                    .unwrap_or(""),
            ),
        };
        let messages = t.messages(config);
        self.created_from
            .as_deref()
            .is_none_or(|from| view.created_at.as_str() >= from)
            && self
                .created_to
                .as_deref()
                .is_none_or(|to| at_most(&view.created_at, to))
            && self
                .modified_from
                .as_deref()
                .is_none_or(|from| view.updated_at.as_str() >= from)
            && self
                .modified_to
                .as_deref()
                .is_none_or(|to| at_most(&view.updated_at, to))
            && self.customer_id.is_none_or(|c| c == view.customer_id)
            && self
                .ticket_queue_id
                .is_none_or(|q| q == view.ticket_queue_id)
            && self
                .category_id
                .is_none_or(|c| c.to_string() == view.category_id)
            && self.user_login.as_deref().is_none_or(|u| u == user_login)
            && self.source.as_deref().is_none_or(|s| s == source)
            && self
                .message_id
                .is_none_or(|m| messages.iter().any(|msg| msg.message_id == m))
            && (self.status_ids.is_empty() || self.status_ids.iter().any(|s| *s == view.status_id))
    }
}

/// `value` (`YYYY-MM-DD HH:MM`) at or before `to`; a date alone admits its whole day.
fn at_most(value: &str, to: &str) -> bool {
    if to.len() == 10 {
        value.get(..10).is_some_and(|day| day <= to)
    } else {
        value <= to
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(q: &[(&str, &str)]) -> Result<Filter, u16> {
        let pairs: Vec<(String, String)> = q
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Filter::parse(&pairs).map_err(|(status, _)| status.as_u16())
    }

    #[test]
    fn paging_and_dates_are_checked() {
        assert_eq!(parse(&[]).map(|f| f.limit), Ok(100));
        assert_eq!(parse(&[("limit", "500")]).map(|f| f.limit), Ok(100));
        assert_eq!(parse(&[("limit", "0")]).err(), Some(422));
        assert_eq!(parse(&[("create_date_from", "2014-07-04")]).err(), None);
        assert_eq!(
            parse(&[("create_date_from", "2014-07-04 12:34")]).err(),
            None
        );
        assert_eq!(
            parse(&[("create_date_from", "2014-07-04T12:34")]).err(),
            Some(422)
        );
        assert_eq!(parse(&[("company_id", "21")]).err(), Some(501));
        assert_eq!(
            parse(&[("status_id[]", "1"), ("status_id[]", "2")]).map(|f| f.status_ids.len()),
            Ok(2)
        );
    }

    #[test]
    fn a_date_alone_admits_its_whole_day() {
        assert!(at_most("2014-07-14 23:59", "2014-07-14"));
        assert!(!at_most("2014-07-15 00:00", "2014-07-14"));
        assert!(at_most("2014-07-14 12:34", "2014-07-14 12:34"));
        assert!(!at_most("2014-07-14 12:35", "2014-07-14 12:34"));
    }
}
