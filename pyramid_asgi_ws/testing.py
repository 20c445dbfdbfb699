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

from __future__ import annotations

import asyncio
from collections.abc import (
    Awaitable,
    Callable,
    Coroutine,
    Iterable,
    Mapping,
)
import concurrent.futures
import json
import queue
import threading
from typing import Any
from urllib.parse import unquote, urlsplit

from pyramid_asgi_ws.websocket import (
    DENIAL_EXTENSION,
    WebSocketDisconnect,
    encode_headers,
)

__all__ = [
    'HandshakeRefused',
    'LifespanFailure',
    'TestClient',
    'WebSocketTestSession',
    'WebSocketTimeout',
]

Message = dict[str, Any]
Headers = Mapping[str, str] | Iterable[tuple[str, str]]

#: How long any wait of the client lasts before it gives up, in seconds.
DEFAULT_TIMEOUT = 5.0

_ENDED = {'type': 'testclient.app.ended'}

#: What an application may send on a WebSocket scope.
_APP_MESSAGES = frozenset(
    {
        'websocket.accept',
        'websocket.send',
        'websocket.close',
        'websocket.http.response.start',
        'websocket.http.response.body',
    }
)


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


class LifespanFailure(RuntimeError):
    """The application reported ``lifespan.startup.failed`` (or shutdown)."""


def _result(future: concurrent.futures.Future[Any], timeout: float) -> Any:
    try:
        return future.result(timeout)
    except concurrent.futures.TimeoutError:
        future.cancel()
        raise WebSocketTimeout(
            f'the application did not finish within {timeout} s'
        ) from None


