"""Groups, publishing and presence, over a pluggable broadcast backend.

A :class:`Broadcaster` is registered as the
:class:`~pyramid_asgi_ws.interfaces.IBroadcaster` utility. It keeps which
local WebSockets joined which group, hands published messages to a
:class:`Backend` (``memory://`` in one process, ``redis://`` across
processes) and fans what the backend delivers out to the local members,
each through its own bounded send queue.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
import concurrent.futures
import contextlib
import importlib
import itertools
import json
import logging
import threading
import time
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit
import uuid

from pyramid.config import PHASE2_CONFIG
from pyramid.exceptions import ConfigurationError

from pyramid_asgi_ws.interfaces import IASGISettings, IBroadcaster
from pyramid_asgi_ws.websocket import PRESENCE_KEY

log = logging.getLogger(__name__)

#: Seconds ``request.broadcast`` waits for the event loop to hand the
#: message to the backend before raising :class:`BroadcastError`.
PUBLISH_TIMEOUT = 5.0

#: The scope key holding a connection's member identifier.
CONNECTION_ID_KEY = 'asgi_ws.connection_id'

#: The scope key a consumer may set to what :meth:`Broadcaster.members`
#: reports for its connection (any JSON-serialisable value).

OnMessage = Callable[[str, bytes], None]


class BroadcastError(Exception):
    """Publishing (or asking for members) failed: the backend is
    unreachable, too slow, or the broadcaster does not run."""


# -- payloads ---------------------------------------------------------------

_TEXT, _BYTES, _JSON = b't', b'b', b'j'


def encode(message: Any) -> bytes:
    """Return the backend payload for ``message``.

    The first byte keeps text, bytes and JSON values apart, so a subscriber
    receives exactly the kind of message that was published.
    """
    if isinstance(message, str):
        return _TEXT + message.encode('utf-8')
    if isinstance(message, (bytes, bytearray, memoryview)):
        return _BYTES + bytes(message)
    return _JSON + to_json(message, 'a group message must be text, bytes or')


def to_json(value: Any, what: str = 'presence info must be') -> bytes:
    """Return ``value`` as compact UTF-8 JSON, or raise :exc:`TypeError`."""
    try:
        text = json.dumps(value, separators=(',', ':'), ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f'{what} JSON-serialisable, not {type(value).__name__}: {exc}'
        ) from None
    return text.encode('utf-8')


def decode(payload: bytes) -> tuple[Any, dict[str, Any]]:
    """Return ``(message, asgi_message)`` for a backend payload.

    ``asgi_message`` is the ``websocket.send`` event that carries the
    message to a client, built once and shared by every recipient.
    """
    kind, body = payload[:1], payload[1:]
    if kind == _BYTES:
        return body, {'type': 'websocket.send', 'bytes': body}
    text = body.decode('utf-8')
    event = {'type': 'websocket.send', 'text': text}
    if kind == _JSON:
        return json.loads(text), event
    return text, event


# -- backends ---------------------------------------------------------------


class Backend:
    """What a broadcast engine provides; subclass it to add one.

    Every method is called in the broadcaster's event loop. Channels and
    members are plain strings, payloads and presence info bytes.

    - :meth:`connect` starts the backend; from then on it calls
      ``on_message(channel, payload)`` (synchronously, in the loop) for each
      message published on a channel it is subscribed to, including the
      ones this process published. It must not raise when the engine is
      unreachable: it reconnects by itself.
    - :meth:`subscribe` and :meth:`unsubscribe` are called when the first
      local member joins a group and the last one leaves.
    - :meth:`publish` hands a payload to the engine, or raises
      :class:`BroadcastError`.
    - :meth:`add_member`, :meth:`remove_member` and :meth:`members` keep
      presence: who is in a channel, in every process.
    """

    def __init__(self, url: str) -> None:
        self.url = url

    async def connect(self, on_message: OnMessage) -> None:
        raise NotImplementedError

    async def disconnect(self) -> None:
        raise NotImplementedError

    async def subscribe(self, channel: str) -> None:
        raise NotImplementedError

    async def unsubscribe(self, channel: str) -> None:
        raise NotImplementedError

    async def publish(self, channel: str, payload: bytes) -> None:
        raise NotImplementedError

    async def add_member(self, channel: str, member: str, info: bytes) -> None:
        raise NotImplementedError

    async def remove_member(self, channel: str, member: str) -> None:
        raise NotImplementedError

    async def members(self, channel: str) -> dict[str, bytes]:
        raise NotImplementedError


class MemoryBackend(Backend):
    """Delivers within one process: ``memory://``."""

    def __init__(self, url: str = 'memory://') -> None:
        super().__init__(url)
        self.on_message: OnMessage | None = None
        self.channels: set[str] = set()
        self.presence: dict[str, dict[str, bytes]] = {}

    async def connect(self, on_message: OnMessage) -> None:
        self.on_message = on_message

    async def disconnect(self) -> None:
        self.on_message = None
        self.channels.clear()
        self.presence.clear()

    async def subscribe(self, channel: str) -> None:
        self.channels.add(channel)

    async def unsubscribe(self, channel: str) -> None:
        self.channels.discard(channel)

    async def publish(self, channel: str, payload: bytes) -> None:
        if self.on_message is not None and channel in self.channels:
            self.on_message(channel, payload)
        # Let the send queues drain between two publishes, as they do
        # while a network backend waits for its server.
        await asyncio.sleep(0)

    async def add_member(self, channel: str, member: str, info: bytes) -> None:
        self.presence.setdefault(channel, {})[member] = info

    async def remove_member(self, channel: str, member: str) -> None:
        members = self.presence.get(channel, {})
        members.pop(member, None)
        if not members:
            self.presence.pop(channel, None)

    async def members(self, channel: str) -> dict[str, bytes]:
        return dict(self.presence.get(channel, {}))


