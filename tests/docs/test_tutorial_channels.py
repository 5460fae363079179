"""docs/tutorials/channels-migration.md works as written on a Channels project: a Channels +
Daphne + channels_redis version of examples/django_chat is made in a temp dir, the page's
commands run in it (bash; its ~/mysite, mysite and /path/to/crossway being that project and this
checkout; the pip lines checked, not run), and the moved project passes ``manage.py check``, its
consumer tests, and serves its pages with asgi-server --workers 2 on a private Redis."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO_ROOT, wait_until_accepting
from tests.docs._tutorial import check_install_line, shell_lines, tutorial_run

PAGE = "tutorials/channels-migration.md"

# examples/django_chat as it would be written for Channels, Daphne and channels_redis.
TO_CHANNELS = [
    (
        "from consumers import AsyncWebsocketConsumer",
        "from channels.generic.websocket import AsyncWebsocketConsumer",
    ),
    (
        "from consumers.testing_live import CrosswayLiveServerTestCase",
        "from channels.testing import ChannelsLiveServerTestCase",
    ),
    ("CrosswayLiveServerTestCase", "ChannelsLiveServerTestCase"),
    ("from consumers.security import", "from channels.security.websocket import"),
    ("from consumers.", "from channels."),
    ('"asgi_server",', '"daphne",'),
    ('"consumers",', '"channels",'),
    ("channel_layers.memory.InMemoryChannelLayer", "channels.layers.InMemoryChannelLayer"),
    ("channel_layers.redis.RedisChannelLayer", "channels_redis.core.RedisChannelLayer"),
]
CROSSWAY_NAMES = re.compile(
    r"\b(from|import) (consumers|channel_layers|asgi_server)\b|"
    r"\"(asgi_server|consumers)\"|channel_layers\."
)


def channels_project(destination: Path) -> Path:
    """A copy of examples/django_chat written against Channels (no Crossway name left)."""
    shutil.copytree(
        REPO_ROOT / "examples/django_chat",
        destination,
        ignore=shutil.ignore_patterns("__pycache__", "*.sqlite3"),
    )
    for source in destination.rglob("*.py"):
        text = source.read_text()
        for ours, theirs in TO_CHANNELS:
            text = text.replace(ours, theirs)
        assert not CROSSWAY_NAMES.search(text), (source, CROSSWAY_NAMES.search(text))
        source.write_text(text)
    return destination


@pytest.mark.timeout(300)  # a whole tutorial's processes, on a loaded machine
def test_the_channels_migration_tutorial_moves_a_channels_project(
    tmp_path: Path, redis_url: str
) -> None:
    project = channels_project(tmp_path / "mysite")
    assert (
        "channels_redis.core.RedisChannelLayer" in (project / "django_chat/settings.py").read_text()
    )
    venv = Path(sys.executable).parent.parent
    (project / ".venv").symlink_to(venv)
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("PYTHONPATH", "DJANGO_SETTINGS_MODULE")
    }
    env |= {
        "REDIS_URL": redis_url,
        "CHAT_LAYER_PREFIX": f"tutorial-{uuid.uuid4().hex[:8]}",
        "CHAT_DB_PATH": str(tmp_path / "chat.sqlite3"),
    }
    lines = shell_lines(PAGE)
    with tutorial_run(**env) as run:
        for line in lines:
            line = line.replace("/path/to/crossway", str(REPO_ROOT))
            line = line.replace("~/mysite", str(project)).replace("mysite.", "django_chat.")
            if "pip " in line:
                check_install_line(line)
                continue
            if line.startswith("cd "):
                continue
            if "asgi-server" in line:
                argv, _, _ = run.argv(line)
                process = subprocess.Popen(argv, cwd=project, env=env)
                run.servers.append((process, run.port("8000")))
                wait_until_accepting("127.0.0.1", run.port("8000"), process)
                continue
            result = subprocess.run(
                ["bash", "-c", line],
                cwd=project,
                env=env,
                capture_output=True,
                text=True,
                timeout=180,
            )
            assert result.returncode == 0, (
                f"{line}\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
            )

        settings = (project / "django_chat/settings.py").read_text()
        assert '"asgi_server",' in settings and "channel_layers.redis.RedisChannelLayer" in settings
        assert "channels" not in (project / "django_chat/asgi.py").read_text()
        login = httpx.get(f"http://127.0.0.1:{run.port('8000')}/accounts/login/", timeout=10)
        assert login.status_code == 200 and b'name="password"' in login.content
