#!/usr/bin/env bash
# Builds the Debian package with cargo-deb (metadata: [package.metadata.deb] in
# Cargo.toml) and shows what is in it. Extra arguments go to `cargo deb`
# (e.g. --fast, --deb-revision 2, --output DIR).
#
#   scripts/package.sh                 # -> target/debian/thulium-mail-bridge_<version>-1_<arch>.deb
#
# Installs on Debian 12 or later: the binary in /usr/bin, the unit in
# /usr/lib/systemd/system (the same directory as /lib/systemd/system on a
# merged-/usr system), neither enabled nor started, and
# /etc/thulium-mail-bridge/config.toml as a conffile.
set -euo pipefail
cd "$(dirname "$0")/.."

# Pinned so a future cargo-deb cannot need a newer rustc than the project's.
CARGO_DEB_VERSION=${CARGO_DEB_VERSION:-3.8.0}

if ! cargo deb --version >/dev/null 2>&1; then
  echo "== installing cargo-deb $CARGO_DEB_VERSION (a one-off build, under a minute on 2 cores)"
  cargo install cargo-deb --locked --version "$CARGO_DEB_VERSION"
fi
for tool in dpkg-deb dpkg-shlibdeps; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "error: $tool is missing: apt-get install dpkg-dev" >&2
    exit 1
  fi
done

echo "== building the release binary"
cargo build --release --locked --bin thulium-mail-bridge
echo "== the man page and shell completions, from the command line's own definition"
bin=target/release/thulium-mail-bridge
mkdir -p target/assets
"$bin" generate man | gzip -9n > target/assets/thulium-mail-bridge.1.gz
"$bin" generate bash > target/assets/thulium-mail-bridge.bash
"$bin" generate zsh > target/assets/_thulium-mail-bridge
"$bin" generate fish > target/assets/thulium-mail-bridge.fish

echo "== $(cargo deb --version): the package"
# cargo-deb prints the path of the .deb it wrote as its last line on stdout.
deb=$(cargo deb --locked --no-build "$@" | tail -n 1)
if [[ ! -f $deb ]]; then
  echo "error: cargo deb did not report a .deb (got: $deb)" >&2
  exit 1
fi

echo "== $deb"
echo "== dpkg-deb -I (control)"
dpkg-deb -I "$deb"
echo "== conffiles"
dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles
echo "== dpkg-deb -c (contents)"
dpkg-deb -c "$deb"
echo "$deb"
