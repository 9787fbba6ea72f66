//! Conformance of `body::extract` against real-world corpora (`corpus::dir()`):
//! quote stripping (talon), body type (zammad), part choice (stalwart
//! mail-parser), and safety of every HTML body we would send.
//!
//! Run with `cargo test --test conformance_body -- --nocapture` to see the figures.

mod corpus;

use mail_parser::MessageParser;
use std::path::{Path, PathBuf};
use thulium_mail_bridge::mail::body::{Body, BodyType, choose, extract, html_to_text};
use thulium_mail_bridge::mail::content::{ContentConfig, Prefer};

/// Files in `dir` whose names end with `suffix`, sorted.
fn files(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    out.retain(|p| p.to_string_lossy().ends_with(suffix));
    out.sort();
    out
}

/// Whitespace-normalized visible text of a body.
fn visible(body: &Body) -> String {
    let text = match body.body_type {
        BodyType::Html => html_to_text(&body.text),
        BodyType::Plain => body.text.clone(),
    };
    words(&text)
}

fn words(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn body_of(raw: &[u8], content: &ContentConfig) -> Option<Body> {
    let msg = MessageParser::default().parse(raw)?;
    Some(extract(&msg, content))
}

/// Prints "name agreed/total" and returns the count that agreed.
fn report(name: &str, agreed: usize, total: usize, misses: &[String]) -> usize {
    println!("{name} {agreed}/{total}");
    for m in misses {
        println!("  differs: {m}");
    }
    agreed
}

#[test]
fn talon_standard_replies() {
    let root = corpus::dir();
    let dir = root.join("talon/tests/fixtures/standard_replies");
    let mails = files(&dir, ".eml");
    // (a) the text part with signatures kept, against talon's expected reply text;
    // (b) defaults (HTML preferred, signatures cut): every reply is just "Hello"
    //     (except where the HTML alternative says something else).
    let text_kept_sig = ContentConfig {
        prefer: Prefer::Plain,
        strip_signatures: false,
        ..ContentConfig::default()
    };
    let (mut text_ok, mut default_ok) = (0, 0);
    let (mut text_miss, mut default_miss) = (Vec::new(), Vec::new());
    for path in &mails {
        let raw = std::fs::read(path).unwrap();
        let stem = path.file_stem().unwrap().to_string_lossy().to_string();
        let expected = std::fs::read_to_string(dir.join(format!("{stem}_reply_text")))
            .map(|t| words(&t))
            .unwrap_or_else(|_| "Hello".to_string());
        let got = body_of(&raw, &text_kept_sig)
            .map(|b| visible(&b))
            .unwrap_or_default();
        if got == expected {
            text_ok += 1;
        } else {
            text_miss.push(format!("{stem}: {got:?} (expected {expected:?})"));
        }
        let got = body_of(&raw, &ContentConfig::default())
            .map(|b| visible(&b))
            .unwrap_or_default();
        // outlook.eml's HTML alternative really says something else than its text part.
        let expected_html = if stem == "outlook" {
            "Allo! Follow up MIME!"
        } else {
            "Hello"
        };
        if got == expected_html {
            default_ok += 1;
        } else {
            default_miss.push(format!("{stem}: {got:?}"));
        }
    }
    let n = mails.len();
    assert!(n >= 12, "expected the 12 talon replies, found {n}");
    let a = report("talon text replies", text_ok, n, &text_miss);
    let b = report(
        "talon replies with defaults (html, signatures cut)",
        default_ok,
        n,
        &default_miss,
    );
    assert_eq!(a, n);
    assert_eq!(b, n);
}

#[test]
fn talon_html_replies() {
    let root = corpus::dir();
    let dir = root.join("talon/tests/fixtures/html_replies");
    let pages = files(&dir, ".html");
    let mut ok = 0;
    let mut misses = Vec::new();
    for path in &pages {
        let html = String::from_utf8_lossy(&std::fs::read(path).unwrap()).into_owned();
        let raw = format!(
            "From: a@example.com\r\nSubject: Re: x\r\nContent-Type: text/html; charset=utf-8\r\n\r\n{html}"
        );
        let got = body_of(raw.as_bytes(), &ContentConfig::default())
            .map(|b| visible(&b))
            .unwrap_or_default();
        if got == "Hi. I am fine. Thanks, Alex" {
            ok += 1;
        } else {
            misses.push(format!("{}: {got:?}", path.display()));
        }
    }
    let n = pages.len();
    assert!(n >= 9, "expected the 9 talon HTML replies, found {n}");
    assert_eq!(report("talon html replies", ok, n, &misses), n);
}

/// Where the zammad mails are: the main set and the newer upstream additions.
fn zammad_dirs(root: &Path) -> Vec<PathBuf> {
    vec![
        root.join("zammad/test/data/mail"),
        root.join("zammad/upstream-additions/test/data/mail"),
    ]
}

#[test]
fn zammad_body_type() {
    let root = corpus::dir();
    let (mut ok, mut total) = (0, 0);
    let mut misses = Vec::new();
    for dir in zammad_dirs(&root) {
        for yml in files(&dir, ".yml") {
            let text = std::fs::read_to_string(&yml).unwrap_or_default();
            // The top-level key (attachments have indented ones of their own).
            let Some(expected) = text.lines().find_map(|l| l.strip_prefix("content_type: ")) else {
                continue;
            };
            let expected = match expected.trim() {
                "text/html" => BodyType::Html,
                "text/plain" => BodyType::Plain,
                _ => continue,
            };
            let Ok(raw) = std::fs::read(yml.with_extension("box")) else {
                continue;
            };
            total += 1;
            match body_of(&raw, &ContentConfig::default()) {
                Some(b) if b.body_type == expected => ok += 1,
                got => misses.push(format!(
                    "{}: {:?} (expected {expected:?})",
                    yml.file_name().unwrap().to_string_lossy(),
                    got.map(|b| b.body_type)
                )),
            }
        }
    }
    assert!(total >= 100, "expected the zammad mails, found {total}");
    report("zammad body type", ok, total, &misses);
    // Every mail agrees but these, each a deliberate difference; a new difference
    // fails, and so does an exception that no longer differs (the list cannot go stale).
    let differing: Vec<&str> = misses.iter().filter_map(|m| m.split(':').next()).collect();
    let accepted: Vec<&str> = ZAMMAD_BODY_TYPE_EXCEPTIONS
        .iter()
        .map(|(f, _)| *f)
        .collect();
    assert_eq!(
        differing, accepted,
        "zammad body type {ok}/{total}: the mails that differ are not the accepted exceptions"
    );
}

/// zammad mails whose body type we choose differently, on purpose.
const ZAMMAD_BODY_TYPE_EXCEPTIONS: &[(&str, &str)] = &[
    (
        "mail026.yml",
        "its HTML shows nothing but a <title>; we send the text alternative",
    ),
    (
        "mail102.yml",
        "text parts with inline images between them; zammad builds HTML to show the \
         images, we send the text (the API takes no images) and list them",
    ),
];

/// The part we should choose per the expected JSON: the HTML body when one of
/// its parts really is HTML, else the text body (text/* parts only).
fn expected_choice(json: &serde_json::Value) -> (BodyType, Vec<u32>) {
    let parts = json["parts"].as_array().cloned().unwrap_or_default();
    let kind = |id: u32| -> Option<String> {
        let body = parts.get(id as usize)?.get("body")?;
        body.as_object()?.keys().next().cloned()
    };
    let list = |key: &str| -> Vec<u32> {
        json[key]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_u64())
                    .map(|v| v as u32)
                    .collect()
            })
            .unwrap_or_default()
    };
    let textual = |ids: Vec<u32>| -> Vec<u32> {
        ids.into_iter()
            .filter(|&id| matches!(kind(id).as_deref(), Some("Text" | "Html")))
            .collect()
    };
    let html = textual(list("html_body"));
    let text = textual(list("text_body"));
    if html.iter().any(|&id| kind(id).as_deref() == Some("Html")) {
        (BodyType::Html, html)
    } else if !text.is_empty() {
        (BodyType::Plain, text)
    } else {
        (BodyType::Plain, html)
    }
}

