//! At most [`MAX_PER_TAG`] attributes on a tag, and [`MAX_TOTAL`] in a body, before
//! html5ever sees the HTML: its tokenizer checks each attribute against the tag's
//! earlier ones, so one tag with 276,007 distinct attribute names took 48 s.
//!
//! Where tags are depends on the tree (`<style>`, `<textarea>`, `<svg>` change how the
//! text after them reads), so lol_html, whose tokenizer follows the parser's states as
//! html5ever's does, says what is text, comment or doctype; everything else is tags,
//! which are read here one at a time by the tokenizer rules for attributes. A tag over
//! a limit is written anew with its first attributes; the bytes around it are kept.

use lol_html::html_content::{Comment, Doctype, TextChunk};
use lol_html::{DocumentContentHandlers, RewriteStrSettings, rewrite_str};
use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashSet;
use std::ops::Range;

/// More attributes than any mail client writes on one tag (a dozen is a lot).
pub(super) const MAX_PER_TAG: usize = 64;
/// More attributes than a big newsletter has in all (some 60,000).
pub(super) const MAX_TOTAL: usize = 100_000;

/// `html` with its tags within the limits; `None` when lol_html cannot tell where the
/// tags are (an ambiguous document), or tells it differently than the rules here.
pub(super) fn cap(html: &str) -> Option<Cow<'_, str>> {
    let not_tags = not_tags(html)?;
    let mut replaced: Vec<(Range<usize>, String)> = Vec::new();
    let mut total = 0usize;
    for gap in gaps(&not_tags, html.len()) {
        let mut i = gap.start;
        while let Some(at) = html
            .get(i..gap.end)
            .and_then(|g| g.find('<'))
            .map(|p| i + p)
        {
            let Some(tag) = Tag::at(html.as_bytes(), at, gap.end) else {
                i = at + 1;
                continue;
            };
            let Some(end) = tag.end else {
                // A tag cut off by the end of the input is dropped by any parser.
                if gap.end != html.len() {
                    return None;
                }
                replaced.push((at..gap.end, String::new()));
                break;
            };
            let allowed = MAX_PER_TAG.min(MAX_TOTAL.saturating_sub(total));
            total += tag.attributes.len().min(allowed);
            if tag.attributes.len() > allowed {
                replaced.push((at..end, tag.rewritten(html, allowed)));
            }
            i = end;
        }
    }
    if replaced.is_empty() {
        return Some(Cow::Borrowed(html));
    }
    let mut out = String::with_capacity(html.len());
    let mut last = 0;
    for (range, with) in replaced {
        out.push_str(html.get(last..range.start)?);
        out.push_str(&with);
        last = range.end;
    }
    out.push_str(html.get(last..)?);
    Some(Cow::Owned(out))
}

/// Byte ranges of the text, comments and doctypes, in order.
fn not_tags(html: &str) -> Option<Vec<Range<usize>>> {
    let found = RefCell::new(Vec::new());
    let push = |r: Range<usize>| found.borrow_mut().push(r);
    let handlers = DocumentContentHandlers::default()
        .text(|t: &mut TextChunk<'_>| {
            push(t.source_location().bytes());
            Ok(())
        })
        .comments(|c: &mut Comment<'_>| {
            push(c.source_location().bytes());
            Ok(())
        })
        .doctype(|d: &mut Doctype<'_>| {
            push(d.source_location().bytes());
            Ok(())
        });
    let settings = RewriteStrSettings {
        document_content_handlers: vec![handlers],
        // Ambiguous markup is an error, not a guess that html5ever may not share.
        strict: true,
        ..RewriteStrSettings::new()
    };
    rewrite_str(html, settings).ok()?;
    Some(found.into_inner())
}

/// The ranges between `not_tags`: where the tags are.
fn gaps(not_tags: &[Range<usize>], len: usize) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut at = 0;
    for r in not_tags {
        if r.start > at {
            out.push(at..r.start);
        }
        at = at.max(r.end);
    }
    if at < len {
        out.push(at..len);
    }
    out
}

/// One attribute: its name and, when it has one, its value (without quotes).
struct Attribute {
    name: Range<usize>,
    value: Option<Range<usize>>,
}

/// A start or end tag read by the HTML tokenizer's rules.
struct Tag {
    name: Range<usize>,
    is_end: bool,
    self_closing: bool,
    attributes: Vec<Attribute>,
    /// Just after its `>`; `None` when `limit` came first.
    end: Option<usize>,
}

