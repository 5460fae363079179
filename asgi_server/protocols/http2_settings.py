"""The HTTP/2 core's limits, and the settings we announce to the peer through h2."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from h2.settings import SettingCodes, Settings

MAX_WINDOW = 2**31 - 1


@dataclass(frozen=True, slots=True)
class H2Limits:
    """What the HTTP/2 core enforces (all from Config; the defaults here are only for tests)."""

    max_concurrent_streams: int = 100
    stream_window: int = 256 * 1024
    header_table_size: int = 4096
    max_reset_streams: int = 100
    max_control_frames: int = 256
    limit_request_line: int = 8192
    limit_request_head: int = 16384
    limit_request_headers: int = 100
    limit_request_body: int | None = None

    @classmethod
    def from_config(cls, config: Any) -> H2Limits:
        """Take the limits from a ``Config``."""
        return cls(
            config.h2_max_concurrent_streams,
            config.h2_stream_window,
            config.h2_header_table_size,
            config.h2_max_reset_streams,
            config.h2_max_control_frames,
            config.limit_request_line,
            config.limit_request_head,
            config.limit_request_headers,
            config.limit_request_body,
        )

    @property
    def max_header_list_size(self) -> int:
        """SETTINGS_MAX_HEADER_LIST_SIZE: the head limit plus the 32 bytes per field that
        RFC 9113 §6.5.2 counts, so a head that fits HTTP/1.1's limits fits here too."""
        return self.limit_request_head + 32 * self.limit_request_headers


class ServerSettings(Settings):
    """Our settings as h2 keeps them, except the stream limit h2 would enforce itself.

    h2 ends the whole connection when a peer opens a stream past MAX_CONCURRENT_STREAMS; RFC 9113
    §5.1.2 lets a server refuse just that stream, which a client retries. The core counts and
    refuses streams itself (including those whose app still runs after a reset), so h2's own
    check is turned off here while the advertised value stays in the SETTINGS frame.
    """

    @property
    def max_concurrent_streams(self) -> int:
        return MAX_WINDOW

    @max_concurrent_streams.setter
    def max_concurrent_streams(self, value: int) -> None:
        self[SettingCodes.MAX_CONCURRENT_STREAMS] = value


def server_settings(limits: H2Limits) -> ServerSettings:
    """The settings of our SETTINGS frame (RFC 9113 §6.5.2) for ``limits``."""
    return ServerSettings(
        client=False,
        initial_values={
            SettingCodes.MAX_CONCURRENT_STREAMS: limits.max_concurrent_streams,
            SettingCodes.INITIAL_WINDOW_SIZE: limits.stream_window,
            SettingCodes.HEADER_TABLE_SIZE: limits.header_table_size,
            SettingCodes.MAX_HEADER_LIST_SIZE: limits.max_header_list_size,
            SettingCodes.ENABLE_PUSH: 0,
            # RFC 8441: extended CONNECT, so WebSockets may run on HTTP/2 streams.
            SettingCodes.ENABLE_CONNECT_PROTOCOL: 1,
        },
    )
