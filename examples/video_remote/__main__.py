"""``python -m examples.video_remote [--port 8000] [--host 0.0.0.0] [--workers 2]``: serve the
video remote demo (every asgi-server option; ``--help`` lists them)."""

# Absolute, not relative: with --workers, each worker process loads this file by its path
# (consumers.app.loader), outside its package.
from examples.video_remote.app import app

if __name__ == "__main__":
    app.run()
