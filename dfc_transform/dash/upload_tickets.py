"""Tickets for the pages an app serves: which service a component belongs to, and its ticket."""

from __future__ import annotations

import logging
from typing import Any

from .. import http
from ..exc import FileServeError
from ..http.adapters.current import script_root
from ..http.tickets import Tickets
from ..service import FileService
from . import apps

__all__ = ["service_of_app", "ticket_props"]

logger = logging.getLogger(__name__)


def service_of_app(app: Any) -> FileService | None:
    """The service of the ``FileServeTransform`` of a Dash app, or ``None``."""
    transform = apps.transform_of(app)
    return transform.service if transform is not None else None


def ticket_props(
    component_id: Any,
    *,
    max_size: int | None,
    accept: tuple[str, ...] | None,
    private: bool,
    idle_timeout: int | None = None,
) -> dict[str, str] | None:
    """The ``ticket`` prop of an ``Upload`` sent in this request: ``{token, endpoint}``.

    ``None`` when no app with a ``FileServeTransform`` serves the request (the component
    then says that uploads are not available) or when its store cannot be reached.
    """
    app = apps.current_app()
    service = service_of_app(app) if app is not None else None
    if service is None:
        return None
    if private:
        service.uses_private = True  # pages then give browsers a session (see .session)
    try:
        token = Tickets(service.store).issue(
            component_id, max_size=max_size, accept=accept, private=private, idle=idle_timeout
        )
    except FileServeError as err:
        logger.warning("no upload ticket for %r: %s", component_id, err)
        return None
    base = service.url_base
    if base is None:
        base = script_root() + f"/{http.ROUTE_NAME}/"
    return {"token": token, "endpoint": base + http.UPLOAD_ROUTE}
