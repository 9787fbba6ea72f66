//! The visible text of HTML, as lines that map back to byte offsets.
//!
//! This lets the plain-text detectors ("On … wrote:", "From: … Sent: …")
//! find reply headers inside HTML, and the HTML be cut at the same place.

use super::html_scan::{Markup, entity_at, markup_at, raw_text_end};
use super::lines::Line;
use super::markers::{QUOTE_MARK, SIGNATURE_MARK};

/// Elements whose text a reader never sees.
const RAW_TEXT: &[&str] = &[
    "script", "style", "title", "textarea", "xmp", "template", "iframe", "noembed", "noframes",
    "noscript",
];

/// Elements that start and end a line.
fn is_block(name: &str) -> bool {
    matches!(
        name,
        "p" | "div"
            | "ul"
            | "ol"
            | "li"
            | "table"
            | "tr"
            | "tbody"
            | "thead"
            | "tfoot"
            | "caption"
            | "h1"
            | "h2"
            | "h3"
            | "h4"
            | "h5"
            | "h6"
            | "hr"
            | "dl"
            | "dt"
            | "dd"
            | "section"
            | "article"
            | "header"
            | "footer"
            | "nav"
            | "aside"
            | "address"
            | "center"
            | "form"
            | "fieldset"
            | "figure"
            | "figcaption"
            | "main"
            | "details"
            | "summary"
            | "body"
            | "html"
            | "blockquote"
            | "pre"
    )
}

/// Builds lines the way a browser lays out text: whitespace collapsed, blocks on their own lines.
struct Builder {
    out: Vec<Line>,
    cur: Line,
    space: bool,
}

impl Builder {
    fn push_char(&mut self, c: char, quoted: bool) {
        if self.cur.text.is_empty() {
            self.cur.quoted = quoted;
        } else if self.space {
            self.cur.text.push(' ');
        }
        self.space = false;
        self.cur.text.push(c);
    }

    /// Ends the current line only if it has text (a block boundary).
    fn soft_break(&mut self, at: usize) {
        if !self.cur.text.is_empty() {
            self.hard_break(at);
        }
        self.space = false;
    }

    /// Ends the current line even when empty (`<br>`, a newline in `<pre>`).
    fn hard_break(&mut self, at: usize) {
        let next = Line {
            start: at,
            ..Line::default()
        };
        self.out.push(std::mem::replace(&mut self.cur, next));
        self.space = false;
    }
}

/// The visible lines of `html`; quote and signature markers become line flags.
pub(crate) fn html_lines(html: &str) -> Vec<Line> {
    let b = html.as_bytes();
    let mut lines = Builder {
        out: Vec::new(),
        cur: Line::default(),
        space: false,
    };
    let (mut quote, mut pre) = (0usize, 0usize);
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'<' => match markup_at(html, i) {
                Some(Markup::Skip(end)) => i = end.max(i + 1),
                Some(Markup::Tag(t)) => {
                    let next = t.end.max(i + 1);
                    match t.name.as_str() {
                        "br" => lines.hard_break(next),
                        name if RAW_TEXT.contains(&name) && !t.is_end && !t.self_closing => {
                            i = raw_text_end(html, next, name).max(next);
                            continue;
                        }
                        "td" | "th" if !t.is_end && !lines.cur.text.is_empty() => {
                            lines.space = true
                        }
                        name if is_block(name) => {
                            lines.soft_break(i);
                            let depth = match name {
                                "blockquote" => Some(&mut quote),
                                "pre" => Some(&mut pre),
                                _ => None,
                            };
                            if let Some(d) = depth {
                                if t.is_end {
                                    *d = d.saturating_sub(1);
                                } else if !t.self_closing {
                                    *d += 1;
                                }
                            }
                        }
                        _ => {}
                    }
                    i = next;
                }
                None => {
                    lines.push_char('<', quote > 0);
                    i += 1;
                }
            },
            b'&' => match entity_at(html, i) {
                Some((c, end)) => {
                    lines.push_char(c, quote > 0);
                    i = end;
                }
                None => {
                    lines.push_char('&', quote > 0);
                    i += 1;
                }
            },
            c @ (b' ' | b'\t' | b'\n' | b'\r' | 0x0c) => {
                if pre == 0 {
                    lines.space = true;
                } else if c == b'\n' {
                    lines.hard_break(i + 1);
                } else if c != b'\r' {
                    lines.push_char(' ', quote > 0);
                }
                i += 1;
            }
            _ => {
                let Some(c) = html.get(i..).and_then(|t| t.chars().next()) else {
                    i += 1;
                    continue;
                };
                if c == QUOTE_MARK || c == SIGNATURE_MARK {
                    lines.soft_break(i);
                    if c == QUOTE_MARK {
                        lines.cur.quote_mark = true;
                    } else {
                        lines.cur.signature_mark = true;
                    }
                } else {
                    lines.push_char(c, quote > 0);
                }
                i += c.len_utf8();
            }
        }
    }
    let last = lines.cur;
    let mut out = lines.out;
    if !last.text.is_empty() || last.quote_mark || last.signature_mark {
        out.push(last);
    }
    out
}

