//! `decide` over every raw mail of the real-world corpora (`tests/corpus`), plus the
//! 767 KB long-quote body fixture wrapped in minimal headers.
//!
//! Each mail is benchmarked with its subject rewritten to carry a ticket tag (`[#1]`)
//! and with a fixed INTERNALDATE, so it goes all the way through body extraction,
//! quote and signature stripping and sanitizing, as a customer reply does in the
//! daemon. Mails that the filters stop (bounces, auto-replies) stop early, as they
//! do in production.
//!
//! Besides criterion's output it prints a per-mail summary (median of several timed
//! passes for each mail): mails/s, median, p99, max, the five slowest mails, and one
//! JSON line for scripts:
//!
//! `{"bench":"decide","mails":N,"mails_per_s":..,"median_us":..,"p99_us":..,"max_us":..,"slowest":"path"}`
//!
//! Targets: median under 500 µs, no mail over 100 ms.
//!
//! `cargo bench --bench decide`; `cargo bench --bench decide -- --quick` for a shorter
//! criterion run. Without `--bench` (as `cargo test --benches` runs it) each mail is
//! decided once and nothing is timed.

use chrono::{DateTime, FixedOffset};
use criterion::{Criterion, Throughput};
use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};
use thulium_mail_bridge::config::default_rules;
use thulium_mail_bridge::mail::decide::{Action, NoReferences, Rules, decide};

/// Where the conformance tests find the corpus: one lookup for both.
#[path = "../tests/corpus/mod.rs"]
mod corpus;

/// Timed passes over the whole set for the per-mail summary.
const PASSES: usize = 7;
const TARGET_MEDIAN_US: f64 = 500.0;
const TARGET_MAX_US: f64 = 100_000.0;
const LONG_QUOTE: &str = "github-email_reply_parser/test/emails/email_long_quote.txt";

struct Mail {
    /// Relative to the corpus folder (or `builtin/...`).
    name: String,
    raw: Vec<u8>,
}

/// The subject rewritten to carry a ticket tag, as a customer's reply would.
fn tagged(raw: &[u8]) -> Vec<u8> {
    // Old Mac mails end lines with CR alone; keep their line ending for the new header.
    let eol: &[u8] = if raw.contains(&b'\r') && !raw.contains(&b'\n') {
        b"\r"
    } else {
        b"\r\n"
    };
    let mut out = b"Subject: Re: [#1] tagged for the benchmark".to_vec();
    out.extend_from_slice(eol);
    let mut in_subject = false;
    for line in raw.split_inclusive(|&b| b == b'\n' || (eol == b"\r" && b == b'\r')) {
        if line.to_ascii_lowercase().starts_with(b"subject:") {
            in_subject = true;
            continue;
        }
        if in_subject && (line.starts_with(b" ") || line.starts_with(b"\t")) {
            continue;
        }
        in_subject = false;
        out.extend_from_slice(line);
    }
    out
}

fn wrap_body(body: &[u8]) -> Vec<u8> {
    let mut raw = b"From: Anna Nowak <anna@customer.example>\r\n\
To: support@helpdesk.example\r\n\
Subject: Re: [#1] Clearing a Riak bucket\r\n\
Date: Tue, 04 Mar 2025 10:15:00 +0100\r\n\
Message-ID: <long-quote@customer.example>\r\n\
MIME-Version: 1.0\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Transfer-Encoding: 8bit\r\n\r\n"
        .to_vec();
    raw.extend_from_slice(body);
    raw
}

fn corpus_mails(dir: &Path) -> Vec<Mail> {
    let index = std::fs::read_to_string(dir.join("INDEX.tsv")).expect("INDEX.tsv");
    let mut mails: Vec<Mail> = index
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f.len() >= 3 && f[2] == "raw-mail").then(|| format!("{}/{}", f[0], f[1]))
        })
        .map(|name| {
            let raw = std::fs::read(dir.join(&name)).unwrap_or_else(|e| panic!("{name}: {e}"));
            Mail {
                raw: tagged(&raw),
                name,
            }
        })
        .collect();
    match std::fs::read(dir.join(LONG_QUOTE)) {
        Ok(body) => mails.push(Mail {
            name: LONG_QUOTE.to_string(),
            raw: wrap_body(&body),
        }),
        Err(e) => println!("decide bench: {LONG_QUOTE}: {e}; benchmarked without it"),
    }
    mails
}

