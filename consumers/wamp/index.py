"""An index of URI patterns under the three match policies, for the broker and the dealer.

A publish or a call must not scan every pattern (the nexus lesson in STYLE.md). Exact URIs are a
dict; prefixes are a dict plus the set of prefix lengths in use, so a lookup tries one slice per
distinct length; wildcards are a trie per component count whose empty edge is the wildcard, so a
lookup walks at most two branches per component.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from .uris import MatchPolicy

T = TypeVar("T")


@dataclass
class _Node(Generic[T]):
    children: dict[str, _Node[T]] = field(default_factory=dict)
    value: T | None = None


def wildcard_rank(pattern: str) -> tuple[int, int, str]:
    """The specificity of a wildcard pattern, larger is more specific: the later its first
    wildcard component, then the more concrete components, then the pattern itself (a stable tie
    break)."""
    parts = pattern.split(".")
    first_wildcard = next((i for i, part in enumerate(parts) if part == ""), len(parts))
    return (first_wildcard, sum(1 for part in parts if part), pattern)


class PatternIndex(Generic[T]):
    """Values stored under ``(uri, match)``; finds all values matching a URI, or the best one."""

    def __init__(self) -> None:
        self._exact: dict[str, T] = {}
        self._prefix: dict[str, T] = {}
        self._prefix_lengths: Counter[int] = Counter()
        self._wildcard: dict[str, T] = {}
        self._tries: dict[int, _Node[T]] = {}

    def __len__(self) -> int:
        return len(self._exact) + len(self._prefix) + len(self._wildcard)

    def get(self, uri: str, match: MatchPolicy) -> T | None:
        """The value stored under exactly this URI and policy."""
        return self._table(match).get(uri)

    def add(self, uri: str, match: MatchPolicy, value: T) -> None:
        """Store ``value`` under ``(uri, match)`` (replacing any value there)."""
        table = self._table(match)
        if match == "prefix" and uri not in table:
            self._prefix_lengths[len(uri)] += 1
        elif match == "wildcard":
            self._trie_node(uri, create=True).value = value  # type: ignore[union-attr]
        table[uri] = value

    def remove(self, uri: str, match: MatchPolicy) -> None:
        """Forget the value under ``(uri, match)`` (nothing happens if there is none)."""
        table = self._table(match)
        if table.pop(uri, None) is None:
            return
        if match == "prefix":
            self._prefix_lengths[len(uri)] -= 1
            if not self._prefix_lengths[len(uri)]:
                del self._prefix_lengths[len(uri)]
        elif match == "wildcard":
            self._trie_remove(uri)

    def values(self) -> Iterator[T]:
        """Every stored value."""
        yield from self._exact.values()
        yield from self._prefix.values()
        yield from self._wildcard.values()

    def matching(self, uri: str) -> list[T]:
        """Every value whose pattern matches ``uri`` (exact, then prefixes, then wildcards)."""
        found: list[T] = []
        exact = self._exact.get(uri)
        if exact is not None:
            found.append(exact)
        found.extend(value for _, value in self._prefixes_of(uri))
        found.extend(value for _, value in self._wildcards_of(uri))
        return found

    def best(self, uri: str) -> T | None:
        """The most specific match (the dealer's rule): exact, else the longest prefix, else the
        highest-ranked wildcard (see ``wildcard_rank``)."""
        exact = self._exact.get(uri)
        if exact is not None:
            return exact
        prefixes = list(self._prefixes_of(uri))
        if prefixes:
            return max(prefixes, key=lambda item: len(item[0]))[1]
        wildcards = list(self._wildcards_of(uri))
        if wildcards:
            return max(wildcards, key=lambda item: wildcard_rank(item[0]))[1]
        return None

    def _table(self, match: MatchPolicy) -> dict[str, T]:
        if match == "exact":
            return self._exact
        return self._prefix if match == "prefix" else self._wildcard

    def _prefixes_of(self, uri: str) -> Iterator[tuple[str, T]]:
        for length in self._prefix_lengths:
            if length <= len(uri):
                value = self._prefix.get(uri[:length])
                if value is not None:
                    yield uri[:length], value

    def _wildcards_of(self, uri: str) -> Iterator[tuple[str, T]]:
        parts = uri.split(".")
        root = self._tries.get(len(parts))
        if root is None:
            return
        # Depth-first over (node, path so far); "" is the wildcard edge.
        stack: list[tuple[_Node[T], int, tuple[str, ...]]] = [(root, 0, ())]
        while stack:
            node, depth, path = stack.pop()
            if depth == len(parts):
                if node.value is not None:
                    yield ".".join(path), node.value
                continue
            for edge in {parts[depth], ""}:
                child = node.children.get(edge)
                if child is not None:
                    stack.append((child, depth + 1, (*path, edge)))

    def _trie_node(self, pattern: str, create: bool) -> _Node[T] | None:
        parts = pattern.split(".")
        node = self._tries.get(len(parts))
        if node is None:
            if not create:
                return None
            node = self._tries[len(parts)] = _Node()
        for part in parts:
            child = node.children.get(part)
            if child is None:
                if not create:
                    return None
                child = node.children[part] = _Node()
            node = child
        return node

    def _trie_remove(self, pattern: str) -> None:
        parts = pattern.split(".")
        root = self._tries.get(len(parts))
        if root is None:
            return
        trail = [root]
        for part in parts:
            trail.append(trail[-1].children[part])
        trail[-1].value = None
        # Prune empty branches bottom-up so the trie does not keep dead nodes.
        for depth in range(len(parts) - 1, -1, -1):
            child = trail[depth + 1]
            if child.value is None and not child.children:
                del trail[depth].children[parts[depth]]
        if not root.children:
            del self._tries[len(parts)]
