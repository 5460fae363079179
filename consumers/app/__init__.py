"""consumers.app: one Application object for a whole site (issue 15).

```python
from consumers.app import Application
app = Application("site")

@app.http.get("/user/{id:int}/")
async def user(request, id): return {"id": id}

@app.wamp.register("auth.signin")
async def signin(ctx, username, password): ...

if __name__ == "__main__":
    app.run()
```

It composes the parts that exist and adds no server, router or queue of its own: ``http`` (the
routes, Request, Response), ``wamp`` (consumers.wamp's Router), ``background`` (consumers.tasks),
``cli`` (asgi_server's Config plus the app's options), ``deploy`` (nginx, systemd, supervisor and
docker files). Several processes share an embedded Redis when no layer is configured: that is
``consumers.embedded_redis``, which ``asgi-server --workers N`` uses for any app too.
"""

from __future__ import annotations

from .application import Application
from .context import Context
from .http import HTTPError, Request, Response

__all__ = ["Application", "Context", "HTTPError", "Request", "Response"]
