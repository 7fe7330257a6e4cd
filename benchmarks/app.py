"""The server side of the benchmarks: one Dash app, run by gunicorn (1 worker, gthread).

Everything compared is served by this one process, from the same files:

- ``ours-store``: a ``BytesIO`` registered with ``FileServeTransform()`` on the default store
  (a ``FileSystemCache`` in ``$DFC_TRANSFORM_DIR``);
- ``ours-path``: the file's path registered with the same transform, served by reference
  (``copy_paths`` is ``False`` on the default store);
- ``ours-redis``: a ``BytesIO`` registered with a ``FileService`` on ``RedisCache``;
- ``dfc-plain``, ``dfc-plain-path``, ``dfc-file``: dash-file-cache 0.2.0, a ``BytesIO`` or the path
  registered with ``ServiceData.register`` on ``CachePlain`` or ``CacheFile``, served by its route;
- ``send_file``: Flask's ``send_file`` of the file on disk.

It also has the two callbacks of the end-to-end comparison (a ``FileOutput`` and a base64 ``data:``
URI) and ``/bench/mem``, which reads (and resets) this process's peak memory.

Environment: ``BENCH_DATA`` (the directory of ``<size>.bin`` files), ``BENCH_REDIS`` (``host:port``),
``BENCH_DFC_DIR`` (``CacheFile``'s directory), ``DFC_TRANSFORM_DIR`` (our default store).
"""

from __future__ import annotations

import base64
import ctypes
import gc
import io
import os
import time
from pathlib import Path
from typing import Any

from cachelib import RedisCache
from dash_extensions.enrich import DashProxy, Input, Output, State, html
from dash_file_cache import CacheFile, CachePlain, ServiceData
from flask import abort, request, send_file
from werkzeug.wrappers import Response

from dfc_transform import FileOutput, FileServeTransform, FileService

from .served import OUR_PREFIXES, VARIANTS

MIME = "application/octet-stream"

DATA = Path(os.environ["BENCH_DATA"])
_redis_host, _, _redis_port = os.environ["BENCH_REDIS"].partition(":")

transform = FileServeTransform()
redis_service = FileService(RedisCache(host=_redis_host, port=int(_redis_port), key_prefix="bench:"))
dfc_plain = ServiceData(CachePlain(cache_size=4), service_name="/dfc-plain", chunk_size=1)
dfc_file = ServiceData(CacheFile(os.environ["BENCH_DFC_DIR"], chunk_size=1), service_name="/dfc-file")

app = DashProxy(__name__, transforms=[transform])
app.layout = html.Div(
    [
        html.Button(id="go"),
        html.Div(id="size"),
        html.Img(id="img"),
        html.Button(id="go-uri"),
        html.Div(id="size-uri"),
        html.Img(id="img-uri"),
    ]
)
server = app.server
redis_service.init_app(server, url_prefix="/_redis-files", endpoint="redis_files")
dfc_plain.serve(server)
dfc_file.serve(server)
assert transform.service.copy_paths is False, "the default store serves paths by reference"

_libc = ctypes.CDLL("libc.so.6")
# The image of the end-to-end callbacks, kept in memory so that making it costs nothing.
_image: dict[int, bytes] = {}


def _data_path(size: int) -> Path:
    return DATA / f"{size}.bin"


def _image_of(size: int) -> bytes:
    if size not in _image:
        _image.clear()
        _image[size] = _data_path(size).read_bytes()
    return _image[size]


def _buffer(path: Path) -> io.BytesIO:
    # Written rather than BytesIO(data): a BytesIO sharing an immutable bytes object would copy it
    # on getbuffer(), which a BytesIO that a callback wrote into (savefig) does not.
    buf = io.BytesIO()
    buf.write(path.read_bytes())
    return buf


@app.callback(FileOutput("img", "src", filename="image.png"), Input("go", "n_clicks"), State("size", "title"))
def image_file(n: int | None, size: str) -> bytes:
    return _image_of(int(size))


@app.callback(Output("img-uri", "src"), Input("go-uri", "n_clicks"), State("size-uri", "title"))
def image_data_uri(n: int | None, size: str) -> str:
    return "data:image/png;base64," + base64.b64encode(_image_of(int(size))).decode("ascii")


@server.post("/bench/register")
def register() -> dict[str, Any]:
    """Register the ``size`` file with ``variant``; answer its URL."""
    variant, size = request.args["variant"], int(request.args["size"])
    path = _data_path(size)
    if variant == "send_file":
        return {"url": f"/bench/send_file/{path.name}"}
    value: Any = str(path) if VARIANTS[variant] == "path" else _buffer(path)
    if variant.startswith("ours-"):
        service = redis_service if variant == "ours-redis" else transform.service
        url = service.register(value, filename=path.name, mime_type=MIME)
    else:
        dfc = dfc_file if variant == "dfc-file" else dfc_plain
        url = dfc.register(value, file_name=path.name, mime_type=MIME)
    return {"url": url}


@server.post("/bench/forget")
def forget() -> dict[str, Any]:
    """Remove one of our files, as its expiry would (keeps Redis and the store small between sizes)."""
    url = request.args["url"]
    services = dict(zip(OUR_PREFIXES, (transform.service, redis_service), strict=True))
    service = next((s for prefix, s in services.items() if url.startswith(prefix)), None)
    return {"removed": service is not None and service.remove(url)}


@server.get("/bench/send_file/<name>")
def send(name: str) -> Response:
    path = DATA / name
    if path.parent != DATA or not path.is_file():
        abort(404)
    return send_file(path, mimetype=MIME, conditional=True)


@server.get("/bench/mem")
def memory() -> dict[str, float]:
    """This process's pid, current and peak resident memory (bytes) and CPU time (seconds, all
    threads); ``?reset=1`` resets the peak.

    Before a reset, ``malloc_trim`` hands freed heap memory back to the system, so that the peak
    that follows counts all the memory a measurement needs, not just what the heap lacked; then
    writing ``5`` to ``/proc/self/clear_refs`` resets ``VmHWM`` to the current ``VmRSS``.
    """
    if request.args.get("reset"):
        gc.collect()
        _libc.malloc_trim(0)
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    fields = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                fields[key] = int(value.split()[0]) * 1024
    return {"pid": os.getpid(), "rss": fields["VmRSS"], "hwm": fields["VmHWM"], "cpu": time.process_time()}
