"""Applications the subprocess tests serve with ``python -m asgi_server tests.web.apps:NAME``."""

from __future__ import annotations

import os

from consumers.web import StaticFiles

#: The directory in the STATIC_ROOT environment variable (set by the test).
static_app = StaticFiles(os.environ.get("STATIC_ROOT", "."))
