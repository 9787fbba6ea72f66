//! One streaming pass over the raw HTML (lol_html): marks where quoted history
//! and signatures begin, and turns images we will not show into text.
//!
//! Marks are private-use characters inserted as text, so they survive
//! sanitizing and show up in the visible text at the right place; no DOM is
//! built and no element is moved.

use crate::mail::content::RemoteImages;
use lol_html::html_content::{ContentType, Element};
use lol_html::{ElementContentHandlers, RewriteStrSettings, Selector, rewrite_str};
use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};

/// Marks the start of a quote container (plane-16 private use: never in real mail).
pub(super) const QUOTE_MARK: char = '\u{10FFFD}';
/// Marks the start of a signature container.
pub(super) const SIGNATURE_MARK: char = '\u{10FFFC}';

pub(super) fn is_marker(c: char) -> bool {
    c == QUOTE_MARK || c == SIGNATURE_MARK
}

/// Removes our marks, from input (so a sender cannot forge them) and from output.
pub(super) fn strip_marks(s: &str) -> Cow<'_, str> {
    if s.contains(is_marker) {
        Cow::Owned(s.replace(is_marker, ""))
    } else {
        Cow::Borrowed(s)
    }
}

/// What to mark and how to treat images.
#[derive(Debug, Clone, Copy)]
pub(super) struct Options {
    pub quotes: bool,
    pub signatures: bool,
    pub remote_images: RemoteImages,
}

/// The marked HTML and the Content-IDs its `cid:` images referred to.
#[derive(Debug, Default)]
pub(super) struct Marked {
    pub html: String,
    pub cids: HashSet<String>,
}

/// Marks `html`; `cid_names` maps a Content-ID, as written and lower-cased, to its
/// attachment's file name.
///
/// On a rewriter error the HTML is returned unmarked: the text detectors and
/// the sanitizer still apply.
pub(super) fn mark(html: &str, cid_names: &HashMap<String, String>, opts: Options) -> Marked {
    let cids = RefCell::new(HashSet::new());
    let Ok(any) = "*".parse::<Selector>() else {
        return Marked {
            html: html.to_string(),
            cids: HashSet::new(),
        };
    };
    let handler = |el: &mut Element<'_, '_>| {
        let tag = el.tag_name();
        if tag == "img" || tag == "image" {
            image(el, cid_names, opts.remote_images, &mut cids.borrow_mut());
        } else if opts.quotes && is_quote_container(el, &tag) {
            el.before(&QUOTE_MARK.to_string(), ContentType::Text);
        } else if opts.signatures && is_signature_container(el) {
            el.before(&SIGNATURE_MARK.to_string(), ContentType::Text);
        }
        Ok(())
    };
    let settings = RewriteStrSettings {
        element_content_handlers: vec![(
            Cow::Owned(any),
            ElementContentHandlers::default().element(handler),
        )],
        strict: false,
        enable_esi_tags: false,
        ..RewriteStrSettings::new()
    };
    match rewrite_str(html, settings) {
        Ok(out) => Marked {
            html: out,
            cids: cids.into_inner(),
        },
        Err(_) => Marked {
            html: html.to_string(),
            cids: HashSet::new(),
        },
    }
}

/// `cid:` images become their alt text or file name; remote ones follow `remote_images`;
/// anything else (data:, relative) becomes its alt text, so no broken image is ever sent.
fn image(
    el: &mut Element<'_, '_>,
    cid_names: &HashMap<String, String>,
    remote: RemoteImages,
    cids: &mut HashSet<String>,
) {
    let src = el.get_attribute("src").unwrap_or_default();
    let src = src.trim();
    let alt = el
        .get_attribute("alt")
        .map(|a| label(&a))
        .filter(|a| !a.is_empty());
    let scheme = src.split_once(':').map(|(s, _)| s.to_ascii_lowercase());
    let text = match scheme.as_deref() {
        Some("cid") => {
            let id = content_id(src.get(4..).unwrap_or(""));
            // `cid_names` also has every id lower-cased (see `body::cid_names`).
            let lower = id.to_ascii_lowercase();
            let name = cid_names
                .get(&id)
                .or_else(|| cid_names.get(&lower))
                .map(|n| label(n));
            cids.insert(id);
            cids.insert(lower);
            Some(alt.or(name).unwrap_or_else(|| "image".to_string()))
        }
        Some("http" | "https") if remote == RemoteImages::Keep => return,
        _ => alt,
    };
    match text {
        Some(t) => el.replace(&format!("[{t}]"), ContentType::Text),
        None => el.remove(),
    }
}

