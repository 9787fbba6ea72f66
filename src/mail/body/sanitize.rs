//! The HTML allow list (ammonia): what of a customer's HTML reaches the helpdesk.
//!
//! Basic formatting, links (`rel="noopener noreferrer"`), lists, tables and,
//! with `remote_images = "keep"`, http(s) images. No script, style, forms,
//! frames, objects, event handlers or non-web URLs; the output is a body
//! fragment. html5ever checks scope by walking the open-element stack, so
//! absurdly deep nesting would be quadratic, and each element costs a DOM
//! node: HTML that is too deep or has too many tags is flattened to text first.
//! Long text runs are cut into short nodes (`text_runs`) and long attribute values
//! dropped, as html5ever's serializer is quadratic in both.

use super::html_lines::{html_lines, lines_to_text};
use super::html_scan::{Markup, is_void, markup_at};
use crate::mail::content::RemoteImages;
use crate::mail::invisible;
use ammonia::{Builder, UrlRelative};
use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

/// Deeper (estimated) nesting than any real mail client writes.
const MAX_DEPTH: usize = 400;
/// More tags than any real mail has (a big newsletter has some 20 000).
const MAX_TAGS: usize = 200_000;
/// Longer attribute values are dropped (a long tracking link is some 2 KiB).
const MAX_ATTRIBUTE: usize = 4 << 10;

const TAGS: &[&str] = &[
    "a",
    "abbr",
    "b",
    "bdi",
    "blockquote",
    "br",
    "caption",
    "center",
    "cite",
    "code",
    "col",
    "colgroup",
    "dd",
    "del",
    "dfn",
    "div",
    "dl",
    "dt",
    "em",
    "font",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "hr",
    "i",
    "ins",
    "kbd",
    "li",
    "mark",
    "ol",
    "p",
    "pre",
    "q",
    "s",
    "samp",
    "small",
    "span",
    "strike",
    "strong",
    "sub",
    "sup",
    "table",
    "tbody",
    "td",
    "tfoot",
    "th",
    "thead",
    "tr",
    "tt",
    "u",
    "ul",
    "wbr",
];

/// Elements removed with everything inside them (not just unwrapped).
const DROP_WITH_CONTENT: &[&str] = &[
    "script",
    "style",
    "title",
    "template",
    "noscript",
    "textarea",
    "select",
    "object",
    "embed",
    "iframe",
    "frame",
    "frameset",
    "applet",
    "svg",
    "math",
    "audio",
    "video",
    "canvas",
    "button",
    "input",
    "form",
    "xml",
    "xmp",
    "noembed",
    "noframes",
    "plaintext",
];

/// CSS properties kept in `style`: none of them can load a URL.
const STYLE_PROPERTIES: &[&str] = &[
    "color",
    "background-color",
    "font-weight",
    "font-style",
    "font-size",
    "font-family",
    "text-decoration",
    "text-align",
    "vertical-align",
    "white-space",
];

fn builder(images: bool) -> Builder<'static> {
    let mut tags: HashSet<&str> = TAGS.iter().copied().collect();
    let mut attributes: HashMap<&str, HashSet<&str>> = HashMap::from([
        ("a", HashSet::from(["href"])),
        (
            "td",
            HashSet::from(["colspan", "rowspan", "align", "valign"]),
        ),
        (
            "th",
            HashSet::from(["colspan", "rowspan", "align", "valign"]),
        ),
        (
            "table",
            HashSet::from(["border", "cellpadding", "cellspacing", "width"]),
        ),
        ("col", HashSet::from(["span", "width"])),
        ("ol", HashSet::from(["start", "type"])),
        ("font", HashSet::from(["color", "size", "face"])),
        ("p", HashSet::from(["align"])),
        ("div", HashSet::from(["align"])),
    ]);
    if images {
        tags.insert("img");
        attributes.insert("img", HashSet::from(["src", "alt", "width", "height"]));
    }
    let mut b = Builder::empty();
    b.tags(tags)
        .clean_content_tags(DROP_WITH_CONTENT.iter().copied().collect())
        .tag_attributes(attributes)
        // Not `dir`, nor `<bdo>`: they turn text around as the bidi controls do.
        .generic_attributes(HashSet::from(["lang", "title", "style"]))
        .filter_style_properties(STYLE_PROPERTIES.iter().copied().collect())
        .url_schemes(HashSet::from(["http", "https", "mailto", "tel"]))
        .url_relative(UrlRelative::Deny)
        .link_rel(Some("noopener noreferrer"))
        .strip_comments(true)
        .attribute_filter(|element, attribute, value| {
            if value.len() > MAX_ATTRIBUTE {
                return None;
            }
            // Checked as it will be read: an invisible character in `url(` is no disguise.
            let value = invisible::strip(value.to_string());
            if attribute == "style" && !is_plain_style(&value) {
                return None;
            }
            // Images only ever load over the web; everything else was turned into text before.
            if element == "img" && attribute == "src" {
                let v = value.trim_start().to_ascii_lowercase();
                if !(v.starts_with("https:") || v.starts_with("http:")) {
                    return None;
                }
            }
            Some(value.into())
        });
    b
}

