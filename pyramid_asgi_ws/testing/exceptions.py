"""What the test client raises when the application does not answer."""

from __future__ import annotations


class WebSocketTimeout(TimeoutError):
    """No message came from the application in time.

    A :class:`TimeoutError`, so ``pytest.raises(TimeoutError)`` catches it.
    """


class HandshakeRefused(Exception):
    """The application refused the WebSocket handshake.

    ``status`` is the HTTP status a real client would see, ``headers`` the
    response headers as a dict (lower-case names) and ``body`` the
    response body. A close before accept is reported as 403, as ASGI
    servers answer it; ``close_code`` then holds the code the application
    sent (``None`` otherwise).
    """

    def __init__(
        self,
        status: int,
        headers: dict[str, str] | None = None,
        body: bytes = b'',
        close_code: int | None = None,
    ) -> None:
        self.status = status
        self.headers = headers or {}
        self.body = body
        self.close_code = close_code
        detail = body.decode('utf-8', 'replace').strip()
        super().__init__(
            f'WebSocket handshake refused with {status}'
            + (f': {detail}' if detail else '')
        )


class StreamRefused(HandshakeRefused):
    """The application answered an event-stream request with something
    else than a stream: ``status``, ``headers`` and ``body`` say what."""

    def __init__(
        self, status: int, headers: dict[str, str], body: bytes
    ) -> None:
        super().__init__(status, headers, body)
        detail = body.decode('utf-8', 'replace').strip()
        self.args = (
            f'event stream refused with {status}'
            + (f': {detail}' if detail else ''),
        )


class LifespanFailure(RuntimeError):
    """The application reported ``lifespan.startup.failed`` (or shutdown)."""
