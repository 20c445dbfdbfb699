"""The origin check: a browser's handshake must come from an allowed page.

Browsers send cookies with a WebSocket handshake whichever page opened
it, so a handshake whose ``Origin`` is neither the application's own
origin nor allowed is refused (cross-site WebSocket hijacking). Behind a
trusted proxy the own origin follows ``X-Forwarded-Proto``/``-Host``.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Any

from pyramid_asgi_ws.refusal import Refusal
from pyramid_asgi_ws.settings import normalize_origin

if TYPE_CHECKING:  # pragma: no cover - for type checkers only
    from pyramid_asgi_ws.router import Consumer


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
    # a dual-stack socket reports an IPv4 peer as ::ffff:a.b.c.d
    mapped = getattr(address, 'ipv4_mapped', None)
    address = mapped or address
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
            kind='origin',
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
        return Refusal(
            403, f'handshake has {len(origins)} Origin headers', kind='origin'
        )
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
        kind='origin',
    )


def cors_origin(
    scope: dict[str, Any], consumer: Consumer, settings: dict[str, Any]
) -> str | None:
    """Return what a response to a cross-origin page may carry as its
    ``Access-Control-Allow-Origin``, or ``None``.

    The page's origin (readable with the user's cookies) only when it is
    listed (the consumer's ``allowed_origins=``, else
    ``asgi_ws.allowed_origins``); ``*`` (readable without them) when the
    list holds ``*``. An origin the check let through otherwise (its own
    origin, or any with ``asgi_ws.check_origin`` off) gets nothing: a
    same-origin page needs no CORS, and no unlisted page may read a
    user's stream.
    """
    origins = _headers(scope, b'origin')
    if len(origins) != 1:
        return None
    allowed = consumer.allowed_origins
    if allowed is None:
        allowed = settings['allowed_origins']
    if normalize_origin(origins[0]) in allowed:
        return origins[0]
    return '*' if '*' in allowed else None
