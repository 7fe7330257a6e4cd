"""``python -m dfc_transform``: see :mod:`dfc_transform.cli`."""

from __future__ import annotations

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
