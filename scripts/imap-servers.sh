#!/usr/bin/env bash
# Unpacks Debian's Cyrus IMAP and Courier IMAP for testbed's Cyrus and Courier
# harnesses, next to (not instead of) the apt-installed dovecot-imapd.
#
# dovecot-imapd, cyrus-imapd and courier-imap all provide and conflict with
# `imap-server`, so the two servers are never apt-installed: their packages
# are fetched with `apt-get download` and unpacked with `dpkg-deb -x` into
#   ${TESTBED_IMAP_SERVERS_DIR:-/var/cache/thulium-mail-bridge-testbed}/{cyrus,courier}
# where the harnesses look for them. What they need at run time and does not
# conflict (shared libraries, sasl2-bin for saslpasswd2, courier-authlib with
# its userdb module, gamin for Courier's enhanced IDLE) is apt-installed. No
# daemon is enabled or started. Two things outside the cache are made the way
# the real packages would make them: the `cyrus` system user (Cyrus refuses to
# run as root) and the empty directory /etc/courier (authlib's compiled-in
# config path; the harness bind-mounts its own files over it in a private
# mount namespace, so it stays empty).
#
# Idempotent: a second run only checks. Run as root.
set -euo pipefail

CACHE="${TESTBED_IMAP_SERVERS_DIR:-/var/cache/thulium-mail-bridge-testbed}"
# Bump when the unpacked layout or the package lists change.
STAMP_VERSION=1

# Unpacked, never installed (they conflict with dovecot-imapd).
CYRUS_DEBS=(cyrus-common cyrus-imapd)
COURIER_DEBS=(courier-base courier-imap)
# Installed normally: nothing here conflicts with dovecot.
RUNTIME_PKGS=(
  # cyrus-common's and cyrus-imapd's shared libraries
  libclamav12 libcom-err2 libical3 libicu72 libjansson4 libkrb5-3 libldap-2.5-0
  libpcre3 libpq5 libsasl2-2 libsqlite3-0 libssl3 libwrap0 libxapian30 libxml2
  libzephyr4 zlib1g
  # SASL password checks from a sasldb2 file, and saslpasswd2 to write it
  libsasl2-modules libsasl2-modules-db sasl2-bin
  # Courier: authdaemond with the userdb module (makeuserdb, userdbpw), the
  # libraries of imapd/imaplogin/couriertls, gamin for IMAP_ENHANCEDIDLE
  courier-authlib courier-authlib-userdb libcourier-unicode4 libgdbm6 libidn12
  libgnutls30 libltdl7 gamin libgamin0
  # unshare(1), for Courier's private mount namespace
  util-linux
)

die() {
  echo "imap-servers.sh: error: $*" >&2
  exit 1
}

[[ $(id -u) -eq 0 ]] || die "must run as root (it installs packages and adds the cyrus user)"
command -v apt-get >/dev/null || die "needs Debian's apt-get (Debian 12 bookworm)"
export DEBIAN_FRONTEND=noninteractive

stamp_text() {
  echo "version=$STAMP_VERSION"
  echo "cyrus=${CYRUS_DEBS[*]}"
  echo "courier=${COURIER_DEBS[*]}"
}

all_installed() {
  local pkg status
  for pkg in "$@"; do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
    [[ $status == installed ]] || return 1
  done
}

# True when everything is in place already: then nothing is downloaded.
ready() {
  [[ -f $CACHE/cyrus/.testbed-stamp && -f $CACHE/courier/.testbed-stamp ]] || return 1
  [[ $(cat "$CACHE/cyrus/.testbed-stamp") == "$(stamp_text)" ]] || return 1
  [[ $(cat "$CACHE/courier/.testbed-stamp") == "$(stamp_text)" ]] || return 1
  [[ -x $CACHE/cyrus/usr/lib/cyrus/bin/master && -x $CACHE/courier/usr/bin/imapd ]] || return 1
  getent passwd cyrus >/dev/null && getent passwd courier >/dev/null || return 1
  [[ -d /etc/courier ]] || return 1
  all_installed "${RUNTIME_PKGS[@]}"
}

if ready; then
  echo "imap-servers.sh: Cyrus and Courier are ready in $CACHE"
  exit 0
fi

