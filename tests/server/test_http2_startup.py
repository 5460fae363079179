"""HTTP/2 asked for without a working ``h2``: the server stops at startup with one line saying
what to install, instead of failing at the first connection."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


def run_without_h2(tmp_path: Path, *options: str) -> subprocess.CompletedProcess[str]:
    """Run the server with a fake ``h2`` first on the path, whose import fails."""
    fake = tmp_path / "h2"
    fake.mkdir()
    (fake / "__init__.py").write_text("raise ImportError('fake h2: not installed')\n")
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{REPO_ROOT}"}
    app = "tests.server._apps:environ"
    return subprocess.run(
        [sys.executable, "-m", "asgi_server", app, "--port", "0", *options],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.mark.parametrize("transport", ["asyncio", "twisted"])
@pytest.mark.parametrize("tls", [False, True], ids=["h2c", "tls"])
def test_http2_without_h2_fails_at_startup(
    tmp_path: Path, certificates: Any, transport: str, tls: bool
) -> None:
    options = ["--transport", transport]
    if tls:
        options += ["--ssl-certfile", str(certificates.server_cert)]
        options += ["--ssl-keyfile", str(certificates.server_key)]
    else:
        options.append("--h2c")
    result = run_without_h2(tmp_path, *options)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    flag = "--http2" if tls else "--h2c"
    assert lines[0].startswith(f"asgi-server: error: {flag} needs the h2 package (fake h2")
    assert "pip install -e '.[http2]' in a checkout" in lines[0]
