"""A griffe extension for this site: Sphinx roles in the package's docstrings shown as code.

The docstrings use Sphinx-style fields (``:param x:``), which mkdocstrings parses, and Sphinx
roles (:class:`~dfc_transform.FileService`), which it leaves as they are. Here each role becomes
inline code, shown as Sphinx shows it: the last name after a ``~``, else the whole target.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:py:)?(?:class|meth|func|mod|attr|data|exc|obj|const):`(~?)([^`]+)`")


def _as_code(match: re.Match[str]) -> str:
    tilde, target = match.groups()
    return f"`{target.rsplit('.', 1)[-1] if tilde else target}`"


class SphinxRoles(griffe.Extension):
    """Rewrite Sphinx roles in every docstring that mkdocstrings renders."""

    def on_instance(self, *, obj: Any, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = _ROLE.sub(_as_code, obj.docstring.value)
