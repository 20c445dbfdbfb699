"""The handshake: the checks before a consumer runs.

A WebSocket handshake is an HTTP request, and it is checked like one, as
is the request opening an event stream: :func:`check_handshake` runs the
origin check (:mod:`pyramid_asgi_ws.origin`), the subprotocol (for a
WebSocket) and the permission checks in turn; :func:`check_http` checks
an HTTP consumer's permission as for a view. Each check returns ``None``
to let the request through or a :class:`~pyramid_asgi_ws.refusal.Refusal`
saying which HTTP status to answer and why.

The checks that read the scope alone run on the event loop; whatever
runs the application's synchronous code (building the request, the
security policy, a forbidden view, finished callbacks) runs in the
thread pool, through the ``run_sync`` the application passes in. The
request itself is built by :mod:`pyramid_asgi_ws.request`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
import logging
import sys
from typing import TYPE_CHECKING, Any

from pyramid.httpexceptions import HTTPException, HTTPForbidden
from pyramid.interfaces import (
    IDefaultPermission,
    IRequestFactory,
    IRootFactory,
    ISecurityPolicy,
)
from pyramid.request import Request
from pyramid.security import NO_PERMISSION_REQUIRED

from pyramid_asgi_ws.origin import check_origin
from pyramid_asgi_ws.refusal import (
    Refusal,
    raw_headers,
    refusal_from_exception,
)
from pyramid_asgi_ws.request import (
    Connection,
    RunSync,
    call_in_request,
    finish_request,
    make_request,
    new_request,
    run_finished_callbacks,
    run_in_request,
    threadlocals,
    with_context,
)
from pyramid_asgi_ws.txn import request_transaction
from pyramid_asgi_ws.websocket import WebSocket
from pyramid_asgi_ws.wsgi.pool import shielded

if TYPE_CHECKING:  # pragma: no cover - for type checkers only
    from pyramid_asgi_ws.router import Consumer

log = logging.getLogger('pyramid_asgi_ws')


def negotiate_subprotocol(
    offered: list[str], supported: tuple[str, ...] | None
) -> str | None:
    """Return the first offered subprotocol that is ``supported``."""
    for name in offered:
        if supported and name in supported:
            return name
    return None


def check_subprotocol(ws: WebSocket, consumer: Consumer) -> Refusal | None:
    """Pick the subprotocol, refusing when the consumer needs one."""
    supported = consumer.subprotocols
    if not supported:
        return None
    chosen = negotiate_subprotocol(ws.subprotocols, supported)
    if chosen is None:
        return Refusal(
            400,
            f'client offered subprotocols {ws.subprotocols!r}, the consumer '
            f'speaks only {list(supported)!r}',
            kind='subprotocol',
        )
    ws._subprotocol = chosen
    return None


def effective_permission(consumer: Consumer, registry: Any) -> Any:
    """Return the permission a handshake to ``consumer`` needs, or None.

    As for a view: a consumer without ``permission=`` needs the app's
    default permission (``config.set_default_permission``), and
    :data:`pyramid.security.NO_PERMISSION_REQUIRED` opts out of it.
    """
    permission = consumer.permission
    if permission is None:
        permission = registry.queryUtility(IDefaultPermission)
    if permission == NO_PERMISSION_REQUIRED:
        return None
    return permission


def check_permission(ws: WebSocket, consumer: Consumer) -> Refusal | None:
    """Check the consumer's permission against the handshake's request.

    The request's context came from the consumer's ``factory`` or the
    app's root factory when it was built. As for views, nothing is
    checked while the app has no security policy. Denied means 401 for
    an anonymous user and 403 otherwise, or whatever response the app's
    own forbidden view gives.
    """
    return _check_request(ws.request, consumer)


def _check_request(request: Request, consumer: Consumer) -> Refusal | None:
    permission = effective_permission(consumer, request.registry)
    if permission is None:
        return None
    if request.registry.queryUtility(ISecurityPolicy) is None:
        return None
    allowed = request.has_permission(permission, request.context)
    if allowed:
        return None
    userid = request.authenticated_userid  # once: a policy call may cost
    who = 'anonymous user' if userid is None else repr(userid)
    reason = f'{who} lacks permission {permission!r}: {allowed}'
    return _forbidden_view_refusal(request, userid is None, reason)


def _forbidden_view_refusal(
    request: Any, anonymous: bool, reason: str
) -> Refusal:
    exc = HTTPForbidden()
    try:
        raise exc
    except HTTPForbidden:
        try:
            response = request.invoke_exception_view(sys.exc_info())
        except Exception:
            response = exc
    if response is exc:
        status = 401 if anonymous else 403
        title = 'Unauthorized' if anonymous else 'Forbidden'
        body = f'{status} {title}'.encode()
        return Refusal(status, reason, body, kind='permission')
    headers = raw_headers(
        response.headerlist, lambda name: name != 'content-length'
    )
    return Refusal(
        response.status_int, reason, response.body, headers, 'permission'
    )


# -- checking and refusing --------------------------------------------------


def _needs_request(consumer: Consumer, registry: Any) -> bool:
    """Whether a permission or a ``factory=`` asks for the request."""
    return (
        effective_permission(consumer, registry) is not None
        or consumer.factory is not None
    )


def builds_app_code(consumer: Consumer, registry: Any) -> bool:
    """Whether building the request (and its context) runs the app's code.

    True for a permission to check, a ``factory=``, or an app with a
    request or root factory of its own: the handshake then builds the
    request in the thread pool. Otherwise building it runs only
    Pyramid's own code (no I/O), which may happen on the loop.
    """
    return (
        _needs_request(consumer, registry)
        or registry.queryUtility(IRequestFactory) is not None
        or registry.queryUtility(IRootFactory) is not None
    )


def _guarded(
    consumer: Consumer,
    what: str,
    where: str,
    check: Callable[[], Refusal | None],
) -> Refusal | None:
    """Run ``check`` of the ``what``, turning what it raises into a refusal.

    An HTTP exception (raised by a context factory, say) refuses with its
    status; any other exception (a security policy choking on a hostile
    query string) is logged and refuses with 500.
    """
    try:
        return check()
    except HTTPException as exc:
        return refusal_from_exception(
            exc, f'{exc.code} raised while checking the {what}: {exc}'
        )
    except Exception:
        log.exception(
            'checking the %s of consumer %r failed on %s',
            what,
            consumer.name,
            where,
        )
        return Refusal(500, f'the {what} check raised', kind='error')


def where(conn: Connection) -> str:
    """Name the connection in a log line: ``WebSocket /path`` or
    ``event stream /path``."""
    kind = 'WebSocket' if isinstance(conn, WebSocket) else 'event stream'
    return f'{kind} {conn.path}'


def prepare_request(ws: Connection, consumer: Consumer) -> Refusal | None:
    """Build the handshake's request and check the consumer's permission.

    Synchronous, and meant for a pool thread: request factory, request
    extensions, root factory or ``factory=``, security policy and
    forbidden view all run in this one call, with the thread locals set
    and, with ``pyramid_tm``, the last three in the request's transaction.
    """

    def check() -> Refusal | None:
        ws._request = new_request(ws.scope['registry'], ws.scope, ws)
        return _checked(ws._request, consumer)  # callbacks run if it fails

    return _guarded(consumer, 'handshake', where(ws), check)


def _checked(request: Request, consumer: Consumer) -> Refusal | None:
    """Set the context and check the permission as ``pyramid_tm`` wraps a
    view: in ``request.tm``'s transaction, committed only if it passes."""
    with request_transaction(request) as manager:
        with_context(request, consumer.factory)
        with threadlocals(request.registry, request):
            refusal = _check_request(request, consumer)
        if refusal is not None and manager is not None:
            manager.doom()
    return refusal


