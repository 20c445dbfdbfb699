"""The Pyramid request of a connection: a WebSocket or an event stream.

Built for the handshake (or on first use), with the thread locals
Pyramid's synchronous code expects; its finished callbacks run once the
connection ends; ``run_sync`` calls run with it as the current request.
Everything here is synchronous and meant for the thread pool, except
where it only runs Pyramid's own code (see
:func:`pyramid_asgi_ws.handshake.builds_app_code`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
import contextlib
import io
import logging
from typing import Any

from pyramid.httpexceptions import HTTPBadRequest
from pyramid.interfaces import (
    IRequestExtensions,
    IRequestFactory,
    IRootFactory,
)
from pyramid.request import Request, apply_request_extensions
from pyramid.threadlocal import manager
from pyramid.traversal import DefaultRootFactory

from pyramid_asgi_ws.sse import EventStream
from pyramid_asgi_ws.websocket import WebSocket
from pyramid_asgi_ws.wsgi import BadRequest, build_environ

log = logging.getLogger('pyramid_asgi_ws')

#: How the checks reach the thread pool: ``await run_sync(fn, *args)``
#: runs ``fn(*args)`` in a pool thread (the bridge's ``run_sync``).
RunSync = Callable[..., Awaitable[Any]]
Factory = Callable[[Request], Any]  # a root factory, or factory=
#: What has a request of its own: a WebSocket or an event stream.
Connection = WebSocket | EventStream


@contextlib.contextmanager
def threadlocals(
    registry: Any, request: Request | None = None
) -> Iterator[None]:
    """Make ``get_current_request/registry()`` work in what runs inside.

    For the synchronous Pyramid code the add-on calls (request and root
    factories, security policies, finished callbacks, ``ws.run_sync``)
    that expects Pyramid's thread locals, as views have them.
    """
    manager.push({'request': request, 'registry': registry})
    try:
        yield
    finally:
        manager.pop()


def make_request(
    registry: Any, ws: Connection, factory: Factory | None = None
) -> Request:
    """Build the Pyramid request for a WebSocket handshake (or a stream).

    Its ``context`` comes from ``factory`` (a consumer's ``factory=``) or
    the application's root factory, as for a view.
    """
    return with_context(new_request(registry, ws.scope, ws), factory)


def new_request(
    registry: Any, scope: dict[str, Any], conn: Connection | None = None
) -> Request:
    """The request, with its extensions (``request.tm``), but no context.

    ``request.websocket`` is the WebSocket, ``request.event_stream`` the
    event stream (``None`` when the request is of the other kind).
    """
    try:
        environ = build_environ(scope, io.BytesIO())
    except BadRequest as exc:  # the handshake is refused with 400
        raise HTTPBadRequest(str(exc)) from None
    make = registry.queryUtility(IRequestFactory, default=Request)
    with threadlocals(registry):
        request = make(environ)
        request.registry = registry
        request.matchdict = scope.get('matchdict') or {}
        request.matched_route = None
        request.websocket = conn if isinstance(conn, WebSocket) else None
        request.event_stream = conn if isinstance(conn, EventStream) else None
        extensions = registry.queryUtility(IRequestExtensions)
        if extensions is not None:
            apply_request_extensions(request, extensions=extensions)
    return request


def with_context(request: Request, factory: Factory | None) -> Request:
    """Set ``request.context`` from ``factory`` or the root factory."""
    if factory is None:
        factory = request.registry.queryUtility(
            IRootFactory, default=DefaultRootFactory
        )
    with threadlocals(request.registry, request):
        request.context = factory(request)
    return request


def run_finished_callbacks(registry: Any, ws: Connection) -> None:
    """Run the finished callbacks of the connection's request, if built.

    As Pyramid does after a view (closing a database session, say); one
    that raises is logged, never sent to the client.
    """
    if ws._request is not None:
        finish_request(registry, ws._request, ws.path)


def finish_request(registry: Any, request: Request, path: str) -> None:
    """Run ``request``'s finished callbacks, logging one that raises."""
    if not request.finished_callbacks:
        return
    try:
        with threadlocals(registry, request):
            request._process_finished_callbacks()
    except Exception:
        log.exception('a finished callback failed on %s', path)


def call_in_request(
    ws: Connection,
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Any:
    """Call ``fn(*args, **kwargs)`` with the connection's request current.

    What ``ws.run_sync`` runs in a pool thread; the request is built here
    if nothing built it yet.
    """
    request = ws.request
    with threadlocals(ws.scope['registry'], request):
        return fn(*args, **kwargs)


def run_in_request(
    run_sync: RunSync,
    ws: Connection,
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Awaitable[Any]:
    """Run :func:`call_in_request` through ``run_sync`` (the pool's).

    What :meth:`WebSocket.run_sync <pyramid_asgi_ws.WebSocket.run_sync>`
    awaits; the application hands it to each connection as its
    ``runner``.
    """
    return run_sync(call_in_request, ws, fn, args, kwargs)
