"""Wrapping callback functions so that other transforms and Dash still see them as they are.

The wrapper keeps the function's signature (``__signature__``): dash-extensions'
``ServersideOutputTransform``, ``DataclassTransform`` and ``BaseModelTransform`` read it
with ``inspect.getfullargspec``, which does not follow ``__wrapped__``. It records what
it wraps in a :class:`Plan`, taken when it is made: the outputs the wrapped function
returns are the outputs at that moment; transforms applied later (LoadingTransform,
BlockingCallbackTransform) append theirs to the callback and wrap *us*, so their values
are added around ours and never pass through the conversion.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import io
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from dash import ALL, ALLSMALLER, MATCH, Output

from ..exc import FileServeError
from ..values import File, find_converter

__all__ = ["MARK", "Plan", "check_set_props", "has_wildcard", "name_of", "outputs_of", "snapshot", "wrap"]

#: Attribute of a wrapped function holding its :class:`Plan`. ``functools.wraps`` copies it
#: onto the wrappers of later transforms, so a callback shared by several apps (the global
#: ``dash_extensions.enrich.callback``) is wrapped once, not once per app.
MARK = "__dfc_transform__"

# What a callback may return to a FileOutput but JSON cannot carry. A str may be JSON.
_FILE_TYPES = (bytes, bytearray, memoryview, io.IOBase, os.PathLike, File)


@dataclass(frozen=True)
class Plan:
    """What a wrapper does around one callback function."""

    #: ``module.qualname`` of the user's function, for messages.
    name: str
    #: The outputs the wrapped function returns (a copy of the structure: the ``Output``
    #: objects themselves, whose ids transforms may still change in place); ``None`` when
    #: it has no ``FileOutput`` (the wrapper only checks ``set_props``).
    spec: Any
    #: The transform that made the wrapper: the one used when the app cannot be told.
    owner: Any = None
    #: A background callback: its process ends with the call, so generated content is stored
    #: whole before the URL goes out (a web process serves it while it is made).
    background: bool = False


def wrap(func: Callable[..., Any], plan: Plan, finish: Callable[[Plan, Any], Any]) -> Callable[..., Any]:
    """``func`` whose result goes through ``finish(plan, result)``, with ``func``'s signature."""
    wrapper: Callable[..., Any]
    if inspect.iscoroutinefunction(func):

        @functools.wraps(func)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            return finish(plan, await func(*args, **kwargs))

    else:

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return finish(plan, func(*args, **kwargs))

    # getfullargspec() reads __signature__ but does not follow __wrapped__. A callable
    # without a signature has nothing to keep.
    with contextlib.suppress(TypeError, ValueError):
        wrapper.__signature__ = inspect.signature(func)  # type: ignore[attr-defined]
    setattr(wrapper, MARK, plan)
    return wrapper


def snapshot(structure: Any) -> Any:
    """A copy of an output structure's lists and dicts (not of its ``Output`` objects)."""
    if isinstance(structure, list):
        return [snapshot(s) for s in structure]
    if isinstance(structure, dict):
        return {k: snapshot(v) for k, v in structure.items()}
    return structure


def outputs_of(spec: Any) -> Iterator[Output]:
    """The ``Output`` objects of an output structure, in order."""
    if isinstance(spec, list):
        for s in spec:
            yield from outputs_of(s)
    elif isinstance(spec, dict):
        for s in spec.values():
            yield from outputs_of(s)
    elif isinstance(spec, Output):
        yield spec


def has_wildcard(output: Output, *wildcards: Any) -> bool:
    ids = output.component_id
    return isinstance(ids, dict) and any(v in (wildcards or (ALL, ALLSMALLER, MATCH)) for v in ids.values())


def check_set_props(callback: str) -> None:
    """Refuse files given to ``dash.set_props`` in this callback run, before Dash fails on
    them with "not JSON serializable"."""
    for component_id, props in _pending_set_props().items():
        for prop, value in dict(props).items():
            if isinstance(value, _FILE_TYPES) or find_converter(value) is not None:
                kind = type(value.data if isinstance(value, File) else value).__name__
                raise FileServeError(
                    f"set_props({component_id!r}, {{{prop!r}: {kind}}}): set_props sends its values "
                    f"to the browser as JSON, and a file cannot go there; store the file and set its "
                    f"URL: set_props({component_id!r}, {{{prop!r}: transform.register(value, "
                    f"filename=...)}}) with the app's FileServeTransform, or return the file to a "
                    f"FileOutput",
                    where=f"callback {callback}",
                )


def _pending_set_props() -> dict[Any, Any]:
    """What ``dash.set_props`` has collected in this callback run so far."""
    try:
        # Dash keeps it in its callback context; there is no public accessor.
        from dash._callback_context import _get_context_value

        props = getattr(_get_context_value(), "updated_props", {})
    except Exception:  # no callback context (called outside Dash) or another Dash: nothing to check
        return {}
    # A background job's ProxySetProps writes through and keeps its items in _data.
    data = getattr(props, "_data", props)
    return dict(data) if isinstance(data, dict) else {}


def name_of(func: Any) -> str:
    """``module.qualname`` of a function."""
    return f"{getattr(func, '__module__', '?')}.{getattr(func, '__qualname__', repr(func))}"
