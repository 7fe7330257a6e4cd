"""Adapters: the only code that imports a web framework.

- :mod:`.flask`: Flask (WSGI);
- :mod:`.current`: the cookies of the request being served now, on whatever server.
"""
