"""The Application example of issue 15: ``python examples/app/site.py`` (or
``asgi-server examples.app.site:app``); ``python examples/app/site.py --help`` lists options."""

from __future__ import annotations

import sys
from datetime import timedelta
from typing import Any

from consumers.app import Application

other_app = Application("blog")


@other_app.http.get("/blog/:slug/")
async def post(request: Any, slug: str) -> str:
    return f"<h1>{slug}</h1>"


app = Application("site")
app.option("frequency", int, default=5)


@app.http.get("/user/{id:int}/")  # also Express-style "/user/:id/"
async def user(request: Any, id: int) -> dict[str, int]:
    return {"id": id}  # dict/list -> JSON, str -> HTML, or a Response


@app.http.post("/form")
def form(request: Any) -> Any:
    return app.render("form.html", {"data": request.form})  # sync runs in the thread pool


app.http.serve("/static", "static/", allow_index=False)


@app.wamp.register("auth.signin")  # name defaults to "<app name>.<function name>"
async def signin(ctx: Any, username: str, password: str) -> dict[str, Any]:
    user_id = 7 if password == "secret" else None
    if user_id is not None:
        await ctx.publish("auth.signedin", user_id)
    return {"user": username, "ok": user_id is not None}


signed_in: list[int] = []


@app.wamp.subscribe("auth.signedin", limit_calls=3)
def on_signed_in(ctx: Any, user_id: int) -> None:
    signed_in.append(user_id)


@app.wamp.register()
def signed_in_count(ctx: Any) -> int:
    return len(signed_in)


@app.on("app.ready")  # also app.stopping; app.emit("my.event", ...) for your own
async def ready(ctx: Any) -> None:
    await app.wamp.publish("site.up")


@app.cron(every=timedelta(minutes=5), overlap=False)
async def cleanup(ctx: Any) -> None:
    pass


videos = app.queue("videos", workers=2)


@videos.task("encode.video")
def encode(ctx: Any, path: str) -> str:
    return path + ".mp4"


@app.http.post("/videos")
async def enqueue_video(request: Any) -> dict[str, Any]:
    handle = await videos.enqueue("encode.video", request.json["path"])
    return {"result": await handle.result(timeout=10)}


# A supervised external process (the example runs "node thumbnailer.js").
app.service([sys.executable, "thumbnailer.py"], restart="on-failure")
app.processes({1: ["wamp.register:auth.*"], 2: ["queue:videos"]})  # place handlers on processes
app.embed(other_app)  # compose sub-apps (routes, handlers, hooks), prefixes optional

if __name__ == "__main__":
    app.run()  # a CLI generated from asgi_server's Config + the app's own options
