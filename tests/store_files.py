"""What a store directory holds for files, less the store's own state."""

from __future__ import annotations

import os
from pathlib import Path

from dfc_transform.store.filecache import BytesFileSystemCache
from dfc_transform.store.namespaces import REGISTRY_KEY


def file_entries(store: Path, namespace: str = "") -> list[str]:
    """The entries of ``<store>/files`` but the store's token key, ledger and registry of
    namespaces, which stay, and the empty temp files made ahead for writes (see
    ``dfc_transform.store.filecache``)."""
    files = store / "files"
    if not files.is_dir():
        return []
    cache = BytesFileSystemCache(str(files), threshold=0)
    prefix = f"dfc:{namespace}:" if namespace else "dfc:"
    state = {os.path.basename(cache._get_filename(prefix + key)) for key in ("hmac-key", "ledger")}
    state.add(os.path.basename(cache._get_filename(REGISTRY_KEY)))
    suffix = cache._fs_transaction_suffix
    return sorted(name for name in os.listdir(files) if name not in state and not name.endswith(suffix))
