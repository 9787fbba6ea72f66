//! Reply headers: the lines a mail client writes above quoted history.
//!
//! "On … wrote:" (and its French, German, Polish… forms, also wrapped over
//! two or three lines), "-----Original Message-----", and the Outlook block
//! "From: … Sent: … To: … Subject:". Regexes only ever see one short line (or
//! a few joined), so a huge body cannot make them slow.

use super::lines::Line;
use regex::Regex;
use std::sync::LazyLock;

/// Longer lines are never reply headers; skipping them keeps scans linear.
const MAX_HEADER_LINE: usize = 400;

/// The verbs of "X wrote:" in the languages our customers write in.
const WROTE: &str = r"(?:wrote|writes|a\s+écrit|schrieb|pisze|napisał\(a\)|napisała|napisał|escribió|ha\s+scritto|scrisse|schreef|escreveu|skrev|kirjoitti|napsal|napísal|írta|написал\(а\)|написала|написал|пишет)";

/// "On <date>, <someone> wrote:" with the usual leading words.
static ON_WROTE: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(&format!(
        r"(?i)^(?:on|le|am|w\s+dniu|dnia|el|il|op|em|den|dne|dňa|в)\s.*\b{WROTE}(?:\s.*)?:$"
    ))
    .ok()
});

/// "… <someone> wrote:" / "… napisał(a):" without a leading word (Gmail in Polish, Android).
static WROTE_END: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(&format!(r"(?i)(?:^|\s){WROTE}(?:\s.*)?:$")).ok());

/// "-----Original Message-----" and its translations.
static ORIGINAL: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(
        r"(?i)^[\s*_=-]*(?:original\s+message|original\s+e-?mail|wiadomość\s+oryginalna|oryginalna\s+wiadomość|ursprüngliche\s+nachricht|original\s*nachricht|message\s+d'origine|message\s+original|mensaje\s+original|messaggio\s+originale|mensagem\s+original|oorspronkelijk\s+bericht|исходное\s+сообщение|原始邮件)[\s*_=-]*$",
    )
    .ok()
});

/// "---------- Forwarded message ---------" and kin: what follows is shared, not history.
/// Gmail's and Thunderbird's separators and Apple Mail's "Begin forwarded message:", in
/// English and as those clients write them in German, Polish, French, Spanish, Italian,
/// Dutch, Portuguese and Russian.
static FORWARD: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(
        r"(?i)^[\s*_=-]*(?:forwarded\s+message|begin\s+forwarded\s+message|weitergeleitete\s+nachricht|anfang\s+der\s+weitergeleiteten\s+nachricht|wiadomość\s+przekazana(?:\s+dalej)?|przekazana\s+wiadomość|początek\s+przekazywanej\s+wiadomości|message\s+transféré|début\s+du\s+message\s+réexpédié|mensaje\s+reenviado|inicio\s+del\s+mensaje\s+reenviado|messaggio\s+inoltrato|inizio\s+messaggio\s+inoltrato|doorgestuurd\s+bericht|begin\s+doorgestuurd\s+bericht|mensagem\s+encaminhada|início\s+da\s+mensagem\s+encaminhada|пересылаемое\s+сообщение)\s*:?[\s*_=-]*$",
    )
    .ok()
});

/// A header label at the start of a line: "From:", "*Sent:*", "Wysłane:", "De :".
static LABEL: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(
        r"(?i)^[\s*_]*(from|od|von|de|van|da|от|från|fra|date|sent|data|wysłane|wysłano|gesendet|datum|envoyé|enviado|fecha|отправлено|дата|skickat|sendt|to|do|an|à|a|para|кому|till|til|aan|subject|temat|betreff|objet|asunto|oggetto|assunto|тема|ämne|emne|onderwerp|cc|dw|kopia|kopie)[\s*_]*:",
    )
    .ok()
});

fn is_match(re: &LazyLock<Option<Regex>>, s: &str) -> bool {
    re.as_ref().is_some_and(|r| r.is_match(s))
}

/// The kinds of header a reply block has; a block needs a sender and two more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Label {
    From,
    Date,
    To,
    Subject,
    Cc,
}

