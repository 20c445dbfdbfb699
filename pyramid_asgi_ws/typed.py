"""A WebSocket's messages as text, bytes or JSON, both ways.

:class:`TypedMessagesMixin` gives a connection ``receive_text``,
``receive_bytes``, ``receive_json`` and ``send_text``, ``send_bytes``,
``send_json`` over its raw receive and send: a message of the wrong kind
closes with 1003, malformed JSON with 1007.
"""

from __future__ import annotations

import json
from typing import Any

from pyramid_asgi_ws.closecodes import CloseCode
from pyramid_asgi_ws.messages import Message, json_message


class TypedMessagesMixin:
    """Text, binary and JSON messages for a connection.

    The class using it provides ``send(message)``, ``_receive_data()``
    (the next message's text or bytes) and ``_close_for(code, reason)``
    (close, then raise the disconnect).
    """

    async def send(self, message: Message) -> None:
        raise NotImplementedError  # pragma: no cover - the class provides it

    async def _receive_data(self) -> str | bytes:
        raise NotImplementedError  # pragma: no cover - the class provides it

    async def _close_for(self, code: int, reason: str) -> None:
        raise NotImplementedError  # pragma: no cover - the class provides it

    async def receive_text(self) -> str:
        """Return the next text message; a binary one closes with 1003."""
        text: str = await self._receive_kind(str, 'text')
        return text

    async def receive_bytes(self) -> bytes:
        """Return the next binary message; a text one closes with 1003."""
        data: bytes = await self._receive_kind(bytes, 'binary')
        return data

    async def _receive_kind(self, kind: type, name: str) -> Any:
        data = await self._receive_data()
        if not isinstance(data, kind):
            await self._close_for(
                CloseCode.UNSUPPORTED_DATA, f'expected a {name} message'
            )
        return data

    async def receive_json(self) -> Any:
        """Return the next message, text or binary, decoded from JSON.

        Malformed JSON, or JSON nested too deeply for Python to decode,
        closes the socket with 1007 and raises
        :class:`~pyramid_asgi_ws.WebSocketDisconnect`.
        """
        data = await self._receive_data()
        try:
            return json.loads(data)
        except ValueError:
            await self._close_for(
                CloseCode.INVALID_DATA, 'message is not valid JSON'
            )
        except RecursionError:  # '[[[[...' from a hostile client
            await self._close_for(CloseCode.INVALID_DATA, 'JSON too deep')

    async def send_text(self, data: str) -> None:
        """Send a text message."""
        await self.send({'type': 'websocket.send', 'text': data})

    async def send_bytes(self, data: bytes) -> None:
        """Send a binary message."""
        await self.send({'type': 'websocket.send', 'bytes': data})

    async def send_json(self, data: Any, mode: str = 'text') -> None:
        """Send ``data`` encoded as JSON, in a text or binary message."""
        await self.send(json_message(data, mode))
