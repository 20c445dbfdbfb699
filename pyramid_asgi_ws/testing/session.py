"""One WebSocket connection of a test, driven from the test's thread."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from pyramid_asgi_ws.testing.channel import Channel
from pyramid_asgi_ws.testing.exceptions import HandshakeRefused
from pyramid_asgi_ws.testing.loop import Message
from pyramid_asgi_ws.testing.scope import header_dict
from pyramid_asgi_ws.websocket import WebSocketDisconnect

if TYPE_CHECKING:  # pragma: no cover - the client imports this module
    from pyramid_asgi_ws.testing.client import TestClient


class WebSocketTestSession:
    """One WebSocket connection to the application, driven synchronously.

    Made by :meth:`TestClient.websocket_connect`; entering it sends the
    handshake and returns once the application accepted, or raises
    :class:`HandshakeRefused`. ``subprotocol`` and ``response_headers``
    are what the accept said. Leaving it closes the connection with 1000
    (if still open) and waits for the consumer to end.
    """

    __test__ = False

    def __init__(
        self, client: TestClient, scope: Message, timeout: float
    ) -> None:
        self.client = client
        self.scope = scope
        self.timeout = timeout
        self.subprotocol: str | None = None
        self.response_headers: dict[str, str] = {}
        #: The close code once the connection has ended, else ``None``.
        self.close_code: int | None = None
        self.close_reason = ''
        self._channel: Channel | None = None

    # -- opening and leaving ----------------------------------------------

    def __enter__(self) -> WebSocketTestSession:
        if self._channel is not None:
            raise RuntimeError('this WebSocket session was already opened')
        runner = self.client._running_loop()
        channel = Channel(self.client.app, self.scope, runner, self.timeout)
        self._channel = channel
        channel.start()
        try:
            message = channel.next(self.timeout, 'handshake answer')
        except BaseException:
            channel.cancel()
            raise
        if message['type'] == 'websocket.accept':
            self.subprotocol = message.get('subprotocol')
            self.response_headers = header_dict(message.get('headers'))
            return self
        refusal = self._refusal(channel, message)
        channel.client_closed = True
        channel.wait(self.timeout)
        raise refusal

    def _refusal(self, channel: Channel, message: Message) -> HandshakeRefused:
        kind = message['type']
        if kind == 'websocket.close':
            return HandshakeRefused(403, close_code=message.get('code', 1000))
        if kind == 'websocket.http.response.start':
            body = b''
            more = True
            while more:
                part = channel.next(self.timeout, 'refusal body')
                body += part.get('body', b'')
                more = part.get('more_body', False)
            return HandshakeRefused(
                message['status'], header_dict(message.get('headers')), body
            )
        # The app returned without answering: servers say 500.
        return HandshakeRefused(500, body=b'no handshake answer')

    def __exit__(self, *exc_info: Any) -> None:
        channel = self._open()
        if not channel.client_closed:
            channel.client_closed = True
            if not channel.app_closed:
                channel.put({'type': 'websocket.disconnect', 'code': 1000})
        channel.wait(self.timeout, raising=exc_info[0] is None)

    def _open(self) -> Channel:
        if self._channel is None:
            raise RuntimeError(
                'this WebSocket session is not open: use it as '
                '"with client.websocket_connect(path) as ws:"'
            )
        return self._channel

    # -- sending ----------------------------------------------------------

    def send(self, message: Message) -> None:
        """Send a raw ASGI message (``websocket.receive``) to the app."""
        channel = self._open()
        if channel.client_closed:
            raise RuntimeError('the WebSocket was closed by the test')
        if channel.app_closed:
            raise WebSocketDisconnect(
                self.close_code or 1000, self.close_reason
            )
        channel.put(message)

    def send_text(self, data: str) -> None:
        """Send a text message."""
        self.send({'type': 'websocket.receive', 'text': data})

    def send_bytes(self, data: bytes) -> None:
        """Send a binary message."""
        self.send({'type': 'websocket.receive', 'bytes': data})

    def send_json(self, data: Any, mode: str = 'text') -> None:
        """Send ``data`` as JSON in a text (or ``mode='binary'``) message."""
        text = json.dumps(data, separators=(',', ':'))
        if mode == 'binary':
            self.send_bytes(text.encode('utf-8'))
        else:
            self.send_text(text)

    # -- receiving --------------------------------------------------------

    def receive(self, timeout: float | None = None) -> Message:
        """Return the next ASGI message the application sent.

        Waits at most ``timeout`` seconds (the session's by default), then
        raises :class:`WebSocketTimeout`. A close from the application
        raises :class:`~pyramid_asgi_ws.WebSocketDisconnect`.
        """
        if self.close_code is not None:
            raise WebSocketDisconnect(self.close_code, self.close_reason)
        message = self._open().next(
            self.timeout if timeout is None else timeout, 'message'
        )
        kind = message['type']
        if kind == 'websocket.send':
            return message
        if kind == 'websocket.close':
            self.close_code = message.get('code', 1000)
            self.close_reason = message.get('reason') or ''
        else:
            # The app returned without closing; a server drops the socket.
            self.close_code = 1006
        raise WebSocketDisconnect(self.close_code, self.close_reason)

    def _receive_kind(self, kind: str, timeout: float | None) -> Any:
        message = self.receive(timeout)
        data = message.get(kind)
        if data is None:
            other = 'bytes' if kind == 'text' else 'text'
            wanted = 'text' if kind == 'text' else 'binary'
            raise TypeError(
                f'expected a {wanted} message, got {other} '
                f'{message.get(other)!r}'
            )
        return data

    def receive_text(self, timeout: float | None = None) -> str:
        """Return the next text message; a binary one is a TypeError."""
        return str(self._receive_kind('text', timeout))

    def receive_bytes(self, timeout: float | None = None) -> bytes:
        """Return the next binary message; a text one is a TypeError."""
        return bytes(self._receive_kind('bytes', timeout))

    def receive_json(self, timeout: float | None = None) -> Any:
        """Return the next message, text or binary, decoded from JSON."""
        message = self.receive(timeout)
        data = message.get('text')
        if data is None:
            data = message.get('bytes', b'').decode('utf-8')
        return json.loads(data)

    # -- closing ----------------------------------------------------------

    def close(self, code: int = 1000, reason: str = '') -> None:
        """Close the connection from the client's side with ``code``.

        Does nothing once the connection has ended.
        """
        channel = self._open()
        if channel.client_closed or self.close_code is not None:
            return
        channel.client_closed = True
        self.close_code = code
        self.close_reason = reason
        if not channel.app_closed:
            channel.put(
                {
                    'type': 'websocket.disconnect',
                    'code': code,
                    'reason': reason,
                }
            )