fn label(line: &str) -> Option<Label> {
    let head = prefix(line, 40);
    let caps = LABEL.as_ref()?.captures(head)?;
    let word = caps.get(1)?.as_str().to_lowercase();
    Some(match word.as_str() {
        "from" | "od" | "von" | "de" | "van" | "da" | "от" | "från" | "fra" => Label::From,
        "date"
        | "sent"
        | "data"
        | "wysłane"
        | "wysłano"
        | "gesendet"
        | "datum"
        | "envoyé"
        | "enviado"
        | "fecha"
        | "отправлено"
        | "дата"
        | "skickat"
        | "sendt" => Label::Date,
        "subject" | "temat" | "betreff" | "objet" | "asunto" | "oggetto" | "assunto" | "тема"
        | "ämne" | "emne" | "onderwerp" => Label::Subject,
        "cc" | "dw" | "kopia" | "kopie" => Label::Cc,
        _ => Label::To,
    })
}

/// One line of a header block as its kind and value: `*From:* Anna <a@x>` gives
/// (`From`, `Anna <a@x>`).
pub(crate) fn field(line: &str) -> Option<(Label, &str)> {
    let kind = label(line)?;
    let (_, value) = line.split_once(':')?;
    Some((kind, value.trim().trim_matches(['*', '_']).trim()))
}

/// A forward's separator line ("---------- Forwarded message ---------").
pub(crate) fn is_forward_separator(line: &str) -> bool {
    let t = line.trim();
    t.len() <= MAX_HEADER_LINE && is_match(&FORWARD, t)
}

/// An inline forward's start: the client's separator line, if it wrote one, and the lines
/// of the header block under it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ForwardStart {
    pub separator: Option<String>,
    pub block: std::ops::Range<usize>,
}

/// If an inline forward starts at line `i`: a separator ("---------- Forwarded
/// message ---------", "Begin forwarded message:") with its header block, or, when
/// `block_alone` (the subject says "FW:"), Outlook's bare "From: … Sent: …" block,
/// with the rule or "-----Original Message-----" line it may have above it. A separator
/// without a header block names no sender: not a forward we can place.
pub(crate) fn forward_start(lines: &[Line], i: usize, block_alone: bool) -> Option<ForwardStart> {
    let t = lines.get(i)?.text.trim();
    if t.is_empty() || t.len() > MAX_HEADER_LINE {
        return None;
    }
    let next_text = || {
        lines[i + 1..]
            .iter()
            .position(|l| !l.text.trim().is_empty())
            .map(|p| i + 1 + p)
    };
    let separated = is_match(&FORWARD, t);
    if separated || (block_alone && (is_rule(t) || is_match(&ORIGINAL, t))) {
        let n = next_text()?;
        let len = header_block(lines, n)?;
        return Some(ForwardStart {
            separator: separated.then(|| t.to_string()),
            block: n..n + len,
        });
    }
    if !block_alone {
        return None;
    }
    let len = header_block(lines, i)?;
    Some(ForwardStart {
        separator: None,
        block: i..i + len,
    })
}

/// At most `n` bytes of `s`, cut on a char boundary.
fn prefix(s: &str, n: usize) -> &str {
    s.get(..s.floor_char_boundary(n.min(s.len()))).unwrap_or("")
}

/// "On … wrote:" in any of its forms (one line, or lines already joined).
pub(super) fn is_on_wrote(s: &str) -> bool {
    is_match(&ON_WROTE, s)
        || (is_match(&WROTE_END, s) && s.chars().any(|c| c.is_ascii_digit() || c == '@'))
}

/// A line of only `_`, `-` or `=` (Outlook puts one above its header block).
fn is_rule(s: &str) -> bool {
    s.len() >= 8 && s.chars().all(|c| matches!(c, '_' | '-' | '=' | '—'))
}

/// If a forward starts at line `i`: how many lines its marker and header block span.
pub(super) fn forward(lines: &[Line], i: usize) -> Option<usize> {
    let t = lines.get(i)?.text.trim();
    if t.len() > MAX_HEADER_LINE || !is_match(&FORWARD, t) {
        return None;
    }
    let next = lines[i + 1..]
        .iter()
        .position(|l| !l.text.trim().is_empty())
        .map(|p| i + 1 + p);
    let block = next.and_then(|n| header_block(lines, n).map(|len| n + len - i));
    Some(block.unwrap_or(1))
}