#[test]
fn stalwart_part_choice() {
    let root = corpus::dir();
    let base = root.join("stalwart-mail-parser/resources/eml");
    let (mut ok, mut total) = (0, 0);
    let mut misses = Vec::new();
    for sub in ["rfc", "legacy", "malformed", "thirdparty"] {
        for eml in files(&base.join(sub), ".eml") {
            let Ok(text) = std::fs::read_to_string(eml.with_extension("json")) else {
                continue;
            };
            let Ok(json) = serde_json::from_str::<serde_json::Value>(&text) else {
                continue;
            };
            let raw = std::fs::read(&eml).unwrap();
            let Some(msg) = MessageParser::default().parse(&raw[..]) else {
                continue;
            };
            total += 1;
            let expected = expected_choice(&json);
            let choice = choose(&msg, Prefer::Html);
            let body = extract(&msg, &ContentConfig::default());
            let agrees = (choice.body_type, choice.parts.clone()) == expected
                && (choice.parts.is_empty() || body.body_type == expected.0);
            if agrees {
                ok += 1;
            } else {
                misses.push(format!(
                    "{sub}/{}: {:?} {:?} (expected {:?})",
                    eml.file_name().unwrap().to_string_lossy(),
                    choice.body_type,
                    choice.parts,
                    expected
                ));
            }
        }
    }
    assert!(total >= 100, "expected the stalwart mails, found {total}");
    let agreed = report("stalwart part choice", ok, total, &misses);
    assert_eq!(agreed, total);
}

