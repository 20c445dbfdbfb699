"""The test client: the application in a loop of its own, driven by tests."""

from __future__ import annotations

from collections.abc import (
    Awaitable,
    Callable,
    Coroutine,
    Iterable,
    Mapping,
)
from typing import Any

from pyramid_asgi_ws.testing.lifespan import Lifespan
from pyramid_asgi_ws.testing.loop import LoopThread
from pyramid_asgi_ws.testing.scope import Headers, Target
from pyramid_asgi_ws.testing.session import WebSocketTestSession
from pyramid_asgi_ws.testing.sse import EventStreamTestSession

#: How long any wait of the client lasts before it gives up, in seconds.
DEFAULT_TIMEOUT = 5.0


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
        self._target = Target.parse(base_url)
        self._runner: LoopThread | None = None
        self._lifespan: Lifespan | None = None
        self._http: Any = None

    # -- where requests go ------------------------------------------------

    @property
    def scheme(self) -> str:
        """``'http'`` or ``'https'``, from ``base_url``."""
        return self._target.scheme

    @property
    def host(self) -> str:
        """The host name of ``base_url``."""
        return self._target.host

    @property
    def port(self) -> int:
        """The port of ``base_url``, or the scheme's default."""
        return self._target.port

    @property
    def root_path(self) -> str:
        """The path of ``base_url``: where the application is mounted."""
        return self._target.root_path

    # -- the event loop ---------------------------------------------------

    @property
    def loop(self) -> Any:
        """The event loop the application runs in, or ``None`` if stopped."""
        return None if self._runner is None else self._runner.loop

    def __enter__(self) -> TestClient:
        self.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    def start(self) -> None:
        """Start the event loop thread and run the lifespan startup."""
        if self._runner is not None:
            raise RuntimeError('this TestClient is already running')
        self._runner = LoopThread()
        if self.lifespan:
            try:
                self._lifespan = Lifespan(self.app, self._runner, self.timeout)
                self._lifespan.startup()
            except BaseException:
                self._stop_loop()
                raise

    def stop(self) -> None:
        """Run the lifespan shutdown and stop the event loop thread."""
        if self._runner is None:
            return
        try:
            if self._lifespan is not None:
                self._lifespan.shutdown()
        finally:
            self._stop_loop()

    def _stop_loop(self) -> None:
        runner = self._runner
        assert runner is not None
        self._runner = None
        self._lifespan = None
        runner.stop(self.timeout)

    def _running_loop(self) -> LoopThread:
        if self._runner is None:
            raise RuntimeError(
                'the TestClient is not running: use it as '
                '"with TestClient(app) as client:"'
            )
        return self._runner

    def call(
        self, function: Callable[..., Coroutine[Any, Any, Any]], *args: Any
    ) -> Any:
        """Run ``await function(*args)`` in the client's loop; return it.

        Use it to reach asynchronous APIs from a test, e.g.
        ``client.call(app.close_connections)``.
        """
        runner = self._running_loop()
        return runner.run(function, *args, timeout=self.timeout)

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
        self._running_loop()
        scope = self._target.websocket_scope(
            path, headers, subprotocols, self._cookie()
        )
        return WebSocketTestSession(
            self, scope, self.timeout if timeout is None else timeout
        )

    def sse(
        self,
        path: str,
        headers: Headers | None = None,
        *,
        last_event_id: str | None = None,
        timeout: float | None = None,
    ) -> EventStreamTestSession:
        """Return a session reading the event stream at ``path`` when
        entered, as ``EventSource`` would.

        ``headers`` and cookies go as for :meth:`websocket_connect`;
        ``last_event_id`` is sent as the ``Last-Event-ID`` header, as
        ``EventSource`` does when it reconnects.

        .. code-block:: python

            with client.sse('/events/lobby') as stream:
                event = stream.receive()
                assert (event.event, event.data) == ('message', 'hi')
        """
        self._running_loop()
        pairs = list(
            headers.items() if isinstance(headers, Mapping) else headers or ()
        )
        pairs.append(('accept', 'text/event-stream'))
        if last_event_id is not None:  # in UTF-8, as browsers send it
            pairs.append(('last-event-id', last_event_id.encode()))
        scope = self._target.http_scope(path, pairs, self._cookie())
        return EventStreamTestSession(
            self, scope, self.timeout if timeout is None else timeout
        )

    def _cookie(self) -> str:
        if self._http is None:
            return ''
        return '; '.join(
            f'{name}={value}' for name, value in self._http.cookies.items()
        )

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
                wsgi_app, extra_environ=self._target.wsgi_environ()
            )
        return self._http
