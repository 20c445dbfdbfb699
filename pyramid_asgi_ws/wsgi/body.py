"""The ``wsgi.input`` stream the application reads in a worker thread."""

import sys
import typing

if typing.TYPE_CHECKING:  # pragma: no cover - for type checkers only
    from pyramid_asgi_ws.wsgi.response import Call


class ClientDisconnect(OSError):
    """Raised by ``wsgi.input`` when the client went away before the
    request body was complete."""


class RequestEntityTooLarge(ValueError):
    """Raised by ``wsgi.input`` when the request body exceeds
    ``max_body_size``; answered with 413 if the response has not started.
    """


class Body:
    """The ``wsgi.input`` stream, read in a worker thread: each read that
    needs more data waits for the next ``http.request`` message."""

    def __init__(
        self,
        call: 'Call',
        chunk: bytes,
        more: bool,
        max_body_size: int | None,
    ) -> None:
        self._call = call
        self._buffer = bytearray(chunk)
        self.more = more
        self._received = len(chunk)
        self._max = max_body_size
        self._error: Exception | None = None
        self._check_size()

    def _check_size(self) -> None:
        if self._max is not None and self._received > self._max:
            self.more = False
            self._error = RequestEntityTooLarge(
                f'Request body exceeds {self._max} bytes'
            )

    def _fill(self) -> None:
        if self._error is not None:
            raise self._error
        message = self._call.receive_from_thread()
        if message['type'] == 'http.request':
            chunk = message.get('body', b'')
            self._buffer += chunk
            self._received += len(chunk)
            self.more = message.get('more_body', False)
            self._check_size()
        elif message['type'] == 'http.disconnect':
            self.more = False
            self._error = ClientDisconnect('Client disconnected')
        else:
            self.more = False
            self._error = RuntimeError(
                "Expected ASGI message 'http.request' or 'http.disconnect', "
                f'but got {message["type"]!r}'
            )
        if self._error is not None:
            raise self._error

    def _take(self, size: int) -> bytes:
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    def read(self, size: int | None = -1) -> bytes:
        """Read at most ``size`` bytes, or to the end if it is negative."""
        if size is None or size < 0:
            while self.more or self._error is not None:
                self._fill()
            return self._take(len(self._buffer))
        while len(self._buffer) < size and (self.more or self._error):
            self._fill()
        return self._take(size)

    def readline(self, size: int | None = -1) -> bytes:
        """Read one line, or at most ``size`` bytes of it."""
        if size is None or size < 0:
            size = sys.maxsize
        start = 0
        while True:
            end = self._buffer.find(b'\n', start, size)
            if end != -1:
                return self._take(end + 1)
            if len(self._buffer) >= size:
                return self._take(size)
            if not (self.more or self._error):
                return self._take(len(self._buffer))
            start = len(self._buffer)
            self._fill()

    def readlines(self, hint: int = -1) -> list[bytes]:
        """Read the remaining lines, stopping once ``hint`` bytes are
        read when it is positive."""
        lines: list[bytes] = []
        total = 0
        while True:
            line = self.readline()
            if not line:
                return lines
            lines.append(line)
            total += len(line)
            if 0 < hint <= total:
                return lines

    def __iter__(self) -> typing.Iterator[bytes]:
        while True:
            line = self.readline()
            if not line:
                return
            yield line
