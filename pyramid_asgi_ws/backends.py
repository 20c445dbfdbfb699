"""Broadcast backends: how group messages travel between processes.

A backend moves opaque payloads between the processes sharing it and keeps
presence. :class:`MemoryBackend` serves one process (``memory://``),
:class:`RedisBackend` any number of them over Redis pub/sub
(``redis://``). The interface is :class:`Backend`; :data:`BACKENDS` maps
URL schemes to classes, so another engine can be added without touching
the :class:`~pyramid_asgi_ws.broadcast.Broadcaster`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
import contextlib
import importlib
import json
import logging
import time
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit
import uuid

from pyramid.exceptions import ConfigurationError

log = logging.getLogger(__name__)

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

    - ``connect()`` starts the backend; from then on it calls
      ``on_message(channel, payload)`` (synchronously, in the loop) for each
      message published on a channel it is subscribed to, including the
      ones this process published. It must not raise when the engine is
      unreachable: it reconnects by itself.
    - ``subscribe()`` and ``unsubscribe()`` are called when the first
      local member joins a group and the last one leaves.
    - ``publish()`` hands a payload to the engine, or raises
      :class:`BroadcastError`.
    - ``add_member()``, ``remove_member()`` and ``members()`` keep
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
    'redis': 'pyramid_asgi_ws.backends.RedisBackend',
    'rediss': 'pyramid_asgi_ws.backends.RedisBackend',
    'unix': 'pyramid_asgi_ws.backends.RedisBackend',
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


__all__ = [
    'BACKENDS',
    'Backend',
    'MemoryBackend',
    'RedisBackend',
    'backend_factory',
]
