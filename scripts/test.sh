#!/usr/bin/env bash
# The project's test command: installs what the tests need, then format, lint and every test.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v dovecot >/dev/null 2>&1; then
  echo "== installing dovecot-imapd (the tests run a real IMAP server)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq dovecot-imapd >/dev/null
fi

echo "== unpacking Cyrus and Courier (testbed's other real IMAP servers)"
scripts/imap-servers.sh

if ! command -v systemd-analyze >/dev/null 2>&1 || [[ ! -x /bin/kill ]]; then
  echo "== installing systemd and procps (tests/systemd_unit.rs runs systemd-analyze)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq systemd procps >/dev/null
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "== cargo test"
cargo test --workspace -- --nocapture
