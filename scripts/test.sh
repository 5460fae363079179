#!/usr/bin/env bash
# The README's test command. Installs the locked test environment (requirements/test.txt) into a
# virtualenv, then runs ruff, ruff format --check, mypy --strict and the whole pytest suite.
#   PYTHON=python3.13 bash scripts/test.sh    another interpreter (default: python3)
#   VENV=.venv-3.13                           another virtualenv (default: .venv)
#   LINT=0                                    skip ruff and mypy (CI lints once, not per Python)
#   PYTEST_WORKERS=0                          one pytest process (default: 3, pytest-xdist)
# Extra arguments go to pytest. See scripts/test-latest.sh for the newest releases instead.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --upgrade pip
# -c pins every package the test extra pulls in to the lock, so a release elsewhere cannot
# change what a fresh clone installs.
"$VENV/bin/python" -m pip install --quiet -c requirements/test.txt -e '.[test]'
bash scripts/install-system.sh
echo "== $("$VENV/bin/python" --version), locked versions from requirements/test.txt"
if [ "${LINT:-1}" != 0 ]; then
    "$VENV/bin/ruff" check .
    "$VENV/bin/ruff" format --check .
    "$VENV/bin/mypy"
fi
# Three pytest processes (pytest-xdist), whole files each: most tests wait on sockets and child
# processes, so three share two cores well. PYTEST_WORKERS=0 runs in one process.
"$VENV/bin/python" -m pytest -n "${PYTEST_WORKERS:-3}" --dist loadfile "$@"
