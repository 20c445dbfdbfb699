"""The ASGI messages of a WebSocket scope: building them and reading them.

Pure functions: what a :class:`~pyramid_asgi_ws.WebSocket` sends (headers,
JSON, a denial response), what a ``websocket.disconnect`` means, and which
message the application may send in which state.
"""

from __future__ import annotations

from collections.abc import Iterable
import enum
import json
from typing import Any

from pyramid.httpexceptions import HTTPException
from pyramid.response import Response

from pyramid_asgi_ws.closecodes import CloseCode

Message = dict[str, Any]
HeadersArg = Iterable[tuple[Any, Any]] | dict[Any, Any] | None


class WebSocketState(enum.Enum):
    """Where one side of a WebSocket connection is in its life."""

    CONNECTING = 0
    CONNECTED = 1
    DISCONNECTED = 2
    RESPONSE = 3


#: What the application may send in each state, and the state it leads to
#: (a last ``websocket.http.response.body`` ends in ``DISCONNECTED``).
TRANSITIONS = {
    WebSocketState.CONNECTING: {
        'websocket.accept': WebSocketState.CONNECTED,
        'websocket.close': WebSocketState.DISCONNECTED,
        'websocket.http.response.start': WebSocketState.RESPONSE,
    },
    WebSocketState.CONNECTED: {
        'websocket.send': WebSocketState.CONNECTED,
        'websocket.close': WebSocketState.DISCONNECTED,
    },
    WebSocketState.RESPONSE: {
        'websocket.http.response.body': WebSocketState.RESPONSE,
    },
}


def next_state(state: WebSocketState, message: Message) -> WebSocketState:
    """Return the application's state once it has sent ``message``.

    A message the state does not allow is a :class:`RuntimeError` naming
    the messages it allows, as Starlette raises.
    """
    kind = message['type']
    allowed = TRANSITIONS.get(state, {})
    if kind not in allowed:
        raise RuntimeError(
            f'Expected ASGI message {" or ".join(map(repr, allowed))}, '
            f'but got {kind!r}'
        )
    if kind == 'websocket.http.response.body' and not message.get(
        'more_body', False
    ):
        return WebSocketState.DISCONNECTED
    return allowed[kind]


def encode_headers(headers: HeadersArg) -> list[tuple[bytes, bytes]]:
    """Return ASGI ``headers`` (latin-1 bytes pairs) from pairs or a dict."""
    if headers is None:
        return []
    items = headers.items() if isinstance(headers, dict) else headers
    return [(_latin1(name), _latin1(value)) for name, value in items]


def _latin1(value: Any) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode('latin-1')


def json_message(data: Any, mode: str = 'text') -> Message:
    """Return the ``websocket.send`` message carrying ``data`` as JSON."""
    if mode not in ('text', 'binary'):
        raise ValueError(f'mode must be "text" or "binary", not {mode!r}')
    text = json.dumps(data, separators=(',', ':'), ensure_ascii=False)
    if mode == 'binary':
        return {'type': 'websocket.send', 'bytes': text.encode('utf-8')}
    return {'type': 'websocket.send', 'text': text}


def denial_messages(
    status: int | Response, body: bytes | str, headers: HeadersArg
) -> tuple[Message, Message]:
    """Return the two messages of a denial response.

    ``status`` may be a Pyramid response or HTTP exception, whose status,
    headers and body are taken; an HTTP exception without a body of its
    own sends its status line as text.
    """
    if isinstance(status, Response):
        status, body, headers = _response_parts(status)
    if isinstance(body, str):
        body = body.encode('utf-8')
    raw = [
        (n, v)
        for n, v in encode_headers(headers)
        if n.lower() != b'content-length'
    ]
    if body and not any(n.lower() == b'content-type' for n, _ in raw):
        raw.append((b'content-type', b'text/plain; charset=utf-8'))
    raw.append((b'content-length', str(len(body)).encode()))
    return (
        {
            'type': 'websocket.http.response.start',
            'status': status,
            'headers': raw,
        },
        {'type': 'websocket.http.response.body', 'body': body},
    )


def _response_parts(
    response: Response,
) -> tuple[int, bytes, list[tuple[str, str]]]:
    headers = response.headerlist
    body = response.body
    if not body and isinstance(response, HTTPException):
        body = f'{response.code} {response.title}'.encode()
        headers = [(n, v) for n, v in headers if n.lower() != 'content-type']
    return response.status_int, body, headers


def disconnect_code(message: Message) -> int:
    """Return the close code a ``websocket.disconnect`` message stands for.

    A close frame without a code is 1005: daphne reports it as ``None``. A
    connection lost without a close frame is 1006: uvicorn reports it as
    1005 with no ``reason`` at all, where a real close frame has one.
    """
    code = message.get('code')
    if code is None:
        return CloseCode.NO_STATUS
    if code == CloseCode.NO_STATUS and 'reason' not in message:
        return CloseCode.ABNORMAL
    return int(code)
