//! The `[content]` table: which body is posted, how it is cleaned, the size limits.
//! The core is what reads it, so it is the core's type; the config parses into it.

use crate::mail::size::ByteSize;
use serde::Deserialize;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Prefer {
    #[default]
    Html,
    Plain,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RemoteImages {
    #[default]
    Drop,
    Keep,
}

/// `[content]` as written; the name stays, as serde's type errors quote it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ContentConfig {
    pub prefer: Prefer,
    pub strip_quotes: bool,
    pub strip_signatures: bool,
    pub remote_images: RemoteImages,
    pub attachment_note: bool,
    pub max_message_size: ByteSize,
    pub max_body_size: ByteSize,
    /// A new ticket's attachment larger than this is named in the body, not attached.
    pub max_attachment_size: ByteSize,
    /// All attachments of one new ticket together at most.
    pub max_attachments_total: ByteSize,
    /// Files attached to one new ticket at most (each is an upload); the rest are named.
    pub max_attachments: usize,
}

impl Default for ContentConfig {
    fn default() -> Self {
        ContentConfig {
            prefer: Prefer::Html,
            strip_quotes: true,
            strip_signatures: true,
            remote_images: RemoteImages::Drop,
            attachment_note: true,
            max_message_size: ByteSize(25 << 20),
            max_body_size: ByteSize(512 << 10),
            max_attachment_size: ByteSize(20 << 20),
            max_attachments_total: ByteSize(40 << 20),
            max_attachments: 50,
        }
    }
}
