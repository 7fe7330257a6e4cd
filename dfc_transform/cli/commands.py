"""The commands: ``stats``, ``list`` and ``purge``, one namespace at a time.

Each counts what :meth:`FileService.files` lists, so that the numbers agree: a file is a
stored file with content; unfinished uploads are shown apart.
"""

from __future__ import annotations

import json
import time
from typing import Any

from ..exc import FileServeError
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
    rows: list[dict[str, Any]] = [
        {
            "path": _path(store, f.namespace, f.path),
            "name": f.filename,
            "mime_type": f.mime_type,
            "size": f.size,
            "age": round(f.age(now), 3),
            "time_left": None if f.time_left(now) is None else round(f.time_left(now) or 0.0, 3),
            "one_time": f.one_time,
            "private": f.private,
            "namespace": f.namespace,
        }
        for f in files
    ]
    if as_json:
        print(json.dumps(rows))
        return 0
    print(f"{'age':>8} {'left':>8} {'size':>10} {'flags':<5} {'namespace':<14} path")
    for row in rows:
        flags = ("1" if row["one_time"] else "-") + ("p" if row["private"] else "-")
        left = "never" if row["time_left"] is None else _duration(row["time_left"])
        print(
            f"{_duration(row['age']):>8} {left:>8} {human_size(row['size']):>10} {flags:<5} "
            f"{row['namespace'] or '(none)':<14} {row['path']}  ({row['mime_type']})"
        )
    return 0


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


def _path(store: Store, namespace: str, path: str) -> str:
    prefix = store.namespaces.get(namespace, {}).get("prefix") or "/"
    return prefix.rstrip("/") + "/" + path


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"
