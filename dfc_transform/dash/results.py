"""What a wrapped callback returns, as Dash must get it: every file replaced by its URL.

Along the output structure the wrapper took when it was made (see :class:`.callbacks.Plan`),
each value at a ``FileOutput`` is stored and replaced by its URL; every other value is
left as it is. ``None`` and ``no_update`` pass through; an ``ALL`` output takes a list.
"""

from __future__ import annotations

import secrets
from typing import Any

import dash

from ..exc import UnsupportedValueError
from ..service import FileService
from .callbacks import Plan
from .output import FileOutput

__all__ = ["to_urls"]

_NO_UPDATE = type(dash.no_update)


def to_urls(service: FileService, plan: Plan, result: Any) -> Any:
    """``result`` with its files stored through ``service`` and replaced by their URLs."""
    return _convert(service, plan, result, plan.spec)


def _convert(service: FileService, plan: Plan, value: Any, spec: Any) -> Any:
    if value is None or isinstance(value, _NO_UPDATE):
        return value
    if isinstance(spec, FileOutput):
        if not spec.is_multi:
            return _store(service, plan, value, spec, str(spec))
        if not isinstance(value, (list, tuple)):
            raise UnsupportedValueError(
                "an ALL output takes a list of files, one per matching component; "
                f"got {type(value).__name__}",
                where=f"callback {plan.name}, output {spec}",
            )
        return [_store(service, plan, v, spec, f"{spec}[{i}]") for i, v in enumerate(value)]
    if isinstance(spec, list) and isinstance(value, (list, tuple)) and len(value) == len(spec):
        return type(value)(_convert(service, plan, v, s) for v, s in zip(value, spec, strict=True))
    if isinstance(spec, dict) and isinstance(value, dict):
        return {k: _convert(service, plan, v, spec[k]) if k in spec else v for k, v in value.items()}
    return value  # a shape Dash itself will reject, with its own message


def _store(service: FileService, plan: Plan, value: Any, output: FileOutput, label: str) -> Any:
    if value is None or isinstance(value, _NO_UPDATE):
        return value
    where = f"callback {plan.name}, output {label}"
    url = service.output_for(
        value, output.file_options, where=where, prop=output.component_property, stream=not plan.background
    )
    if output.component_property == "data" and isinstance(url, str):
        # A Download saves when its data changes: the same file twice must still be a new
        # value, as each dcc.send_* answer is (the fragment never reaches the server).
        url += "#" + secrets.token_hex(4)
    return url
