"""``python -m asgi_server module:attr [options]``."""

from asgi_server.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
