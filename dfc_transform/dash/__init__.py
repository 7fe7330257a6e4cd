"""The Dash side: the transform, ``FileOutput``, downloads, uploads and the ``Upload`` component.

- :mod:`.transform`: ``FileServeTransform``, which stores what callbacks return to ``FileOutput``;
- :mod:`.output`: ``FileOutput``; :mod:`.callbacks`: wrapping callback functions;
- :mod:`.downloads`: a ``FileOutput`` on a ``dcc.Download``;
- :mod:`.inputs`, :mod:`.uploaded`: ``FileInput``/``FileState`` and ``UploadedFile``;
- :mod:`.component`: the ``Upload`` component; :mod:`.upload_tickets`: its tickets;
- :mod:`.results`: a callback's return value, each file replaced by its URL;
- :mod:`.install`: attaching a transform to an app, on Flask, Quart or FastAPI;
- :mod:`.apps`: which app a request or a callback run belongs to.
"""