fn builtin_mails() -> Vec<Mail> {
    let plain = b"From: Anna <anna@customer.example>\r\n\
Subject: Re: [#1] Invoice\r\n\
Date: Tue, 04 Mar 2025 10:15:00 +0100\r\n\
Message-ID: <plain@customer.example>\r\n\
Content-Type: text/plain; charset=utf-8\r\n\r\n\
Thanks, that works.\r\n\r\n\
Anna\r\n-- \r\nAnna Nowak, Customer Ltd.\r\n\r\n\
On Mon, 3 Mar 2025 at 09:00, Support <support@helpdesk.example> wrote:\r\n\
> Please try again.\r\n> Regards\r\n"
        .to_vec();
    let html = b"From: Anna <anna@customer.example>\r\n\
Subject: RE: [TH#2] Login\r\n\
Date: Tue, 04 Mar 2025 10:15:00 +0100\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/alternative; boundary=\"b1\"\r\n\r\n\
--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nIt works now.\r\n\
--b1\r\nContent-Type: text/html; charset=utf-8\r\n\r\n\
<html><body><p>It works <b>now</b>.</p><img src=\"https://tracker.example/x.png\">\
<div class=\"gmail_quote\">On Mon wrote:<blockquote>Try again</blockquote></div>\
<script>alert(1)</script></body></html>\r\n--b1--\r\n"
        .to_vec();
    let auto = b"From: Anna <anna@customer.example>\r\n\
Subject: Out of office: [#3] Login\r\n\
Auto-Submitted: auto-replied\r\n\
Date: Tue, 04 Mar 2025 10:15:00 +0100\r\n\r\nI am away until Monday.\r\n"
        .to_vec();
    let quote = format!(
        "Hi,\n\nsee below.\n\n{}",
        "> > > an old quoted line of a long thread\n".repeat(5000)
    );
    vec![
        Mail {
            name: "builtin/plain".into(),
            raw: plain,
        },
        Mail {
            name: "builtin/html".into(),
            raw: html,
        },
        Mail {
            name: "builtin/auto-reply".into(),
            raw: auto,
        },
        Mail {
            name: "builtin/long-quote".into(),
            raw: wrap_body(quote.as_bytes()),
        },
    ]
}

fn internal_date() -> Option<DateTime<FixedOffset>> {
    DateTime::parse_from_rfc3339("2025-03-04T10:15:30+01:00").ok()
}

