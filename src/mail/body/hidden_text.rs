//! Text hidden from the agent is shown: a text color too close to the background behind
//! it (white on white), or a font too small to read (1px), is taken away, so that text
//! takes its parent's — which was checked the same way, down from black on white. What
//! an assistant or a quoting reply would read, the agent sees too.
//!
//! Runs on the sanitizer's output, which is well formed (each element it opens, it
//! closes), so colors and sizes are followed down the tree exactly. Only `color`,
//! `background-color`, `font-size` and `<font color|size>` get through the sanitizer
//! to hide text with; a value not understood here is dropped like a bad one.

use super::css_values::{self, Color, MEDIUM_PX, Rgba};
use super::html_scan::{Markup, entity_at, is_void, markup_at};
use std::borrow::Cow;

/// Text and background closer than this (WCAG contrast ratio) cannot be told apart;
/// light grey on white (#ccc) is 1.6.
const MIN_CONTRAST: f32 = 1.5;
/// A smaller font cannot be read.
const MIN_FONT_PX: f32 = 6.0;

/// What an element passes down: its text color and background, both opaque, and its
/// font size; and whether its tags were dropped.
#[derive(Clone, Copy)]
struct Looks {
    color: Rgba,
    background: Rgba,
    px: f32,
}

struct Open {
    looks: Looks,
    unwrapped: bool,
}

/// `html` (sanitized) with hidden text shown.
pub(super) fn reveal(html: &str) -> Cow<'_, str> {
    // Nothing can be hidden without a color or a size.
    if !html.contains("style=\"") && !html.contains("<font ") && !has_shrinking_tag(html) {
        return Cow::Borrowed(html);
    }
    let root = Looks {
        color: Rgba::BLACK,
        background: Rgba::WHITE,
        px: MEDIUM_PX,
    };
    let mut stack: Vec<Open> = Vec::new();
    let mut out = String::with_capacity(html.len());
    let mut copied = 0;
    let mut changed = false;
    let mut i = 0;
    while let Some(at) = html.get(i..).and_then(|t| t.find('<')).map(|p| i + p) {
        let Some(Markup::Tag(tag)) = markup_at(html, at) else {
            i = at + 1;
            continue;
        };
        let source = html.get(at..tag.end).unwrap_or("");
        let parent = stack.last().map_or(root, |o| o.looks);
        let replacement = if tag.is_end {
            stack
                .pop()
                .and_then(|open| open.unwrapped.then(String::new))
        } else {
            let (open, rewritten) = element(source, &tag.name, parent);
            if !is_void(&tag.name) && !tag.self_closing {
                stack.push(open);
            }
            rewritten
        };
        if let Some(with) = replacement {
            out.push_str(html.get(copied..at).unwrap_or(""));
            out.push_str(&with);
            copied = tag.end;
            changed = true;
        }
        i = tag.end.max(at + 1);
    }
    if !changed {
        return Cow::Borrowed(html);
    }
    out.push_str(html.get(copied..).unwrap_or(""));
    Cow::Owned(out)
}

/// Tags that make text smaller by themselves.
fn shrinks(name: &str) -> Option<f32> {
    match name {
        "small" | "sub" | "sup" => Some(1.0 / 1.2),
        "h5" => Some(0.83),
        "h6" => Some(0.67),
        _ => None,
    }
}

fn has_shrinking_tag(html: &str) -> bool {
    ["<small", "<sub", "<sup", "<h5", "<h6"]
        .iter()
        .any(|t| html.contains(t))
}

/// One `name="value"` of a serialized tag, the value decoded.
struct Attribute {
    name: String,
    value: String,
}

/// How the start tag `source` of `name` looks under `parent`, and the tag rewritten
/// when it hid its text (an empty string when it is dropped).
fn element(source: &str, name: &str, parent: Looks) -> (Open, Option<String>) {
    if !source.contains(" style=\"") && name != "font" && shrinks(name).is_none() {
        let open = Open {
            looks: parent,
            unwrapped: false,
        };
        return (open, None);
    }
    let attributes = attributes(source);
    let declarations: Vec<(String, String)> = attributes
        .iter()
        .find(|a| a.name == "style")
        .map(|a| declarations(&a.value))
        .unwrap_or_default();
    let mut dropped = Dropped::default();
    let (px, unwrapped) = font_size(name, &attributes, &declarations, parent, &mut dropped);
    let looks = colors(name, &attributes, &declarations, parent, px, &mut dropped);

    let open = Open { looks, unwrapped };
    if unwrapped {
        return (open, Some(String::new()));
    }
    if dropped.properties.is_empty() && dropped.attributes.is_empty() {
        return (open, None);
    }
    (
        open,
        Some(rewritten(name, attributes, declarations, &dropped)),
    )
}

