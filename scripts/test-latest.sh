#!/usr/bin/env bash
# Not a gate: the suite against the newest releases of every dependency (no lock), in its own
# virtualenv, so that a release that breaks us shows up here before anyone refreshes the lock.
# Prints what broke and exits with the test command's status; CI runs it and reports, never fails.
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv-latest}
rm -rf "$VENV"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet --upgrade -e '.[test]'
echo "== newest releases:"
"$VENV/bin/python" -m pip list --format=freeze | grep -iE '^(django|redis|mypy|ruff|pytest|h11|wsproto|asgiref|autobahn|twisted|uvloop|httptools)=' | tr '\n' ' '
echo
status=0
"$VENV/bin/ruff" check . || status=1
"$VENV/bin/mypy" || status=1
"$VENV/bin/python" -m pytest -q "$@" || status=1
if [ $status != 0 ]; then
    echo "== the newest releases break something (above); the locked suite is what gates main"
fi
exit $status