# `apt-get update` only when the package lists are missing or too old to
# have what we need, and at most once.
updated=no
apt_update() {
  if [[ $updated == no ]]; then
    echo "== apt-get update"
    apt-get update -qq || die "apt-get update failed"
    updated=yes
  fi
}
for pkg in "${CYRUS_DEBS[@]}" "${COURIER_DEBS[@]}" "${RUNTIME_PKGS[@]}"; do
  if [[ -z $(apt-cache policy "$pkg" 2>/dev/null | sed -n 's/^ *Candidate: *//p' | grep -v '(none)') ]]; then
    apt_update
    break
  fi
done

# Only what is missing: naming an installed library would upgrade it.
missing=()
for pkg in "${RUNTIME_PKGS[@]}"; do
  all_installed "$pkg" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "== installing runtime dependencies (no IMAP server among them): ${missing[*]}"
  if ! apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; then
    apt_update
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
      || die "apt-get install ${missing[*]} failed"
  fi
fi

# Cyrus drops root for this user; Debian's cyrus-common adds it the same way.
if ! getent passwd cyrus >/dev/null; then
  echo "== adding the cyrus system user"
  adduser --quiet --system --ingroup mail --home /var/spool/cyrus --no-create-home \
    --shell /usr/sbin/nologin --disabled-password --disabled-login \
    --gecos "Cyrus Mailsystem User" cyrus || die "could not add the cyrus user"
fi
getent passwd courier >/dev/null || die "courier-authlib did not add the courier user"
mkdir -p /etc/courier

download_dir=$(mktemp -d)
trap 'rm -rf "$download_dir"' EXIT
# apt drops privileges to _apt for downloads; let it write here.
if getent passwd _apt >/dev/null; then
  chown _apt "$download_dir"
fi

# unpack NAME DEB...: downloads the packages and unpacks them into
# $CACHE/NAME, replacing what was there only once all of it worked.
unpack() {
  local name=$1
  shift
  echo "== unpacking $* into $CACHE/$name"
  if ! (cd "$download_dir" && apt-get download -qq "$@" 2>/dev/null); then
    apt_update
    (cd "$download_dir" && apt-get download -qq "$@") || die "apt-get download $* failed"
  fi
  local staging=$CACHE/.$name.new
  rm -rf "$staging"
  mkdir -p "$staging"
  local pkg deb
  for pkg in "$@"; do
    deb=$(ls "$download_dir"/"${pkg}"_*.deb 2>/dev/null | head -n1)
    [[ -n $deb ]] || die "apt-get download $pkg left no .deb"
    dpkg-deb -x "$deb" "$staging" || die "dpkg-deb -x $deb failed"
  done
  stamp_text >"$staging/.testbed-stamp"
  rm -rf "${CACHE:?}/$name"
  mv "$staging" "$CACHE/$name"
}

mkdir -p "$CACHE"
unpack cyrus "${CYRUS_DEBS[@]}"
unpack courier "${COURIER_DEBS[@]}"

# Every binary the harnesses run must find its libraries.
check_libs() {
  local lib_path=$1
  shift
  local bin missing
  for bin in "$@"; do
    [[ -x $bin ]] || die "$bin is missing after unpacking"
    missing=$(LD_LIBRARY_PATH=$lib_path ldd "$bin" 2>&1 | grep 'not found' || true)
    [[ -z $missing ]] || die "$bin lacks libraries:"$'\n'"$missing"
  done
}
cyrus_bin=$CACHE/cyrus/usr/lib/cyrus/bin
check_libs "$CACHE/cyrus/usr/lib/x86_64-linux-gnu" \
  "$cyrus_bin/master" "$cyrus_bin/imapd" "$cyrus_bin/idled" "$cyrus_bin/ctl_cyrusdb"
check_libs "" \
  "$CACHE/courier/usr/bin/imapd" "$CACHE/courier/usr/lib/courier/courier/imaplogin" \
  "$CACHE/courier/usr/sbin/couriertcpd" "$CACHE/courier/usr/bin/couriertls" \
  /usr/lib/courier/courier-authlib/authdaemond
for tool in saslpasswd2 makeuserdb userdbpw unshare; do
  command -v "$tool" >/dev/null || die "$tool is not installed"
done
command -v dovecot >/dev/null && { dovecot --version >/dev/null || die "dovecot no longer runs"; }

echo "imap-servers.sh: Cyrus and Courier are ready in $CACHE"
