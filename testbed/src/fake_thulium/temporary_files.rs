//! `POST temporary_files?filename=NAME`
//! (<https://api.thulium.com/docs/api/temporary_files/post_temporary_files>): the raw
//! body is kept for 24 hours under a token, answered as
//! `{"filename":"file.txt","token":"180174033853be57b76ed6a","size":12}`; the token
//! goes into `attachments` of `POST tickets`.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;

use super::{BODY_LIMIT, FakeThulium, InFlight, Shared, arrive, lock, now_ms, post_with_fault};
use crate::conn::ConnHandle;
use crate::contract::{error, invalid, unauthorized};
use crate::faults::Endpoint;

/// "Tworzy na serwerze tymczasowy plik dostępny przez 24 godziny" (kept 24 hours).
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// A file `temporary_files` stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UploadedFile {
    /// Order of storing, across files.
    pub seq: u64,
    pub token: String,
    /// `filename` as the query gave it.
    pub filename: String,
    #[serde(skip)]
    pub bytes: Bytes,
    /// The request's `Content-Type` (the page's PHP sample sends `application/octet-stream`).
    pub content_type: Option<String>,
    /// When the request's head arrived: the body (the file) was sent from then on.
    pub started_unix_ms: u64,
    /// When it was stored, the body read whole.
    pub at_unix_ms: u64,
}

/// The stored files, by token.
#[derive(Default)]
pub(super) struct Uploads {
    files: HashMap<String, UploadedFile>,
    next_seq: u64,
}

/// Why a token cannot be attached.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum TokenProblem {
    Unknown,
    Expired,
}

impl Uploads {
    /// Whether `token` names a file still kept `lifetime_ms` after its upload.
    pub(super) fn check(&self, token: &str, lifetime_ms: u64) -> Result<(), TokenProblem> {
        match self.files.get(token) {
            None => Err(TokenProblem::Unknown),
            Some(f) if now_ms().saturating_sub(f.at_unix_ms) >= lifetime_ms => {
                Err(TokenProblem::Expired)
            }
            Some(_) => Ok(()),
        }
    }

    fn store(
        &mut self,
        filename: String,
        bytes: Bytes,
        content_type: Option<String>,
        started_unix_ms: u64,
    ) -> String {
        let token = loop {
            // 23 hex digits, like the page's example token.
            let t = format!(
                "{:016x}{:07x}",
                rand::random::<u64>(),
                rand::random::<u32>() & 0x0fff_ffff
            );
            if !self.files.contains_key(&t) {
                break t;
            }
        };
        let seq = self.next_seq;
        self.next_seq += 1;
        self.files.insert(
            token.clone(),
            UploadedFile {
                seq,
                token: token.clone(),
                filename,
                bytes,
                content_type,
                started_unix_ms,
                at_unix_ms: now_ms(),
            },
        );
        token
    }
}

impl FakeThulium {
    /// Every file stored by `temporary_files`, in order of storing.
    pub fn uploads(&self) -> Vec<UploadedFile> {
        let mut files: Vec<UploadedFile> =
            lock(&self.shared.uploads).files.values().cloned().collect();
        files.sort_by_key(|f| f.seq);
        files
    }

    /// The files `ticket` was created with, in the order of its `attachments`.
    pub fn ticket_files(&self, ticket: u64) -> Vec<UploadedFile> {
        let tokens = self
            .created_ticket(ticket)
            .map(|t| t.attachments)
            .unwrap_or_default();
        let uploads = lock(&self.shared.uploads);
        tokens
            .iter()
            .filter_map(|t| uploads.files.get(t).cloned())
            .collect()
    }

    /// How long tokens stay valid from now on, counted from each file's upload
    /// ([`TOKEN_LIFETIME`] unless changed; zero makes every token expired).
    pub fn set_token_lifetime(&self, lifetime: Duration) {
        self.shared
            .token_lifetime_ms
            .store(lifetime.as_millis() as u64, Ordering::Relaxed);
    }
}

/// `POST temporary_files?filename=`: 422 without a filename, else stored and answered.
/// The body is read here, not by an extractor, so the upload's start is known.
pub(super) async fn upload(
    State(shared): State<Arc<Shared>>,
    conn: Option<axum::Extension<ConnHandle>>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = now_ms();
    let _in_flight = InFlight::enter(&shared.in_flight);
    let (request, fault) = arrive(
        &shared,
        Endpoint::TemporaryFiles,
        None,
        &uri,
        &headers,
        None,
    )
    .await;
    let body = match axum::body::to_bytes(body, BODY_LIMIT).await {
        Ok(bytes) => bytes,
        Err(e) => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("cannot read the file: {e}"),
            );
        }
    };
    let filename = query.ok().and_then(|Query(pairs)| {
        pairs
            .into_iter()
            .find(|(k, _)| k == "filename")
            .map(|(_, v)| v)
    });
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    post_with_fault(&shared, request, fault, conn, |auth_ok| {
        if !auth_ok {
            return unauthorized();
        }
        let Some(filename) = filename.filter(|f| !f.trim().is_empty()) else {
            let (status, message) = invalid("The filename field is required.");
            return error(status, &message);
        };
        let size = body.len();
        let token = lock(&shared.uploads).store(filename.clone(), body, content_type, started);
        (
            StatusCode::OK,
            axum::Json(json!({"filename": filename, "token": token, "size": size})),
        )
            .into_response()
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_known_until_they_expire() {
        let mut uploads = Uploads::default();
        let token = uploads.store("a.txt".into(), Bytes::from_static(b"abc"), None, now_ms());
        assert_eq!(token.len(), 23);
        assert_eq!(uploads.check(&token, 60_000), Ok(()));
        assert_eq!(uploads.check(&token, 0), Err(TokenProblem::Expired));
        assert_eq!(uploads.check("nope", 60_000), Err(TokenProblem::Unknown));
    }
}
