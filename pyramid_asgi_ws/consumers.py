"""Class-based WebSocket consumers."""

from __future__ import annotations

from typing import Any

from pyramid_asgi_ws.closecodes import CloseCode
from pyramid_asgi_ws.websocket import (
    WebSocket,
    WebSocketDisconnect,
    WebSocketState,
)

ENCODINGS = ('text', 'bytes', 'json')


class WebSocketConsumer:
    """A consumer written as a class, one instance per connection.

    Override :meth:`on_connect`, :meth:`on_receive` and
    :meth:`on_disconnect`; ``encoding`` (``'text'``, ``'bytes'`` or
    ``'json'``) says how incoming messages are decoded before they reach
    :meth:`on_receive`. The connection is also available as ``self.ws``.

    .. code-block:: python

        @websocket_consumer('/echo')
        class Echo(WebSocketConsumer):
            encoding = 'json'

            async def on_receive(self, ws, data):
                await ws.send_json(data)
    """

    encoding: str = 'text'

    async def __call__(self, ws: WebSocket) -> None:
        self.ws = ws
        if (
            type(self).on_group_message
            is not WebSocketConsumer.on_group_message
        ):
            ws.on_group_message = self.on_group_message
        await self.on_connect(ws)
        if ws.application_state is not WebSocketState.CONNECTED:
            return
        code: int = CloseCode.INTERNAL_ERROR
        try:
            receive = getattr(ws, f'receive_{self.encoding}')
            while True:
                await self.on_receive(ws, await receive())
        except WebSocketDisconnect as exc:
            code = exc.code
            raise
        finally:
            await self.on_disconnect(ws, code)

    async def on_connect(self, ws: WebSocket) -> None:
        """Called on the handshake; accepts it by default."""
        await ws.accept()

    async def on_receive(self, ws: WebSocket, data: Any) -> None:
        """Called with each decoded message; does nothing by default."""

    async def on_disconnect(self, ws: WebSocket, code: int) -> None:
        """Called once the connection has ended, with its close code."""

    async def on_group_message(self, group: str, message: Any) -> None:
        """Called with each message published to a group this socket joined.

        Only when overridden: by default group messages go straight to the
        client.
        """
