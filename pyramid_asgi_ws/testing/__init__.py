"""An in-process test client: WebSockets and HTTP with no server.

:class:`TestClient` runs the ASGI application in an event loop of its
own, on a background thread, and lets a synchronous test talk to it:

.. code-block:: python

    from pyramid_asgi_ws.testing import TestClient

    def test_echo():
        with TestClient(app) as client:
            with client.websocket_connect('/echo') as ws:
                ws.send_text('hello')
                assert ws.receive_text() == 'hello'

Every receive waits at most ``timeout`` seconds (5 by default) and then
raises :class:`WebSocketTimeout`, so a test never hangs. A refused
handshake raises :class:`HandshakeRefused` with the HTTP status; a close
from the application raises
:class:`~pyramid_asgi_ws.WebSocketDisconnect` with its code.
"""

from pyramid_asgi_ws.testing.client import DEFAULT_TIMEOUT as DEFAULT_TIMEOUT
from pyramid_asgi_ws.testing.client import TestClient
from pyramid_asgi_ws.testing.exceptions import (
    HandshakeRefused,
    LifespanFailure,
    StreamRefused,
    WebSocketTimeout,
)
from pyramid_asgi_ws.testing.loop import Message as Message
from pyramid_asgi_ws.testing.scope import Headers as Headers
from pyramid_asgi_ws.testing.session import WebSocketTestSession
from pyramid_asgi_ws.testing.sse import (
    Event,
    EventParser,
    EventStreamTestSession,
)

__all__ = [
    'Event',
    'EventParser',
    'EventStreamTestSession',
    'HandshakeRefused',
    'LifespanFailure',
    'StreamRefused',
    'TestClient',
    'WebSocketTestSession',
    'WebSocketTimeout',
]
