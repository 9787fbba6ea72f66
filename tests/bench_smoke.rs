//! A small run of the end-to-end benchmark (`scripts/bench.sh --smoke`), so it cannot
//! rot: 200 replies through `once`, 5 through `run` in IDLE, one new ticket with a
//! 64 KiB attachment and one reply with a 256 KiB attachment in each of 2 mailboxes,
//! each checked by the driver itself (posted exactly once, per-ticket order, disposed,
//! the ledger agreeing; the file arriving unchanged).
//! Figures are printed, never asserted: performance is the benchmark's business.

use std::path::Path;
use std::process::Command;

#[test]
fn the_benchmark_driver_posts_every_mail_exactly_once() {
    let bridge = Path::new(env!("CARGO_BIN_EXE_thulium-mail-bridge"));
    // The driver lives in the testbed crate; build it the way this test run was built.
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = Command::new(cargo);
    build.args(["build", "--quiet", "--workspace", "--bin", "bench"]);
    if bridge.parent().and_then(|d| d.file_name()) == Some("release".as_ref()) {
        build.arg("--release");
    }
    let status = build.status().expect("cargo runs");
    assert!(status.success(), "building the bench driver failed");
    let driver = bridge.with_file_name("bench");

    let out = Command::new(&driver)
        .arg("--smoke")
        .arg("--bridge")
        .arg(bridge)
        .env_remove("RUST_LOG")
        .output()
        .expect("the bench driver runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "{}\nstderr:\n{}",
        stdout,
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    let scenario = |name: &str| {
        lines
            .iter()
            .find(|v| v["scenario"] == name)
            .unwrap_or_else(|| panic!("no JSON line for {name}:\n{stdout}"))
    };
    let once = scenario("smoke");
    assert_eq!(
        (once["n"].as_u64(), once["posted"].as_u64()),
        (Some(200), Some(200))
    );
    assert_eq!(once["ok"], true, "{once}");
    for key in [
        "wall_s",
        "mails_per_s",
        "cpu_s",
        "peak_rss_mib",
        "api_ceiling_rps",
    ] {
        assert!(once[key].as_f64().is_some_and(|v| v > 0.0), "{key}: {once}");
    }
    let idle = scenario("smoke-idle");
    // Five mails and the warm-up one.
    assert_eq!(idle["posted"].as_u64(), Some(6), "{idle}");
    assert_eq!(idle["ok"], true, "{idle}");
    assert!(idle["p50_ms"].as_f64().is_some(), "{idle}");
    let upload = scenario("smoke-upload");
    assert_eq!(upload["posted"].as_u64(), Some(1), "{upload}");
    assert_eq!(upload["ok"], true, "{upload}");
    assert_eq!(
        upload["attachment_bytes"].as_u64(),
        Some(64 << 10),
        "{upload}"
    );
    assert!(
        upload["peak_rss_mib"].as_f64().is_some_and(|v| v > 0.0),
        "{upload}"
    );
    let big = scenario("smoke-big");
    assert_eq!(
        (big["mailboxes"].as_u64(), big["posted"].as_u64()),
        (Some(2), Some(2)),
        "{big}"
    );
    assert_eq!(big["ok"], true, "{big}");
}
