"""``python -m examples.video_remote [--port 8000] [--host 0.0.0.0] [--workers 2]``: serve the
video remote demo (every asgi-server option; ``--help`` lists them)."""

from .app import app

if __name__ == "__main__":
    app.run()
