"""A plain ``dash.Dash`` on FastAPI with ``files.init_app(app)``, run by uvicorn for
tests/test_servers_browser.py; ``DFC_TEST_WEBSOCKET=1``: callbacks over a WebSocket. See
:mod:`tests.apps.servers_common`."""

from __future__ import annotations

import dash

from dfc_transform import FileServeTransform

from . import servers_common

app = dash.Dash(__name__, backend="fastapi", websocket_callbacks=servers_common.websocket_callbacks())
files = FileServeTransform()
files.init_app(app)
app.layout = servers_common.layout()
servers_common.build(files.callback)
server = app.server
