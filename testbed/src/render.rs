//! How a helpdesk that re-renders posted bodies might store them
//! ([`BodyStorage::RenderedHtml`](crate::BodyStorage)): other bytes, same
//! visible text, so a client must compare what a reader would see.

const WRAP_OPEN: &str = r#"<div class="thulium-message">"#;
const WRAP_CLOSE: &str = "</div>";

/// PLAIN text as HTML: `& < >` escaped, a paragraph per blank-line-separated
/// block, `<br>` for single newlines; then re-rendered like any HTML body.
pub(crate) fn plain_to_html(text: &str) -> String {
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    let mut html = String::with_capacity(text.len() + 32);
    let mut lines: Vec<&str> = Vec::new();
    for line in text.split('\n') {
        if line.trim().is_empty() {
            paragraph(&mut html, &mut lines);
        } else {
            lines.push(line);
        }
    }
    paragraph(&mut html, &mut lines);
    rerender_html(&html)
}

fn paragraph(html: &mut String, lines: &mut Vec<&str>) {
    if lines.is_empty() {
        return;
    }
    html.push_str("<p>");
    for (i, line) in lines.iter().enumerate() {
        if i > 0 {
            html.push_str("<br>");
        }
        escape_into(html, line);
    }
    html.push_str("</p>");
    lines.clear();
}

fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
}

/// HTML re-rendered: wrapped in a `div`, `<br>` written `<br />`, whitespace-only
/// runs between tags collapsed to one space (dropped at either end), `&nbsp;`
/// written `&#160;`.
pub(crate) fn rerender_html(html: &str) -> String {
    let mut out = String::with_capacity(html.len() + WRAP_OPEN.len() + 16);
    out.push_str(WRAP_OPEN);
    let mut rest = html;
    let mut after_tag = false;
    while !rest.is_empty() {
        if let Some(len) = tag_len(rest) {
            let tag = &rest[..len];
            if is_br(tag) {
                out.push_str("<br />");
            } else {
                out.push_str(tag);
            }
            rest = &rest[len..];
            after_tag = true;
            continue;
        }
        // Text up to the next tag; a `<` that opens no tag is text.
        let skip = usize::from(rest.starts_with('<'));
        let end = rest[skip..].find('<').map_or(rest.len(), |i| i + skip);
        let text = &rest[..end];
        if text.chars().all(char::is_whitespace) {
            let at_edge = out.len() == WRAP_OPEN.len() || end == rest.len();
            if at_edge {
                // Dropped.
            } else if after_tag && tag_len(&rest[end..]).is_some() {
                out.push(' ');
            } else {
                out.push_str(text);
            }
        } else {
            out.push_str(&text.replace("&nbsp;", "&#160;"));
        }
        rest = &rest[end..];
        after_tag = false;
    }
    out.push_str(WRAP_CLOSE);
    out
}

/// Length of the tag (or comment) `s` starts with, if it starts with one.
fn tag_len(s: &str) -> Option<usize> {
    if let Some(body) = s.strip_prefix("<!--") {
        return body.find("-->").map(|i| 4 + i + 3);
    }
    let next = s.strip_prefix('<')?.chars().next()?;
    if !(next.is_ascii_alphabetic() || matches!(next, '/' | '!' | '?')) {
        return None;
    }
    s.find('>').map(|i| i + 1)
}

fn is_br(tag: &str) -> bool {
    let inner = tag[1..tag.len() - 1].trim();
    inner
        .strip_suffix('/')
        .unwrap_or(inner)
        .trim()
        .eq_ignore_ascii_case("br")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_becomes_paragraphs() {
        assert_eq!(
            plain_to_html("Hi <you> & me\r\nline two\n\n\n  \nBye\n"),
            "<div class=\"thulium-message\"><p>Hi &lt;you&gt; &amp; me<br />line two</p>\
             <p>Bye</p></div>"
        );
    }

    #[test]
    fn html_is_re_rendered() {
        assert_eq!(
            rerender_html("\n<p>a<BR>b<br/>c</p>\n  <p><b>x</b> <i>y</i>&nbsp;z</p>\n"),
            "<div class=\"thulium-message\"><p>a<br />b<br />c</p> \
             <p><b>x</b> <i>y</i>&#160;z</p></div>"
        );
        assert_eq!(
            rerender_html("1 < 2 <!-- a > b --> ok"),
            "<div class=\"thulium-message\">1 < 2 <!-- a > b --> ok</div>"
        );
        assert_eq!(
            rerender_html("<b>x</b>  < 2"),
            "<div class=\"thulium-message\"><b>x</b>  < 2</div>"
        );
        assert_eq!(
            rerender_html("unclosed <p"),
            "<div class=\"thulium-message\">unclosed <p</div>"
        );
    }
}
