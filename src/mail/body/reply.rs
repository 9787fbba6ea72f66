//! Which lines of a body are the new reply: quoted history and the signature cut.
//!
//! Lines are classed as in talon (Mailgun's quotation parser): empty, quoted
//! (`>` or inside a blockquote), reply header ("splitter") or text. Then:
//! a header followed by text cuts everything from the header on (Outlook's
//! unquoted history); otherwise the span from the first header (or run of
//! quoted lines) to the last quoted line is removed and any text after it is
//! kept (bottom posting); replies interleaved with quotes are left alone.
//! A cut that would leave nothing keeps the uncut body.

use super::headers;
use super::html_scan::has_visible;
use super::lines::Line;
use super::signature;
use std::ops::Range;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Empty,
    Quote,
    Split,
    Text,
}

/// Longest "intro" line ("… <a@b.c>:") taken as the header of the quote below it.
const MAX_INTRO: usize = 300;

/// The line ranges to keep after stripping quotes and signature as configured.
pub(super) fn kept(
    lines: &[Line],
    strip_quotes: bool,
    strip_signatures: bool,
) -> Vec<Range<usize>> {
    let mut keep = one(0..lines.len());
    // A cut leaving only a signature left nothing of the reply either (a bare forward).
    if strip_quotes
        && let Some(k) = quote_cut(&classify(lines))
        && visible(
            lines,
            &signature_cut(lines, &k).unwrap_or_else(|| k.clone()),
        )
    {
        keep = k;
    }
    if strip_signatures
        && let Some(k) = signature_cut(lines, &keep)
        && visible(lines, &k)
    {
        keep = k;
    }
    keep.retain(|r| !r.is_empty());
    keep
}

/// A list of ranges holding one range (more may be pushed).
fn one(r: Range<usize>) -> Vec<Range<usize>> {
    let mut v = Vec::with_capacity(2);
    v.push(r);
    v
}

fn visible(lines: &[Line], ranges: &[Range<usize>]) -> bool {
    ranges.iter().any(|r| {
        lines
            .get(r.clone())
            .is_some_and(|ls| ls.iter().any(|l| has_visible(&l.text)))
    })
}

fn is_quote_line(l: &Line) -> bool {
    l.quoted || l.text.trim_start().starts_with('>')
}

fn classify(lines: &[Line]) -> Vec<Kind> {
    let mut kinds: Vec<Kind> = lines
        .iter()
        .map(|l| {
            if !has_visible(&l.text) && !l.quote_mark {
                Kind::Empty
            } else if is_quote_line(l) {
                Kind::Quote
            } else if l.quote_mark {
                Kind::Split
            } else {
                Kind::Text
            }
        })
        .collect();
    let mut i = 0;
    while i < lines.len() {
        // A forward is shared content, not history: its header block stays text.
        if matches!(kinds[i], Kind::Text | Kind::Split)
            && let Some(n) = headers::forward(lines, i)
        {
            for k in kinds.iter_mut().skip(i).take(n) {
                if *k == Kind::Split {
                    *k = Kind::Text;
                }
            }
            i += n;
            continue;
        }
        if kinds[i] == Kind::Text
            && let Some(n) = headers::splitter(lines, i)
        {
            for k in kinds.iter_mut().skip(i).take(n) {
                if *k != Kind::Quote {
                    *k = Kind::Split;
                }
            }
            i += n;
            continue;
        }
        i += 1;
    }
    // "26.06.2014, 14:41, "Alexander L" <abc@example.com>:" right above a quote.
    for i in 0..lines.len() {
        if kinds[i] != Kind::Text {
            continue;
        }
        let t = lines[i].text.trim();
        let next = kinds[i + 1..].iter().find(|k| **k != Kind::Empty);
        if next == Some(&Kind::Quote)
            && t.ends_with(':')
            && t.len() <= MAX_INTRO
            && (t.chars().any(|c| c.is_ascii_digit() || c == '@') || headers::is_on_wrote(t))
        {
            kinds[i] = Kind::Split;
        }
    }
    kinds
}

