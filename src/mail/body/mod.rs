//! The body to post: part choice, quote and signature stripping, sanitizing.
//!
//! HTML goes: lol_html marks quote/signature containers and turns images we
//! will not show into text → ammonia sanitizes → the visible text, as lines
//! mapped to byte offsets, is searched for quoted history and signatures by
//! the same detectors as plain text → the HTML is cut there and ammonia
//! closes the open tags. Every step is linear in the input, which is capped.

mod attachments;
mod attribute_cap;
mod choose;
mod css_values;
mod headers;
mod hidden_text;
mod html_lines;
mod html_scan;
mod limit;
mod lines;
mod markers;
mod recover;
mod reply;
mod sanitize;
mod signature;
#[cfg(test)]
mod tests;
mod text_runs;

pub use attachments::{Attachment, human_size, names as attachment_names};
pub use choose::{Choice, choose};
pub(crate) use headers::{ForwardStart, Label, field, forward_start, is_forward_separator};
pub(crate) use html_lines::html_lines;
pub use html_lines::html_to_text;
pub(crate) use lines::{Line, text_lines};
pub use sanitize::escape as escape_html;

use crate::mail::content::{ContentConfig, Prefer, RemoteImages};
use crate::mail::invisible;
use mail_parser::{Message, MimeHeaders, PartType};
use serde::Serialize;
use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

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
    /// The attachments the body does not show (not its own parts, not the `cid:`
    /// images shown in it): what the note names and a new ticket attaches.
    pub attachments: Vec<Attachment>,
}

/// Raw body input beyond this is not even parsed: bounds time and memory for any mail.
fn input_cap(max_body: usize) -> usize {
    max_body.saturating_mul(4).clamp(2 << 20, 8 << 20)
}

/// Chooses, cleans and bounds the body of `msg` per `[content]`.
///
/// A mail with nothing to read (no text part, or only blank ones) gives its
/// attachment note as a PLAIN body, whatever `attachment_note` says: the note is
/// all the reply has to show. Without attachments either, the body is empty and
/// the caller decides what to do with it.
pub fn extract(msg: &Message<'_>, content: &ContentConfig) -> Body {
    let mut body = extract_any(msg, content);
    body.text = invisible::strip(body.text);
    body
}

fn extract_any(msg: &Message<'_>, content: &ContentConfig) -> Body {
    let choice = choose(msg, content.prefer);
    if let Some(body) = extract_parts(msg, &choice, content) {
        return body;
    }
    // An HTML part with nothing visible (only a tracking image, say): its text alternative.
    if choice.body_type == BodyType::Html {
        let plain = choose(msg, Prefer::Plain);
        if plain.parts != choice.parts
            && let Some(body) = extract_parts(msg, &plain, content)
        {
            return body;
        }
    }
    let max = usize::try_from(content.max_body_size.bytes()).unwrap_or(usize::MAX);
    let attachments = attachments::list(msg, &choice.parts, &HashSet::new());
    Body {
        text: attachments::note(&attachments)
            .map(|n| limit::prefix(&n, max).to_string())
            .unwrap_or_default(),
        body_type: BodyType::Plain,
        attachments,
    }
}

/// The body made of `choice`, or `None` when it shows nothing.
fn extract_parts(msg: &Message<'_>, choice: &Choice, content: &ContentConfig) -> Option<Body> {
    if choice.parts.is_empty() {
        return None;
    }
    let max = usize::try_from(content.max_body_size.bytes()).unwrap_or(usize::MAX);
    let cap = input_cap(max);
    let all_text = choice.parts.iter().all(|&id| {
        msg.part(id)
            .is_some_and(|p| matches!(p.body, PartType::Text(_)) && !recover::is_html(p))
    });
    if choice.body_type == BodyType::Plain && all_text {
        let source = text_source(msg, &choice.parts);
        let (source, dropped) = capped(&source, cap);
        let text = clean_text(source, content);
        if !html_scan::has_visible(&text) {
            return None;
        }
        let attachments = attachments::list(msg, &choice.parts, &HashSet::new());
        return Some(Body {
            text: fit_text(text, dropped, note(&attachments, content), max),
            body_type: BodyType::Plain,
            attachments,
        });
    }
    let source = html_source(msg, &choice.parts);
    let (source, dropped) = capped(&source, cap);
    let cleaned = clean_html(source, &cid_names(msg), content);
    let text = html_to_text(&cleaned.html);
    if !html_scan::has_visible(&text) && !cleaned.html.contains("<img") {
        return None;
    }
    let attachments = attachments::list(msg, &choice.parts, &cleaned.cids);
    let note = note(&attachments, content);
    Some(match choice.body_type {
        BodyType::Html => Body {
            text: fit_html(&cleaned.html, dropped, note, max, content.remote_images),
            body_type: BodyType::Html,
            attachments,
        },
        BodyType::Plain => Body {
            text: fit_text(text, dropped, note, max),
            body_type: BodyType::Plain,
            attachments,
        },
    })
}

