//! The pure part: reading a mail and deciding about it, with no I/O.

pub mod authentication;
pub mod body;
pub mod classify;
pub mod date;
pub mod decide;
#[cfg(test)]
mod hostile;
pub mod identity;
pub mod thread;
pub mod ticket;

pub use authentication::AuthVerdict;
pub use identity::MailId;

/// Old Mac clients end lines with CR alone; mail-parser would read such a mail as one
/// long header, so its line ends become LF first.
pub fn normalize_line_ends(raw: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    if raw.contains(&b'\r') && !raw.contains(&b'\n') {
        raw.iter()
            .map(|&b| if b == b'\r' { b'\n' } else { b })
            .collect::<Vec<u8>>()
            .into()
    } else {
        raw.into()
    }
}
