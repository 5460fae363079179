"""The multi-room chat demo: ``asgi-server examples.chat.app:application``."""
