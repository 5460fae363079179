"""The docs site builds with ``mkdocs build --strict`` (no broken link, anchor or reference),
and its generated reference tables hold what the code holds."""

from __future__ import annotations

import dataclasses
import html
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from asgi_server.config import Config
from consumers.wamp.settings import AuthLimits, Limits
from tests.conftest import REPO_ROOT


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site, built strictly into a temporary directory (never into the checkout's site/)."""
    out = tmp_path_factory.mktemp("site")
    env = os.environ | {"NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-5000:]
    assert "WARNING" not in result.stderr, result.stderr[-5000:]
    return out


def page_text(site: Path, page: str) -> str:
    """A built page's text: tags dropped, entities decoded, whitespace squeezed."""
    raw = (site / page / "index.html").read_text(encoding="utf-8")
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", raw)))


@pytest.mark.timeout(300)  # the first one builds the site
def test_the_site_builds_strictly_with_every_page(site: Path) -> None:
    sources = sorted(REPO_ROOT.glob("docs/**/*.md"))
    assert len(sources) >= 20
    for source in sources:
        page = source.relative_to(REPO_ROOT / "docs").with_suffix("")
        built = site / ("" if page.name == "index" else page) / "index.html"
        assert built.is_file(), f"{source} was not built"
    assert not (site / "hooks").exists(), "the build hook is code, not a page to publish"


def test_no_page_installs_crossway_by_name() -> None:
    """Crossway is on no index: a page installs it from a checkout or a file, never by name."""
    for source in REPO_ROOT.glob("docs/**/*.md"):
        text = source.read_text(encoding="utf-8")
        by_name = re.findall(r"pip install[^`\n]*crossway\[[^\]]*\]'?(?! @)", text)
        assert by_name == [], source


@pytest.mark.timeout(300)  # the first one builds the site
def test_the_options_page_lists_every_config_field_with_its_default(site: Path) -> None:
    raw = (site / "reference/options/index.html").read_text(encoding="utf-8")
    rows = {}
    for row in re.findall(r"<tr>(.*?)</tr>", raw, re.DOTALL):
        cells = [
            html.unescape(re.sub(r"<[^>]+>", "", c)).strip()
            for c in re.findall(r"<td>(.*?)</td>", row, re.DOTALL)
        ]
        if cells and cells[0].startswith("--"):
            rows[cells[0].split(" ")[0]] = cells
    for field in dataclasses.fields(Config):
        if not field.metadata.get("cli", True):
            continue
        flag = field.metadata.get("flag", "--" + field.name.replace("_", "-"))
        assert flag in rows, f"{flag} is missing from the options page"
        default = field.default
        if default is None or default == ():
            expected = "none"
        elif isinstance(default, tuple):
            expected = ", ".join(default)
        elif default == "":
            expected = '""'
        else:
            expected = str(default)
        assert rows[flag][1] == expected, flag
        assert rows[flag][2].startswith(field.metadata["help"])


@pytest.mark.timeout(300)  # the first one builds the site
def test_the_limits_and_settings_pages_show_the_code_defaults(site: Path) -> None:
    limits = page_text(site, "reference/limits")
    assert "[[default" not in limits
    assert f"--limit-request-head {Config.limit_request_head // 1024} KiB" in limits
    assert f"--timeout-keep-alive {Config.timeout_keep_alive:g} s" in limits
    assert f"--h2-max-reset-streams {Config.h2_max_reset_streams} " in limits
    assert f"--timeout-tls-handshake {Config.timeout_tls_handshake:g} s" in limits
    wamp = page_text(site, "reference/wamp")
    for field in (*dataclasses.fields(Limits), *dataclasses.fields(AuthLimits)):
        assert f"{field.name} {field.default} " in wamp, field.name
    layers = page_text(site, "reference/channel-layer-settings")
    assert "heartbeat_ttl - 30 -" in layers and "idle_timeout - - 60" in layers


@pytest.mark.timeout(300)  # the first one builds the site
def test_every_picture_a_page_shows_is_in_the_site(site: Path) -> None:
    pages = list(site.glob("**/index.html"))
    pictures = 0
    for page in pages:
        for source in re.findall(r'<img[^>]* src="([^"]+)"', page.read_text(encoding="utf-8")):
            if not source.startswith(("http:", "https:", "data:")):
                pictures += 1
                assert (page.parent / source).is_file(), f"{page}: {source}"
    assert pictures >= sum(1 for _ in (REPO_ROOT / "benchmarks").glob("*.png"))


@pytest.mark.timeout(300)  # the first one builds the site
def test_the_api_reference_renders_the_docstrings(site: Path) -> None:
    assert Config.__doc__ is not None
    server = page_text(site, "reference/api/asgi_server")
    assert Config.__doc__.split(":")[0] in server
    raw = (site / "reference/api/asgi_server/index.html").read_text(encoding="utf-8")
    assert 'id="asgi_server.server.Server.serve"' in raw
    layers = page_text(site, "reference/api/channel_layers")
    assert "group_send" in layers and "RedisChannelLayer" in layers
    wamp = page_text(site, "reference/api/consumers_wamp")
    assert "publish_sync" in wamp and "Realm" in wamp


def test_every_tutorial_has_a_test_that_names_it() -> None:
    """docs/development.md's table maps each tutorial to its tests; a test names the page, or
    the page names the test (the demos' browser tests)."""
    table = (REPO_ROOT / "docs/development.md").read_text(encoding="utf-8")
    rows = dict(re.findall(r"^\| \[[^\]]+\]\((tutorials/[\w-]+\.md)\) \| ([^|]+) \|", table, re.M))
    tutorials = {f"tutorials/{p.name}" for p in (REPO_ROOT / "docs/tutorials").glob("*.md")}
    assert set(rows) == tutorials, "add each tutorial (and only those) to development.md's table"
    for page, tests in rows.items():
        named = [REPO_ROOT / name for name in re.findall(r"`(tests/[\w/]+\.py)`", tests)]
        assert named, page
        for test in named:
            assert test.is_file(), test
        text = (REPO_ROOT / "docs" / page).read_text(encoding="utf-8")
        linked = [
            t
            for t in named
            if page in t.read_text(encoding="utf-8") or str(t.relative_to(REPO_ROOT)) in text
        ]
        assert linked, f"{page}: its test should name it (PAGE = ...), or it its test"


def test_the_limits_page_has_a_row_for_every_limit_and_timeout() -> None:
    """Each Config field that bounds something (limit_*, timeout_*, ws_max_*, ws_ping_*,
    h2_max_*, h2_stream_window) has its flag in the Limits table."""
    rows = [
        line
        for line in (REPO_ROOT / "docs/reference/limits.md").read_text().splitlines()
        if line.startswith("| `--")
    ]
    bounding = ("limit_", "timeout_", "ws_max_", "ws_ping_", "h2_max_", "h2_stream_window")
    for field in dataclasses.fields(Config):
        if field.name.startswith(bounding):
            flag = field.metadata.get("flag", "--" + field.name.replace("_", "-"))
            assert any(f"`{flag}`" in row.split(" | ")[0] for row in rows), flag


def test_the_wamp_page_names_every_router_argument_and_realm_field() -> None:
    """The Router and Realm tables of docs/reference/wamp.md are hand-written: each argument
    and field of the code must have its row, with the code's default."""
    import inspect

    from consumers.wamp import Realm, Router

    text = (REPO_ROOT / "docs/reference/wamp.md").read_text()
    for name, parameter in inspect.signature(Router).parameters.items():
        shown = "(required)" if parameter.default is parameter.empty else None
        row = re.search(rf"^\| `{name}` \| ([^|]+) \|", text, re.MULTILINE)
        assert row is not None, f"Router({name}=...) has no row"
        if shown or isinstance(parameter.default, (str, float)):
            assert row[1].strip() == (shown or f"`{parameter.default!r}`".replace("'", '"'))
    for field in dataclasses.fields(Realm):
        row = re.search(rf"^\| `{field.name}` \| ([^|]+) \|", text, re.MULTILINE)
        assert row is not None, f"Realm.{field.name} has no row"
        if field.default is not dataclasses.MISSING:
            assert row[1].strip() == f"`{field.default!r}`".replace("'", '"'), field.name


def test_the_logging_page_has_a_row_for_every_named_logger() -> None:
    """Each logger the code names (``getLogger("consumers.tasks")``) is in a row of the
    Logging page's table (itself, or its package's row for ``__name__`` loggers)."""
    rows = [
        line.split(" | ")[0]
        for line in (REPO_ROOT / "docs/reference/logging.md").read_text().splitlines()
        if line.startswith("| `")
    ]
    named: set[str] = set()
    for package in ("asgi_server", "channel_layers", "consumers"):
        for source in (REPO_ROOT / package).rglob("*.py"):
            text = source.read_text()
            named |= set(re.findall(r'getLogger\("([\w.]+)"\)', text))
            if "getLogger(__name__)" in text:
                module = source.relative_to(REPO_ROOT).with_suffix("").as_posix()
                named.add(module.replace("/", ".").removesuffix(".__init__"))
    assert len(named) >= 15

    def covered(name: str) -> bool:
        # By its own row, by the rows below a package's own logger, or by a subpackage's row
        # (channel_layers.redis covers channel_layers.redis.durable's __name__ logger).
        parts = name.split(".")
        ancestors = [".".join(parts[:i]) for i in range(2, len(parts))]
        shown = [f"`{name}`", f"`{name}.", *(f"`{a}`" for a in ancestors)]
        return any(text in row for text in shown for row in rows)

    missing = [name for name in sorted(named) if not covered(name)]
    assert missing == [], "add these loggers to docs/reference/logging.md"


def test_the_readme_and_the_home_page_link_every_tutorial() -> None:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    home = (REPO_ROOT / "docs/index.md").read_text(encoding="utf-8")
    for page in sorted((REPO_ROOT / "docs/tutorials").glob("*.md")):
        assert f"](docs/tutorials/{page.name})" in readme, f"README does not link {page.name}"
        assert f"](tutorials/{page.name})" in home, f"docs/index.md does not link {page.name}"