/// The ranges kept once quoted history is removed, or `None` when nothing is cut.
fn quote_cut(kinds: &[Kind]) -> Option<Vec<Range<usize>>> {
    let n = kinds.len();
    // A reply header followed by text (not quotes): the history is unquoted, cut to the end.
    let mut end = n;
    let mut i = 0;
    while i < n {
        if kinds[i] != Kind::Split {
            i += 1;
            continue;
        }
        let after = kinds[i..]
            .iter()
            .position(|k| !matches!(k, Kind::Split | Kind::Empty))
            .map_or(n, |p| i + p);
        if after == n || kinds[after] == Kind::Text {
            end = i;
            break;
        }
        // Every header line before `after` reaches the same quote: one scan for the run.
        i = after;
    }
    let region = &kinds[..end];
    if interleaved(region) {
        return (end < n).then(|| one(0..end));
    }
    let quotes = region.iter().filter(|k| **k == Kind::Quote).count();
    let first_split = region.iter().position(|k| *k == Kind::Split);
    let last_quote = region.iter().rposition(|k| *k == Kind::Quote);
    let trailing = last_quote.is_some_and(|q| region[q + 1..].iter().all(|k| *k == Kind::Empty));
    // Without a header, one stray `>` line inside text is not history (">From" escapes).
    let first_quote = if first_split.is_some() || quotes >= 2 || trailing {
        region.iter().position(|k| *k == Kind::Quote)
    } else {
        None
    };
    let start = match (first_split, first_quote) {
        (Some(s), Some(q)) => Some(s.min(q)),
        (s, q) => s.or(q),
    };
    match (start, last_quote) {
        (Some(s), Some(q)) if q >= s => {
            let mut keep = one(0..s);
            if q + 1 < end {
                keep.push(q + 1..end);
            }
            Some(keep)
        }
        _ if end < n => Some(one(0..end)),
        _ => None,
    }
}

/// Quote, then text, then quote again (with no header between): an interleaved reply.
fn interleaved(kinds: &[Kind]) -> bool {
    let mut state = 0;
    for k in kinds {
        state = match (state, k) {
            (_, Kind::Empty) => state,
            (2, Kind::Quote) => return true,
            (_, Kind::Quote) => 1,
            (1 | 2, Kind::Text) => 2,
            _ => 0,
        };
    }
    false
}

