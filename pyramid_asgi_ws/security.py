"""Handshake checks: origin, subprotocol and permission.

Each check returns ``None`` to let the handshake through or a
:class:`Refusal` saying which HTTP status to answer and why; the app logs
the reason and the client sees only the status.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
import ipaddress
import sys
from typing import TYPE_CHECKING, Any

from pyramid.httpexceptions import HTTPException, HTTPForbidden
from pyramid.interfaces import ISecurityPolicy

from pyramid_asgi_ws.settings import normalize_origin

if TYPE_CHECKING:  # pragma: no cover
    from pyramid_asgi_ws.router import Consumer
    from pyramid_asgi_ws.websocket import WebSocket

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


def check_permission(ws: WebSocket, consumer: Consumer) -> Refusal | None:
    """Check ``permission`` against the request and its context.

    The request's context came from the consumer's ``factory`` or the
    app's root factory when it was built. Denied means 401 for an
    anonymous user and 403 otherwise, or whatever response the app's own
    forbidden view gives.
    """
    permission = consumer.permission
    if permission is None:
        return None
    request = ws.request
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
