"""A Dash app with a background callback under CeleryManager, for the Celery test.

The web process runs it under gunicorn; a ``celery worker`` process imports it too
and runs the callback body. ``DFC_TEST_REDIS_URL`` is the broker and result store.
"""

from __future__ import annotations

import io
import os
import time
from typing import Any

from celery import Celery
from dash import CeleryManager
from dash_extensions.enrich import DashProxy, Input, Output, html

from dfc_transform import FileOutput, FileServeTransform

redis_url = os.environ["DFC_TEST_REDIS_URL"]
celery_app = Celery(__name__, broker=f"{redis_url}/0", backend=f"{redis_url}/1")
manager = CeleryManager(celery_app)

app = DashProxy(__name__, transforms=[FileServeTransform()], background_callback_manager=manager)
app.layout = html.Div(
    [html.Button(id="go"), html.Img(id="img"), html.Div(id="progress"), html.Button(id="cancel")]
)
server = app.server
# One secret for every process: Dash signs background-job handles with it.
server.secret_key = "celery-test-secret"


@app.callback(
    FileOutput("img", "src", filename="celery.txt"),
    Input("go", "n_clicks"),
    background=True,
    progress=Output("progress", "children"),
    running=[(Output("go", "disabled"), True, False)],
    cancel=Input("cancel", "n_clicks"),
    prevent_initial_call=True,
)
def work(set_progress: Any, n: int) -> Any:
    for i in range(3):
        set_progress(f"{i * 50}%")
        time.sleep(0.1)
    return io.StringIO(f"made by celery worker {os.getpid()} for click {n}")


@server.get("/pid")
def pid() -> dict[str, int]:
    return {"pid": os.getpid()}


app.register_celery_tasks()  # in the worker process: define the task now
