"""The site of docs/tutorials/application.md, built step by step in one file.

``python examples/tutorial_app/site.py --port 8000`` serves it; ``--help`` lists its options;
``--workers 2`` runs two processes on an embedded Redis. ``client.py`` beside it calls its WAMP
procedure with autobahn-python. ``tests/docs/test_tutorial_application.py`` runs the tutorial.
"""

from __future__ import annotations

# --8<-- [start:app]
import asyncio
import html
from datetime import timedelta
from typing import Any

from consumers.app import Application, Context, Request

app = Application("site")
# --greeting on the command line, or SITE_GREETING in the environment:
app.option("greeting", str, default="Hello", help="How the site greets.")
# --8<-- [end:app]


# --8<-- [start:json]
@app.http.get("/hello/{name}")
async def hello(request: Request, name: str) -> dict[str, str]:
    return {"message": f"{app.settings['greeting']}, {name}!"}  # a dict is sent as JSON


@app.http.get("/square/{n:int}")  # /square/seven is a 404: it is not an int
async def square(request: Request, n: int) -> dict[str, int]:
    return {"n": n, "square": n * n}


# --8<-- [end:json]


# --8<-- [start:form]
PAGE = """<!doctype html>
<link rel="stylesheet" href="/static/style.css">
<form method="post" action="/greet"><input name="name"> <button>Greet me</button></form>
"""


@app.http.get("/")
async def index(request: Request) -> str:
    return PAGE  # a str is sent as HTML


@app.http.post("/greet")
async def greet(request: Request) -> str:
    name = request.form.get("name", "stranger")
    await app.wamp.publish("site.greeted", name)  # step 4 subscribes to it
    return f"<p>{html.escape(app.settings['greeting'])}, {html.escape(name)}!</p>"


# --8<-- [end:form]

# --8<-- [start:static]
app.http.serve("/static", "static/")  # the directory beside this file
# --8<-- [end:static]


# --8<-- [start:wamp]
@app.wamp.register("site.add", invoke="roundrobin")  # see step 12 of the tutorial
async def add(ctx: Context, a: int, b: int) -> int:
    return a + b


@app.wamp.subscribe("site.greeted")
async def on_greeted(ctx: Context, name: str) -> None:
    print(f"greeted: {name}", flush=True)


# --8<-- [end:wamp]


# --8<-- [start:ready]
@app.on("app.ready")
async def ready(ctx: Context) -> None:
    print(f"site is ready, greeting {app.settings['greeting']!r}", flush=True)


# --8<-- [end:ready]


# --8<-- [start:cron]
@app.cron(every=timedelta(seconds=5))
async def tick(ctx: Context) -> None:
    print(f"tick {ctx.details['tick']}", flush=True)


# --8<-- [end:cron]

# --8<-- [start:queue]
thumbnails = app.queue("thumbnails", workers=2)  # two jobs at once in each process


@thumbnails.task("thumbnail.make", retries=2)
async def make_thumbnail(ctx: Any, name: str) -> str:
    await asyncio.sleep(0.1)  # the slow part: resizing an image
    return f"{name}-128x128.png"


@app.http.post("/thumbnails")
async def queue_thumbnail(request: Request) -> dict[str, str]:
    handle = await thumbnails.enqueue("thumbnail.make", request.json["name"])
    return {"thumbnail": await handle.result(timeout=30)}


# --8<-- [end:queue]

# --8<-- [start:main]
if __name__ == "__main__":
    app.run()  # the command line: every asgi-server option, and --greeting
# --8<-- [end:main]
