"""The whole monitoring demo in one command: ``python -m examples.monitoring``.

Migrates the SQLite database, creates the staff user ``admin`` (password ``admin``, or
MONITORING_ADMIN_PASSWORD) when there is no user, then runs the server on
http://127.0.0.1:8000 and one agent for this machine, until Ctrl-C or SIGTERM.

Several server processes: one per ``--port`` (``--port 8000 --port 8001``), all on the Redis
channel layer that ``--redis`` (or REDIS_URL) names, where their WAMP routers meet as one
cluster; the agent reports to the last of them. Any page may then be opened on any port.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
MANAGE = str(ROOT / "examples/monitoring/manage.py")


def manage(*args: str, env: dict[str, str]) -> str:
    """Run a manage.py command of the demo and return its output; stop on failure."""
    result = subprocess.run(
        [sys.executable, MANAGE, *args], env=env, capture_output=True, text=True
    )
    if result.returncode != 0:
        sys.exit(f"manage.py {args[0]} failed:\n{result.stdout}{result.stderr}")
    return result.stdout


def prepare_database(env: dict[str, str]) -> None:
    """Migrate, and create the superuser ``admin`` when there is no user at all."""
    manage("migrate", "--noinput", "-v", "0", env=env)
    exists = "from django.contrib.auth.models import User; print(User.objects.exists())"
    if manage("shell", "-c", exists, env=env).strip() != "True":
        manage("createsuperuser", "--noinput", "--username", "admin", "--email", "", env=env)


def parse_options(argv: list[str] | None) -> tuple[list[int], dict[str, str]]:
    """The server ports and the environment of the processes; more than one port needs Redis."""
    parser = argparse.ArgumentParser(description="Run the monitoring demo.")
    parser.add_argument(
        "--port", type=int, action="append", help="a server process on this port (repeatable)"
    )
    parser.add_argument("--redis", help="the Redis of the channel layer, redis://host:port/db")
    options = parser.parse_args(argv)
    password = os.environ.get("MONITORING_ADMIN_PASSWORD", "admin")
    env = {**os.environ, "DJANGO_SUPERUSER_PASSWORD": password}
    if options.redis:
        env["REDIS_URL"] = options.redis
    ports: list[int] = options.port or [8000]
    if len(ports) > 1 and not env.get("REDIS_URL"):
        parser.error("several server processes share a Redis: add --redis redis://127.0.0.1:6379/0")
    return ports, env


def _stop(signum: int, frame: Any) -> None:
    raise SystemExit(0)  # SIGTERM: leave through the finally clause, which stops the children


def main(argv: list[str] | None = None) -> None:
    """Prepare the database, then serve and report until interrupted."""
    ports, env = parse_options(argv)
    prepare_database(env)
    processes = []
    for port in ports:
        command = [sys.executable, "-m", "asgi_server", "examples.monitoring.asgi:application"]
        processes.append(subprocess.Popen([*command, "--port", str(port)], cwd=ROOT, env=env))
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    # The agent waits for the server's first answer by itself.
    agent = [sys.executable, "-m", "examples.monitoring.agent", "--server", urls[-1]]
    processes.append(subprocess.Popen(agent, cwd=ROOT, env=env))
    where = ", ".join(f"{url}/" for url in urls)
    print(f"\n  Dashboard: {where}  (log in as admin)\n  Admin: {urls[0]}/admin/\n", flush=True)
    signal.signal(signal.SIGTERM, _stop)
    try:
        while all(process.poll() is None for process in processes[: len(ports)]):
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        for process in reversed(processes):
            process.terminate()
        for process in processes:
            process.wait()


if __name__ == "__main__":
    main()
