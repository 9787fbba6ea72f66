//! `status`: how the running daemon is doing, on one screen, read from its `[metrics]`
//! listener (and the ledger for the last hour). Exit 1 when something is down.

use crate::config::Config;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// One sample: metric name, labels, value.
type Sample = (String, BTreeMap<String, String>, f64);

pub(crate) fn run(config: &Config) -> anyhow::Result<bool> {
    let Some(addr) = config.metrics.listen else {
        println!(
            "status reads the running daemon's [metrics] listener, and this config has none:\n  add\n    [metrics]\n    listen = \"127.0.0.1:9898\"\n  and reload the daemon (systemctl reload thulium-mail-bridge)"
        );
        return Ok(false);
    };
    let (metrics, health) = match (get(addr, "/metrics"), get(addr, "/healthz")) {
        (Ok((_, m)), Ok((code, h))) => (m, (code, h)),
        (Err(e), _) | (_, Err(e)) => {
            println!(
                "the daemon does not answer on {addr} ({e}): is it running? (systemctl status thulium-mail-bridge)"
            );
            return Ok(false);
        }
    };
    let samples = Samples(parse(&metrics));
    let problems = down_problems(&health.1);
    println!("thulium-mail-bridge on {addr}");
    let api_up = samples.value("thulium_bridge_api_up", None).unwrap_or(1.0) >= 1.0;
    let mut down = !api_up;
    println!(
        "  API          {}",
        if api_up {
            "up"
        } else {
            "DOWN (failing for every request)"
        }
    );
    let mailboxes: Vec<String> = samples
        .0
        .iter()
        .filter(|(n, _, _)| n == "thulium_bridge_mailbox_up")
        .filter_map(|(_, l, _)| l.get("mailbox").cloned())
        .collect();
    for mb in &mailboxes {
        let (line, up) = mailbox_line(&samples, mb, problems.get(mb.as_str()));
        down |= !up;
        println!("{line}");
    }
    if mailboxes.is_empty() {
        println!("  no mailbox has reported yet (starting?)");
    }
    match crate::ledger::Ledger::open_configured(&config.state) {
        Ok(ledger) => ledger_lines(&ledger),
        Err(e) => println!("  last hour    unknown ({e})"),
    }
    let (code, body) = health;
    println!("  health       {code} {}", body.trim());
    Ok(!down && code == 200)
}

/// Failures in the last hour and, on a shared ledger, which instance leads which
/// mailbox since when.
fn ledger_lines(ledger: &crate::ledger::Ledger) {
    match futures::executor::block_on(ledger.failed_since(3600)) {
        Ok(n) => println!("  last hour    {n} mail(s) failed (ledger)"),
        Err(e) => println!("  last hour    unknown ({e})"),
    }
    match futures::executor::block_on(ledger.leases()) {
        Ok(leases) => {
            for l in leases {
                println!("  lease        {}", l.describe());
            }
        }
        Err(e) => println!("  leases       unknown ({e})"),
    }
}

/// The samples of one `/metrics` answer.
struct Samples(Vec<Sample>);

impl Samples {
    /// The sum of `name`'s samples (with `label`, when given).
    fn value(&self, name: &str, label: Option<(&str, &str)>) -> Option<f64> {
        self.0
            .iter()
            .filter(|(n, labels, _)| {
                n == name && label.is_none_or(|(k, v)| labels.get(k).is_some_and(|l| l == v))
            })
            .map(|(_, _, v)| *v)
            .reduce(|a, b| a + b)
    }

    /// How many mails of `mailbox` had `outcome` since start.
    fn count(&self, mailbox: &str, outcome: &str) -> u64 {
        self.0
            .iter()
            .filter(|(n, l, _)| {
                n == "thulium_bridge_mails_total"
                    && l.get("mailbox").map(String::as_str) == Some(mailbox)
                    && l.get("outcome").map(String::as_str) == Some(outcome)
            })
            .map(|(_, _, v)| *v)
            .sum::<f64>() as u64
    }
}

/// One mailbox's line, and whether it is up.
fn mailbox_line(samples: &Samples, mb: &str, problem: Option<&String>) -> (String, bool) {
    let of = Some(("mailbox", mb));
    let up = samples
        .value("thulium_bridge_mailbox_up", of)
        .unwrap_or(0.0)
        >= 1.0;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let ago = |t: f64| humantime::format_duration(Duration::from_secs((now - t).max(0.0) as u64));
    let last = samples
        .value("thulium_bridge_last_success_timestamp_seconds", of)
        .map(|t| format!("last good pass {} ago", ago(t)))
        .unwrap_or_else(|| "no good pass yet".into());
    let waiting = samples
        .value("thulium_bridge_waiting_mails", of)
        .unwrap_or(0.0) as u64;
    let oldest = samples
        .value("thulium_bridge_oldest_waiting_seconds", of)
        .unwrap_or(0.0);
    let oldest = if waiting > 0 {
        format!(
            " (oldest {})",
            humantime::format_duration(Duration::from_secs(oldest as u64))
        )
    } else {
        String::new()
    };
    let line = format!(
        "  mailbox {mb:<12} {}{}  {last}; {waiting} waiting{oldest}; since start: {} posted, {} new tickets, {} failed, {} unverified",
        if up { "up  " } else { "DOWN" },
        problem.map(|p| format!(" ({p})")).unwrap_or_default(),
        samples.count(mb, "posted"),
        samples.count(mb, "new_ticket"),
        samples.count(mb, "failed"),
        samples.count(mb, "unverified"),
    );
    (line, up)
}

/// What `/healthz` says of each mailbox that is down: its kind of problem.
fn down_problems(health: &str) -> BTreeMap<String, String> {
    let body: serde_json::Value = serde_json::from_str(health).unwrap_or_default();
    body["down"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| {
            Some((
                d["mailbox"].as_str()?.to_string(),
                d["problem"].as_str()?.to_string(),
            ))
        })
        .collect()
}

/// A plain HTTP/1.1 GET to the daemon's own listener: status and body.
fn get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(3))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut answer = String::new();
    stream.take(16 << 20).read_to_string(&mut answer)?;
    let code = answer
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    Ok((code, body.to_string()))
}

/// The samples of a Prometheus text exposition (comments and histograms' buckets too).
pub(crate) fn parse(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let value: f64 = value.trim().parse().ok()?;
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            let labels = labels
                .split(',')
                .filter_map(|kv| {
                    let (k, v) = kv.split_once('=')?;
                    Some((k.trim().to_string(), v.trim().trim_matches('"').to_string()))
                })
                .collect();
            Some((name.to_string(), labels, value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_text_is_read() {
        let text = "# HELP x\n# TYPE thulium_bridge_mails_total counter\nthulium_bridge_mails_total{mailbox=\"support\",outcome=\"posted\"} 12\nthulium_bridge_api_up 1\n";
        let s = parse(text);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].0, "thulium_bridge_mails_total");
        assert_eq!(s[0].1.get("outcome").map(String::as_str), Some("posted"));
        assert_eq!(s[0].2, 12.0);
        assert_eq!(s[1], ("thulium_bridge_api_up".into(), BTreeMap::new(), 1.0));
    }
}