fn is_space(b: u8) -> bool {
    matches!(b, b'\t' | b'\n' | b'\x0c' | b'\r' | b' ')
}

impl Tag {
    /// The tag whose `<` is at `at`, if a tag starts there.
    fn at(b: &[u8], at: usize, limit: usize) -> Option<Tag> {
        let b = b.get(..limit)?;
        let is_end = b.get(at + 1) == Some(&b'/');
        let name_start = at + if is_end { 2 } else { 1 };
        if !b.get(name_start)?.is_ascii_alphabetic() {
            return None;
        }
        let mut i = name_start;
        while i < b.len() && !(is_space(b[i]) || b[i] == b'/' || b[i] == b'>') {
            i += 1;
        }
        let mut tag = Tag {
            name: name_start..i,
            is_end,
            self_closing: false,
            attributes: Vec::new(),
            end: None,
        };
        // Before an attribute name (or after one, or after a quoted value).
        while i < b.len() {
            match b[i] {
                c if is_space(c) => i += 1,
                b'>' => {
                    tag.end = Some(i + 1);
                    return Some(tag);
                }
                b'/' => {
                    tag.self_closing = b.get(i + 1) == Some(&b'>');
                    i += 1;
                }
                _ => i = tag.attribute(b, i),
            }
        }
        Some(tag)
    }

    /// Reads the attribute starting at `i` (a name may start with `=`); returns where
    /// reading goes on.
    fn attribute(&mut self, b: &[u8], mut i: usize) -> usize {
        let start = i;
        i += 1;
        while i < b.len() && !(is_space(b[i]) || matches!(b[i], b'/' | b'>' | b'=')) {
            i += 1;
        }
        let name = start..i;
        while i < b.len() && is_space(b[i]) {
            i += 1;
        }
        if b.get(i) != Some(&b'=') {
            // No value; a space, `/` or `>` follows, or the next name.
            self.attributes.push(Attribute { name, value: None });
            return i;
        }
        i += 1;
        while i < b.len() && is_space(b[i]) {
            i += 1;
        }
        let value = match b.get(i) {
            Some(&q @ (b'"' | b'\'')) => {
                let from = i + 1;
                let to = b[from..]
                    .iter()
                    .position(|&c| c == q)
                    .map_or(b.len(), |p| from + p);
                i = (to + 1).min(b.len());
                from..to
            }
            // `a=>` has an empty value and ends the tag.
            Some(b'>') | None => i..i,
            Some(_) => {
                let from = i;
                while i < b.len() && !(is_space(b[i]) || b[i] == b'>') {
                    i += 1;
                }
                from..i
            }
        };
        self.attributes.push(Attribute {
            name,
            value: Some(value),
        });
        i
    }

