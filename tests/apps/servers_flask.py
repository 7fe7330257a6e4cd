"""A plain ``dash.Dash`` on Flask with ``files.init_app(app)``, run by gunicorn (two gthread workers)
for tests/test_servers_browser.py; see :mod:`tests.apps.servers_common`."""

from __future__ import annotations

import dash

from dfc_transform import FileServeTransform

from . import servers_common

app = dash.Dash(__name__)
files = FileServeTransform()
files.init_app(app)
app.layout = servers_common.layout()
servers_common.build(files.callback)
server = app.server
