"""get_channel_layer(): configure(), CHANNEL_LAYERS_URL, Django's CHANNEL_LAYERS, and errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
import types
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

import channel_layers
from channel_layers import (
    configure,
    get_channel_layer,
    layer_config_from_url,
    reset_channel_layers,
)
from channel_layers.memory import InMemoryChannelLayer

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def clean_configuration(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No configure(), no URL and no Django: Django's settings are process-global and other
    tests may configure them, so the Django source is tested in subprocesses below."""
    monkeypatch.delenv("CHANNEL_LAYERS_URL", raising=False)
    monkeypatch.setattr(channel_layers, "_django_channel_layers", lambda: None)
    reset_channel_layers()
    yield
    reset_channel_layers()


def test_the_default_is_one_cached_in_memory_layer() -> None:
    layer = get_channel_layer()
    assert isinstance(layer, InMemoryChannelLayer)
    assert get_channel_layer() is layer and get_channel_layer("default") is layer
    reset_channel_layers()
    assert get_channel_layer() is not layer


class SlowLayer(InMemoryChannelLayer):
    """A layer that takes a while to build, so that threads asking at once would race."""

    def __init__(self) -> None:
        time.sleep(0.05)
        super().__init__()


def test_threads_asking_at_once_share_one_layer(monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.ModuleType("slow_layers")
    module.SlowLayer = SlowLayer  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "slow_layers", module)
    configure({"default": {"BACKEND": "slow_layers.SlowLayer"}})
    with ThreadPoolExecutor(8) as pool:
        layers = list(pool.map(lambda _: get_channel_layer(), range(8)))
    assert len({id(layer) for layer in layers}) == 1


def test_an_alias_nobody_configured_gives_none() -> None:
    assert get_channel_layer("analytics") is None


def test_the_url_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHANNEL_LAYERS_URL", "memory://?capacity=5&expiry=2.5&group_expiry=9")
    layer = get_channel_layer()
    assert isinstance(layer, InMemoryChannelLayer)
    assert (layer.capacity, layer.expiry, layer.group_expiry) == (5, 2.5, 9)


def test_a_redis_url_builds_the_redis_layer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHANNEL_LAYERS_URL", "redis://127.0.0.1:6399/2?prefix=chat")
    layer = get_channel_layer()
    assert type(layer).__module__ == "channel_layers.redis"
    assert type(layer).__name__ == "RedisChannelLayer"