    /// The tag with its first `keep` distinct attributes (an end tag with none), each
    /// value double-quoted.
    fn rewritten(&self, html: &str, keep: usize) -> String {
        let text = |r: &Range<usize>| html.get(r.clone()).unwrap_or("");
        let mut out = String::from(if self.is_end { "</" } else { "<" });
        out.push_str(text(&self.name));
        if !self.is_end {
            let mut seen = HashSet::new();
            for a in &self.attributes {
                if seen.len() == keep {
                    break;
                }
                let name = text(&a.name);
                if !seen.insert(name.to_ascii_lowercase()) {
                    continue;
                }
                out.push(' ');
                out.push_str(name);
                if let Some(v) = &a.value {
                    out.push_str("=\"");
                    out.push_str(&text(v).replace('"', "&quot;"));
                    out.push('"');
                }
            }
            if self.self_closing {
                out.push_str(" /");
            }
        }
        out.push('>');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lol_html::{ElementContentHandlers, Selector};
    use std::fmt::Write as _;

    fn names(n: usize) -> String {
        let mut s = String::new();
        for i in 0..n {
            let _ = write!(s, " a{i}=\"{i}\"");
        }
        s
    }

    /// The most attributes lol_html (the same tokenizer states as html5ever) sees on
    /// one start tag.
    fn most_attributes(html: &str) -> usize {
        let most = RefCell::new(0);
        let Ok(any) = "*".parse::<Selector>() else {
            return usize::MAX;
        };
        let handler = |el: &mut lol_html::html_content::Element<'_, '_>| {
            let n = el.attributes().len();
            let mut m = most.borrow_mut();
            *m = (*m).max(n);
            Ok(())
        };
        let settings = RewriteStrSettings {
            element_content_handlers: vec![(
                Cow::Owned(any),
                ElementContentHandlers::default().element(handler),
            )],
            ..RewriteStrSettings::new()
        };
        match rewrite_str(html, settings) {
            Ok(_) => most.into_inner(),
            Err(_) => usize::MAX,
        }
    }

    fn capped(html: &str) -> String {
        cap(html)
            .map(Cow::into_owned)
            .unwrap_or_else(|| panic!("{html}"))
    }

    #[test]
    fn ordinary_html_is_left_as_it_is() {
        let html = "<!DOCTYPE html><p class=\"x\" style='color:red' data-a=1 hidden>Hi &amp; <b>bye</b></p><!-- c --><br/>";
        assert!(matches!(cap(html), Some(Cow::Borrowed(_))));
        let just_enough = format!("<p{}>x</p>", names(MAX_PER_TAG));
        assert!(matches!(cap(&just_enough), Some(Cow::Borrowed(_))));
    }

    #[test]
    fn a_tag_over_the_limit_keeps_its_first_attributes() {
        let html = format!("a<p{}>x</p>b", names(10_000));
        let out = capped(&html);
        assert_eq!(out, format!("a<p{}>x</p>b", names(MAX_PER_TAG)));
        assert_eq!(most_attributes(&out), MAX_PER_TAG);
    }

    #[test]
    fn values_names_and_ends_are_read_as_the_tokenizer_reads_them() {
        let rest: String = (0..MAX_PER_TAG).map(|i| format!(" z{i}")).collect();
        let html = format!(
            "<img title='a \"q\" >' =eq x=y/ src=\"s\"alt=b empty= checked hidden{rest}/>t"
        );
        let out = capped(&html);
        let kept: String = (0..MAX_PER_TAG - 7).map(|i| format!(" z{i}")).collect();
        assert_eq!(
            out,
            format!(
                "<img title=\"a &quot;q&quot; >\" =eq x=\"y/\" src=\"s\" alt=\"b\" empty=\"checked\" hidden{kept} />t"
            )
        );
        // Duplicates count once, as the parser keeps the first.
        let dup = format!("<b a=1 a=2{}>x</b>", names(MAX_PER_TAG + 1));
        assert!(capped(&dup).starts_with("<b a=\"1\" a0=\"0\""));
    }

    #[test]
    fn end_tags_and_a_tag_cut_off_by_the_end_lose_them() {
        let html = format!("<p>x</p{}>y<p{}", names(1000), names(1000));
        assert_eq!(capped(&html), "<p>x</p>y");
    }

    #[test]
    fn text_that_looks_like_tags_stays_text_and_tags_after_it_are_capped() {
        let big = names(1000);
        for wrapper in [
            "<style>/* <!-- \" */</style>",
            "<script>var a = '<p title=\"'; /* <!-- */</script>",
            "<textarea><!-- <a title=\"</textarea>",
            "<title>\"<!--</title>",
            "<xmp><!--</xmp>",
            "<noembed><!--</noembed>",
            "<noframes><!--</noframes>",
            "<iframe><!--</iframe>",
            "<svg><![CDATA[ > <!-- ]]></svg>",
            "<math><mtext><![CDATA[ > ]]></mtext></math>",
            "<!--> <p title=\" -->",
            "<!---> <p title=\" -->",
            "<? <p title=\" >",
            "</ <p title=\" >",
            "<select><option><!--</option></select>",
            "<template><style><!--</style></template>",
        ] {
            let html = format!("{wrapper}<p{big}>x</p>");
            let out = capped(&html);
            assert!(most_attributes(&out) <= MAX_PER_TAG, "{wrapper}");
        }
    }

    #[test]
    fn the_total_is_capped_too() {
        let tag = format!("<i{}>x</i>", names(50));
        let html = tag.repeat(MAX_TOTAL / 50 + 3);
        let out = capped(&html);
        assert!(
            out.ends_with("<i>x</i><i>x</i>"),
            "{}",
            &out[out.len() - 40..]
        );
    }

    #[test]
    fn ambiguous_markup_is_refused() {
        assert!(cap("<select><xmp>x</xmp></select>").is_none());
    }
}
