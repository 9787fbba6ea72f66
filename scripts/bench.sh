#!/usr/bin/env bash
# The end-to-end benchmark, in release mode: for each scenario a throwaway Dovecot and a
# fake Thulium API, the replies placed in the mailbox, then the bridge (`once`, or `run`
# in IDLE) as a child process measured alone (wall, CPU, peak RSS). Prints a table, the
# targets with their verdicts, and one JSON line per scenario. Exits 1 when a check
# (exactly once, per-ticket order, every mail disposed, the ledger) fails.
#
#   scripts/bench.sh                            # all scenarios (a, b, c, d, e, f), ~2 minutes
#   scripts/bench.sh --scenario e               # memory of a new ticket with a 20 MiB attachment
#   scripts/bench.sh --scenario f               # memory of 8 mailboxes x one 24 MiB reply at once
#   scripts/bench.sh --scenario a --scenario d  # some of them
#   scripts/bench.sh --smoke                    # N = 200, 5 mails in IDLE, small attachments; seconds
#   scripts/bench.sh --ledger postgres          # the ledger in a PostgreSQL per scenario (TLS), not SQLite
#
# Runs as root (Dovecot runs as root in a sandbox, as in the tests; PostgreSQL as its
# system user, `--ledger postgres` needs the postgresql package). Other work on the
# machine shows in the figures: the table notes the load average at each start.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v dovecot >/dev/null 2>&1; then
  echo "== installing dovecot-imapd (the benchmark runs a real IMAP server)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq dovecot-imapd >/dev/null
fi

# `--ledger postgres` (or `--ledger=postgres`) runs a real PostgreSQL per scenario.
if [[ " $* " == *" postgres "* || " $* " == *"--ledger=postgres"* ]] \
  && ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
  echo "== installing postgresql (--ledger postgres runs a real one)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq postgresql >/dev/null
fi

echo "== building (release)"
cargo build --quiet --release --workspace --bin thulium-mail-bridge --bin bench

exec target/release/bench --bridge target/release/thulium-mail-bridge "$@"
