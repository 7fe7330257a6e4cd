"""The namespaces of a shared store, with a readable name for each.

Several apps may share one backend (the default store of a user, one Redis); each keeps
its files under a namespace derived from the app (:func:`app_namespace`), a short hash
that every process of the app computes alike. So that an operator can tell which is
whose, each namespace is recorded, when it first stores a file, in one registry key of
the backend (``dfc:namespaces``) with what it is: the app's module, its URL prefix, its
directory.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from typing import Any

from .keys import Keys

__all__ = ["REGISTRY_KEY", "announce", "app_directory", "app_namespace", "known", "module_name"]

REGISTRY_KEY = "dfc:namespaces"
#: A registry written by two apps at once may lose one of them: each checks and tries again.
_ATTEMPTS = 5


def announce(keys: Keys, about: dict[str, Any]) -> None:
    """Record the namespace of ``keys`` with ``about`` (the app's module, prefix, directory)."""
    entry = {**about, "since": round(time.time())}
    for _ in range(_ATTEMPTS):
        registry = known(keys)
        current = registry.get(keys.namespace)
        if current is not None and {k: current.get(k) for k in about} == about:
            return
        registry[keys.namespace] = entry
        keys.set(REGISTRY_KEY, json.dumps(registry, separators=(",", ":")).encode(), 0)
        if keys.namespace in known(keys):
            return


def known(keys: Keys) -> dict[str, dict[str, Any]]:
    """Every namespace recorded in the backend of ``keys``, with what it is."""
    data = keys.get(REGISTRY_KEY)
    try:
        registry = json.loads(data) if isinstance(data, bytes) else {}
    except ValueError:
        return {}
    return registry if isinstance(registry, dict) else {}


def app_namespace(import_name: str, url_prefix: str) -> str:
    """A namespace that every process of an app computes alike, and another app does not.

    From the app's directory, its module's name and its URL prefix: a web worker, a
    background-callback process and a Celery worker that import the same app module agree
    on it without talking to each other (the name ``__main__`` is taken from its file).
    """
    module = module_name(import_name)
    seed = f"{app_directory(import_name)}|{module.rsplit('.', 1)[-1]}|{url_prefix}"
    return hashlib.sha256(seed.encode()).hexdigest()[:12]


def module_name(import_name: str) -> str:
    """The module's name (that of its file for ``__main__``)."""
    if import_name != "__main__":
        return import_name
    main_file = getattr(sys.modules.get("__main__"), "__file__", None) or "__main__"
    return os.path.splitext(os.path.basename(main_file))[0]


def app_directory(import_name: str) -> str:
    """The directory of the app's module, as Flask (and Dash) find it, symbolic links resolved."""
    from flask.helpers import get_root_path  # Flask comes with Dash, whatever the server

    return os.path.realpath(get_root_path(import_name))