/// A Content-ID as used for lookups: no angle brackets, `%XX` decoded (RFC 2392).
pub(super) fn content_id(raw: &str) -> String {
    let raw = raw.trim().trim_start_matches('<').trim_end_matches('>');
    let b = raw.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (b[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A name or alt text fit to show inline: one line, bounded length.
fn label(s: &str) -> String {
    let one_line: String = s
        .chars()
        .map(|c| {
            if c.is_control() || is_marker(c) {
                ' '
            } else {
                c
            }
        })
        .collect();
    let words: Vec<&str> = one_line.split_whitespace().collect();
    words.join(" ").chars().take(200).collect()
}

fn classes(el: &Element<'_, '_>) -> Vec<String> {
    el.get_attribute("class")
        .map(|c| c.split_whitespace().map(str::to_ascii_lowercase).collect())
        .unwrap_or_default()
}

/// Containers mail clients put around quoted history or its header.
fn is_quote_container(el: &Element<'_, '_>, tag: &str) -> bool {
    const CLASSES: &[&str] = &[
        "gmail_quote",
        "gmail_quote_container",
        "yahoo_quoted",
        "moz-cite-prefix",
        "protonmail_quote",
        "zmail_extra",
        "outlookmessageheader",
    ];
    if classes(el).iter().any(|c| CLASSES.contains(&c.as_str())) {
        return true;
    }
    if let Some(id) = el.get_attribute("id") {
        // OWA re-prefixes ids of forwarded mail with `x_`.
        let id = id.to_ascii_lowercase();
        if id.ends_with("divrplyfwdmsg")
            || id.ends_with("appendonsend")
            || id == "olk_src_body_section"
            || (tag == "hr" && (id == "stopspelling" || id == "zwchr"))
        {
            return true;
        }
    }
    (tag == "div" || tag == "p") && is_outlook_separator(el)
}

/// Outlook's header separator: `border-top:solid #E1E1E1 1.0pt` (2013+),
/// `#B5C4DF` (2007/2010); Windows Mail writes it as rgb(229, 229, 229).
fn is_outlook_separator(el: &Element<'_, '_>) -> bool {
    let Some(style) = el.get_attribute("style") else {
        return false;
    };
    let s = style
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_lowercase();
    s.contains("border-top:solid#e1e1e1")
        || s.contains("border-top:solid#b5c4df")
        || s.contains("border-top:1pxsolid#e1e1e1")
        || s.contains("border-top-color:rgb(229,229,229)")
}

/// Containers mail clients put around the sender's signature.
fn is_signature_container(el: &Element<'_, '_>) -> bool {
    const CLASSES: &[&str] = &["gmail_signature", "moz-signature", "yahoo-signature"];
    classes(el).iter().any(|c| CLASSES.contains(&c.as_str()))
        || el.get_attribute("id").is_some_and(|id| {
            id.eq_ignore_ascii_case("signature") || id.eq_ignore_ascii_case("applemailsignature")
        })
        || el
            .get_attribute("data-smartmail")
            .is_some_and(|v| v.eq_ignore_ascii_case("gmail_signature"))
        || el.has_attribute("data-signatureblock")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(remote_images: RemoteImages) -> Options {
        Options {
            quotes: true,
            signatures: true,
            remote_images,
        }
    }

    #[test]
    fn marks_quote_and_signature_containers() {
        let cases = [
            r#"<div class="gmail_quote">x</div>"#,
            r#"<div class="gmail_quote gmail_quote_container">x</div>"#,
            r#"<div id="divRplyFwdMsg">x</div>"#,
            r#"<div id="x_divRplyFwdMsg">x</div>"#,
            r#"<div id="appendonsend"></div>"#,
            r#"<div class="moz-cite-prefix">x</div>"#,
            r#"<div class="yahoo_quoted">x</div>"#,
            r#"<hr id="stopSpelling">"#,
            r#"<div style="border:none;border-top:solid #E1E1E1 1.0pt;padding:3.0pt 0cm 0cm 0cm">x</div>"#,
            r#"<div style="border:none; border-top:solid #B5C4DF 1.0pt">x</div>"#,
        ];
        for html in cases {
            let out = mark(html, &HashMap::new(), opts(RemoteImages::Drop)).html;
            assert!(out.starts_with(QUOTE_MARK), "{html} -> {out}");
        }
        for html in [
            r#"<div class="gmail_signature">x</div>"#,
            r#"<pre class="moz-signature">x</pre>"#,
            r#"<div id="Signature">x</div>"#,
            r#"<div data-smartmail="gmail_signature">x</div>"#,
        ] {
            let out = mark(html, &HashMap::new(), opts(RemoteImages::Drop)).html;
            assert!(out.starts_with(SIGNATURE_MARK), "{html} -> {out}");
        }
        let plain = mark(
            "<div class=other>x</div>",
            &HashMap::new(),
            opts(RemoteImages::Drop),
        )
        .html;
        assert_eq!(plain, "<div class=other>x</div>");
    }

    #[test]
    fn nothing_marked_when_disabled() {
        let o = Options {
            quotes: false,
            signatures: false,
            remote_images: RemoteImages::Drop,
        };
        let html = r#"<div class="gmail_quote">x</div><div class="gmail_signature">s</div>"#;
        assert_eq!(mark(html, &HashMap::new(), o).html, html);
    }

    #[test]
    fn images_become_text() {
        let names = HashMap::from([("img1@x".to_string(), "logo.png".to_string())]);
        let html = r#"<img src="cid:img1%40x"><img src="CID:img1@x" alt="Our logo"><img src="cid:unknown"><img src="https://t.example/p.gif"><img src="https://e.example/a.png" alt="chart"><img src="data:image/png;base64,AAAA" alt="x<y">"#;
        let m = mark(html, &names, opts(RemoteImages::Drop));
        assert_eq!(m.html, "[logo.png][Our logo][image][chart][x&lt;y]");
        assert!(m.cids.contains("img1@x") && m.cids.contains("unknown"));
        let kept = mark(
            r#"<img src="https://e.example/a.png">"#,
            &names,
            opts(RemoteImages::Keep),
        )
        .html;
        assert_eq!(kept, r#"<img src="https://e.example/a.png">"#);
    }

    #[test]
    fn content_ids() {
        assert_eq!(content_id("<a%40b>"), "a@b");
        assert_eq!(content_id("x%zz%4"), "x%zz%4");
        assert_eq!(
            strip_marks(&format!("a{QUOTE_MARK}b{SIGNATURE_MARK}")),
            "ab"
        );
    }
}