def _scope_checks(
    ws: Connection, consumer: Consumer, settings: dict[str, Any]
) -> Refusal | None:
    refusal = check_origin(ws.scope, consumer, settings)
    if refusal is None and isinstance(ws, WebSocket):
        refusal = check_subprotocol(ws, consumer)
    return refusal


async def check_handshake(
    ws: Connection,
    consumer: Consumer,
    settings: dict[str, Any],
    run_sync: RunSync,
) -> Refusal | None:
    """Run the origin, subprotocol and permission checks in turn.

    ``ws`` is a WebSocket or an event stream (which has no subprotocol).
    The origin and subprotocol checks read the scope alone and run on the
    loop; when building the request runs the app's code
    (:func:`builds_app_code`), :func:`prepare_request` runs in one call
    of ``run_sync`` (the thread pool's), and the loop keeps serving.
    """
    refusal = _guarded(
        consumer,
        'handshake',
        where(ws),
        lambda: _scope_checks(ws, consumer, settings),
    )
    if refusal is not None:
        return refusal
    if not builds_app_code(consumer, ws.scope['registry']):
        return None
    refusal = await shielded(run_sync(prepare_request, ws, consumer))
    # A client that left while the check ran may have its transport
    # closing with the server's disconnect callback still queued: let it
    # run first, or uvicorn drops the accept and fails the next send
    # with a RuntimeError instead of the disconnect.
    await asyncio.sleep(0)
    return refusal


def _check_http(consumer: Consumer, scope: dict[str, Any]) -> Refusal | None:
    def check() -> Refusal | None:
        request = new_request(scope['registry'], scope)
        try:
            return _checked(request, consumer)
        finally:
            finish_request(request.registry, request, scope['path'])

    return _guarded(consumer, 'request', f'HTTP {scope["path"]}', check)


async def check_http(
    consumer: Consumer, scope: dict[str, Any], run_sync: RunSync
) -> Refusal | None:
    """Check an HTTP consumer's permission before it runs, as for a view.

    The Pyramid request is built for the check only (the body is left to
    the consumer), in one call of ``run_sync`` (the thread pool's) that
    also runs its finished callbacks once the check is done.
    """
    if not _needs_request(consumer, scope['registry']):
        return None
    return await shielded(run_sync(_check_http, consumer, scope))


__all__ = [
    'call_in_request',
    'make_request',
    'run_finished_callbacks',
    'run_in_request',
    'threadlocals',
]
