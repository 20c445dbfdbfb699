"""The ``redis://`` backend: groups across processes over Redis pub/sub,
presence in sorted sets and group history in streams."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any
from urllib.parse import urlsplit
import uuid

from pyramid_asgi_ws.broadcast.backend import (
    Backend,
    BroadcastError,
    OnMessage,
    split_options,
)
from pyramid_asgi_ws.broadcast.presence import RedisPresenceMixin
from pyramid_asgi_ws.broadcast.streams import (
    RedisStreamsMixin,
    split_position,
)
from pyramid_asgi_ws.settings import as_seconds

log = logging.getLogger('pyramid_asgi_ws.backends')

#: The query options this backend takes out of its URL.
OPTIONS = ('prefix', 'presence_ttl')

#: The shortest ``presence_ttl`` accepted, in seconds: presence is
#: refreshed every third of it, and a shorter one would hammer Redis.
MIN_PRESENCE_TTL = 1.0


def parse_url(url: str) -> tuple[str, str, float]:
    """Return ``(redis_url, prefix, presence_ttl)`` for a backend URL.

    A ``presence_ttl`` that is not a number of seconds, or is under
    :data:`MIN_PRESENCE_TTL`, is a :class:`ConfigurationError` naming it.
    """
    redis_url, options = split_options(url, OPTIONS)
    ttl = as_seconds(
        options.get('presence_ttl', 30),
        'presence_ttl (an asgi_ws.broadcast_url option)',
        minimum=MIN_PRESENCE_TTL,
    )
    return redis_url, options.get('prefix', 'asgi_ws:'), ttl


class RedisBackend(RedisPresenceMixin, RedisStreamsMixin, Backend):
    """Redis pub/sub across processes: ``redis://host:port/db``.

    Uses redis-py's asyncio client: one pub/sub connection per process
    (subscribed to one channel per group with local members) and a small
    pool for publishing, presence and history (see
    :class:`~pyramid_asgi_ws.broadcast.presence.RedisPresenceMixin` and
    :class:`~pyramid_asgi_ws.broadcast.streams.RedisStreamsMixin`).

    Query options, taken out of the URL before redis-py sees the rest:
    ``prefix`` (of every key and channel, default ``asgi_ws:``) and
    ``presence_ttl`` (seconds, default 30, at least
    :data:`MIN_PRESENCE_TTL`).
    """

    #: What this backend needs installed (checked at configuration).
    requires = 'redis.asyncio'
    supports_history = True
    #: Seconds between reconnection attempts: doubles up to the maximum.
    reconnect_min = 0.1
    reconnect_max = 5.0
    #: Seconds of silence on the subscription before it pings Redis, and
    #: before it gives the connection up for dead.
    ping_after = 5.0
    dead_after = 15.0
    #: Seconds a command may take (connect, send, answer, confirm).
    timeout = 2.0
    #: Connections to Redis at most, the subscription's included.
    pool_size = 100

    def __init__(self, url: str) -> None:
        import redis.asyncio
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        super().__init__(url)
        redis_url, self.prefix, self.presence_ttl = parse_url(url)
        parts = urlsplit(redis_url)
        self.address = parts.hostname and f'{parts.hostname}:{parts.port}'
        self.address = self.address or parts.path
        # One retry at once, on a broken connection only: a pooled
        # connection that Redis closed while it was away fails once, then
        # reconnects; a Redis that does not answer fails after one timeout.
        # A burst of commands (hundreds of joins or leaves at once) waits
        # for a pooled connection, up to the timeout, where redis-py's
        # default pool would refuse with "Too many connections".
        pool = redis.asyncio.BlockingConnectionPool.from_url(
            redis_url,
            max_connections=self.pool_size,
            timeout=self.timeout,
            socket_connect_timeout=self.timeout,
            socket_timeout=self.timeout,
            retry=Retry(
                NoBackoff(), 1, supported_errors=(redis.ConnectionError,)
            ),
        )
        self.client = redis.asyncio.Redis(connection_pool=pool)
        self.client.auto_close_connection_pool = True
        self.errors = (redis.RedisError, OSError)
        self.on_message: OnMessage | None = None
        self.channels: set[str] = set()
        self.local: dict[str, dict[str, bytes]] = {}
        self.control = f'{self.prefix}control:{uuid.uuid4().hex}'
        self.connected = asyncio.Event()
        self.reconnects = 0
        self.failures = 0  # operations failed, for the metrics
        self._pubsub: Any = None
        self._tasks: list[asyncio.Task[None]] = []
        self._confirming: dict[str, asyncio.Future[None]] = {}
        self._subscribing: dict[str, asyncio.Future[None]] = {}
        self._restoring: set[str] = set()

    @classmethod
    def check_url(cls, url: str) -> None:
        """Refuse a bad ``presence_ttl`` when the configuration is read."""
        parse_url(url)

    def _fail(self, what: str, exc: BaseException) -> BroadcastError:
        self.failures += 1
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
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        await self._forget_local()
        await self.client.aclose()

    # -- subscription -----------------------------------------------------

    async def _read(self) -> None:
        """Keep the subscription up, reconnecting with backoff."""
        delay = self.reconnect_min
        lost = False
        while True:
            pubsub = self._pubsub = self.client.pubsub()
            try:
                await pubsub.subscribe(self.control)
                # From here on subscribe() talks to Redis itself; the
                # channels joined so far are subscribed to in one go.
                self.connected.set()
                self._restoring = set(self.channels)
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
                await self._listen(pubsub)
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

    async def _listen(self, pubsub: Any) -> None:
        """Read the subscription until Redis stops answering."""
        loop = asyncio.get_running_loop()
        heard = loop.time()
        while True:
            message = await pubsub.get_message(timeout=1.0)
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
            elif message['type'] == 'subscribe':
                await self._confirmed(pubsub, message['channel'])

    def _dispatch(self, channel: bytes, payload: bytes) -> None:
        name = channel.decode('utf-8')
        if not name.startswith(self.prefix) or self.on_message is None:
            return
        try:
            self.on_message(name[len(self.prefix) :], *split_position(payload))
        except Exception:
            log.exception('delivering a message from %s failed', name)

    async def _confirmed(self, pubsub: Any, channel: bytes) -> None:
        """Redis confirmed a subscription: wake the join waiting for it.

        One of a channel subscribed to again is told to ``_restored``. A
        confirmation that arrives after its join gave up is for a group
        nobody here is in: it is unsubscribed again.
        """
        full = channel.decode('utf-8')
        name = full[len(self.prefix) :]
        waiter = self._confirming.get(name)
        if waiter is not None:
            if not waiter.done():
                waiter.set_result(None)
        elif name in self.channels:
            self._restored(name)
        elif full != self.control:
            await pubsub.unsubscribe(full)

    async def subscribe(self, channel: str) -> None:
        """Subscribe and wait for Redis to confirm it.

        While the subscription is down the channel is kept for the reader,
        which subscribes to every kept channel when Redis is back. Joins
        that subscribe to one channel at once share one ``SUBSCRIBE`` and
        its confirmation: each one of its own would wake only one waiter,
        and the others' confirmations would be taken for late ones. A
        subscription Redis does not confirm within :attr:`timeout` raises
        :class:`BroadcastError` (in every join waiting for it) and is not
        kept.
        """
        pubsub = self._pubsub
        if pubsub is None or not self.connected.is_set():
            self.channels.add(channel)
            return
        pending = self._subscribing.get(channel)
        if pending is None:
            pending = asyncio.ensure_future(self._subscribe(pubsub, channel))
            self._subscribing[channel] = pending
        # A cancelled join must not cancel the others' subscription.
        await asyncio.shield(pending)

    async def _subscribe(self, pubsub: Any, channel: str) -> None:
        """Send one ``SUBSCRIBE`` and wait for its confirmation."""
        waiter = self._confirming[channel] = (
            asyncio.get_running_loop().create_future()
        )
        try:
            await pubsub.subscribe(self.prefix + channel)
            await asyncio.wait_for(waiter, self.timeout)
        except (asyncio.TimeoutError, *self.errors) as exc:
            raise self._fail(
                f'cannot subscribe to group {channel!r}', exc
            ) from exc
        finally:
            del self._confirming[channel]
            del self._subscribing[channel]
        self.channels.add(channel)

    async def unsubscribe(self, channel: str) -> None:
        self.channels.discard(channel)
        pubsub = self._pubsub
        if pubsub is None or not self.connected.is_set():
            return  # the reader subscribes to self.channels on reconnect
        try:
            await pubsub.unsubscribe(self.prefix + channel)
        except self.errors as exc:
            log.warning('Redis unsubscribe from %r failed: %s', channel, exc)

    async def publish(self, channel: str, payload: bytes) -> None:
        try:
            await self.client.publish(self.prefix + channel, payload)
        except self.errors as exc:
            raise self._fail(
                f'cannot publish to group {channel!r}', exc
            ) from exc
