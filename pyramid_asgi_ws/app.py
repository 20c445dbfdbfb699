"""The ASGI application: where each scope goes.

``lifespan`` runs the startup and shutdown events; a ``websocket`` or
``http`` scope whose path matches a consumer goes to that consumer; any
other ``http`` scope goes to the Pyramid WSGI app through the bridge; a
``websocket`` scope that matches nothing is refused with 404.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
import contextlib
import functools
import io
import logging
from typing import Any

from pyramid.httpexceptions import HTTPException
from pyramid.interfaces import (
    IRequestExtensions,
    IRequestFactory,
    IRootFactory,
)
from pyramid.request import Request, apply_request_extensions
from pyramid.threadlocal import manager
from pyramid.traversal import DefaultRootFactory
from zope.interface import implementer

from pyramid_asgi_ws.events import (
    ApplicationShutdown,
    ApplicationStartup,
    notify_async,
)
from pyramid_asgi_ws.interfaces import (
    IASGIApp,
    IASGISettings,
    IBroadcaster,
    IConsumerRouter,
)
from pyramid_asgi_ws.router import Consumer, ConsumerRouter, path_info
from pyramid_asgi_ws.security import (
    Refusal,
    check_origin,
    check_permission,
    check_subprotocol,
    refusal_from_exception,
)
from pyramid_asgi_ws.settings import parse_settings
from pyramid_asgi_ws.websocket import (
    DENIED,
    Receive,
    Send,
    WebSocket,
    WebSocketDisconnect,
    WebSocketState,
)
from pyramid_asgi_ws.wsgi import WsgiToAsgi, build_environ, send_error

log = logging.getLogger('pyramid_asgi_ws')

#: Close code sent to every open WebSocket when the server stops.
GOING_AWAY = 1001

#: What a raw WebSocket consumer's messages say about its side's state.
RAW_STATES = {
    'websocket.accept': WebSocketState.CONNECTED,
    'websocket.close': WebSocketState.DISCONNECTED,
    'websocket.http.response.start': WebSocketState.RESPONSE,
}


class _DenialFilter(logging.Filter):
    """Drop uvicorn's error line after a handshake this app refused.

    uvicorn (0.30 and later) logs "ASGI callable returned without completing
    handshake" even when the app answered with a denial response; the
    refusal's own log line already says what happened.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not (
            DENIED.get() and 'without completing handshake' in str(record.msg)
        )


_DENIAL_FILTER = _DenialFilter()


