"""Refusals: the HTTP answer to a handshake or request that may not pass.

A :class:`Refusal` says which status, body and headers to answer and
why; the reason is logged on the ``pyramid_asgi_ws`` logger at WARNING
level and the client sees only the answer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
import logging
from typing import Any

from pyramid.httpexceptions import HTTPException

from pyramid_asgi_ws.websocket import (
    Receive,
    Send,
    WebSocket,
    WebSocketDisconnect,
    WebSocketState,
)

log = logging.getLogger('pyramid_asgi_ws')

#: The scope key where a refusal leaves its ``kind`` for the metrics.
REFUSAL_KEY = 'asgi_ws.refusal'


@dataclass
class Refusal:
    """A refused handshake: the HTTP answer and the reason to log.

    ``kind`` is the reason's class, a metrics label: ``origin``,
    ``subprotocol``, ``permission``, ``method``, ``client`` (not allowed
    to read the metrics), ``error``, ``shutdown``, ``not_found``, or
    ``application`` (the application's code refused).
    """

    status: int
    reason: str
    body: bytes = b''
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    kind: str = 'application'


def refuse_method(
    scope: dict[str, Any], methods: tuple[str, ...], what: str
) -> Refusal | None:
    """Refuse with 405 (and ``Allow``) a request whose method is not one
    of ``methods``, those ``what`` answers."""
    method = scope.get('method', 'GET')
    if method in methods:
        return None
    allowed = ', '.join(methods)
    return Refusal(
        405,
        f'{what} answers {allowed}, not {method}',
        b'405 Method Not Allowed',
        [(b'allow', allowed.encode())],
        kind='method',
    )


def raw_headers(
    headerlist: list[tuple[str, str]], keep: Callable[[str], bool]
) -> list[tuple[bytes, bytes]]:
    """Return the ASGI header pairs of ``headerlist`` that ``keep`` keeps."""
    return [
        (name.encode('latin-1'), value.encode('latin-1'))
        for name, value in headerlist
        if keep(name.lower())
    ]


def refusal_from_exception(exc: HTTPException, reason: str) -> Refusal:
    """Return the refusal that an HTTP exception raised before accept asks."""
    headers = raw_headers(
        exc.headerlist, lambda name: name in ('location', 'www-authenticate')
    )
    return Refusal(
        exc.code or 500, reason, f'{exc.code} {exc.title}'.encode(), headers
    )


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
    ws.scope[REFUSAL_KEY] = refusal.kind
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
            404,
            'no WebSocket consumer matches this path',
            b'404 Not Found',
            kind='not_found',
        ),
    )


async def refuse_http(
    scope: dict[str, Any], send: Send, refusal: Refusal
) -> None:
    """Refuse an HTTP request to a consumer with the refusal's response."""
    log.warning(
        'refused HTTP request to %s with %d: %s',
        scope['path'],
        refusal.status,
        refusal.reason,
    )
    scope[REFUSAL_KEY] = refusal.kind
    headers = list(refusal.headers)
    if not any(name.lower() == b'content-type' for name, _ in headers):
        headers.append((b'content-type', b'text/plain; charset=utf-8'))
    headers.append((b'content-length', str(len(refusal.body)).encode()))
    await send(
        {
            'type': 'http.response.start',
            'status': refusal.status,
            'headers': headers,
        }
    )
    await send({'type': 'http.response.body', 'body': refusal.body})