/// What a sanitized fragment must never contain.
fn unsafe_html(html: &str) -> Option<String> {
    let lower = html.to_ascii_lowercase();
    for bad in [
        "<script", "<style", "<iframe", "<object", "<embed", "<form", "<html", "<head", "<body",
    ] {
        if lower.contains(bad) {
            return Some(bad.to_string());
        }
    }
    let handler = regex::Regex::new(r#"(?i)<[a-z][^>]*\son[a-z]+\s*="#).unwrap();
    let url =
        regex::Regex::new(r#"(?i)(?:href|src)\s*=\s*["']?\s*(?:javascript|data|vbscript|cid):"#)
            .unwrap();
    handler
        .find(html)
        .or_else(|| url.find(html))
        .map(|m| m.as_str().chars().take(80).collect())
}

#[test]
fn every_corpus_mail_gives_a_safe_body() {
    let root = corpus::dir();
    let index = std::fs::read_to_string(root.join("INDEX.tsv")).unwrap_or_default();
    let (mut total, mut html) = (0, 0);
    let mut problems = Vec::new();
    let started = std::time::Instant::now();
    for row in index.lines().skip(1) {
        let cols: Vec<&str> = row.split('\t').collect();
        let [corpus_name, path, kind, ..] = cols[..] else {
            continue;
        };
        if kind != "raw-mail" {
            continue;
        }
        let Ok(raw) = std::fs::read(root.join(corpus_name).join(path)) else {
            continue;
        };
        let Some(msg) = MessageParser::default().parse(&raw[..]) else {
            continue;
        };
        total += 1;
        for content in [
            ContentConfig::default(),
            ContentConfig {
                prefer: Prefer::Plain,
                ..ContentConfig::default()
            },
        ] {
            let body = extract(&msg, &content);
            if body.text.len() as u64 > content.max_body_size.bytes() {
                problems.push(format!("{corpus_name}/{path}: {} bytes", body.text.len()));
            }
            if body.body_type == BodyType::Html {
                html += 1;
                if let Some(bad) = unsafe_html(&body.text) {
                    problems.push(format!("{corpus_name}/{path}: {bad}"));
                }
            }
        }
    }
    println!(
        "corpus mails extracted safely {}/{total} ({html} HTML bodies) in {:?}",
        total - problems.len().min(total),
        started.elapsed()
    );
    for p in &problems {
        println!("  problem: {p}");
    }
    assert!(
        total >= 1000,
        "expected the whole corpus, found {total} mails"
    );
    assert!(problems.is_empty());
}

/// How long it takes is `benches/decide.rs`'s business (it decides this file too).
#[test]
fn long_quote_is_cut_at_max_body_size() {
    let path = corpus::file("github-email_reply_parser/test/emails/email_long_quote.txt");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let raw = format!(
        "From: a@example.com\r\nSubject: x\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{text}"
    );
    let content = ContentConfig::default();
    let body = body_of(raw.as_bytes(), &content).unwrap();
    // Its `>` lines are interleaved with text, so nothing is cut as a quote; it is
    // over max_body_size and cut there instead.
    assert!(body.text.starts_with("Hi folks"));
    assert!(body.text.len() as u64 <= content.max_body_size.bytes());
    assert!(
        body.text
            .contains("message truncated by thulium-mail-bridge")
    );
}