class RedisBackend(Backend):
    """Redis pub/sub across processes: ``redis://host:port/db``.

    Uses redis-py's asyncio client: one pub/sub connection per process
    (subscribed to one channel per group with local members) and a small
    pool for publishing and presence. Presence lives in one sorted set per
    group whose scores are expiry times, refreshed every third of
    ``presence_ttl``, so the members of a crashed process vanish.

    Query options, taken out of the URL before redis-py sees the rest:
    ``prefix`` (of every key and channel, default ``asgi_ws:``) and
    ``presence_ttl`` (seconds, default 30).
    """

    #: What this backend needs installed (checked at configuration).
    requires = 'redis.asyncio'
    #: Seconds between reconnection attempts: doubles up to the maximum.
    reconnect_min = 0.1
    reconnect_max = 5.0
    #: Seconds of silence on the subscription before it pings Redis, and
    #: before it gives the connection up for dead.
    ping_after = 5.0
    dead_after = 15.0
    #: Seconds a command may take (connect, send, answer).
    timeout = 2.0

    def __init__(self, url: str) -> None:
        import redis.asyncio
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        super().__init__(url)
        redis_url, options = split_options(url, ('prefix', 'presence_ttl'))
        self.prefix = options.get('prefix', 'asgi_ws:')
        self.presence_ttl = float(options.get('presence_ttl', 30))
        parts = urlsplit(redis_url)
        self.address = parts.hostname and f'{parts.hostname}:{parts.port}'
        self.address = self.address or parts.path
        # One retry at once, on a broken connection only: a pooled
        # connection that Redis closed while it was away fails once, then
        # reconnects; a Redis that does not answer fails after one timeout.
        self.client = redis.asyncio.Redis.from_url(
            redis_url,
            socket_connect_timeout=self.timeout,
            socket_timeout=self.timeout,
            retry=Retry(
                NoBackoff(), 1, supported_errors=(redis.ConnectionError,)
            ),
        )
        self.errors = (redis.RedisError, OSError)
        self.on_message: OnMessage | None = None
        self.channels: set[str] = set()
        self.local: dict[str, dict[str, bytes]] = {}
        self.control = f'{self.prefix}control:{uuid.uuid4().hex}'
        self.connected = asyncio.Event()
        self.reconnects = 0
        self._pubsub: Any = None
        self._tasks: list[asyncio.Task[None]] = []

    def _fail(self, what: str, exc: BaseException) -> BroadcastError:
        return BroadcastError(
            f'{what}: Redis at {self.address} is unreachable '
            f'({type(exc).__name__}: {exc})'
        )

    async def connect(self, on_message: OnMessage) -> None:
        self.on_message = on_message
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._read()),
            loop.create_task(self._heartbeat()),
        ]

    async def disconnect(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass
        self._tasks = []
        local, self.local = self.local, {}
        try:
            for channel, members in local.items():
                await asyncio.wait_for(
                    self.client.zrem(
                        self._key(channel),
                        *[_entry(m, i) for m, i in members.items()],
                    ),
                    self.timeout,
                )
        except (asyncio.TimeoutError, *self.errors):
            pass  # they expire by themselves
        await self.client.aclose()

    # -- subscription -----------------------------------------------------

    async def _read(self) -> None:
        """Keep the subscription up, reconnecting with backoff."""
        delay = self.reconnect_min
        lost = False
        loop = asyncio.get_running_loop()
        while True:
            pubsub = self._pubsub = self.client.pubsub()
            try:
                await pubsub.subscribe(self.control)
                # From here on subscribe() talks to Redis itself; the
                # channels joined so far are subscribed to in one go.
                self.connected.set()
                if self.channels:
                    await pubsub.subscribe(
                        *[self.prefix + c for c in self.channels]
                    )
                if lost:
                    log.warning(
                        'Redis subscription at %s restored', self.address
                    )
                    lost = False
                delay = self.reconnect_min
                await self._refresh()
                heard = loop.time()
                while True:
                    message = await pubsub.get_message(
                        ignore_subscribe_messages=True, timeout=1.0
                    )
                    now = loop.time()
                    if message is None:
                        if now - heard > self.dead_after:
                            raise ConnectionError('Redis stopped answering')
                        if now - heard > self.ping_after:
                            await pubsub.ping()
                        continue
                    heard = now
                    if message['type'] == 'message':
                        self._dispatch(message['channel'], message['data'])
            except self.errors as exc:
                self.connected.clear()
                lost = True
                self.reconnects += 1
                log.warning(
                    'Redis subscription at %s lost (%s: %s); retrying in '
                    '%.1f s',
                    self.address,
                    type(exc).__name__,
                    exc,
                    delay,
                )
            finally:
                self._pubsub = None
                with contextlib.suppress(*self.errors):
                    await pubsub.aclose()
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.reconnect_max)

    def _dispatch(self, channel: bytes, payload: bytes) -> None:
        name = channel.decode('utf-8')
        if not name.startswith(self.prefix) or self.on_message is None:
            return
        try:
            self.on_message(name[len(self.prefix) :], payload)
        except Exception:
            log.exception('delivering a message from %s failed', name)

    async def subscribe(self, channel: str) -> None:
        self.channels.add(channel)
        await self._tell('subscribe', channel)

    async def unsubscribe(self, channel: str) -> None:
        self.channels.discard(channel)
        await self._tell('unsubscribe', channel)

    async def _tell(self, command: str, channel: str) -> None:
        pubsub = self._pubsub
        if pubsub is None or not self.connected.is_set():
            return  # the reader subscribes to self.channels on reconnect
        try:
            await getattr(pubsub, command)(self.prefix + channel)
        except self.errors as exc:
            log.warning('Redis %s to %r failed: %s', command, channel, exc)

    async def publish(self, channel: str, payload: bytes) -> None:
        try:
            await self.client.publish(self.prefix + channel, payload)
        except self.errors as exc:
            raise self._fail(
                f'cannot publish to group {channel!r}', exc
            ) from exc

    # -- presence ---------------------------------------------------------

    def _key(self, channel: str) -> str:
        return f'{self.prefix}presence:{channel}'

    async def _refresh(self, only: str | None = None) -> None:
        """Write local members (of ``only``, or all) with a fresh expiry."""
        expires = time.time() + self.presence_ttl
        async with self.client.pipeline(transaction=False) as pipe:
            for channel, members in self.local.items():
                if only is not None and channel != only or not members:
                    continue
                key = self._key(channel)
                pipe.zadd(
                    key, {_entry(m, i): expires for m, i in members.items()}
                )
                pipe.expire(key, int(self.presence_ttl) + 1)
            await pipe.execute()

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.presence_ttl / 3)
            if self.connected.is_set():
                try:
                    await self._refresh()
                except self.errors as exc:
                    log.info('Redis presence refresh failed: %s', exc)

    async def add_member(self, channel: str, member: str, info: bytes) -> None:
        self.local.setdefault(channel, {})[member] = info
        try:
            await self._refresh(channel)
        except self.errors as exc:
            # Written by the heartbeat once Redis is back.
            log.warning('Redis presence for %r not written: %s', channel, exc)

    async def remove_member(self, channel: str, member: str) -> None:
        members = self.local.get(channel, {})
        info = members.pop(member, None)
        if not members:
            self.local.pop(channel, None)
        if info is None:
            return
        try:
            await self.client.zrem(self._key(channel), _entry(member, info))
        except self.errors as exc:
            log.warning('Redis presence for %r not removed: %s', channel, exc)

    async def members(self, channel: str) -> dict[str, bytes]:
        key = self._key(channel)
        try:
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.zremrangebyscore(key, '-inf', time.time())
                pipe.zrange(key, 0, -1)
                _, found = await pipe.execute()
        except self.errors as exc:
            raise self._fail(f'cannot list group {channel!r}', exc) from exc
        result = {}
        for entry in found:
            member, _, info = entry.partition(b'\n')
            result[member.decode('utf-8')] = info
        return result


