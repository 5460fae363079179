"""The whole monitoring demo in one command: ``python -m examples.monitoring``.

Migrates the SQLite database, creates the staff user ``admin`` (password ``admin``, or
MONITORING_ADMIN_PASSWORD) when there is none, then runs the server on
http://127.0.0.1:8000 (``--port`` to change it) and one agent for this machine, until Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def manage(*args: str, env: dict[str, str]) -> None:
    """Run a manage.py command of the demo; stop on failure."""
    command = [sys.executable, str(ROOT / "examples/monitoring/manage.py"), *args]
    subprocess.run(command, check=True, env=env)


def main() -> None:
    """Prepare the database, then serve and report until interrupted."""
    parser = argparse.ArgumentParser(description="Run the monitoring demo.")
    parser.add_argument("--port", type=int, default=8000)
    options = parser.parse_args()
    password = os.environ.get("MONITORING_ADMIN_PASSWORD", "admin")
    env = {**os.environ, "DJANGO_SUPERUSER_PASSWORD": password}
    manage("migrate", "--noinput", "-v", "0", env=env)
    create = "from django.contrib.auth.models import User; print(User.objects.exists())"
    exists = subprocess.run(
        [sys.executable, str(ROOT / "examples/monitoring/manage.py"), "shell", "-c", create],
        check=True,
        env=env,
        capture_output=True,
        text=True,
    ).stdout.strip()
    if exists != "True":
        manage("createsuperuser", "--noinput", "--username", "admin", "--email", "", env=env)
    server_url = f"http://127.0.0.1:{options.port}"
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "asgi_server",
            "examples.monitoring.asgi:application",
            "--port",
            str(options.port),
        ],
        cwd=ROOT,
        env=env,
    )
    # The agent waits for the server's first answer by itself.
    agent = subprocess.Popen(
        [sys.executable, "-m", "examples.monitoring.agent", "--server", server_url], cwd=ROOT
    )
    print(f"\n  Dashboard: {server_url}/  (log in as admin)\n  Admin: {server_url}/admin/\n")
    try:
        server.wait()
    except KeyboardInterrupt:
        pass
    finally:
        for process in (agent, server):
            process.terminate()
            process.wait()


if __name__ == "__main__":
    main()
