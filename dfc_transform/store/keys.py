"""Keys and backend calls: the one place the store talks to its cachelib backend.

Every key is ``dfc:[<namespace>:]<name>:<part>``: a file's chunks under its storage key
(``<storage>:0``, ``<storage>:1``...), its record under its token (``<token>:m``). Every
call goes through here, so that a backend that fails becomes a
:class:`~dfc_transform.exc.BackendUnavailableError` naming it, a write that would fill the
disk a :class:`~dfc_transform.exc.StoreFullError`, and time-to-live rules live once.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from ..exc import BackendUnavailableError, StoreFullError
from ..units import human_size
from .backends import CacheLike, Profile

__all__ = ["CHUNK_GRACE", "Keys"]

#: On backends with their own expiry, chunks outlive their record by this much, so that
#: a transfer that started just before the record expired can still finish.
CHUNK_GRACE = 60

T = TypeVar("T")


class Keys:
    """Named keys of one namespace in a backend, and the calls that read and write them.

    :param min_free_space: on a backend on this host's disk, refuse a write that would
        leave fewer bytes free than this (``0``: no check).
    """

    def __init__(
        self, backend: CacheLike, profile: Profile, *, namespace: str, timeout: int, min_free_space: int
    ) -> None:
        self.backend = backend
        self.profile = profile
        self.namespace = namespace
        self.timeout = timeout
        self.min_free_space = min_free_space
        self.prefix = f"dfc:{namespace}:" if namespace else "dfc:"

    def key(self, name: str, part: int | str) -> str:
        return f"{self.prefix}{name}:{part}"

    @property
    def chunk_timeout(self) -> int:
        """The time-to-live of chunks: none where a journal sweeps them (one would only hide
        them from the sweep), else the file's plus a grace for transfers under way."""
        if self.profile.expiry == "journal":
            return 0
        return self.timeout + CHUNK_GRACE if self.timeout else 0

    @property
    def record_timeout(self) -> int:
        return 0 if self.profile.expiry == "journal" else self.timeout

    def claim_path(self, token: str) -> Path | None:
        """Where a one-time file is claimed with ``O_EXCL``; ``None``: through the backend's ``add``."""
        claims_dir = self.profile.claims_dir
        return None if claims_dir is None else claims_dir / f"{self.namespace or '-'}.{token}"

    # -- calls -----------------------------------------------------------------------

    def get(self, key: str) -> Any:
        return self.call(self.backend.get, key)

    def has(self, key: str) -> bool:
        return bool(self.call(self.backend.has, key))

    def delete(self, key: str) -> None:
        self.call(self.backend.delete, key)

    def set(self, key: str, value: bytes, timeout: int) -> None:
        """Write ``value``; a refusal (disk full, item too large, out of memory) is an error."""
        self.check_room(len(value))
        if not self.call(self.backend.set, key, value, timeout):
            if self.profile.memcached:
                raise BackendUnavailableError(self.unreachable())
            raise BackendUnavailableError(
                f"the {self.profile.name} refused to store {key!r} (disk full, item too large "
                "or server out of memory?)"
            )

    def add(self, key: str, value: bytes, timeout: int) -> bool:
        """Write ``value`` unless ``key`` exists, atomically where the backend can (Redis
        ``SET NX``, memcached ``add``); ``True`` if written."""
        add = getattr(self.backend, "add", None)
        if callable(add):
            return bool(self.call(add, key, value, timeout))
        return not self.has(key) and bool(self.call(self.backend.set, key, value, timeout))

    def shared_secret(self, name: str, lock: contextlib.AbstractContextManager[Any]) -> bytes:
        """32 random bytes kept under ``name``, made by whichever process asks first.

        Made under ``lock`` (the ledger's): cachelib's ``add`` is no atomic operation on a
        file-system cache, and two workers starting at once would each keep a key of their own.
        """
        key = self.prefix + name
        with lock:
            self.add(key, secrets.token_bytes(32), 0)
            stored = self.get(key)
        if stored is None and self.profile.memcached:
            raise BackendUnavailableError(self.unreachable())
        if not isinstance(stored, bytes) or len(stored) != 32:
            raise BackendUnavailableError(
                f"the {self.profile.name} did not keep the key {key!r} it was given: it cannot be "
                "written, or another program changes it"
            )
        return stored

    def unreachable(self) -> str:
        return (
            f"the {self.profile.name} cannot be reached: its memcached server does not answer (is it "
            "running, and are the servers given to MemcachedCache(...) right?)"
        )

    def call(self, method: Callable[..., T], *args: Any) -> T:
        try:
            return method(*args)
        except BackendUnavailableError:
            raise
        except Exception as err:
            raise BackendUnavailableError(
                f"the {self.profile.name} backend failed: {type(err).__name__}: {err}"
            ) from err

    # -- room on disk -----------------------------------------------------------------

    def free_space(self) -> int | None:
        """Bytes free on the disk that holds the store, or ``None`` where it is not on this host's disk."""
        if self.profile.disk is None:
            return None
        try:
            info = os.statvfs(self.profile.disk)
        except OSError:
            return None
        return info.f_bavail * info.f_frsize

    def check_room(self, nbytes: int) -> None:
        """Refuse to write ``nbytes`` where that would leave less than the reserve free."""
        if not self.min_free_space:
            return
        free = self.free_space()
        if free is not None and free - nbytes < self.min_free_space:
            raise StoreFullError(
                f"the disk that holds the store ({self.profile.disk}) has {human_size(free)} free, and "
                f"writing {human_size(nbytes)} would leave less than the reserve of "
                f"{human_size(self.min_free_space)}: free some space, or lower min_free_space",
                needed=nbytes,
                available=max(0, free - self.min_free_space),
            )