fn run(mail: &Mail, rules: &Rules) -> bool {
    let d = decide(
        black_box(&mail.raw),
        rules,
        &NoReferences,
        black_box(internal_date()),
    );
    matches!(black_box(d).action, Action::Post { .. })
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    // Nearest rank.
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Per-mail timings: the median over `PASSES` passes of each mail; the pass wall time.
fn summary(mails: &[Mail], rules: &Rules) -> String {
    // Warm-up pass (page cache, allocator, lazily built regexes).
    let posts = mails.iter().filter(|m| run(m, rules)).count();
    let mut per_mail: Vec<Vec<Duration>> = vec![Vec::with_capacity(PASSES); mails.len()];
    let mut pass_times = Vec::with_capacity(PASSES);
    for _ in 0..PASSES {
        let pass = Instant::now();
        for (i, mail) in mails.iter().enumerate() {
            let t = Instant::now();
            run(mail, rules);
            per_mail[i].push(t.elapsed());
        }
        pass_times.push(pass.elapsed());
    }
    let medians: Vec<Duration> = per_mail
        .iter_mut()
        .map(|t| {
            t.sort();
            t[t.len() / 2]
        })
        .collect();
    pass_times.sort();
    let pass = pass_times[pass_times.len() / 2];
    let mails_per_s = mails.len() as f64 / pass.as_secs_f64();

    let mut sorted = medians.clone();
    sorted.sort();
    let median = percentile(&sorted, 50.0);
    let p99 = percentile(&sorted, 99.0);
    let max = *sorted.last().unwrap();
    let mut by_time: Vec<(usize, Duration)> = medians.iter().copied().enumerate().collect();
    by_time.sort_by_key(|&(_, t)| std::cmp::Reverse(t));

    let mut out = String::new();
    use std::fmt::Write;
    let _ = writeln!(out, "\n== decide: per-mail summary ==");
    let _ = writeln!(
        out,
        "mails: {} ({posts} posted, {} skipped); median of {PASSES} passes per mail",
        mails.len(),
        mails.len() - posts
    );
    let _ = writeln!(
        out,
        "throughput: {mails_per_s:.0} mails/s (one pass over all mails: {:.1} ms)",
        pass.as_secs_f64() * 1e3
    );
    let _ = writeln!(
        out,
        "per mail: median {:.1} µs, p99 {:.1} µs, max {:.1} µs",
        us(median),
        us(p99),
        us(max)
    );
    let _ = writeln!(out, "slowest:");
    for (i, t) in by_time.iter().take(5) {
        let _ = writeln!(
            out,
            "  {:>10.1} µs  {:>9} B  {}",
            us(*t),
            mails[*i].raw.len(),
            mails[*i].name
        );
    }
    if let Some(i) = mails.iter().position(|m| m.name == LONG_QUOTE) {
        let _ = writeln!(
            out,
            "long quote: {:.1} µs ({} B, {})",
            us(medians[i]),
            mails[i].raw.len(),
            LONG_QUOTE
        );
    }
    let ok_median = us(median) < TARGET_MEDIAN_US;
    let ok_max = us(max) < TARGET_MAX_US;
    let _ = writeln!(
        out,
        "targets: median < {TARGET_MEDIAN_US} µs: {}; max < {} ms: {}",
        if ok_median { "met" } else { "MISSED" },
        TARGET_MAX_US / 1e3,
        if ok_max { "met" } else { "MISSED" },
    );
    // Keys in a fixed order (serde_json's map would sort them).
    let _ = writeln!(
        out,
        "{{\"bench\":\"decide\",\"mails\":{},\"mails_per_s\":{:.1},\"median_us\":{:.1},\"p99_us\":{:.1},\"max_us\":{:.1},\"slowest\":{}}}",
        mails.len(),
        mails_per_s,
        us(median),
        us(p99),
        us(max),
        serde_json::Value::from(mails[by_time[0].0].name.as_str()),
    );
    out
}

fn main() {
    let rules = default_rules().expect("default rules");
    let mails = match corpus::find() {
        Some(dir) => corpus_mails(&dir),
        None => {
            println!(
                "decide bench: no corpus (scripts/fetch-corpus.sh); benchmarking built-in mails only"
            );
            builtin_mails()
        }
    };
    let timing = std::env::args().any(|a| a == "--bench");
    if !timing {
        // `cargo test --benches`: decide each mail once, no timing.
        let posts = mails.iter().filter(|m| run(m, &rules)).count();
        println!(
            "decide bench (test mode): {} mails, {posts} posted",
            mails.len()
        );
        return;
    }

    let report = summary(&mails, &rules);

    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .configure_from_args();
    {
        let mut g = c.benchmark_group("decide");
        g.throughput(Throughput::Elements(mails.len() as u64));
        g.bench_function("all_mails", |b| {
            b.iter(|| mails.iter().filter(|m| run(m, &rules)).count())
        });
        g.finish();
    }
    {
        let mut g = c.benchmark_group("decide_one");
        let long = mails
            .iter()
            .find(|m| m.name.contains("long_quote") || m.name.ends_with("long-quote"));
        let largest = mails.iter().max_by_key(|m| m.raw.len());
        for (label, mail) in [("long_quote", long), ("largest", largest)] {
            let Some(mail) = mail else { continue };
            g.throughput(Throughput::Bytes(mail.raw.len() as u64));
            g.bench_function(label, |b| b.iter(|| run(mail, &rules)));
        }
        g.finish();
    }
    c.final_summary();

    print!("{report}");
}
