"""Groups, publishing and presence, over a pluggable broadcast backend.

A :class:`Broadcaster` is registered as the
:class:`~pyramid_asgi_ws.interfaces.IBroadcaster` utility. It keeps which
local WebSockets joined which group, hands published messages to a
:class:`~pyramid_asgi_ws.backends.Backend` (``memory://`` in one process,
``redis://`` across processes) and fans what the backend delivers out to
the local members, each through its own bounded send queue.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import json
import logging
import threading
from typing import Any
import uuid

from pyramid.config import PHASE2_CONFIG

from pyramid_asgi_ws.backends import (
    Backend,
    BroadcastError,
    MemoryBackend,
    backend_factory,
    decode,
    encode,
    to_json,
)
from pyramid_asgi_ws.interfaces import IASGISettings, IBroadcaster
from pyramid_asgi_ws.websocket import PRESENCE_KEY

log = logging.getLogger(__name__)

#: Seconds ``request.broadcast`` waits for the event loop to hand the
#: message to the backend before raising :class:`BroadcastError`.
PUBLISH_TIMEOUT = 5.0

#: The scope key holding a connection's member identifier.
CONNECTION_ID_KEY = 'asgi_ws.connection_id'


# -- the broadcaster ----------------------------------------------------------


class Broadcaster:
    """Joins local WebSockets to groups and publishes to groups.

    ``url`` picks the backend (see
    :data:`~pyramid_asgi_ws.backends.BACKENDS`). The broadcaster runs
    in one event loop, the server's: :meth:`start` binds it (the
    application calls it at lifespan startup, and :meth:`join` and
    :meth:`publish` call it on first use where there is no lifespan).

    Counters: ``published`` (messages this process handed to the backend),
    ``received`` (messages the backend delivered here), ``delivered``
    (messages handed to local sockets or their hooks) and ``dropped``
    (messages lost to full send queues).
    """

    def __init__(self, url: str = 'memory://', factory: Any = None) -> None:
        self.url = url
        self.factory = factory or backend_factory(url)
        self.backend: Backend | None = None
        self.closed = False
        self.publish_timeout = PUBLISH_TIMEOUT
        self.token = uuid.uuid4().hex[:12]
        self._ids = itertools.count(1)
        self._groups: dict[str, set[Any]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: int | None = None
        self.published = 0
        self.received = 0
        self.delivered = 0
        self.dropped = 0

    @property
    def groups(self) -> dict[str, int]:
        """The groups with local members, and how many each has."""
        return {group: len(sockets) for group, sockets in self._groups.items()}

    def stats(self) -> dict[str, Any]:
        """Return the counters and the local groups, as a dict."""
        return {
            'backend': self.url.split('://', 1)[0],
            'published': self.published,
            'received': self.received,
            'delivered': self.delivered,
            'dropped': self.dropped,
            'groups': self.groups,
        }

    # -- life -------------------------------------------------------------

    @property
    def running(self) -> bool:
        """Whether the broadcaster runs in a live event loop."""
        loop = self._loop
        return loop is not None and not loop.is_closed() and loop.is_running()

    async def start(self) -> None:
        """Connect the backend and bind the broadcaster to the running loop.

        Starting again in the same loop does nothing; a broadcaster left
        started in a loop that has ended is started afresh. The application
        calls this at startup, which also reopens a closed broadcaster.
        """
        self.closed = False
        loop = asyncio.get_running_loop()
        if self._loop is loop:
            return
        if self.running:
            raise RuntimeError(
                'the broadcaster already runs in another event loop'
            )
        self._groups.clear()
        self._loop = loop
        self._thread = threading.get_ident()
        self.backend = self.factory(self.url)
        await self.backend.connect(self._receive)

    async def close(self) -> None:
        """Disconnect the backend; local groups are forgotten.

        Until :meth:`start` is called again, publishing, joining and asking
        for members raise :class:`BroadcastError` instead of quietly
        connecting a new backend that nothing would close.
        """
        self.closed = True
        backend, self.backend = self.backend, None
        self._loop = self._thread = None
        self._groups.clear()
        if backend is not None:
            await backend.disconnect()

    async def _backend(self) -> Backend:
        if self.closed:
            raise BroadcastError(
                'the broadcaster is closed: the application is shutting down'
            )
        await self.start()
        assert self.backend is not None
        return self.backend

    # -- groups -----------------------------------------------------------

    def connection_id(self, ws: Any) -> str:
        """Return the member identifier of ``ws``, unique across processes."""
        scope = ws.scope
        if CONNECTION_ID_KEY not in scope:
            scope[CONNECTION_ID_KEY] = f'{self.token}.{next(self._ids)}'
        return scope[CONNECTION_ID_KEY]

    async def join(self, ws: Any, group: str, info: Any = None) -> None:
        """Add ``ws`` to ``group``.

        ``info`` (default: ``ws.scope['asgi_ws.presence']``) is what
        :meth:`members` reports for this connection; any JSON-serialisable
        value, such as a user name.
        """
        _check_group(group)
        if info is None:
            info = ws.scope.get(PRESENCE_KEY)
        presence = to_json(info)
        backend = await self._backend()
        member = self.connection_id(ws)
        sockets = self._groups.get(group)
        first = sockets is None
        if sockets is None:
            sockets = self._groups[group] = set()
        sockets.add(ws)
        ws.groups.add(group)
        if first:
            await backend.subscribe(group)
        await backend.add_member(group, member, presence)

    async def leave(self, ws: Any, group: str) -> None:
        """Take ``ws`` out of ``group``; leaving twice does nothing."""
        ws.groups.discard(group)
        sockets = self._groups.get(group)
        if sockets is None or ws not in sockets:
            return
        sockets.discard(ws)
        backend = self.backend
        assert backend is not None  # close() forgets every group
        if not sockets:
            del self._groups[group]
            await backend.unsubscribe(group)
        await backend.remove_member(group, self.connection_id(ws))

    async def discard(self, ws: Any) -> None:
        """Take a closed connection out of all its groups."""
        for group in list(ws.groups):
            try:
                await self.leave(ws, group)
            except Exception:
                log.exception('leaving group %r failed', group)

    async def members(self, group: str) -> dict[str, Any]:
        """Return ``{connection id: presence info}`` for everyone in
        ``group``, in every process sharing the backend."""
        _check_group(group)
        backend = await self._backend()
        found = await backend.members(group)
        return {member: json.loads(info) for member, info in found.items()}

    # -- publishing -------------------------------------------------------

    async def publish(self, group: str, message: Any) -> None:
        """Publish ``message`` (text, bytes or a JSON-serialisable value)
        to every member of ``group``; raises :class:`BroadcastError` when
        the backend cannot take it."""
        _check_group(group)
        await self._publish_payload(group, encode(message))

    def publish_threadsafe(self, group: str, message: Any) -> None:
        """Publish from a thread other than the event loop's, such as a
        WSGI view's; returns once the backend has the message.

        Raises :class:`BroadcastError` when it fails or takes longer than
        ``publish_timeout`` seconds.
        """
        _check_group(group)
        payload = encode(message)
        if threading.get_ident() == self._thread:
            raise RuntimeError(
                'publish_threadsafe() called from the event loop: '
                'use "await broadcaster.publish(group, message)"'
            )
        loop = self._loop
        if loop is None or loop.is_closed() or not loop.is_running():
            self._publish_detached(group, payload)
            return
        future = asyncio.run_coroutine_threadsafe(
            self._publish_payload(group, payload), loop
        )
        try:
            future.result(self.publish_timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise BroadcastError(
                f'publishing to group {group!r} took more than '
                f'{self.publish_timeout} s'
            ) from None

    async def _publish_payload(self, group: str, payload: bytes) -> None:
        backend = await self._backend()
        await backend.publish(group, payload)
        self.published += 1

    def _publish_detached(self, group: str, payload: bytes) -> None:
        """Publish with no event loop running the broadcaster.

        No local socket can be in a group then, so the memory backend has
        nobody to deliver to; other backends publish through a short-lived
        connection of their own.
        """
        if self.factory is MemoryBackend:
            self.published += 1
            return

        async def once() -> None:
            backend = self.factory(self.url)
            try:
                await backend.publish(group, payload)
            finally:
                await backend.disconnect()

        asyncio.run(once())
        self.published += 1

    # -- fan-out ----------------------------------------------------------

    def _receive(self, group: str, payload: bytes) -> None:
        """Hand a message from the backend to every local member."""
        sockets = self._groups.get(group)
        self.received += 1
        if not sockets:
            return
        event = decode(payload)[1]
        delivered = dropped = 0
        for ws in list(sockets):
            before = ws.dropped
            if ws.on_group_message is None:
                # The shared, ready-made event spares encoding the message
                # once per socket; WebSocket.deliver does the same work.
                delivered += ws.push(event)
            else:
                # A hook gets a value of its own, free to change it; one
                # that raises must not cost the other members the message.
                try:
                    ws.deliver(group, decode(payload)[0])
                except Exception:
                    log.exception(
                        'on_group_message hook failed on WebSocket %s',
                        ws.path,
                    )
                    continue
                delivered += 1
            dropped += ws.dropped - before
        self.delivered += delivered
        self.dropped += dropped


def _check_group(group: Any) -> None:
    if not isinstance(group, str) or not group:
        raise ValueError(
            f'a group name must be a non-empty str, not {group!r}'
        )


def get_broadcaster(registry: Any) -> Broadcaster:
    """Return the application's :class:`Broadcaster`.

    Use it where there is no WebSocket at hand: in an
    :class:`~pyramid_asgi_ws.events.ApplicationStartup` subscriber or a
    background task, ``await get_broadcaster(registry).publish(group,
    message)``.
    """
    broadcaster = registry.queryUtility(IBroadcaster)
    if broadcaster is None:
        raise RuntimeError(
            "no broadcaster: call config.include('pyramid_asgi_ws') and "
            'commit the configuration first'
        )
    return broadcaster


def broadcast(request: Any, group: str, message: Any) -> None:
    """Publish ``message`` to ``group`` from a synchronous view.

    This function is added as the request method ``request.broadcast`` by
    ``config.include('pyramid_asgi_ws')``. It is thread-safe and returns
    once the backend has the message; it raises :class:`BroadcastError`
    when the backend fails.
    """
    get_broadcaster(request.registry).publish_threadsafe(group, message)


def includeme(config: Any) -> None:
    """Register the :class:`Broadcaster` and ``request.broadcast``.

    The backend is chosen by the ``asgi_ws.broadcast_url`` setting, read
    in a deferred action once the settings are parsed.
    """
    config.add_request_method(broadcast, 'broadcast')

    def register() -> None:
        registry = config.registry
        settings = registry.getUtility(IASGISettings)
        broadcaster = Broadcaster(settings['broadcast_url'])
        broadcaster.publish_timeout = settings['publish_timeout']
        registry.registerUtility(broadcaster, IBroadcaster)

    config.action(('asgi_ws broadcaster',), register, order=PHASE2_CONFIG)


__all__ = [
    'BroadcastError',
    'Broadcaster',
    'broadcast',
    'get_broadcaster',
    'includeme',
]
