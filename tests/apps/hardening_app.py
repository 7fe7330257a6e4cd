"""A plain Flask app with two FileServices, for the browser tests of the hardening features.

``FileService().init_app(app)`` serves at ``/_dash-files/``; ``FileService(private=True)``
(every file bound to the browser session by default) at ``/_private-files/``. The page ``/``
sets a cookie that scripts can read (``app_secret``) and has buttons that register a PNG
through ``POST /register?kind=public|private|default-private`` and show it in an <img>.

gunicorn runs it as ``tests.apps.hardening_app:create_server()``; the PNG comes from the
file named by ``DFC_HARDENING_PNG``. Every answer names its worker in ``X-Worker-Pid``; a
request with an ``X-Hold: <seconds>`` header is held that long first (at most 1 s), so
that concurrent requests spread over the workers.
"""

from __future__ import annotations

import io
import os
import time
from pathlib import Path
from typing import Any

from flask import Flask, Response, abort, request

from dfc_transform import FileService

#: The value of the cookie that the app's own scripts may read; an attack would steal it.
SECRET = "app-secret-4f2a9c"
SECRET_COOKIE = "app_secret"
TITLE = "hardening app"

PAGE = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{TITLE}</title></head>
<body>
<button id="public" onclick="make('public')">public</button>
<button id="private" onclick="make('private')">private</button>
<button id="default-private" onclick="make('default-private')">default-private</button>
<div id="url"></div><div id="pid"></div><div id="error"></div>
<img id="img" alt="">
<script>
async function make(kind) {{
  const r = await fetch("/register?kind=" + kind, {{method: "POST"}});
  if (!r.ok) {{ document.getElementById("error").textContent = r.status; return; }}
  const answer = await r.json();
  document.getElementById("pid").textContent = answer.pid;
  document.getElementById("img").src = answer.url;
  document.getElementById("url").textContent = answer.url;
}}
</script>
</body></html>
"""


def create_app(png: bytes, backend: Any = None) -> tuple[Flask, FileService, FileService]:
    """The app, its service with ``private=False`` (the default) and its ``private=True`` one."""
    app = Flask(__name__)
    files = FileService(backend)
    files.init_app(app)
    private_files = FileService(backend, private=True)
    private_files.init_app(app, url_prefix="/_private-files", endpoint="private_files")

    @app.before_request
    def hold() -> None:
        seconds = request.headers.get("X-Hold")
        if seconds:
            time.sleep(min(float(seconds), 1.0))

    @app.after_request
    def name_worker(response: Response) -> Response:
        response.headers["X-Worker-Pid"] = str(os.getpid())
        return response

    @app.get("/")
    def page() -> Response:
        response = Response(PAGE, mimetype="text/html")
        response.set_cookie(SECRET_COOKIE, SECRET, httponly=False, samesite="Lax")
        return response

    @app.post("/register")
    def register() -> dict[str, Any]:
        kind = request.args.get("kind", "public")
        if kind == "public":
            url = files.register(io.BytesIO(png), filename="plot.png")
        elif kind == "private":
            url = files.register(io.BytesIO(png), filename="plot.png", private=True)
        elif kind == "default-private":
            url = private_files.register(io.BytesIO(png), filename="plot.png")
        else:
            abort(400)
        return {"url": url, "pid": os.getpid()}

    @app.get("/leak")
    def leak() -> Response:
        """Where the attack documents send what they stole; the request log tells if they did."""
        return Response(status=204)

    @app.get("/beacon")
    def beacon() -> Response:
        """Fetched by an <img> of the attack documents: proof that the browser rendered them."""
        return Response(status=204)

    return app, files, private_files


def create_server() -> Flask:
    """gunicorn's app factory: the app with the PNG of ``DFC_HARDENING_PNG`` on the default store."""
    return create_app(Path(os.environ["DFC_HARDENING_PNG"]).read_bytes())[0]
