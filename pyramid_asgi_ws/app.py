"""The ASGI application: where each scope goes.

``lifespan`` runs the startup and shutdown events; a ``websocket`` or
``http`` scope whose path matches a consumer goes to that consumer (an
``http`` one may be an event stream); any other ``http`` scope goes to
the Pyramid WSGI app through the bridge; a ``websocket`` scope that
matches nothing is refused with 404.

The handshake's checks live in :mod:`pyramid_asgi_ws.handshake`, how a
consumer's end or exception closes the connection in
:mod:`pyramid_asgi_ws.running` (:mod:`pyramid_asgi_ws.sse_running` for
event streams).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any

from pyramid.request import Request
from zope.interface import implementer

from pyramid_asgi_ws import denial_log
from pyramid_asgi_ws.closecodes import CloseCode
from pyramid_asgi_ws.handshake import (
    check_handshake,
    check_http,
    make_request,
    run_finished_callbacks,
    run_in_request,
)
from pyramid_asgi_ws.interfaces import (
    IASGIApp,
    IASGISettings,
    IConsumerRouter,
    IMetrics,
)
from pyramid_asgi_ws.lifespan import LifespanMixin
from pyramid_asgi_ws.refusal import (
    Refusal,
    refuse,
    refuse_http,
    refuse_unknown,
)
from pyramid_asgi_ws.router import Consumer, ConsumerRouter, path_info
from pyramid_asgi_ws.running import close_quietly, run_consumer, serve_raw
from pyramid_asgi_ws.settings import parse_settings
from pyramid_asgi_ws.sse import EventStream
from pyramid_asgi_ws.sse_running import check_method, make_stream, run_stream
from pyramid_asgi_ws.websocket import (
    Receive,
    Send,
    WebSocket,
    WebSocketState,
)
from pyramid_asgi_ws.wsgi import WsgiToAsgi

log = logging.getLogger('pyramid_asgi_ws')

#: Close code sent to every open WebSocket when the server stops (the
#: name the runners import; the table is :mod:`~pyramid_asgi_ws.closecodes`).
GOING_AWAY = CloseCode.GOING_AWAY


@implementer(IASGIApp)
class ASGIApp(LifespanMixin):
    """The ASGI 3 application returned by ``config.make_asgi_app()``.

    ``wsgi_app`` is the Pyramid router it wraps and ``registry`` its
    registry, where the app is also the ``IASGIApp`` utility;
    ``connections`` holds the WebSockets open right now, ``streams`` the
    event streams.
    """

    def __init__(self, wsgi_app: Any, registry: Any = None) -> None:
        self.wsgi_app = wsgi_app
        self.registry = registry if registry is not None else wsgi_app.registry
        settings = self.registry.queryUtility(IASGISettings)
        if settings is None:
            settings = parse_settings(self.registry.settings or {})
        self.settings: dict[str, Any] = settings
        self.consumers = (
            self.registry.queryUtility(IConsumerRouter) or ConsumerRouter()
        )
        self.wsgi = WsgiToAsgi(
            wsgi_app,
            threads=settings['threads'],
            max_body_size=settings['max_body_size'],
        )
        self._runner = functools.partial(run_in_request, self.wsgi.run_sync)
        self.connections: set[WebSocket] = set()
        self.streams: set[EventStream] = set()
        self._idle: asyncio.Event | None = None
        self.started = False
        self.stopping = False
        self._startup_lock: asyncio.Lock | None = None
        #: The :mod:`~pyramid_asgi_ws.metrics`, or None when they are off.
        self.metrics = self.registry.queryUtility(IMetrics)
        self.registry.registerUtility(self, IASGIApp)
        denial_log.install()

    async def __call__(
        self, scope: dict[str, Any], receive: Receive, send: Send
    ) -> None:
        kind = scope['type']
        if kind == 'lifespan':
            await self.lifespan(receive, send)
            return
        if not self.started:
            await self._lazy_startup()
        found = self.consumers.match(kind, path_info(scope))
        if self.metrics is not None:
            receive, send = self.metrics.watch(scope, found, receive, send)
        if found is None:
            if kind == 'websocket':
                await refuse_unknown(scope, receive, send)
            else:
                await self.wsgi(scope, receive, send)
            return
        consumer, matchdict = found
        # the scope is ours to extend (ASGI); consumers find these in it
        scope['matchdict'] = matchdict
        scope['registry'] = self.registry
        if consumer.protocol == 'http':
            run_sync = self.wsgi.run_sync
            refusal = await check_http(consumer, scope, run_sync)
            if refusal is not None:
                await refuse_http(scope, send, refusal)
            else:
                await serve_raw(consumer, scope, receive, send)
        elif consumer.protocol == 'sse':
            await self.serve_stream(consumer, scope, receive, send)
        else:
            await self.serve_websocket(consumer, scope, receive, send)

    def make_request(self, ws: WebSocket, factory: Any = None) -> Request:
        """Build the Pyramid request for a WebSocket handshake.

        Its ``context`` comes from ``factory`` (a consumer's ``factory=``)
        or the application's root factory, as for a view.
        """
        return make_request(self.registry, ws, factory)

    async def serve_websocket(
        self,
        consumer: Consumer,
        scope: dict[str, Any],
        receive: Receive,
        send: Send,
    ) -> None:
        """Check the handshake, run the consumer, and end the connection.

        The application's synchronous code (request, context, security
        policy, finished callbacks) runs in the thread pool; see
        :mod:`pyramid_asgi_ws.handshake`. The request's finished callbacks
        run once the connection ends, or once its handshake is refused.
        """
        settings = self.settings
        ws = WebSocket(
            scope,
            receive,
            send,
            request_factory=functools.partial(
                make_request, self.registry, factory=consumer.factory
            ),
            max_message_size=consumer.setting('max_message_size', settings),
            send_queue_size=consumer.setting('send_queue_size', settings),
            send_overflow=consumer.setting('send_overflow', settings),
            runner=self._runner,
        )
        try:
            await self._serve(consumer, ws)
        finally:
            await self._finished(ws)

    async def _finished(self, conn: WebSocket | EventStream) -> None:
        request = conn._request  # built for the handshake, or later
        if request is not None and request.finished_callbacks:
            await self.wsgi.run_sync(
                run_finished_callbacks, self.registry, conn
            )

    async def _check(
        self, conn: WebSocket | EventStream, consumer: Consumer
    ) -> Refusal | None:
        refusal = await check_handshake(
            conn, consumer, self.settings, self.wsgi.run_sync
        )
        if refusal is None and self.stopping:
            refusal = Refusal(
                503, 'the server is shutting down', kind='shutdown'
            )
        return refusal

    async def _ended(self, conn: WebSocket | EventStream) -> None:
        """Forget a connection whose consumer is done, tell the metrics,
        and end its group life (it leaves its groups too)."""
        if isinstance(conn, EventStream):
            self.streams.discard(conn)
        else:
            self.connections.discard(conn)
        if not (self.connections or self.streams) and self._idle is not None:
            self._idle.set()
        if self.metrics is not None:
            self.metrics.ended(conn.scope)
        await conn._finish()

    async def _serve(self, consumer: Consumer, ws: WebSocket) -> None:
        refusal = await self._check(ws, consumer)
        if refusal is not None:
            await refuse(ws, refusal)
            return
        self.connections.add(ws)
        try:
            if consumer.raw:
                await serve_raw(consumer, ws.scope, ws._receive, ws._send, ws)
            else:
                await run_consumer(consumer, ws)
        finally:
            await self._ended(ws)

    async def serve_stream(
        self,
        consumer: Consumer,
        scope: dict[str, Any],
        receive: Receive,
        send: Send,
    ) -> None:
        """Check the request as a handshake, run the event-stream
        consumer, and end the stream (see
        :mod:`pyramid_asgi_ws.sse_running`)."""
        stream = make_stream(
            consumer, scope, receive, send, self.settings, self._runner
        )
        try:
            refusal = check_method(scope) or await self._check(
                stream, consumer
            )
            if refusal is not None:
                await refuse_http(scope, send, refusal)
                return
            self.streams.add(stream)
            try:
                await run_stream(consumer, stream)
            finally:
                await self._ended(stream)
        finally:
            await self._finished(stream)

    async def close_connections(
        self,
        code: int = CloseCode.GOING_AWAY,
        reason: str = 'server shutting down',
        timeout: float | None = None,
    ) -> None:
        """Close every open WebSocket with ``code`` and wait for them to end.

        Consumers see :class:`~pyramid_asgi_ws.WebSocketDisconnect` with
        ``code`` on their next receive. Event streams end too (their
        consumers are cancelled); browsers reconnect to them by
        themselves. All of it, the close sends
        included, ends within ``timeout`` seconds (default
        ``asgi_ws.shutdown_timeout``): a close a stuck client does not
        take is abandoned, and consumers still running then are left to
        the server.
        """
        self.stopping = True
        if timeout is None:
            timeout = self.settings['shutdown_timeout']
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        closes = [
            asyncio.ensure_future(close_quietly(ws, code, reason))
            for ws in list(self.connections)
            if ws.application_state is WebSocketState.CONNECTED
        ] + [asyncio.ensure_future(stream.close()) for stream in self.streams]
        if closes:
            _, stuck = await asyncio.wait(closes, timeout=timeout)
            if stuck:
                log.warning(
                    '%d connections did not take their close in %s s',
                    len(stuck),
                    timeout,
                )
            for task in stuck:
                task.cancel()
        if not (self.connections or self.streams):
            return
        idle = self._idle = asyncio.Event()
        try:
            await asyncio.wait_for(
                idle.wait(), max(0.0, deadline - loop.time())
            )
        except asyncio.TimeoutError:
            log.warning(
                '%d connections still open after %s s of shutdown',
                len(self.connections) + len(self.streams),
                timeout,
            )
        finally:
            self._idle = None
