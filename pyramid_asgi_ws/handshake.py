"""The handshake: its Pyramid request and the checks before a consumer runs.

A WebSocket handshake is an HTTP request, and it is checked like one:
:func:`check_handshake` runs the origin, subprotocol and permission checks
in turn. Each check returns ``None`` to let the handshake through or a
:class:`Refusal` saying which HTTP status to answer and why; :func:`refuse`
logs the reason and the client sees only the status.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
import contextlib
from dataclasses import dataclass, field
import io
import ipaddress
import logging
import sys
from typing import TYPE_CHECKING, Any

from pyramid.httpexceptions import HTTPException, HTTPForbidden
from pyramid.interfaces import (
    IDefaultPermission,
    IRequestExtensions,
    IRequestFactory,
    IRootFactory,
    ISecurityPolicy,
)
from pyramid.request import Request, apply_request_extensions
from pyramid.security import NO_PERMISSION_REQUIRED
from pyramid.threadlocal import manager
from pyramid.traversal import DefaultRootFactory

from pyramid_asgi_ws.settings import normalize_origin
from pyramid_asgi_ws.websocket import (
    Receive,
    Send,
    WebSocket,
    WebSocketDisconnect,
    WebSocketState,
)
from pyramid_asgi_ws.wsgi import build_environ

if TYPE_CHECKING:  # pragma: no cover
    from pyramid_asgi_ws.router import Consumer

log = logging.getLogger('pyramid_asgi_ws')


@dataclass
class Refusal:
    """A refused handshake: the HTTP answer and the reason to log."""

    status: int
    reason: str
    body: bytes = b''
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)


def _headers(scope: dict[str, Any], name: bytes) -> list[str]:
    return [
        value.decode('latin-1')
        for key, value in scope.get('headers') or ()
        if key.lower() == name
    ]


def _header(scope: dict[str, Any], name: bytes) -> str | None:
    values = _headers(scope, name)
    return values[0] if values else None


def is_trusted(client: Any, trusted: tuple[str, ...]) -> bool:
    """Whether the peer address ``client`` is one of ``trusted`` proxies.

    ``trusted`` holds addresses, networks (``10.0.0.0/8``), ``*`` for any
    peer, and ``unix`` for peers with no address, which is how servers
    report a connection on a unix socket.
    """
    if not trusted:
        return False
    if '*' in trusted:
        return True
    host = client[0] if client else None
    if not host:
        return 'unix' in trusted
    if host in trusted:
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    for entry in trusted:
        try:
            if address in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False


def own_origin(scope: dict[str, Any], trusted: tuple[str, ...] = ()) -> str:
    """Return the origin the handshake was addressed to.

    ``X-Forwarded-Proto`` and ``X-Forwarded-Host`` count only when the
    peer is a trusted proxy (``asgi_ws.trusted_proxies``).
    """
    scheme = 'https' if scope.get('scheme') in ('wss', 'https') else 'http'
    host = _header(scope, b'host')
    if is_trusted(scope.get('client'), trusted):
        proto = _header(scope, b'x-forwarded-proto')
        if proto:
            scheme = proto.split(',')[0].strip().lower()
            scheme = {'ws': 'http', 'wss': 'https'}.get(scheme, scheme)
        forwarded_host = _header(scope, b'x-forwarded-host')
        if forwarded_host:
            host = forwarded_host.split(',')[0].strip()
    if host is None:
        server = scope.get('server') or ('localhost', None)
        host = server[0] if server[1] is None else f'{server[0]}:{server[1]}'
    return normalize_origin(f'{scheme}://{host}')


def check_origin(
    scope: dict[str, Any], consumer: Consumer, settings: dict[str, Any]
) -> Refusal | None:
    """Refuse a browser handshake from a page of another origin.

    ``require_origin`` (refusing handshakes with no ``Origin``) applies
    even where ``asgi_ws.check_origin`` is off.
    """
    origins = _headers(scope, b'origin')
    if not origins and consumer.setting('require_origin', settings):
        return Refusal(
            403,
            'handshake has no Origin header and asgi_ws.require_origin '
            '(or the consumer\'s require_origin) is on',
        )
    allowed = consumer.allowed_origins
    if allowed is None:
        if not settings['check_origin']:
            return None
        allowed = settings['allowed_origins']
    if not origins:
        return None
    if '*' in allowed:
        return None
    if len(origins) > 1:
        # browsers send one; hypercorn passes repeats on, in any order
        return Refusal(403, f'handshake has {len(origins)} Origin headers')
    origin = origins[0]
    normalized = normalize_origin(origin)
    if normalized in allowed:  # normalized when the settings were read
        return None
    own = own_origin(scope, settings['trusted_proxies'])
    if normalized == own:
        return None
    return Refusal(
        403,
        f'Origin {origin!r} is neither the app\'s own origin ({own!r}) nor '
        f'allowed; add it to asgi_ws.allowed_origins or to the consumer\'s '
        f'allowed_origins= to accept it',
    )


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
        )
    ws._subprotocol = chosen
    return None


def _raw_headers(
    headerlist: list[tuple[str, str]], keep: Callable[[str], bool]
) -> list[tuple[bytes, bytes]]:
    return [
        (name.encode('latin-1'), value.encode('latin-1'))
        for name, value in headerlist
        if keep(name.lower())
    ]


def refusal_from_exception(exc: HTTPException, reason: str) -> Refusal:
    """Return the refusal that an HTTP exception raised before accept asks."""
    headers = _raw_headers(
        exc.headerlist, lambda name: name in ('location', 'www-authenticate')
    )
    return Refusal(
        exc.code or 500, reason, f'{exc.code} {exc.title}'.encode(), headers
    )


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
    """Check the consumer's permission against the request and its context.

    The request's context came from the consumer's ``factory`` or the
    app's root factory when it was built. As for views, nothing is
    checked while the app has no security policy. Denied means 401 for
    an anonymous user and 403 otherwise, or whatever response the app's
    own forbidden view gives.
    """
    request = ws.request
    permission = effective_permission(consumer, request.registry)
    if permission is None:
        return None
    if request.registry.queryUtility(ISecurityPolicy) is None:
        return None
    allowed = request.has_permission(permission, request.context)
    if allowed:
        return None
    anonymous = request.authenticated_userid is None
    who = 'anonymous user' if anonymous else repr(request.authenticated_userid)
    reason = f'{who} lacks permission {permission!r}: {allowed}'
    return _forbidden_view_refusal(request, anonymous, reason)


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
        return Refusal(status, reason, f'{status} {title}'.encode())
    headers = _raw_headers(
        response.headerlist, lambda name: name != 'content-length'
    )
    return Refusal(response.status_int, reason, response.body, headers)


# -- the handshake's request ----------------------------------------------


@contextlib.contextmanager
def threadlocals(
    registry: Any, request: Request | None = None
) -> Iterator[None]:
    """Make ``get_current_request/registry()`` work in what runs inside.

    For synchronous code run on the event loop (root factories, security
    policies, finished callbacks) that expects Pyramid's thread locals, as
    views have them.
    """
    manager.push({'request': request, 'registry': registry})
    try:
        yield
    finally:
        manager.pop()


def make_request(
    registry: Any,
    ws: WebSocket,
    factory: Callable[[Request], Any] | None = None,
) -> Request:
    """Build the Pyramid request for a WebSocket handshake.

    Its ``context`` comes from ``factory`` (a consumer's ``factory=``) or
    the application's root factory, as for a view.
    """
    environ = build_environ(ws.scope, io.BytesIO())
    make = registry.queryUtility(IRequestFactory, default=Request)
    request = make(environ)
    request.registry = registry
    request.matchdict = ws.matchdict
    request.matched_route = None
    request.websocket = ws
    extensions = registry.queryUtility(IRequestExtensions)
    if extensions is not None:
        apply_request_extensions(request, extensions=extensions)
    if factory is None:
        factory = registry.queryUtility(
            IRootFactory, default=DefaultRootFactory
        )
    with threadlocals(registry, request):
        request.context = factory(request)
    return request


def run_finished_callbacks(registry: Any, ws: WebSocket) -> None:
    """Run the finished callbacks of the connection's request, if built.

    As Pyramid does after a view (closing a database session, say); one
    that raises is logged, never sent to the client.
    """
    request = ws._request
    if request is None or not request.finished_callbacks:
        return
    try:
        with threadlocals(registry, request):
            request._process_finished_callbacks()
    except Exception:
        log.exception('a finished callback failed on %s', ws.path)


# -- checking and refusing --------------------------------------------------


def check_handshake(
    ws: WebSocket, consumer: Consumer, settings: dict[str, Any]
) -> Refusal | None:
    """Run the origin, subprotocol and permission checks in turn.

    The request (and its context) is built only when a permission or a
    ``factory=`` asks for it. An HTTP exception raised meanwhile (by a
    context factory, say) refuses with its status; any other exception (a
    security policy choking on a hostile query string) is logged and
    refuses with 500.
    """
    try:
        refusal = check_origin(
            ws.scope, consumer, settings
        ) or check_subprotocol(ws, consumer)
        if refusal is not None:
            return refusal
        registry = ws.scope['registry']
        if (
            effective_permission(consumer, registry) is None
            and consumer.factory is None
        ):
            return None
        with threadlocals(registry, ws.request):
            return check_permission(ws, consumer)
    except HTTPException as exc:
        return refusal_from_exception(
            exc, f'{exc.code} raised while checking the handshake: {exc}'
        )
    except Exception:
        log.exception(
            'checking the handshake of consumer %r failed on WebSocket %s',
            consumer.name,
            ws.path,
        )
        return Refusal(500, 'the handshake check raised')


async def refuse(ws: WebSocket, refusal: Refusal) -> None:
    """Refuse a handshake: a denial response, or a close (403)."""
    log.warning(
        'refused WebSocket handshake to %s with %d: %s',
        ws.path,
        refusal.status,
        refusal.reason,
    )
    if ws.application_state is not WebSocketState.CONNECTING:
        return
    try:
        await ws.deny(refusal.status, refusal.body, refusal.headers)
    except (WebSocketDisconnect, RuntimeError):
        pass


async def refuse_unknown(
    scope: dict[str, Any], receive: Receive, send: Send
) -> None:
    """Refuse a handshake to a path no consumer serves with 404."""
    await refuse(
        WebSocket(scope, receive, send),
        Refusal(
            404, 'no WebSocket consumer matches this path', b'404 Not Found'
        ),
    )
