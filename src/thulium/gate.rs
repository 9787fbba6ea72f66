//! The last check before a write to the API leaves the process. A caller checks that it
//! may write (it leads the mailbox) before it sends, but a process paused in between
//! (SIGSTOP, a frozen VM) would send on waking, after a successor took over. So the
//! request body asks the gate once more as the connection takes it: the head and body
//! go out in one write, microseconds later. A closed gate fails the body, the
//! connection is dropped with the body unsent, and the server cannot act on a request
//! it never received whole.

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// Whether a write may still go out; [`Gate::open`] always lets it.
#[derive(Clone)]
pub struct Gate(Option<Arc<dyn Fn() -> bool + Send + Sync>>);

impl Gate {
    /// No last check: a bridge on its own ledger, a one-shot command, a test.
    pub fn open() -> Gate {
        Gate(None)
    }

    pub fn new(allows: impl Fn() -> bool + Send + Sync + 'static) -> Gate {
        Gate(Some(Arc::new(allows)))
    }

    fn allows(&self) -> bool {
        self.0.as_ref().is_none_or(|f| f())
    }

    /// `bytes` as a request body of known length that asks the gate as it is sent.
    pub(super) fn body(&self, bytes: Vec<u8>) -> reqwest::Body {
        if self.0.is_none() {
            return bytes.into();
        }
        reqwest::Body::wrap(GatedBody {
            bytes: Some(Bytes::from(bytes)),
            gate: self.clone(),
        })
    }
}

/// Why a body was not sent: the gate closed after the caller's own check.
#[derive(Debug, thiserror::Error)]
#[error(
    "withheld: this instance no longer leads the mailbox (its lease ran out before the request left)"
)]
pub(super) struct Withheld;

impl Withheld {
    /// Whether `e` (a client error) is, somewhere down its chain, a withheld body.
    pub(super) fn caused(e: &(dyn std::error::Error + 'static)) -> bool {
        let mut cause = Some(e);
        while let Some(c) = cause {
            if c.is::<Withheld>() {
                return true;
            }
            cause = c.source();
        }
        false
    }
}

/// One chunk, handed over only if the gate still allows it.
struct GatedBody {
    bytes: Option<Bytes>,
    gate: Gate,
}

impl Body for GatedBody {
    type Data = Bytes;
    type Error = Withheld;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Withheld>>> {
        let Some(bytes) = self.bytes.take() else {
            return Poll::Ready(None);
        };
        if self.gate.allows() {
            Poll::Ready(Some(Ok(Frame::data(bytes))))
        } else {
            Poll::Ready(Some(Err(Withheld)))
        }
    }

    fn is_end_stream(&self) -> bool {
        self.bytes.is_none()
    }

    /// Exact, so the request says Content-Length as a plain body does (not chunked).
    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.bytes.as_ref().map_or(0, |b| b.len() as u64))
    }
}
