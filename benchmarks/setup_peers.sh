#!/usr/bin/env bash
# Create (or update) the peers' virtualenv used by every script in benchmarks/.
#
# The peers (uvicorn, daphne, hypercorn, granian, channels, channels_redis, arq, servestatic,
# starlette) are benchmark opponents, never runtime dependencies of Crossway, so they live in
# their own git-ignored venv:
# benchmarks/.peers/venv (Celery in benchmarks/.peers/celery-venv). Our server keeps running
# from the project venv (.venv/bin/asgi-server). Also installs py-spy (for profiling), matplotlib
# (benchmarks/plot.py, the benchmark extra) and the `wrk` load generator (Debian package) when
# missing.
#
# Idempotent: rerun it at any time; pip and apt-get skip what is already installed.
# Usage: bash benchmarks/setup_peers.sh
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.peers/venv"
python="${PYTHON:-python3}"

if [ ! -x "$venv/bin/python" ]; then
    echo "creating $venv"
    "$python" -m venv "$venv"
fi

"$venv/bin/python" -m pip install --quiet --upgrade pip
# uvicorn[standard] brings httptools, uvloop, websockets and (with the explicit pin) wsproto too.
"$venv/bin/python" -m pip install --quiet \
    "uvicorn[standard]>=0.30" \
    wsproto \
    daphne \
    hypercorn \
    granian \
    channels \
    channels_redis \
    arq \
    servestatic \
    starlette \
    py-spy \
    "matplotlib>=3.8"  # the benchmark extra: benchmarks/plot.py

# Celery's Redis transport needs redis-py >= 6.1 and arq needs < 6: Celery gets a venv of its own
# (benchmarks/tasks.py).
celery_venv="$here/.peers/celery-venv"
if [ ! -x "$celery_venv/bin/python" ]; then
    echo "creating $celery_venv"
    "$python" -m venv "$celery_venv"
fi
"$celery_venv/bin/python" -m pip install --quiet celery "redis>=6.1" packaging

if ! command -v wrk >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1; then
        echo "installing wrk with apt-get"
        sudo_cmd=""
        [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
        $sudo_cmd apt-get install -y wrk >/dev/null || {
            $sudo_cmd apt-get update >/dev/null
            $sudo_cmd apt-get install -y wrk >/dev/null
        }
    else
        echo "wrk is missing and apt-get is not available: install wrk by hand" >&2
        exit 1
    fi
fi

if ! command -v taskset >/dev/null 2>&1; then
    echo "warning: taskset (util-linux) is missing; benchmarks will run without CPU pinning" >&2
fi

echo "peers venv ready: $venv"
"$venv/bin/python" -m pip list 2>/dev/null \
    | grep -iE '^(uvicorn|httptools|uvloop|wsproto|websockets|daphne|hypercorn|granian|channels|channels.redis|servestatic|starlette|py-spy|matplotlib) '