/// If a reply header starts at line `i`, how many lines it spans.
pub(super) fn splitter(lines: &[Line], i: usize) -> Option<usize> {
    let t = lines.get(i)?.text.trim();
    if t.is_empty() || t.len() > MAX_HEADER_LINE {
        return None;
    }
    if is_match(&ORIGINAL, t) || is_on_wrote(t) {
        return Some(1);
    }
    if is_rule(t) {
        let next = lines[i + 1..]
            .iter()
            .position(|l| !l.text.trim().is_empty())?;
        return header_block(lines, i + 1 + next).map(|_| 1);
    }
    if let Some(n) = header_block(lines, i) {
        return Some(n);
    }
    // "On Tue, 1 Apr 2014 at 10:00, John Smith <\njohn@example.com> wrote:"
    // Starts with "On"/"W dniu"…, breaks off inside "<address>", or has an address or a time.
    let prefixed = t.split_whitespace().next().is_some_and(|w| {
        [
            "on", "le", "am", "w", "dnia", "el", "il", "op", "em", "den", "dne",
        ]
        .contains(&w.to_lowercase().as_str())
    });
    let unfinished = t.ends_with('<');
    let starts_like_header = prefixed
        || unfinished
        || t.contains('@')
        || (t.contains(':') && t.chars().any(|c| c.is_ascii_digit()));
    if !starts_like_header || t.ends_with(['.', '!', '?']) {
        return None;
    }
    let mut joined = t.to_string();
    for k in 1..=2 {
        let next = lines.get(i + k)?.text.trim();
        if next.is_empty() || next.len() > MAX_HEADER_LINE {
            return None;
        }
        // A whole header on the next line is its own; do not pull this line into it.
        if is_on_wrote(next) && !(prefixed || unfinished) {
            return None;
        }
        joined.push(' ');
        joined.push_str(next);
        if is_on_wrote(&joined) {
            return Some(k + 1);
        }
    }
    None
}

