#!/usr/bin/env bash
# Refreshes requirements/test.txt, the locked versions the test command installs, from the
# `test` extra in pyproject.toml. One universal lock for every supported Python (markers pick
# Django 5.2 LTS on 3.11 and the newest Django on 3.12+). Run it after changing a dependency,
# then run the test command and commit both files together.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v uv >/dev/null 2>&1; then
    echo "scripts/lock.sh needs uv: python3 -m pip install uv" >&2
    exit 2
fi
uv pip compile pyproject.toml --extra test --universal --python-version 3.11 \
    --upgrade --quiet --custom-compile-command "bash scripts/lock.sh" -o requirements/test.txt
echo "requirements/test.txt refreshed; now run: bash scripts/test.sh"
