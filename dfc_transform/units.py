"""Sizes as people read them, in one unit system everywhere (binary: KiB, MiB, GiB).

The ``Upload`` component writes sizes the same way (``src/units.js``), so that a limit
reads alike in the browser, in the server's messages and in the docs.
"""

from __future__ import annotations

__all__ = ["human_size"]

_UNITS = ("KiB", "MiB", "GiB", "TiB")


def human_size(size: int | float) -> str:
    """``size`` bytes as ``"512 bytes"``, ``"1.5 KiB"``, ``"10.0 MiB"``..."""
    if size < 1024:
        return f"{int(size)} bytes"
    value = float(size)
    for unit in _UNITS:
        value /= 1024
        if value < 1024 or unit == _UNITS[-1]:
            return f"{value:.1f} {unit}"
    raise AssertionError("unreachable")