def _entry(member: str, info: bytes) -> bytes:
    """A presence sorted-set member: the id, a newline, the info."""
    return member.encode('utf-8') + b'\n' + info


#: Backend classes by URL scheme. Add an entry (a class or a dotted name)
#: to serve another scheme.
BACKENDS: dict[str, Any] = {
    'memory': MemoryBackend,
    'redis': 'pyramid_asgi_ws.broadcast.RedisBackend',
    'rediss': 'pyramid_asgi_ws.broadcast.RedisBackend',
    'unix': 'pyramid_asgi_ws.broadcast.RedisBackend',
}


def backend_factory(url: str) -> Callable[[str], Backend]:
    """Return the backend class serving ``url``'s scheme."""
    from pyramid.path import DottedNameResolver

    scheme = url.split('://', 1)[0].lower()
    factory = BACKENDS.get(scheme)
    if factory is None:
        raise ConfigurationError(
            f'no broadcast backend for {url!r}; known schemes are: '
            + ', '.join(f'{name}://' for name in BACKENDS)
        )
    try:
        factory = DottedNameResolver().maybe_resolve(factory)
        requires = getattr(factory, 'requires', None)
        if requires:
            importlib.import_module(requires)
        return factory
    except ImportError as exc:
        raise ConfigurationError(
            f'the broadcast backend for {url!r} cannot be imported ({exc}); '
            "for Redis install redis-py: pip install 'pyramid_asgi_ws[redis]'"
        ) from None


def split_options(
    url: str, names: tuple[str, ...]
) -> tuple[str, dict[str, str]]:
    """Take the query options in ``names`` out of ``url``."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    options = {key: value for key, value in query if key in names}
    rest = urlencode(
        [(key, value) for key, value in query if key not in names]
    )
    return urlunsplit(parts._replace(query=rest)), options


# -- the broadcaster ----------------------------------------------------------


class Broadcaster:
    """Joins local WebSockets to groups and publishes to groups.

    ``url`` picks the backend (see :data:`BACKENDS`). The broadcaster runs
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
        started in a loop that has ended is started afresh.
        """
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
        """Disconnect the backend; local groups are forgotten."""
        backend, self.backend = self.backend, None
        self._loop = self._thread = None
        self._groups.clear()
        if backend is not None:
            await backend.disconnect()

    async def _backend(self) -> Backend:
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
    'BACKENDS',
    'Backend',
    'BroadcastError',
    'Broadcaster',
    'MemoryBackend',
    'RedisBackend',
    'broadcast',
    'get_broadcaster',
    'includeme',
]
