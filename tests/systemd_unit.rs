//! The systemd unit in `systemd/`: `systemd-analyze verify` has nothing to say
//! about it and `systemd-analyze security --offline=yes` rates its sandbox at
//! an overall exposure of 1.5 or lower.
//!
//! Needs `systemd-analyze` (Debian package `systemd`; systemd 252 or later) and
//! fails, rather than skips, without it. It starts nothing: both commands only
//! read unit files.
//!
//! `verify` checks that every `Exec*=` binary exists. The unit's
//! `ExecStart=/usr/bin/thulium-mail-bridge` exists only once the package is
//! installed, so `verify` runs on a copy of the unit, in a temp dir, whose
//! `ExecStart=` names the binary Cargo built for this test
//! (`CARGO_BIN_EXE_thulium-mail-bridge`); nothing else is changed. By hand:
//!
//! ```sh
//! d=$(mktemp -d)
//! sed "s|^ExecStart=/usr/bin/|ExecStart=$PWD/target/debug/|" \
//!     systemd/thulium-mail-bridge.service > "$d/thulium-mail-bridge.service"
//! systemd-analyze verify "$d/thulium-mail-bridge.service"
//! systemd-analyze security --offline=yes systemd/thulium-mail-bridge.service
//! ```

use std::path::{Path, PathBuf};
use std::process::Command;

const UNIT: &str = "thulium-mail-bridge.service";
const MAX_EXPOSURE: f64 = 1.5;
const EXEC_START: &str =
    "ExecStart=/usr/bin/thulium-mail-bridge --config /etc/thulium-mail-bridge/config.toml run";

fn unit_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("systemd")
        .join(UNIT)
}

fn unit_text() -> String {
    let path = unit_path();
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

struct Output {
    success: bool,
    /// stdout and stderr together: verify reports problems on stderr and still exits 0.
    text: String,
}

fn systemd_analyze(args: &[&str]) -> Output {
    let out = Command::new("systemd-analyze")
        .args(args)
        .env("SYSTEMD_PAGER", "cat")
        .env("SYSTEMD_COLORS", "0")
        .env("SYSTEMD_LOG_COLOR", "0")
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run systemd-analyze ({e}): these tests need it; install the Debian package \
                 `systemd` (apt-get install systemd), as scripts/test.sh does"
            )
        });
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    Output {
        success: out.status.success(),
        text,
    }
}

/// The unit with `ExecStart=` pointing at the freshly built binary, written to a temp dir.
fn unit_copy_for_verify(dir: &Path, unit: &str) -> PathBuf {
    let bin = env!("CARGO_BIN_EXE_thulium-mail-bridge");
    assert!(
        !bin.contains(char::is_whitespace) && !bin.contains('%'),
        "the binary's path {bin:?} cannot stand unquoted in a unit file"
    );
    let lines: Vec<String> = unit
        .lines()
        .map(
            |line| match line.strip_prefix("ExecStart=/usr/bin/thulium-mail-bridge ") {
                Some(args) => format!("ExecStart={bin} {args}"),
                None => line.to_owned(),
            },
        )
        .collect();
    let path = dir.join(UNIT);
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

/// Lines of `verify`'s output about our unit (its name is in every message about
/// it, as in `…/thulium-mail-bridge.service:52: Unknown key …`).
fn verify_complaints(unit_file: &Path) -> Vec<String> {
    let out = systemd_analyze(&["verify", unit_file.to_str().unwrap()]);
    println!("systemd-analyze verify output:\n{}", out.text);
    let mut complaints: Vec<String> = out
        .text
        .lines()
        .filter(|l| l.contains("thulium-mail-bridge"))
        .map(str::to_owned)
        .collect();
    if !out.success {
        complaints.push("systemd-analyze verify exited non-zero".to_owned());
    }
    complaints
}

/// "→ Overall exposure level for thulium-mail-bridge.service: 1.1 OK 🙂" → 1.1
fn overall_exposure(output: &str) -> Option<f64> {
    let line = output
        .lines()
        .find(|l| l.contains("Overall exposure level for"))?;
    let (_, rest) = line.rsplit_once(": ")?;
    rest.split_whitespace().next()?.parse().ok()
}

#[test]
fn the_unit_runs_the_daemon_as_the_package_installs_it() {
    let unit = unit_text();
    // The parts other code and docs rely on: the daemon speaks sd_notify (READY,
    // WATCHDOG, RELOADING), reloads on SIGHUP, finds its secrets through
    // $CREDENTIALS_DIRECTORY and keeps its ledger in the default state.dir.
    for line in [
        "Type=notify",
        "NotifyAccess=main",
        EXEC_START,
        "ExecReload=/bin/kill -HUP $MAINPID",
        "WatchdogSec=60s",
        "DynamicUser=yes",
        "StateDirectory=thulium-mail-bridge",
        "ConfigurationDirectory=thulium-mail-bridge",
        "LoadCredential=api_password:/etc/thulium-mail-bridge/api_password",
    ] {
        assert!(
            unit.lines().any(|l| l == line),
            "{}: no line `{line}`",
            unit_path().display()
        );
    }
}

#[test]
fn systemd_analyze_verify_is_clean() {
    let dir = tempfile::tempdir().unwrap();
    let copy = unit_copy_for_verify(dir.path(), &unit_text());
    let complaints = verify_complaints(&copy);
    assert!(
        complaints.is_empty(),
        "systemd-analyze verify complains about {}:\n{}",
        unit_path().display(),
        complaints.join("\n")
    );
}

/// Guards the test above: verify exits 0 even on a broken unit, so the check
/// reads its output; make sure that output still names the unit.
#[test]
fn systemd_analyze_verify_would_catch_a_broken_unit() {
    let dir = tempfile::tempdir().unwrap();
    let broken = unit_text().replace("ProtectSystem=strict", "ProtectSytem=strict");
    let copy = unit_copy_for_verify(dir.path(), &broken);
    let complaints = verify_complaints(&copy);
    assert!(
        complaints.iter().any(|l| l.contains("ProtectSytem")),
        "systemd-analyze verify did not report an unknown key; the check cannot be trusted"
    );
}

#[test]
fn systemd_analyze_security_exposure_is_at_most_1_5() {
    let unit = unit_path();
    let out = systemd_analyze(&["security", "--offline=yes", unit.to_str().unwrap()]);
    println!("{}", out.text);
    assert!(
        out.success,
        "systemd-analyze security --offline=yes {} failed:\n{}",
        unit.display(),
        out.text
    );
    let exposure = overall_exposure(&out.text).unwrap_or_else(|| {
        panic!(
            "no \"Overall exposure level\" in systemd-analyze security's output:\n{}",
            out.text
        )
    });
    println!("overall exposure of {UNIT}: {exposure} (at most {MAX_EXPOSURE})");
    assert!(
        exposure <= MAX_EXPOSURE,
        "{UNIT}: overall exposure {exposure} is above {MAX_EXPOSURE}; see the ✗ lines above"
    );
}

#[test]
fn overall_exposure_is_parsed() {
    assert_eq!(
        overall_exposure(
            "x\n→ Overall exposure level for thulium-mail-bridge.service: 1.1 OK 🙂\n"
        ),
        Some(1.1)
    );
    assert_eq!(
        overall_exposure("-> Overall exposure level for a.service: 9.6 UNSAFE :-{"),
        Some(9.6)
    );
    assert_eq!(overall_exposure("nothing here"), None);
}