/// "From: / Sent: / To: / Subject:" (in any order and language): its length in lines.
fn header_block(lines: &[Line], i: usize) -> Option<usize> {
    label(&lines.get(i)?.text)?;
    let mut seen = Vec::new();
    let mut last = i;
    let mut unlabeled = 0;
    for (j, line) in lines.iter().enumerate().skip(i).take(10) {
        let t = line.text.trim();
        if t.is_empty() {
            break;
        }
        match label(t) {
            Some(l) => {
                if !seen.contains(&l) {
                    seen.push(l);
                }
                last = j;
                unlabeled = 0;
            }
            // A long To: list wraps onto a line of its own.
            None if unlabeled < 2 => unlabeled += 1,
            None => break,
        }
    }
    let others = [Label::Date, Label::To, Label::Subject]
        .iter()
        .filter(|l| seen.contains(l))
        .count();
    (seen.contains(&Label::From) && others >= 2).then_some(last - i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::body::lines::text_lines;

    fn at0(text: &str) -> Option<usize> {
        splitter(&text_lines(text), 0)
    }

    #[test]
    fn regexes_compile() {
        for re in [&ON_WROTE, &WROTE_END, &ORIGINAL, &FORWARD, &LABEL] {
            assert!(re.is_some());
        }
    }

    #[test]
    fn on_wrote_forms() {
        for line in [
            "On Mon, Apr 2, 2012 at 6:26 PM, Megan One <xxx@gmail.com> wrote:",
            "On 04/02/2012 06:26 PM, Megan One wrote:",
            "On Tuesday, April 3, 2012 at 4:55 PM, xxx wrote:",
            "Le 26 juin 2014 à 14:00, Alex <a@example.fr> a écrit :",
            "Am 01.02.2024 um 10:15 schrieb Max Mustermann <max@example.de>:",
            "W dniu 12.03.2024 o 10:15, Jan Kowalski pisze:",
            "W dniu pon., 11 mar 2024 o 09:00 Jan Kowalski <jan@example.pl> napisał(a):",
            "pon., 11 mar 2024 o 09:00 Jan Kowalski <jan@example.pl> napisał(a):",
            "Dnia 11 marca 2024 10:00 Anna Nowak <anna@example.pl> napisała:",
            "Jan Kowalski <jan@example.pl> napisał(a):",
            "02.04.2012 14:20 пользователь \"bob@example.com\" написал:",
            "El lun, 1 ene 2024 a las 10:00, Ana (<ana@example.es>) escribió:",
        ] {
            assert_eq!(at0(line), Some(1), "{line}");
        }
    }

    #[test]
    fn on_wrote_wrapped_over_lines() {
        assert_eq!(
            at0("On Tue, Apr 1, 2014 at 10:00 AM, John Smith <\njohn@example.com> wrote:\n> hi"),
            Some(2)
        );
        assert_eq!(at0("On 26.06.2014 14:41, Alexander L\nwrote:"), Some(2));
        assert_eq!(
            at0("W dniu 12.03.2024 o 10:15, Jan\nKowalski <jan@example.pl>\npisze:"),
            Some(3)
        );
    }

    #[test]
    fn not_headers() {
        for text in [
            "On your remote host you can run:\n\n     telnet 127.0.0.1 52698",
            "One outstanding question I had:",
            "He wrote: nothing",
            "Here is what my colleague wrote:",
            "And here is a fix -- this is not a signature.",
            "From: me, with love",
            "Original message follows below, please read it",
            "line 2\nOn 1.1.2024 X wrote:",
            "Meeting moved to room 4.\nJohn wrote:",
            "Thanks,\nAlex\nOn 26.06.2014 14:41, Alexander L wrote:",
        ] {
            assert_eq!(at0(text), None, "{text}");
        }
    }

    #[test]
    fn original_message_separators() {
        for line in [
            "-----Original Message-----",
            "----- Original Message -----",
            "-------- Original message --------",
            "-----Wiadomość oryginalna-----",
            "------ Oryginalna wiadomość ------",
            "-----Ursprüngliche Nachricht-----",
            "----- Original Nachricht ----",
        ] {
            assert_eq!(at0(line), Some(1), "{line}");
        }
    }

    #[test]
    fn outlook_header_blocks() {
        let en = "From: CRM <crm@example.com>\nSent: Friday, 23 March 2012 5:08 p.m.\nTo: John S. Greene\nSubject: [contact:106] John Greene\n\nbody";
        assert_eq!(at0(en), Some(4));
        let pl = "Od: Jan Kowalski <jan@example.pl>\nWysłane: poniedziałek, 11 marca 2024 09:00\nDo: Pomoc <pomoc@example.pl>\nTemat: Re: [TH#12] Zamówienie";
        assert_eq!(at0(pl), Some(4));
        let bold = "*From:* Jan <jan@example.pl>\n*Sent:* Monday\n*To:* Support\n*Subject:* Hi";
        assert_eq!(at0(bold), Some(4));
        let fr = "De : Jean\nEnvoyé : lundi\nÀ : Support\nObjet : Bonjour";
        assert_eq!(at0(fr), Some(4));
        let hotmail = "Date: Thu, 26 Jun 2014 13:53:45 +0400\nSubject: Test message\nFrom: abc@example.com\nTo: alex.l@example.com";
        assert_eq!(at0(hotmail), Some(4));
        let wrapped_to = "From: a@example.com\nTo: b@example.com, c@example.com,\n d@example.com\nSent: Monday\nSubject: x";
        assert_eq!(at0(wrapped_to), Some(5));
        let rule = "________________________________\nFrom: CRM\nSent: Friday\nTo: John";
        assert_eq!(at0(rule), Some(1));
        // Two labels are not a reply header.
        assert_eq!(at0("From: Jan\nTo: Anna\n\nHello"), None);
    }

    #[test]
    fn forwards() {
        let lines = text_lines(
            "---------- Forwarded message ---------\nFrom: A <a@example.com>\nDate: Mon\nSubject: x\nTo: b@example.com\n\nbody",
        );
        assert_eq!(forward(&lines, 0), Some(5));
        let lines =
            text_lines("-------- Wiadomość przekazana --------\nOd: A\nData: pon\nDo: B\nTemat: x");
        assert_eq!(forward(&lines, 0), Some(5));
        assert_eq!(
            forward(&text_lines("Begin forwarded message:\n\nhello"), 0),
            Some(1)
        );
        assert_eq!(forward(&text_lines("I forwarded the message"), 0), None);
    }

    #[test]
    fn long_lines_are_skipped() {
        let long = format!("On {} wrote:", "x".repeat(MAX_HEADER_LINE));
        assert_eq!(at0(&long), None);
    }
}