/// The style properties and attributes a tag loses: values not understood, and what
/// hid its text.
#[derive(Default)]
struct Dropped {
    properties: Vec<&'static str>,
    attributes: Vec<&'static str>,
}

/// The last value `property` is declared with.
fn declared(declarations: &[(String, String)], property: &str) -> Option<String> {
    declarations
        .iter()
        .rev()
        .find(|(p, _)| p == property)
        .map(|(_, v)| v.clone())
}

/// The element's font size, and whether it is too small to read (then it is the
/// parent's, and the tags are dropped).
fn font_size(
    name: &str,
    attributes: &[Attribute],
    declarations: &[(String, String)],
    parent: Looks,
    dropped: &mut Dropped,
) -> (f32, bool) {
    // Size: the declaration, else the tag's own, else the parent's.
    let by_tag = match (name, attributes.iter().find(|a| a.name == "size")) {
        ("font", Some(size)) => {
            let px = css_values::font_size_attribute(&size.value);
            if px.is_none() {
                dropped.attributes.push("size");
            }
            px
        }
        _ => shrinks(name).map(|f| parent.px * f),
    }
    .unwrap_or(parent.px);
    let mut px = by_tag;
    if let Some(v) = declared(declarations, "font-size") {
        match css_values::font_size(&v, parent.px) {
            Some(size) if size >= MIN_FONT_PX => px = size,
            _ => dropped.properties.push("font-size"),
        }
    }
    let unwrapped = px < MIN_FONT_PX;
    if unwrapped {
        px = parent.px;
    }
    (px, unwrapped)
}

/// How the element looks with its colors, `px` its font size.
fn colors(
    name: &str,
    attributes: &[Attribute],
    declarations: &[(String, String)],
    parent: Looks,
    px: f32,
    dropped: &mut Dropped,
) -> Looks {
    // Colors: a value not understood is dropped; then text must stand out.
    // A style's color overrides `<font color>`; one not understood leaves it in force.
    let styled = declared(declarations, "color").map(|v| css_values::color(&v));
    if let Some(None) = styled {
        dropped.properties.push("color");
    }
    let text_color = match (styled, attributes.iter().find(|a| a.name == "color")) {
        (Some(Some(c)), _) => Some(c),
        (_, Some(c)) if name == "font" => match css_values::font_color(&c.value) {
            Some(c) => Some(Color::Rgba(c)),
            None => {
                dropped.attributes.push("color");
                None
            }
        },
        _ => None,
    };
    let background = match declared(declarations, "background-color").map(|v| css_values::color(&v))
    {
        Some(Some(c)) => Some(c),
        Some(None) => {
            dropped.properties.push("background-color");
            None
        }
        None => None,
    };
    let color = match text_color {
        Some(Color::Rgba(c)) => Some(c),
        Some(Color::Initial) => Some(Rgba::BLACK),
        Some(Color::Current | Color::Inherit) | None => None,
    };
    let own_background = match background {
        Some(Color::Rgba(c)) => Some(c),
        Some(Color::Current) => Some(color.unwrap_or(parent.color)),
        Some(Color::Initial | Color::Inherit) | None => None,
    };
    let bg = own_background.map_or(parent.background, |c| c.over(parent.background));
    let fg = color.map_or(parent.color, |c| c.over(bg));
    let mut looks = Looks {
        color: fg,
        background: bg,
        px,
    };
    if fg.contrast(bg) < MIN_CONTRAST {
        dropped.properties.extend(["color", "background-color"]);
        dropped.attributes.push("color");
        looks.color = parent.color;
        looks.background = parent.background;
    }
    looks
}

/// The start tag of `name` again, without what was dropped.
fn rewritten(
    name: &str,
    mut attributes: Vec<Attribute>,
    mut declarations: Vec<(String, String)>,
    dropped: &Dropped,
) -> String {
    declarations.retain(|(p, _)| !dropped.properties.contains(&p.as_str()));
    let style: Vec<String> = declarations
        .iter()
        .map(|(p, v)| format!("{p}:{v}"))
        .collect();
    attributes.retain(|a| !dropped.attributes.contains(&a.name.as_str()));
    let mut tag = format!("<{name}");
    for a in &attributes {
        let value = if a.name == "style" {
            if style.is_empty() {
                continue;
            }
            style.join(";")
        } else {
            a.value.clone()
        };
        tag.push_str(&format!(" {}=\"{}\"", a.name, escape(&value)));
    }
    tag.push('>');
    tag
}