/// The ranges kept once the signature is cut, or `None` when there is none.
fn signature_cut(lines: &[Line], keep: &[Range<usize>]) -> Option<Vec<Range<usize>>> {
    let order: Vec<usize> = keep.iter().flat_map(|r| r.clone()).collect();
    let mut after = vec![0; order.len()];
    let mut count = 0;
    for (pos, &li) in order.iter().enumerate().rev() {
        after[pos] = count;
        if lines.get(li).is_some_and(|l| has_visible(&l.text)) {
            count += 1;
        }
    }
    let cut = order.iter().zip(&after).find_map(|(&li, &n)| {
        let kind = signature::kind(lines.get(li)?)?;
        signature::allowed(kind, n).then_some(li)
    })?;
    Some(
        keep.iter()
            .filter(|r| r.start < cut)
            .map(|r| r.start..r.end.min(cut))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::body::lines::{keep, text_lines};

    fn strip(text: &str) -> String {
        let lines = text_lines(text);
        keep(text, &lines, &kept(&lines, true, true))
            .trim()
            .to_string()
    }

    #[test]
    fn gmail_on_wrote() {
        let t =
            "Hello\n\nOn Mon, Apr 2, 2012 at 6:26 PM, Megan One <xxx@gmail.com> wrote:\n\n> Hi\n";
        assert_eq!(strip(t), "Hello");
    }

    #[test]
    fn on_wrote_wrapped_over_two_lines() {
        let t = "Thanks!\n\nOn Tue, Apr 1, 2014 at 10:00 AM, John Smith <\njohn@example.com> wrote:\n> question\n> more\n";
        assert_eq!(strip(t), "Thanks!");
    }

    #[test]
    fn thunderbird_bottom_post_keeps_the_text_below() {
        let t = "On 04/02/2012 06:26 PM, Megan One wrote:\n> Hi \nHello\n";
        assert_eq!(strip(t), "Hello");
    }

    #[test]
    fn outlook_original_message_and_header_block() {
        let t = "Hello\n\n-----Original Message-----\nFrom: bob <bob@example.com>\nSent: Mon, Apr 2, 2012 5:49 pm\nSubject: Test\n\nHi\n";
        assert_eq!(strip(t), "Hello");
        let t = "Hello\n\nFrom: xxx@xxx.mailgun.org [mailto:xxx@xxx.mailgun.org]\nSent: March-09-12 4:22 PM\nTo: Dan Le\nSubject: The manager has commented\n\nHi dan,\n\nLoop details\n";
        assert_eq!(strip(t), "Hello");
        let t = "Outlook with a reply directly above line\n________________________________________\nFrom: CRM Comments [crm-comment@example.com]\nSent: Friday, 23 March 2012 5:08 p.m.\nTo: John S. Greene\nSubject: [contact:106] John Greene\n\nA new comment\n";
        assert_eq!(strip(t), "Outlook with a reply directly above line");
    }

    #[test]
    fn polish_forms() {
        let t = "Dzień dobry,\nproszę o fakturę.\n\nW dniu 12.03.2024 o 10:15, Pomoc <pomoc@example.pl> pisze:\n> Dzień dobry,\n> w czym możemy pomóc?\n";
        assert_eq!(strip(t), "Dzień dobry,\nproszę o fakturę.");
        let t = "Dziękuję.\n\npon., 11 mar 2024 o 09:00 Pomoc <pomoc@example.pl> napisał(a):\n\n> Zamówienie wysłane.\n";
        assert_eq!(strip(t), "Dziękuję.");
        let t = "Dziękuję.\n\nAnna Nowak <anna@example.pl> napisał(a):\n> Zamówienie wysłane.\n";
        assert_eq!(strip(t), "Dziękuję.");
        let t = "Proszę o kontakt.\n\nOd: Pomoc Thulium <pomoc@example.pl>\nWysłane: poniedziałek, 11 marca 2024 09:00\nDo: Jan Kowalski <jan@example.pl>\nTemat: [TH#123] Zamówienie\n\nDzień dobry,\nzamówienie wysłane.\n";
        assert_eq!(strip(t), "Proszę o kontakt.");
        let t = "Tak, potwierdzam.\n\n-----Wiadomość oryginalna-----\nOd: Pomoc\nWysłano: wtorek\nDo: Jan\nTemat: Pytanie\n\nCzy potwierdza Pan?\n";
        assert_eq!(strip(t), "Tak, potwierdzam.");
        let t = "Dobrze.\n\nWysłane z iPhone'a\n\n> Wiadomość\n";
        assert_eq!(strip(t), "Dobrze.");
    }

    #[test]
    fn french_and_german() {
        let t = "Merci\n\nLe 26 juin 2014 à 14:00, Alex <a@example.fr> a écrit :\n> Bonjour\n";
        assert_eq!(strip(t), "Merci");
        let t =
            "Danke\n\nAm 01.02.2024 um 10:15 schrieb Max Mustermann <max@example.de>:\n> Hallo\n";
        assert_eq!(strip(t), "Danke");
    }

    #[test]
    fn trailing_quote_lines_are_cut() {
        assert_eq!(strip("Hello\n\n> Hi\n"), "Hello");
        let t =
            "Hello\n\n> Subject: Test\n> From: bob@example.com\n> To: a@example.com\n> \n> Hi\n";
        assert_eq!(strip(t), "Hello");
        // An intro line above the quote goes with it.
        assert_eq!(
            strip("Yes.\n\n26.06.2014, 14:41, \"Alexander L\" <abc@example.com>:\n> Hello\n"),
            "Yes."
        );
    }

    #[test]
    fn interleaved_replies_are_kept() {
        let t = "On Tue, 2011-03-01 at 18:02 +0530, Abhishek Kona wrote:\n> question one\n\nanswer one\n\n> question two\n\nanswer two\n";
        assert_eq!(strip(t), t.trim());
    }

    #[test]
    fn a_single_quoted_line_inside_text_is_text() {
        let t = "Hello\n>From here on\nit works";
        assert_eq!(strip(t), t);
    }

    #[test]
    fn cut_that_leaves_nothing_keeps_the_body() {
        let t = "On Mon, Apr 2, 2012 at 6:26 PM, Megan One <xxx@gmail.com> wrote:\n> Hi\n";
        assert_eq!(strip(t), t.trim());
        let t = "-----Original Message-----\nFrom: a@example.com\nSent: Monday\nTo: b@example.com\nSubject: x\n\nforwarded text";
        assert_eq!(strip(t), t.trim());
        assert_eq!(strip("-- \nJohn Smith\nACME"), "-- \nJohn Smith\nACME");
        // Only a signature above the history: the history is what was sent.
        let t = "-- \nJan\n\nGesendet: Mittwoch, 03. Februar 2016\nVon: Martin\nAn: Support\nBetreff: Fw: Zugangsdaten\n\nDaten";
        assert_eq!(strip(t), t);
        assert_eq!(strip("Sent from my iPhone"), "Sent from my iPhone");
    }

    #[test]
    fn signatures() {
        assert_eq!(
            strip("this is an email with a correct -- signature.\n\n-- \nrick\n"),
            "this is an email with a correct -- signature."
        );
        assert_eq!(
            strip("Hi there!\n\nAnd here is a fix -- this is not a signature.\n\nkthxbai"),
            "Hi there!\n\nAnd here is a fix -- this is not a signature.\n\nkthxbai"
        );
        assert_eq!(strip("Hello\n--\nJohn\nACME Inc."), "Hello");
        let long_tail = format!("Hello\n--\n{}", "line\n".repeat(10));
        assert_eq!(strip(&long_tail), long_tail.trim());
        assert_eq!(
            strip("Here is another email\n\nSent from my BlackBerry"),
            "Here is another email"
        );
        assert_eq!(strip("Hi\n\nGet Outlook for Android\n"), "Hi");
        assert_eq!(strip("Hi\n\nSent from Outlook"), "Hi");
        let not = "Here is another email\n\nSent from my desk, is much easier then my mobile phone.\nI think so.";
        assert_eq!(strip(not), not);
        // Signature before the quote: both go.
        let t = "Hello \n\n-- \nxxx\nSent with Sparrow (http://www.sparrowmailapp.com/?sig)\n\n\nOn Tuesday, April 3, 2012 at 4:55 PM, xxx wrote:\n\n> Hello\n";
        assert_eq!(strip(t), "Hello");
        let t = "Hello\n\nSent from my iPhone\n\nOn Apr 3, 2012, at 4:19 PM, bob <bob@example.com> wrote:\n\n> Hi\n";
        assert_eq!(strip(t), "Hello");
    }

    #[test]
    fn forwards_are_kept() {
        let t = "Please see below.\n\n---------- Forwarded message ---------\nFrom: Courier <c@example.com>\nDate: Mon, 11 Mar 2024\nSubject: Parcel\nTo: jan@example.pl\n\nYour parcel is delayed.";
        assert_eq!(strip(t), t);
        let t = "Zobaczcie poniżej.\n\n-------- Wiadomość przekazana --------\nOd: Kurier\nData: pon\nDo: Jan\nTemat: Paczka\n\nPaczka opóźniona.";
        assert_eq!(strip(t), t);
    }

    #[test]
    fn toggles() {
        let t = "Hello\n-- \nsig\n\n> quoted\n> more\n";
        let lines = text_lines(t);
        assert_eq!(keep(t, &lines, &kept(&lines, false, false)), t);
        assert_eq!(
            keep(t, &lines, &kept(&lines, true, false)).trim(),
            "Hello\n-- \nsig"
        );
        assert_eq!(keep(t, &lines, &kept(&lines, false, true)).trim(), "Hello");
    }

    #[test]
    fn a_run_of_reply_headers_above_a_quote_is_one_cut() {
        let t = format!(
            "Hello\n{}> quoted\n",
            "-----Original Message-----\n".repeat(50_000)
        );
        assert_eq!(strip(&t), "Hello");
    }

    /// How long it takes is `benches/hostile.rs`'s "text: 2 MB of one '>' line".
    #[test]
    fn a_long_quote_line_is_cut() {
        let t = format!("Hi folks\n\nWhat now?\n{}\n", ">".repeat(800_000));
        assert_eq!(strip(&t), "Hi folks\n\nWhat now?");
    }
}
