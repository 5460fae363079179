"""The README tells the truth: its table of contents points at its headings, its links into the
docs lead to files that exist, it says how to build and serve the docs, it never tells a user to
install Crossway by name from an index it is not on; and the Django chat demo's commands (in
docs/guide/django.md since the README became short) run as written, from the repository root,
right after the quickstart."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tomllib
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx

from tests.conftest import REPO_ROOT, get_free_port, wait_until_accepting
from tests.consumers.test_django_suite import sqlite_directory

README = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
DJANGO_GUIDE = REPO_ROOT / "docs/guide/django.md"
VENV_BIN = ".venv/bin/"


def heading_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: lowercase, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_every_contents_link_points_at_a_heading() -> None:
    headings = re.findall(r"^#{1,4} (.+)$", README, re.MULTILINE)
    anchors = {heading_anchor(heading) for heading in headings}
    links = re.findall(r"\]\(#([^)]+)\)", README)
    assert len(links) >= 3
    assert [link for link in links if link not in anchors] == []


def test_every_section_is_in_the_contents() -> None:
    contents = README.split("## Contents\n", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"\]\(#([^)]+)\)", contents))
    sections = re.findall(r"^## (.+)$", README, re.MULTILINE)
    missing = [s for s in sections if heading_anchor(s) not in listed | {"quickstart", "contents"}]
    assert missing == [], "add these sections to the README's Contents list"


def test_the_readme_installs_crossway_only_from_a_checkout_or_a_file() -> None:
    by_name = re.findall(r"pip install[^`\n]*crossway\[[^\]]*\]'?(?! @)", README)
    assert by_name == []
    assert "pip install -e '.[" in README
    assert "crossway[redis] @ file:///" in README


def test_every_file_link_leads_to_a_file() -> None:
    links = re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", README)
    assert sum(link.startswith("docs/") for link in links) >= 15
    assert [link for link in links if not (REPO_ROOT / link).is_file()] == []


def test_the_readme_says_how_to_build_and_serve_the_docs() -> None:
    assert ".venv/bin/mkdocs serve" in README
    assert ".venv/bin/mkdocs build --strict" in README
    assert "pip install -e '.[docs]'" in README


def django_chat_commands() -> list[str]:
    """The shell lines of the Django guide's chat block (comments left out)."""
    guide = DJANGO_GUIDE.read_text(encoding="utf-8")
    blocks = re.findall(r"```sh\n(.*?)```", guide, re.DOTALL)
    (block,) = [b for b in blocks if "examples/django_chat/manage.py migrate" in b]
    return [line for line in block.splitlines() if line and not line.startswith("#")]


def as_run_here(line: str, ports: Iterator[int]) -> tuple[list[str], bool]:
    """One line of the guide as this test runs it: the quickstart's ``.venv/bin/`` is this
    interpreter's environment, each --port a free one. Returns (argv, in the background)."""
    background = line.endswith("&")
    argv = shlex.split(line.removesuffix("&"))
    program = argv[0].removeprefix(VENV_BIN)
    assert argv[0].startswith(VENV_BIN), f"{line!r} assumes an activated virtualenv"
    if program == "python":
        argv = [sys.executable, *argv[1:]]
    else:
        argv = [sys.executable, "-m", program.replace("-", "_"), *argv[1:]]
    if "--port" in argv:
        argv[argv.index("--port") + 1] = str(next(ports))
    return argv, background


def test_the_django_chat_commands_work_from_the_repository_root(
    tmp_path: Path, redis_url: str
) -> None:
    lines = django_chat_commands()
    install = shlex.split(lines[0])
    assert install[:3] == [f"{VENV_BIN}pip", "install", "-e"], lines[0]
    extras = set(re.fullmatch(r"\.\[(.+)\]", install[3])[1].split(","))  # type: ignore[index]
    declared = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    assert extras == {"django", "redis"} <= set(declared["optional-dependencies"])

    database_dir = Path(sqlite_directory(tmp_path))
    env = {key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"}
    env.pop("DATABASE_URL", None)
    env.pop("PYTHONPATH", None)  # the commands must not need it
    env |= {
        "CHAT_DB_PATH": str(database_dir / "chat.sqlite3"),
        "REDIS_URL": redis_url,
        "CHAT_LAYER_PREFIX": f"readme-{uuid.uuid4().hex[:8]}",
    }
    ports = iter([get_free_port(), get_free_port()])
    servers: list[tuple[subprocess.Popen[bytes], int]] = []
    try:
        for line in lines[1:]:
            argv, background = as_run_here(line, ports)
            if background:
                port = int(argv[argv.index("--port") + 1])
                process = subprocess.Popen(argv, cwd=REPO_ROOT, env=env)
                servers.append((process, port))
                continue
            result = subprocess.run(
                argv, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120
            )
            assert result.returncode == 0, f"{line}\n{result.stderr[-3000:]}"
        assert len(servers) == 2
        for process, port in servers:
            wait_until_accepting("127.0.0.1", port, process)
            login = httpx.get(f"http://127.0.0.1:{port}/accounts/login/", timeout=10)
            assert login.status_code == 200 and b'name="password"' in login.content
            room = httpx.get(f"http://127.0.0.1:{port}/chat/lobby/", timeout=10)
            assert room.status_code == 302 and "/accounts/login/" in room.headers["location"]
    finally:
        for process, _ in servers:
            process.send_signal(signal.SIGTERM)
        for process, _ in servers:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shutil.rmtree(database_dir, ignore_errors=True)
