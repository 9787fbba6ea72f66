#!/usr/bin/env bash
# The project's test command: installs what the tests need (the real-world corpus,
# Dovecot, PostgreSQL, systemd-analyze, promtool, cargo-fuzz), then format, lint, every
# test, the benches once and a short fuzzing run.
set -euo pipefail
cd "$(dirname "$0")/.."

# First: without the corpus (no copy, no network) nothing else is worth running; the
# script says what is missing and how to provide it.
scripts/fetch-corpus.sh

if ! command -v dovecot >/dev/null 2>&1; then
  echo "== installing dovecot-imapd (the tests run a real IMAP server)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq dovecot-imapd >/dev/null
fi

if ! compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; then
  # The package's own cluster (which it may fail to start in a container) is
  # not used: testbed::Postgres runs initdb in a temp dir per test.
  echo "== installing postgresql (the ledger tests run a real PostgreSQL)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq postgresql >/dev/null
fi

echo "== unpacking Cyrus and Courier (testbed's other real IMAP servers)"
scripts/imap-servers.sh

if ! command -v systemd-analyze >/dev/null 2>&1 || [[ ! -x /bin/kill ]]; then
  echo "== installing systemd and procps (tests/systemd_unit.rs runs systemd-analyze)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq systemd procps >/dev/null
fi

# promtool (tests/monitoring.rs) from Debian's prometheus package, unpacked, not
# installed: the package would also install and start a Prometheus server.
promtool_root=/var/cache/thulium-mail-bridge-testbed/prometheus
if ! command -v promtool >/dev/null 2>&1 && [[ ! -x $promtool_root/usr/bin/promtool ]]; then
  echo "== unpacking Debian's prometheus package for promtool (tests/monitoring.rs)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  deb_dir=$(mktemp -d)
  (cd "$deb_dir" && apt-get download -qq prometheus 2>/dev/null)
  mkdir -p "$promtool_root"
  dpkg -x "$deb_dir"/prometheus_*.deb "$promtool_root"
  rm -rf "$deb_dir"
fi

started=$SECONDS
echo "== cargo fmt --check"
cargo fmt --all -- --check
# fuzz/ is a workspace of its own (nightly, cargo-fuzz): formatted all the same.
cargo fmt --manifest-path fuzz/Cargo.toml -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "== cargo test"
cargo test --workspace --no-fail-fast -- --nocapture
echo "== benches: built, and each run once untimed (cargo test --benches)"
cargo test --workspace --benches
echo "== fuzz targets: built with cargo-fuzz, a few seconds each (fuzz/smoke.sh)"
bash fuzz/smoke.sh
echo "== scripts/test.sh passed in $((SECONDS - started)) s"
