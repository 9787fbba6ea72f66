//! The body to post: part choice, quote and signature stripping, sanitizing.
//! (Interface fixed; implementation to be filled in.)

use crate::config::ContentConfig;
use mail_parser::Message;
use serde::Serialize;

/// Thulium's `body_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum BodyType {
    #[serde(rename = "HTML")]
    Html,
    #[serde(rename = "PLAIN")]
    Plain,
}

/// The cleaned body, ready to post.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Body {
    pub text: String,
    pub body_type: BodyType,
}

/// Chooses, cleans and bounds the body of `msg` per `[content]`.
pub fn extract(msg: &Message<'_>, _content: &ContentConfig) -> Body {
    Body {
        text: msg.body_text(0).map(|t| t.into_owned()).unwrap_or_default(),
        body_type: BodyType::Plain,
    }
}
