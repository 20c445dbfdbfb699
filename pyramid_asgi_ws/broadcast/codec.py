"""Group messages as backends carry them: one byte of kind, then the body.

Text, bytes and JSON values travel as opaque payloads, so that every
backend moves bytes only and a subscriber receives exactly the kind of
message that was published.
"""

from __future__ import annotations

import json
from typing import Any

Message = dict[str, Any]

_TEXT, _BYTES, _JSON = b't', b'b', b'j'


def to_json(value: Any, what: str = 'presence info must be') -> bytes:
    """Return ``value`` as compact UTF-8 JSON, or raise :exc:`TypeError`."""
    try:
        text = json.dumps(value, separators=(',', ':'), ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f'{what} JSON-serialisable, not {type(value).__name__}: {exc}'
        ) from None
    return text.encode('utf-8')


def encode(message: Any) -> bytes:
    """Return the backend payload for ``message`` (text, bytes or JSON)."""
    if isinstance(message, str):
        return _TEXT + message.encode('utf-8')
    if isinstance(message, (bytes, bytearray, memoryview)):
        return _BYTES + bytes(message)
    return _JSON + to_json(message, 'a group message must be text, bytes or')


def decode(payload: bytes) -> tuple[Any, Message]:
    """Return ``(message, asgi_message)`` for a backend payload.

    ``asgi_message`` is the ``websocket.send`` event that carries the
    message to a client.
    """
    kind, body = payload[:1], payload[1:]
    if kind == _BYTES:
        return body, {'type': 'websocket.send', 'bytes': body}
    text = body.decode('utf-8')
    event = {'type': 'websocket.send', 'text': text}
    if kind == _JSON:
        return json.loads(text), event
    return text, event


class Payload:
    """One message from a backend, decoded once for all its recipients.

    :attr:`event` is the ``websocket.send`` event, built once and shared by
    every connection that forwards the message as it is; :meth:`value`
    decodes a fresh value for each hook, which may change it freely.
    :attr:`position` is the message's opaque position in the group's
    history, or ``None`` when the group keeps none (see
    :mod:`~pyramid_asgi_ws.broadcast.history`).
    """

    __slots__ = ('data', 'position', '_event')

    def __init__(self, data: bytes, position: str | None = None) -> None:
        self.data = data
        self.position = position
        self._event: Message | None = None

    @property
    def event(self) -> Message:
        """The ``websocket.send`` event carrying the message to a client."""
        if self._event is None:
            self._event = decode(self.data)[1]
        return self._event

    def value(self) -> Any:
        """Return the published value: ``str``, ``bytes`` or decoded JSON."""
        return decode(self.data)[0]
