"""Adapters: the only code that imports a web framework.

- :mod:`.flask`: Flask; :mod:`.wsgi`: a file's GET answered in front of Flask, from the environ;
- :mod:`.quart`: Quart; :mod:`.starlette`: Starlette and FastAPI; :mod:`.asgi`: what the two
  async servers share (the core's blocking work off the event loop);
- :mod:`.current`: the cookies of the request being served now, on whatever server.
"""
