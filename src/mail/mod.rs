//! The pure part: reading a mail and deciding about it, with no I/O.

pub mod address;
pub mod authentication;
pub mod body;
pub mod classify;
pub mod content;
pub mod date;
pub mod decide;
pub mod forward;
#[cfg(test)]
mod hostile;
pub mod identity;
pub(crate) mod invisible;
pub mod mime_parameters;
pub(crate) mod sender;
pub mod size;
pub mod thread;
pub mod ticket;

pub use authentication::AuthVerdict;
pub use identity::MailId;

/// The bytes [`decide`](decide::decide) parses: line ends as LF ([`normalize_line_ends`])
/// and MIME parameters capped ([`mime_parameters`]), byte for byte.
pub fn prepared(raw: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    mime_parameters::cap(normalize_line_ends(raw))
}

/// [`prepared`] of a mail we own, in place.
pub fn into_prepared(raw: Vec<u8>) -> Vec<u8> {
    let mut raw = into_normalized_line_ends(raw);
    mime_parameters::cap_in_place(&mut raw);
    raw
}

/// Old Mac clients end lines with CR alone; mail-parser would read such a mail as one
/// long header, so its line ends become LF first.
/// Byte for byte: offsets into the result are offsets into `raw`.
pub fn normalize_line_ends(raw: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    if cr_only(raw) {
        into_normalized_line_ends(raw.to_vec()).into()
    } else {
        raw.into()
    }
}

/// [`normalize_line_ends`] of a mail we own, in place.
pub fn into_normalized_line_ends(mut raw: Vec<u8>) -> Vec<u8> {
    if cr_only(&raw) {
        for b in raw.iter_mut().filter(|b| **b == b'\r') {
            *b = b'\n';
        }
    }
    raw
}

fn cr_only(raw: &[u8]) -> bool {
    raw.contains(&b'\r') && !raw.contains(&b'\n')
}