/// The mail's text as written, before any cleaning: its text/plain body parts joined,
/// and its HTML body (text parts among it escaped into it); `None` for what it lacks.
/// For finding an inline forward in whichever the mail has.
pub(crate) fn sources(msg: &Message<'_>) -> (Option<String>, Option<String>) {
    let plain = choose(msg, Prefer::Plain);
    let plain = plain
        .parts
        .iter()
        .all(|&id| {
            msg.part(id)
                .is_some_and(|p| matches!(p.body, PartType::Text(_)) && !recover::is_html(p))
        })
        .then(|| text_source(msg, &plain.parts))
        .filter(|t| !t.trim().is_empty());
    let html = choose(msg, Prefer::Html);
    let html = (html.body_type == BodyType::Html)
        .then(|| html_source(msg, &html.parts))
        .filter(|h| !h.trim().is_empty());
    (plain, html)
}

/// A plain-text body as HTML: escaped, blank lines as paragraphs, line breaks kept.
pub fn plain_to_html(text: &str) -> String {
    text.replace("\r\n", "\n")
        .split("\n\n")
        .map(|p| p.trim_matches('\n'))
        .filter(|p| !p.trim().is_empty())
        .map(|p| format!("<p>{}</p>", escape_html(p).replace('\n', "<br>")))
        .collect()
}

/// The attachment note, when configured and there is anything to list.
fn note(attachments: &[Attachment], content: &ContentConfig) -> Option<String> {
    if !content.attachment_note {
        return None;
    }
    attachments::note(attachments)
}

/// `s` cut to `cap` bytes, and how many bytes were cut off.
fn capped(s: &str, cap: usize) -> (&str, usize) {
    let kept = limit::prefix(s, cap);
    (kept, s.len() - kept.len())
}

/// The text parts joined, with CRLF as LF.
fn text_source(msg: &Message<'_>, parts: &[u32]) -> String {
    let texts: Vec<_> = parts
        .iter()
        .filter_map(|&id| recover::text(msg, msg.part(id)?))
        .collect();
    invisible::strip(texts.join("\n").replace("\r\n", "\n"))
}

/// The body parts as one HTML document; text parts are escaped into it.
fn html_source(msg: &Message<'_>, parts: &[u32]) -> String {
    let mut out = String::new();
    for part in parts.iter().filter_map(|&id| msg.part(id)) {
        let Some(text) = recover::text(msg, part) else {
            continue;
        };
        if recover::is_html(part) {
            out.push_str(&text);
        } else {
            out.push_str("<div>");
            let lines: Vec<String> = text.lines().map(sanitize::escape).collect();
            out.push_str(&lines.join("<br>\n"));
            out.push_str("</div>");
        }
    }
    invisible::strip(out)
}

/// File names of parts by Content-ID, for `cid:` images: each id as written and
/// lower-cased (a `cid:` URL may differ in case), so a lookup is one hash probe.
fn cid_names(msg: &Message<'_>) -> HashMap<String, String> {
    let mut names = HashMap::new();
    for p in &msg.parts {
        let (Some(name), Some(cid)) = (
            p.attachment_name().filter(|n| !n.trim().is_empty()),
            p.content_id(),
        ) else {
            continue;
        };
        let id = markers::content_id(cid);
        names
            .entry(id.to_ascii_lowercase())
            .or_insert_with(|| name.to_string());
        names.insert(id, name.to_string());
    }
    names
}

/// Plain text with quoted history and signature cut as configured.
fn clean_text(source: &str, content: &ContentConfig) -> String {
    let lines = lines::text_lines(source);
    let kept = reply::kept(&lines, content.strip_quotes, content.strip_signatures);
    tidy(&lines::keep(source, &lines, &kept))
}

