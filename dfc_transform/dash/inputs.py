"""``FileInput`` and ``FileState``: dependencies whose values arrive as ``UploadedFile`` objects.

The ``Upload`` component puts a JSON description of each finished file in its ``value``:
``{name, size, type, url, receipt}`` (a list of them with ``multiple=True``). A plain
``Input``/``State`` on that prop gets the description as it is; a ``FileInput``/``FileState``
gets :class:`~dfc_transform.dash.uploaded.UploadedFile` objects instead. The transform
wraps such callbacks with :func:`wrap_inputs`, which converts the arguments at those
positions before the function runs. Only descriptions whose receipt this app signed are
accepted, and a private upload only in a callback from the browser session that made it.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dash import Input, State

from ..exc import ContentMissingError, FileServeError
from ..http.adapters.current import current_owner
from ..http.tickets import TicketError, Tickets
from ..service import FileService
from .uploaded import UploadedFile

__all__ = ["FileInput", "FileState", "has_file_inputs", "to_uploaded", "wrap_inputs"]

#: Attribute of a function whose file inputs are converted (``functools.wraps`` copies it).
MARK = "__dfc_transform_inputs__"


class FileInput(Input):
    """An ``Input`` on an ``Upload``'s ``value``: the callback gets ``UploadedFile`` objects.

    ``FileInput("up", "value")``: ``None`` before any upload, one ``UploadedFile``, or a list
    of them when the component has ``multiple=True`` (and a list per component for ``ALL``).
    """


class FileState(State):
    """A ``State`` on an ``Upload``'s ``value``, converted as :class:`FileInput` is."""


_FILE_DEPENDENCIES = (FileInput, FileState)


def has_file_inputs(structure: Any) -> bool:
    """Whether an input structure (list or dict, possibly nested) holds a file dependency."""
    if isinstance(structure, _FILE_DEPENDENCIES):
        return True
    if isinstance(structure, (list, tuple)):
        return any(has_file_inputs(s) for s in structure)
    if isinstance(structure, dict):
        return any(has_file_inputs(s) for s in structure.values())
    return False


def wrap_inputs(
    func: Callable[..., Any], structure: Any, service_of: Callable[[], FileService], name: str
) -> Callable[..., Any]:
    """``func`` whose arguments at the file dependencies of ``structure`` are converted first.

    ``structure`` is the callback's inputs as dash-extensions keeps them: a list (positional
    arguments, in order) or a dict (keyword arguments). ``service_of()`` gives the service
    of the app serving the call. Keeps ``func``'s signature, for the transforms around it.
    """
    shape = _snapshot(structure)

    def convert(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
        service = service_of()
        new_args = list(args)
        if isinstance(shape, list):
            for i, dep in enumerate(shape[: len(args)]):
                new_args[i] = _convert(args[i], dep, service, name)
        elif isinstance(shape, dict):
            kwargs = {k: _convert(v, shape[k], service, name) if k in shape else v for k, v in kwargs.items()}
        return new_args, kwargs

    wrapper: Callable[..., Any]
    if inspect.iscoroutinefunction(func):

        @functools.wraps(func)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            new_args, new_kwargs = convert(args, kwargs)
            return await func(*new_args, **new_kwargs)

    else:

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            new_args, new_kwargs = convert(args, kwargs)
            return func(*new_args, **new_kwargs)

    with contextlib.suppress(TypeError, ValueError):
        wrapper.__signature__ = inspect.signature(func)  # type: ignore[attr-defined]
    setattr(wrapper, MARK, True)
    return wrapper


def _snapshot(structure: Any) -> Any:
    if isinstance(structure, (list, tuple)):
        return [_snapshot(s) for s in structure]
    if isinstance(structure, dict):
        return {k: _snapshot(v) for k, v in structure.items()}
    return structure


def _convert(value: Any, dep: Any, service: FileService, name: str) -> Any:
    """``value`` of dependency ``dep`` with uploaded files where ``dep`` is a file dependency."""
    if isinstance(dep, _FILE_DEPENDENCIES):
        return to_uploaded(value, service, where=f"callback {name}, input {dep}")
    if isinstance(dep, list) and isinstance(value, (list, tuple)):
        return [_convert(v, d, service, name) for v, d in zip(value, dep, strict=False)]
    if isinstance(dep, dict) and isinstance(value, dict):
        return {k: _convert(v, dep[k], service, name) if k in dep else v for k, v in value.items()}
    return value


def to_uploaded(value: Any, service: FileService, *, where: str = "") -> Any:
    """The ``UploadedFile`` objects of a component's ``value``: ``None``, a description
    ``{name, size, type, url, receipt}`` or a list (of lists, for ``ALL``) of them.

    :raises FileServeError: for a description this app did not sign, a file no longer in
        the store, or a private upload in another browser session.
    """
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        return [to_uploaded(v, service, where=where) for v in value]
    if not isinstance(value, dict):
        raise FileServeError(
            f"got {type(value).__name__} where an Upload's value (a file description, a list of "
            "them, or None) was expected: use FileInput only on the value of a dfc_transform.Upload",
            where=where,
        )
    store = service.store
    try:
        token, last_modified = Tickets(store).token_of_receipt(value.get("receipt"))
    except TicketError as err:
        raise FileServeError(
            f"the file description {str(value.get('name'))[:100]!r} was not made by this app's upload "
            f"route ({err}): only files uploaded through dfc_transform.Upload are accepted",
            where=where,
        ) from None
    record = store.get(token)
    if record is None:
        raise ContentMissingError(
            f"the uploaded file {str(value.get('name'))[:100]!r} is no longer in the store (files "
            f"live {service.timeout} s, the transform's timeout): upload it again",
            where=where,
        )
    if record.owner is not None and record.owner != current_owner():
        raise FileServeError(
            f"the uploaded file {record.filename!r} belongs to another browser session",
            where=where,
        )
    path = Path(record.path) if record.path is not None and not record.chunked else None
    return UploadedFile(
        name=record.filename,
        size=record.size,
        mime_type=record.mime_type,
        url=service.url_for(record),
        token=record.token,
        path=path,
        last_modified=last_modified,
        _store=store,
        _record=record,
    )