@pytest.mark.parametrize(
    ("url", "backend", "config"),
    [
        ("memory://", "channel_layers.memory.InMemoryChannelLayer", {}),
        (
            "redis://:secret@cache:6380/3?prefix=chat&capacity=50&socket_timeout=2",
            "channel_layers.redis.RedisChannelLayer",
            {
                "prefix": "chat",
                "capacity": 50,
                "hosts": ["redis://:secret@cache:6380/3?socket_timeout=2"],
            },
        ),
        (
            "rediss://cache/0",
            "channel_layers.redis.RedisChannelLayer",
            {"hosts": ["rediss://cache/0"]},
        ),
        (
            "redis+pubsub://cache:6379?expiry=30",
            "channel_layers.redis_pubsub.RedisPubSubChannelLayer",
            {"expiry": 30.0, "hosts": ["redis://cache:6379"]},
        ),
    ],
)
def test_layer_urls(url: str, backend: str, config: dict[str, Any]) -> None:
    assert layer_config_from_url(url) == {"BACKEND": backend, "CONFIG": config}


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("amqp://broker", "use memory://, redis://"),
        ("memory://?hosts=x", "memory:// does not take 'hosts'"),
        ("memory://?capacity=lots", "capacity='lots' is not a number"),
    ],
)
def test_bad_urls_say_what_is_allowed(url: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        layer_config_from_url(url)


def test_configure_accepts_channels_backend_paths() -> None:
    configure(
        {
            "default": {
                "BACKEND": "channels.layers.InMemoryChannelLayer",
                "CONFIG": {"capacity": 7, "channel_capacity": {"http.*": 3}},
            },
            "other": {"BACKEND": "channel_layers.memory.InMemoryChannelLayer"},
        }
    )
    layer = get_channel_layer()
    assert isinstance(layer, InMemoryChannelLayer)
    assert layer.capacity == 7 and layer.get_capacity("http.request") == 3
    assert get_channel_layer("other") is not layer
    assert get_channel_layer("missing") is None  # as in Channels


def test_configure_replaces_built_layers() -> None:
    first = get_channel_layer()
    configure({"default": {"BACKEND": "channel_layers.memory.InMemoryChannelLayer"}})
    assert get_channel_layer() is not first


@pytest.mark.parametrize(
    ("spec", "error", "complaint"),
    [
        ({"CONFIG": {}}, ValueError, "needs a 'BACKEND' key"),
        ({"BACKEND": "nodots"}, ValueError, "not a dotted path"),
        ({"BACKEND": "no_such_module.Layer"}, ImportError, "cannot import no_such_module"),
        ({"BACKEND": "channel_layers.memory.Nope"}, ImportError, "has no 'Nope'"),
        ({"BACKEND": "collections.OrderedDict"}, TypeError, "not a BaseChannelLayer"),
        (
            {"BACKEND": "channel_layers.memory.InMemoryChannelLayer", "CONFIG": {"hosts": []}},
            TypeError,
            "'default'.*bad CONFIG.*hosts",
        ),
        (
            {"BACKEND": "channel_layers.memory.InMemoryChannelLayer", "CONFIG": {"capacity": 0}},
            ValueError,
            "capacity must be a positive int",
        ),
    ],
)
def test_configuration_errors_name_the_alias_and_the_fix(
    spec: dict[str, Any], error: type[Exception], complaint: str
) -> None:
    configure({"default": spec})
    with pytest.raises(error, match=complaint):
        get_channel_layer()


def test_configure_rejects_a_non_mapping() -> None:
    with pytest.raises(TypeError, match="takes a mapping"):
        configure([("default", {})])  # type: ignore[arg-type]


# --- Django's CHANNEL_LAYERS, each in a fresh interpreter -------------------------------------

DJANGO_PROBE = """
import json, os, sys
import channel_layers
settings_json = os.environ.get("PROBE_SETTINGS")
if settings_json is not None:
    from django.conf import settings
    settings.configure(**json.loads(settings_json))
if os.environ.get("PROBE_CONFIGURE"):
    channel_layers.configure(json.loads(os.environ["PROBE_CONFIGURE"]))
result = {}
for alias in ("default", "other"):
    layer = channel_layers.get_channel_layer(alias)
    result[alias] = None if layer is None else [type(layer).__name__, layer.capacity]
print(json.dumps(result))
"""


def probe(tmp_path: Path, **env: str) -> dict[str, Any]:
    """Run DJANGO_PROBE in a fresh interpreter with ``env``; return what it found."""
    environment = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    environment.pop("CHANNEL_LAYERS_URL", None)
    environment["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(tmp_path)])
    done = subprocess.run(
        [sys.executable, "-c", DJANGO_PROBE],
        env={**environment, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


MEMORY_7 = {"BACKEND": "channels.layers.InMemoryChannelLayer", "CONFIG": {"capacity": 7}}


def test_django_channel_layers_are_read(tmp_path: Path) -> None:
    settings = {"CHANNEL_LAYERS": {"default": MEMORY_7}}
    found = probe(tmp_path, PROBE_SETTINGS=json.dumps(settings))
    assert found == {"default": ["InMemoryChannelLayer", 7], "other": None}


def test_django_settings_module_counts_before_first_access(tmp_path: Path) -> None:
    (tmp_path / "probe_settings.py").write_text(
        textwrap.dedent(
            f"""
            SECRET_KEY = "test"
            CHANNEL_LAYERS = {{"other": {MEMORY_7!r}}}
            """
        )
    )
    found = probe(tmp_path, DJANGO_SETTINGS_MODULE="probe_settings")
    assert found == {"default": None, "other": ["InMemoryChannelLayer", 7]}


def test_empty_django_channel_layers_means_none_as_in_channels(tmp_path: Path) -> None:
    found = probe(tmp_path, PROBE_SETTINGS=json.dumps({"CHANNEL_LAYERS": {}}))
    assert found == {"default": None, "other": None}


def test_django_without_channel_layers_falls_back_to_memory(tmp_path: Path) -> None:
    found = probe(tmp_path, PROBE_SETTINGS=json.dumps({"DEBUG": True}))
    assert found == {"default": ["InMemoryChannelLayer", 100], "other": None}


def test_configure_wins_over_django(tmp_path: Path) -> None:
    ours = {"default": {"BACKEND": "channel_layers.memory.InMemoryChannelLayer"}}
    found = probe(
        tmp_path,
        PROBE_SETTINGS=json.dumps({"CHANNEL_LAYERS": {"default": MEMORY_7}}),
        PROBE_CONFIGURE=json.dumps(ours),
    )
    assert found == {"default": ["InMemoryChannelLayer", 100], "other": None}


def test_a_unix_socket_url_keeps_its_slashes_in_the_config_and_the_logs() -> None:
    from channel_layers.startup import describe_channel_layer

    config = layer_config_from_url("unix:///tmp/crossway-r/redis.sock?db=2")
    assert config["CONFIG"]["hosts"] == ["unix:///tmp/crossway-r/redis.sock?db=2"]
    layer = channel_layers.build_channel_layer(config)
    # Was "RedisChannelLayer unix:/tmp/crossway-r/redis.sock://" (urlunsplit drops the "//").
    assert describe_channel_layer(layer) == "RedisChannelLayer unix:///tmp/crossway-r/redis.sock"
