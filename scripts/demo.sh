#!/usr/bin/env bash
# The bridge end to end on this machine: a throwaway Dovecot and a fake Thulium API,
# four sample replies, one `once` pass, then what the API received and where each mail went.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v dovecot >/dev/null 2>&1; then
  echo "== installing dovecot-imapd"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq dovecot-imapd >/dev/null
fi

echo "== building"
cargo build --quiet --workspace --bins
bin=target/debug/thulium-mail-bridge
testbed=target/debug/testbed

work=$(mktemp -d)
chmod 755 "$work"   # Dovecot's auth process (user dovecot) must reach $work/bed
cleanup() {
  [[ -n ${testbed_pid:-} ]] && kill "$testbed_pid" 2>/dev/null && wait "$testbed_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

"$testbed" up --dir "$work/bed" --user support:demo-imap-pw \
  --ticket 1001:anna@customer.example --ticket 1002:john@customer.example &
testbed_pid=$!
for _ in $(seq 200); do [[ -f $work/bed/env ]] && break; sleep 0.1; done
[[ -f $work/bed/env ]] || { echo "testbed did not start"; exit 1; }
# shellcheck disable=SC1091
source "$work/bed/env"

cat > "$work/config.toml" <<TOML
[thulium]
url = "$API_URL"
user = "$API_USER"
password = "$API_PASSWORD"
timezone = "Europe/Warsaw"

[[mailbox]]
name = "support"
host = "127.0.0.1"
port = $IMAP_TLS_PORT
tls = "tls"
ca_file = "$CA_FILE"
username = "support"
password = "demo-imap-pw"

[state]
dir = "$work/state"
TOML
chmod 600 "$work/config.toml"

echo "== four replies arrive in INBOX"
"$testbed" append --dir "$work/bed" --user support --folder INBOX scripts/demo-mails/*.eml

echo "== explain, offline, for the HTML reply"
"$bin" --config "$work/config.toml" explain scripts/demo-mails/1-html-reply.eml

echo "== check"
"$bin" --config "$work/config.toml" check

echo "== once"
"$bin" --config "$work/config.toml" once

echo "== what the API received and where each mail went"
"$testbed" dump --dir "$work/bed"