/// A style that can only set the allowed properties to plain values: no `url(`, no
/// `expression` (old IE), no CSS escape or comment that could spell either, whatever
/// ammonia's property filter would make of it.
fn is_plain_style(value: &str) -> bool {
    let v: String = value
        .chars()
        .filter(|c| !c.is_whitespace() && !c.is_control())
        .flat_map(char::to_lowercase)
        .collect();
    !(v.contains('\\')
        || v.contains("/*")
        || [
            "url(",
            "expression",
            "image(",
            "image-set(",
            "javascript:",
            "@import",
            "behavior",
            "binding",
        ]
        .iter()
        .any(|bad| v.contains(bad)))
}

static WITH_IMAGES: LazyLock<Builder<'static>> = LazyLock::new(|| builder(true));
static WITHOUT_IMAGES: LazyLock<Builder<'static>> = LazyLock::new(|| builder(false));

/// Sanitizes `html` into a safe body fragment.
pub(super) fn clean(html: &str, remote_images: RemoteImages) -> String {
    let flat;
    let html = if too_complex(html) {
        flat = flatten(html);
        flat.as_str()
    } else {
        html
    };
    let html = super::text_runs::split(html);
    let b = match remote_images {
        RemoteImages::Keep => &*WITH_IMAGES,
        RemoteImages::Drop => &*WITHOUT_IMAGES,
    };
    let clean = b.clean(&html).to_string();
    match super::hidden_text::reveal(&clean) {
        Cow::Borrowed(_) => clean,
        Cow::Owned(shown) => shown,
    }
}

/// Too many tags, or too deep: nesting is estimated by counting open tags that
/// HTML never closes implicitly.
fn too_complex(html: &str) -> bool {
    let mut depth = 0usize;
    let mut tags = 0usize;
    let mut i = 0;
    while let Some(p) = html.get(i..).and_then(|t| t.find('<')) {
        let at = i + p;
        match markup_at(html, at) {
            Some(Markup::Tag(t)) => {
                tags += 1;
                if tags > MAX_TAGS {
                    return true;
                }
                if !closes_implicitly(&t.name) && !is_void(&t.name) {
                    if t.is_end {
                        depth = depth.saturating_sub(1);
                    } else if !t.self_closing {
                        depth += 1;
                        if depth > MAX_DEPTH {
                            return true;
                        }
                    }
                }
                i = t.end.max(at + 1);
            }
            Some(Markup::Skip(end)) => i = end.max(at + 1),
            None => i = at + 1,
        }
    }
    false
}

/// Elements whose start tag closes an open sibling, so they do not nest when left open.
fn closes_implicitly(name: &str) -> bool {
    matches!(
        name,
        "p" | "li"
            | "dt"
            | "dd"
            | "tr"
            | "td"
            | "th"
            | "tbody"
            | "thead"
            | "tfoot"
            | "option"
            | "optgroup"
            | "colgroup"
            | "rb"
            | "rt"
            | "rp"
            | "html"
            | "head"
            | "body"
    )
}

