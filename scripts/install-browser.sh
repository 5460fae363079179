#!/usr/bin/env bash
# The browser tests drive Debian's Chromium through Playwright (Playwright cannot download a
# browser here). Install it when missing and we may; the tests say how when it is still absent.
set -uo pipefail
if command -v chromium >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) \
        >/dev/null 2>&1 || echo "could not install chromium; the browser tests will fail" >&2
else
    echo "chromium is missing: run 'sudo apt-get install chromium' for the browser tests" >&2
fi