@implementer(IASGIApp)
class ASGIApp:
    """The ASGI 3 application returned by ``config.make_asgi_app()``.

    ``wsgi_app`` is the Pyramid router it wraps and ``registry`` its
    registry, where the app is also the ``IASGIApp`` utility;
    ``connections`` holds the WebSockets open right now.
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
        self.connections: set[WebSocket] = set()
        self.started = False
        self.stopping = False
        self._startup_lock: asyncio.Lock | None = None
        self.registry.registerUtility(self, IASGIApp)
        logging.getLogger('uvicorn.error').addFilter(_DENIAL_FILTER)

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
        if found is None:
            if kind == 'websocket':
                await self.refuse_unknown(scope, receive, send)
            else:
                await self.wsgi(scope, receive, send)
            return
        consumer, matchdict = found
        # the scope is ours to extend (ASGI); consumers find these in it
        scope['matchdict'] = matchdict
        scope['registry'] = self.registry
        if consumer.protocol == 'http':
            await self.serve_raw(consumer, scope, receive, send)
        else:
            await self.serve_websocket(consumer, scope, receive, send)

    # -- WebSockets -------------------------------------------------------

    def make_request(
        self, ws: WebSocket, factory: Callable[[Request], Any] | None = None
    ) -> Request:
        """Build the Pyramid request for a WebSocket handshake.

        Its ``context`` comes from ``factory`` (a consumer's ``factory=``)
        or the application's root factory, as for a view.
        """
        registry = self.registry
        environ = build_environ(ws.scope, io.BytesIO())
        make = registry.queryUtility(IRequestFactory, default=Request)
        request = make(environ)
        request.registry = registry
        request.matchdict = ws.matchdict
        request.matched_route = None
        request.websocket = ws
        extensions = registry.queryUtility(IRequestExtensions)
        if extensions is not None:
            apply_request_extensions(request, extensions=extensions)
        if factory is None:
            factory = registry.queryUtility(
                IRootFactory, default=DefaultRootFactory
            )
        with self.threadlocals(request):
            request.context = factory(request)
        return request

    def _websocket(
        self,
        consumer: Consumer,
        scope: dict[str, Any],
        receive: Receive,
        send: Send,
    ) -> WebSocket:
        settings = self.settings
        return WebSocket(
            scope,
            receive,
            send,
            request_factory=functools.partial(
                self.make_request, factory=consumer.factory
            ),
            max_message_size=consumer.setting('max_message_size', settings),
            send_queue_size=consumer.setting('send_queue_size', settings),
            send_overflow=consumer.setting('send_overflow', settings),
        )

    @contextlib.contextmanager
    def threadlocals(self, request: Request | None = None) -> Iterator[None]:
        """Make ``get_current_request/registry()`` work in what runs inside.

        For synchronous code run on the event loop (root factories,
        security policies) that expects Pyramid's thread locals, as views
        have them.
        """
        manager.push({'request': request, 'registry': self.registry})
        try:
            yield
        finally:
            manager.pop()

    def check_handshake(
        self, ws: WebSocket, consumer: Consumer
    ) -> Refusal | None:
        """Run the origin, subprotocol and permission checks in turn.

        An HTTP exception raised meanwhile (by a context factory, say)
        refuses with its status; any other exception (a security policy
        choking on a hostile query string) is logged and refuses with 500.
        """
        try:
            refusal = check_origin(
                ws.scope, consumer, self.settings
            ) or check_subprotocol(ws, consumer)
            if refusal is not None:
                return refusal
            if consumer.permission is None and consumer.factory is None:
                return None
            with self.threadlocals(ws.request):
                return check_permission(ws, consumer)
        except HTTPException as exc:
            return refusal_from_exception(
                exc, f'{exc.code} raised while checking the handshake: {exc}'
            )
        except Exception:
            log.exception(
                'checking the handshake of consumer %r failed on WebSocket %s',
                consumer.name,
                ws.path,
            )
            return Refusal(500, 'the handshake check raised')

    async def serve_websocket(
        self,
        consumer: Consumer,
        scope: dict[str, Any],
        receive: Receive,
        send: Send,
    ) -> None:
        """Check the handshake, run the consumer, and close what it left."""
        ws = self._websocket(consumer, scope, receive, send)
        refusal = self.check_handshake(ws, consumer)
        if refusal is not None:
            await self.refuse(ws, refusal)
            return
        if self.stopping:
            await self.refuse(ws, Refusal(503, 'the server is shutting down'))
            return
        self.connections.add(ws)
        try:
            if consumer.raw:
                await self.serve_raw(consumer, scope, receive, send, ws)
            else:
                await self._run(consumer, ws)
        finally:
            self.connections.discard(ws)
            await self.forget(ws)

    async def _run(self, consumer: Consumer, ws: WebSocket) -> None:
        try:
            await consumer.target(ws)
        except WebSocketDisconnect:
            return
        except HTTPException as exc:
            reason = (
                f'consumer {consumer.name!r} raised {exc.code} {exc.title}'
            )
            if ws.application_state is WebSocketState.CONNECTING:
                await self.refuse(ws, refusal_from_exception(exc, reason))
            else:
                log.info('closing WebSocket %s: %s', ws.path, reason)
                await self._close(ws, 4000 + (exc.code or 500), exc.title)
            return
        except Exception:
            log.exception(
                'consumer %r failed on WebSocket %s', consumer.name, ws.path
            )
            if ws.application_state is WebSocketState.CONNECTING:
                await self.refuse(ws, Refusal(500, 'the consumer raised'))
            else:
                await self._close(ws, 1011, 'internal error')
            return
        if ws.application_state is WebSocketState.CONNECTING:
            await self.refuse(
                ws,
                Refusal(
                    403,
                    f'consumer {consumer.name!r} returned without accepting',
                ),
            )
        else:
            await self._close(ws, 1000, '')

    async def serve_raw(
        self,
        consumer: Consumer,
        scope: dict[str, Any],
        receive: Receive,
        send: Send,
        ws: WebSocket | None = None,
    ) -> None:
        """Run a raw ASGI consumer; if it raises, answer the client first.

        Before it sent anything: 500 (HTTP) or a refused handshake; after a
        WebSocket accept: close 1011; a response under way is cut off. The
        exception then goes on to the server, which logs it (and to the
        test client, which raises it in the test); the client never sees
        it. For a WebSocket, ``ws`` follows what the consumer sends, so
        that shutdown can close it with 1001 like any other.
        """
        sent: list[str] = []
        if ws is not None:
            ws.client_state = WebSocketState.CONNECTED  # it receives itself

        async def watched(message: dict[str, Any]) -> None:
            kind = message['type']
            if not sent:
                sent.append(kind)
            if ws is not None and kind in RAW_STATES:
                ws.application_state = RAW_STATES[kind]
            await send(message)

        try:
            await consumer.target(scope, receive, watched)
        except Exception:
            if sent and sent[0] == 'http.response.start':
                raise
            log.error(
                'ASGI consumer %r failed on %s', consumer.name, scope['path']
            )
            if scope['type'] == 'http':
                await send_error(send, 500, b'Internal Server Error')
                raise
            if ws is None:
                ws = WebSocket(scope, receive, send)
                ws.client_state = WebSocketState.CONNECTED
            if ws.application_state is WebSocketState.CONNECTED:
                await self._close(ws, 1011, 'internal error')
            elif ws.application_state is WebSocketState.CONNECTING:
                await self.refuse(ws, Refusal(500, 'the consumer raised'))
            raise

    async def _close(self, ws: WebSocket, code: int, reason: str) -> None:
        try:
            await ws.close(code, reason)
        except (WebSocketDisconnect, RuntimeError):
            pass

    async def refuse(self, ws: WebSocket, refusal: Refusal) -> None:
        """Refuse a handshake: a denial response, or a close (403)."""
        log.warning(
            'refused WebSocket handshake to %s with %d: %s',
            ws.path,
            refusal.status,
            refusal.reason,
        )
        if ws.application_state is not WebSocketState.CONNECTING:
            return
        try:
            await ws.deny(refusal.status, refusal.body, refusal.headers)
        except (WebSocketDisconnect, RuntimeError):
            pass

    async def refuse_unknown(
        self, scope: dict[str, Any], receive: Receive, send: Send
    ) -> None:
        """Refuse a handshake to a path no consumer serves with 404."""
        ws = WebSocket(scope, receive, send)
        await self.refuse(
            ws,
            Refusal(
                404,
                'no WebSocket consumer matches this path',
                b'404 Not Found',
            ),
        )

    async def forget(self, ws: WebSocket) -> None:
        """Take a finished connection out of its groups, stop its queue and
        run its request's finished callbacks (closing a database session,
        say), as Pyramid does after a view."""
        broadcaster = self.registry.queryUtility(IBroadcaster)
        if broadcaster is not None and ws.groups:
            await broadcaster.discard(ws)
        await ws._finish()
        request = ws._request
        if request is not None and request.finished_callbacks:
            try:
                with self.threadlocals(request):
                    request._process_finished_callbacks()
            except Exception:
                log.exception('a finished callback failed on %s', ws.path)

    # -- lifespan ---------------------------------------------------------

    async def _lazy_startup(self) -> None:
        # daphne (and uvicorn --lifespan off) never send a lifespan scope:
        # start on the first request instead. Requests arriving meanwhile
        # wait for it; a failed startup is logged and tried again by the
        # next request.
        try:
            await self.startup()
        except Exception:
            log.exception('application startup failed')

    async def startup(self) -> None:
        """Start the broadcaster and run the startup subscribers, once."""
        if self._startup_lock is None:
            self._startup_lock = asyncio.Lock()
        async with self._startup_lock:
            if self.started:
                return
            self.stopping = False
            broadcaster = self.registry.queryUtility(IBroadcaster)
            if broadcaster is not None:
                await broadcaster.start()
            await notify_async(
                self.registry, ApplicationStartup(self, self.registry)
            )
            self.started = True

    async def close_connections(
        self,
        code: int = GOING_AWAY,
        reason: str = 'server shutting down',
        timeout: float | None = None,
    ) -> None:
        """Close every open WebSocket with ``code`` and wait for them to end.

        Consumers see :class:`~pyramid_asgi_ws.WebSocketDisconnect` with
        ``code`` on their next receive. Those still running after
        ``timeout`` seconds (default ``asgi_ws.shutdown_timeout``) are left
        to the server.
        """
        self.stopping = True
        await asyncio.gather(
            *(
                self._close(ws, code, reason)
                for ws in list(self.connections)
                if ws.application_state is WebSocketState.CONNECTED
            )
        )
        if timeout is None:
            timeout = self.settings['shutdown_timeout']
        deadline = asyncio.get_running_loop().time() + timeout
        while (
            self.connections and asyncio.get_running_loop().time() < deadline
        ):
            await asyncio.sleep(0.02)

    async def shutdown(self) -> None:
        """Close sockets, run shutdown subscribers, stop the broadcaster."""
        await self.close_connections()
        try:
            await notify_async(
                self.registry, ApplicationShutdown(self, self.registry)
            )
        finally:
            broadcaster = self.registry.queryUtility(IBroadcaster)
            if broadcaster is not None:
                await broadcaster.close()
            self.wsgi.close()
            self.started = False
            self._startup_lock = None  # the next loop makes its own

    async def lifespan(self, receive: Receive, send: Send) -> None:
        """Answer the ASGI lifespan protocol."""
        while True:
            message = await receive()
            kind = message['type']
            phase = 'startup' if kind == 'lifespan.startup' else 'shutdown'
            try:
                if phase == 'startup':
                    await self.startup()
                else:
                    await self.shutdown()
            except Exception as exc:
                log.exception('ASGI lifespan %s failed', phase)
                await send(
                    {
                        'type': f'lifespan.{phase}.failed',
                        'message': f'{type(exc).__name__} during {phase}',
                    }
                )
                if phase == 'shutdown':
                    return
                continue
            await send({'type': f'lifespan.{phase}.complete'})
            if phase == 'shutdown':
                return