/// Plain text of `lines`: quoted lines get `> `, runs of blank lines become one.
pub(super) fn lines_to_text(lines: &[Line], with_marks: bool) -> String {
    let mut out = String::new();
    let mut blank = true;
    for l in lines {
        let text = l.text.trim_end();
        if text.is_empty() && !(with_marks && (l.quote_mark || l.signature_mark)) {
            if !blank {
                out.push('\n');
                blank = true;
            }
            continue;
        }
        if with_marks && l.quote_mark {
            out.push(QUOTE_MARK);
        }
        if with_marks && l.signature_mark {
            out.push(SIGNATURE_MARK);
        }
        if l.quoted {
            out.push_str("> ");
        }
        out.push_str(text);
        out.push('\n');
        blank = false;
    }
    out.trim_end().to_string()
}

/// The visible text of an HTML body, for PLAIN output and for tests.
pub fn html_to_text(html: &str) -> String {
    lines_to_text(&html_lines(html), false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(html: &str) -> Vec<String> {
        html_lines(html).into_iter().map(|l| l.text).collect()
    }

    #[test]
    fn blocks_breaks_and_whitespace() {
        assert_eq!(
            texts("<p>Hi  there,\n friend</p><div>a<br>b<br><br>c</div>"),
            ["Hi there, friend", "a", "b", "", "c"]
        );
        assert_eq!(
            texts("<table><tr><td>a</td><td>b</td></tr></table>"),
            ["a b"]
        );
        assert_eq!(texts("<pre>x\n  y</pre>z"), ["x", "  y", "z"]);
    }

    #[test]
    fn hidden_text_and_entities() {
        assert_eq!(
            texts(
                "<head><title>T</title><style>p{}</style></head><script>x<y</script>A &amp; B&nbsp;&lt;c&gt; <!-- no -->"
            ),
            ["A & B\u{a0}<c>"]
        );
        assert_eq!(texts("1 < 2 & 3"), ["1 < 2 & 3"]);
    }

    #[test]
    fn offsets_point_at_the_line_start() {
        let html = "<div>Hello</div><blockquote><div>quoted</div></blockquote>";
        let lines = html_lines(html);
        assert_eq!(lines.len(), 2);
        assert!(!lines[0].quoted && lines[1].quoted);
        assert_eq!(&html[..lines[1].start], "<div>Hello");
    }

    #[test]
    fn markers_flag_the_following_line() {
        let html = format!("Alex<br>{QUOTE_MARK}<div>On Monday X wrote:</div>{SIGNATURE_MARK}sig");
        let lines = html_lines(&html);
        assert_eq!(lines[0].text, "Alex");
        assert!(lines[1].quote_mark && lines[1].text == "On Monday X wrote:");
        assert_eq!(
            &html[lines[1].start..lines[1].start + 4],
            QUOTE_MARK.to_string()
        );
        assert!(lines[2].signature_mark && lines[2].text == "sig");
    }

    #[test]
    fn to_text() {
        assert_eq!(
            html_to_text("<p>a</p><br><br><br><blockquote>q</blockquote>"),
            "a\n\n> q"
        );
    }
}
