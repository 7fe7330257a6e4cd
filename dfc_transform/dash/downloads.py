"""Downloads from a button: a ``FileOutput`` on a ``dcc.Download``'s ``data``.

``dcc.Download`` takes ``{filename, content, base64, type}`` and always builds a
Blob from ``content``: it cannot download a URL. So the file does not go to the
Download at all. Its position gets ``no_update``, and the URL and the file's name
go, by ``dash.set_props``, to a hidden ``dcc.Store`` of the callback's own (its
*companion*). A clientside callback on that store clicks a hidden ``<a href=URL
download=NAME>``: the browser fetches the served URL (``attachment``, RFC 5987
``filename*``) and saves it under the file's exact name. The callback's JSON carries
a URL, whatever the file's size.

Nothing changes until a file can be made: an app with no ``FileOutput`` on a ``data``
prop gets no companion, and its layout is served as it is. Where companions are needed,
a ``dash.hooks.layout`` hook (registered when the first companion is made, after every
transform has had the layout) serves ``[the app's layout, a hidden Div of companions]``:
the app's own components are never touched. The companion is never an *output* of the callback: Dash
fires a callback whose output already exists when its inputs are inserted (a tab, a
page, a pattern-matching row), whatever ``prevent_initial_call`` says; through
``set_props`` the callback's outputs are the app's own, and it fires exactly as the
same callback with ``dcc.send_*`` would: once per click.

Which ``data`` outputs are Downloads? The rule, in this order:

1. the component with that id in a layout the transform has seen (the app's layout,
   a function layout each time it is served, static ``dash.register_page`` layouts):
   a ``dcc.Download`` downloads, anything else (a ``dcc.Store``...) gets the URL in its
   ``data`` directly, in the callback's response;
2. an id found in none of them (a component made by a callback, a page whose layout
   is a function): the browser decides, looking the component up in its own layout
   (``dash_component_api.getLayout``): a Download downloads, anything else gets the
   URL through ``dash_clientside.set_props``.

Only ``FileOutput``s on a property named ``data`` are considered at all.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import Iterator
from typing import Any

import dash
from dash import dcc, html
from dash.development.base_component import Component
from dash_extensions.enrich import CallbackBlueprint, Input

__all__ = ["DOWNLOAD_PROPERTY", "Downloads", "companion_id"]

logger = logging.getLogger(__name__)

#: The property of ``dcc.Download`` a file is returned to.
DOWNLOAD_PROPERTY = "data"
_COMPANION_PREFIX = "_dfc_transform-download-"

# Runs in the browser on every value a companion store receives. ``download`` is
# true/false when the server knew the component, null when the browser must look.
DOWNLOAD_JS = """function (payload) {
    if (!payload || !payload.files) { return; }
    const api = window.dash_component_api;
    payload.files.forEach(function (file) {
        let isDownload = file.download;
        if (isDownload === null) {
            let node;
            try { node = api && api.getLayout ? api.getLayout(file.id) : undefined; } catch (e) {}
            isDownload = !!node && node.type === "Download" && node.namespace === "dash_core_components";
        }
        if (!isDownload) {
            window.dash_clientside.set_props(file.id, {[file.property]: file.url});
            return;
        }
        const link = document.createElement("a");
        link.href = file.url;
        link.download = file.filename;
        link.style.display = "none";
        document.body.appendChild(link);
        link.click();
        link.remove();
    });
}"""


def companion_id(callback_name: str, outputs: list[Any], inputs: list[Any]) -> str:
    """The id of a callback's companion store.

    Derived from the callback, not counted: every process of the app (gunicorn workers,
    Celery workers) must give the layout and the callback the same id whatever order
    its apps were set up in.
    """
    text = "|".join([callback_name, *map(str, outputs), "<-", *map(str, inputs)])
    return _COMPANION_PREFIX + hashlib.sha256(text.encode()).hexdigest()[:16]


def id_key(component_id: Any) -> str:
    """One string per component id, for dict ids whatever the order of their keys."""
    if isinstance(component_id, dict):
        return json.dumps(component_id, sort_keys=True, separators=(",", ":"), default=str)
    return str(component_id)


def payload(files: list[dict[str, Any]]) -> dict[str, Any]:
    """A companion store's value; the nonce makes every value new, so that the same file
    twice still starts two downloads."""
    return {"files": files, "nonce": uuid.uuid4().hex}


class Downloads:
    """The download side of one app's transform: its companion stores and what it knows
    of the app's components."""

    def __init__(self) -> None:
        self._companions: dict[str, None] = {}  # an ordered set
        self._unregistered: list[str] = []
        self._inputs: dict[str, Any] = {}
        self._known: dict[str, bool] = {}
        self._latest_root: Any = None
        self._walked: Any = None
        self._static_walked = False
        self._pages_walked = 0

    # -- set-up -----------------------------------------------------------------

    def add_companion(self, store_id: str) -> None:
        """Give this app the companion store ``store_id`` and its clientside callback."""
        if store_id in self._companions:
            return
        self._companions[store_id] = None
        self._unregistered.append(store_id)

    def take_clientside_callbacks(self) -> list[Any]:
        """The clientside callbacks of the companions added since the last call."""
        callbacks = []
        for store_id in self._unregistered:
            self._inputs[store_id] = trigger = Input(store_id, "data")
            callback = CallbackBlueprint(trigger, prevent_initial_call=True)
            callback.f = DOWNLOAD_JS
            callbacks.append(callback)
        self._unregistered = []
        return callbacks

    def remember(self, layout: Any) -> None:
        """Note the app's layout, where :meth:`kind` looks components up."""
        self._latest_root = layout

    def serve(self, layout: Any) -> Any:
        """The layout to serve: ``layout`` itself without companions, else ``[layout, companions]``
        (a new list; ``layout`` is not changed)."""
        if not self._companions:
            return layout
        # By the ids their clientside callbacks listen to: transforms (PrefixIdTransform) may
        # have changed those, and ran on the app's layout before this.
        stores = [dcc.Store(id=self.store_id(c), storage_type="memory") for c in self._companions]
        holder = html.Div(stores, style={"display": "none"})
        return [*layout, holder] if isinstance(layout, (list, tuple)) else [layout, holder]

    # -- at run time ---------------------------------------------------------------

    def store_id(self, companion: str) -> Any:
        """The id the companion store ``companion`` has in the app: transforms after ours
        (PrefixIdTransform) change it in the layout and in its clientside callback alike."""
        trigger = self._inputs.get(companion)
        return companion if trigger is None else trigger.component_id

    def kind(self, component_id: Any, app: Any) -> bool | None:
        """``True`` if ``component_id`` is a ``dcc.Download`` in a layout seen, ``False`` if it
        is another component, ``None`` if it was not found (the browser decides)."""
        self._learn(app)
        return self._known.get(id_key(component_id))

    def _learn(self, app: Any) -> None:
        # Walked at run time rather than in transform_layout: transforms after ours
        # (PrefixIdTransform) still change the ids of that layout in place.
        root = self._latest_root
        if root is not None and root is not self._walked:
            self._note(root)
            self._walked = root
        if not self._static_walked and app is not None:
            # A worker that has not served the layout yet still knows a static one.
            layout = getattr(app, "layout", None)
            if layout is not None and not callable(layout):
                self._note(layout)
            self._static_walked = True
        pages = list(getattr(dash, "page_registry", {}).values())
        if len(pages) != self._pages_walked:
            for page in pages:
                layout = page.get("layout")
                if layout is not None and not callable(layout):
                    self._note(layout)
            self._pages_walked = len(pages)

    def _note(self, layout: Any) -> None:
        for component in _components(layout):
            ident = getattr(component, "id", None)
            if ident is not None:
                self._known[id_key(ident)] = isinstance(component, dcc.Download)


def _components(layout: Any) -> Iterator[Component]:
    """Every component in ``layout``: in ``children`` and in other component props."""
    stack = [layout]
    while stack:
        node = stack.pop()
        if isinstance(node, (list, tuple)):
            stack.extend(node)
        elif isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, Component):
            yield node
            for prop in ("children", *getattr(node, "_children_props", ())):
                # "items[].label" -> "items": the walk goes into lists and dicts itself.
                stack.append(getattr(node, prop.split("[", 1)[0].split(".", 1)[0], None))
