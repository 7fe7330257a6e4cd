"""The namespaces of a shared store, with a readable name for each.

Several apps may share one backend (the default store of a user, one Redis); each keeps
its files under a namespace derived from the app (see :func:`dfc_transform.service.app_namespace`),
a short hash. So that an operator can tell which is whose, each namespace is recorded,
when it first stores a file, in one registry key of the backend (``dfc:namespaces``) with
what it is: the app's module, its URL prefix, its directory.
"""

from __future__ import annotations

import json
import time
from typing import Any

from .keys import Keys

__all__ = ["REGISTRY_KEY", "announce", "known"]

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
