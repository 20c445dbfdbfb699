"""Class-based WebSocket consumers."""

from __future__ import annotations

from typing import Any

from pyramid.httpexceptions import HTTPException

from pyramid_asgi_ws.closecodes import CloseCode, http_close_code
from pyramid_asgi_ws.websocket import (
    WebSocket,
    WebSocketDisconnect,
    WebSocketState,
)

ENCODINGS = ('text', 'bytes', 'json')

#: The states of a connection that was accepted.
ACCEPTED = (WebSocketState.CONNECTED, WebSocketState.DISCONNECTED)


def ended_with(exc: BaseException) -> int:
    """The close code a consumer's end by ``exc`` gives the connection:
    the client's, 4000 + the status of an HTTP exception, else 1011."""
    if isinstance(exc, WebSocketDisconnect):
        return exc.code
    if isinstance(exc, HTTPException):
        return http_close_code(exc.code)
    return CloseCode.INTERNAL_ERROR


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
        try:
            await self.on_connect(ws)
            if ws.application_state is not WebSocketState.CONNECTED:
                return
            receive = getattr(ws, f'receive_{self.encoding}')
            while True:
                await self.on_receive(ws, await receive())
        except BaseException as exc:
            # once accepted (a refusal or a denial never connected)
            if ws.application_state in ACCEPTED:
                await self.on_disconnect(ws, ended_with(exc))
            raise

    async def on_connect(self, ws: WebSocket) -> None:
        """Called on the handshake; accepts it by default."""
        await ws.accept()

    async def on_receive(self, ws: WebSocket, data: Any) -> None:
        """Called with each decoded message; does nothing by default."""

    async def on_disconnect(self, ws: WebSocket, code: int) -> None:
        """Called once the connection has ended, with its close code."""

    async def on_group_message(
        self, group: str, message: Any, position: str | None = None
    ) -> None:
        """Called with each message published to a group this socket joined.

        Only when overridden: by default group messages go straight to the
        client. ``position`` is the message's position in the group's
        history (``None`` when the group keeps none); an override may
        leave it out and take ``(group, message)`` only.
        """
