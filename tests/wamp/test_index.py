"""The pattern index: exact, prefix and wildcard lookups without scanning every pattern."""

from __future__ import annotations

from consumers.wamp.index import PatternIndex, wildcard_rank
from consumers.wamp.uris import uri_matches, valid_uri


def test_matching_finds_every_policy() -> None:
    index = PatternIndex[str]()
    index.add("a.b.c", "exact", "exact")
    index.add("a.b", "prefix", "p2")
    index.add("a", "prefix", "p1")
    index.add("a.x", "prefix", "px")
    index.add("a..c", "wildcard", "w1")
    index.add("..c", "wildcard", "w2")
    index.add("a.b.", "wildcard", "w3")
    index.add("a..", "wildcard", "w4")
    index.add("a.b", "wildcard", "short")
    assert sorted(index.matching("a.b.c")) == ["exact", "p1", "p2", "w1", "w2", "w3", "w4"]
    assert sorted(index.matching("a.bc")) == ["p1", "p2"]
    assert index.matching("b.b.c") == ["w2"]
    assert index.best("a.b.c") == "exact"
    assert index.best("a.b.d") == "p2"  # the longest prefix
    index.remove("a.b", "prefix")
    index.remove("a", "prefix")
    assert index.best("a.b.c") == "exact"
    index.remove("a.b.c", "exact")
    assert index.best("a.b.c") == "w3"  # first wildcard latest: most specific


def test_removal_prunes_and_forgets() -> None:
    index = PatternIndex[int]()
    for i, pattern in enumerate(["a..c", "a.b.", "..c"]):
        index.add(pattern, "wildcard", i)
    index.add("x", "prefix", 9)
    for pattern in ["a..c", "a.b.", "..c"]:
        index.remove(pattern, "wildcard")
    index.remove("x", "prefix")
    index.remove("never", "exact")
    assert len(index) == 0 and index.matching("a.b.c") == []
    assert index._tries == {} and not index._prefix_lengths


def test_index_agrees_with_a_brute_force_scan() -> None:
    patterns = [
        ("com.a.b", "exact"),
        ("com.a", "prefix"),
        ("com.", "prefix"),
        ("com..b", "wildcard"),
        (".a.", "wildcard"),
        ("com.a.", "wildcard"),
        ("..", "wildcard"),
    ]
    index = PatternIndex[tuple[str, str]]()
    for pattern in patterns:
        index.add(*pattern, pattern)  # type: ignore[arg-type]
    for uri in ["com.a.b", "com.a", "com.ab.b", "org.a.x", "com.a.b.c", "x.y.z", "c"]:
        expected = {p for p in patterns if uri_matches(p[0], p[1], uri)}  # type: ignore[arg-type]
        assert set(index.matching(uri)) == expected, uri


def test_wildcard_rank_and_uri_checks() -> None:
    assert wildcard_rank("a.b..d") > wildcard_rank("a..c.d") > wildcard_rank("..c.d")
    assert valid_uri("com.app_1.x", "strict") and not valid_uri("com.App", "strict")
    assert valid_uri("com.App-1", "loose") and not valid_uri("com.a b", "loose")
    assert valid_uri("com..x", "strict", "wildcard") and not valid_uri("com..x", "strict")
    assert not valid_uri("", "loose") and not valid_uri(None, "loose")
