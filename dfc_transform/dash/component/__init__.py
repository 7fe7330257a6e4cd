"""``Upload``: the Dash component that sends files to the app in parts.

Its JavaScript is built from ``src/`` with esbuild (``npm ci && npm run build`` here) into
``dfc_upload.min.js``, which ships in the package: users need no node. Dash serves the
bundle from ``_dash-component-suites/dfc_transform/`` because the package lists it in its
``_js_dist`` (re-exported by ``dfc_transform/__init__.py``, where Dash looks for it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dash.development.base_component import Component

from ..downloads import BUNDLE, SCRIPT

__all__ = ["BUNDLE", "Upload", "_js_dist"]

_js_dist = [SCRIPT]


class Upload(Component):
    """Drag and drop or a button: files go to the app in parts, with a progress bar.

    Each file is sent to the app's file route in parts of a few MiB, straight into the
    store; a part that fails is sent again, an upload cut off resumes where the server got
    to (after a page reload too, when the same file is chosen again), and every file can be
    cancelled. When every file is stored, ``value`` holds its description (a list of them
    with ``multiple=True``); a ``FileInput("id", "value")`` gives the callback
    ``UploadedFile`` objects instead. Needs a ``FileServeTransform`` on the app.

    :param children: what the drop zone says (default: "Drag and drop a file here, or").
    :param id: the component's id.
    :param multiple: accept several files at once.
    :param accept: the types accepted, as the HTML ``accept`` attribute: ``".csv,text/csv"``
        or a list (``[".csv", "image/*"]``); checked by the browser *and* the server.
    :param max_size: the largest file accepted, in bytes (the transform's ``max_size`` and
        byte budget apply too); checked by the browser and the server.
    :param disabled: refuse drops and clicks.
    :param private: the uploaded files' URLs open only in the browser session that uploaded
        them, and only callbacks of that session can read them (the default).
    :param idle_timeout: seconds without a new part after which an unfinished upload is
        given up on the server (its bytes removed); ``None``: the transform's
        ``upload_idle_timeout`` (10 minutes). An upload resumed later starts again.
    :param style: CSS of the component's root; the default look sits in zero-specificity
        rules of the classes ``dfc-upload``, ``dfc-upload--active``, ``dfc-upload--disabled``,
        ``dfc-upload__button``, ``dfc-upload__file``, ``dfc-upload__bar``, ``dfc-upload__fill``,
        ``dfc-upload__status``..., so that any rule of the app's wins.
    :param className: more classes for the root.
    :param value: set by the component: ``None``, or the description ``{name, size, type, url,
        receipt}`` of the uploaded file (a list of them with ``multiple=True``).
    """

    _namespace = "dfc_transform"
    _type = "Upload"
    _prop_names = [
        "children",
        "id",
        "value",
        "multiple",
        "accept",
        "max_size",
        "disabled",
        "style",
        "className",
        "ticket",
    ]
    _valid_wildcard_attributes: list[str] = []
    available_properties = _prop_names
    available_wildcard_properties: list[str] = []
    _base_nodes = ["children"]

    def __init__(
        self,
        children: Any = None,
        id: str | dict[str, Any] | None = None,
        *,
        multiple: bool = False,
        accept: str | Sequence[str] | None = None,
        max_size: int | None = None,
        disabled: bool = False,
        private: bool = True,
        idle_timeout: int | None = None,
        style: dict[str, Any] | None = None,
        className: str | None = None,
        value: Any = None,
    ) -> None:
        if max_size is not None and (not isinstance(max_size, int) or max_size < 0):
            raise ValueError(f"Upload max_size must be a number of bytes >= 0 or None, got {max_size!r}")
        if idle_timeout is not None and (not isinstance(idle_timeout, int) or idle_timeout < 1):
            raise ValueError(
                f"Upload idle_timeout must be a number of seconds >= 1 or None, got {idle_timeout!r}"
            )
        props: dict[str, Any] = {"multiple": bool(multiple), "disabled": bool(disabled)}
        given = {
            "children": children,
            "id": id,
            "accept": accept if accept is None or isinstance(accept, str) else list(accept),
            "max_size": max_size,
            "style": style,
            "className": className,
            "value": value,
        }
        props.update({k: v for k, v in given.items() if v is not None})
        super().__init__(**props)
        # Not a prop: it goes to the server in the signed ticket, where it is enforced.
        self._dfc_private = bool(private)
        self._dfc_idle_timeout = idle_timeout

    def accept_list(self) -> tuple[str, ...] | None:
        """The ``accept`` entries, or ``None`` when any type is accepted."""
        accept = getattr(self, "accept", None)
        if not accept:
            return None
        entries = accept.split(",") if isinstance(accept, str) else list(accept)
        cleaned = tuple(e.strip().lower() for e in entries if e.strip())
        return cleaned or None

    def to_plotly_json(self) -> dict[str, Any]:
        """The component as Dash sends it, with a fresh upload ticket from the serving app.

        Minted here, each time the component is sent (with a page's layout or a callback's
        answer), so that every page gets its own ticket with its own expiry.
        """
        from ..upload_tickets import ticket_props

        data: dict[str, Any] = super().to_plotly_json()
        data["props"]["ticket"] = ticket_props(
            getattr(self, "id", None),
            max_size=getattr(self, "max_size", None),
            accept=self.accept_list(),
            private=self._dfc_private,
            idle_timeout=self._dfc_idle_timeout,
        )
        return data
