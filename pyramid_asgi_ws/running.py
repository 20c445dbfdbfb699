"""Running a consumer: what its end or its exception tells the client.

The one policy for how a connection ends, with codes from
:mod:`pyramid_asgi_ws.closecodes`:

=====================================  ==========================  =========
the consumer                           before accept               after
=====================================  ==========================  =========
returns                                refused, 403                1000
raises an HTTP exception               refused with its status     4000+status
raises anything else                   refused, 500                1011
sees the client go                     nothing to say              nothing
=====================================  ==========================  =========

A raw ASGI consumer is supervised the same way when it raises; the
exception then goes on to the server, which logs it.
"""

from __future__ import annotations

import logging
from typing import Any

from pyramid.httpexceptions import HTTPException

from pyramid_asgi_ws.closecodes import CloseCode, http_close_code
from pyramid_asgi_ws.refusal import Refusal, refusal_from_exception, refuse
from pyramid_asgi_ws.router import Consumer
from pyramid_asgi_ws.websocket import (
    Receive,
    Send,
    WebSocket,
    WebSocketDisconnect,
    WebSocketState,
)
from pyramid_asgi_ws.wsgi import send_error

#: What a raw WebSocket consumer's messages say about its side's state.
RAW_STATES = {
    'websocket.accept': WebSocketState.CONNECTED,
    'websocket.close': WebSocketState.DISCONNECTED,
    'websocket.http.response.start': WebSocketState.RESPONSE,
}

log = logging.getLogger('pyramid_asgi_ws')


#: The refusal of a handshake whose consumer raised before accepting.
RAISED = Refusal(500, 'the consumer raised', kind='error')


async def close_quietly(ws: WebSocket, code: int, reason: str) -> None:
    """Close ``ws``; a client already gone has nothing left to hear.

    The code goes out as a plain int: daphne refuses an ``IntEnum``.
    """
    try:
        await ws.close(int(code), reason)
    except (WebSocketDisconnect, RuntimeError):
        pass


async def end(ws: WebSocket, refusal: Refusal, code: int, reason: str) -> None:
    """Refuse the handshake if not accepted yet, else close with ``code``."""
    if ws.application_state is WebSocketState.CONNECTING:
        await refuse(ws, refusal)
    else:
        await close_quietly(ws, code, reason)


async def run_consumer(consumer: Consumer, ws: WebSocket) -> None:
    """Run a WebSocket consumer, then close what it left open."""
    try:
        await consumer.target(ws)
    except WebSocketDisconnect:
        return
    except HTTPException as exc:
        reason = f'consumer {consumer.name!r} raised {exc.code} {exc.title}'
        if ws.application_state is not WebSocketState.CONNECTING:
            log.info('closing WebSocket %s: %s', ws.path, reason)
        await end(
            ws,
            refusal_from_exception(exc, reason),
            http_close_code(exc.code),
            exc.title,
        )
        return
    except Exception:
        log.exception(
            'consumer %r failed on WebSocket %s', consumer.name, ws.path
        )
        await end(ws, RAISED, CloseCode.INTERNAL_ERROR, 'internal error')
        return
    returned = f'consumer {consumer.name!r} returned without accepting'
    await end(ws, Refusal(403, returned), CloseCode.NORMAL, '')


async def serve_raw(
    consumer: Consumer,
    scope: dict[str, Any],
    receive: Receive,
    send: Send,
    ws: WebSocket | None = None,
) -> None:
    """Run a raw ASGI consumer; if it raises, answer the client first.

    Before it sent anything: 500 (HTTP) or a refused handshake; after a
    WebSocket accept: close 1011; a response under way is cut off. The
    exception then goes on to the server, which logs it (and to the test
    client, which raises it in the test); the client never sees it. For a
    WebSocket, ``ws`` follows what the consumer sends, so that shutdown
    can close it with 1001 like any other.
    """
    sent: list[str] = []
    if ws is not None:
        ws.client_state = WebSocketState.CONNECTED  # it receives itself

    async def watched(message: dict[str, Any]) -> None:
        kind = message['type']
        if not sent:
            sent.append(kind)
        if ws is not None and kind in RAW_STATES:
            ws.application_state = RAW_STATES[kind]
        await send(message)

    try:
        await consumer.target(scope, receive, watched)
    except Exception:
        if sent and sent[0] == 'http.response.start':
            raise
        log.error(
            'ASGI consumer %r failed on %s', consumer.name, scope['path']
        )
        if ws is None:  # an HTTP consumer
            await send_error(send, 500, b'Internal Server Error')
            raise
        await end(ws, RAISED, CloseCode.INTERNAL_ERROR, 'internal error')
        raise