/// Complex HTML as its escaped text in one `<pre>` (quotes as `> `, marks kept),
/// so the sanitizer builds one element and the lines survive.
pub(super) fn flatten(html: &str) -> String {
    format!(
        "<pre>{}</pre>",
        escape(&lines_to_text(&html_lines(html), true))
    )
}

/// Text made safe to put into HTML.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::mail::body::html_scan::entity_at;
    use proptest::prelude::*;

    /// Every problem a sanitized fragment must never have, checked tag by tag.
    pub(crate) fn violations(html: &str) -> Vec<String> {
        let mut found = Vec::new();
        let lower = html.to_ascii_lowercase();
        for bad in [
            "<script", "<style", "<iframe", "<object", "<embed", "<form", "<html", "<head", "<body",
        ] {
            if lower.contains(bad) {
                found.push(format!("contains {bad}"));
            }
        }
        let mut i = 0;
        while let Some(p) = html.get(i..).and_then(|t| t.find('<')) {
            let at = i + p;
            let end = match markup_at(html, at) {
                Some(Markup::Tag(t)) => t.end,
                Some(Markup::Skip(_)) => {
                    found.push("contains a comment or doctype".into());
                    break;
                }
                None => at + 1,
            };
            for (name, value) in attributes(html.get(at..end).unwrap_or("")) {
                if name.starts_with("on") {
                    found.push(format!("event handler {name}"));
                }
                let v: String = value
                    .chars()
                    .filter(|c| !c.is_whitespace() && !c.is_control())
                    .collect::<String>()
                    .to_ascii_lowercase();
                let carries_url = [
                    "href",
                    "src",
                    "action",
                    "formaction",
                    "background",
                    "srcset",
                    "poster",
                    "xlink:href",
                    "cite",
                    "data",
                    "lowsrc",
                    "dynsrc",
                    "style",
                ]
                .contains(&name.as_str());
                for scheme in ["javascript:", "data:", "vbscript:"] {
                    if carries_url && v.contains(scheme) {
                        found.push(format!("{name}={value}"));
                    }
                }
            }
            i = end.max(at + 1);
        }
        found
    }

    /// The attributes of one tag, values entity-decoded.
    fn attributes(tag: &str) -> Vec<(String, String)> {
        let inner = tag.trim_start_matches('<').trim_end_matches('>');
        let mut out = Vec::new();
        let b = inner.as_bytes();
        let mut i = inner
            .find(|c: char| c.is_whitespace())
            .unwrap_or(inner.len());
        while i < b.len() {
            while i < b.len() && (b[i].is_ascii_whitespace() || b[i] == b'/') {
                i += 1;
            }
            let s = i;
            while i < b.len() && !(b[i].is_ascii_whitespace() || b[i] == b'=' || b[i] == b'/') {
                i += 1;
            }
            let name = inner.get(s..i).unwrap_or("").to_ascii_lowercase();
            let mut value = String::new();
            if b.get(i) == Some(&b'=') {
                i += 1;
                let (vs, ve) = match b.get(i) {
                    Some(&q @ (b'"' | b'\'')) => {
                        let e = b[i + 1..]
                            .iter()
                            .position(|&c| c == q)
                            .map_or(b.len(), |p| i + 1 + p);
                        let r = (i + 1, e);
                        i = e + 1;
                        r
                    }
                    _ => {
                        let s = i;
                        while i < b.len() && !b[i].is_ascii_whitespace() {
                            i += 1;
                        }
                        (s, i)
                    }
                };
                let raw = inner.get(vs..ve.min(inner.len())).unwrap_or("");
                let mut j = 0;
                while j < raw.len() {
                    match entity_at(raw, j) {
                        Some((c, e)) => {
                            value.push(c);
                            j = e;
                        }
                        None => {
                            let c = raw[j..].chars().next().unwrap_or(' ');
                            value.push(c);
                            j += c.len_utf8();
                        }
                    }
                }
            }
            if !name.is_empty() {
                out.push((name, value));
            }
        }
        out
    }

    #[test]
    fn allow_list() {
        let dirty = r#"<html><head><title>T</title><style>p{color:red}</style><script>alert(1)</script></head>
<body onload="x()"><p style="color:red;position:fixed;background:url(https://t.example/x)" onclick="y()">Hi <b>there</b></p>
<a href="javascript:alert(1)">a</a><a href="https://example.com/x" target="_blank">b</a><a href="data:text/html,x">c</a>
<iframe src="https://evil.example"></iframe><form action="https://evil.example"><input name=x></form>
<object data="x"></object><embed src="x"><table><tr><td colspan=2>cell</td></tr></table><img src="https://e.example/i.png" onerror="z()"></body></html>"#;
        let out = clean(dirty, RemoteImages::Keep);
        assert!(violations(&out).is_empty(), "{out}");
        // A style with a url( in it goes whole.
        assert!(out.contains(r#"<p>Hi <b>there</b></p>"#), "{out}");
        assert!(
            clean(
                r#"<p style="color:red;position:fixed">x</p>"#,
                RemoteImages::Drop
            )
            .contains(r#"<p style="color:red">x</p>"#)
        );
        assert!(
            out.contains(r#"<a href="https://example.com/x" rel="noopener noreferrer">b</a>"#),
            "{out}"
        );
        assert!(out.contains(r#"<td colspan="2">cell</td>"#), "{out}");
        assert!(
            out.contains(r#"<img src="https://e.example/i.png">"#),
            "{out}"
        );
        assert!(
            !out.contains("alert") && !out.contains("color:red}"),
            "{out}"
        );
        let dropped = clean(dirty, RemoteImages::Drop);
        assert!(!dropped.contains("<img"), "{dropped}");
    }

    #[test]
    fn styles_that_could_load_or_run_anything_go() {
        for style in [
            "color:red;background:url(https://t.example/x)",
            "color: URL (x)",
            "color:expression(alert(1))",
            "font-family:Ex\\70ression",
            "color:red\\;background:x",
            "color:re/**/d",
            "color:red;behavior:url(x.htc)",
            "font-family:\"a\"; background-image:image-set(x 1x)",
        ] {
            let html = format!("<p style='{style}'>x</p>");
            let out = clean(&html, RemoteImages::Keep);
            assert_eq!(out, "<p>x</p>", "{style}");
        }
        assert_eq!(
            clean(
                "<p style=\"color: red; font-weight: bold\">x</p>",
                RemoteImages::Drop
            ),
            "<p style=\"color:red;font-weight:bold\">x</p>"
        );
    }

    #[test]
    fn huge_attribute_values_are_dropped() {
        let long = "a".repeat(MAX_ATTRIBUTE + 1);
        let out = clean(
            &format!(
                "<a href=\"https://e.example/{long}\" title=\"{long}\">x</a><p title=\"short\">y</p>"
            ),
            RemoteImages::Drop,
        );
        assert_eq!(
            out,
            "<a rel=\"noopener noreferrer\">x</a><p title=\"short\">y</p>"
        );
    }

    #[test]
    fn a_flood_of_ampersands_comes_out_whole() {
        // Text runs are cut for the serializer; the output must not show it.
        let html = format!("<p>{}</p>", "&amp;".repeat(100_000));
        assert_eq!(clean(&html, RemoteImages::Drop), html);
        let nbsp = format!("<p>{}x</p>", "&nbsp;".repeat(50_000));
        assert_eq!(clean(&nbsp, RemoteImages::Drop), nbsp);
    }

    #[test]
    fn obsolete_raw_text_elements_go_with_their_content() {
        for tag in ["xmp", "noembed", "noframes"] {
            let out = clean(&format!("a<{tag}><b>x</b></{tag}>b"), RemoteImages::Drop);
            assert_eq!(out, "ab", "{tag}");
        }
        assert_eq!(clean("a<plaintext>b</p>c", RemoteImages::Drop), "a");
    }

    #[test]
    fn images_need_a_web_url() {
        for src in [
            "cid:x",
            "data:image/png;base64,AA",
            "javascript:x",
            "/relative.png",
        ] {
            let out = clean(&format!(r#"<img src="{src}" alt="a">"#), RemoteImages::Keep);
            assert!(!out.contains("src="), "{src} -> {out}");
        }
    }

    /// How long it takes is `benches/hostile.rs`'s "html: 100k nested <div>".
    #[test]
    fn deep_nesting_is_flattened() {
        let html = format!(
            "{}deep text{}",
            "<div>".repeat(100_000),
            "</div>".repeat(100_000)
        );
        assert!(too_complex(&html));
        let out = clean(&html, RemoteImages::Drop);
        assert_eq!(out, "<pre>deep text</pre>");
        let spans = "<b>x".repeat(50_000);
        assert!(violations(&clean(&spans, RemoteImages::Drop)).is_empty());
        // Ordinary unclosed paragraphs and cells do not count as nesting.
        assert!(!too_complex(&"<p>a<td>b<li>c".repeat(10_000)));
        assert!(too_complex(&"<br>".repeat(MAX_TAGS + 1)));
    }

    pub(crate) fn hostile_piece() -> impl Strategy<Value = String> {
        let tag = prop::sample::select(vec![
            "script", "SCRIPT", "img", "a", "iframe", "svg", "math", "style", "div", "object",
            "embed", "form", "input", "body", "base", "meta", "link", "xmp", "noscript",
            "template", "table", "select", "textarea", "video", "image", "frameset",
        ]);
        let attr = prop::sample::select(vec![
            "onerror",
            "onload",
            "OnClick",
            "onmouseover",
            "href",
            "src",
            "style",
            "xlink:href",
            "action",
            "formaction",
            "background",
            "srcset",
            "poster",
            "data",
            "lowsrc",
            "dynsrc",
            "cite",
        ]);
        let value = prop::sample::select(vec![
            "javascript:alert(1)",
            "JaVaScRiPt:alert(1)",
            " javascript:alert(1)",
            "java\tscript:alert(1)",
            "jav&#x61;script:alert(1)",
            "&#106;avascript:x",
            "data:text/html;base64,PHNjcmlwdD4=",
            "DATA:image/svg+xml,<svg onload=alert(1)>",
            "vbscript:msgbox",
            "https://example.com/x",
            "expression(alert(1))",
            "x\" onerror=\"alert(1)",
            "x' onload='y",
        ]);
        let open = (
            tag.clone(),
            attr,
            value,
            prop::sample::select(vec!["\"", "'", ""]),
        )
            .prop_map(|(t, a, v, q)| format!("<{t} {a}={q}{v}{q}>"));
        let close = tag.prop_map(|t| format!("</{t}>"));
        let other = prop::sample::select(vec![
            "<!--",
            "-->",
            "<![CDATA[",
            "]]>",
            "<",
            ">",
            "\"",
            "'",
            "<scr<script>ipt>",
            "</",
            "text",
            "&lt;script&gt;",
            "<svg><script>alert(1)</script></svg>",
            "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
            "<noscript><p title=\"</noscript><img src=x onerror=alert(1)>\">",
            "\u{10FFFD}",
            "\0",
            "<a/href=javascript:x>",
            "<img/src=x/onerror=alert(1)>",
            "<div style=\"background:url(javascript:x)\">",
        ])
        .prop_map(str::to_string);
        prop_oneof![open, close, other]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn arbitrary_strings_sanitize_safely(s in any::<String>()) {
            for mode in [RemoteImages::Keep, RemoteImages::Drop] {
                let out = clean(&s, mode);
                prop_assert!(violations(&out).is_empty(), "{:?} -> {}", s, out);
            }
        }

        #[test]
        fn hostile_html_sanitizes_safely(pieces in prop::collection::vec(hostile_piece(), 0..40)) {
            let html = pieces.concat();
            for mode in [RemoteImages::Keep, RemoteImages::Drop] {
                let out = clean(&html, mode);
                prop_assert!(violations(&out).is_empty(), "{} -> {}", html, out);
            }
        }
    }
}
