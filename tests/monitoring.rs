//! The alert rules and the dashboard in monitoring/: the rules pass `promtool check` and
//! their unit tests, and every metric they or the dashboard query is one the real binary
//! exports.

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use support::*;

fn monitoring() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("monitoring")
}

/// promtool from $PROMTOOL, the PATH, or where scripts/test.sh unpacks it.
fn promtool() -> PathBuf {
    let candidates = [
        std::env::var_os("PROMTOOL").map(PathBuf::from),
        Some(PathBuf::from("/usr/bin/promtool")),
        Some(PathBuf::from(
            "/var/cache/thulium-mail-bridge-testbed/prometheus/usr/bin/promtool",
        )),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("promtool not found: scripts/test.sh unpacks Debian's prometheus package for it (or set PROMTOOL)")
        })
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?}:\n{text}");
    text
}

#[test]
fn the_alert_rules_are_valid_and_fire_on_their_synthetic_series() {
    let checked = run(Command::new(promtool())
        .args(["check", "rules"])
        .arg(monitoring().join("alerts.yml")));
    assert!(checked.contains("SUCCESS: 7 rules found"), "{checked}");
    let tested = run(Command::new(promtool()).current_dir(monitoring()).args([
        "test",
        "rules",
        "alerts.test.yml",
    ]));
    assert!(tested.contains("SUCCESS"), "{tested}");
}

/// Every `thulium_bridge_*` name in a text.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("thulium_bridge_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.insert(tail[..end].to_string());
        rest = &tail[end..];
    }
    names
}

/// On a shared ledger, so that the leadership metrics are there too.
#[tokio::test(flavor = "multi_thread")]
async fn every_metric_the_rules_and_dashboard_query_is_exported() {
    on_postgres(every_metric_queried_is_exported()).await
}

async fn every_metric_queried_is_exported() {
    let queried: BTreeSet<String> = [
        std::fs::read_to_string(monitoring().join("alerts.yml")).expect("rules"),
        std::fs::read_to_string(monitoring().join("dashboard.json")).expect("dashboard"),
    ]
    .iter()
    .flat_map(|t| metric_names(t))
    .collect();
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(monitoring().join("dashboard.json")).expect("dashboard"),
    )
    .expect("the dashboard is JSON");
    assert!(dashboard["panels"].as_array().is_some_and(|p| p.len() >= 8));

    let w = World::start().await;
    w.api.add_ticket(1, CUSTOMER);
    w.append(&reply(1, 1, "posted"));
    w.append(&reply(404, 1, "ticket does not exist: failed"));
    let port = free_port();
    let config = w.config_with_metrics(port);
    let log = w.dir.path().join("run.log");
    let mut child = spawn_run(&config, &log);
    let exported = probe_until(
        WAIT,
        || async { metric_names(&metrics(port).await) },
        |exported| queried.iter().all(|q| exported.contains(q)),
    )
    .await;
    terminate_ok(&mut child, &log).await;
    let complete = exported.is_ok();
    let exported = exported.unwrap_or_else(|last| last);
    let missing: Vec<&String> = queried.difference(&exported).collect();
    assert!(
        complete,
        "queried but not exported: {missing:?}\nexported: {exported:?}\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
}
