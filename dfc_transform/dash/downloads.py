"""Downloads from a button: a ``FileOutput`` on a ``dcc.Download``'s ``data``.

``dcc.Download`` takes ``{filename, content, base64, type}`` and builds a Blob from
``content``: it cannot download a URL, and a file sent inside the callback's JSON is what
this package exists to avoid. So a ``FileOutput`` on any ``data`` prop puts the file's URL
there, as on any other prop, and the pages of an app with a transform get a small script
(in the package's bundle, ``component/src/download.js``) that teaches ``dcc.Download`` to
save a URL it is given: it fetches it as an attachment (``?download=1``, the file's name
in RFC 5987 ``filename*``) and saves it under that name. A ``dcc.Store`` (or any other
component) whose ``data`` is a ``FileOutput`` simply gets the URL.

The callback's output is the Download itself, nothing else: no hidden component, no
``set_props``, no change to the layout. It fires exactly as the same callback returning
``dcc.send_*`` would: once per click, also in tabs, pages, pattern-matching rows and
background callbacks.
"""

from __future__ import annotations

__all__ = ["BUNDLE", "SCRIPT"]

#: The built bundle (the ``Upload`` component and the download script), relative to the package.
BUNDLE = "dash/component/dfc_upload.min.js"

#: The bundle as a Dash script resource, added to the pages of each app with a transform.
SCRIPT = {"relative_package_path": BUNDLE, "namespace": "dfc_transform"}
