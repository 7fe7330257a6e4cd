"""The commands: ``stats``, ``list`` and ``purge``, one namespace at a time.

Each counts what :meth:`FileService.files` lists, so that the numbers agree: a file is a
stored file with content; unfinished uploads are shown apart.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from ..exc import FileServeError
from ..store import FileInfo
from ..units import human_size
from .locate import Store, describe, label

__all__ = ["list_files", "purge", "stats"]


def stats(store: Store, *, as_json: bool) -> int:
    rows: list[dict[str, Any]] = []
    for namespace in store.chosen:
        found = store.service(namespace).stats()
        rows.append(
            {
                "namespace": namespace,
                "app": label(store.namespaces.get(namespace, {})),
                "files": found.files,
                "bytes": found.bytes,
                "uploads": found.uploads,
                "upload_bytes": found.upload_bytes,
            }
        )
    total = {key: sum(r[key] for r in rows) for key in ("files", "bytes", "uploads", "upload_bytes")}
    if as_json:
        print(json.dumps({**total, "namespaces": rows}))
        return 0
    print(f"{'namespace':<14} {'files':>8} {'bytes':>16} {'uploads':>8}  app")
    for row in rows:
        print(
            f"{row['namespace'] or '(none)':<14} {row['files']:>8} {row['bytes']:>16,} "
            f"{row['uploads']:>8}  {row['app']}"
        )
    if len(rows) > 1:
        print(f"{'total':<14} {total['files']:>8} {total['bytes']:>16,} {total['uploads']:>8}")
    return 0


def list_files(store: Store, *, as_json: bool) -> int:
    now = time.time()
    files = [f for namespace in store.chosen for f in store.service(namespace).files()]
    files.sort(key=lambda f: f.created)
    # Each app's file route: a file's URL path is its route, its token and its name.
    routes = {namespace: _route(store, namespace) for namespace in store.chosen}
    # Written ROWS_PER_WRITE rows at a time, each row made as it is written: a listing of
    # 100,000 files holds neither every row nor the whole output at once.
    chunks = (
        [
            _row(f, routes.get(f.namespace) or _route(store, f.namespace), now)
            for f in files[start : start + ROWS_PER_WRITE]
        ]
        for start in range(0, len(files), ROWS_PER_WRITE)
    )
    out = sys.stdout
    if as_json:
        # As json.dumps(rows) would write it: "[", the rows with ", " between them, "]".
        out.write("[")
        for i, chunk in enumerate(chunks):
            out.write((", " if i else "") + json.dumps(chunk)[1:-1])
        out.write("]\n")
        return 0
    out.write(f"{'age':>8} {'left':>8} {'size':>10} {'flags':<5} {'namespace':<14} path\n")
    for chunk in chunks:
        out.write("".join(_line(row) for row in chunk))
    return 0


#: Rows made and written at a time by ``list``.
ROWS_PER_WRITE = 1000


def _row(f: FileInfo, route: str, now: float) -> dict[str, Any]:
    """A file as ``list`` shows it; ``route``: the URL path of the app's file route (``/_dash-files/``)."""
    left = f.time_left(now)
    return {
        "path": route + f.path.partition("/")[2],
        "name": f.filename,
        "mime_type": f.mime_type,
        "size": f.size,
        "age": round(f.age(now), 3),
        "time_left": None if left is None else round(left or 0.0, 3),
        "one_time": f.one_time,
        "private": f.private,
        "namespace": f.namespace,
    }


def _line(row: dict[str, Any]) -> str:
    flags = ("1" if row["one_time"] else "-") + ("p" if row["private"] else "-")
    left = "never" if row["time_left"] is None else _duration(row["time_left"])
    return (
        f"{_duration(row['age']):>8} {left:>8} {human_size(row['size']):>10} {flags:<5} "
        f"{row['namespace'] or '(none)':<14} {row['path']}  ({row['mime_type']})\n"
    )


def purge(store: Store, *, expired_only: bool, every_namespace: bool) -> int:
    if not expired_only and len(store.chosen) > 1 and not every_namespace:
        raise FileServeError(
            f"{store.name} holds the files of {len(store.chosen)} apps: {describe(store.namespaces)}. "
            "Purge one with --namespace NAMESPACE, or every app's with --all"
        )
    total = 0
    for namespace in store.chosen:
        service = store.service(namespace)
        total += service.purge_expired() if expired_only else service.clear()
    what = "expired files" if expired_only else "files"
    print(f"removed {total} {what}")
    return 0


def _route(store: Store, namespace: str) -> str:
    """The URL path of the file route of the app of ``namespace``, ending with a slash."""
    about = store.namespaces.get(namespace, {})
    route = about.get("route")
    if isinstance(route, str) and route:  # where the app put it (a FileService may choose)
        return route.rstrip("/") + "/"
    # Recorded by an older release: a Dash app's URL prefix, the route below it.
    prefix = about.get("prefix") or "/"
    return prefix.rstrip("/") + "/_dash-files/"


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"