/// The attributes of a serialized start tag (`<p a="v" b="w">`), values decoded.
fn attributes(tag: &str) -> Vec<Attribute> {
    let inner = tag.trim_start_matches('<').trim_end_matches('>');
    let mut out = Vec::new();
    let Some(mut rest) = inner.find(' ').and_then(|p| inner.get(p..)) else {
        return out;
    };
    loop {
        rest = rest.trim_start();
        let name_end = rest.find(['=', ' ']).unwrap_or(rest.len());
        if name_end == 0 {
            break;
        }
        let name = rest[..name_end].to_ascii_lowercase();
        rest = &rest[name_end..];
        let mut value = String::new();
        if let Some(quoted) = rest.strip_prefix("=\"") {
            let end = quoted.find('"').unwrap_or(quoted.len());
            value = decode(&quoted[..end]);
            rest = quoted.get(end + 1..).unwrap_or("");
        }
        out.push(Attribute { name, value });
    }
    out
}

/// `a:b;c:d` as (property, value), properties lower-cased; `;` inside quotes or
/// parentheses does not split.
fn declarations(style: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let (mut depth, mut quote, mut start) = (0usize, None, 0);
    let mut push = |piece: &str| {
        if let Some((p, v)) = piece.split_once(':') {
            out.push((p.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    };
    for (i, c) in style.char_indices() {
        match (c, quote) {
            (q, Some(open)) if q == open => quote = None,
            (_, Some(_)) => {}
            ('"' | '\'', None) => quote = Some(c),
            ('(', None) => depth += 1,
            (')', None) => depth = depth.saturating_sub(1),
            (';', None) if depth == 0 => {
                push(&style[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    push(&style[start..]);
    out
}

fn decode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut j = 0;
    while j < s.len() {
        match entity_at(s, j) {
            Some((c, e)) => {
                out.push(c);
                j = e;
            }
            None => {
                let c = s[j..].chars().next().unwrap_or(' ');
                out.push(c);
                j += c.len_utf8();
            }
        }
    }
    out
}

/// As html5ever writes an attribute value.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('\u{a0}', "&nbsp;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(html: &str) -> String {
        reveal(html).into_owned()
    }

    #[test]
    fn visible_colors_and_sizes_are_kept() {
        for html in [
            "<p style=\"color:red;font-weight:bold\">x</p>",
            "<p style=\"color:#999;font-size:8px\">small print</p>",
            "<div style=\"background-color:#000;color:#fff\"><span style=\"color:#eee\">white on black</span></div>",
            "<font color=\"#336699\" size=\"1\">x</font>",
            "<p><small>fine print</small></p>",
        ] {
            assert_eq!(shown(html), html);
        }
    }

    #[test]
    fn white_on_white_and_tiny_text_are_shown() {
        assert_eq!(
            shown("<p>a<span style=\"color:#ffffff;font-weight:bold\">hidden</span>b</p>"),
            "<p>a<span style=\"font-weight:bold\">hidden</span>b</p>"
        );
        assert_eq!(
            shown("<span style=\"color:rgba(0,0,0,0)\">x</span><font color=\"white\">y</font>"),
            "<span>x</span><font>y</font>"
        );
        assert_eq!(
            shown("<p style=\"background-color:#000\">x</p>"),
            "<p>x</p>",
            "black text on its own black background"
        );
        assert_eq!(
            shown(
                "<div style=\"background-color:#123;color:#fff\"><p style=\"color:#124\">x</p></div>"
            ),
            "<div style=\"background-color:#123;color:#fff\"><p>x</p></div>"
        );
        assert_eq!(
            shown("<font color=\"#fff\"><span style=\"color:windowtext\">x</span></font>"),
            "<font><span>x</span></font>"
        );
        assert_eq!(
            shown("<p style=\"font-size:1px;color:red\">x</p><p style=\"font-size:0\">y</p>"),
            "<p style=\"color:red\">x</p><p>y</p>"
        );
        assert_eq!(
            shown(
                "<span style=\"font-size:50%\"><span style=\"font-size:50%\"><b style=\"font-size:50%\">x</b></span></span>"
            ),
            "<span style=\"font-size:50%\"><span><b>x</b></span></span>",
            "16px, 8px, then 4px: the second size goes, and the third (8px again)"
        );
        assert_eq!(
            shown("<p style=\"color:windowtext\">x</p>"),
            "<p>x</p>",
            "not understood: dropped"
        );
    }

    #[test]
    fn shrinking_tags_too_deep_are_dropped() {
        let html = format!("{}x{}", "<small>".repeat(12), "</small>".repeat(12));
        let out = shown(&html);
        assert!(out.contains("x"), "{out}");
        assert!(out.matches("<small>").count() < 12, "{out}");
        assert_eq!(
            out.matches("<small>").count(),
            out.matches("</small>").count()
        );
    }

    #[test]
    fn values_stay_escaped() {
        assert_eq!(
            shown(
                "<p title=\"a &amp; &quot;b&quot;\" style=\"color:#fff;font-family:&quot;A&quot;\">x</p>"
            ),
            "<p title=\"a &amp; &quot;b&quot;\" style=\"font-family:&quot;A&quot;\">x</p>"
        );
    }
}
