"""FileService without Dash: a plain Flask app registers a text file and serves it.

``FileService`` is the store and file route the Dash transform is built on. Here a form POSTs a note to
``/notes``; the route registers it as a text file and answers ``303 See Other`` with the file's URL in
``Location`` (and in a JSON body, for scripts), so a browser goes straight on to GET the note.

Run:  pip install -e . && python examples/flask_service.py   then open http://127.0.0.1:8050
      or: curl -i -d text=hello http://127.0.0.1:8050/notes
"""

from __future__ import annotations

import io
import os

from flask import Flask, jsonify, request
from werkzeug.wrappers import Response

from dfc_transform import FileService

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>dfc_transform: FileService</title></head>
<body style="font-family: sans-serif; margin: 24px">
  <h2>A note, served as a text file</h2>
  <form method="post" action="notes">
    <textarea name="text" rows="4" cols="50">Grüße aus Köln!</textarea><br>
    <button type="submit">Save as a file</button>
  </form>
</body></html>
"""

app = Flask(__name__)
server = app
files = FileService(timeout=600)
files.init_app(app)  # adds GET /_dash-files/<token>/<name>


@app.get("/")
def index() -> str:
    return PAGE


@app.post("/notes")
def add_note() -> Response:
    url = files.register(io.StringIO(request.form.get("text", "")), filename="note.txt")
    response = jsonify(url=url)
    response.status_code = 303
    response.headers["Location"] = url
    return response


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(os.environ.get("PORT", "8050")), debug=False)
