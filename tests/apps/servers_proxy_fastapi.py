"""A dash-extensions ``DashProxy`` on FastAPI with a ``FileServeTransform``, run by uvicorn for
tests/test_servers_browser.py. ``DFC_TEST_SECRET_KEY`` (when set) goes to ``app.server.secret_key``
after the app is made. See :mod:`tests.apps.servers_common`."""

from __future__ import annotations

import os

from dash_extensions.enrich import DashProxy

from dfc_transform import FileServeTransform

from . import servers_common

app = DashProxy(__name__, backend="fastapi", transforms=[FileServeTransform()])
if "DFC_TEST_SECRET_KEY" in os.environ:
    app.server.secret_key = os.environ["DFC_TEST_SECRET_KEY"]
app.layout = servers_common.layout()
servers_common.build(app.callback)
server = app.server
