"""ARCHITECTURE.md lists every module with its docstring's first sentence, and stays current."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO_ROOT


def test_architecture_map_is_current_and_every_module_says_its_job() -> None:
    script = REPO_ROOT / "scripts" / "architecture.py"
    done = subprocess.run(
        [sys.executable, str(script), "--check"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    text = (REPO_ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8")
    assert "(no docstring" not in text
    for module in ("asgi_server/server.py", "channel_layers/base.py", "consumers/wamp/broker.py"):
        assert f"- `{module}`: " in text
