#!/usr/bin/env bash
# Install rsyslog and the two input/driver modules the syslog backend's real-server tests use
# (tests/test_syslog_rsyslog.py): rsyslog (imtcp, imudp, omfile), rsyslog-relp (imrelp) and
# rsyslog-gnutls (the gtls stream driver for TLS). Idempotent: installs only what is missing.
#
# The tests start their own rsyslogd (`rsyslogd -n -f CONF -i PIDFILE` on a free 127.0.0.1
# port, as root or as the current user); this script starts no daemon and leaves the system's
# rsyslog service as it is. Debian/Ubuntu; runs as root (or through sudo).
set -euo pipefail

log() { echo "rsyslog.sh: $*" >&2; }

packages=(rsyslog rsyslog-relp rsyslog-gnutls openssl)  # openssl: the TLS test makes a certificate
missing=()
for package in "${packages[@]}"; do
    status=$(dpkg-query -W -f '${Status}' "$package" 2>/dev/null || true)
    [ "$status" = "install ok installed" ] || missing+=("$package")
done

if [ "${#missing[@]}" -eq 0 ]; then
    log "rsyslog, rsyslog-relp, rsyslog-gnutls and openssl are installed"
    exit 0
fi

as_root=()
if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || { log "needs root or sudo to install ${missing[*]}"; exit 1; }
    as_root=(sudo)
fi

log "installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
# policy-rc.d 101: the package's postinst must not start the system rsyslog service (the
# tests run their own daemon; a container has no init to run it anyway).
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | "${as_root[@]}" tee "$policy" >/dev/null
    "${as_root[@]}" chmod 755 "$policy"
    created_policy=1
fi
cleanup() {
    if [ "$created_policy" = 1 ]; then "${as_root[@]}" rm -f "$policy"; fi
}
trap cleanup EXIT
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    --no-install-recommends "${missing[@]}" >&2
if ! command -v rsyslogd >/dev/null && [ ! -x /usr/sbin/rsyslogd ]; then
    log "rsyslogd not found after install"
    exit 1
fi
log "installed ${missing[*]}"
