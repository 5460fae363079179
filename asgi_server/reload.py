"""``--reload``: notice when a watched source file changes, so the supervisor restarts the worker.

Two watchers with one interface (``directories``, ``changes()``): watchfiles' when that package
is installed (it is optional, not a dependency), else a poller that compares modification times
every ``--reload-delay`` seconds. Both honour ``--reload-include`` and ``--reload-exclude``, glob
patterns matched against file names (excludes also prune directories, e.g. ``.git``).
"""

from __future__ import annotations

import fnmatch
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from asgi_server.config import Config


class Watcher(Protocol):
    """What the supervisor asks of a watcher."""

    directories: list[str]

    def changes(self) -> set[str]:
        """Paths changed, added or removed since the last call (empty when none)."""


class PathFilter:
    """Which paths count: included by name, and neither they nor a parent directory excluded."""

    def __init__(self, includes: tuple[str, ...], excludes: tuple[str, ...]) -> None:
        self.includes = includes
        self.excludes = excludes

    def excluded(self, name: str) -> bool:
        """Whether a file or directory name matches an exclude pattern."""
        return any(fnmatch.fnmatch(name, pattern) for pattern in self.excludes)

    def __call__(self, path: str) -> bool:
        """Whether a change to ``path`` should reload."""
        parts = Path(path).parts
        if any(self.excluded(part) for part in parts[-4:]):
            return False
        return any(fnmatch.fnmatch(parts[-1], pattern) for pattern in self.includes)


def watched_directories(config: Config) -> list[str]:
    """The absolute directories to watch: --reload-dir, else the current directory."""
    return [os.path.abspath(directory) for directory in (config.reload_dirs or (".",))]


class PollingWatcher:
    """Scans the watched trees' modification times, at most once per ``reload_delay``."""

    def __init__(self, config: Config) -> None:
        self.directories = watched_directories(config)
        self.filter = PathFilter(config.reload_includes, config.reload_excludes)
        self.delay = config.reload_delay
        self._next_scan = 0.0
        self._mtimes = self._scan()

    def _files(self) -> Iterator[str]:
        for directory in self.directories:
            for root, dirs, files in os.walk(directory):
                dirs[:] = [name for name in dirs if not self.filter.excluded(name)]
                for name in files:
                    path = os.path.join(root, name)
                    if self.filter(path):
                        yield path

    def _scan(self) -> dict[str, int]:
        mtimes = {}
        for path in self._files():
            try:
                mtimes[path] = os.stat(path).st_mtime_ns
            except OSError:  # removed while we walked
                continue
        return mtimes

    def changes(self) -> set[str]:
        """Rescan when due and return the paths whose mtime changed, appeared or vanished."""
        now = time.monotonic()
        if now < self._next_scan:
            return set()
        self._next_scan = now + self.delay
        old, new = self._mtimes, self._scan()
        self._mtimes = new
        changed = {path for path, mtime in new.items() if old.get(path) != mtime}
        return changed | (old.keys() - new.keys())


class WatchfilesWatcher:
    """Kernel notifications through watchfiles (inotify, FSEvents), polled without blocking."""

    def __init__(self, config: Config, watchfiles: Any) -> None:
        self.directories = watched_directories(config)
        path_filter = PathFilter(config.reload_includes, config.reload_excludes)
        self._events = watchfiles.watch(
            *self.directories,
            watch_filter=lambda _change, path: path_filter(path),
            debounce=50,
            step=10,
            rust_timeout=10,  # ms: return at once when nothing changed
            yield_on_timeout=True,
            raise_interrupt=False,
        )
        next(self._events)  # the generator starts watching on its first step: start it now

    def changes(self) -> set[str]:
        """The paths changed since the last call."""
        return {path for _change, path in next(self._events, set())}


def make_watcher(config: Config) -> Watcher:
    """watchfiles' watcher when it is installed, else the mtime poller."""
    try:
        import watchfiles  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return PollingWatcher(config)
    return WatchfilesWatcher(config, watchfiles)
