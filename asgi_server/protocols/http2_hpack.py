"""A stateless HPACK encoder for responses, whose field encodings are cached across connections.

hpack's encoder searches and updates the dynamic table for every field of every response, a fifth
of a small response's CPU. Responses repeat the same few fields (server, content-type, lengths),
and a field written without indexing (RFC 7541 §6.2.2) encodes to the same bytes on every
connection, whatever the table holds. So this encoder never adds to the dynamic table: a name in
the static table is referenced by index, the value is a raw literal, and each (name, value) pair's
bytes are computed once. The cost is a few bytes per field that a dynamic table would have saved.
h2 takes it in place of its own encoder (``H2Connection.encoder``).
"""

from __future__ import annotations

from collections.abc import Iterable

from hpack.table import HeaderTable

# RFC 7541 Appendix A: the first static index of each name, and whole :status entries.
_STATIC_NAMES: dict[bytes, int] = {}
for _index, (_name, _) in enumerate(HeaderTable.STATIC_TABLE, 1):
    _STATIC_NAMES.setdefault(_name, _index)
_INDEXED = {
    (name, value): bytes((0x80 | index,))
    for index, (name, value) in enumerate(HeaderTable.STATIC_TABLE, 1)
    if name == b":status"
}
_CACHE_SIZE = 4096  # bounded: values made per response (dates, ids) stop being cached
_CACHE: dict[tuple[bytes, bytes], bytes] = {}  # shared by every connection


def encode_integer(value: int, prefix_bits: int, flags: int) -> bytes:
    """An HPACK integer with an N-bit prefix (RFC 7541 §5.1), ``flags`` in the first byte."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes((flags | value,))
    out = bytearray((flags | limit,))
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def encode_field(name: bytes, value: bytes) -> bytes:
    """One field as a literal without indexing (RFC 7541 §6.2.2), its name indexed if static."""
    indexed = _INDEXED.get((name, value))
    if indexed is not None:
        return indexed
    index = _STATIC_NAMES.get(name)
    if index is not None:
        head = encode_integer(index, 4, 0x00)
    else:
        head = b"\x00" + encode_integer(len(name), 7, 0x00) + name
    return head + encode_integer(len(value), 7, 0x00) + value


class StatelessEncoder:
    """The encoder h2 calls (``encode`` and ``header_table_size``), using no dynamic table."""

    def __init__(self) -> None:
        # RFC 7541 §4.2: we announce a table size of 0 in the first block (and after the
        # peer changes its setting), which is always within what the peer allows.
        self._announce = True
        self._table_size = 4096

    @property
    def header_table_size(self) -> int:
        """The peer's SETTINGS_HEADER_TABLE_SIZE (we use none of it)."""
        return self._table_size

    @header_table_size.setter
    def header_table_size(self, value: int) -> None:
        self._table_size = value
        self._announce = True

    def encode(self, headers: Iterable[tuple[bytes, bytes]], huffman: bool = True) -> bytes:
        """Encode a header block (``huffman`` is ignored: values go raw, which is cheaper)."""
        cache = _CACHE
        parts = []
        if self._announce:
            self._announce = False
            parts.append(b"\x20")  # dynamic table size update: 0
        for field in headers:
            name, value = field[0], field[1]
            encoded = cache.get((name, value))
            if encoded is None:
                encoded = encode_field(name, value)
                if len(cache) < _CACHE_SIZE:
                    cache[(name, value)] = encoded
            parts.append(encoded)
        return b"".join(parts)