class TestClient:
    """Drive an ASGI application from synchronous tests.

    ``app`` is the application returned by ``config.make_asgi_app()`` (any
    ASGI 3 application works for WebSockets). Use the client as a context
    manager: entering it starts an event loop on a background thread and
    runs the application's lifespan startup (so
    :class:`~pyramid_asgi_ws.ApplicationStartup` subscribers and the
    broadcaster run); leaving it runs the shutdown and stops the loop.

    ``timeout`` (seconds) bounds every wait: each receive, the handshake,
    the lifespan and the end of a session. ``base_url`` gives the scheme,
    host and port the requests appear to be addressed to; ``lifespan=False``
    skips the lifespan.

    ``client.http`` is a :class:`webtest.TestApp` over the same
    application, so HTTP views and WebSocket consumers share one registry.
    """

    __test__ = False  # not a test class, whatever pytest thinks

    def __init__(
        self,
        app: Callable[..., Awaitable[None]],
        *,
        timeout: float = DEFAULT_TIMEOUT,
        base_url: str = 'http://testserver',
        lifespan: bool = True,
    ) -> None:
        self.app = app
        self.timeout = timeout
        self.base_url = base_url
        self.lifespan = lifespan
        url = urlsplit(base_url)
        secure = url.scheme in ('https', 'wss')
        self.scheme = 'https' if secure else 'http'
        self.host = url.hostname or 'testserver'
        self.port = url.port or (443 if secure else 80)
        self.root_path = url.path.rstrip('/')
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lifespan_in: asyncio.Queue[Message] | None = None
        self._lifespan_out: queue.Queue[Message] = queue.Queue()
        self._lifespan_task: concurrent.futures.Future[Any] | None = None
        self._http: Any = None

    # -- the event loop ---------------------------------------------------

    def __enter__(self) -> TestClient:
        self.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    def start(self) -> None:
        """Start the event loop thread and run the lifespan startup."""
        if self.loop is not None:
            raise RuntimeError('this TestClient is already running')
        loop = asyncio.new_event_loop()
        self.loop = loop
        self._thread = threading.Thread(
            target=loop.run_forever, name='TestClient', daemon=True
        )
        self._thread.start()
        if self.lifespan:
            try:
                self._lifespan('startup')
            except BaseException:
                self._stop_loop()
                raise

    def stop(self) -> None:
        """Run the lifespan shutdown and stop the event loop thread."""
        if self.loop is None:
            return
        try:
            if self._lifespan_task is not None:
                self._lifespan('shutdown')
        finally:
            self._stop_loop()

    def _stop_loop(self) -> None:
        loop = self.loop
        assert loop is not None and self._thread is not None
        try:
            self.call(_cancel_all)
        finally:
            self.loop = None
            loop.call_soon_threadsafe(loop.stop)
        self._thread.join(self.timeout)
        loop.close()
        self._lifespan_task = None

    def call(
        self, function: Callable[..., Coroutine[Any, Any, Any]], *args: Any
    ) -> Any:
        """Run ``await function(*args)`` in the client's loop; return it.

        Use it to reach asynchronous APIs from a test, e.g.
        ``client.call(app.close_connections)``.
        """
        if self.loop is None:
            raise RuntimeError(
                'the TestClient is not running: use it as '
                '"with TestClient(app) as client:"'
            )
        future = asyncio.run_coroutine_threadsafe(function(*args), self.loop)
        return _result(future, self.timeout)

    # -- lifespan ---------------------------------------------------------

    def _lifespan(self, phase: str) -> None:
        loop = self.loop
        assert loop is not None
        if phase == 'startup':
            self._lifespan_in = self.call(_make_queue)
            scope = {
                'type': 'lifespan',
                'asgi': {'version': '3.0', 'spec_version': '2.0'},
                'state': {},
            }
            self._lifespan_task = asyncio.run_coroutine_threadsafe(
                self._run_lifespan(scope), loop
            )
        assert self._lifespan_in is not None
        loop.call_soon_threadsafe(
            self._lifespan_in.put_nowait, {'type': f'lifespan.{phase}'}
        )
        try:
            message = self._lifespan_out.get(timeout=self.timeout)
        except queue.Empty:
            raise WebSocketTimeout(
                f'lifespan {phase} did not complete within {self.timeout} s'
            ) from None
        if message is _ENDED:
            # The app does not speak lifespan (it raised or returned).
            self._lifespan_task = None
            return
        if message['type'] == f'lifespan.{phase}.failed':
            self._lifespan_task = None
            raise LifespanFailure(
                f'lifespan {phase} failed: {message.get("message", "")}'
            )

    async def _run_lifespan(self, scope: Message) -> None:
        assert self._lifespan_in is not None
        try:
            await self.app(scope, self._lifespan_in.get, self._lifespan_send)
        except Exception:
            pass
        self._lifespan_out.put(_ENDED)

    async def _lifespan_send(self, message: Message) -> None:
        self._lifespan_out.put(message)

    # -- WebSockets and HTTP ----------------------------------------------

    def websocket_connect(
        self,
        path: str,
        headers: Headers | None = None,
        subprotocols: Iterable[str] | None = None,
        *,
        timeout: float | None = None,
    ) -> WebSocketTestSession:
        """Return a session opening a WebSocket to ``path`` when entered.

        ``path`` may carry a query string. ``headers`` (a dict or pairs)
        are sent with the handshake; unless they hold a ``Cookie``, the
        cookies ``client.http`` has collected are sent, so a test can log
        in over HTTP first. ``subprotocols`` are offered in order.
        ``timeout`` overrides the client's for this session.

        .. code-block:: python

            with client.websocket_connect('/chat/lobby') as ws:
                ws.send_json({'text': 'hi'})
                assert ws.receive_json() == {'text': 'hi'}
        """
        if self.loop is None:
            raise RuntimeError(
                'the TestClient is not running: use it as '
                '"with TestClient(app) as client:"'
            )
        return WebSocketTestSession(
            self,
            self._scope(path, headers, subprotocols),
            self.timeout if timeout is None else timeout,
        )

    def _scope(
        self,
        path: str,
        headers: Headers | None,
        subprotocols: Iterable[str] | None,
    ) -> Message:
        path, _, query = path.partition('?')
        raw = encode_headers(
            headers.items() if isinstance(headers, Mapping) else headers
        )
        names = {name.lower() for name, _ in raw}
        default_port = 443 if self.scheme == 'https' else 80
        if b'host' not in names:
            host = self.host
            if self.port != default_port:
                host = f'{host}:{self.port}'
            raw.insert(0, (b'host', host.encode('latin-1')))
        if b'cookie' not in names and self._http is not None:
            cookies = '; '.join(
                f'{name}={value}' for name, value in self._http.cookies.items()
            )
            if cookies:
                raw.append((b'cookie', cookies.encode('latin-1')))
        offered = list(subprotocols or ())
        if offered:
            raw.append(
                (b'sec-websocket-protocol', ', '.join(offered).encode())
            )
        full_path = self.root_path + path
        return {
            'type': 'websocket',
            'asgi': {'version': '3.0', 'spec_version': '2.4'},
            'http_version': '1.1',
            'scheme': 'wss' if self.scheme == 'https' else 'ws',
            'server': (self.host, self.port),
            'client': ('testclient', 50000),
            'root_path': self.root_path,
            'path': unquote(full_path),
            'raw_path': full_path.encode('latin-1'),
            'query_string': query.encode('latin-1'),
            'headers': raw,
            'subprotocols': offered,
            'extensions': {DENIAL_EXTENSION: {}},
            'state': {},
        }

    @property
    def http(self) -> Any:
        """A :class:`webtest.TestApp` over the application's Pyramid app.

        Views run in the test's thread against the same registry, so
        ``request.consumer_url`` and group broadcasts reach the WebSockets
        this client opened. Requires WebTest.
        """
        if self._http is None:
            import webtest

            wsgi_app = getattr(self.app, 'wsgi_app', None)
            if wsgi_app is None:
                raise AttributeError(
                    f'{self.app!r} has no wsgi_app: client.http needs the '
                    'application made by config.make_asgi_app()'
                )
            self._http = webtest.TestApp(
                wsgi_app,
                extra_environ={
                    'HTTP_HOST': self.host
                    + (
                        ''
                        if self.port == (443 if self.scheme == 'https' else 80)
                        else f':{self.port}'
                    ),
                    'wsgi.url_scheme': self.scheme,
                    'SCRIPT_NAME': self.root_path,
                },
            )
        return self._http


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
        self._to_app: asyncio.Queue[Message] | None = None
        self._from_app: queue.Queue[Message] = queue.Queue()
        self._task: concurrent.futures.Future[Any] | None = None
        self._app_closed = False
        self._client_closed = False
        self._app_error_seen = False

    # -- the application's side, in the client's loop --------------------

    async def _run(self) -> None:
        try:
            await self.client.app(
                self.scope, self._app_receive, self._app_send
            )
        finally:
            self._from_app.put(_ENDED)

    async def _app_receive(self) -> Message:
        assert self._to_app is not None
        return await self._to_app.get()

    async def _app_send(self, message: Message) -> None:
        if message['type'] not in _APP_MESSAGES:
            raise RuntimeError(
                f'unexpected ASGI message {message["type"]!r} sent on a '
                'WebSocket'
            )
        if self._client_closed or self._app_closed:
            raise OSError('the WebSocket is closed')
        if message['type'] == 'websocket.close':
            self._app_closed = True
            # What a server tells the app once the close handshake is over.
            assert self._to_app is not None
            self._to_app.put_nowait(
                {'type': 'websocket.disconnect', 'code': message.get('code')}
            )
        self._from_app.put(message)

    # -- the test's side --------------------------------------------------

    def __enter__(self) -> WebSocketTestSession:
        if self._task is not None:
            raise RuntimeError('this WebSocket session was already opened')
        loop = self.client.loop
        assert loop is not None
        self._to_app = self.client.call(_make_queue)
        self._put({'type': 'websocket.connect'})
        self._task = asyncio.run_coroutine_threadsafe(self._run(), loop)
        try:
            message = self._next(self.timeout, 'handshake answer')
        except BaseException:
            self._task.cancel()
            raise
        kind = message['type']
        if kind == 'websocket.accept':
            self.subprotocol = message.get('subprotocol')
            self.response_headers = _header_dict(message.get('headers'))
            return self
        refusal = self._refusal(message)
        self._client_closed = True
        self._wait_app()
        raise refusal

    def _refusal(self, message: Message) -> HandshakeRefused:
        kind = message['type']
        if kind == 'websocket.close':
            return HandshakeRefused(403, close_code=message.get('code', 1000))
        if kind == 'websocket.http.response.start':
            body = b''
            more = True
            while more:
                part = self._next(self.timeout, 'refusal body')
                body += part.get('body', b'')
                more = part.get('more_body', False)
            return HandshakeRefused(
                message['status'], _header_dict(message.get('headers')), body
            )
        # The app returned without answering: servers say 500.
        return HandshakeRefused(500, body=b'no handshake answer')

    def __exit__(self, *exc_info: Any) -> None:
        if not self._client_closed:
            self._client_closed = True
            if not self._app_closed:
                self._put({'type': 'websocket.disconnect', 'code': 1000})
        self._wait_app(raising=exc_info[0] is None)

    def _wait_app(self, raising: bool = True) -> None:
        assert self._task is not None
        try:
            self._task.result(self.timeout)
        except concurrent.futures.CancelledError:
            pass
        except concurrent.futures.TimeoutError:
            self._task.cancel()
            if raising:
                raise WebSocketTimeout(
                    f'the consumer for {self.scope["path"]} was still running '
                    f'{self.timeout} s after the connection closed'
                ) from None
        except Exception:
            if raising and not self._app_error_seen:
                raise

    def _put(self, message: Message) -> None:
        loop = self.client.loop
        assert loop is not None and self._to_app is not None
        loop.call_soon_threadsafe(self._to_app.put_nowait, message)

    def _next(self, timeout: float | None, what: str) -> Message:
        if timeout is None:
            timeout = self.timeout
        try:
            message = self._from_app.get(timeout=timeout)
        except queue.Empty:
            raise WebSocketTimeout(
                f'no {what} from the application on {self.scope["path"]} '
                f'within {timeout} s'
            ) from None
        if message is _ENDED:
            # Re-raise what the app raised, if anything, once.
            assert self._task is not None
            self._app_error_seen = True
            # _ENDED is queued just before the task completes.
            self._task.result(self.timeout)
        return message

    def send(self, message: Message) -> None:
        """Send a raw ASGI message (``websocket.receive``) to the app."""
        if self._client_closed:
            raise RuntimeError('the WebSocket was closed by the test')
        if self._app_closed:
            raise WebSocketDisconnect(
                self.close_code or 1000, self.close_reason
            )
        self._put(message)

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

    def receive(self, timeout: float | None = None) -> Message:
        """Return the next ASGI message the application sent.

        Waits at most ``timeout`` seconds (the session's by default), then
        raises :class:`WebSocketTimeout`. A close from the application
        raises :class:`~pyramid_asgi_ws.WebSocketDisconnect`.
        """
        if self.close_code is not None:
            raise WebSocketDisconnect(self.close_code, self.close_reason)
        message = self._next(timeout, 'message')
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

    def close(self, code: int = 1000, reason: str = '') -> None:
        """Close the connection from the client's side with ``code``.

        Does nothing once the connection has ended.
        """
        if self._client_closed or self.close_code is not None:
            return
        self._client_closed = True
        self.close_code = code
        self.close_reason = reason
        if not self._app_closed:
            self._put(
                {
                    'type': 'websocket.disconnect',
                    'code': code,
                    'reason': reason,
                }
            )


def _header_dict(headers: Any) -> dict[str, str]:
    result: dict[str, str] = {}
    for name, value in headers or ():
        result[name.decode('latin-1').lower()] = value.decode('latin-1')
    return result


async def _make_queue() -> asyncio.Queue[Message]:
    # Queues are made in the loop that uses them.
    return asyncio.Queue()


async def _cancel_all() -> None:
    current = asyncio.current_task()
    tasks = [t for t in asyncio.all_tasks() if t is not current]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
