"""Runs a tutorial's shell blocks as written: the lines of its ```sh blocks, from the
repository root, with the quickstart's ``.venv/bin/`` being this interpreter's environment.

- ``python3 -m venv ...`` and ``.venv/bin/pip install ...`` lines are checked, not run (the test
  environment has every extra): the extras they name must exist in pyproject.toml;
- ``VAR=value`` before a command is put in its environment; ``--port N`` becomes a free port,
  the same free port for the same N on one page (so a later line can reach an earlier server);
- a line ending in ``&``, one running ``asgi-server``, or one running a Python file with
  options and ``--port`` (an app's own command line, ``python site.py --port 8000``) starts a
  server in the background (waiting until it accepts) in a process group of its own, stopped
  when the run ends, or by ``stop_servers()`` where the page says to stop it, as the page
  stops it: ``kill %1`` (SIGTERM to the group) for a job, Ctrl-C (SIGINT to the group) for
  the rest.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.conftest import REPO_ROOT, get_free_port, wait_until_accepting

VENV_BIN = ".venv/bin/"
OTHER_PROGRAMS = ("npm", "node", "curl", "nginx")  # run as they are


def shell_lines(page: str) -> list[str]:
    """The command lines of a docs page's ```sh blocks, comments left out."""
    text = (REPO_ROOT / "docs" / page).read_text(encoding="utf-8")
    blocks = re.findall(r"^```sh\n(.*?)^```", text, re.DOTALL | re.MULTILINE)
    lines = [line for block in blocks for line in block.splitlines()]
    return [line for line in lines if line.strip() and not line.startswith("#")]


def check_install_line(line: str) -> None:
    """An install line: only extras pyproject declares, and only from the checkout."""
    declared = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    extras: set[str] = set()
    for spec in re.findall(r"(?:\.|crossway)\[([a-z0-9,-]+)\]", line):
        extras |= set(spec.split(","))
    assert extras <= set(declared["optional-dependencies"]), line
    if "pip install" in line:
        from_checkout = "pip install -e ." in line or "pip install -e '." in line
        assert from_checkout or "] @ file:///" in line, f"{line}: Crossway is on no index"


@dataclass
class TutorialRun:
    """The state of one page's run: its ports, its background servers, its environment."""

    env: dict[str, str]
    ports: dict[str, int] = field(default_factory=dict)
    servers: list[tuple[subprocess.Popen[bytes], int]] = field(default_factory=list)
    # How the page stops each server the run started (by pid): a job (``&``) by ``kill %1``,
    # SIGTERM to its process group; a server left running in a terminal by Ctrl-C, SIGINT to it.
    stop_signals: dict[int, signal.Signals] = field(default_factory=dict)
    outputs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # the stderr of each line in ``outputs``
    logs: list[Path] = field(default_factory=list)  # of the background processes, in order

    def port(self, written: str) -> int:
        """The free port standing for the page's port ``written``."""
        return self.ports.setdefault(written, get_free_port())

    def local_ports(self, word: str) -> str:
        """``ws://127.0.0.1:8000/ws`` with the free port that stands for 8000."""
        return re.sub(r"127\.0\.0\.1:(\d+)", lambda m: f"127.0.0.1:{self.port(m[1])}", word)

    def argv(self, line: str) -> tuple[list[str], dict[str, str], bool]:
        """One line as run here: (argv, environment, in the background)."""
        words = shlex.split(line.rstrip().removesuffix("&"))
        background = line.rstrip().endswith("&")
        env = dict(self.env)
        while words and re.fullmatch(r"[A-Z_]+=.*", words[0]):
            name, _, value = words.pop(0).partition("=")
            env[name] = self.env.get(f"TUTORIAL_{name}", value)
        words = [self.local_ports(word) for word in words]
        program = words[0]
        if program in OTHER_PROGRAMS:
            return words, env, background
        assert program.startswith(VENV_BIN), f"{line!r} assumes an activated virtualenv"
        program = program.removeprefix(VENV_BIN)
        # ``python site.py --port 8000``; not ``python site.py template nginx --port 8000``.
        serves_a_file = program == "python" and words[1].endswith(".py") and "--port" in words
        serves_a_file = serves_a_file and words[2].startswith("-")
        background = background or program == "asgi-server" or serves_a_file
        if program == "python":
            words = [sys.executable, *words[1:]]
        else:
            words = [sys.executable, "-m", program.replace("-", "_"), *words[1:]]
        if "--port" in words:
            index = words.index("--port") + 1
            words[index] = str(self.port(words[index]))
        return words, env, background

    def run(self, line: str, timeout: float = 120) -> None:
        """Run (or check, or start) one line; fail with its output when it fails."""
        if line.startswith("python3 -m venv") or "pip install" in line:
            check_install_line(line)
            return
        argv, env, background = self.argv(line)
        if background:
            # To a file, not a pipe: a pipe nobody reads would block a chatty server.
            handle, name = tempfile.mkstemp(prefix="tutorial-", suffix=".log")
            self.logs.append(Path(name))
            # A process group of its own, as a shell job has: Ctrl-C (stop_servers) signals
            # the whole group, the children a server started included.
            process = subprocess.Popen(
                argv,
                cwd=REPO_ROOT,
                env=env,
                stdout=handle,
                stderr=handle,
                start_new_session=True,
            )
            os.close(handle)
            port = int(argv[argv.index("--port") + 1]) if "--port" in argv else 0
            self.servers.append((process, port))
            job = line.rstrip().endswith("&")
            self.stop_signals[process.pid] = signal.SIGTERM if job else signal.SIGINT
            if port:  # else a worker, which serves no port: its layer channel holds the work
                wait_until_accepting("127.0.0.1", port, process)
            return
        result = subprocess.run(
            argv, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout
        )
        assert result.returncode == 0, f"{line}\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
        self.outputs.append(result.stdout)
        self.errors.append(result.stderr)

    def stop_servers(self) -> None:
        """Stop the background processes started so far as the page does (Ctrl-C, or
        ``kill %1``: to the whole process group), and wait. Others get SIGTERM."""
        for process, _ in self.servers:
            stop = self.stop_signals.pop(process.pid, None)
            if stop is not None and process.poll() is None:
                os.killpg(process.pid, stop)
            else:
                process.send_signal(signal.SIGTERM)
        for process, _ in self.servers:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.servers.clear()


@contextlib.contextmanager
def tutorial_run(**env: str) -> Iterator[TutorialRun]:
    """A run whose environment is ours plus ``env`` (``TUTORIAL_X`` replaces a page's ``X=``)."""
    # The checkout first, as a venv with it installed editable has it (a script's own
    # directory comes first, so without this a worktree's run would import the installed copy).
    base = os.environ | {"PYTHONPATH": str(REPO_ROOT)}
    run = TutorialRun(env=base | env)
    try:
        yield run
    finally:
        run.stop_servers()
        for log in run.logs:
            log.unlink(missing_ok=True)


def wait_for_line(
    log: Path, text: str, process: subprocess.Popen[bytes], count: int = 1, timeout: float = 30
) -> None:
    """Wait until a background process's log holds ``text`` (``count`` times); fail if it exits."""
    deadline = time.monotonic() + timeout
    while log.read_text(errors="replace").count(text) < count:
        assert process.poll() is None, f"exited with {process.returncode}: {log.read_text()}"
        assert time.monotonic() < deadline, (
            f"no {count} x {text!r} in {timeout} s: {log.read_text()}"
        )
        time.sleep(0.05)