/// Text without trailing whitespace and leading blank lines.
fn tidy(s: &str) -> String {
    let s = s.trim_end();
    let first = s.find(|c: char| !c.is_whitespace()).unwrap_or(s.len());
    let line_start = s
        .get(..first)
        .and_then(|h| h.rfind('\n'))
        .map_or(0, |p| p + 1);
    s.get(line_start..).unwrap_or("").to_string()
}

/// Sanitized HTML and the Content-IDs of the images it showed as text.
struct CleanHtml {
    html: String,
    cids: HashSet<String>,
}

/// Sanitized HTML with quoted history and signature cut as configured.
fn clean_html(
    source: &str,
    cid_names: &HashMap<String, String>,
    content: &ContentConfig,
) -> CleanHtml {
    let source = markers::strip_marks(source);
    // HTML whose tags cannot be told apart for sure is read as text.
    let source =
        attribute_cap::cap(&source).unwrap_or_else(|| Cow::Owned(sanitize::flatten(&source)));
    let options = markers::Options {
        quotes: content.strip_quotes,
        signatures: content.strip_signatures,
        remote_images: content.remote_images,
    };
    let marked = markers::mark(&source, cid_names, options);
    let clean = sanitize::clean(&marked.html, content.remote_images);
    let lines = html_lines::html_lines(&clean);
    let kept = reply::kept(&lines, content.strip_quotes, content.strip_signatures);
    let html = if kept.len() == 1 && kept[0] == (0..lines.len()) {
        markers::strip_marks(&clean).into_owned()
    } else {
        let cut = lines::keep(&clean, &lines, &kept);
        // Re-parsing closes the tags the cut left open.
        sanitize::clean(&markers::strip_marks(&cut), content.remote_images)
    };
    CleanHtml {
        html: html.trim().to_string(),
        cids: marked.cids,
    }
}

/// The note and truncation marker never take more than this share of the limit.
fn note_budget(max: usize) -> usize {
    max / 4
}

/// HTML body + truncation marker + attachment note, within `max` bytes.
fn fit_html(
    html: &str,
    dropped: usize,
    note: Option<String>,
    max: usize,
    remote: RemoteImages,
) -> String {
    let note = note
        .map(|n| {
            format!(
                "<p>{}</p>",
                sanitize::escape(limit::prefix(&n, note_budget(max)))
            )
        })
        .unwrap_or_default();
    let total = html.len() + note.len() + dropped;
    if total <= max && dropped == 0 {
        return format!("{html}{note}");
    }
    let over = (total.saturating_sub(max)).max(dropped) as u64;
    let marker = format!("<p>{}</p>", sanitize::escape(&limit::marker(over)));
    let budget = max.saturating_sub(note.len() + marker.len());
    format!("{}{marker}{note}", truncate_html(html, budget, remote))
}

/// The longest HTML prefix that, with its tags closed, fits in `budget` bytes.
fn truncate_html(html: &str, budget: usize, remote: RemoteImages) -> String {
    if html.len() <= budget {
        return html.to_string();
    }
    let mut cut = budget;
    for _ in 0..8 {
        let out = sanitize::clean(limit::prefix(html, cut), remote);
        if out.len() <= budget {
            return out;
        }
        // Closing tags took the difference; aim lower in proportion.
        let scaled = (cut as u128 * budget as u128 / out.len().max(1) as u128) as usize;
        cut = scaled.saturating_sub(64).min(cut.saturating_sub(1));
    }
    // Escaping grows text at most 6×.
    sanitize::escape(limit::prefix(&html_to_text(html), budget / 6))
}

/// PLAIN body + truncation marker + attachment note, within `max` bytes.
fn fit_text(text: String, dropped: usize, note: Option<String>, max: usize) -> String {
    let sep = if text.is_empty() { "" } else { "\n\n" };
    let note = note
        .map(|n| format!("{sep}{}", limit::prefix(&n, note_budget(max))))
        .unwrap_or_default();
    let total = text.len() + note.len() + dropped;
    if total <= max && dropped == 0 {
        return format!("{text}{note}");
    }
    let over = (total.saturating_sub(max)).max(dropped) as u64;
    let marker = format!("\n\n{}", limit::marker(over));
    let budget = max.saturating_sub(note.len() + marker.len());
    format!("{}{marker}{note}", limit::prefix(&text, budget))
}
